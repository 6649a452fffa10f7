"""Importing an ONNX model as a :class:`~codegen.Network`.

``import_onnx(path_or_model, name=None)`` maps an ONNX graph (default domain, opset 6 and
later; opset 6 only with its inference attributes, e.g. ``is_test=1``) onto our layers:

==========================================  =============================================
ONNX                                        layer
==========================================  =============================================
graph input (N, C, H, W)                    ``imageInputLayer([H W C], Normalization='none')``
graph input (N, K)                          ``imageInputLayer([1 1 K], Normalization='none')``
Conv (group 1 / group G)                    ``convolution2dLayer`` / ``groupedConvolution2dLayer``
BatchNormalization (inference)              ``batchNormalizationLayer``
Relu, LeakyRelu, Clip(0, max)               ``reluLayer``, ``leakyReluLayer``, ``clippedReluLayer``
MaxPool, GlobalMaxPool                      ``maxPooling2dLayer``
AveragePool                                 ``averagePooling2dLayer`` (count_include_pad 1 ->
                                            PaddingValue 0, 0 -> ``'mean'``)
GlobalAveragePool, ReduceMean over (H, W)   ``globalAveragePooling2dLayer``
Gemm, MatMul (+ Add of a constant)          ``fullyConnectedLayer``
Softmax over the channels                   ``softmaxLayer``
Add / Sum of tensors, Concat on channels    ``additionLayer``, ``depthConcatenationLayer``
Flatten, Reshape, Squeeze, Unsqueeze,       no layer: they change how the tensor is seen
Identity, Dropout (inference)
nodes whose inputs are all constants        evaluated at import (``Shape`` of a tensor too)
==========================================  =============================================

Layout: ONNX is NCHW, our networks are HWC. The conversion happens once, here: convolution
weights ``F x C/G x kh x kw`` become ``kh x kw x C x F`` (or ``kh x kw x C/G x F/G x G``),
pads ``[t l b r]`` become ``[t b l r]``, and a fully connected layer behind a Flatten of an
``N x C x H x W`` tensor gets its columns permuted so that MATLAB's column-major flatten of
``h x w x c`` reproduces ONNX's row-major flatten of ``c x h x w``. Weights are copied
bit-exact (float32). ``auto_pad`` SAME_UPPER/SAME_LOWER are resolved with ONNX's rule
(output ceil(in / stride), the dilated kernel, the odd pad after resp. before) into
explicit ``[t b l r]`` padding; pooling's ``ceil_mode`` becomes extra bottom/right padding
where our layers give the same result (max pooling, average pooling that ignores padding).

Anything else is refused with :class:`OnnxImportError`, whose message names the node, its
op and the attribute (or input) that cannot be expressed.

The returned network carries ``net.onnx`` (:class:`OnnxBinding`): the names of the ONNX
input and output and the conversions between ONNX's layout and ours
(``net.onnx.to_input(x_nchw)``, ``net.onnx.from_output(y_nhwc)``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CodegenError, UnsupportedError
from .graph import connectLayers, disconnectLayers, layerGraph
from .layers import (additionLayer, averagePooling2dLayer, batchNormalizationLayer, clippedReluLayer,
                     convolution2dLayer, depthConcatenationLayer, fullyConnectedLayer, globalAveragePooling2dLayer,
                     groupedConvolution2dLayer, imageInputLayer, leakyReluLayer, maxPooling2dLayer, reluLayer,
                     softmaxLayer)
from .network import Network

MIN_OPSET = 6
MATLAB_MIN_EPSILON = 1e-5
SUPPORTED_OPS = ("Conv", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "MaxPool", "AveragePool",
                 "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "Gemm", "MatMul", "Add", "Sum", "Softmax",
                 "Concat", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Constant",
                 "Sub", "Mul", "Div")


class OnnxImportError(UnsupportedError):
    """An ONNX model (or one of its nodes) that our layers cannot express."""


# ============================================================================ layout binding

@dataclass
class OnnxBinding:
    """How the ONNX model's input and output map onto the network's HWC tensors.

    ``output_kind``: ``'nchw'`` (ONNX N x C x H x W), ``'nc'`` (ONNX N x K; ours 1 x 1 x K) or
    ``'flat_chw'`` (ONNX N x C*H*W, row-major over C, H, W; ours H x W x C).
    """
    input_name: str
    input_rank: int                 # 4 (N, C, H, W) or 2 (N, K)
    output_name: str
    output_kind: str
    opset: int
    node_layers: dict = field(default_factory=dict)   # ONNX node name -> our layer name (where one was made)

    def to_input(self, x) -> np.ndarray:
        """An ONNX input (N, C, H, W) or (N, K) as our (N, H, W, C) float32 array."""
        x = np.asarray(x, np.float32)
        if self.input_rank == 2:
            return x.reshape(x.shape[0], 1, 1, x.shape[1])
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def from_output(self, y) -> np.ndarray:
        """Our output (N, H, W, C) in the ONNX model's layout."""
        y = np.asarray(y)
        if self.output_kind == "nchw":
            return np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        if self.output_kind == "nc":
            return y.reshape(y.shape[0], -1)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).reshape(y.shape[0], -1)


@dataclass
class _Tensor:
    """An ONNX tensor computed by the network: the layer holding it and how ONNX sees it."""
    layer: str
    shape: tuple            # our (H, W, C)
    kind: str               # 'nchw', 'nc' (ONNX N x K, ours 1 x 1 x K) or 'flat_chw' (ONNX N x C*H*W)

    def onnx_shape(self) -> tuple:
        h, w, c = self.shape
        if self.kind == "nchw":
            return (1, c, h, w)
        return (1, h * w * c)


# ============================================================================ entry point

def import_onnx(path_or_model, name: str | None = None) -> Network:
    """Import an ONNX model (a path, bytes or an ``onnx.ModelProto``) as a Network."""
    model, default_name = _load_model(path_or_model)
    return _Importer(model, name or default_name).run()


