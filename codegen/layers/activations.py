"""Elementwise activations: reluLayer, leakyReluLayer, clippedReluLayer, sigmoidLayer, tanhLayer,
swishLayer, eluLayer, geluLayer, softplusLayer (MATLAB's), and two extensions for what ONNX and
PyTorch have and MATLAB lacks: hardSigmoidLayer and hardSwishLayer.

The references are float64 and written to be exact in the tails (no overflow, no cancellation):
softplus as log(1 + exp(-|x|)) + max(x, 0), GELU through erfc, the tanh GELU as
x * sigmoid(2u) (the same function: (1 + tanh(u)) / 2 = sigmoid(2u)).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

from .. import options as opt
from .base import Layer, check_single_input, constructor


def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow, exact tails."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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
        return _sigmoid(xs[0])

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


class SwishLayer(_Activation):
    FUNCTION = "swishLayer"
    CLASS = "SwishLayer"
    TYPE = "Swish"
    BASE_NAME = "swish"

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        with np.errstate(invalid="ignore"):                 # -inf * 0: NaN, as in PyTorch
            return xs[0] * _sigmoid(xs[0])

    def describe(self):
        return "Swish"


class ELULayer(_Activation):
    FUNCTION = "eluLayer"
    CLASS = "ELULayer"
    TYPE = "ELU"
    BASE_NAME = "elu"
    GROUPS = [(None, ["Name", "Alpha"])]

    def __init__(self, alpha=1.0, *pairs, **kwargs):
        Layer.__init__(self)
        if isinstance(alpha, str):          # eluLayer('Name', 'x') - pairs without an alpha
            pairs, alpha = (alpha, *pairs), 1.0
        self._p["Alpha"] = opt.real_scalar(self.label, "Alpha", alpha)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        x = xs[0]
        return np.where(x >= 0, x, self.Alpha * np.expm1(np.minimum(x, 0.0)))

    def describe(self):
        return f"ELU with Alpha {self.Alpha:g}"


class GELULayer(_Activation):
    FUNCTION = "geluLayer"
    CLASS = "GELULayer"
    TYPE = "GELU"
    BASE_NAME = "gelu"
    OPTIONS = ["Name", "Approximation"]
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["Approximation"])]
    APPROXIMATIONS = ["none", "tanh"]
    TANH_BETA = np.sqrt(2.0 / np.pi)            # tanh(sqrt(2/pi) (x + 0.044715 x^3)) approximates erf(x / sqrt(2))
    TANH_KAPPA = 0.044715

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._p["Approximation"] = "none"
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        if key == "Approximation":
            self._p[key] = opt.choice(self.label, key, value, self.APPROXIMATIONS)
        else:
            super()._option(key, value)

    def forward(self, xs):
        x = xs[0]
        with np.errstate(over="ignore", invalid="ignore"):      # -inf * 0: NaN, as in PyTorch
            if self.Approximation == "none":
                return 0.5 * x * erfc(-x / np.sqrt(2.0))        # x/2 (1 + erf(x/sqrt2)) without cancellation
            u = self.TANH_BETA * (x + self.TANH_KAPPA * x ** 3)
            return x * _sigmoid(2.0 * u)                        # x/2 (1 + tanh(u))

    def describe(self):
        return "GELU"


class SoftplusLayer(_Activation):
    """MATLAB's softplusLayer (Reinforcement Learning Toolbox; newer releases have one in the Deep
    Learning Toolbox too): log(1 + exp(x)), no options but Name."""
    FUNCTION = "softplusLayer"
    CLASS = "SoftplusLayer"
    TYPE = "Softplus"
    BASE_NAME = "softplus"

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        with np.errstate(invalid="ignore"):                 # NaN in, NaN out
            return np.logaddexp(0.0, xs[0])

    def describe(self):
        return "Softplus"


class HardSigmoidLayer(_Activation):
    """An extension, not a MATLAB layer: ONNX's HardSigmoid, max(0, min(1, Alpha * x + Beta)),
    with ONNX's defaults Alpha 0.2, Beta 0.5 (PyTorch's nn.Hardsigmoid is Alpha 1/6)."""
    FUNCTION = "hardSigmoidLayer"
    CLASS = "HardSigmoidLayer"
    TYPE = "Hard Sigmoid"
    BASE_NAME = "hardsigmoid"
    OPTIONS = ["Name", "Alpha", "Beta"]
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["Alpha", "Beta"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._p.update(Alpha=0.2, Beta=0.5)
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        if key in ("Alpha", "Beta"):
            self._p[key] = opt.real_scalar(self.label, key, value)
        else:
            super()._option(key, value)

    def forward(self, xs):
        return np.clip(self.Alpha * xs[0] + self.Beta, 0.0, 1.0)

    def describe(self):
        return f"Hard sigmoid with Alpha {self.Alpha:g} and Beta {self.Beta:g} (extension, not a MATLAB layer)"


class HardSwishLayer(_Activation):
    """An extension, not a MATLAB layer: ONNX's HardSwish and PyTorch's nn.Hardswish,
    x * max(0, min(1, x/6 + 1/2)), computed as PyTorch does: x * min(max(x + 3, 0), 6) / 6."""
    FUNCTION = "hardSwishLayer"
    CLASS = "HardSwishLayer"
    TYPE = "Hard Swish"
    BASE_NAME = "hardswish"

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def forward(self, xs):
        x = xs[0]
        return np.where(x < -3.0, 0.0, np.where(x > 3.0, x, x * (x + 3.0) / 6.0))

    def describe(self):
        return "Hard swish (extension, not a MATLAB layer)"


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


@constructor
def swishLayer(*pairs, **kwargs) -> SwishLayer:  # noqa: N802
    """Swish layer: x * sigmoid(x) = x / (1 + exp(-x))."""
    return SwishLayer(*pairs, **kwargs)


@constructor
def eluLayer(alpha=1.0, *pairs, **kwargs) -> ELULayer:  # noqa: N802
    """ELU layer: x for x >= 0, alpha * (exp(x) - 1) otherwise (default Alpha 1)."""
    return ELULayer(alpha, *pairs, **kwargs)


@constructor
def geluLayer(*pairs, **kwargs) -> GELULayer:  # noqa: N802
    """GELU layer: x/2 * (1 + erf(x / sqrt(2))); Approximation='tanh' uses
    tanh(sqrt(2/pi) * (x + 0.044715 x^3)) for the erf."""
    return GELULayer(*pairs, **kwargs)


@constructor
def softplusLayer(*pairs, **kwargs) -> SoftplusLayer:  # noqa: N802
    """Softplus layer: log(1 + exp(x))."""
    return SoftplusLayer(*pairs, **kwargs)


@constructor
def hardSigmoidLayer(*pairs, **kwargs) -> HardSigmoidLayer:  # noqa: N802
    """Hard sigmoid layer (an extension: ONNX HardSigmoid; MATLAB has no such layer):
    max(0, min(1, Alpha * x + Beta)), default Alpha 0.2, Beta 0.5 (PyTorch's: Alpha=1/6)."""
    return HardSigmoidLayer(*pairs, **kwargs)


@constructor
def hardSwishLayer(*pairs, **kwargs) -> HardSwishLayer:  # noqa: N802
    """Hard swish layer (an extension: ONNX HardSwish, PyTorch nn.Hardswish; MATLAB has no such
    layer): x * max(0, min(1, x/6 + 1/2))."""
    return HardSwishLayer(*pairs, **kwargs)
