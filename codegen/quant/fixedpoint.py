"""The fixed-point arithmetic of int8 inference, as TensorFlow Lite specifies it and CMSIS-NN
implements it bit for bit (gemmlowp's ``SaturatingRoundingDoublingHighMul`` and
``RoundingDivideByPOT``; Jacob et al., arXiv:1712.05877, section 2.2).

A real multiplier M > 0 is stored as a Q31 integer ``m0`` in [2^30, 2^31) and a shift ``n`` with
M = m0 * 2^-31 * 2^n; requantizing an int32 accumulator ``acc`` is

    rounding_divide_by_pot(sat_rounding_doubling_high_mul(acc << max(n, 0), m0), max(-n, 0))

Every function works on NumPy arrays (int64 intermediates, int32 results) and on Python ints, so
that the integer reference and the generated C compute the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """(m0, shift) with m = m0 * 2^-31 * 2^shift, m0 in [2^30, 2^31) (TFLite's QuantizeMultiplier);
    (0, 0) for m == 0."""
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"a multiplier must be finite and nonnegative, got {m!r}")
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)                 # m = q * 2^shift, q in [0.5, 1)
    m0 = math.floor(q * 2**31 + 0.5)         # std::round: ties away from zero (exact in double here)
    if m0 == 2**31:
        m0 //= 2
        shift += 1
    if shift < -31:                          # too small to represent: flushes to zero
        return 0, 0
    if shift > 30:                           # too large: saturates, as TFLite does
        return 2**31 - 1, 30
    return int(m0), int(shift)


def sat_rounding_doubling_high_mul(a, b):
    """The high 32 bits of 2 * a * b, rounded to nearest (ties up), saturating the one overflow case
    (a == b == INT32_MIN). ``a``, ``b``: int32 values (arrays or ints)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    # C's integer division truncates toward zero: (ab + nudge) / 2^31
    num = ab + nudge
    result = np.where(num >= 0, num >> 31, -((-num) >> 31))
    return np.where(overflow, INT32_MAX, result).astype(np.int64)


def rounding_divide_by_pot(x, exponent):
    """x / 2^exponent rounded to nearest, ties away from zero (``exponent`` in [0, 31])."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + np.where(x < 0, 1, 0)
    return (x >> exponent) + np.where(remainder > threshold, 1, 0)


def multiply_by_quantized_multiplier(acc, m0, shift):
    """TFLite's MultiplyByQuantizedMultiplier: acc * m0 * 2^-31 * 2^shift with the two roundings
    above (``shift`` may be per channel: arrays broadcast)."""
    acc = np.asarray(acc, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(acc * (np.int64(1) << left), INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(sat_rounding_doubling_high_mul(shifted, m0), right)
