"""convolution2dLayer and groupedConvolution2dLayer.

Weights are ``h x w x C x F`` (convolution) or ``h x w x C/G x F/G x G`` (grouped), bias
``1 x 1 x F`` or ``1 x 1 x F/G x G``. Output channels of a grouped convolution are group
major: all filters of group 1, then group 2, ... The reference computes cross-correlation
(no filter flip), as MATLAB does.
"""

from __future__ import annotations

import numpy as np

from .. import initializers as init
from .. import options as opt
from ..errors import LayerError
from . import spatial
from .base import Layer, check_single_input, constructor, vec2

_COMMON_OPTIONS = ["Stride", "DilationFactor", "Padding", "PaddingValue", "WeightsInitializer",
                   "BiasInitializer", "Weights", "Bias", "WeightLearnRateFactor", "BiasLearnRateFactor",
                   "WeightL2Factor", "BiasL2Factor", "Name"]
_FACTORS = ["WeightLearnRateFactor", "BiasLearnRateFactor", "WeightL2Factor", "BiasL2Factor"]


class _ConvBase(Layer):
    SETTABLE = {"Name", "Weights", "Bias", "WeightsInitializer", "BiasInitializer", *_FACTORS}

    def _init_common(self, filter_size, pairs, kwargs):
        Layer.__init__(self)
        self._p.update(
            FilterSize=opt.int_vector(self.label, "FilterSize", filter_size, (1, 2), 1, expand_to=2),
            Stride=[1, 1], DilationFactor=[1, 1], PaddingMode="manual", PaddingSize=[0, 0, 0, 0],
            PaddingValue=0.0, WeightsInitializer="glorot", BiasInitializer="zeros", Weights=None, Bias=None,
            WeightLearnRateFactor=1.0, BiasLearnRateFactor=1.0, WeightL2Factor=1.0, BiasL2Factor=0.0)

    def _option(self, key, value):
        label = self.label
        if key in ("Stride", "DilationFactor"):
            self._p[key] = opt.int_vector(label, key, value, (1, 2), 1, expand_to=2)
        elif key == "Padding":
            self._p["PaddingMode"], self._p["PaddingSize"] = opt.padding(label, value)
        elif key == "PaddingValue":
            if isinstance(value, str):
                self._p[key] = opt.choice(label, key, value, spatial.PADDING_VALUE_MODES)
            else:
                self._p[key] = opt.real_scalar(label, key, value)
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
    def Padding(self):  # noqa: N802 - deprecated MATLAB property: [a b] when symmetric
        if self.PaddingMode == "same":
            return "same"
        t, b, l, r = self.PaddingSize
        return [t, l] if (t == b and l == r) else list(self.PaddingSize)

    def _resolve_spatial(self, in_shape):
        h, w, _ = in_shape
        f, s, d = self.FilterSize, self.Stride, self.DilationFactor
        if self.PaddingMode == "same":
            self._p["PaddingSize"] = [*spatial.same_padding(h, f[0], s[0], d[0]),
                                      *spatial.same_padding(w, f[1], s[1], d[1])]
        return spatial.output_size(self.label, "FilterSize", (h, w), f, s, d, self.PaddingSize)

    def _pad_text(self):
        return "'same'" if self.PaddingMode == "same" else vec2(self.PaddingSize)

    def _weights_as_groups(self) -> np.ndarray:
        """Weights as h x w x C/G x F/G x G."""
        raise NotImplementedError

    def _bias_flat(self) -> np.ndarray:
        return self.Bias.reshape(-1, order="F").astype(np.float64)   # group-major: F/G fastest

    def forward(self, xs):
        x = xs[0]
        wg = self._weights_as_groups().astype(np.float64)
        kh, kw, cg, fg, g = wg.shape
        xp = spatial.pad_input(x, self.PaddingSize, self.PaddingValue)
        n = x.shape[0]
        oh, ow = self._out_hw
        out = np.zeros((n, oh, ow, g, fg))
        for ky, kx, view in spatial.windows(xp, self.FilterSize, self.Stride, self.DilationFactor, (oh, ow)):
            patch = view.reshape(n, oh, ow, g, cg)
            out += np.einsum("nhwgc,cfg->nhwgf", patch, wg[ky, kx], optimize=True)
        return out.reshape(n, oh, ow, g * fg) + self._bias_flat()


class Convolution2DLayer(_ConvBase):
    FUNCTION = "convolution2dLayer"
    CLASS = "Convolution2DLayer"
    TYPE = "2-D Convolution"
    BASE_NAME = "conv"
    OPTIONS = _COMMON_OPTIONS + ["NumChannels"]
    GROUPS = [
        (None, ["Name"]),
        ("Hyperparameters", ["FilterSize", "NumChannels", "NumFilters", "Stride", "DilationFactor",
                             "PaddingMode", "PaddingSize", "PaddingValue"]),
        ("Learnable Parameters", ["Weights", "Bias"]),
    ]

    def __init__(self, filterSize, numFilters, *pairs, **kwargs):  # noqa: N803 - MATLAB names
        self._init_common(filterSize, pairs, kwargs)
        self._p["NumFilters"] = opt.pos_int(self.label, "NumFilters", numFilters)
        self._p["NumChannels"] = "auto"
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        if key == "NumChannels":
            if isinstance(value, str) and value.lower() == "auto":
                self._p[key] = "auto"
            else:
                self._p[key] = opt.pos_int(self.label, key, value)
        else:
            super()._option(key, value)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        if self.NumChannels == "auto":
            self._p["NumChannels"] = c
        elif self.NumChannels != c:
            raise LayerError(self.label, "NumChannels", self.NumChannels,
                             f"the input has {c} channels; set NumChannels to {c} or 'auto'")
        self._out_hw = self._resolve_spatial(in_shapes[0])
        return (*self._out_hw, self.NumFilters)

    def learnables(self):
        kh, kw = self.FilterSize
        c, f = self.NumChannels, self.NumFilters
        return {"Weights": ((kh, kw, c, f), kh * kw * c, kh * kw * f, "WeightsInitializer"),
                "Bias": ((1, 1, f), kh * kw * c, kh * kw * f, "BiasInitializer")}

    def _weights_as_groups(self):
        return self.Weights[..., None]

    def describe(self):
        kh, kw = self.FilterSize
        depth = f"x{self.NumChannels}" if self.NumChannels != "auto" else ""
        return (f"{self.NumFilters} {kh}x{kw}{depth} convolutions with stride {vec2(self.Stride)} "
                f"and padding {self._pad_text()}")

    def macs(self, in_shapes, out_shape):
        return out_shape[0] * out_shape[1] * out_shape[2] * self.FilterSize[0] * self.FilterSize[1] * in_shapes[0][2]


