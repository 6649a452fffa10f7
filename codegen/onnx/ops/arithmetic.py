"""Binary arithmetic: ONNX ``Add``, ``Sub``, ``Mul``, ``Div`` <-> ``additionLayer``,
``multiplicationLayer``, ``scalingLayer`` (and input normalization, and the bias of a fully
connected layer).

Import, with one constant input, in this order:

- on the graph input, before any other use of it, with a positive factor for Mul/Div: input
  normalization (:mod:`codegen.onnx.ops.normalization`);
- ``Add`` right after a MatMul/Gemm: the fully connected layer's bias (:mod:`codegen.onnx.ops.dense`);
- otherwise a ``scalingLayer`` (y = Scale .* x + Offset), the constant expanding to the tensor's
  shape (a scalar, one value per channel, or any N x C x H x W shape with singleton dimensions,
  never enlarging the tensor): ``x * c`` is Scale c, ``x + c`` Offset c, ``x - c`` Offset -c and
  ``c - x`` Scale -1 with Offset c. These are exact: float32 computes x * c, x + c, x + (-c) =
  x - c and (-1) * x + c = c - x with the same single rounding ONNX does. ``x / c`` becomes Scale
  1/c (the float32 reciprocal): not bit-exact, within one rounding of x * (1/c) (relative 1.2e-7;
  exact where c is a power of two). ``c / x`` (a reciprocal of a tensor) is refused.

With two computed tensors (both N x C x H x W, or both N x K):

- ``Mul``: a ``multiplicationLayer`` (ONNX broadcasting of equal-rank tensors expands singleton
  dimensions as MATLAB's implicit expansion does: a squeeze-and-excitation gate N x C x 1 x 1
  times the N x C x H x W feature map);
- ``Add``: an ``additionLayer``, for equal shapes only (MATLAB's additionLayer does not expand);
- ``Sub``: a - b as ``additionLayer(a, scalingLayer(b, Scale -1))``: exact, negation is;
- ``Div``: refused; no layer computes a reciprocal.

The multi-node activations that use Mul (``x * Sigmoid(x)``, GELU, ...) are claimed by
:mod:`codegen.onnx.ops.spellings` before the walk and never reach these translators.

Export: a ``scalingLayer`` is ``Mul`` by Scale and ``Add`` of Offset (each left out when it is 1
or 0), the constants as 1 x C x H x W (or N x K) arrays with the layer's singleton dimensions.
"""

from __future__ import annotations

import numpy as np

from ...layers import ScalingLayer, scalingLayer
from ...layers.scaling import hwc
from ..registry import exports, translates
from .combine import combine
from .dense import add_bias, folds_as_bias
from .normalization import folds_into_input, normalize_input

SCALING_RULES = {     # op, whether the tensor is input 0 -> (Scale, Offset) from the constant c
    ("Mul", True): lambda c: (c, 0.0), ("Mul", False): lambda c: (c, 0.0),
    ("Add", True): lambda c: (1.0, c), ("Add", False): lambda c: (1.0, c),
    ("Sub", True): lambda c: (1.0, -c), ("Sub", False): lambda c: (-1.0, c),
}


@translates("Add", "Sub", "Mul", "Div")
def _arithmetic(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"broadcast", "axis", "consumed_inputs"})
    op = node.op_type
    names = list(node.input)
    consts = [n in imp.consts for n in names]
    if len(names) == 2 and sum(consts) == 1:
        if folds_into_input(imp, node, op):
            return normalize_input(imp, node, op)
        if op == "Add" and folds_as_bias(imp, names):
            return add_bias(imp, node, names)
        _legacy_axis(imp, node, attrs)
        return _scaling(imp, node, op, 0 if not consts[0] else 1)
    _legacy_axis(imp, node, attrs)
    a, b = imp.tensor(node, 0), imp.tensor(node, 1)
    if op == "Div":
        imp.refuse(node, "input 1", "'a tensor computed by the network'", "division by a computed tensor is not "
                   "supported: no layer computes a reciprocal (MATLAB's multiplicationLayer multiplies)")
    if op == "Sub":
        if a.shape != b.shape or a.kind != b.kind:
            imp.refuse(node, "input 1", f"'of shape {list(b.onnx_shape())}'", f"input 0 is {list(a.onnx_shape())}; "
                       "a - b of two computed tensors needs equal shapes (it becomes additionLayer(a, -b), and "
                       "MATLAB's additionLayer does not expand singleton dimensions)")
        b = imp.new(node, scalingLayer(Scale=-1, Name=imp.layer_name(node, "negation", "_negated")), [b], b.kind)
    combine(imp, node, [a, b], multiply=op == "Mul")


