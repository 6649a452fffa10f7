"""``dropoutLayer`` (nothing: at prediction time the output is the input) and ``flattenLayer``
(the ``flatten`` op: a permuting copy from our HWC memory order into MATLAB's column-major
order of ``h x w x c``; nothing where the input is ``1 x 1 x c``, whose two orders agree).
A ``flatten`` whose only reader is a fully connected layer disappears in the plan: the fully
connected layer reads the unflattened input with its weight rows permuted (``reorder``, see
:func:`codegen.plan.absorb_reorders`).

Templates: ``templates/c/ops/flatten.c.j2``, ``templates/cuda/ops/flatten.cu.j2``,
``templates/c/ops/int8/flatten.c.j2``.
"""

from __future__ import annotations

import numpy as np

from ..ir import FlattenShape, Op, Tensor
from ..layers import DropoutLayer, FlattenLayer
from ..quant.scheme import OpQuant, multipliers, requantize
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


@lowers(DropoutLayer)
def lower_dropout(layer, inputs: list[Tensor], out: Tensor) -> Tensor:
    return inputs[0]


@lowers(FlattenLayer)
def lower_flatten(layer, inputs: list[Tensor], out: Tensor) -> Op | Tensor:
    x = inputs[0]
    h, w, c = x.shape
    if h == w == 1:
        return x                         # 1 x 1 x c: already in MATLAB's order
    return Op("flatten", layer.Name, [layer.Name], [x], out, FlattenShape(h, w, c))


@op_kind
class Flatten(OpKind):
    name = "flatten"

    def reorder(self, op):
        a = op.attrs
        hh, ww, cc = np.meshgrid(np.arange(a.h), np.arange(a.w), np.arange(a.c), indexing="ij")
        matlab_index = (hh + a.h * (ww + a.w * cc)).ravel()      # of each input value, in HWC order
        return np.argsort(matlab_index)                          # out[k] = in[perm[k]]

    def int8(self, op, qin, qout, ctx) -> None:
        """int8: the same permutation, requantized to the output's scale (a copy when they agree)."""
        m0, shift = multipliers(np.float64(qin[0].scale) / np.float64(qout.scale))
        op.weights = {"m": m0, "s": shift}
        op.quant = OpQuant(qin, qout)

    def int8_reference(self, op, xs):
        x = xs[0].astype(np.int64).reshape(-1)[self.reorder(op)] - op.quant.inputs[0].zero_point
        return requantize(x, op.weights["m"][0], op.weights["s"][0], op.quant).reshape(1, 1, -1)

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)
