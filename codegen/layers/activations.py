"""reluLayer, leakyReluLayer, clippedReluLayer, sigmoidLayer and tanhLayer (elementwise activations)."""

from __future__ import annotations

import numpy as np

from .. import options as opt
from .base import Layer, check_single_input, constructor


class _Activation(Layer):
    OPTIONS = ["Name"]
    GROUPS = [(None, ["Name"])]

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        return tuple(in_shapes[0])


class ReLULayer(_Activation):
    FUNCTION = "reluLayer"
    CLASS = "ReLULayer"
    TYPE = "ReLU"
    BASE_NAME = "relu"

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        return np.maximum(xs[0], 0.0)

    def describe(self):
        return "ReLU"


class LeakyReLULayer(_Activation):
    FUNCTION = "leakyReluLayer"
    CLASS = "LeakyReLULayer"
    TYPE = "Leaky ReLU"
    BASE_NAME = "leakyrelu"
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["Scale"])]

    def __init__(self, scale=0.01, *pairs, **kwargs):
        Layer.__init__(self)
        if isinstance(scale, str):          # leakyReluLayer('Name', 'x') - pairs without a scale
            pairs, scale = (scale, *pairs), 0.01
        self._p["Scale"] = opt.real_scalar(self.label, "Scale", scale)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        x = xs[0]
        return np.where(x > 0, x, x * self.Scale)

    def describe(self):
        return f"Leaky ReLU with scale {self.Scale:g}"


class ClippedReLULayer(_Activation):
    FUNCTION = "clippedReluLayer"
    CLASS = "ClippedReLULayer"
    TYPE = "Clipped ReLU"
    BASE_NAME = "clippedrelu"
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["Ceiling"])]

    def __init__(self, ceiling, *pairs, **kwargs):
        Layer.__init__(self)
        self._p["Ceiling"] = opt.real_scalar(self.label, "Ceiling", ceiling, positive=True)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        return np.minimum(np.maximum(xs[0], 0.0), self.Ceiling)

    def describe(self):
        return f"Clipped ReLU with ceiling {self.Ceiling:g}"


class SigmoidLayer(_Activation):
    FUNCTION = "sigmoidLayer"
    CLASS = "SigmoidLayer"
    TYPE = "Sigmoid"
    BASE_NAME = "sigmoid"

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        e = np.exp(-np.abs(xs[0]))                          # 1 / (1 + exp(-x)) without overflow, exact tails
        return np.where(xs[0] >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def describe(self):
        return "sigmoid"


class TanhLayer(_Activation):
    FUNCTION = "tanhLayer"
    CLASS = "TanhLayer"
    TYPE = "Tanh"
    BASE_NAME = "tanh"

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        return np.tanh(xs[0])

    def describe(self):
        return "Hyperbolic tangent"


@constructor
def reluLayer(*pairs, **kwargs) -> ReLULayer:  # noqa: N802
    """ReLU layer: max(x, 0)."""
    return ReLULayer(*pairs, **kwargs)


@constructor
def leakyReluLayer(scale=0.01, *pairs, **kwargs) -> LeakyReLULayer:  # noqa: N802
    """Leaky ReLU layer: x for x > 0, scale * x otherwise (default scale 0.01)."""
    return LeakyReLULayer(scale, *pairs, **kwargs)


@constructor
def clippedReluLayer(ceiling, *pairs, **kwargs) -> ClippedReLULayer:  # noqa: N802
    """Clipped ReLU layer: min(max(x, 0), ceiling)."""
    return ClippedReLULayer(ceiling, *pairs, **kwargs)


@constructor
def sigmoidLayer(*pairs, **kwargs) -> SigmoidLayer:  # noqa: N802
    """Sigmoid layer: 1 / (1 + exp(-x))."""
    return SigmoidLayer(*pairs, **kwargs)


@constructor
def tanhLayer(*pairs, **kwargs) -> TanhLayer:  # noqa: N802
    """Hyperbolic tangent layer: tanh(x)."""
    return TanhLayer(*pairs, **kwargs)
