"""fullyConnectedLayer: y = W x + b.

Weights are ``OutputSize x InputSize`` and bias ``OutputSize x 1``. A spatial input
``h x w x c`` is flattened in MATLAB's column-major order (h fastest, then w, then c), so
weights exported from MATLAB load unchanged. The output is ``1 x 1 x OutputSize``.
"""

from __future__ import annotations

import numpy as np

from .. import initializers as init
from .. import options as opt
from ..errors import LayerError
from .base import Layer, check_single_input, constructor

_FACTORS = ["WeightLearnRateFactor", "BiasLearnRateFactor", "WeightL2Factor", "BiasL2Factor"]


def matlab_flatten(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N, H*W*C) in MATLAB's column-major order of h x w x c."""
    return x.transpose(0, 3, 2, 1).reshape(x.shape[0], -1)


class FullyConnectedLayer(Layer):
    FUNCTION = "fullyConnectedLayer"
    CLASS = "FullyConnectedLayer"
    TYPE = "Fully Connected"
    BASE_NAME = "fc"
    OPTIONS = ["WeightsInitializer", "BiasInitializer", "Weights", "Bias", *_FACTORS, "Name"]
    SETTABLE = {"Name", "Weights", "Bias", "WeightsInitializer", "BiasInitializer", *_FACTORS}
    GROUPS = [
        (None, ["Name"]),
        ("Hyperparameters", ["InputSize", "OutputSize"]),
        ("Learnable Parameters", ["Weights", "Bias"]),
    ]

    def __init__(self, outputSize, *pairs, **kwargs):  # noqa: N803
        Layer.__init__(self)
        self._p.update(OutputSize=opt.pos_int(self.label, "OutputSize", outputSize), InputSize="auto",
                       WeightsInitializer="glorot", BiasInitializer="zeros", Weights=None, Bias=None,
                       WeightLearnRateFactor=1.0, BiasLearnRateFactor=1.0, WeightL2Factor=1.0, BiasL2Factor=0.0)
        self._apply_options(pairs, kwargs)

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

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        n = h * w * c
        if self.InputSize not in ("auto", n):
            raise LayerError(self.label, "InputSize", self.InputSize, f"the input has {h}x{w}x{c} = {n} elements")
        self._p["InputSize"] = n
        return (1, 1, self.OutputSize)

    def learnables(self):
        o, i = self.OutputSize, self.InputSize
        return {"Weights": ((o, i), i, o, "WeightsInitializer"),
                "Bias": ((o, 1), i, o, "BiasInitializer")}

    def forward(self, xs):
        flat = matlab_flatten(xs[0])
        y = flat @ self.Weights.astype(np.float64).T + self.Bias.ravel().astype(np.float64)
        return y.reshape(y.shape[0], 1, 1, -1)

    def describe(self):
        return f"{self.OutputSize} fully connected layer"

    def macs(self, in_shapes, out_shape):
        return self.InputSize * self.OutputSize


@constructor
def fullyConnectedLayer(outputSize, *pairs, **kwargs) -> FullyConnectedLayer:  # noqa: N802,N803
    """Fully connected layer with ``outputSize`` outputs."""
    return FullyConnectedLayer(outputSize, *pairs, **kwargs)
