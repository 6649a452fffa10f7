"""transposedConv2dLayer: the transpose of a 2-D convolution (upsampling).

MATLAB's semantics (TransposedConvolution2DLayer):

- weights ``FilterSize(1) x FilterSize(2) x NumFilters x NumChannels`` (filters and channels
  swapped with respect to convolution2dLayer), bias ``1 x 1 x NumFilters``;
- every input pixel (iy, ix) adds its channels times the filter taps to the uncropped result at
  (iy * Stride(1) + ky, ix * Stride(2) + kx); the uncropped result is
  ``Stride .* (inputSize - 1) + FilterSize`` big, and ``CroppingSize = [t b l r]`` rows and
  columns are trimmed from its top, bottom, left and right: output size
  ``Stride .* (inputSize - 1) + FilterSize - cropping + OutputSizeOffset``;
- ``Cropping='same'`` makes the output ``inputSize .* Stride``: the total crop
  ``max(FilterSize - Stride, 0)`` is split with the smaller half at the top (left) and the extra
  row (column) at the bottom (right); where the filter is smaller than the stride, the
  ``Stride - FilterSize`` missing rows (columns) are added at the bottom (right), where no input
  reaches (they hold the bias). That is MATLAB's own rule (TransposedConvolution2D's
  ``setCroppingAndOutputSizeOffsetIfSame``: t = floor(total/2), b = ceil(total/2),
  OutputSizeOffset = max(0, Stride - FilterSize));
- manual cropping that would leave no output: MATLAB adds the least OutputSizeOffset (below the
  stride) that makes the output one row (column), and refuses the input size if none does.

``OutputSizeOffset`` is not a property here (MATLAB hides it too); ``output_offset`` gives it
after ``resolve``. The layer has no dilation, padding value or groups: MATLAB's has none.
"""

from __future__ import annotations

import numpy as np

from .. import initializers as init
from .. import options as opt
from ..errors import LayerError
from .base import Layer, check_single_input, constructor, vec2

_FACTORS = ["WeightLearnRateFactor", "BiasLearnRateFactor", "WeightL2Factor", "BiasL2Factor"]


def same_cropping(f: int, s: int) -> tuple[int, int, int]:
    """MATLAB's 'same' cropping of one dimension: (before, after, output offset)."""
    total = f - s
    offset = max(0, -total)
    total += offset
    return total // 2, total - total // 2, offset


def taps_reaching(n_in: int, n_out: int, f: int, s: int, before: int) -> int:
    """How many (output, tap) pairs of one dimension read an input: output y, tap k read input
    i = (y + before - k) / s when that is an integer in [0, n_in)."""
    y = np.arange(n_out)[:, None] + before - np.arange(f)[None, :]
    return int(np.count_nonzero((y % s == 0) & (y >= 0) & (y < n_in * s)))


