"""Calibration: the range of every layer's output over representative inputs, and the int8
quantization parameters chosen from it (TensorFlow Lite's scheme: activations asymmetric per
tensor, real = (q - zero_point) * scale, q in [-128, 127]).

Methods (as in TFLite, TensorRT and onnxruntime's ``quantize_static``):

- ``minmax``: the smallest and largest value seen;
- ``percentile``: the ``percentile`` and ``100 - percentile`` percentiles (default 99.99), so a few
  outliers do not stretch the scale;
- ``entropy``: TensorRT's KL-divergence method: of the thresholds T over a 2048-bin histogram of
  |x|, the one whose 128-level quantization of [0, T] loses the least information (KL divergence
  between the clipped reference distribution and its quantized version); the range is [-T, T]
  cut to the values seen.

Every range includes 0 (so that zero, e.g. padding, is exact). The same data gives the same scales.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import CodegenError, InputError
from ..network import Network

METHODS = ("minmax", "percentile", "entropy")
QMIN, QMAX = -128, 127
BINS = 2048
BATCH = 16


@dataclass(frozen=True)
class QParams:
    """real = (q - zero_point) * scale, q in [-128, 127]; ``scale`` is a float32 value."""
    scale: float
    zero_point: int

    @property
    def inv_scale(self) -> float:
        """1 / scale in float32 (the generated code multiplies by it)."""
        return float(np.float32(1.0) / np.float32(self.scale))

    def quantize(self, x) -> np.ndarray:
        """float32 arithmetic, as the generated code does it: round(x / scale) + zero_point, clamped
        (x * (1 / scale) in float32, rounded half away from zero)."""
        v = np.asarray(x, np.float32) * np.float32(self.inv_scale)
        r = np.where(v >= 0, np.floor(v + np.float32(0.5)), np.ceil(v - np.float32(0.5)))
        return np.clip(r.astype(np.int64) + self.zero_point, QMIN, QMAX).astype(np.int8)

    def dequantize(self, q) -> np.ndarray:
        return (np.asarray(q, np.int32) - self.zero_point).astype(np.float32) * np.float32(self.scale)

    def describe(self) -> str:
        return f"scale {self.scale:.6g}, zero point {self.zero_point}"


def choose_qparams(lo: float, hi: float) -> QParams:
    """Asymmetric int8 parameters for the range [lo, hi] (widened to include 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise CodegenError(f"calibration range [{lo}, {hi}] is not finite")
    if hi - lo < 1e-30:
        return QParams(1.0, 0)                     # a tensor that is always 0
    scale = float(np.float32((hi - lo) / (QMAX - QMIN)))
    zero_point = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return QParams(scale, zero_point)


@dataclass
class Calibration:
    """Per layer: the range seen and the int8 parameters of its output; and the network input's
    (before any input normalization: what the API quantizes)."""
    method: str
    ranges: dict[str, tuple[float, float]]
    params: dict[str, QParams]
    images: int
    input_range: tuple[float, float] = (0.0, 0.0)
    input: QParams = QParams(1.0, 0)
    overrides: dict[str, str] = field(default_factory=dict)   # layer -> why its parameters were set
    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)   # layer -> per-output-channel scales fixed
                                                                          # by an imported int8 model
    given: bool = False            # an imported int8 model's parameters: every op keeps its output's as given

    def with_range(self, layer: str, lo: float, hi: float, why: str) -> "Calibration":
        """A copy with ``layer``'s range (and parameters) replaced, e.g. to plant a bad range in a test."""
        ranges, params = dict(self.ranges), dict(self.params)
        ranges[layer], params[layer] = (lo, hi), choose_qparams(lo, hi)
        return Calibration(self.method, ranges, params, self.images, self.input_range, self.input,
                           {**self.overrides, layer: why}, dict(self.weight_scales), self.given)

    def report(self) -> str:
        width = max(len(n) for n in self.params)
        lines = [f"calibration ({self.method}, {self.images} images):",
                 f"  {'(input)':<{width}}  range [{self.input_range[0]:.5g}, {self.input_range[1]:.5g}]  "
                 f"{self.input.describe()}"]
        for name, q in self.params.items():
            lo, hi = self.ranges[name]
            note = f"  ({self.overrides[name]})" if name in self.overrides else ""
            lines.append(f"  {name:<{width}}  range [{lo:.5g}, {hi:.5g}]  {q.describe()}{note}")
        return "\n".join(lines)


