"""Combining tensors (``additionLayer``, ``depthConcatenationLayer``, ``concatenationLayer``):
the ``add`` op, the ``concat`` op (which never runs: the planner has each producer write its
channel slice of the result in place) and the ``copy`` op that places an input which cannot be
written in place (the network input, or a tensor other ops read too).

Templates: ``templates/c/ops/{add,copy}.c.j2``, ``templates/cuda/ops/{add,copy}.cu.j2``.
"""

from __future__ import annotations

import numpy as np

from ..ir import Op, Pixels, Tensor
from ..quant.fixedpoint import multiply_by_quantized_multiplier
from ..quant.scheme import OpQuant, clamp_range, multipliers, requantize
from ..layers import AdditionLayer, ConcatenationLayer
from . import cortexm
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


@lowers(AdditionLayer)
def lower_addition(layer, inputs: list[Tensor], out: Tensor) -> Op:
    return Op("add", layer.Name, [layer.Name], inputs, out, Pixels(*out.shape))


@lowers(ConcatenationLayer)
def lower_concatenation(layer, inputs: list[Tensor], out: Tensor) -> Op:
    return Op("concat", layer.Name, [layer.Name], inputs, out, Pixels(*out.shape))


def copy_op(name: str, layers: list[str], src: Tensor, dst: Tensor) -> Op:
    """An op that copies ``src`` into ``dst`` (a view with its own pitch)."""
    return Op("copy", name, layers, [src], dst, Pixels(*src.shape))


class _PerValue(OpKind):
    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)


ADD_LEFT_SHIFT = 20         # TFLite's int8 addition: inputs scaled up by 2^20 before their multipliers


@op_kind
class Add(_PerValue):
    """int8 as TensorFlow Lite adds: each input (q - zero point) * 2^20 times s_i / (2 max s), summed,
    times 2 max s / (2^20 s_out)."""
    name = "add"
    elementwise = True
    epilogue = True

    def int8(self, op, qin, qout, ctx) -> None:
        twice_max = 2.0 * max(np.float64(q.scale) for q in qin)
        m0, shift = multipliers(np.array([np.float64(q.scale) / twice_max for q in qin]
                                         + [twice_max / (2**ADD_LEFT_SHIFT * np.float64(qout.scale))]))
        op.weights = {"m": m0, "s": shift}          # one per input, then the output's
        op.quant = OpQuant(qin, qout, *clamp_range(op.act.bounds if op.act else None, qout),
                           consts={"LEFT_SHIFT": ADD_LEFT_SHIFT})

    def c_kernel_int8(self, op):
        return cortexm.int8_add(op)

    def int8_reference(self, op, xs):
        m0, shift, q = op.weights["m"], op.weights["s"], op.quant
        total = sum(multiply_by_quantized_multiplier((x.astype(np.int64) - qp.zero_point) << ADD_LEFT_SHIFT,
                                                     m0[k], shift[k]) for k, (x, qp) in enumerate(zip(xs, q.inputs)))
        return requantize(total, m0[-1], shift[-1], q)


@op_kind
class Concat(OpKind):
    """Placement removes it: each input becomes a channel slice of the output, or is copied there."""
    name = "concat"
    concatenates = True


@op_kind
class Copy(_PerValue):
    """int8: requantized to the destination's scale (exactly a copy when both are the same)."""
    name = "copy"

    def int8(self, op, qin, qout, ctx) -> None:
        m0, shift = multipliers(np.float64(qin[0].scale) / np.float64(qout.scale))
        op.weights = {"m": m0, "s": shift}
        op.quant = OpQuant(qin, qout)

    def int8_reference(self, op, xs):
        x = xs[0].astype(np.int64) - op.quant.inputs[0].zero_point
        return requantize(x, op.weights["m"][0], op.weights["s"][0], op.quant)
