"""Normalization: ONNX ``BatchNormalization`` (inference) <-> ``batchNormalizationLayer``, and
the input normalization of ``imageInputLayer`` <-> ``Sub``/``Add``/``Mul``/``Div`` of constants
on the graph input.

Import: MATLAB's smallest ``Epsilon`` is 1e-5; a smaller ONNX epsilon is moved into the
variances (refused where that would make one negative). Constants subtracted from, added to,
multiplied with (a positive factor) or dividing (by a positive divisor) the graph input, before
any other use of it, are folded into ``imp.norm`` (``y = (x - Mean) / StandardDeviation``); the
walk turns the result into the input layer's ``'zerocenter'`` or ``'zscore'`` normalization at
the end. The four ops reach :func:`normalize_input` through :mod:`codegen.onnx.ops.arithmetic`,
which owns them and asks :func:`folds_into_input` first.

Export: ``BatchNormalization`` with the layer's statistics; the input layer's normalization
(any of ``'zerocenter'``, ``'zscore'``, ``'rescale-symmetric'``, ``'rescale-zero-one'``, as
the affine ``(x - sub) * mul + add``) as ``Sub``, ``Mul`` and ``Add`` nodes on ``input``
(N x C x H x W for an ``imageInputLayer``, N x K for a ``featureInputLayer``).
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...layers import BatchNormalizationLayer, FeatureInputLayer, ImageInputLayer, batchNormalizationLayer
from ..errors import quote
from ..registry import exports, translates
from ..tensors import as_weights

MATLAB_MIN_EPSILON = 1e-5


# ============================================================================ batch normalization

@translates("BatchNormalization")
def _batch_normalization(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"epsilon", "momentum", "spatial", "is_test", "training_mode", "consumed_inputs"})
    if attrs.get("training_mode", 0):
        imp.refuse(node, "attribute 'training_mode'", attrs["training_mode"], "only inference is supported")
    if imp.opset < 7 and attrs.get("is_test", 0) != 1:
        imp.refuse(node, "attribute 'is_test'", attrs.get("is_test", 0), "only inference (is_test=1) is "
                   "supported")
    if attrs.get("spatial", 1) != 1:
        imp.refuse(node, "attribute 'spatial'", attrs["spatial"], "only per-channel statistics (spatial=1) "
                   "are supported")
    imp.only_first_output(node)
    x = imp.tensor(node, 0)
    if x.kind == "flat_chw":
        imp.refuse(node, "input 0", "'a flattened image'", "batch normalization needs channels")
    c = x.shape[2]
    arrays = []
    for k, what in enumerate(["scale", "B", "mean", "var"], start=1):
        v = imp.weight(node, k, what)
        if v.size != c:
            imp.refuse(node, f"input {k} ({what})", f"'of {v.size} values'", f"the input has {c} channels")
        arrays.append(v.reshape(1, 1, c))
    scale, offset, mean, var = arrays
    eps = float(attrs.get("epsilon", 1e-5))
    if eps < MATLAB_MIN_EPSILON:
        # MATLAB's minimum Epsilon is 1e-5. ONNX's default 1e-5 arrives as float32
        # (9.9999997e-06): the difference (2.5e-13) is far below float32 resolution.
        if MATLAB_MIN_EPSILON - eps > 1e-12:
            shifted = var.astype(np.float64) + (eps - MATLAB_MIN_EPSILON)
            if np.any(shifted < 0):
                imp.refuse(node, "attribute 'epsilon'", eps, "epsilon below 1e-5 (MATLAB's minimum) with a "
                           "variance this small cannot be expressed")
            var = shifted.astype(np.float32)
        eps = MATLAB_MIN_EPSILON
    if np.any(var < 0):
        imp.refuse(node, "input 4 (var)", "'negative'", "variances must be nonnegative")
    layer = batchNormalizationLayer(Epsilon=eps, Name=imp.layer_name(node, "batchnorm"))
    imp.new(node, layer, [x], x.kind, {"TrainedMean": mean, "TrainedVariance": var, "Scale": scale, "Offset": offset})


@exports(BatchNormalizationLayer)
def _batch_normalization_layer(exp, layer):
    name = layer.Name
    x = exp.input(layer)
    rank = exp.rank_of(layer)
    args = [exp.const(f"{name}_{p.lower()}", getattr(layer, p).ravel())
            for p in ("Scale", "Offset", "TrainedMean", "TrainedVariance")]
    return exp.node("BatchNormalization", [x, *args], name, epsilon=float(layer.Epsilon)), rank


# ============================================================================ input normalization

def applies_to_input(imp, node, names) -> bool:
    """Whether ``node`` applies a constant to the (normalized) graph input, used only here."""
    tensors = [n for n in names if n not in imp.consts]
    if len(tensors) != 1 or tensors[0] not in imp.tensors:
        return False
    t = imp.tensors[tensors[0]]
    if t.layer != imp.input_layer or t.kind == "flat_chw":
        return False
    # the normalization must be the only path from the input: every name of the input so
    # far (the input, Identity outputs, earlier normalization steps) has this one reader
    aliases = [name for name, other in imp.tensors.items() if other.layer == imp.input_layer]
    return (all(imp.consumers.get(a, 0) == 1 for a in aliases)
            and not any(imp.input_layer in srcs for srcs in imp.sources.values()))


def folds_into_input(imp, node, op: str) -> bool:
    """Whether ``node`` (Sub/Add/Mul/Div with one constant input) is input normalization: the
    constant applies to the graph input before any other use, as x - c, x + c, c + x, x * c, c * x
    or x / c with positive factors, and expands to the input's shape without enlarging it."""
    names = list(node.input)
    if len(names) != 2 or sum(n in imp.consts for n in names) != 1 or not applies_to_input(imp, node, names):
        return False
    k = 0 if names[0] not in imp.consts else 1
    if k == 1 and op in ("Sub", "Div"):
        return False
    const = np.asarray(imp.consts[names[1 - k]])
    if const.dtype.kind != "f":
        return False
    shape = imp.tensors[names[k]].onnx_shape()
    if const.ndim > len(shape) or any(d not in (1, n) for d, n in zip(const.shape[::-1], shape[::-1])):
        return False
    return op in ("Sub", "Add") or bool(np.all(np.isfinite(const)) and np.all(const > 0))


