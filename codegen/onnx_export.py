"""Exporting a :class:`~codegen.Network` as an ONNX model, so that our layer semantics can be
checked against independent runtimes (onnxruntime, ``onnx.reference``).

``export_onnx(net, path=None, opset=17)`` returns the ``onnx.ModelProto`` (and writes it when
``path`` is given). The model takes ``input`` of shape ``N x C x H x W`` (N symbolic) and has
one output: ``N x C x H x W``, or ``N x K`` after a fully connected layer (ONNX's Gemm is 2-D);
:func:`to_onnx_layout` converts our ``(N, H, W, C)`` outputs to it.

The conversions are the inverse of :mod:`codegen.onnx_import`: weights ``h x w x C x F``
(grouped ``h x w x C/G x F/G x G``, group-major outputs) become ``F x C/G x h x w``, padding
``[t b l r]`` becomes ``pads [t l b r]``, a fully connected layer's columns are permuted from
MATLAB's column-major flatten of ``h x w x c`` to ONNX's row-major flatten of ``c x h x w``;
average pooling with ``PaddingValue`` 0 is ``count_include_pad=1``, ``'mean'`` is 0; a
convolution's nonzero ``PaddingValue`` becomes a Pad node (constant, ``'replicate'`` -> edge,
``'symmetric-exclude-edge'`` -> reflect). Weights are written bit-exact (float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UnsupportedError
from .layers import (AdditionLayer, AveragePooling2DLayer, BatchNormalizationLayer, ClassificationOutputLayer,
                     ClippedReLULayer, ConcatenationLayer, Convolution2DLayer, FullyConnectedLayer,
                     GlobalAveragePooling2DLayer, GroupedConvolution2DLayer, ImageInputLayer, LeakyReLULayer,
                     MaxPooling2DLayer, ReLULayer, SoftmaxLayer)
from .network import Network

DEFAULT_OPSET = 17
_PAD_MODES = {"replicate": "edge", "symmetric-exclude-edge": "reflect"}


def to_onnx_layout(y, rank: int) -> np.ndarray:
    """Our output (N, H, W, C) in the exported model's layout: rank 4 (N, C, H, W) or 2 (N, K)."""
    y = np.asarray(y)
    if rank == 2:
        return y.reshape(y.shape[0], -1)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


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
    model = _Exporter(net, opset).run()
    if path is not None:
        Path(path).write_bytes(model.SerializeToString())
    return model


