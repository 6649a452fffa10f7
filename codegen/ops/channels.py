"""Rearranging channels (the extensions ``channelShuffleLayer`` and ``channelSliceLayer``): the
``permute_channels`` op (a channel shuffle: each output channel is one input channel) and the
``slice_channels`` op (a range of the input's channels; as the producer of a concatenation's
input it writes straight into its channel slice there, like any producer).

A shuffle whose input comes from a convolution that nothing else reads costs nothing: the
planner folds it into the convolution's filters (:meth:`PermuteChannels.channel_permutation`,
``codegen.ops.conv``'s ``fold_permutation``).

Templates: ``templates/c/ops/{permute_channels,slice_channels}.c.j2``,
``templates/cuda/ops/{permute_channels,slice_channels}.cu.j2``.
"""

from __future__ import annotations

from ..ir import ChannelRange, ChannelShuffle, Op, Tensor
from ..layers import ChannelShuffleLayer, ChannelSliceLayer
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


@lowers(ChannelShuffleLayer)
def lower_shuffle(layer, inputs: list[Tensor], out: Tensor) -> Op | Tensor:
    x = inputs[0]
    h, w, c = x.shape
    if layer.Groups in (1, c):           # a 1 x C or C x 1 matrix transposed: nothing moves
        return x
    return Op("permute_channels", layer.Name, [layer.Name], [x], out, ChannelShuffle(h, w, c, layer.Groups))


@lowers(ChannelSliceLayer)
def lower_slice(layer, inputs: list[Tensor], out: Tensor) -> Op | Tensor:
    x = inputs[0]
    h, w, c = x.shape
    first, end = layer.channels
    if (first, end) == (0, c):           # every channel: the input itself
        return x
    return Op("slice_channels", layer.Name, [layer.Name], [x], out, ChannelRange(h, w, end - first, c, first))


class _PerValue(OpKind):
    epilogue = True          # a following clamp activation (ReLU) is applied as the values are written

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)


@op_kind
class PermuteChannels(_PerValue):
    name = "permute_channels"

    def channel_permutation(self, op: Op) -> list[int] | None:
        a = op.attrs
        return [a.source(o) for o in range(a.c)]


@op_kind
class SliceChannels(_PerValue):
    name = "slice_channels"