class TransposedConvolution2DLayer(Layer):
    FUNCTION = "transposedConv2dLayer"
    CLASS = "TransposedConvolution2DLayer"
    TYPE = "2-D Transposed Convolution"
    BASE_NAME = "transposed-conv"
    OPTIONS = ["Stride", "Cropping", "NumChannels", "WeightsInitializer", "BiasInitializer", "Weights", "Bias",
               *_FACTORS, "Name"]
    SETTABLE = {"Name", "Weights", "Bias", "WeightsInitializer", "BiasInitializer", *_FACTORS}
    GROUPS = [
        (None, ["Name"]),
        ("Hyperparameters", ["FilterSize", "NumChannels", "NumFilters", "Stride", "CroppingMode", "CroppingSize"]),
        ("Learnable Parameters", ["Weights", "Bias"]),
    ]

    def __init__(self, filterSize, numFilters, *pairs, **kwargs):  # noqa: N803 - MATLAB names
        Layer.__init__(self)
        label = self.label
        self._p.update(
            FilterSize=opt.int_vector(label, "FilterSize", filterSize, (1, 2), 1, expand_to=2),
            NumChannels="auto", NumFilters=opt.pos_int(label, "NumFilters", numFilters), Stride=[1, 1],
            CroppingMode="manual", CroppingSize=[0, 0, 0, 0], WeightsInitializer="glorot", BiasInitializer="zeros",
            Weights=None, Bias=None, WeightLearnRateFactor=1.0, BiasLearnRateFactor=1.0, WeightL2Factor=1.0,
            BiasL2Factor=0.0)
        self._offset = (0, 0)
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        label = self.label
        if key == "Stride":
            self._p[key] = opt.int_vector(label, key, value, (1, 2), 1, expand_to=2)
        elif key == "Cropping":
            self._p["CroppingMode"], self._p["CroppingSize"] = opt.padding(label, value, prop="Cropping")
        elif key == "NumChannels":
            if isinstance(value, str) and value.lower() == "auto":
                self._p[key] = "auto"
            else:
                self._p[key] = opt.pos_int(label, key, value)
        else:
            self._set(key, value)

    def _set(self, key, value):
        label = self.label
        if key == "WeightsInitializer":
            self._p[key] = init.check(label, key, value, init.WEIGHT_INITIALIZERS)
        elif key == "BiasInitializer":
            self._p[key] = init.check(label, key, value, init.BIAS_INITIALIZERS)
        elif key in _FACTORS:
            self._p[key] = opt.real_scalar(label, key, value, nonneg=True)
        else:
            super()._set(key, value)

    @property
    def Cropping(self):  # noqa: N802 - MATLAB's older property: 'same', or [a b] when symmetric
        if self.CroppingMode == "same":
            return "same"
        t, b, l, r = self.CroppingSize
        return [t, l] if (t == b and l == r) else list(self.CroppingSize)

    @property
    def output_offset(self) -> tuple[int, int]:
        """MATLAB's OutputSizeOffset: rows and columns past the uncropped result (known after resolve)."""
        return self._offset

    # ------------------------------------------------------------------ shapes
    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        if self.NumChannels == "auto":
            self._p["NumChannels"] = c
        elif self.NumChannels != c:
            raise LayerError(self.label, "NumChannels", self.NumChannels,
                             f"the input has {c} channels; set NumChannels to {c} or 'auto'")
        f, s = self.FilterSize, self.Stride
        if self.CroppingMode == "same":
            (t, b, oh), (l, r, ow) = same_cropping(f[0], s[0]), same_cropping(f[1], s[1])
            self._p["CroppingSize"] = [t, b, l, r]
            self._offset = (oh, ow)
        else:
            crop = self.CroppingSize
            offsets = []
            for dim, n in enumerate((h, w)):
                full = s[dim] * (n - 1) + f[dim]
                least = max(0, 1 - (full - crop[2 * dim] - crop[2 * dim + 1]))
                if least >= s[dim]:
                    which = "height" if dim == 0 else "width"
                    raise LayerError(
                        self.label, "CroppingSize", crop,
                        f"cropping {crop[2 * dim]}+{crop[2 * dim + 1]} rows of the {which} {full} of the uncropped "
                        f"result (input {which} {n}, stride {s[dim]}, filter {f[dim]}) leaves no output; reduce it")
                offsets.append(least)
            self._offset = tuple(offsets)
        t, b, l, r = self.CroppingSize
        oh = s[0] * (h - 1) + f[0] - t - b + self._offset[0]
        ow = s[1] * (w - 1) + f[1] - l - r + self._offset[1]
        self._out_hw = (oh, ow)
        return (oh, ow, self.NumFilters)

    def learnables(self):
        kh, kw = self.FilterSize
        c, f = self.NumChannels, self.NumFilters
        return {"Weights": ((kh, kw, f, c), kh * kw * c, kh * kw * f, "WeightsInitializer"),
                "Bias": ((1, 1, f), kh * kw * c, kh * kw * f, "BiasInitializer")}

    # ------------------------------------------------------------------ reference
    def forward(self, xs):
        """Scatter every input pixel into the uncropped result (grown by the output offset), then crop."""
        x = xs[0]
        n, h, w, _ = x.shape
        (kh, kw), (sh, sw) = self.FilterSize, self.Stride
        t, _, l, _ = self.CroppingSize
        oh, ow = self._out_hw
        weights = self.Weights.astype(np.float64)               # kh x kw x F x C
        full = np.zeros((n, max(sh * (h - 1) + kh, t + oh), max(sw * (w - 1) + kw, l + ow), self.NumFilters))
        for ky in range(kh):
            for kx in range(kw):
                contrib = np.einsum("nhwc,fc->nhwf", x, weights[ky, kx], optimize=True)
                full[:, ky: ky + sh * (h - 1) + 1: sh, kx: kx + sw * (w - 1) + 1: sw, :] += contrib
        return full[:, t: t + oh, l: l + ow, :] + self.Bias.reshape(-1).astype(np.float64)

    def describe(self):
        kh, kw = self.FilterSize
        depth = f"x{self.NumChannels}" if self.NumChannels != "auto" else ""
        crop = "'same'" if self.CroppingMode == "same" else vec2(self.CroppingSize)
        return (f"{self.NumFilters} {kh}x{kw}{depth} transposed convolutions with stride {vec2(self.Stride)} "
                f"and cropping {crop}")

    def macs(self, in_shapes, out_shape):
        """Multiply-adds of the taps that reach an output (cropped ones are not computed)."""
        h, w, c = in_shapes[0]
        t, _, l, _ = self.CroppingSize
        rows = taps_reaching(h, out_shape[0], self.FilterSize[0], self.Stride[0], t)
        cols = taps_reaching(w, out_shape[1], self.FilterSize[1], self.Stride[1], l)
        return rows * cols * c * out_shape[2]


@constructor
def transposedConv2dLayer(filterSize, numFilters, *pairs, **kwargs) -> TransposedConvolution2DLayer:  # noqa: N802,N803
    """2-D transposed convolution layer (MATLAB ``transposedConv2dLayer``)."""
    return TransposedConvolution2DLayer(filterSize, numFilters, *pairs, **kwargs)
