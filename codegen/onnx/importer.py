"""The importer walk: an ONNX graph in, a :class:`~codegen.Network` out.

The model is untrusted input. The walk checks the opset and that every tensor has one producer
(:mod:`codegen.onnx.validate`), decodes the initializers with their sizes checked
(:mod:`codegen.onnx.tensors`, :mod:`codegen.onnx.limits`), keeps the nodes the graph output
depends on, makes the input layer from the one graph input (dimensions checked), and
checks each node's domain, arity and attributes against the operator's schema before dispatch.
Nodes of constants (and ``Shape`` of a tensor) are evaluated by the folder registered for their
op type (``FOLDERS``, :mod:`codegen.onnx.constants`), which bounds the work first; every other
node goes to the translator registered for its op type
(``TRANSLATORS[node.op_type](imp, node)``, see :mod:`codegen.onnx.registry`), except the groups
of nodes that a recognizer of a layer's spelling (``SPELLINGS``) claimed before the walk: those
are checked node by node and translated once, at their last node. Translators
create layers through the helpers below (:meth:`Importer.new`, :meth:`Importer.set`,
:meth:`Importer.refuse`, :meth:`Importer.weight`, ...); messages show names from the model only
through :func:`~codegen.onnx.errors.quote`. Finally the input normalization the translators
accumulated goes into the input layer (``imageInputLayer`` for an N x C x H x W graph input,
``featureInputLayer`` for N x K), and the layers become a layerGraph and a Network
carrying an :class:`~codegen.onnx.OnnxBinding`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import CodegenError
from ..graph import connectLayers, disconnectLayers, layerGraph
from ..layers import featureInputLayer, imageInputLayer, regressionLayer
from ..network import Network
from .binding import OnnxBinding, OnnxTensor
from .blockers import check_supported, pytorch_origin
from .constants import fold
from .errors import OnnxImportError, escape, quote
from .limits import MAX_DIM, MAX_RANK, check_dim, check_elements
from .model import load_model
from .neighbours import Neighbours
from .qdq import QdqRecord
from .registry import FOLDERS, TRANSLATORS, supported_ops
from .tensors import as_ints, as_weights, decode, type_name
from .validate import check_names, check_node, default_opset


def import_onnx(path_or_model, name: str | None = None) -> Network:
    """Import an ONNX model (a path, bytes or an ``onnx.ModelProto``) as a Network."""
    model, default_name = load_model(path_or_model)
    return Importer(model, name or default_name).run()


class Importer(Neighbours):
    """The state of one import; translators read and extend it through the helpers."""

    def __init__(self, model, name: str):
        import onnx
        from onnx import helper
        self.onnx, self.helper = onnx, helper
        self.model = model
        self.graph = model.graph
        self.net_name = name
        self.opset = default_opset(model)
        self.consts: dict[str, np.ndarray] = {}
        self.tensors: dict[str, OnnxTensor] = {}
        self.layers: list = []                      # in creation (topological) order
        self.sources: dict[str, list[str]] = {}     # layer name -> source layer names
        self.shapes: dict[str, tuple] = {}          # layer name -> (H, W, C)
        self.weights: dict[str, np.ndarray] = {}    # 'layer/Prop' -> array
        self.used_idents: set[str] = set()
        self.node_layers: dict[str, str] = {}
        self.qdq = QdqRecord()                      # an int8 (QDQ) model's parameters
        self.consumers: dict[str, int] = {}
        Neighbours.__init__(self)

    # ------------------------------------------------------------------ model level
    def run(self) -> Network:
        graph = self.graph
        if len(graph.sparse_initializer):
            raise OnnxImportError("the ONNX model has sparse initializers, which are not supported")
        check_names(graph, self.where)
        for init in graph.initializer:
            self.consts[init.name] = decode(init, f"initializer {quote(init.name)}")
        outputs = [o.name for o in graph.output]
        if not outputs:
            raise OnnxImportError("the ONNX graph has no outputs")
        nodes = self._needed_nodes(outputs)
        for node in nodes:
            for i in node.input:
                self.consumers[i] = self.consumers.get(i, 0) + 1
        for output in outputs:
            self.consumers[output] = self.consumers.get(output, 0) + 1
        self._input(set(self.consumers))
        self.recognize(nodes)
        check_supported([n for n in nodes if self.claimed(n) is None and not self.evaluated_early(n)],
                        set(self.consts), self.where)
        for node in nodes:
            if not self.evaluated_early(node):
                self._node(node)
        for output in outputs:
            if output in self.consts:
                raise OnnxImportError(f"the graph output {quote(output)} is a constant: the model computes nothing "
                                      "from its input")
            if output not in self.tensors:
                raise OnnxImportError(f"the graph output {quote(output)} is not computed by any node")
        self._input_normalization()
        out_layers = self._output_layers(outputs)
        lgraph = self._layer_graph(out_layers)
        try:
            net = Network(lgraph, seed=0, weights=self.weights, name=self.net_name, outputs=out_layers)
        except CodegenError as exc:
            raise OnnxImportError(f"the imported network is invalid: {exc}") from None
        net.onnx = OnnxBinding(self.input_name, self.input_rank, outputs, [self.tensors[o].kind for o in outputs],
                               self.opset, dict(self.node_layers), *self.qdq.calibration(net, self.input_layer))
        return net

    def _output_layers(self, outputs: list[str]) -> list[str]:
        """The layer of each graph output. A network's outputs are its unconnected layers, so an output
        that other layers also read (or that another output already is, or the graph input) gets a
        regressionLayer of its own, named after the output."""
        readers = {s for srcs in self.sources.values() for s in srcs}
        layers: list[str] = []
        for output in outputs:
            t = self.tensors[output]
            if t.layer in readers or t.layer in layers or t.layer == self.input_layer:
                layer = regressionLayer(Name=self._ident(output, "output"))
                self._add_layer(layer, [t.layer], None)
                layers.append(layer.Name)
            else:
                layers.append(t.layer)
        return layers

    def _needed_nodes(self, outputs: list[str]) -> list:
        """The nodes the graph outputs depend on, in graph order (checked to be topological)."""
        producer = {}
        for idx, node in enumerate(self.graph.node):
            for o in node.output:
                if o:
                    producer[o] = idx
        needed, stack = set(), list(outputs)
        while stack:
            t = stack.pop()
            idx = producer.get(t)
            if idx is None or idx in needed:
                continue
            needed.add(idx)
            stack.extend(i for i in self.graph.node[idx].input if i)
        known = set(self.consts) | {i.name for i in self.graph.input}
        nodes = []
        for idx, node in enumerate(self.graph.node):
            if idx not in needed:
                continue
            for i in node.input:
                if i and i not in known:
                    raise OnnxImportError(f"{self.where(node)}: input {quote(i)} is produced by no earlier node "
                                          "(the graph is not in topological order, or the input is missing)")
            known.update(o for o in node.output if o)
            nodes.append(node)
        return nodes

    # ------------------------------------------------------------------ the graph input
    def _input(self, used: set[str]):
        """The input layer: the one graph input, not an initializer, that the output depends on."""
        inputs = [i for i in self.graph.input if i.name not in self.consts and i.name in used]
        if len(inputs) != 1:
            raise OnnxImportError(f"the ONNX graph has {len(inputs)} inputs that are not initializers "
                                  f"({_names(i.name for i in inputs) or 'none'}); exactly one (the image) is supported")
        inp = inputs[0]
        what = f"graph input {quote(inp.name)}"
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type"):
            raise OnnxImportError(f"{what} is not a tensor")
        if tt.elem_type != self.onnx.TensorProto.FLOAT:
            raise OnnxImportError(f"{what} has element type {type_name(tt.elem_type)}; only FLOAT (float32) is "
                                  "supported")
        dims = [d.dim_value if d.HasField("dim_value") else quote(d.dim_param or "?", 24) for d in tt.shape.dim]
        shown = "[" + ", ".join(map(str, dims)) + "]"
        if len(dims) not in (2, 4):
            raise OnnxImportError(f"{what} has shape {shown} (rank {len(dims)}); supported are "
                                  "N x C x H x W images and N x K vectors")
        for k, d in enumerate(dims):
            if isinstance(d, int):
                check_dim(d, f"{what}: dimension {k}", shown, allow_zero=False)
            elif k:
                raise OnnxImportError(f"{what} has shape {shown}: dimension {k} is not fixed; C, H and W must be "
                                      "known numbers")
        check_elements(math.prod(dims[1:]), what, shown)
        if len(dims) == 4:
            _, c, h, w = dims
            shape, kind = (h, w, c), "nchw"
        else:
            shape, kind = (1, 1, dims[1]), "nc"
        self.input_name, self.input_rank = inp.name, len(dims)
        self.batch = dims[0] if isinstance(dims[0], int) else None   # a fixed batch size
        name = self._ident(inp.name, "input")
        lay = (imageInputLayer(list(shape), Normalization="none", Name=name) if len(dims) == 4
               else featureInputLayer(dims[1], Normalization="none", Name=name))
        self._add_layer(lay, [], None)
        self.input_layer = lay.Name
        # y = (x - Mean) / StandardDeviation: the translators of codegen.onnx.ops.normalization
        # fold Sub/Add/Mul/Div of constants on the graph input into it
        self.norm = (np.zeros((1, 1, 1)), np.ones((1, 1, 1)))
        self.tensors[inp.name] = OnnxTensor(lay.Name, shape, kind)

    def _input_normalization(self):
        """Replace the input layer by one with the accumulated normalization."""
        mean, std = self.norm
        if not np.any(mean) and np.all(std == 1):
            return
        lay = self.layers[0]
        stat = lambda a: _compact(np.broadcast_to(a, self.shapes[lay.Name]))   # noqa: E731
        make = imageInputLayer if self.input_rank == 4 else featureInputLayer
        if np.all(std == 1):
            new = make(lay.InputSize, Normalization="zerocenter", Mean=stat(mean), Name=lay.Name)
        else:
            new = make(lay.InputSize, Normalization="zscore", Mean=stat(mean), StandardDeviation=stat(std),
                       Name=lay.Name)
        self.layers[0] = new

    # ------------------------------------------------------------------ graph building
    def _ident(self, text: str, base: str) -> str:
        """A unique layer name: the sanitized node name ('/features/conv1/Conv' ->
        'features_conv1_Conv'), or MATLAB's automatic '<base>_<k>' for empty and numeric names
        (PyTorch's '/0/Conv')."""
        ident = _sanitize(text)
        if ident and not ident[0].isdigit():
            candidate, k = ident, 1
            while candidate.lower() in self.used_idents:
                k += 1
                candidate = f"{ident}_{k}"
        else:
            k = 1
            while f"{base}_{k}".lower() in self.used_idents:
                k += 1
            candidate = f"{base}_{k}"
        self.used_idents.add(candidate.lower())
        return candidate

    def _add_layer(self, layer, sources: list[str], node, weights: dict | None = None) -> str:
        in_shapes = [self.shapes[s] for s in sources]
        try:
            shape = tuple(int(v) for v in layer.copy().resolve(in_shapes))
        except CodegenError as exc:
            if node is None:
                raise
            raise OnnxImportError(f"{self.where(node)}: cannot be expressed as {layer.FUNCTION}: {exc}") from None
        check_elements(math.prod(shape), f"{self.where(node)}: its output" if node is not None else "the input",
                       shape)
        self.layers.append(layer)
        self.sources[layer.Name] = list(sources)
        self.shapes[layer.Name] = shape
        for prop, value in (weights or {}).items():
            self.weights[f"{layer.Name}/{prop}"] = value
        if node is not None:
            self.qdq.layer_made(node, layer.Name)
        if node is not None and node.name:
            self.node_layers[node.name] = layer.Name
        return layer.Name

    def _layer_graph(self, outputs: list[str]):
        """A layerGraph of the layers (pruned to those the output layers depend on), with our connections."""
        keep, stack = set(), list(outputs)
        while stack:
            n = stack.pop()
            if n not in keep:
                keep.add(n)
                stack.extend(self.sources[n])
        layers = [lay for lay in self.layers if lay.Name in keep]
        lgraph = layerGraph(layers)
        auto = {}
        for prev, lay in zip(layers, layers[1:]):
            if lay.NUM_INPUTS >= 1:
                auto[(lay.Name, 0)] = prev.Name
        desired = {(lay.Name, k): src for lay in layers for k, src in enumerate(self.sources[lay.Name])}
        port = {lay.Name: lay.NUM_INPUTS for lay in layers}
        dst = lambda key: key[0] if port[key[0]] == 1 else f"{key[0]}/in{key[1] + 1}"  # noqa: E731
        for key, src in auto.items():
            if desired.get(key) != src:
                lgraph = disconnectLayers(lgraph, src, dst(key))
        for key, src in desired.items():
            if auto.get(key) != src:
                lgraph = connectLayers(lgraph, src, dst(key))
        return lgraph

    # ------------------------------------------------------------------ dispatch
    def _node(self, node):
        check_node(node, self.opset, self.where)
        op = node.op_type
        data_inputs = [i for i in node.input if i]
        constant = all(i in self.consts for i in data_inputs)
        folder = FOLDERS.get(op)
        claim = self.claimed(node)
        if claim is not None:
            if claim[0] is not node:            # translated with the group's last node
                return
            translator = claim[1]
        elif folder is not None and (constant or folder.of_shapes):
            return fold(self, node, folder)
        elif data_inputs and constant:
            raise OnnxImportError(f"{self.where(node)}: its inputs are all constants, but {escape(op)} is not "
                                  "evaluated at import (only the cheap shape operators are: "
                                  f"{', '.join(sorted(FOLDERS))})")
        else:
            translator = TRANSLATORS.get(op)
        if translator is None:
            raise OnnxImportError(f"{self.where(node)}: operator {escape(op)} is not supported; supported operators: "
                                  + ", ".join(supported_ops()))
        try:
            translator(self, node)
        except OnnxImportError:
            raise
        except CodegenError as exc:             # a layer refusing a property the node gave it
            raise OnnxImportError(f"{self.where(node)}: {exc}") from None

    # ------------------------------------------------------------------ helpers for translators
    @staticmethod
    def where(node) -> str:
        """How messages name ``node``: its name (else its first output) and op type, escaped."""
        label = node.name or (node.output[0] if len(node.output) else "")
        return f"ONNX node {quote(label)} ({escape(node.op_type, 40)}{pytorch_origin(node)})"

    def refuse(self, node, what: str, value, why: str):
        """Raise OnnxImportError: ``<node>: <what> is <value>; <why>``. ``what`` and ``why`` are our
        text (names in them through :func:`quote`); a value "'quoted'" is our text too, shown as is."""
        shown = value if isinstance(value, str) and value.startswith("'") else _show(value)
        raise OnnxImportError(f"{self.where(node)}: {what} is {shown}; {why}")

    def attrs(self, node) -> dict:
        """The node's attributes as Python values."""
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    def check_attrs(self, node, attrs: dict, allowed: set[str]):
        """Refuse any attribute outside ``allowed``."""
        for key in attrs:
            if key not in allowed:
                self.refuse(node, f"attribute {quote(key)}", attrs[key],
                            f"the importer does not handle it (handled: {', '.join(sorted(allowed)) or 'none'})")

    def tensor(self, node, k: int) -> OnnxTensor:
        """Input ``k`` of ``node``, which must be computed by the network."""
        name = node.input[k] if k < len(node.input) else ""
        if name in self.tensors:
            return self.tensors[name]
        if name in self.consts:
            self.refuse(node, f"input {k} ({quote(name)})", "'a constant'",
                        "this input must be computed from the graph input")
        raise OnnxImportError(f"{self.where(node)}: input {k} ({quote(name)}) is missing")

    def const(self, node, k: int, what: str, required: bool = True) -> np.ndarray | None:
        """Input ``k`` of ``node`` (called ``what`` in messages), which must be a constant."""
        name = node.input[k] if k < len(node.input) else ""
        if not name:
            if required:
                raise OnnxImportError(f"{self.where(node)}: input {k} ({what}) is missing")
            return None
        if name in self.consts:
            return self.consts[name]
        self.refuse(node, f"input {k} ({what}, {quote(name)})", "'computed at run time'",
                    "it must be a constant (an initializer or a Constant node)")

    def _const_what(self, node, k: int, what: str) -> str:
        return f"{self.where(node)}: input {k} ({what}, {quote(node.input[k])})"

    def weight(self, node, k: int, what: str, required: bool = True) -> np.ndarray | None:
        """Input ``k`` as float32 weights (:func:`~codegen.onnx.tensors.as_weights`: float16, bfloat16
        and float64 converted, integers refused)."""
        value = self.const(node, k, what, required)
        return None if value is None else as_weights(value, self._const_what(node, k, what))

    def scalar(self, node, k: int, what: str, required: bool = False):
        """Input ``k``, a constant of exactly one value, as a Python number (None if absent)."""
        value = self.const(node, k, what, required)
        if value is None:
            return None
        if np.size(value) != 1:
            raise OnnxImportError(f"{self._const_what(node, k, what)} has {np.size(value)} values; expected one "
                                  "(a scalar)")
        return np.asarray(value).ravel()[0].item()

    def ints(self, node, k: int, what: str, low: int = -MAX_DIM, high: int = MAX_DIM) -> list[int]:
        """Input ``k``, a constant of integers in [low, high] (a shape, axes), as a list."""
        return as_ints(self.const(node, k, what), self._const_what(node, k, what), low, high, MAX_RANK)

    def only_first_output(self, node):
        """Refuse a node whose outputs after the first are used."""
        for extra in node.output[1:]:
            if extra and self.consumers.get(extra, 0):
                self.refuse(node, f"output {quote(extra)}", "'used'",
                            f"only the first output of {node.op_type} is supported (inference)")

    def set(self, node, tensor: OnnxTensor, k: int = 0):
        """The node's output ``k`` (the first by default) is ``tensor``: no layer."""
        self.tensors[node.output[k]] = tensor

    def new(self, node, layer, inputs: list[OnnxTensor], kind: str, weights: dict | None = None,
            k: int = 0) -> OnnxTensor:
        """The node's output ``k`` is computed by the new ``layer`` from ``inputs`` (``weights``: property -> array)."""
        name = self._add_layer(layer, [t.layer for t in inputs], node, weights)
        t = OnnxTensor(name, self.shapes[name], kind)
        self.set(node, t, k)
        return t

    def layer_name(self, node, base: str, suffix: str = "") -> str:
        """A unique layer name for ``node`` (``'<base>_<k>'`` where the node has no usable name), followed
        by ``suffix`` for a second layer of one node."""
        label = node.name or (node.output[0] if node.output else "")
        return self._ident(label + suffix if label else "", base)


def _names(names) -> str:
    return ", ".join(quote(n) for n in names)


def _sanitize(text: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return re.sub(r"_+", "_", ident).strip("_")


def _compact(a: np.ndarray) -> np.ndarray:
    """An h x w x c statistic as a scalar or 1 x 1 x c where it does not vary over h and w."""
    a = np.asarray(a, np.float64)
    if np.all(a == a.flat[0]):
        return np.array(a.flat[0]).reshape(1, 1, 1).astype(np.float32)
    if np.all(a == a[:1, :1, :]):
        return np.ascontiguousarray(a[:1, :1, :], np.float32)
    return np.ascontiguousarray(a, np.float32)


def _show(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, (bytes, str)):
        return quote(value)
    return escape(value, 120)
