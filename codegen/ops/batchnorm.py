"""Batch normalization (``batchNormalizationLayer``) with trained statistics: a per-channel
``scale_shift`` op, y = x * scale + shift, which the planner folds into a preceding convolution
or fully connected layer (exact in real arithmetic: w' = w * scale, b' = b * scale + shift).

Templates: ``templates/c/ops/scale_shift.c.j2``, ``templates/cuda/ops/scale_shift.cu.j2``.
"""

from __future__ import annotations

import numpy as np

from ..ir import Op, Pixels, Tensor
from ..layers import BatchNormalizationLayer
from ..quant.scheme import OpQuant, affine, affine_reference, clamp_range
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


@lowers(BatchNormalizationLayer)
def lower_batchnorm(layer, inputs: list[Tensor], out: Tensor) -> Op:
    a, b = layer.scale_shift()
    h, w, c = out.shape
    return Op("scale_shift", layer.Name, [layer.Name], inputs, out, Pixels(h, w, c),
              {"scale": a.astype(np.float32), "shift": b.astype(np.float32)})


@op_kind
class ScaleShift(OpKind):
    name = "scale_shift"
    elementwise = True
    epilogue = True

    def int8(self, op, qin, qout, ctx) -> None:
        """int8: a per-channel affine (one int8 weight, an int32 bias, a multiplier per channel)."""
        op.weights = affine(op.weights["scale"], op.weights["shift"], qin[0], qout)
        op.quant = OpQuant(qin, qout, *clamp_range(op.act.bounds if op.act else None, qout))

    def int8_reference(self, op, xs):
        return affine_reference(xs[0], op.weights, np.arange(op.attrs.c), op.quant)

    def per_channel_affine(self, op) -> tuple[np.ndarray, np.ndarray]:
        return op.weights["scale"].astype(np.float64), op.weights["shift"].astype(np.float64)

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)
