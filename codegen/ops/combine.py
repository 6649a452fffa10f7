"""Combining tensors (``additionLayer``, ``depthConcatenationLayer``, ``concatenationLayer``):
the ``add`` op, the ``concat`` op (which never runs: the planner has each producer write its
channel slice of the result in place) and the ``copy`` op that places an input which cannot be
written in place (the network input, or a tensor other ops read too).

Templates: ``templates/c/ops/{add,copy}.c.j2``, ``templates/cuda/ops/{add,copy}.cu.j2``.
"""

from __future__ import annotations

from ..ir import Op, Pixels, Tensor
from ..layers import AdditionLayer, ConcatenationLayer
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


@op_kind
class Add(_PerValue):
    name = "add"
    elementwise = True
    epilogue = True


@op_kind
class Concat(OpKind):
    """Placement removes it: each input becomes a channel slice of the output, or is copied there."""
    name = "concat"
    concatenates = True


@op_kind
class Copy(_PerValue):
    name = "copy"