def _load_model(src):
    try:
        import onnx
    except ImportError:       # pragma: no cover - onnx is a test dependency
        raise OnnxImportError("importing ONNX needs the 'onnx' package: pip install onnx") from None
    if isinstance(src, onnx.ModelProto):
        return src, (src.graph.name or "onnx_model")
    if isinstance(src, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(src))
        except Exception as exc:  # noqa: BLE001 - a damaged model is the user's input
            raise OnnxImportError(f"cannot parse the ONNX model: {exc}") from None
        return model, (model.graph.name or "onnx_model")
    path = Path(src)
    if not path.exists():
        raise OnnxImportError(f"'{path}': no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise OnnxImportError(f"cannot read ONNX model '{path}': {exc}") from None
    return model, path.stem


def _sanitize(text: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return re.sub(r"_+", "_", ident).strip("_")


# ============================================================================ the importer

class _Importer:
    def __init__(self, model, name: str):
        import onnx
        from onnx import helper, numpy_helper
        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.model = model
        self.graph = model.graph
        self.name = name
        self.opset = self._default_opset()
        self.consts: dict[str, np.ndarray] = {}
        self.tensors: dict[str, _Tensor] = {}
        self.layers: list = []                      # in creation (topological) order
        self.sources: dict[str, list[str]] = {}     # layer name -> source layer names
        self.shapes: dict[str, tuple] = {}          # layer name -> (H, W, C)
        self.weights: dict[str, np.ndarray] = {}    # 'layer/Prop' -> array
        self.used_idents: set[str] = set()
        self.node_layers: dict[str, str] = {}
        self.consumers: dict[str, int] = {}

    # ------------------------------------------------------------------ model level
    def _default_opset(self) -> int:
        version = None
        for imp in self.model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                version = imp.version
        if version is None:
            raise OnnxImportError("the ONNX model imports no version of the default operator set (ai.onnx)")
        if version < MIN_OPSET:
            raise OnnxImportError(f"the ONNX model uses opset {version}; opset {MIN_OPSET} or later is supported "
                                  "(convert it with onnx.version_converter)")
        return version

    def run(self) -> Network:
        graph = self.graph
        for init in graph.initializer:
            self.consts[init.name] = self._array(init)
        if len(graph.sparse_initializer):
            raise OnnxImportError("the ONNX model has sparse initializers, which are not supported")
        if len(graph.output) != 1:
            raise OnnxImportError(f"the ONNX graph has {len(graph.output)} outputs "
                                  f"({', '.join(o.name for o in graph.output)}); exactly one is supported")
        output = graph.output[0].name
        nodes = self._needed_nodes(output)
        for node in nodes:
            for i in node.input:
                self.consumers[i] = self.consumers.get(i, 0) + 1
        self.consumers[output] = self.consumers.get(output, 0) + 1
        self._input(set(self.consumers))
        for node in nodes:
            self._node(node)
        if output in self.consts:
            raise OnnxImportError(f"the graph output '{output}' is a constant: the model computes nothing from its "
                                  "input")
        if output not in self.tensors:
            raise OnnxImportError(f"the graph output '{output}' is not computed by any node")
        out = self.tensors[output]
        self._input_normalization()
        lgraph = self._layer_graph(out.layer)
        try:
            net = Network(lgraph, seed=0, weights=self.weights, name=self.name)
        except CodegenError as exc:
            raise OnnxImportError(f"the imported network is invalid: {exc}") from None
        net.onnx = OnnxBinding(self.input_name, self.input_rank, output, out.kind, self.opset, dict(self.node_layers))
        return net

    def _needed_nodes(self, output: str) -> list:
        """The nodes the graph output depends on, in graph order (checked to be topological)."""
        producer = {}
        for idx, node in enumerate(self.graph.node):
            for o in node.output:
                if o:
                    producer[o] = idx
        needed, stack = set(), [output]
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
                    raise OnnxImportError(f"{self._where(node)}: input '{i}' is produced by no earlier node "
                                          "(the graph is not in topological order, or the input is missing)")
            known.update(o for o in node.output if o)
            nodes.append(node)
        return nodes

    def _array(self, tensor) -> np.ndarray:
        arr = self.numpy_helper.to_array(tensor)
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        return arr

    def _input(self, used: set[str]):
        """The image input: the one graph input, not an initializer, that the output depends on."""
        inputs = [i for i in self.graph.input if i.name not in self.consts and i.name in used]
        if len(inputs) != 1:
            names = ", ".join(f"'{i.name}'" for i in inputs) or "none"
            raise OnnxImportError(f"the ONNX graph has {len(inputs)} inputs that are not initializers ({names}); "
                                  "exactly one (the image) is supported")
        inp = inputs[0]
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type"):
            raise OnnxImportError(f"graph input '{inp.name}' is not a tensor")
        if tt.elem_type != self.onnx.TensorProto.FLOAT:
            dtype = self.onnx.TensorProto.DataType.Name(tt.elem_type)
            raise OnnxImportError(f"graph input '{inp.name}' has element type {dtype}; only FLOAT (float32) is "
                                  "supported")
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        if len(dims) not in (2, 4):
            raise OnnxImportError(f"graph input '{inp.name}' has shape {dims} (rank {len(dims)}); supported are "
                                  "N x C x H x W images and N x K vectors")
        for k, d in enumerate(dims[1:], start=1):
            if not isinstance(d, int) or d <= 0:
                raise OnnxImportError(f"graph input '{inp.name}' has shape {dims}: dimension {k} is not fixed; "
                                      "C, H and W must be known numbers")
        if len(dims) == 4:
            _, c, h, w = dims
            shape, kind = (h, w, c), "nchw"
        else:
            shape, kind = (1, 1, dims[1]), "nc"
        self.input_name, self.input_rank = inp.name, len(dims)
        self.batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None   # a fixed batch size
        lay = imageInputLayer(list(shape), Normalization="none", Name=self._ident(inp.name, "input"))
        self._add_layer(lay, [], None)
        self.input_layer = lay.Name
        self.norm = (np.zeros((1, 1, 1)), np.ones((1, 1, 1)))      # y = (x - Mean) / StandardDeviation
        self.tensors[inp.name] = _Tensor(lay.Name, shape, kind)

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
            raise OnnxImportError(f"{self._where(node)}: cannot be expressed as {layer.FUNCTION}: {exc}") from None
        self.layers.append(layer)
        self.sources[layer.Name] = list(sources)
        self.shapes[layer.Name] = shape
        for prop, value in (weights or {}).items():
            self.weights[f"{layer.Name}/{prop}"] = value
        if node is not None and node.name:
            self.node_layers[node.name] = layer.Name
        return layer.Name

    def _layer_graph(self, last: str):
        """A layerGraph of the layers (pruned to those ``last`` depends on), with our connections."""
        keep, stack = set(), [last]
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

    # ------------------------------------------------------------------ node helpers
    @staticmethod
    def _where(node) -> str:
        return f"ONNX node '{node.name or node.output[0]}' ({node.op_type})"

    def _refuse(self, node, what: str, value, why: str):
        shown = value if isinstance(value, str) and value.startswith("'") else _show(value)
        raise OnnxImportError(f"{self._where(node)}: {what} is {shown}; {why}")

    def _attrs(self, node) -> dict:
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    def _check_attrs(self, node, attrs: dict, allowed: set[str]):
        for key in attrs:
            if key not in allowed:
                self._refuse(node, f"attribute '{key}'", attrs[key],
                             f"the importer does not handle it (handled: {', '.join(sorted(allowed)) or 'none'})")

    def _tensor(self, node, k: int) -> _Tensor:
        name = node.input[k] if k < len(node.input) else ""
        if name in self.tensors:
            return self.tensors[name]
        if name in self.consts:
            self._refuse(node, f"input {k} ('{name}')", "'a constant'",
                         "this input must be computed from the graph input")
        raise OnnxImportError(f"{self._where(node)}: input {k} ('{name}') is missing")

    def _const(self, node, k: int, what: str, required: bool = True) -> np.ndarray | None:
        name = node.input[k] if k < len(node.input) else ""
        if not name:
            if required:
                raise OnnxImportError(f"{self._where(node)}: input {k} ({what}) is missing")
            return None
        if name in self.consts:
            return self.consts[name]
        self._refuse(node, f"input {k} ({what}, '{name}')", "'computed at run time'",
                     "it must be a constant (an initializer or a Constant node)")

    def _only_first_output(self, node):
        for extra in node.output[1:]:
            if extra and self.consumers.get(extra, 0):
                self._refuse(node, f"output '{extra}'", "'used'",
                             f"only the first output of {node.op_type} is supported (inference)")

    def _set(self, node, tensor: _Tensor):
        self.tensors[node.output[0]] = tensor

    def _new(self, node, layer, inputs: list[_Tensor], kind: str, weights: dict | None = None) -> _Tensor:
        name = self._add_layer(layer, [t.layer for t in inputs], node, weights)
        t = _Tensor(name, self.shapes[name], kind)
        self._set(node, t)
        return t

    def _name(self, node, base: str) -> str:
        return self._ident(node.name or (node.output[0] if node.output else ""), base)

    # ------------------------------------------------------------------ dispatch
    def _node(self, node):
        if node.domain not in ("", "ai.onnx"):
            raise OnnxImportError(f"{self._where(node)}: operator domain '{node.domain}' is not supported "
                                  "(only the default ONNX domain)")
        op = node.op_type
        if op == "Constant":
            return self._constant(node)
        data_inputs = [i for i in node.input if i]
        if op == "Shape" and data_inputs and data_inputs[0] in self.tensors:
            return self._shape(node)
        if data_inputs and all(i in self.consts for i in data_inputs):
            return self._fold(node)
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise OnnxImportError(f"{self._where(node)}: operator {op} is not supported; supported operators: "
                                  + ", ".join(SUPPORTED_OPS))
        handler(node)

    # ------------------------------------------------------------------ constants
    def _constant(self, node):
        attrs = self._attrs(node)
        if "value" in attrs:
            value = self._array(attrs["value"])
        elif "value_float" in attrs:
            value = np.array(attrs["value_float"], np.float32)
        elif "value_floats" in attrs:
            value = np.array(attrs["value_floats"], np.float32)
        elif "value_int" in attrs:
            value = np.array(attrs["value_int"], np.int64)
        elif "value_ints" in attrs:
            value = np.array(attrs["value_ints"], np.int64)
        else:
            self._refuse(node, "attribute", sorted(attrs), "supported: value, value_float(s), value_int(s)")
        self.consts[node.output[0]] = value

    def _shape(self, node):
        attrs = self._attrs(node)
        shape = np.array(self.tensors[node.input[0]].onnx_shape(), np.int64)
        start, end = attrs.get("start", 0), attrs.get("end", None)
        self.consts[node.output[0]] = shape[start:end]

    def _fold(self, node):
        """Evaluate a node whose inputs are all constants with ONNX's reference evaluator."""
        from onnx.reference import ReferenceEvaluator
        helper = self.helper
        names = [i for i in node.input if i]
        inputs = [helper.make_tensor_value_info(n, self._elem_type(self.consts[n]), None) for n in names]
        outputs = [helper.make_tensor_value_info(o, self.onnx.TensorProto.UNDEFINED, None) for o in node.output if o]
        graph = helper.make_graph([node], "fold", inputs, outputs)
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        model.ir_version = self.model.ir_version or model.ir_version
        try:
            values = ReferenceEvaluator(model).run(None, {n: self.consts[n] for n in names})
        except Exception as exc:  # noqa: BLE001 - report which node could not be evaluated
            raise OnnxImportError(f"{self._where(node)}: its inputs are constants, but evaluating it at import "
                                  f"failed: {exc}") from None
        for o, v in zip([o for o in node.output if o], values):
            self.consts[o] = np.asarray(v)

    def _elem_type(self, arr: np.ndarray) -> int:
        return self.helper.np_dtype_to_tensor_dtype(np.asarray(arr).dtype)

    # ------------------------------------------------------------------ pass-through
    def _op_Identity(self, node):  # noqa: N802
        self._set(node, self._tensor(node, 0))

    def _op_Dropout(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"ratio", "seed", "is_test"})
        if self.opset < 7 and attrs.get("is_test", 0) != 1:
            self._refuse(node, "attribute 'is_test'", attrs.get("is_test", 0),
                         "only inference (is_test=1) is supported")
        if len(node.input) > 2 and node.input[2]:
            mode = self._const(node, 2, "training_mode")
            if bool(np.asarray(mode).ravel()[0]):
                self._refuse(node, "input 'training_mode'", "'true'", "only inference is supported")
        self._only_first_output(node)
        self._set(node, self._tensor(node, 0))

    # ------------------------------------------------------------------ convolution
    def _op_Conv(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
        x = self._tensor(node, 0)
        if x.kind != "nchw":
            self._refuse(node, "input 0", "'a 2-D tensor'", "Conv needs an N x C x H x W input")
        w = self._const(node, 1, "W")
        if w.ndim != 4:
            self._refuse(node, "input 1 (W)", f"'{w.ndim - 2}-D'", "only 2-D convolutions are supported")
        b = self._const(node, 2, "B", required=False)
        h, wd, c = x.shape
        f, cg, kh, kw = w.shape
        kernel = attrs.get("kernel_shape", [kh, kw])
        if list(kernel) != [kh, kw]:
            self._refuse(node, "attribute 'kernel_shape'", kernel, f"it differs from W's kernel {kh}x{kw}")
        g = attrs.get("group", 1)
        if g < 1 or c != cg * g or f % g:
            self._refuse(node, "attribute 'group'", g,
                         f"the input has {c} channels and W is {f}x{cg}x{kh}x{kw}; need C = {cg} * group and "
                         "F divisible by group")
        strides = _pair(node, self, attrs, "strides")
        dil = _pair(node, self, attrs, "dilations")
        eff = ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1)
        pads = self._pads(node, attrs, (h, wd), eff, strides)
        fg = f // g
        name = self._name(node, "conv")
        bias = np.zeros(f, np.float32) if b is None else np.asarray(b, np.float32).reshape(f)
        opts = dict(Stride=strides, DilationFactor=dil, Padding=pads, Name=name)
        if g == 1:
            layer = convolution2dLayer([kh, kw], f, **opts)
            weights = {"Weights": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "Bias": bias.reshape(1, 1, f)}
        else:
            layer = groupedConvolution2dLayer([kh, kw], fg, g, **opts)
            wg = w.reshape(g, fg, cg, kh, kw).transpose(3, 4, 2, 1, 0)        # kh x kw x C/G x F/G x G
            weights = {"Weights": np.ascontiguousarray(wg), "Bias": bias.reshape(g, fg).T.reshape(1, 1, fg, g)}
        self._new(node, layer, [x], "nchw", weights)

    def _pads(self, node, attrs, in_hw, kernel, strides) -> list[int]:
        """[t b l r] from auto_pad / pads (ONNX order [t l b r]); SAME_* with ONNX's rule."""
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if "pads" in attrs and any(attrs["pads"]):
                self._refuse(node, "attribute 'pads'", attrs["pads"], f"pads cannot be given with auto_pad={auto}")
            out = []
            for n, k, s in zip(in_hw, kernel, strides):
                o = -(-n // s)
                total = max(0, (o - 1) * s + k - n)
                small = total // 2
                out += [total - small, small] if auto == "SAME_LOWER" else [small, total - small]
            return out
        if auto == "VALID":
            return [0, 0, 0, 0]
        if auto != "NOTSET":
            self._refuse(node, "attribute 'auto_pad'", f"'{auto}'", "expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4 or min(pads) < 0:
            self._refuse(node, "attribute 'pads'", pads, "expected 4 nonnegative values [top left bottom right]")
        t, left, bottom, r = pads
        return [t, bottom, left, r]

    # ------------------------------------------------------------------ normalization
    def _op_BatchNormalization(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"epsilon", "momentum", "spatial", "is_test", "training_mode",
                                        "consumed_inputs"})
        if attrs.get("training_mode", 0):
            self._refuse(node, "attribute 'training_mode'", attrs["training_mode"], "only inference is supported")
        if self.opset < 7 and attrs.get("is_test", 0) != 1:
            self._refuse(node, "attribute 'is_test'", attrs.get("is_test", 0), "only inference (is_test=1) is "
                         "supported")
        if attrs.get("spatial", 1) != 1:
            self._refuse(node, "attribute 'spatial'", attrs["spatial"], "only per-channel statistics (spatial=1) "
                         "are supported")
        self._only_first_output(node)
        x = self._tensor(node, 0)
        if x.kind == "flat_chw":
            self._refuse(node, "input 0", "'a flattened image'", "batch normalization needs channels")
        c = x.shape[2]
        arrays = []
        for k, what in enumerate(["scale", "B", "mean", "var"], start=1):
            v = np.asarray(self._const(node, k, what), np.float32)
            if v.size != c:
                self._refuse(node, f"input {k} ({what})", f"'of {v.size} values'", f"the input has {c} channels")
            arrays.append(v.reshape(1, 1, c))
        scale, offset, mean, var = arrays
        eps = float(attrs.get("epsilon", 1e-5))
        if eps < MATLAB_MIN_EPSILON:
            # MATLAB's minimum Epsilon is 1e-5. ONNX's default 1e-5 arrives as float32
            # (9.9999997e-06): the difference (2.5e-13) is far below float32 resolution.
            if MATLAB_MIN_EPSILON - eps > 1e-12:
                shifted = var.astype(np.float64) + (eps - MATLAB_MIN_EPSILON)
                if np.any(shifted < 0):
                    self._refuse(node, "attribute 'epsilon'", eps, "epsilon below 1e-5 (MATLAB's minimum) with a "
                                 "variance this small cannot be expressed")
                var = shifted.astype(np.float32)
            eps = MATLAB_MIN_EPSILON
        if np.any(var < 0):
            self._refuse(node, "input 4 (var)", "'negative'", "variances must be nonnegative")
        layer = batchNormalizationLayer(Epsilon=eps, Name=self._name(node, "batchnorm"))
        self._new(node, layer, [x], x.kind,
                  {"TrainedMean": mean, "TrainedVariance": var, "Scale": scale, "Offset": offset})

    # ------------------------------------------------------------------ activations
    def _op_Relu(self, node):  # noqa: N802
        self._check_attrs(node, self._attrs(node), {"consumed_inputs"})
        x = self._tensor(node, 0)
        self._new(node, reluLayer(Name=self._name(node, "relu")), [x], x.kind)

    def _op_LeakyRelu(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"alpha", "consumed_inputs"})
        x = self._tensor(node, 0)
        layer = leakyReluLayer(float(attrs.get("alpha", 0.01)), Name=self._name(node, "leakyrelu"))
        self._new(node, layer, [x], x.kind)

    def _op_Clip(self, node):  # noqa: N802
        attrs = self._attrs(node)
        x = self._tensor(node, 0)
        if self.opset < 11:
            self._check_attrs(node, attrs, {"min", "max", "consumed_inputs"})
            lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
        else:
            self._check_attrs(node, attrs, set())
            lo_c = self._const(node, 1, "min", required=False)
            hi_c = self._const(node, 2, "max", required=False)
            lo = -np.inf if lo_c is None else float(np.asarray(lo_c).ravel()[0])
            hi = np.inf if hi_c is None else float(np.asarray(hi_c).ravel()[0])
        if lo != 0:
            self._refuse(node, "min", lo, "only Clip(min=0, max>0) is supported (clippedReluLayer / reluLayer)")
        if not hi > 0:
            self._refuse(node, "max", hi, "only Clip(min=0, max>0) is supported (clippedReluLayer / reluLayer)")
        if hi >= 3.0e38:        # no upper bound (float32 max or inf): a ReLU
            layer = reluLayer(Name=self._name(node, "relu"))
        else:
            layer = clippedReluLayer(hi, Name=self._name(node, "clippedrelu"))
        self._new(node, layer, [x], x.kind)

    def _op_Softmax(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"axis"})
        x = self._tensor(node, 0)
        axis = attrs.get("axis", 1 if self.opset < 13 else -1)
        rank = 4 if x.kind == "nchw" else 2
        if not -rank <= axis < rank:
            self._refuse(node, "attribute 'axis'", axis, f"the input has rank {rank}")
        axis %= rank
        h, w, _ = x.shape
        if x.kind == "flat_chw":
            ok = False
        elif rank == 2:
            ok = axis == 1
        elif self.opset < 13:      # softmax over the flattened dimensions axis..end
            ok = axis == 1 and h == 1 and w == 1
        else:
            ok = axis == 1
        if not ok:
            self._refuse(node, "attribute 'axis'", attrs.get("axis", "the default"),
                         "only a softmax over the channels is supported (softmaxLayer)")
        self._new(node, softmaxLayer(Name=self._name(node, "softmax")), [x], x.kind)

    # ------------------------------------------------------------------ pooling
    def _pool_common(self, node, attrs, x: _Tensor):
        if x.kind != "nchw":
            self._refuse(node, "input 0", "'a 2-D tensor'", f"{node.op_type} needs an N x C x H x W input")
        kernel = list(attrs.get("kernel_shape", []))
        if len(kernel) != 2:
            self._refuse(node, "attribute 'kernel_shape'", kernel, "only 2-D pooling is supported")
        dil = list(attrs.get("dilations", [1, 1]))
        if dil != [1, 1]:
            self._refuse(node, "attribute 'dilations'", dil, "pooling layers have no dilation")
        strides = _pair(node, self, attrs, "strides")
        h, w, _ = x.shape
        pads = self._pads(node, attrs, (h, w), kernel, strides)
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        extra = [0, 0]
        if attrs.get("ceil_mode", 0) and auto == "NOTSET":
            for dim, (n, k, s) in enumerate(zip((h, w), kernel, strides)):
                begin, end = pads[2 * dim], pads[2 * dim + 1]
                out = math.ceil((n + begin + end - k) / s) + 1
                if (out - 1) * s >= n + begin:         # the last window must start inside the image
                    out -= 1
                extra[dim] = max(0, (out - 1) * s + k - (n + begin + end))
        return kernel, strides, pads, extra

    def _op_MaxPool(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides",
                                        "storage_order"})
        self._only_first_output(node)
        x = self._tensor(node, 0)
        kernel, strides, pads, extra = self._pool_common(node, attrs, x)
        pads = [pads[0], pads[1] + extra[0], pads[2], pads[3] + extra[1]]
        layer = maxPooling2dLayer(kernel, Stride=strides, Padding=pads, Name=self._name(node, "maxpool"))
        self._new(node, layer, [x], "nchw")

    def _op_AveragePool(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape",
                                        "pads", "strides"})
        x = self._tensor(node, 0)
        kernel, strides, pads, extra = self._pool_common(node, attrs, x)
        include = attrs.get("count_include_pad", 0)
        if include and any(extra):
            self._refuse(node, "attribute 'ceil_mode'", attrs["ceil_mode"],
                         "with count_include_pad=1 the last window, which extends past the padding, averages over "
                         "fewer elements than the pool size; averagePooling2dLayer cannot express that")
        pads = [pads[0], pads[1] + extra[0], pads[2], pads[3] + extra[1]]
        layer = averagePooling2dLayer(kernel, Stride=strides, Padding=pads, PaddingValue=0 if include else "mean",
                                      Name=self._name(node, "avgpool"))
        self._new(node, layer, [x], "nchw")

    def _op_GlobalAveragePool(self, node):  # noqa: N802
        self._check_attrs(node, self._attrs(node), set())
        x = self._tensor(node, 0)
        if x.kind != "nchw":
            self._refuse(node, "input 0", "'a 2-D tensor'", "GlobalAveragePool needs an N x C x H x W input")
        self._new(node, globalAveragePooling2dLayer(Name=self._name(node, "gapool")), [x], "nchw")

    def _op_GlobalMaxPool(self, node):  # noqa: N802
        self._check_attrs(node, self._attrs(node), set())
        x = self._tensor(node, 0)
        if x.kind != "nchw":
            self._refuse(node, "input 0", "'a 2-D tensor'", "GlobalMaxPool needs an N x C x H x W input")
        h, w, _ = x.shape
        self._new(node, maxPooling2dLayer([h, w], Name=self._name(node, "gmaxpool")), [x], "nchw")

    def _op_ReduceMean(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"axes", "keepdims", "noop_with_empty_axes"})
        x = self._tensor(node, 0)
        if "axes" in attrs:
            axes = list(attrs["axes"])
        elif len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in np.asarray(self._const(node, 1, "axes")).ravel()]
        else:
            axes = None
        rank = 4 if x.kind == "nchw" else 2
        if axes is None or x.kind != "nchw" or sorted(a % rank for a in axes) != [2, 3]:
            self._refuse(node, "axes", axes if axes is not None else "'all'",
                         "only a mean over H and W (axes [2, 3]) of an N x C x H x W tensor is supported "
                         "(globalAveragePooling2dLayer)")
        keep = attrs.get("keepdims", 1)
        self._new(node, globalAveragePooling2dLayer(Name=self._name(node, "gapool")), [x], "nchw" if keep else "nc")

    # ------------------------------------------------------------------ fully connected
    def _fc(self, node, x: _Tensor, w_onnx: np.ndarray, bias: np.ndarray):
        """A fully connected layer computing y = W x + b with ONNX's W (N x K) on ONNX's 2-D x."""
        n_out, k = w_onnx.shape
        h, w, c = x.shape
        if x.kind == "nchw":
            self._refuse(node, "input 0", "'an N x C x H x W tensor'", f"{node.op_type} needs a 2-D input "
                         "(Flatten it first)")
        if k != h * w * c:
            self._refuse(node, "the weight matrix", f"'{n_out}x{k}'", f"the input has {h * w * c} features")
        if x.kind == "flat_chw":
            # ONNX column index c*H*W + h*W + w; MATLAB's flatten of h x w x c: h + H*(w + W*c)
            weights = w_onnx.reshape(n_out, c, h, w).transpose(0, 1, 3, 2).reshape(n_out, k)
        else:
            weights = w_onnx
        layer = fullyConnectedLayer(n_out, Name=self._name(node, "fc"))
        self._new(node, layer, [x], "nc", {"Weights": np.ascontiguousarray(weights, np.float32),
                                          "Bias": np.asarray(bias, np.float32).reshape(n_out, 1)})

    def _op_Gemm(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"alpha", "beta", "transA", "transB", "broadcast"})
        if attrs.get("transA", 0):
            self._refuse(node, "attribute 'transA'", attrs["transA"], "the input must not be transposed")
        x = self._tensor(node, 0)
        b = np.asarray(self._const(node, 1, "B"), np.float32)
        if b.ndim != 2:
            self._refuse(node, "input 1 (B)", f"'{b.ndim}-D'", "expected a matrix")
        w = b if attrs.get("transB", 0) else b.T
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        if alpha != 1.0:
            w = (w * np.float32(alpha)).astype(np.float32)
        n_out = w.shape[0]
        c = self._const(node, 2, "C", required=False)
        bias = np.zeros(n_out, np.float32)
        if c is not None:
            c = np.asarray(c, np.float32)
            if c.size not in (1, n_out) or (c.ndim == 2 and c.shape[0] != 1):
                self._refuse(node, "input 2 (C)", f"'of shape {list(c.shape)}'",
                             f"only a bias shared by every row (1 or {n_out} values) is supported")
            bias = np.broadcast_to(c.ravel(), (n_out,)).astype(np.float32)
            if beta != 1.0:
                bias = (bias * np.float32(beta)).astype(np.float32)
        self._fc(node, x, np.ascontiguousarray(w), bias)

    def _op_MatMul(self, node):  # noqa: N802
        x = self._tensor(node, 0)
        b = np.asarray(self._const(node, 1, "B"), np.float32)
        if b.ndim != 2:
            self._refuse(node, "input 1 (B)", f"'{b.ndim}-D'", "only a constant matrix B (K x N) is supported")
        self._fc(node, x, np.ascontiguousarray(b.T), np.zeros(b.shape[1], np.float32))

    # ------------------------------------------------------------------ combining
    def _op_Add(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"broadcast", "axis", "consumed_inputs"})
        names = list(node.input)
        consts = [n for n in names if n in self.consts]
        if len(consts) == 1:
            if self._is_input(node, names):
                return self._normalization(node, "Add")
            return self._add_bias(node, names)
        self._combine(node, [self._tensor(node, k) for k in range(len(names))], "Add")

    def _op_Sum(self, node):  # noqa: N802
        self._check_attrs(node, self._attrs(node), {"consumed_inputs"})
        xs = [self._tensor(node, k) for k in range(len(node.input))]
        if len(xs) == 1:
            return self._set(node, xs[0])
        self._combine(node, xs, "Sum")

    def _combine(self, node, xs: list[_Tensor], op: str):
        first = xs[0]
        for k, t in enumerate(xs[1:], start=1):
            if t.kind != first.kind or t.shape != first.shape:
                self._refuse(node, f"input {k}", f"'of shape {list(t.onnx_shape())}'",
                             f"input 0 is {list(first.onnx_shape())}; only tensors of equal shape can be added "
                             "(no broadcasting)")
        self._new(node, additionLayer(len(xs), Name=self._name(node, "addition")), xs, first.kind)

    def _add_bias(self, node, names):
        """Add(x, constant): folded into the bias of the fully connected layer producing x."""
        k = 0 if names[0] not in self.consts else 1
        x = self._tensor(node, k)
        const = np.asarray(self.consts[names[1 - k]], np.float32)
        layer = self.layers[-1] if self.layers else None
        fc_ok = (layer is not None and layer.Name == x.layer and layer.FUNCTION == "fullyConnectedLayer"
                 and self.consumers.get(names[k], 0) == 1 and x.kind == "nc")
        n_out = x.shape[2]
        if not fc_ok or const.size not in (1, n_out) or (const.ndim >= 2 and const.shape[0] != 1):
            self._refuse(node, f"input {1 - k} ('{names[1 - k]}')", "'a constant'",
                         "adding a constant is supported only as the bias of a preceding MatMul/Gemm")
        key = f"{x.layer}/Bias"
        self.weights[key] = (self.weights[key].ravel() + np.broadcast_to(const.ravel(), (n_out,))).astype(
            np.float32).reshape(n_out, 1)
        self._set(node, x)

    # ------------------------------------------------------------------ input normalization
    def _is_input(self, node, names) -> bool:
        """Whether ``node`` applies a constant to the (normalized) graph input, used only here."""
        tensors = [n for n in names if n not in self.consts]
        if len(tensors) != 1 or tensors[0] not in self.tensors:
            return False
        t = self.tensors[tensors[0]]
        if t.layer != self.input_layer or t.kind == "flat_chw":
            return False
        # the normalization must be the only path from the input: every name of the input so
        # far (the input, Identity outputs, earlier normalization steps) has this one reader
        aliases = [name for name, other in self.tensors.items() if other.layer == self.input_layer]
        return (all(self.consumers.get(a, 0) == 1 for a in aliases)
                and not any(self.input_layer in srcs for srcs in self.sources.values()))

    def _op_Sub(self, node):  # noqa: N802
        self._elementwise_const(node, "Sub")

    def _op_Mul(self, node):  # noqa: N802
        self._elementwise_const(node, "Mul")

    def _op_Div(self, node):  # noqa: N802
        self._elementwise_const(node, "Div")

    def _elementwise_const(self, node, op):
        names = list(node.input)
        if sum(n in self.consts for n in names) != 1 or not self._is_input(node, names):
            k = next((i for i, n in enumerate(names) if n not in self.consts), 0)
            t = self.tensors.get(names[k])
            what = ("'the graph input, which is also used elsewhere'" if t is not None and t.layer == self.input_layer
                    else "'a tensor computed by the network'")
            self._refuse(node, f"input {k} ('{names[k]}')", what,
                         f"{op} is supported only as input normalization: a constant applied to the graph input "
                         "before any other use")
        self._normalization(node, op)

    def _normalization(self, node, op):
        """Sub/Add/Mul/Div of a constant on the graph input: y = (x - Mean) / StandardDeviation."""
        self._check_attrs(node, self._attrs(node), {"broadcast", "axis", "consumed_inputs"})
        names = list(node.input)
        k = 0 if names[0] not in self.consts else 1
        x = self._tensor(node, k)
        const = np.asarray(self.consts[names[1 - k]], np.float64)
        if k == 1 and op in ("Sub", "Div"):
            self._refuse(node, "input 0", "'a constant'", f"only x {'-' if op == 'Sub' else '/'} constant is "
                         "supported as input normalization")
        onnx_shape = x.onnx_shape()
        try:
            full = np.broadcast_to(const, onnx_shape)[0]
        except ValueError:
            self._refuse(node, f"input {1 - k}", f"'of shape {list(const.shape)}'",
                         f"it does not broadcast to the input {list(onnx_shape)}")
        hwc = full.transpose(1, 2, 0) if full.ndim == 3 else full.reshape(1, 1, -1)
        mean, std = self.norm
        if op == "Sub":
            mean = mean + hwc * std
        elif op == "Add":
            mean = mean - hwc * std
        else:
            factor = hwc if op == "Div" else 1.0 / hwc
            if not np.all(factor > 0) or not np.all(np.isfinite(factor)):
                self._refuse(node, f"input {1 - k}", "'not positive'", f"input normalization needs a positive "
                             f"{'divisor' if op == 'Div' else 'factor'}")
            std = std * factor
        self.norm = (mean, std)
        self._set(node, x)

    def _input_normalization(self):
        """Replace the input layer by one with the accumulated normalization."""
        mean, std = self.norm
        if not np.any(mean) and np.all(std == 1):
            return
        lay = self.layers[0]
        stat = lambda a: _compact(np.broadcast_to(a, lay.InputSize))   # noqa: E731
        if np.all(std == 1):
            new = imageInputLayer(lay.InputSize, Normalization="zerocenter", Mean=stat(mean), Name=lay.Name)
        else:
            new = imageInputLayer(lay.InputSize, Normalization="zscore", Mean=stat(mean), StandardDeviation=stat(std),
                                  Name=lay.Name)
        self.layers[0] = new

    def _op_Concat(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"axis"})
        xs = [self._tensor(node, k) for k in range(len(node.input))]
        first = xs[0]
        rank = 4 if first.kind == "nchw" else 2
        axis = attrs.get("axis", 1)
        if not -rank <= axis < rank or axis % rank != 1:
            self._refuse(node, "attribute 'axis'", axis, "only concatenation along the channels (axis 1) is "
                         "supported (depthConcatenationLayer)")
        for k, t in enumerate(xs):
            if t.kind not in ("nchw", "nc") or t.kind != first.kind:
                self._refuse(node, f"input {k}", f"'of shape {list(t.onnx_shape())}'",
                             "all inputs must be N x C x H x W (or all N x K) tensors")
        if len(xs) == 1:
            return self._set(node, first)
        self._new(node, depthConcatenationLayer(len(xs), Name=self._name(node, "depthcat")), xs, first.kind)

    # ------------------------------------------------------------------ views (no layer)
    def _op_Flatten(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"axis"})
        x = self._tensor(node, 0)
        rank = 4 if x.kind == "nchw" else 2
        axis = attrs.get("axis", 1)
        if axis % rank != 1 if -rank <= axis <= rank else True:
            self._refuse(node, "attribute 'axis'", axis, "only Flatten(axis=1), keeping the batch, is supported")
        self._set(node, self._flat(x))

    @staticmethod
    def _flat(x: _Tensor) -> _Tensor:
        if x.kind != "nchw":
            return x
        h, w, _ = x.shape
        return _Tensor(x.layer, x.shape, "nc" if h == 1 and w == 1 else "flat_chw")

    def _op_Reshape(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"allowzero", "shape"})
        x = self._tensor(node, 0)
        if self.opset < 5 or "shape" in attrs:
            target = list(attrs.get("shape", []))
        else:
            target = [int(v) for v in np.asarray(self._const(node, 1, "shape")).ravel()]
        src = list(x.onnx_shape())
        resolved = [src[i] if (v == 0 and not attrs.get("allowzero", 0) and i < len(src)) else v
                    for i, v in enumerate(target)]
        if resolved and self.batch and resolved[0] == self.batch:
            resolved[0] = 1        # a model exported with a fixed batch: we compute one image at a time
        total = int(np.prod(src))
        if resolved.count(-1) == 1:
            known = int(np.prod([v for v in resolved if v != -1]))
            resolved[resolved.index(-1)] = total // known if known else 0
        if int(np.prod(resolved)) != total or resolved[:1] != [1]:
            self._refuse(node, "the target shape", target, f"reshaping {src} must keep the batch dimension "
                         "and every element")
        self._set(node, self._view(node, x, resolved, "target shape"))

    def _view(self, node, x: _Tensor, shape: list[int], what: str) -> _Tensor:
        """``x`` seen with ONNX shape ``shape`` (batch first), where that needs no data movement."""
        h, w, c = x.shape
        if shape == list(x.onnx_shape()):
            return x
        if len(shape) == 2:
            if x.kind == "nchw":
                return self._flat(x)
            return x            # nc / flat_chw: already N x K
        if len(shape) == 4 and shape[2:] == [1, 1] and (x.kind == "nc" or (x.kind == "nchw" and h == w == 1)):
            return _Tensor(x.layer, (1, 1, h * w * c), "nchw")
        self._refuse(node, what, shape, f"from {list(x.onnx_shape())}: only flattening to N x K (or N x K x 1 x 1) "
                     "is supported")

    def _axes(self, node, attrs) -> list[int] | None:
        if "axes" in attrs:
            return list(attrs["axes"])
        if len(node.input) > 1 and node.input[1]:
            return [int(a) for a in np.asarray(self._const(node, 1, "axes")).ravel()]
        return None

    def _op_Squeeze(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"axes"})
        x = self._tensor(node, 0)
        axes = self._axes(node, attrs)
        src = list(x.onnx_shape())
        if axes is None:
            axes = [i for i, d in enumerate(src) if d == 1 and i > 0]
        axes = sorted(a % len(src) for a in axes)
        if 0 in axes or any(src[a] != 1 for a in axes):
            self._refuse(node, "axes", axes, f"of a {src} tensor: only unit dimensions other than the batch can go")
        self._set(node, self._view(node, x, [d for i, d in enumerate(src) if i not in axes], "the result"))

    def _op_Unsqueeze(self, node):  # noqa: N802
        attrs = self._attrs(node)
        self._check_attrs(node, attrs, {"axes"})
        x = self._tensor(node, 0)
        axes = self._axes(node, attrs)
        src = list(x.onnx_shape())
        if axes is None:
            self._refuse(node, "axes", "'missing'", "Unsqueeze needs axes")
        n = len(src) + len(axes)
        axes = sorted(a % n for a in axes)
        out, it = [], iter(src)
        for i in range(n):
            out.append(1 if i in axes else next(it))
        if 0 in axes:
            self._refuse(node, "axes", axes, "a new dimension before the batch is not supported")
        self._set(node, self._view(node, x, out, "the result"))


def _compact(a: np.ndarray) -> np.ndarray:
    """An h x w x c statistic as a scalar or 1 x 1 x c where it does not vary over h and w."""
    a = np.asarray(a, np.float64)
    if np.all(a == a.flat[0]):
        return np.array(a.flat[0]).reshape(1, 1, 1).astype(np.float32)
    if np.all(a == a[:1, :1, :]):
        return np.ascontiguousarray(a[:1, :1, :], np.float32)
    return np.ascontiguousarray(a, np.float32)


def _pair(node, imp: _Importer, attrs: dict, key: str) -> list[int]:
    v = list(attrs.get(key, [1, 1]))
    if len(v) != 2 or min(v) < 1:
        imp._refuse(node, f"attribute '{key}'", v, "expected two positive integers (2-D)")
    return [int(a) for a in v]


def _show(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bytes):
        return repr(value.decode(errors="replace"))
    return repr(value) if isinstance(value, str) else str(value)
