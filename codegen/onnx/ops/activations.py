"""Activations: ONNX ``Relu``, ``LeakyRelu``, ``Clip``, ``Sigmoid``, ``Tanh``, ``Softmax``, ``Elu``,
``Gelu``, ``Softplus``, ``HardSigmoid``, ``HardSwish`` <-> ``reluLayer``, ``leakyReluLayer``,
``clippedReluLayer``, ``sigmoidLayer``, ``tanhLayer``, ``softmaxLayer``, ``eluLayer``, ``geluLayer``,
``softplusLayer``, ``hardSigmoidLayer``, ``hardSwishLayer``; ``swishLayer`` has no ONNX operator
(see :mod:`codegen.onnx.ops.spellings` for it and for the other activations written as
several nodes).

Import: ``Clip(0, max)`` is a ``clippedReluLayer`` (a ``reluLayer`` when max is unbounded:
float32's maximum or inf); other bounds are refused. ``Softmax`` only over the channels
(axis 1; before opset 13, over the flattened axes 1.., so only for 1 x 1 images).

Export: the same ops, each keeping its input's rank; ``Clip`` with ``min``/``max`` inputs,
``Softmax`` with ``axis=1`` (opset 13 or later); ``Gelu`` from opset 20 (before, spelled with
``Erf`` or ``Tanh``), ``HardSwish`` from opset 14 (before, ``x * HardSigmoid(x)``), swish as
``x * Sigmoid(x)``.
"""

from __future__ import annotations

import numpy as np

from ...layers import (ClippedReLULayer, ELULayer, GELULayer, HardSigmoidLayer, HardSwishLayer, LeakyReLULayer,
                       ReLULayer, SigmoidLayer, SoftmaxLayer, SoftplusLayer, SwishLayer, TanhLayer, clippedReluLayer,
                       eluLayer, geluLayer, hardSigmoidLayer, hardSwishLayer, leakyReluLayer, reluLayer, sigmoidLayer,
                       softmaxLayer, softplusLayer, tanhLayer)
from ..errors import quote
from ..registry import exports, translates
from .spellings import write_gelu, write_hard_swish, write_swish


@translates("Relu")
def _relu(imp, node):
    imp.check_attrs(node, imp.attrs(node), {"consumed_inputs"})
    x = imp.tensor(node, 0)
    imp.new(node, reluLayer(Name=imp.layer_name(node, "relu")), [x], x.kind)


@translates("LeakyRelu")
def _leaky_relu(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"alpha", "consumed_inputs"})
    x = imp.tensor(node, 0)
    layer = leakyReluLayer(float(attrs.get("alpha", 0.01)), Name=imp.layer_name(node, "leakyrelu"))
    imp.new(node, layer, [x], x.kind)


@translates("Clip")
def _clip(imp, node):
    attrs = imp.attrs(node)
    x = imp.tensor(node, 0)
    if imp.opset < 11:
        imp.check_attrs(node, attrs, {"min", "max", "consumed_inputs"})
        lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        imp.check_attrs(node, attrs, set())
        lo_c = imp.scalar(node, 1, "min")
        hi_c = imp.scalar(node, 2, "max")
        lo = -np.inf if lo_c is None else float(lo_c)
        hi = np.inf if hi_c is None else float(hi_c)
    if lo != 0:
        imp.refuse(node, "min", lo, "only Clip(min=0, max>0) is supported (clippedReluLayer / reluLayer)")
    if not hi > 0:
        imp.refuse(node, "max", hi, "only Clip(min=0, max>0) is supported (clippedReluLayer / reluLayer)")
    if hi >= 3.0e38:        # no upper bound (float32 max or inf): a ReLU
        layer = reluLayer(Name=imp.layer_name(node, "relu"))
    else:
        layer = clippedReluLayer(hi, Name=imp.layer_name(node, "clippedrelu"))
    imp.new(node, layer, [x], x.kind)


@translates("Sigmoid")
def _sigmoid(imp, node):
    imp.check_attrs(node, imp.attrs(node), {"consumed_inputs"})
    x = imp.tensor(node, 0)
    imp.new(node, sigmoidLayer(Name=imp.layer_name(node, "sigmoid")), [x], x.kind)


@translates("Tanh")
def _tanh(imp, node):
    imp.check_attrs(node, imp.attrs(node), {"consumed_inputs"})
    x = imp.tensor(node, 0)
    imp.new(node, tanhLayer(Name=imp.layer_name(node, "tanh")), [x], x.kind)


@translates("Elu")
def _elu(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"alpha", "consumed_inputs"})
    x = imp.tensor(node, 0)
    imp.new(node, eluLayer(float(attrs.get("alpha", 1.0)), Name=imp.layer_name(node, "elu")), [x], x.kind)


