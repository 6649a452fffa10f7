"""maxPooling2dLayer, averagePooling2dLayer, globalAveragePooling2dLayer and globalMaxPooling2dLayer.

Max pooling ignores padding (pads act as -Inf). Average pooling with ``PaddingValue`` 0
(default) averages the padded zeros too (divides by the pool area); ``'mean'`` ignores the
padding (divides by the number of input elements in the window).
"""

from __future__ import annotations

import numpy as np

from .. import options as opt
from ..errors import LayerError
from . import spatial
from .base import Layer, check_single_input, constructor, vec2


class _Pool2d(Layer):
    OPTIONS = ["Stride", "Padding", "Name"]

    def _init_pool(self, pool_size, pairs, kwargs):
        Layer.__init__(self)
        self._p.update(PoolSize=opt.int_vector(self.label, "PoolSize", pool_size, (1, 2), 1, expand_to=2),
                       Stride=[1, 1], PaddingMode="manual", PaddingSize=[0, 0, 0, 0])
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        if key == "Stride":
            self._p[key] = opt.int_vector(self.label, key, value, (1, 2), 1, expand_to=2)
        elif key == "Padding":
            self._p["PaddingMode"], self._p["PaddingSize"] = opt.padding(self.label, value)
        else:
            self._set(key, value)

    @property
    def Padding(self):  # noqa: N802 - deprecated MATLAB property
        if self.PaddingMode == "same":
            return "same"
        t, b, l, r = self.PaddingSize
        return [t, l] if (t == b and l == r) else list(self.PaddingSize)

    def _pads_must_be_inside(self) -> bool:
        return True

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        f, s = self.PoolSize, self.Stride
        if self.PaddingMode == "same":
            self._p["PaddingSize"] = [*spatial.same_padding(h, f[0], s[0], 1), *spatial.same_padding(w, f[1], s[1], 1)]
        elif self._pads_must_be_inside():
            t, b, l, r = self.PaddingSize
            if max(t, b) >= f[0] or max(l, r) >= f[1]:
                raise LayerError(self.label, "PaddingSize", self.PaddingSize,
                                 f"each padding must be smaller than the pool size {vec2(f)}, "
                                 "or a window would hold padding only")
        self._out_hw = spatial.output_size(self.label, "PoolSize", (h, w), f, s, (1, 1), self.PaddingSize)
        return (*self._out_hw, c)

    def _pad_text(self):
        return "'same'" if self.PaddingMode == "same" else vec2(self.PaddingSize)

    def macs(self, in_shapes, out_shape):
        return out_shape[0] * out_shape[1] * out_shape[2] * self.PoolSize[0] * self.PoolSize[1]


class MaxPooling2DLayer(_Pool2d):
    FUNCTION = "maxPooling2dLayer"
    CLASS = "MaxPooling2DLayer"
    TYPE = "2-D Max Pooling"
    BASE_NAME = "maxpool"
    OPTIONS = _Pool2d.OPTIONS + ["HasUnpoolingOutputs"]
    GROUPS = [(None, ["Name"]),
              ("Hyperparameters", ["PoolSize", "Stride", "PaddingMode", "PaddingSize", "HasUnpoolingOutputs"])]

    def __init__(self, poolSize, *pairs, **kwargs):  # noqa: N803
        self._init_pool(poolSize, pairs, kwargs)
        self._p.setdefault("HasUnpoolingOutputs", False)

    def _option(self, key, value):
        if key == "HasUnpoolingOutputs":
            if value not in (False, 0):
                raise LayerError(self.label, key, value, "only false (0) is supported: no unpooling outputs")
            self._p[key] = False
        else:
            super()._option(key, value)

    def forward(self, xs):
        xp = spatial.pad_input(xs[0], self.PaddingSize, -np.inf)
        out = None
        for _, _, view in spatial.windows(xp, self.PoolSize, self.Stride, (1, 1), self._out_hw):
            out = view.copy() if out is None else np.maximum(out, view)
        return out

    def describe(self):
        ph, pw = self.PoolSize
        return f"{ph}x{pw} max pooling with stride {vec2(self.Stride)} and padding {self._pad_text()}"


