"""Elementwise activations (``reluLayer``, ``leakyReluLayer``, ``clippedReluLayer``, ``sigmoidLayer``,
``tanhLayer``, ``swishLayer``, ``eluLayer``, ``geluLayer``, ``softplusLayer``, ``hardSigmoidLayer``,
``hardSwishLayer``): what each computes in C (and CUDA: the same statement is valid in both),
and the ``act`` op that applies one on its own.

The statements are float32 throughout (``expf``, ``expm1f``, ``log1pf``, ``erfcf``: no double
helper on a single-precision FPU) and exact in the tails where the textbook formula is not:
softplus as ``x + log1p(exp(-x))`` for x > 0 (no overflow), GELU as ``x/2 erfc(-x/sqrt2)`` (no
cancellation of ``1 + erf`` for x << 0), the tanh GELU as ``x * sigmoid(2u)``, which equals
``x/2 (1 + tanh(u))``. NaN propagates through each (the comparisons are false for NaN).

An activation is an :class:`~codegen.ir.Activation`: a C statement on the lvalue ``{v}``, and,
for the clamps of the ReLU family, a SIMD expression on ``{e}`` (the ``V_*`` macros of
``templates/c/kernels/simd.c.j2``). Clamps fuse into the op that produces their input (see
:mod:`codegen.plan`); other activations run as an ``act`` op. To add one: a layer in
:mod:`codegen.layers.activations` and an ``@activation`` function here.

Templates: ``templates/c/ops/act.c.j2``, ``templates/cuda/ops/act.cu.j2``.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..names import float_literal
from ..ir import Activation, Op, Pixels, Tensor
from ..layers import (ClippedReLULayer, ELULayer, GELULayer, HardSigmoidLayer, HardSwishLayer, LeakyReLULayer,
                      ReLULayer, SigmoidLayer, SoftplusLayer, SwishLayer, TanhLayer)
from ..quant.scheme import OpQuant, lookup_table
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value

ACTIVATIONS: dict[type, object] = {}


def activation(*layer_classes):
    """Register the decorated ``fn(layer) -> Activation`` for ``layer_classes``; their layers then
    lower to an ``act`` op."""
    def register(fn):
        for cls in layer_classes:
            ACTIVATIONS[cls] = fn
        lowers(*layer_classes)(lower_activation)
        return fn
    return register


def lower_activation(layer, inputs: list[Tensor], out: Tensor) -> Op:
    act = ACTIVATIONS[type(layer)](layer)
    h, w, c = out.shape
    return Op("act", layer.Name, [layer.Name], inputs, out, Pixels(h, w, c), act=act)


@activation(ReLULayer)
def _relu(layer) -> Activation:
    return Activation("relu", "ReLU", "{v} = {v} < 0.0f ? 0.0f : {v};", vector="V_RELU({e})", clamp=True,
                      layer=layer.Name, bounds=(0.0, float("inf")))


@activation(LeakyReLULayer)
def _leaky(layer) -> Activation:
    scale = float(layer.Scale)
    s = float_literal(scale)
    return Activation("leaky", f"leaky ReLU (scale {scale})", f"{{v}} = {{v}} < 0.0f ? {{v}} * {s} : {{v}};",
                      param=scale, vector=f"V_LEAKY({{e}}, {s})", clamp=True, layer=layer.Name)


@activation(ClippedReLULayer)
def _clipped(layer) -> Activation:
    ceiling = float(layer.Ceiling)
    c = float_literal(ceiling)
    return Activation("clipped", f"clipped ReLU (ceiling {ceiling})",
                      f"{{v}} = {{v}} < 0.0f ? 0.0f : ({{v}} > {c} ? {c} : {{v}});", param=ceiling,
                      vector=f"V_CLIP({{e}}, {c})", clamp=True, layer=layer.Name, bounds=(0.0, ceiling))


@activation(SigmoidLayer)
def _sigmoid(layer) -> Activation:
    return Activation("sigmoid", "sigmoid", "{v} = 1.0f / (1.0f + expf(-{v}));", layer=layer.Name)


@activation(TanhLayer)
def _tanh(layer) -> Activation:
    return Activation("tanh", "hyperbolic tangent", "{v} = tanhf({v});", layer=layer.Name)


def _literal(layer, prop: str) -> tuple[float, str]:
    """A property as a float and its float32 C literal; refused beyond float32's range."""
    value = float(getattr(layer, prop))
    if not abs(value) <= float(np.finfo(np.float32).max):
        raise UnsupportedError(f"{layer.label}: property '{prop}' is {value:g}; the generated code computes in "
                               "float32, whose largest value is 3.4028e+38")
    return value, float_literal(value)


@activation(SwishLayer)
def _swish(layer) -> Activation:
    return Activation("swish", "swish", "{v} = {v} / (1.0f + expf(-{v}));", layer=layer.Name)


@activation(ELULayer)
def _elu(layer) -> Activation:
    alpha, a = _literal(layer, "Alpha")
    return Activation("elu", f"ELU (alpha {alpha})", f"{{v}} = {{v}} < 0.0f ? {a} * expm1f({{v}}) : {{v}};",
                      param=alpha, layer=layer.Name)


@activation(GELULayer)
def _gelu(layer) -> Activation:
    if layer.Approximation == "none":
        m = float_literal(-1.0 / np.sqrt(2.0))
        return Activation("gelu", "GELU", f"{{v}} = 0.5f * {{v}} * erfcf({m} * {{v}});", layer=layer.Name)
    b = float_literal(-2.0 * GELULayer.TANH_BETA)
    k = float_literal(GELULayer.TANH_KAPPA)
    return Activation("gelu_tanh", "GELU (tanh approximation)",
                      f"{{v}} = {{v}} / (1.0f + expf({b} * {{v}} * (1.0f + {k} * {{v}} * {{v}})));", layer=layer.Name)


@activation(SoftplusLayer)
def _softplus(layer) -> Activation:
    return Activation("softplus", "softplus", "{v} = {v} > 0.0f ? {v} + log1pf(expf(-{v})) : log1pf(expf({v}));",
                      layer=layer.Name)


@activation(HardSigmoidLayer)
def _hard_sigmoid(layer) -> Activation:
    alpha, a = _literal(layer, "Alpha")
    beta, b = _literal(layer, "Beta")
    return Activation("hardsigmoid", f"hard sigmoid (alpha {alpha}, beta {beta})",
                      f"{{v}} = {{v}} * {a} + {b}; {{v}} = {{v}} < 0.0f ? 0.0f : ({{v}} > 1.0f ? 1.0f : {{v}});",
                      param=alpha, layer=layer.Name)


@activation(HardSwishLayer)
def _hard_swish(layer) -> Activation:
    return Activation("hardswish", "hard swish",
                      "{v} = {v} < -3.0f ? 0.0f : ({v} > 3.0f ? {v} : {v} * ({v} + 3.0f) / 6.0f);", layer=layer.Name)


def _float_function(net, op):
    layer = net.layer(op.layers[0])
    return lambda x: layer.forward([x])


@op_kind
class Act(OpKind):
    name = "act"
    elementwise = True
    activation_only = True
    int8_requantizes = False     # a table

    def int8(self, op, qin, qout, ctx) -> None:
        """int8: a table of the 256 outputs, from the layer's own float64 reference."""
        op.weights = {"lut": lookup_table(_float_function(ctx.net, op), qin[0], qout)}
        op.quant = OpQuant(qin, qout)

    def int8_reference(self, op, xs):
        return op.weights["lut"][xs[0].astype(np.int64) + 128]

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)
