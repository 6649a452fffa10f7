"""Elementwise activations (``reluLayer``, ``leakyReluLayer``, ``clippedReluLayer``, ``sigmoidLayer``,
``tanhLayer``): what each
computes in C (and CUDA: the same statement is valid in both), and the ``act`` op that applies
one on its own.

An activation is an :class:`~codegen.ir.Activation`: a C statement on the lvalue ``{v}``, and,
for the clamps of the ReLU family, a SIMD expression on ``{e}`` (the ``V_*`` macros of
``templates/c/kernels/simd.c.j2``). Clamps fuse into the op that produces their input (see
:mod:`codegen.plan`); other activations run as an ``act`` op. To add one: a layer in
:mod:`codegen.layers.activations` and an ``@activation`` function here.

Templates: ``templates/c/ops/act.c.j2``, ``templates/cuda/ops/act.cu.j2``.
"""

from __future__ import annotations

from ..names import float_literal
from ..ir import Activation, Op, Pixels, Tensor
from ..layers import ClippedReLULayer, LeakyReLULayer, ReLULayer, SigmoidLayer, TanhLayer
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
                      layer=layer.Name)


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
                      vector=f"V_CLIP({{e}}, {c})", clamp=True, layer=layer.Name)


@activation(SigmoidLayer)
def _sigmoid(layer) -> Activation:
    return Activation("sigmoid", "sigmoid", "{v} = 1.0f / (1.0f + expf(-{v}));", layer=layer.Name)


@activation(TanhLayer)
def _tanh(layer) -> Activation:
    return Activation("tanh", "hyperbolic tangent", "{v} = tanhf({v});", layer=layer.Name)


@op_kind
class Act(OpKind):
    name = "act"
    elementwise = True
    activation_only = True

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)