def _legacy_axis(imp, node, attrs):
    if "axis" in attrs:
        imp.refuse(node, "attribute 'axis'", attrs["axis"], "legacy broadcasting along an axis (opset < 7) is not "
                   "supported")


def _scaling(imp, node, op: str, k: int):
    """``node`` applies constant input 1 - k to tensor input k: a scalingLayer."""
    x = imp.tensor(node, k)
    c = _operand(imp, node, 1 - k, x)
    if op == "Div":
        if k == 1:
            imp.refuse(node, "input 1", "'a tensor computed by the network'", "dividing a constant by a tensor (a "
                       "reciprocal) is not supported: no layer computes one")
        with np.errstate(divide="ignore", over="ignore"):
            recip = (1.0 / c.astype(np.float64)).astype(np.float32)
        if not np.all(np.isfinite(recip)):
            imp.refuse(node, "input 1 (the divisor)", "'0'" if np.any(c == 0) else "'below 3e-39 in magnitude'",
                       "x / c becomes x * (1 / c), and 1 / c must be a finite float32")
        scale, offset = recip, 0.0
    else:
        scale, offset = SCALING_RULES[op, k == 0](c)
    layer = scalingLayer(Scale=scale, Offset=offset, Name=imp.layer_name(node, "scaling"))
    imp.new(node, layer, [x], x.kind)


def _operand(imp, node, k: int, x) -> np.ndarray:
    """Constant input ``k`` of ``node``, applied to tensor ``x``, as a scalar or an h x w x c array in
    our layout; refused where it would enlarge ``x``'s shape or rank."""
    value = imp.weight(node, k, "the constant")
    shape = x.onnx_shape()
    if value.ndim > len(shape) or any(d not in (1, n) for d, n in zip(value.shape[::-1], shape[::-1])):
        imp.refuse(node, f"input {k} (the constant)", f"'of shape {list(value.shape)}'",
                   f"it must expand to the shape of input {1 - k}, {list(shape)}, without enlarging it (each "
                   "dimension 1 or the tensor's)")
    if value.size == 1:
        return value.reshape(())
    full = value.reshape((1,) * (len(shape) - value.ndim) + value.shape)
    h, w, c = x.shape
    if x.kind == "nchw":
        return np.ascontiguousarray(full[0].transpose(1, 2, 0))          # c x h x w -> h x w x c
    if x.kind == "nc":
        return full.reshape(1, 1, -1)
    return np.ascontiguousarray(full.reshape(c, h, w).transpose(1, 2, 0))  # a flattened c x h x w tensor


@exports(ScalingLayer)
def _scaling_layer(exp, layer):
    name = layer.Name
    rank = exp.rank_of(layer)
    out = exp.input(layer)

    def onnx_array(a):
        a = np.asarray(a, np.float32).reshape(hwc(a))
        return a.transpose(2, 0, 1)[None] if rank == 4 else a.reshape(1, -1)

    scaled, shifted = not np.all(layer.Scale == 1), not np.all(layer.Offset == 0)
    if scaled:
        scale = exp.const(f"{name}_scale", onnx_array(layer.Scale))
        out = exp.node("Mul", [out, scale], f"{name}_scaled" if shifted else name)
    if shifted:
        out = exp.node("Add", [out, exp.const(f"{name}_offset", onnx_array(layer.Offset))], name)
    return out, rank
