"""crossChannelNormalizationLayer: local response normalization across channels (AlexNet's).

MATLAB's formula: y = x / (K + Alpha * ss / WindowChannelSize)^Beta, where ss is the sum of the
squares of x over a window of channels around the element's: the previous floor((w-1)/2) and
the following floor(w/2) channels (w = WindowChannelSize; the window is asymmetric for an even
w), clipped at the first and last channel. ONNX's LRN (size, alpha, beta, bias = K) is the same
formula with the same window. PyTorch's ``nn.LocalResponseNorm`` (k defaults to 1 there) too for
an odd size; for an even size its window is the mirror image (size/2 channels before, size/2 - 1
after).

MATLAB's limits: WindowChannelSize a positive integer <= 16, Beta >= 0.01, K >= 1e-5.
"""

from __future__ import annotations

import numpy as np

from .. import options as opt
from ..errors import LayerError
from .base import Layer, check_single_input, constructor

MAX_WINDOW = 16


class CrossChannelNormalizationLayer(Layer):
    FUNCTION = "crossChannelNormalizationLayer"
    CLASS = "CrossChannelNormalizationLayer"
    TYPE = "Cross Channel Normalization"
    BASE_NAME = "crossnorm"
    OPTIONS = ["Alpha", "Beta", "K", "Name"]
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["WindowChannelSize", "Alpha", "Beta", "K"])]

    def __init__(self, windowChannelSize, *pairs, **kwargs):  # noqa: N803
        Layer.__init__(self)
        n = opt.pos_int(self.label, "WindowChannelSize", windowChannelSize)
        if n > MAX_WINDOW:
            raise LayerError(self.label, "WindowChannelSize", windowChannelSize,
                             f"expected a positive integer <= {MAX_WINDOW}")
        self._p.update(WindowChannelSize=n, Alpha=1e-4, Beta=0.75, K=2.0)
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        label = self.label
        if key == "Alpha":
            self._p[key] = opt.real_scalar(label, key, value)
        elif key == "Beta":
            beta = opt.real_scalar(label, key, value)
            if beta < 0.01:
                raise LayerError(label, key, value, "expected a number >= 0.01")
            self._p[key] = beta
        elif key == "K":
            k = opt.real_scalar(label, key, value)
            if k < 1e-5:
                raise LayerError(label, key, value, "expected a number >= 1e-5")
            self._p[key] = k
        else:
            self._set(key, value)

    @property
    def window(self) -> tuple[int, int]:
        """(channels before, channels after) the element's in its window."""
        n = self.WindowChannelSize
        return (n - 1) // 2, n // 2

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        return tuple(in_shapes[0])

    def forward(self, xs):
        x = xs[0]
        before, after = self.window
        c = x.shape[-1]
        pad = [(0, 0)] * (x.ndim - 1) + [(before, after)]
        sq = np.pad(x * x, pad)                 # channel j of x is channel j + before here
        ss = sum(sq[..., j:j + c] for j in range(before + after + 1))
        with np.errstate(invalid="ignore"):     # a negative Alpha may make the base negative: NaN, as in C
            return x / (self.K + self.Alpha * ss / self.WindowChannelSize) ** self.Beta

    def describe(self):
        return f"cross channel normalization with {self.WindowChannelSize} channels per element"


@constructor
def crossChannelNormalizationLayer(windowChannelSize, *pairs,  # noqa: N802,N803
                                   **kwargs) -> CrossChannelNormalizationLayer:
    """Channel-wise local response normalization (MATLAB ``crossChannelNormalizationLayer``)."""
    return CrossChannelNormalizationLayer(windowChannelSize, *pairs, **kwargs)