class AveragePooling2DLayer(_Pool2d):
    FUNCTION = "averagePooling2dLayer"
    CLASS = "AveragePooling2DLayer"
    TYPE = "2-D Average Pooling"
    BASE_NAME = "avgpool"
    OPTIONS = _Pool2d.OPTIONS + ["PaddingValue"]
    GROUPS = [(None, ["Name"]),
              ("Hyperparameters", ["PoolSize", "Stride", "PaddingMode", "PaddingSize", "PaddingValue"])]

    def __init__(self, poolSize, *pairs, **kwargs):  # noqa: N803
        self._init_pool(poolSize, pairs, kwargs)
        self._p.setdefault("PaddingValue", 0.0)

    def _option(self, key, value):
        if key == "PaddingValue":
            if isinstance(value, str) and value.lower() == "mean":
                self._p[key] = "mean"
            elif isinstance(value, str) or opt.real_scalar(self.label, key, value) != 0:
                raise LayerError(self.label, key, value, "expected 0 or 'mean'")
            else:
                self._p[key] = 0.0
        else:
            super()._option(key, value)

    def _pads_must_be_inside(self):
        return self.PaddingValue == "mean"

    def forward(self, xs):
        x = xs[0]
        xp = spatial.pad_input(x, self.PaddingSize, 0.0)
        total = 0.0
        for _, _, view in spatial.windows(xp, self.PoolSize, self.Stride, (1, 1), self._out_hw):
            total = total + view
        if self.PaddingValue == "mean":
            ones = spatial.pad_input(np.ones((1, *x.shape[1:3], 1)), self.PaddingSize, 0.0)
            count = sum(v for _, _, v in spatial.windows(ones, self.PoolSize, self.Stride, (1, 1), self._out_hw))
            return total / count
        return total / (self.PoolSize[0] * self.PoolSize[1])

    def describe(self):
        ph, pw = self.PoolSize
        return f"{ph}x{pw} average pooling with stride {vec2(self.Stride)} and padding {self._pad_text()}"


class GlobalAveragePooling2DLayer(Layer):
    FUNCTION = "globalAveragePooling2dLayer"
    CLASS = "GlobalAveragePooling2DLayer"
    TYPE = "2-D Global Average Pooling"
    BASE_NAME = "gapool"
    GROUPS = [(None, ["Name"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        return (1, 1, in_shapes[0][2])

    def forward(self, xs):
        return xs[0].mean(axis=(1, 2), keepdims=True)

    def describe(self):
        return "2-D global average pooling"

    def macs(self, in_shapes, out_shape):
        h, w, c = in_shapes[0]
        return h * w * c


class GlobalMaxPooling2DLayer(Layer):
    FUNCTION = "globalMaxPooling2dLayer"
    CLASS = "GlobalMaxPooling2DLayer"
    TYPE = "2-D Global Max Pooling"
    BASE_NAME = "gmpool"
    GROUPS = [(None, ["Name"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        return (1, 1, in_shapes[0][2])

    def forward(self, xs):
        return xs[0].max(axis=(1, 2), keepdims=True)

    def describe(self):
        return "2-D global max pooling"

    def macs(self, in_shapes, out_shape):
        h, w, c = in_shapes[0]
        return h * w * c


@constructor
def maxPooling2dLayer(poolSize, *pairs, **kwargs) -> MaxPooling2DLayer:  # noqa: N802,N803
    """2-D max pooling layer (default stride [1 1])."""
    return MaxPooling2DLayer(poolSize, *pairs, **kwargs)


@constructor
def averagePooling2dLayer(poolSize, *pairs, **kwargs) -> AveragePooling2DLayer:  # noqa: N802,N803
    """2-D average pooling layer (default stride [1 1], PaddingValue 0)."""
    return AveragePooling2DLayer(poolSize, *pairs, **kwargs)


@constructor
def globalAveragePooling2dLayer(*pairs, **kwargs) -> GlobalAveragePooling2DLayer:  # noqa: N802
    """2-D global average pooling layer: H x W x C -> 1 x 1 x C."""
    return GlobalAveragePooling2DLayer(*pairs, **kwargs)


@constructor
def globalMaxPooling2dLayer(*pairs, **kwargs) -> GlobalMaxPooling2DLayer:  # noqa: N802
    """2-D global max pooling layer: H x W x C -> 1 x 1 x C."""
    return GlobalMaxPooling2DLayer(*pairs, **kwargs)
