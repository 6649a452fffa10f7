"""imageInputLayer and featureInputLayer: the network's input and its data normalization.

Normalizations (MATLAB):
- ``'zerocenter'``: x - Mean
- ``'zscore'``: (x - Mean) / StandardDeviation
- ``'rescale-symmetric'``: 2 (x - Min) / (Max - Min) - 1
- ``'rescale-zero-one'``: (x - Min) / (Max - Min)
- ``'none'``, or a function handle (reference only; code generation refuses it).

MATLAB computes empty statistics from the training data. A network built here has no
training data, so empty statistics default to the values that make the normalization the
identity: Mean 0, StandardDeviation 1, Min 0 (or -1 for 'rescale-symmetric'), Max 1.
An image input's statistics are a scalar, ``1 x 1 x C`` or ``h x w x c``; a feature input's a
scalar or ``numFeatures x 1`` (any vector of numFeatures values).

A feature input (MATLAB's data without spatial dimensions) is a ``1 x 1 x numFeatures`` tensor
here: a multilayer perceptron is ``featureInputLayer(640), fullyConnectedLayer(128), ...``.
``net.predict`` and ``lib.predict`` of such a network take one observation ``(numFeatures,)`` or
a batch ``(N, numFeatures)`` (or, as for any network, ``(1, 1, numFeatures)`` / ``(N, 1, 1,
numFeatures)``); features in, features out: given features, every output of size ``1 x 1 x K``
comes back as ``(K,)`` / ``(N, K)`` (other outputs keep ``(H, W, C)``), see :mod:`codegen.batch`.
"""

from __future__ import annotations

import numpy as np

from .. import options as opt
from ..errors import LayerError, NO_VALUE
from .base import Layer, constructor

NORMALIZATIONS = ["zerocenter", "zscore", "rescale-symmetric", "rescale-zero-one", "none"]
STATISTICS = ["Mean", "StandardDeviation", "Min", "Max"]


