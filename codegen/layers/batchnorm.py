"""batchNormalizationLayer (inference): y = Scale * (x - TrainedMean) / sqrt(TrainedVariance + Epsilon) + Offset.

Each statistic and learnable is ``1 x 1 x C``. An untrained layer has TrainedMean 0 and
TrainedVariance 1 (MATLAB's initial values); Scale and Offset come from their initializers
('ones' and 'zeros' by default).
"""

from __future__ import annotations

import numpy as np

from .. import initializers as init
from .. import options as opt
from ..errors import LayerError
from .base import Layer, check_single_input, constructor

_FACTORS = ["ScaleLearnRateFactor", "OffsetLearnRateFactor", "ScaleL2Factor", "OffsetL2Factor"]


class BatchNormalizationLayer(Layer):
    FUNCTION = "batchNormalizationLayer"
    CLASS = "BatchNormalizationLayer"
    TYPE = "Batch Normalization"
    BASE_NAME = "batchnorm"
    OPTIONS = ["TrainedMean", "TrainedVariance", "Epsilon", "Scale", "Offset", "ScaleInitializer",
               "OffsetInitializer", "MeanDecay", "VarianceDecay", "NumChannels", *_FACTORS, "Name"]
    SETTABLE = {"Name", "TrainedMean", "TrainedVariance", "Scale", "Offset", "ScaleInitializer",
                "OffsetInitializer", *_FACTORS}
    GROUPS = [
        (None, ["Name", "NumChannels", "TrainedMean", "TrainedVariance"]),
        ("Hyperparameters", ["MeanDecay", "VarianceDecay", "Epsilon"]),
        ("Learnable Parameters", ["Offset", "Scale"]),
    ]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._p.update(NumChannels="auto", TrainedMean=None, TrainedVariance=None, Epsilon=1e-5,
                       MeanDecay=0.1, VarianceDecay=0.1, Scale=None, Offset=None, ScaleInitializer="ones",
                       OffsetInitializer="zeros", ScaleLearnRateFactor=1.0, OffsetLearnRateFactor=1.0,
                       ScaleL2Factor=1.0, OffsetL2Factor=1.0)
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        label = self.label
        if key == "Epsilon":
            eps = opt.real_scalar(label, key, value)
            if eps < 1e-5:
                raise LayerError(label, key, value, "expected a number >= 1e-5 (MATLAB's minimum)")
            self._p[key] = eps
        elif key in ("MeanDecay", "VarianceDecay"):
            v = opt.real_scalar(label, key, value)
            if not 0 <= v <= 1:
                raise LayerError(label, key, value, "expected a number in [0, 1]")
            self._p[key] = v
        elif key == "NumChannels":
            self._p[key] = "auto" if isinstance(value, str) and value.lower() == "auto" else opt.pos_int(
                label, key, value)
        else:
            self._set(key, value)

    def _set(self, key, value):
        label = self.label
        if key in ("ScaleInitializer", "OffsetInitializer"):
            self._p[key] = init.check(label, key, value, ["zeros", "ones", "narrow-normal"])
        elif key in _FACTORS:
            self._p[key] = opt.real_scalar(label, key, value, nonneg=True)
        else:
            super()._set(key, value)
            if key == "TrainedVariance" and self._p[key] is not None and np.any(self._p[key] < 0):
                raise LayerError(label, key, value, "variances must be nonnegative")

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        c = in_shapes[0][2]
        if self.NumChannels == "auto":
            self._p["NumChannels"] = c
        elif self.NumChannels != c:
            raise LayerError(self.label, "NumChannels", self.NumChannels,
                             f"the input has {c} channels; set NumChannels to {c} or 'auto'")
        return tuple(in_shapes[0])

    def learnables(self):
        c = self.NumChannels
        return {"TrainedMean": ((1, 1, c), c, c, None),
                "TrainedVariance": ((1, 1, c), c, c, None),
                "Scale": ((1, 1, c), c, c, "ScaleInitializer"),
                "Offset": ((1, 1, c), c, c, "OffsetInitializer")}

    def initialize(self, rng):
        if self._p["TrainedVariance"] is None:
            self._p["TrainedVariance"] = np.ones((1, 1, self.NumChannels), np.float32)
        super().initialize(rng)

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (a, b) in float64 with y = a * x + b."""
        a = self.Scale.ravel().astype(np.float64) / np.sqrt(self.TrainedVariance.ravel().astype(np.float64)
                                                            + self.Epsilon)
        return a, self.Offset.ravel().astype(np.float64) - a * self.TrainedMean.ravel().astype(np.float64)

    def forward(self, xs):
        mean = self.TrainedMean.ravel().astype(np.float64)
        var = self.TrainedVariance.ravel().astype(np.float64)
        return (self.Scale.ravel().astype(np.float64) * (xs[0] - mean) / np.sqrt(var + self.Epsilon)
                + self.Offset.ravel().astype(np.float64))

    def describe(self):
        c = self.NumChannels
        return "Batch normalization" if c == "auto" else f"Batch normalization with {c} channels"


@constructor
def batchNormalizationLayer(*pairs, **kwargs) -> BatchNormalizationLayer:  # noqa: N802
    """Batch normalization layer (MATLAB ``batchNormalizationLayer``), evaluated with trained statistics."""
    return BatchNormalizationLayer(*pairs, **kwargs)
