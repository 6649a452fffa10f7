"""resize2dLayer: nearest-neighbour or bilinear resizing of the height and width.

MATLAB's semantics (Image Processing Toolbox, ``resize2dLayer`` / ``dlresize``), per spatial
dimension of ``n`` input and ``m`` output elements, with scale ``s``:

- sizes: ``'Scale', s`` gives ``m = floor(s * n)`` and samples with that ``s``; ``'OutputSize', [h w]`` gives ``m`` and samples with
  ``s = m / n``; one NaN element keeps the aspect ratio (both dimensions use the other's
  ``s``, ``m = floor(s * n)``); ``'EnableReferenceInput', true`` adds an input ``ref`` whose
  height and width are ``m`` (``s = m / n``);
- ``GeometricTransformMode``: output element ``x`` (0-based) samples the input at
  ``u = (x + 0.5) / s - 0.5`` (``'half-pixel'``, the default) or ``u = x / s`` (``'asymmetric'``),
  clamped to ``[0, n - 1]`` (the border elements repeat);
- ``Method`` ``'nearest'`` (the default) takes element ``round(u)``, where
  ``NearestRoundingMode`` ``'round'`` (the default) rounds halves up (MATLAB's ``round`` on
  u >= 0), ``'floor'`` takes ``floor(u)``, and ``'onnx-10'`` reproduces ONNX opset 10's Resize:
  ``ceil(u)`` where ``s < 1`` (downsampling), ``fix(u)`` (= ``floor(u)``, u >= 0) elsewhere;
  ``'bilinear'`` interpolates ``(1 - w) * in[floor(u)] + w * in[floor(u) + 1]``,
  ``w = u - floor(u)``, along each dimension.

Sizes and coordinates are computed exactly, in rational arithmetic: ``'OutputSize'`` scales are
the fractions ``m / n``, and a ``'Scale'`` given as a floating-point number is taken as the
simplest fraction within float32 precision of it (:func:`exact_scale`: 2.2 is 11/5, 0.3 is
3/10, 1.5 stays 3/2), so that 11 / 2.2 is 5 and a coordinate that is mathematically a half
rounds up, whatever the binary rounding of the typed number. Floating-point implementations
(MATLAB's double arithmetic, PyTorch's and onnxruntime's float32) can land one ulp on the
other side of such a boundary; elsewhere they agree. :func:`axis_samples` is the one table of
source indices and weights that the NumPy reference and the generated code
(:mod:`codegen.ops.resize`) both use.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from .. import options as opt
from ..errors import NO_VALUE, LayerError
from .base import Layer, constructor, vec2

METHODS = ["nearest", "bilinear"]
TRANSFORMS = ["half-pixel", "asymmetric"]
ROUNDINGS = ["round", "floor", "onnx-10"]


def exact_scale(value: float) -> Fraction:
    """The simplest fraction within float32 precision (relative 2^-23) of ``value`` > 0: the first
    convergent of its continued fraction that close (2.2 -> 11/5, also from float32's 2.2000000477)."""
    exact = Fraction(value)
    tol = exact / (1 << 23)
    h0, h1, k0, k1 = 0, 1, 1, 0
    x = exact
    while True:
        a = math.floor(x)
        h0, h1, k0, k1 = h1, a * h1 + h0, k1, a * k1 + k0
        if abs(Fraction(h1, k1) - exact) <= tol:
            return Fraction(h1, k1)
        x = 1 / (x - a)


class Samples(NamedTuple):
    """Per output element along one dimension: the first and second source index and the weight of
    the second (nearest neighbour: the indices are equal and the weight is 0)."""
    first: np.ndarray          # int64
    second: np.ndarray         # int64
    weight: np.ndarray         # float64, the exact fraction correctly rounded

    def same(self, other: "Samples") -> bool:
        return all(np.array_equal(a, b) for a, b in zip(self, other))


def positions(n_out: int, bound: int) -> np.ndarray:
    """0 .. n_out - 1 as integers in which values up to ``bound`` are exact (int64, else Python ints)."""
    return np.arange(n_out, dtype=np.int64) if bound < 2 ** 62 else np.arange(n_out).astype(object)


def coordinates(n_out: int, scale: Fraction, transform: str) -> tuple[np.ndarray, int]:
    """Where each output element samples the input, before clamping, as numerators over one
    denominator: ``u = (x + 1/2) / s - 1/2`` ('half-pixel') or ``u = x / s`` ('asymmetric'), exactly."""
    p, q = scale.numerator, scale.denominator              # u = x q / p, or ((2x + 1) q - p) / 2p
    x = positions(n_out, (2 * n_out + 1) * q + p)
    if transform == "half-pixel":
        return (2 * x + 1) * q - p, 2 * p
    return x * q, p


def grid(num: np.ndarray, den: int, n_in: int, method: str, rounding: str) -> Samples:
    """The samples of the coordinates ``num / den`` clamped to [0, n_in - 1]: bilinear, or nearest
    with ``rounding`` 'half_up', 'half_down', 'floor' or 'ceil'."""
    num = np.minimum(np.maximum(num, 0), (n_in - 1) * den)
    if method == "bilinear":
        first = num // den
        rest = num - first * den
        second = np.minimum(first + 1, n_in - 1)
        return Samples(first.astype(np.int64), second.astype(np.int64), (rest / den).astype(np.float64))
    if rounding == "half_up":
        index = (2 * num + den) // (2 * den)
    elif rounding == "half_down":
        index = -((den - 2 * num) // (2 * den))
    elif rounding == "ceil":
        index = -(-num // den)
    else:
        index = num // den
    index = index.astype(np.int64)
    return Samples(index, index, np.zeros(len(index)))


def axis_samples(n_in: int, n_out: int, scale: Fraction, method: str, transform: str, rounding: str) -> Samples:
    """The layer's sampling of one dimension (``rounding``: its NearestRoundingMode)."""
    num, den = coordinates(n_out, scale, transform)
    if rounding == "round":
        rule = "half_up"                   # MATLAB's round, on u >= 0
    else:
        rule = "ceil" if rounding == "onnx-10" and scale < 1 else "floor"    # fix(u) = floor(u), u >= 0
    return grid(num, den, n_in, method, rule)


def resample(x: np.ndarray, axis: int, samples: Samples) -> np.ndarray:
    """``x`` resampled along ``axis`` by the table of :func:`axis_samples` (float64)."""
    shape = [1] * x.ndim
    shape[axis] = len(samples.weight)
    w = samples.weight.reshape(shape)
    return (1.0 - w) * np.take(x, samples.first, axis=axis) + w * np.take(x, samples.second, axis=axis)


class Resize2DLayer(Layer):
    FUNCTION = "resize2dLayer"
    CLASS = "Resize2DLayer"
    TYPE = "Resize"
    BASE_NAME = "resize"
    OPTIONS = ["Scale", "OutputSize", "EnableReferenceInput", "Method", "GeometricTransformMode",
               "NearestRoundingMode", "Name"]
    GROUPS = [(None, ["Name", "NumInputs", "InputNames"]),
              ("Resize", ["Scale", "OutputSize", "EnableReferenceInput"]),
              ("Interpolation", ["Method", "GeometricTransformMode", "NearestRoundingMode"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._p.update(Scale=None, OutputSize=None, EnableReferenceInput=False, Method="nearest",
                       GeometricTransformMode="half-pixel", NearestRoundingMode="round")
        self._apply_options(pairs, kwargs)
        given = [k for k in ("Scale", "OutputSize") if self._p[k] is not None]
        if self._p["EnableReferenceInput"]:
            given.append("EnableReferenceInput")
        if len(given) != 1:
            raise LayerError(self.label, None, NO_VALUE,
                             "specify exactly one of 'Scale', 'OutputSize' and 'EnableReferenceInput' (true); got "
                             + (", ".join(f"'{k}'" for k in given) or "none"))

    def _option(self, key, value):
        label = self.label
        if key == "Scale":
            self._p[key] = _scale(label, value)
        elif key == "OutputSize":
            self._p[key] = _output_size(label, value)
        elif key == "EnableReferenceInput":
            items = [value] if isinstance(value, (bool, np.bool_)) else opt.real_list(value)
            if items is None or len(items) != 1 or items[0] not in (0, 1):
                raise LayerError(label, key, value, "expected true (1) or false (0)")
            self._p[key] = bool(items[0])
        elif key == "Method":
            self._p[key] = opt.choice(label, key, value, METHODS)
        elif key == "GeometricTransformMode":
            self._p[key] = opt.choice(label, key, value, TRANSFORMS)
        elif key == "NearestRoundingMode":
            self._p[key] = opt.choice(label, key, value, ROUNDINGS)
        else:
            self._set(key, value)

    @property
    def NUM_INPUTS(self):  # noqa: N802 - per instance
        return 2 if self._p["EnableReferenceInput"] else 1

    @property
    def input_names(self) -> list[str]:
        return ["in", "ref"] if self._p["EnableReferenceInput"] else ["in"]

    # ------------------------------------------------------------------ shapes and sampling
    def resolve(self, in_shapes):
        if len(in_shapes) != self.NUM_INPUTS:
            raise LayerError(self.label, None, NO_VALUE, f"takes {self.NUM_INPUTS} input(s) "
                             f"({', '.join(self.input_names)}), got {len(in_shapes)}")
        h, w, c = in_shapes[0]
        if self.Scale is not None:
            scales = [exact_scale(s) for s in self.Scale]
            out = [math.floor(n * s) for n, s in zip((h, w), scales)]
            what, value = "Scale", self.Scale
        elif self.OutputSize is not None:
            size = self.OutputSize
            if any(math.isnan(v) for v in size):
                k = 0 if math.isnan(size[1]) else 1
                s = Fraction(int(size[k]), (h, w)[k])
                scales, out = [s, s], [math.floor(n * s) for n in (h, w)]
            else:
                scales, out = [Fraction(int(m), n) for m, n in zip(size, (h, w))], [int(v) for v in size]
            what, value = "OutputSize", size
        else:
            out = list(in_shapes[1][:2])
            scales = [Fraction(m, n) for m, n in zip(out, (h, w))]
            what, value = "EnableReferenceInput", True
        if min(out) < 1:
            raise LayerError(self.label, what, value, f"the output of a {h}x{w} input would be "
                             f"{out[0]}x{out[1]}; it needs at least one row and one column")
        self._geometry = ((h, w), tuple(out), tuple(scales))
        return (out[0], out[1], c)

    def samples(self):
        """(rows, columns): the tables of :func:`axis_samples` for the resolved input size."""
        (h, w), (oh, ow), (sh, sw) = self._geometry
        args = (self.Method, self.GeometricTransformMode, self.NearestRoundingMode)
        return axis_samples(h, oh, sh, *args), axis_samples(w, ow, sw, *args)

    @property
    def geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[Fraction, Fraction]]:
        """((input rows, columns), (output rows, columns), (exact scale of rows, of columns)), once resolved."""
        return self._geometry

    @property
    def scales(self) -> tuple[Fraction, Fraction]:
        """The resolved scale of each dimension (exact)."""
        return self._geometry[2]

    def forward(self, xs):
        rows, cols = self.samples()
        return resample(resample(xs[0], 1, rows), 2, cols)

    def describe(self):
        how = self.Method if self.Method == "bilinear" else f"nearest ({self.NearestRoundingMode})"
        if self.Scale is not None:
            to = f"by scale {vec2(_num(v) for v in self.Scale)}"
        elif self.OutputSize is not None:
            to = f"to output size {vec2(_num(v) for v in self.OutputSize)}"
        else:
            to = "to the size of input 'ref'"
        return f"Resize {to}, {how}, {self.GeometricTransformMode}"

    def macs(self, in_shapes, out_shape):
        """Bilinear: four weighted taps per output value; nearest: none (a copy)."""
        return out_shape[0] * out_shape[1] * out_shape[2] * (4 if self.Method == "bilinear" else 0)


def _num(v) -> str:
    if math.isnan(v):
        return "NaN"
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _scale(label: str, value) -> list[float]:
    """Positive finite numbers, a scalar or [rows cols]."""
    items = opt.real_list(value)
    why = "expected a positive number or two positive numbers [rows cols]"
    if items is None or len(items) not in (1, 2):
        raise LayerError(label, "Scale", value, why)
    scales = [float(v) for v in items]
    if not all(math.isfinite(v) and v > 0 for v in scales):
        raise LayerError(label, "Scale", value, why)
    return scales * 2 if len(scales) == 1 else scales


def _output_size(label: str, value) -> list[float]:
    """[rows cols], positive integers; one of them may be NaN (keep the aspect ratio)."""
    items = opt.real_list(value)
    why = "expected two positive integers [rows cols], one of which may be NaN (keep the aspect ratio)"
    if items is None or len(items) != 2:
        raise LayerError(label, "OutputSize", value, why)
    size = [float(v) for v in items]
    nans = sum(math.isnan(v) for v in size)
    if nans > 1 or not all(math.isnan(v) or (math.isfinite(v) and v >= 1 and v.is_integer()) for v in size):
        raise LayerError(label, "OutputSize", value, why)
    return [v if math.isnan(v) else int(v) for v in size]


@constructor
def resize2dLayer(*pairs, **kwargs) -> Resize2DLayer:  # noqa: N802
    """2-D resize layer: exactly one of 'Scale', 'OutputSize' or 'EnableReferenceInput' (true);
    'Method' 'nearest' (default) or 'bilinear', 'GeometricTransformMode' 'half-pixel' (default) or
    'asymmetric', 'NearestRoundingMode' 'round' (default), 'floor' or 'onnx-10'."""
    return Resize2DLayer(*pairs, **kwargs)