class _InputLayer(Layer):
    """What the two input layers share: no inputs, the normalization and its statistics."""
    NUM_INPUTS = 0
    OPTIONS = ["Normalization", "NormalizationDimension", "Mean", "StandardDeviation", "Min", "Max",
               "SplitComplexInputs", "Name"]
    SETTABLE = {"Name", *STATISTICS}
    GROUPS = [
        (None, ["Name", "InputSize", "SplitComplexInputs"]),
        ("Hyperparameters", ["Normalization", "NormalizationDimension", "Mean", "StandardDeviation", "Min",
                             "Max"]),
    ]
    DIMENSIONS = ["auto", "channel", "element", "all"]

    def _init_input(self, size, normalization: str, pairs, kwargs):
        Layer.__init__(self)
        self._p.update(Normalization=normalization, NormalizationDimension="auto", Mean=None,
                       StandardDeviation=None, Min=None, Max=None, SplitComplexInputs=False)
        self._apply_options(pairs, kwargs)
        self._p = {"Name": self._p["Name"], "InputSize": size, **self._p}   # the display's order
        self._check_statistics()          # once every option (the Name too) is known

    @property
    def input_names(self):
        return []

    @property
    def observation_shape(self) -> tuple:
        """The shape of one observation as the user gives it (``(H, W, C)``, ``(numFeatures,)``)."""
        raise NotImplementedError

    def _option(self, key, value):
        label = self.label
        if key == "Normalization":
            self._p[key] = value if callable(value) else opt.choice(label, key, value, NORMALIZATIONS)
        elif key == "NormalizationDimension":
            self._p[key] = opt.choice(label, key, value, self.DIMENSIONS)
        elif key == "SplitComplexInputs":
            if value not in (False, 0):
                raise LayerError(label, key, value, "only false (0) is supported: inputs are real")
        else:
            self._set(key, value)

    def _set(self, key, value):
        super()._set(key, value)
        if key in STATISTICS and "InputSize" in self._p:
            self._check_statistics()

    def _statistic(self, key: str, v: np.ndarray) -> np.ndarray:
        """A given statistic in its stored shape (LayerError if its size does not fit)."""
        raise NotImplementedError

    def _hwc(self, v: np.ndarray) -> np.ndarray:
        """A stored statistic broadcastable to the (H, W, C) tensor."""
        return v

    def _check_statistics(self):
        for key in STATISTICS:
            v = self._p[key]
            if v is None:
                continue
            v = self._statistic(key, v)
            if key == "StandardDeviation" and not np.all(v > 0):
                raise LayerError(self.label, key, v, "all values must be positive")
            self._p[key] = v
        lo, hi = self._p["Min"], self._p["Max"]
        if lo is not None and hi is not None:
            lo, hi = self._hwc(lo), self._hwc(hi)
            if not np.all(np.broadcast_to(hi, np.broadcast_shapes(hi.shape, lo.shape)) > lo):
                raise LayerError(self.label, "Max", self._p["Max"], "every Max must be greater than the matching Min")

    def affine(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The normalization as y = (x - sub) * mul + add with float64 arrays broadcastable to
        (H, W, C); None for 'none'."""
        norm = self.Normalization
        stat = lambda key, default: (np.float64(default) if self._p[key] is None  # noqa: E731
                                     else self._hwc(self._p[key]).astype(np.float64))
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

    def _describe(self, what: str) -> str:
        norm = self.Normalization
        if callable(norm):
            return f"{what} with custom normalization"
        return what if norm == "none" else f"{what} with '{norm}' normalization"


class ImageInputLayer(_InputLayer):
    FUNCTION = "imageInputLayer"
    CLASS = "ImageInputLayer"
    TYPE = "Image Input"
    BASE_NAME = "imageinput"

    def __init__(self, inputSize, *pairs, **kwargs):  # noqa: N803 - MATLAB name
        object.__setattr__(self, "_p", {"Name": ""})
        size = opt.int_vector(self.label, "InputSize", inputSize, (2, 3), 1)
        if len(size) == 2:
            size.append(1)
        self._init_input(size, "zerocenter", pairs, kwargs)

    @property
    def observation_shape(self):
        return tuple(self.InputSize)

    def _statistic(self, key, v):
        h, w, c = self.InputSize
        if v.size == 1:
            return v.reshape(1, 1, 1)
        if v.size == c and v.shape[-1] == c or (v.ndim == 1 and v.size == c):
            return v.reshape(1, 1, c)
        if v.size == h * w * c:
            return v.reshape(h, w, c)
        raise LayerError(self.label, key, v, f"expected a scalar, 1x1x{c} or {h}x{w}x{c} array for input size "
                         f"{h}x{w}x{c}")

    def resolve(self, in_shapes):
        if in_shapes:
            raise LayerError(self.label, None, NO_VALUE, "an input layer cannot have inputs")
        return tuple(self.InputSize)

    def describe(self):
        return self._describe(f"{'x'.join(map(str, self.InputSize))} images")


class FeatureInputLayer(_InputLayer):
    """MATLAB's featureInputLayer: ``numFeatures`` values per observation, default Normalization
    'none'; here a ``1 x 1 x numFeatures`` tensor."""
    FUNCTION = "featureInputLayer"
    CLASS = "FeatureInputLayer"
    TYPE = "Feature Input"
    BASE_NAME = "input"
    DIMENSIONS = ["auto", "channel", "all"]

    def __init__(self, numFeatures, *pairs, **kwargs):  # noqa: N803 - MATLAB name
        object.__setattr__(self, "_p", {"Name": ""})
        try:
            size = opt.pos_int(self.label, "InputSize", numFeatures)
        except LayerError:
            raise LayerError(self.label, "InputSize", numFeatures,
                             "numFeatures (the number of features) must be a positive integer") from None
        self._init_input(size, "none", pairs, kwargs)

    @property
    def observation_shape(self):
        return (self.InputSize,)

    def _statistic(self, key, v):
        n = self.InputSize
        if v.size == 1:
            return v.reshape(1, 1)
        if v.size == n and sum(d != 1 for d in v.shape) == 1:
            return v.reshape(n, 1)
        raise LayerError(self.label, key, v, f"expected a scalar or a vector of {n} values ({n}x1) for "
                         f"{n} features")

    def _hwc(self, v):
        return v.reshape(1, 1, -1)

    def resolve(self, in_shapes):
        if in_shapes:
            raise LayerError(self.label, None, NO_VALUE, "an input layer cannot have inputs")
        return (1, 1, self.InputSize)

    def describe(self):
        return self._describe(f"{self.InputSize} features")


@constructor
def imageInputLayer(inputSize, *pairs, **kwargs) -> ImageInputLayer:  # noqa: N802,N803
    """Image input layer (MATLAB ``imageInputLayer``); ``inputSize`` is [h w c]."""
    return ImageInputLayer(inputSize, *pairs, **kwargs)


@constructor
def featureInputLayer(numFeatures, *pairs, **kwargs) -> FeatureInputLayer:  # noqa: N802,N803
    """Feature input layer (MATLAB ``featureInputLayer``): ``numFeatures`` values per observation,
    a ``1 x 1 x numFeatures`` tensor; Normalization 'none' by default."""
    return FeatureInputLayer(numFeatures, *pairs, **kwargs)