class GroupedConvolution2DLayer(_ConvBase):
    FUNCTION = "groupedConvolution2dLayer"
    CLASS = "GroupedConvolution2DLayer"
    TYPE = "2-D Grouped Convolution"
    BASE_NAME = "groupedconv"
    OPTIONS = _COMMON_OPTIONS + ["NumChannelsPerGroup"]
    GROUPS = [
        (None, ["Name"]),
        ("Hyperparameters", ["FilterSize", "NumGroups", "NumChannelsPerGroup", "NumFiltersPerGroup", "Stride",
                             "DilationFactor", "PaddingMode", "PaddingSize", "PaddingValue"]),
        ("Learnable Parameters", ["Weights", "Bias"]),
    ]

    def __init__(self, filterSize, numFiltersPerGroup, numGroups, *pairs, **kwargs):  # noqa: N803
        self._init_common(filterSize, pairs, kwargs)
        self._p["NumFiltersPerGroup"] = opt.pos_int(self.label, "NumFiltersPerGroup", numFiltersPerGroup)
        if isinstance(numGroups, str):
            if numGroups.lower() != "channel-wise":
                raise LayerError(self.label, "NumGroups", numGroups, "expected a positive integer or 'channel-wise'")
            self._p["NumGroups"] = "channel-wise"
        else:
            self._p["NumGroups"] = opt.pos_int(self.label, "NumGroups", numGroups)
        self._p["NumChannelsPerGroup"] = "auto"
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        if key == "NumChannelsPerGroup":
            if isinstance(value, str) and value.lower() == "auto":
                self._p[key] = "auto"
            else:
                self._p[key] = opt.pos_int(self.label, key, value)
        else:
            super()._option(key, value)

    @property
    def NumFilters(self):  # noqa: N802 - total number of output channels
        g = self.NumGroups
        return None if g == "channel-wise" else g * self.NumFiltersPerGroup

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        if self.NumGroups == "channel-wise":
            self._p["NumGroups"] = c
        g = self.NumGroups
        if c % g:
            raise LayerError(self.label, "NumGroups", g,
                             f"the input has {c} channels, which is not a multiple of NumGroups={g}")
        cg = c // g
        if self.NumChannelsPerGroup == "auto":
            self._p["NumChannelsPerGroup"] = cg
        elif self.NumChannelsPerGroup != cg:
            raise LayerError(self.label, "NumChannelsPerGroup", self.NumChannelsPerGroup,
                             f"the input has {c} channels in {g} groups, i.e. {cg} per group; set {cg} or 'auto'")
        self._out_hw = self._resolve_spatial(in_shapes[0])
        return (*self._out_hw, g * self.NumFiltersPerGroup)

    def learnables(self):
        kh, kw = self.FilterSize
        cg, fg, g = self.NumChannelsPerGroup, self.NumFiltersPerGroup, self.NumGroups
        return {"Weights": ((kh, kw, cg, fg, g), kh * kw * cg, kh * kw * fg, "WeightsInitializer"),
                "Bias": ((1, 1, fg, g), kh * kw * cg, kh * kw * fg, "BiasInitializer")}

    def _weights_as_groups(self):
        return self.Weights

    def describe(self):
        kh, kw = self.FilterSize
        g = self.NumGroups
        groups = "channel-wise" if g == "channel-wise" else f"{g} groups of"
        depth = f"x{self.NumChannelsPerGroup}" if self.NumChannelsPerGroup != "auto" else ""
        return (f"{groups} {self.NumFiltersPerGroup} {kh}x{kw}{depth} convolutions with stride "
                f"{vec2(self.Stride)} and padding {self._pad_text()}")

    def macs(self, in_shapes, out_shape):
        return (out_shape[0] * out_shape[1] * out_shape[2] * self.FilterSize[0] * self.FilterSize[1]
                * self.NumChannelsPerGroup)


@constructor
def convolution2dLayer(filterSize, numFilters, *pairs, **kwargs) -> Convolution2DLayer:  # noqa: N802,N803
    """2-D convolution layer (MATLAB ``convolution2dLayer``)."""
    return Convolution2DLayer(filterSize, numFilters, *pairs, **kwargs)


@constructor
def groupedConvolution2dLayer(filterSize, numFiltersPerGroup, numGroups, *pairs,  # noqa: N802,N803
                              **kwargs) -> GroupedConvolution2DLayer:
    """2-D grouped convolution layer; ``numGroups='channel-wise'`` gives a depthwise convolution."""
    return GroupedConvolution2DLayer(filterSize, numFiltersPerGroup, numGroups, *pairs, **kwargs)

