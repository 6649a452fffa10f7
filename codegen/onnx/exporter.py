"""The exporter walk: a :class:`~codegen.Network` out as an ONNX model, so that our layer
semantics can be checked against independent runtimes (onnxruntime, ``onnx.reference``).

``export_onnx(net, path=None, opset=17)`` returns the ``onnx.ModelProto`` (and writes it when
``path`` is given). The model takes ``input`` of shape ``N x C x H x W`` (N symbolic), or
``N x K`` for a ``featureInputLayer``, and has one output: ``N x C x H x W``, or ``N x K`` after
a fully connected layer (ONNX's Gemm is 2-D) or a flatten; :func:`to_onnx_input` and
:func:`to_onnx_layout` convert our ``(N, H, W, C)`` inputs and outputs to them.

Each layer goes to the exporter registered for its class (``@exports``, see
:mod:`codegen.onnx.registry`), which adds nodes and initializers through the helpers below
(:meth:`Exporter.node`, :meth:`Exporter.const`, :meth:`Exporter.input`, ...) and returns the
name and rank (4 or 2) of the ONNX tensor holding the layer's output. The conversions are the
inverse of the importer's; each op family's module in :mod:`codegen.onnx.ops` describes its
own. Weights are written bit-exact (float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..version import __version__
from ..errors import UnsupportedError
from ..network import Network
from .registry import exporter_for

DEFAULT_OPSET = 17


def to_onnx_layout(y, rank: int) -> np.ndarray:
    """Our output (N, H, W, C) in the exported model's layout: rank 4 (N, C, H, W) or 2 (N, K)."""
    y = np.asarray(y)
    if rank == 2:
        return y.reshape(y.shape[0], -1)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def to_onnx_input(x, rank: int) -> np.ndarray:
    """Our input (N, H, W, C) in the exported model's layout: rank 4 (N, C, H, W) or 2 (N, K)."""
    return np.ascontiguousarray(to_onnx_layout(x, rank), dtype=np.float32)


def input_rank(model) -> int:
    """The rank of an exported model's input (4 or 2)."""
    return len(model.graph.input[0].type.tensor_type.shape.dim)


def output_rank(model) -> int:
    """The rank of an exported model's output (4 or 2)."""
    return len(model.graph.output[0].type.tensor_type.shape.dim)


def export_onnx(net: Network, path=None, opset: int = DEFAULT_OPSET):
    """The ONNX model of ``net`` (written to ``path`` when given)."""
    if not isinstance(net, Network):
        raise UnsupportedError(f"export_onnx expects a codegen.Network, got {type(net).__name__}")
    if opset < 13:
        raise UnsupportedError(f"opset {opset}: export writes opset 13 or later (Softmax over axis 1, "
                               "Clip/Unsqueeze inputs)")
    model = Exporter(net, opset).run()
    if path is not None:
        Path(path).write_bytes(model.SerializeToString())
    return model


class Exporter:
    """The state of one export; exporters add to it through the helpers."""

    def __init__(self, net: Network, opset: int):
        import onnx
        from onnx import helper, numpy_helper
        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.net, self.opset = net, opset
        self.nodes, self.inits = [], []
        self.tensors: dict[str, tuple[str, int]] = {}      # layer -> (ONNX tensor name, rank)
        self.input_rank = 4                                 # the graph input's; a feature input's exporter sets 2
        self.names: set[str] = set()

    # ------------------------------------------------------------------ model
    def run(self):
        helper, onnx = self.helper, self.onnx
        net = self.net
        self.names.add("input")
        for layer in net.layers:
            self._layer(layer)
        h, w, c = net.input_shape
        dims = ["N", c, h, w] if self.input_rank == 4 else ["N", h * w * c]
        graph_input = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, dims)
        graph_outputs, taken = [], {"input"}
        for name in net.output_names:
            out_name, rank = self.tensors[name]
            oh, ow, oc = net.shapes[name]
            dims = ["N", oc, oh, ow] if rank == 4 else ["N", oh * ow * oc]
            if out_name in taken:                # the input itself, or another output's tensor: a name of its own
                out_name = self.node("Identity", [out_name], name)
            taken.add(out_name)
            graph_outputs.append(helper.make_tensor_value_info(out_name, onnx.TensorProto.FLOAT, dims))
        graph = helper.make_graph(self.nodes, net.name, [graph_input], graph_outputs, self.inits)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="codegen", producer_version=__version__)
        model.ir_version = helper.find_min_ir_version_for(opsets)     # readable by older runtimes too
        return model

    def _layer(self, layer):
        export = exporter_for(type(layer))
        if export is None:
            raise UnsupportedError(f"{layer.label}: ONNX export does not support {layer.CLASS}")
        self.tensors[layer.Name] = export(self, layer)

    # ------------------------------------------------------------------ helpers for exporters
    def unique(self, base: str) -> str:
        """``base``, or ``base_<k>`` where that name is taken."""
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, base: str, value, dtype=np.float32) -> str:
        """An initializer holding ``value``; its name."""
        name = self.unique(base)
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype)), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        """A node ``op`` of one output; the output's name (also the node's)."""
        out = self.unique(base)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def input(self, layer, k: int = 0, rank: int | None = None) -> str:
        """The ONNX tensor of input ``k`` of ``layer``, as rank ``rank`` (4 or 2) if given."""
        src = self.net.inputs[layer.Name][k]
        name, have = self.tensors[src]
        if rank is None or rank == have:
            return name
        if rank == 4:       # N x K -> N x K x 1 x 1
            axes = self.const(f"{src}_axes", [2, 3], np.int64)
            return self.node("Unsqueeze", [name, axes], f"{src}_4d")
        return self.node("Flatten", [name], f"{src}_2d", axis=1)

    def rank_of(self, layer, k: int = 0) -> int:
        """The rank (4 or 2) of the ONNX tensor of input ``k`` of ``layer``."""
        return self.tensors[self.net.inputs[layer.Name][k]][1]