def _entropy_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> float:
    """TensorRT's KL calibration over a histogram of |x|: the threshold with the least divergence."""
    best, best_t = None, float(edges[-1])
    total = hist.sum()
    if total == 0:
        return best_t
    for i in range(levels, len(hist) + 1, 8):      # every 8th bin: the curve is smooth at this scale
        p = hist[:i].astype(np.float64).copy()
        p[i - 1] += hist[i:].sum()                 # the clipped mass goes to the last bin
        # quantize the i bins into `levels` groups: each group's mass spread over its nonzero bins
        q = np.zeros(i)
        for g in np.array_split(np.arange(i), levels):
            nonzero = p[g] > 0
            if nonzero.any():
                q[g[nonzero]] = p[g].sum() / nonzero.sum()
        pn, qn = p / p.sum(), q / q.sum()
        mask = pn > 0
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask])))
        if best is None or kl < best:
            best, best_t = kl, float(edges[i])
    return best_t


def calibrate(net: Network, images, method: str = "minmax", percentile: float = 99.99) -> Calibration:
    """The ranges of every layer's output over ``images`` (N, H, W, C) and their int8 parameters."""
    if method not in METHODS:
        raise CodegenError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(net.input_shape) or len(x) == 0:
        raise InputError(f"calibration images have shape {tuple(np.shape(images))}; expected (N, H, W, C) with "
                         f"H x W x C = {'x'.join(map(str, net.input_shape))} and N >= 1")
    if not np.all(np.isfinite(x)):
        raise InputError("calibration images contain NaN or Inf")
    if not 50.0 < percentile < 100.0:
        raise CodegenError(f"percentile {percentile} must be in (50, 100)")
    names = [layer.Name for layer in net.layers]
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    samples: dict[str, list] = {n: [] for n in names}
    for start in range(0, len(x), BATCH):
        values = net.predict(x[start: start + BATCH].astype(np.float64), return_all=True)
        for n in names:
            v = values[n]
            lo[n], hi[n] = min(lo[n], float(v.min())), max(hi[n], float(v.max()))
            if method != "minmax":
                samples[n].append(np.asarray(v, np.float32).ravel())
    ranges = {}
    for n in names:
        if method == "minmax":
            ranges[n] = (lo[n], hi[n])
            continue
        v = np.concatenate(samples[n])
        if method == "percentile":
            ranges[n] = (float(np.percentile(v, 100.0 - percentile)), float(np.percentile(v, percentile)))
        else:
            top = float(np.abs(v).max())
            hist, edges = np.histogram(np.abs(v), bins=BINS, range=(0.0, top if top > 0 else 1.0))
            t = _entropy_threshold(hist, edges)
            ranges[n] = (max(lo[n], -t), min(hi[n], t))
    params = {n: choose_qparams(*ranges[n]) for n in names}
    raw = (float(x.min()), float(x.max()))
    return Calibration(method, ranges, params, len(x), raw, choose_qparams(*raw))


def quantize(net: Network, images, method: str = "minmax", percentile: float = 99.99) -> Calibration:
    """Calibrate ``net`` on ``images`` ((N, H, W, C), the distribution the network will see) with
    ``method`` ('minmax', 'percentile' or 'entropy'); build int8 code with
    ``codegen.build(net, calibration=...)``."""
    return calibrate(net, images, method=method, percentile=percentile)
