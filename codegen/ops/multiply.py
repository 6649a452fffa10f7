"""Elementwise products and scalings: ``multiplicationLayer`` (the ``mul`` op) and ``scalingLayer``.

A ``mul`` op multiplies its inputs value by value, left to right (MATLAB's order: in1 .* in2 .*
...), with singleton dimensions of an input expanding (its typed attributes, a
:class:`~codegen.ir.Broadcast`, say which dimensions of which input expand: a feature map times
a 1 x 1 x c gate reads the gate at channel c for every pixel). Like ``add``, it may run in place
(over a full-size input whose buffer dies at it: the planner compares sizes, and an input of the
output's size expands nothing) and takes a clamp activation as its epilogue.

A ``scalingLayer`` whose Scale and Offset vary only along channels (scalars or 1 x 1 x c: every
constant the ONNX importer maps onto it) lowers to the per-channel ``scale_shift`` op of batch
normalization, which the planner may fold into a preceding convolution or fully connected layer;
``x * s + 0`` and ``x * 1 + o`` are exactly ``x * s`` and ``x + o`` in float32, so a scaling
that only multiplies or only adds rounds as that operation does. Other sizes (an h x w x c or
h x w x 1 Scale, say) lower to the ``scale`` op, which reads both with a
:class:`~codegen.ir.Broadcast`. A scaling by 1 with offset 0 computes nothing.

Templates: ``templates/c/ops/{mul,scale}.c.j2``, ``templates/cuda/ops/{mul,scale}.cu.j2``.
"""

from __future__ import annotations

import numpy as np

from ..ir import Broadcast, Op, Pixels, Tensor
from ..layers import MultiplicationLayer, ScalingLayer
from ..layers.scaling import hwc
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value

SCALING = "scaling layer: Scale .* x + Offset"


def _expands(shape, out_shape) -> tuple:
    return tuple(bool(d == 1 and n > 1) for d, n in zip(shape, out_shape))


@lowers(MultiplicationLayer)
def lower_multiplication(layer, inputs: list[Tensor], out: Tensor) -> Op:
    h, w, c = out.shape
    expand = tuple(_expands(t.shape, out.shape) for t in inputs)
    return Op("mul", layer.Name, [layer.Name], inputs, out, Broadcast(h, w, c, expand))


@lowers(ScalingLayer)
def lower_scaling(layer, inputs: list[Tensor], out: Tensor) -> Op | Tensor:
    if layer.is_identity():
        return inputs[0]
    h, w, c = out.shape
    arrays = [np.asarray(layer.Scale, np.float32), np.asarray(layer.Offset, np.float32)]
    if all(hwc(a)[:2] == (1, 1) for a in arrays):
        scale, shift = (np.ascontiguousarray(np.broadcast_to(a.reshape(-1), (c,)), np.float32) for a in arrays)
        return Op("scale_shift", layer.Name, [layer.Name], inputs, out, Pixels(h, w, c, note=SCALING),
                  {"scale": scale, "shift": shift})
    expand = ((False, False, False), *(_expands(hwc(a), out.shape) for a in arrays))
    weights = {role: np.ascontiguousarray(a.reshape(hwc(a)), np.float32).ravel()
               for role, a in zip(("scale", "offset"), arrays)}
    return Op("scale", layer.Name, [layer.Name], inputs, out, Broadcast(h, w, c, expand), weights)


class _PerValue(OpKind):
    elementwise = True
    epilogue = True

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)


@op_kind
class Mul(_PerValue):
    name = "mul"


@op_kind
class Scale(_PerValue):
    """y = x * scale + offset with Scale and Offset of any size that expands to the input's."""
    name = "scale"