def normalize_input(imp, node, op):
    """Sub/Add/Mul/Div of a constant on the graph input: y = (x - Mean) / StandardDeviation."""
    imp.check_attrs(node, imp.attrs(node), {"broadcast", "axis", "consumed_inputs"})
    names = list(node.input)
    k = 0 if names[0] not in imp.consts else 1
    x = imp.tensor(node, k)
    const = as_weights(imp.consts[names[1 - k]], f"{imp.where(node)}: input {1 - k} ({quote(names[1 - k])})")
    const = const.astype(np.float64)
    if k == 1 and op in ("Sub", "Div"):
        imp.refuse(node, "input 0", "'a constant'", f"only x {'-' if op == 'Sub' else '/'} constant is "
                   "supported as input normalization")
    onnx_shape = x.onnx_shape()
    try:
        full = np.broadcast_to(const, onnx_shape)[0]
    except ValueError:
        imp.refuse(node, f"input {1 - k}", f"'of shape {list(const.shape)}'",
                   f"it does not broadcast to the input {list(onnx_shape)}")
    hwc = full.transpose(1, 2, 0) if full.ndim == 3 else full.reshape(1, 1, -1)
    mean, std = imp.norm
    if op == "Sub":
        mean = mean + hwc * std
    elif op == "Add":
        mean = mean - hwc * std
    else:
        factor = hwc if op == "Div" else 1.0 / hwc
        if not np.all(factor > 0) or not np.all(np.isfinite(factor)):
            imp.refuse(node, f"input {1 - k}", "'not positive'", f"input normalization needs a positive "
                       f"{'divisor' if op == 'Div' else 'factor'}")
        std = std * factor
    imp.norm = (mean, std)
    imp.set(node, x)


def _onnx_constant(a: np.ndarray, rank: int) -> np.ndarray:
    """A statistic broadcastable to (H, W, C) as a constant broadcastable to the ONNX input."""
    a = a.reshape((1, 1, 1) if a.size == 1 else a.shape)
    if rank == 2:
        return np.ascontiguousarray(a.reshape(1, -1), dtype=np.float32)             # 1 x K (or 1 x 1)
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32)       # 1 x C x H x W (or 1s)


@exports(ImageInputLayer, FeatureInputLayer)
def _input_layer(exp, layer):
    if callable(layer.Normalization):
        raise UnsupportedError(f"{layer.label}: property 'Normalization' is a function handle; ONNX export "
                               "supports 'zerocenter', 'zscore', 'rescale-symmetric', 'rescale-zero-one' and "
                               "'none'")
    rank = 4 if len(layer.observation_shape) == 3 else 2
    exp.input_rank = rank
    aff = layer.affine()
    if aff is None:
        return "input", rank
    sub, mul, add = (np.asarray(a, np.float64) for a in aff)
    x = "input"
    base = layer.Name
    if np.any(sub != 0):
        x = exp.node("Sub", [x, exp.const(f"{base}_sub", _onnx_constant(sub, rank))], f"{base}_centered")
    if np.any(mul != 1):
        x = exp.node("Mul", [x, exp.const(f"{base}_mul", _onnx_constant(mul, rank))], f"{base}_scaled")
    if np.any(add != 0):
        x = exp.node("Add", [x, exp.const(f"{base}_add", _onnx_constant(add, rank))], f"{base}_shifted")
    return x, rank
