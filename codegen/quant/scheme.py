"""The int8 scheme's building blocks shared by the op homes: per-channel weight quantization,
int32 biases, requantization multipliers, output clamps and lookup tables.

TensorFlow Lite's int8 specification: weights int8 symmetric per output channel in [-127, 127]
(zero point 0); activations int8 asymmetric per tensor; bias int32 at scale s_in * s_w, zero
point 0; the accumulator is requantized to the output with a Q31 multiplier and a shift
(:mod:`.fixedpoint`); a fused ReLU / clipped ReLU is the clamp of the output range.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calibrate import QMAX, QMIN, QParams
from .fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier


@dataclass
class OpQuant:
    """An int8 op's quantization: its inputs' and output's parameters, the output clamp (a fused
    ReLU-family activation, or the int8 range), and kind-specific integers the template reads."""
    inputs: list[QParams]
    output: QParams
    act_min: int = QMIN
    act_max: int = QMAX
    consts: dict = field(default_factory=dict)     # name -> int, for the template's enums


def quantize_weights(w: np.ndarray, axis: int, given=None) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weights, float64 scale per channel along ``axis``): symmetric, in [-127, 127]. With
    ``given`` scales (an imported int8 model's, whose float weights are int8 values times them),
    those, where the weights are exactly such multiples; else scales of the weights' largest
    magnitudes."""
    w = np.asarray(w, np.float64)
    shape = [1] * w.ndim
    shape[axis] = -1
    if given is not None and np.size(given) in (1, w.shape[axis]) and np.all(np.asarray(given) > 0):
        scale = np.broadcast_to(np.asarray(given, np.float32).astype(np.float64).reshape(-1), (w.shape[axis],))
        steps = w / scale.reshape(shape)
        if np.all(np.abs(steps) <= 127.5) and np.all(np.abs(steps - np.round(steps)) < 1e-3):
            return np.round(steps).astype(np.int8), np.array(scale)
    other = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    top = np.max(np.abs(w), axis=other) if w.size else np.zeros(w.shape[axis])
    scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32).astype(np.float64)
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def quantize_bias(b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """int32 bias at ``scale`` (s_in * s_w per channel), rounded, saturated to int32."""
    q = np.round(np.asarray(b, np.float64) / scale)
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)


def multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Q31 multipliers int32, shifts int32) of real multipliers (one per channel)."""
    pairs = [quantize_multiplier(float(m)) for m in np.atleast_1d(real)]
    return (np.array([p[0] for p in pairs], np.int32), np.array([p[1] for p in pairs], np.int32))


def affine(scale, shift, qin: QParams, qout: QParams) -> dict:
    """y = x * scale + shift (per channel, or per element) in int8: each scale a single int8 weight
    (+-127, symmetric), the shift an int32 bias at s_in * s_w, one multiplier each."""
    a = np.asarray(scale, np.float64).reshape(-1)
    sw = np.where(a != 0, np.abs(a) / 127.0, 1.0).astype(np.float32).astype(np.float64)
    w = np.clip(np.round(a / sw), -127, 127).astype(np.int8)
    s_in = np.float64(qin.scale)
    m0, shift_ = multipliers(s_in * sw / np.float64(qout.scale))
    return {"w": w, "b": quantize_bias(np.asarray(shift, np.float64).reshape(-1), s_in * sw), "m": m0, "s": shift_}


def affine_reference(x: np.ndarray, weights: dict, index: np.ndarray, quant: "OpQuant") -> np.ndarray:
    """The int8 affine of ``x`` with the parameters at ``index`` (broadcast to x's shape)."""
    acc = (x.astype(np.int64) - quant.inputs[0].zero_point) * weights["w"][index].astype(np.int64) \
        + weights["b"][index]
    return requantize(acc, weights["m"][index], weights["s"][index], quant)


def clamp_range(bounds, q: QParams) -> tuple[int, int]:
    """The int8 output range of a fused clamp activation with real ``bounds`` (or the full range)."""
    if bounds is None:
        return QMIN, QMAX
    lo, hi = bounds
    qlo = QMIN if lo == -np.inf else int(q.quantize(np.float32(lo)))
    qhi = QMAX if hi == np.inf else int(q.quantize(np.float32(min(hi, 3.0e38))))
    return max(QMIN, qlo), min(QMAX, qhi)


def requantize(acc, m0, shift, quant: OpQuant) -> np.ndarray:
    """int64 accumulators -> int8 outputs: multiplier, output zero point, clamp."""
    y = multiply_by_quantized_multiplier(acc, m0, shift) + quant.output.zero_point
    return np.clip(y, quant.act_min, quant.act_max).astype(np.int8)


def lookup_table(fn, qin: QParams, qout: QParams) -> np.ndarray:
    """The 256 int8 outputs of ``fn`` (a float64 function) for the int8 inputs -128..127."""
    x = (np.arange(QMIN, QMAX + 1) - qin.zero_point) * np.float64(qin.scale)
    y = np.asarray(fn(x.reshape(1, 1, 1, -1)), np.float64).reshape(-1)
    q = np.round(y / np.float64(qout.scale)) + qout.zero_point
    return np.clip(np.nan_to_num(q, nan=qout.zero_point), QMIN, QMAX).astype(np.int8)


def windows(x: np.ndarray, geom, fill: int, dilated: bool = True) -> np.ndarray:
    """(OH, OW, KH, KW, C) windows of an (IH, IW, C) array padded with ``fill`` (a conv's or a pool's
    geometry: kh, kw, sh, sw, [dh, dw,] pt, pb, pl, pr, oh, ow)."""
    dh, dw = (geom.dh, geom.dw) if dilated else (1, 1)
    padded = np.pad(x, ((geom.pt, geom.pb), (geom.pl, geom.pr), (0, 0)), constant_values=fill)
    rows = [[padded[ky * dh: ky * dh + (geom.oh - 1) * geom.sh + 1: geom.sh,
                    kx * dw: kx * dw + (geom.ow - 1) * geom.sw + 1: geom.sw, :]
             for kx in range(geom.kw)] for ky in range(geom.kh)]
    return np.stack([np.stack(r, axis=2) for r in rows], axis=2)
