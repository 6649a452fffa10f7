"""QDQ: ONNX ``QuantizeLinear`` and ``DequantizeLinear`` (no layer).

A QuantizeLinear of a computed tensor and the DequantizeLinear after it are a rounding to int8
and back: the float network passes the tensor through, and the QuantizeLinear's scale and zero
point become the int8 parameters of the layer that made the tensor (:mod:`codegen.onnx.qdq`).
Where the pair's range starts at 0 (zero point -128) after a convolution, a fully connected
layer, an addition or a batch normalization, the pair is also a ReLU (onnxruntime removes a
ReLU it can leave to that clamp): the float network gets a clippedReluLayer with the range's
top, which the int8 code folds into its producer's clamp.
A DequantizeLinear of constants (int8 weights, int32 biases) is evaluated at import: the float
weights, whose int8 scales per output channel the layer reading them keeps. A QuantizeLinear of
constants is evaluated too (round half to even, saturated), as ONNX defines it.
"""

from __future__ import annotations

import numpy as np

from ...layers import clippedReluLayer
from ...quant.calibrate import QParams
from ..errors import quote
from ..registry import folds, translates


def _axis_shape(scale, x, axis: int) -> np.ndarray:
    """``scale`` (one value, or one per index of ``axis``) shaped to broadcast against ``x``."""
    scale = np.asarray(scale)
    if scale.size == 1:
        return scale.reshape(())
    shape = [1] * x.ndim
    shape[axis % max(x.ndim, 1)] = -1
    return scale.reshape(shape)


def _per_axis(imp, node, x, scale, zp):
    """Check a (De)QuantizeLinear's scale and zero point against ``x``; the axis (normalized)."""
    axis = imp.attrs(node).get("axis", 1)
    if np.size(scale) != 1:
        if not -x.ndim <= axis < x.ndim or np.ndim(scale) != 1 or np.size(scale) != x.shape[axis]:
            imp.refuse(node, "its scale shape", list(np.shape(scale)), f"per-axis scales need one value per index "
                       f"of axis {axis} of the input (shape {list(x.shape)})")
    if zp is not None and np.shape(zp) != np.shape(scale) and not np.size(zp) == np.size(scale) == 1:
        imp.refuse(node, "its zero point shape", list(np.shape(zp)), f"it must match the scale's {list(np.shape(scale))}")
    return axis % max(x.ndim, 1)


@folds("DequantizeLinear")
def _dequantize_const(imp, node, inputs):
    imp.check_attrs(node, imp.attrs(node), {"axis"})
    x, scale, zp = (list(inputs) + [None])[:3]
    if x.dtype not in (np.int8, np.uint8, np.int32):
        imp.refuse(node, "its input type", f"'{x.dtype}'", "int8, uint8 and int32 constants are dequantized")
    axis = _per_axis(imp, node, x, scale, zp)
    if not np.all(np.isfinite(scale)):
        imp.refuse(node, "its scale", "'not finite'", "scales must be finite numbers")
    z = 0 if zp is None else _axis_shape(zp, x, axis).astype(np.int64)
    y = ((x.astype(np.int64) - z) * _axis_shape(scale, x, axis).astype(np.float64)).astype(np.float32)
    if x.dtype == np.int8 and (zp is None or not np.any(zp)):
        imp.qdq.dequantized[node.output[0]] = np.asarray(scale, np.float32).reshape(-1)
    return [y]


@folds("QuantizeLinear")
def _quantize_const(imp, node, inputs):
    imp.check_attrs(node, imp.attrs(node), {"axis", "saturate"})
    x, scale, zp = (list(inputs) + [None])[:3]
    axis = _per_axis(imp, node, x, scale, zp)
    dtype = np.uint8 if zp is None else zp.dtype
    if dtype not in (np.int8, np.uint8):
        imp.refuse(node, "its zero point type", f"'{dtype}'", "int8 and uint8 are supported")
    info = np.iinfo(dtype)
    z = 0 if zp is None else _axis_shape(zp, x, axis).astype(np.float64)
    q = np.rint(np.asarray(x, np.float64) / _axis_shape(scale, x, axis).astype(np.float64)) + z
    return [np.clip(q, info.min, info.max).astype(dtype)]


def qparams(imp, node, scale_name: str) -> QParams:
    """The scale and int8 zero point of a QuantizeLinear / DequantizeLinear, per tensor."""
    scale = imp.const(node, 1, scale_name)
    if np.size(scale) != 1:
        imp.refuse(node, "its scale", f"'{np.size(scale)} values'", "activations are quantized per tensor (one "
                   "scale and zero point) in int8 code")
    scale = float(np.float32(np.asarray(scale).ravel()[0]))
    if not (np.isfinite(scale) and scale > 0):
        imp.refuse(node, "its scale", scale, "a scale must be a positive finite number")
    zp = imp.const(node, 2, "zero point", required=False)
    if zp is None or zp.dtype != np.int8:
        imp.refuse(node, "its zero point type", quote(str(zp.dtype if zp is not None else "uint8 (absent)")),
                   "int8 code takes int8 activations (onnxruntime: activation_type=QuantType.QInt8)")
    if np.size(zp) != 1:
        imp.refuse(node, "its zero point", f"'{np.size(zp)} values'", "activations have one zero point per tensor")
    return QParams(scale, int(np.asarray(zp).ravel()[0]))


# producers whose output can be negative, so that a range starting at 0 clamps it
CLAMPED = {"convolution2dLayer", "groupedConvolution2dLayer", "fullyConnectedLayer", "additionLayer",
           "batchNormalizationLayer"}


@translates("QuantizeLinear")
def _quantize(imp, node):
    imp.check_attrs(node, imp.attrs(node), {"axis", "saturate"})
    t = imp.tensor(node, 0)
    q = qparams(imp, node, "y_scale")
    producer = next((layer for layer in imp.layers if layer.Name == t.layer), None)
    if q.zero_point == -128 and producer is not None and producer.FUNCTION in CLAMPED:
        if node.input[0] not in imp.qdq.clamps:
            top = float(np.float32(255 * np.float64(q.scale)))
            relu = clippedReluLayer(top, Name=imp.layer_name(node, "clippedrelu"))
            imp.qdq.clamps[node.input[0]] = imp.new(node, relu, [t], t.kind)
        t = imp.qdq.clamps[node.input[0]]
    imp.qdq.activation(imp, node, t.layer, q)
    imp.set(node, t)


@translates("DequantizeLinear")
def _dequantize(imp, node):
    imp.check_attrs(node, imp.attrs(node), {"axis"})
    t = imp.tensor(node, 0)
    q = qparams(imp, node, "x_scale")
    known = imp.qdq.activations.get(t.layer)
    if known != q:
        imp.refuse(node, "its scale and zero point", f"'{q.describe()}'", "a DequantizeLinear must follow the "
                   "QuantizeLinear of the same parameters" + (f" ({known.describe()})" if known else ""))
    imp.set(node, t)