@translates("Gelu")
def _gelu(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"approximate"})
    approximate = attrs.get("approximate", b"none")
    if approximate not in (b"none", b"tanh"):
        imp.refuse(node, "attribute 'approximate'", quote(approximate), "ONNX allows 'none' and 'tanh'")
    x = imp.tensor(node, 0)
    layer = geluLayer(Approximation=approximate.decode(), Name=imp.layer_name(node, "gelu"))
    imp.new(node, layer, [x], x.kind)


@translates("Softplus")
def _softplus(imp, node):
    imp.check_attrs(node, imp.attrs(node), set())
    x = imp.tensor(node, 0)
    imp.new(node, softplusLayer(Name=imp.layer_name(node, "softplus")), [x], x.kind)


@translates("HardSigmoid")
def _hard_sigmoid(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"alpha", "beta", "consumed_inputs"})
    x = imp.tensor(node, 0)
    layer = hardSigmoidLayer(Alpha=float(attrs.get("alpha", 0.2)), Beta=float(attrs.get("beta", 0.5)),
                             Name=imp.layer_name(node, "hardsigmoid"))
    imp.new(node, layer, [x], x.kind)


@translates("HardSwish")
def _hard_swish(imp, node):
    imp.check_attrs(node, imp.attrs(node), set())
    x = imp.tensor(node, 0)
    imp.new(node, hardSwishLayer(Name=imp.layer_name(node, "hardswish")), [x], x.kind)


@translates("Softmax")
def _softmax(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axis"})
    x = imp.tensor(node, 0)
    axis = attrs.get("axis", 1 if imp.opset < 13 else -1)
    rank = 4 if x.kind == "nchw" else 2
    if not -rank <= axis < rank:
        imp.refuse(node, "attribute 'axis'", axis, f"the input has rank {rank}")
    axis %= rank
    h, w, _ = x.shape
    if x.kind == "flat_chw":
        ok = False
    elif rank == 2:
        ok = axis == 1
    elif imp.opset < 13:      # softmax over the flattened dimensions axis..end
        ok = axis == 1 and h == 1 and w == 1
    else:
        ok = axis == 1
    if not ok:
        imp.refuse(node, "attribute 'axis'", attrs.get("axis", "the default"),
                   "only a softmax over the channels is supported (softmaxLayer)")
    imp.new(node, softmaxLayer(Name=imp.layer_name(node, "softmax")), [x], x.kind)


def _same_rank(exp, layer, op: str, **attrs):
    """One node ``op`` on the layer's input, keeping its rank."""
    return exp.node(op, [exp.input(layer)], layer.Name, **attrs), exp.rank_of(layer)


@exports(ReLULayer)
def _relu_layer(exp, layer):
    return _same_rank(exp, layer, "Relu")


@exports(LeakyReLULayer)
def _leaky_relu_layer(exp, layer):
    return _same_rank(exp, layer, "LeakyRelu", alpha=float(layer.Scale))


@exports(ClippedReLULayer)
def _clipped_relu_layer(exp, layer):
    lo = exp.const(f"{layer.Name}_min", 0.0)
    hi = exp.const(f"{layer.Name}_max", layer.Ceiling)
    x = exp.input(layer)
    return exp.node("Clip", [x, lo, hi], layer.Name), exp.rank_of(layer)


@exports(SigmoidLayer)
def _sigmoid_layer(exp, layer):
    return _same_rank(exp, layer, "Sigmoid")


@exports(TanhLayer)
def _tanh_layer(exp, layer):
    return _same_rank(exp, layer, "Tanh")


@exports(SoftmaxLayer)
def _softmax_layer(exp, layer):
    return _same_rank(exp, layer, "Softmax", axis=1)


@exports(SwishLayer)
def _swish_layer(exp, layer):
    return write_swish(exp, exp.input(layer), layer.Name), exp.rank_of(layer)


@exports(ELULayer)
def _elu_layer(exp, layer):
    return _same_rank(exp, layer, "Elu", alpha=float(layer.Alpha))


@exports(GELULayer)
def _gelu_layer(exp, layer):
    if exp.opset >= 20:
        return _same_rank(exp, layer, "Gelu", approximate=layer.Approximation)
    return write_gelu(exp, exp.input(layer), layer.Name, layer.Approximation), exp.rank_of(layer)


@exports(SoftplusLayer)
def _softplus_layer(exp, layer):
    return _same_rank(exp, layer, "Softplus")


@exports(HardSigmoidLayer)
def _hard_sigmoid_layer(exp, layer):
    return _same_rank(exp, layer, "HardSigmoid", alpha=float(layer.Alpha), beta=float(layer.Beta))


@exports(HardSwishLayer)
def _hard_swish_layer(exp, layer):
    if exp.opset >= 14:
        return _same_rank(exp, layer, "HardSwish")
    return write_hard_swish(exp, exp.input(layer), layer.Name), exp.rank_of(layer)