class _Exporter:
    def __init__(self, net: Network, opset: int):
        import onnx
        from onnx import helper, numpy_helper
        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.net, self.opset = net, opset
        self.nodes, self.inits = [], []
        self.tensors: dict[str, tuple[str, int]] = {}      # layer -> (ONNX tensor name, rank)
        self.names: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def _const(self, base: str, value, dtype=np.float32) -> str:
        name = self._unique(base)
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype)), name))
        return name

    def _node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self._unique(base)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def _input(self, layer, k: int = 0, rank: int | None = None) -> str:
        """The ONNX tensor of input ``k`` of ``layer``, as rank ``rank`` (4 or 2) if given."""
        src = self.net.inputs[layer.Name][k]
        name, have = self.tensors[src]
        if rank is None or rank == have:
            return name
        if rank == 4:       # N x K -> N x K x 1 x 1
            axes = self._const(f"{src}_axes", [2, 3], np.int64)
            return self._node("Unsqueeze", [name, axes], f"{src}_4d")
        return self._node("Flatten", [name], f"{src}_2d", axis=1)

    # ------------------------------------------------------------------ model
    def run(self):
        helper, onnx = self.helper, self.onnx
        net = self.net
        h, w, c = net.input_shape
        graph_input = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", c, h, w])
        self.names.add("input")
        for layer in net.layers:
            self._layer(layer)
        out_name, rank = self.tensors[net.output_name]
        oh, ow, oc = net.output_shape
        dims = ["N", oc, oh, ow] if rank == 4 else ["N", oh * ow * oc]
        if out_name == "input":                  # a network that computes nothing: still a valid graph
            out_name = self._node("Identity", ["input"], "output")
        graph_output = helper.make_tensor_value_info(out_name, onnx.TensorProto.FLOAT, dims)
        graph = helper.make_graph(self.nodes, net.name, [graph_input], [graph_output], self.inits)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="codegen", producer_version=_version())
        model.ir_version = helper.find_min_ir_version_for(opsets)     # readable by older runtimes too
        return model

    def _layer(self, layer):
        name = layer.Name
        if isinstance(layer, ImageInputLayer):
            self.tensors[name] = (self._normalization(layer), 4)
        elif isinstance(layer, (Convolution2DLayer, GroupedConvolution2DLayer)):
            self.tensors[name] = (self._conv(layer), 4)
        elif isinstance(layer, BatchNormalizationLayer):
            x = self._input(layer)
            rank = self.tensors[self.net.inputs[name][0]][1]
            args = [self._const(f"{name}_{p.lower()}", getattr(layer, p).ravel())
                    for p in ("Scale", "Offset", "TrainedMean", "TrainedVariance")]
            self.tensors[name] = (self._node("BatchNormalization", [x, *args], name, epsilon=float(layer.Epsilon)),
                                  rank)
        elif isinstance(layer, ReLULayer):
            self._same_rank(layer, "Relu")
        elif isinstance(layer, LeakyReLULayer):
            self._same_rank(layer, "LeakyRelu", alpha=float(layer.Scale))
        elif isinstance(layer, ClippedReLULayer):
            lo = self._const(f"{name}_min", 0.0)
            hi = self._const(f"{name}_max", layer.Ceiling)
            x = self._input(layer)
            self.tensors[name] = (self._node("Clip", [x, lo, hi], name), self._rank_of(layer))
        elif isinstance(layer, MaxPooling2DLayer):
            self.tensors[name] = (self._pool(layer, "MaxPool"), 4)
        elif isinstance(layer, AveragePooling2DLayer):
            self.tensors[name] = (self._pool(layer, "AveragePool",
                                             count_include_pad=0 if layer.PaddingValue == "mean" else 1), 4)
        elif isinstance(layer, GlobalAveragePooling2DLayer):
            self.tensors[name] = (self._node("GlobalAveragePool", [self._input(layer, rank=4)], name), 4)
        elif isinstance(layer, FullyConnectedLayer):
            self.tensors[name] = (self._fc(layer), 2)
        elif isinstance(layer, SoftmaxLayer):
            self._same_rank(layer, "Softmax", axis=1)
        elif isinstance(layer, ClassificationOutputLayer):
            self.tensors[name] = self.tensors[self.net.inputs[name][0]]
        elif isinstance(layer, (AdditionLayer, ConcatenationLayer)):
            ranks = {self.tensors[s][1] for s in self.net.inputs[name]}
            rank = 4 if len(ranks) > 1 else ranks.pop()
            xs = [self._input(layer, k, rank) for k in range(len(self.net.inputs[name]))]
            if isinstance(layer, AdditionLayer):
                self.tensors[name] = (self._node("Sum", xs, name), rank)
            else:
                self.tensors[name] = (self._node("Concat", xs, name, axis=1), rank)
        else:
            raise UnsupportedError(f"{layer.label}: ONNX export does not support {layer.CLASS}")

    def _rank_of(self, layer) -> int:
        return self.tensors[self.net.inputs[layer.Name][0]][1]

    def _same_rank(self, layer, op: str, **attrs):
        self.tensors[layer.Name] = (self._node(op, [self._input(layer)], layer.Name, **attrs), self._rank_of(layer))

    # ------------------------------------------------------------------ layers
    def _normalization(self, layer: ImageInputLayer) -> str:
        if callable(layer.Normalization):
            raise UnsupportedError(f"{layer.label}: property 'Normalization' is a function handle; ONNX export "
                                   "supports 'zerocenter', 'zscore', 'rescale-symmetric', 'rescale-zero-one' and "
                                   "'none'")
        aff = layer.affine()
        if aff is None:
            return "input"
        sub, mul, add = (np.asarray(a, np.float64) for a in aff)

        def nchw(a):
            a = a.reshape((1, 1, 1) if a.size == 1 else a.shape)
            return np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32)   # 1 x C x H x W (or 1s)

        x = "input"
        base = layer.Name
        if np.any(sub != 0):
            x = self._node("Sub", [x, self._const(f"{base}_sub", nchw(sub))], f"{base}_centered")
        if np.any(mul != 1):
            x = self._node("Mul", [x, self._const(f"{base}_mul", nchw(mul))], f"{base}_scaled")
        if np.any(add != 0):
            x = self._node("Add", [x, self._const(f"{base}_add", nchw(add))], f"{base}_shifted")
        return x

    def _conv(self, layer) -> str:
        name = layer.Name
        wg = layer._weights_as_groups()                            # kh x kw x C/G x F/G x G
        kh, kw, cg, fg, g = wg.shape
        w = np.ascontiguousarray(wg.transpose(4, 3, 2, 0, 1)).reshape(g * fg, cg, kh, kw)
        bias = np.asarray(layer._bias_flat(), np.float32)
        x = self._input(layer, rank=4)
        t, b, left, r = layer.PaddingSize
        pads = [t, left, b, r]
        value = layer.PaddingValue
        if value != 0 and any(pads):
            if isinstance(value, str) and value not in _PAD_MODES:
                raise UnsupportedError(f"{layer.label}: property 'PaddingValue' is '{value}', which ONNX's Pad "
                                       "cannot express (its modes: constant, reflect, edge)")
            pad_sizes = self._const(f"{name}_pads", [0, 0, t, left, 0, 0, b, r], np.int64)
            if isinstance(value, str):
                x = self._node("Pad", [x, pad_sizes], f"{name}_padded", mode=_PAD_MODES[value])
            else:
                fill = self._const(f"{name}_padvalue", value)
                x = self._node("Pad", [x, pad_sizes, fill], f"{name}_padded", mode="constant")
            pads = [0, 0, 0, 0]
        inputs = [x, self._const(f"{name}_W", w), self._const(f"{name}_B", bias)]
        return self._node("Conv", inputs, name, kernel_shape=[kh, kw], strides=list(layer.Stride),
                          dilations=list(layer.DilationFactor), pads=pads, group=g)

    def _pool(self, layer, op: str, **attrs) -> str:
        t, b, left, r = layer.PaddingSize
        return self._node(op, [self._input(layer, rank=4)], layer.Name, kernel_shape=list(layer.PoolSize),
                          strides=list(layer.Stride), pads=[t, left, b, r], **attrs)

    def _fc(self, layer) -> str:
        name = layer.Name
        src = self.net.inputs[name][0]
        h, w, c = self.net.shapes[src]
        n_out = layer.OutputSize
        # ours: column h + H*(w + W*c) (MATLAB's flatten); ONNX: column c*H*W + h*W + w
        weights = np.asarray(layer.Weights, np.float32).reshape(n_out, c, w, h).transpose(0, 1, 3, 2)
        weights = np.ascontiguousarray(weights).reshape(n_out, h * w * c)
        x = self._input(layer, rank=2)
        inputs = [x, self._const(f"{name}_W", weights), self._const(f"{name}_B", layer.Bias.ravel())]
        return self._node("Gemm", inputs, name, transB=1)


def _version() -> str:
    from . import __version__
    return __version__
