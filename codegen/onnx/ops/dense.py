"""Fully connected: ONNX ``Gemm``, ``MatMul`` (and an ``Add`` of a constant after them, folded
into the bias) <-> ``fullyConnectedLayer``.

Import: ``B`` must be a constant matrix (``Gemm``'s alpha/beta are folded into the weights and
bias; ``transA`` is refused); the input must be 2-D (after a Flatten). Behind a Flatten of an
``N x C x H x W`` tensor the columns are permuted so that MATLAB's column-major flatten of
``h x w x c`` reproduces ONNX's row-major flatten of ``c x h x w``. (``Add`` reaches
:func:`add_bias` through :mod:`codegen.onnx.ops.arithmetic`, which owns the op.)

Export: ``Gemm`` (``transB=1``) on the flattened input, columns permuted the other way; the
output is N x K.
"""

from __future__ import annotations

import numpy as np

from ...layers import FullyConnectedLayer, fullyConnectedLayer
from ..errors import quote
from ..registry import exports, translates
from ..tensors import as_weights


def _fc(imp, node, x, w_onnx: np.ndarray, bias: np.ndarray):
    """A fully connected layer computing y = W x + b with ONNX's W (N x K) on ONNX's 2-D x."""
    n_out, k = w_onnx.shape
    h, w, c = x.shape
    if x.kind == "nchw":
        imp.refuse(node, "input 0", "'an N x C x H x W tensor'", f"{node.op_type} needs a 2-D input "
                   "(Flatten it first)")
    if k != h * w * c:
        imp.refuse(node, "the weight matrix", f"'{n_out}x{k}'", f"the input has {h * w * c} features")
    if x.kind == "flat_chw":
        # ONNX column index c*H*W + h*W + w; MATLAB's flatten of h x w x c: h + H*(w + W*c)
        weights = w_onnx.reshape(n_out, c, h, w).transpose(0, 1, 3, 2).reshape(n_out, k)
    else:
        weights = w_onnx
    layer = fullyConnectedLayer(n_out, Name=imp.layer_name(node, "fc"))
    imp.new(node, layer, [x], "nc", {"Weights": np.ascontiguousarray(weights, np.float32),
                                     "Bias": np.asarray(bias, np.float32).reshape(n_out, 1)})


@translates("Gemm")
def _gemm(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"alpha", "beta", "transA", "transB", "broadcast"})
    if attrs.get("transA", 0):
        imp.refuse(node, "attribute 'transA'", attrs["transA"], "the input must not be transposed")
    x = imp.tensor(node, 0)
    b = imp.weight(node, 1, "B")
    if b.ndim != 2:
        imp.refuse(node, "input 1 (B)", f"'{b.ndim}-D'", "expected a matrix")
    w = b if attrs.get("transB", 0) else b.T
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0:
        w = (w * np.float32(alpha)).astype(np.float32)
    n_out = w.shape[0]
    c = imp.weight(node, 2, "C", required=False)
    bias = np.zeros(n_out, np.float32)
    if c is not None:
        if c.size not in (1, n_out) or (c.ndim == 2 and c.shape[0] != 1):
            imp.refuse(node, "input 2 (C)", f"'of shape {list(c.shape)}'",
                       f"only a bias shared by every row (1 or {n_out} values) is supported")
        bias = np.broadcast_to(c.ravel(), (n_out,)).astype(np.float32)
        if beta != 1.0:
            bias = (bias * np.float32(beta)).astype(np.float32)
    _fc(imp, node, x, np.ascontiguousarray(w), bias)


@translates("MatMul")
def _matmul(imp, node):
    x = imp.tensor(node, 0)
    b = imp.weight(node, 1, "B")
    if b.ndim != 2:
        imp.refuse(node, "input 1 (B)", f"'{b.ndim}-D'", "only a constant matrix B (K x N) is supported")
    _fc(imp, node, x, np.ascontiguousarray(b.T), np.zeros(b.shape[1], np.float32))


def folds_as_bias(imp, names) -> bool:
    """Whether Add(x, constant) is the bias of the fully connected layer computing x: the layer just
    made, its output read only by this Add, the constant one value or one per output (N x K at most)."""
    k = 0 if names[0] not in imp.consts else 1
    x = imp.tensors.get(names[k])
    const = np.asarray(imp.consts[names[1 - k]])
    layer = imp.layers[-1] if imp.layers else None
    if x is None or layer is None or layer.Name != x.layer or layer.FUNCTION != "fullyConnectedLayer":
        return False
    return (imp.consumers.get(names[k], 0) == 1 and x.kind == "nc" and const.size in (1, x.shape[2])
            and const.ndim <= 2 and (const.ndim < 2 or const.shape[0] == 1))


def add_bias(imp, node, names):
    """Add(x, constant) where :func:`folds_as_bias`: folded into the bias of the fully connected layer."""
    k = 0 if names[0] not in imp.consts else 1
    x = imp.tensor(node, k)
    const = as_weights(imp.consts[names[1 - k]], f"{imp.where(node)}: input {1 - k} ({quote(names[1 - k])})")
    n_out = x.shape[2]
    key = f"{x.layer}/Bias"
    imp.weights[key] = (imp.weights[key].ravel() + np.broadcast_to(const.ravel(), (n_out,))).astype(
        np.float32).reshape(n_out, 1)
    imp.set(node, x)


@exports(FullyConnectedLayer)
def _fully_connected_layer(exp, layer):
    name = layer.Name
    src = exp.net.inputs[name][0]
    h, w, c = exp.net.shapes[src]
    n_out = layer.OutputSize
    # ours: column h + H*(w + W*c) (MATLAB's flatten); ONNX: column c*H*W + h*W + w
    weights = np.asarray(layer.Weights, np.float32).reshape(n_out, c, w, h).transpose(0, 1, 3, 2)
    weights = np.ascontiguousarray(weights).reshape(n_out, h * w * c)
    x = exp.input(layer, rank=2)
    inputs = [x, exp.const(f"{name}_W", weights), exp.const(f"{name}_B", layer.Bias.ravel())]
    return exp.node("Gemm", inputs, name, transB=1), 2
