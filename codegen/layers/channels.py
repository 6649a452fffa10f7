"""Rearranging channels: channelShuffleLayer and channelSliceLayer. Both are extensions, not MATLAB
layers: they express what ONNX models of ShuffleNet-style networks do with Reshape/Transpose/
Reshape (a channel shuffle) and with Split or Slice on the channel axis, for which MATLAB's
layer set has no constructor.

- ``channelShuffleLayer(groups)``: the C = groups x (C / groups) channels seen as a
  groups x (C / groups) matrix (row-major, as ONNX's N x g x C/g x H x W view of them) and
  transposed: output channel ``j * groups + i`` is input channel ``i * (C / groups) + j``
  (1-based: output ``j * groups + i + 1`` is input ``i * C/groups + j + 1``).
- ``channelSliceLayer(firstChannel, numChannels)``: channels ``firstChannel`` to
  ``firstChannel + numChannels - 1`` of the input (1-based, as MATLAB indexes).

Both move values only: the reference is exact.
"""

from __future__ import annotations

from .. import options as opt
from ..errors import LayerError
from .base import Layer, check_single_input, constructor


class ChannelShuffleLayer(Layer):
    """An extension, not a MATLAB layer: ShuffleNet's channel shuffle in ``Groups`` groups."""
    FUNCTION = "channelShuffleLayer"
    CLASS = "ChannelShuffleLayer"
    TYPE = "Channel Shuffle"
    BASE_NAME = "shuffle"
    OPTIONS = ["Name"]
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["Groups"])]

    def __init__(self, groups, *pairs, **kwargs):
        Layer.__init__(self)
        self._p["Groups"] = opt.pos_int(self.FUNCTION, "Groups", groups)
        self._apply_options(pairs, kwargs)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        if c % self.Groups:
            raise LayerError(self.label, "Groups", self.Groups,
                             f"the input has {c} channels, which {self.Groups} groups do not divide")
        return (h, w, c)

    def forward(self, xs):
        x = xs[0]
        n, h, w, c = x.shape
        g = self.Groups
        return x.reshape(n, h, w, g, c // g).transpose(0, 1, 2, 4, 3).reshape(n, h, w, c)

    def describe(self):
        return f"Channel shuffle in {self.Groups} groups (extension, not a MATLAB layer)"


class ChannelSliceLayer(Layer):
    """An extension, not a MATLAB layer: a range of the input's channels."""
    FUNCTION = "channelSliceLayer"
    CLASS = "ChannelSliceLayer"
    TYPE = "Channel Slice"
    BASE_NAME = "slice"
    OPTIONS = ["Name"]
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["FirstChannel", "NumChannels"])]

    def __init__(self, firstChannel, numChannels, *pairs, **kwargs):  # noqa: N803
        Layer.__init__(self)
        self._p["FirstChannel"] = opt.pos_int(self.FUNCTION, "FirstChannel", firstChannel)
        self._p["NumChannels"] = opt.pos_int(self.FUNCTION, "NumChannels", numChannels)
        self._apply_options(pairs, kwargs)

    @property
    def channels(self) -> tuple[int, int]:
        """(first, end): the 0-based half-open range [first, end) of input channels kept."""
        return self.FirstChannel - 1, self.FirstChannel - 1 + self.NumChannels

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        if self.channels[1] > c:
            last = self.channels[1]
            raise LayerError(self.label, "NumChannels", self.NumChannels,
                             f"channels {self.FirstChannel} to {last} do not lie in the input's {c} channels")
        return (h, w, self.NumChannels)

    def forward(self, xs):
        first, end = self.channels
        return xs[0][..., first:end].copy()

    def describe(self):
        first, end = self.channels
        return f"Channels {first + 1} to {end} of the input (extension, not a MATLAB layer)"


@constructor
def channelShuffleLayer(groups, *pairs, **kwargs) -> ChannelShuffleLayer:  # noqa: N802
    """Channel shuffle layer (an extension: ShuffleNet's shuffle, ONNX Reshape/Transpose/Reshape;
    MATLAB has no such constructor): the channels as a groups x C/groups matrix, transposed."""
    return ChannelShuffleLayer(groups, *pairs, **kwargs)


@constructor
def channelSliceLayer(firstChannel, numChannels, *pairs, **kwargs) -> ChannelSliceLayer:  # noqa: N802,N803
    """Channel slice layer (an extension: ONNX Split/Slice on the channels, PyTorch x[:, a:b] and
    chunk; MATLAB has no such layer): channels firstChannel .. firstChannel + numChannels - 1
    (1-based)."""
    return ChannelSliceLayer(firstChannel, numChannels, *pairs, **kwargs)
