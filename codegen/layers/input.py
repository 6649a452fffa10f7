"""imageInputLayer: the network's input and its data normalization.

Normalizations (MATLAB):
- ``'zerocenter'``: x - Mean
- ``'zscore'``: (x - Mean) / StandardDeviation
- ``'rescale-symmetric'``: 2 (x - Min) / (Max - Min) - 1
- ``'rescale-zero-one'``: (x - Min) / (Max - Min)
- ``'none'``, or a function handle (reference only; code generation refuses it).

MATLAB computes empty statistics from the training data. A network built here has no
training data, so empty statistics default to the values that make the normalization the
identity: Mean 0, StandardDeviation 1, Min 0 (or -1 for 'rescale-symmetric'), Max 1.
Statistics are a scalar, ``1 x 1 x C`` or ``h x w x c``.
"""

from __future__ import annotations

import numpy as np

from .. import options as opt
from ..errors import LayerError, NO_VALUE
from .base import Layer, constructor

NORMALIZATIONS = ["zerocenter", "zscore", "rescale-symmetric", "rescale-zero-one", "none"]
STATISTICS = ["Mean", "StandardDeviation", "Min", "Max"]


class ImageInputLayer(Layer):
    FUNCTION = "imageInputLayer"
    CLASS = "ImageInputLayer"
    TYPE = "Image Input"
    BASE_NAME = "imageinput"
    NUM_INPUTS = 0
    OPTIONS = ["Normalization", "NormalizationDimension", "Mean", "StandardDeviation", "Min", "Max",
               "SplitComplexInputs", "Name"]
    SETTABLE = {"Name", *STATISTICS}
    GROUPS = [
        (None, ["Name", "InputSize", "SplitComplexInputs"]),
        ("Hyperparameters", ["Normalization", "NormalizationDimension", "Mean", "StandardDeviation", "Min",
                             "Max"]),
    ]

    def __init__(self, inputSize, *pairs, **kwargs):  # noqa: N803 - MATLAB name
        Layer.__init__(self)
        size = opt.int_vector(self.label, "InputSize", inputSize, (2, 3), 1)
        if len(size) == 2:
            size.append(1)
        self._p.update(InputSize=size, Normalization="zerocenter", NormalizationDimension="auto",
                       Mean=None, StandardDeviation=None, Min=None, Max=None, SplitComplexInputs=False)
        self._apply_options(pairs, kwargs)
        self._check_statistics()

    @property
    def input_names(self):
        return []

    def _option(self, key, value):
        label = self.label
        if key == "Normalization":
            self._p[key] = value if callable(value) else opt.choice(label, key, value, NORMALIZATIONS)
        elif key == "NormalizationDimension":
            self._p[key] = opt.choice(label, key, value, ["auto", "channel", "element", "all"])
        elif key == "SplitComplexInputs":
            if value not in (False, 0):
                raise LayerError(label, key, value, "only false (0) is supported: inputs are real")
        else:
            self._set(key, value)

    def _set(self, key, value):
        super()._set(key, value)
        if key in STATISTICS and "InputSize" in self._p:
            self._check_statistics()

    def _check_statistics(self):
        h, w, c = self.InputSize
        for key in STATISTICS:
            v = self._p[key]
            if v is None:
                continue
            if v.size == 1:
                v = v.reshape(1, 1, 1)
            elif v.size == c and v.shape[-1] == c or (v.ndim == 1 and v.size == c):
                v = v.reshape(1, 1, c)
            elif v.size == h * w * c:
                v = v.reshape(h, w, c)
            else:
                raise LayerError(self.label, key, v,
                                 f"expected a scalar, 1x1x{c} or {h}x{w}x{c} array for input size {h}x{w}x{c}")
            if key == "StandardDeviation" and not np.all(v > 0):
                raise LayerError(self.label, key, v, "all values must be positive")
            self._p[key] = v
        lo, hi = self._p["Min"], self._p["Max"]
        if lo is not None and hi is not None and not np.all(np.broadcast_to(hi, np.broadcast_shapes(
                hi.shape, lo.shape)) > lo):
            raise LayerError(self.label, "Max", hi, "every Max must be greater than the matching Min")

    def resolve(self, in_shapes):
        if in_shapes:
            raise LayerError(self.label, None, NO_VALUE, "an input layer cannot have inputs")
        return tuple(self.InputSize)

    def affine(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The normalization as y = (x - sub) * mul + add with float64 arrays broadcastable to
        (H, W, C); None for 'none'."""
        norm = self.Normalization
        stat = lambda key, default: (np.float64(default) if self._p[key] is None  # noqa: E731
                                     else self._p[key].astype(np.float64))
        if norm == "none":
            return None
        if norm == "zerocenter":
            return stat("Mean", 0.0), np.float64(1.0), np.float64(0.0)
        if norm == "zscore":
            return stat("Mean", 0.0), 1.0 / stat("StandardDeviation", 1.0), np.float64(0.0)
        lo = stat("Min", -1.0 if norm == "rescale-symmetric" else 0.0)
        hi = stat("Max", 1.0)
        if norm == "rescale-zero-one":
            return lo, 1.0 / (hi - lo), np.float64(0.0)
        return lo, 2.0 / (hi - lo), np.float64(-1.0)   # rescale-symmetric

    def forward(self, xs):
        x = xs[0]
        if callable(self.Normalization):
            return np.asarray(self.Normalization(x), dtype=np.float64)
        aff = self.affine()
        if aff is None:
            return x
        sub, mul, add = aff
        return (x - sub) * mul + add

    def describe(self):
        size = "x".join(map(str, self.InputSize))
        norm = self.Normalization
        if callable(norm):
            return f"{size} images with custom normalization"
        return f"{size} images" if norm == "none" else f"{size} images with '{norm}' normalization"


@constructor
def imageInputLayer(inputSize, *pairs, **kwargs) -> ImageInputLayer:  # noqa: N802,N803
    """Image input layer (MATLAB ``imageInputLayer``); ``inputSize`` is [h w c]."""
    return ImageInputLayer(inputSize, *pairs, **kwargs)
