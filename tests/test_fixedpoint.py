"""The fixed-point requantization of int8 inference against its definition, computed independently
with Python's exact integers and fractions (gemmlowp / TensorFlow Lite semantics)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from codegen.quant.fixedpoint import (multiply_by_quantized_multiplier, quantize_multiplier,
                                      rounding_divide_by_pot, sat_rounding_doubling_high_mul)


def exact_high_mul(a: int, b: int) -> int:
    """round(2ab / 2^32) with ties toward +inf, by the definition: (ab + nudge) / 2^31 truncated."""
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    num = ab + (2**30 if ab >= 0 else 1 - 2**30)
    return int(Fraction(num, 2**31).__trunc__())


def exact_divide(x: int, e: int) -> int:
    """x / 2^e, nearest, ties away from zero."""
    q = Fraction(x, 2**e)
    r = math.floor(abs(q) + Fraction(1, 2))
    return r if x >= 0 else -r


def test_doubling_high_mul_matches_its_definition():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(-(2**31), 2**31, 4000), [-(2**31), 2**31 - 1, 0, 1, -1, -(2**31)]])
    b = np.concatenate([rng.integers(-(2**31), 2**31, 4000), [-(2**31), 2**31 - 1, 5, -1, 1, 2**31 - 1]])
    got = sat_rounding_doubling_high_mul(a, b)
    assert [int(v) for v in got] == [exact_high_mul(int(x), int(y)) for x, y in zip(a, b)]


def test_rounding_divide_by_pot_rounds_half_away_from_zero():
    rng = np.random.default_rng(1)
    x = rng.integers(-(2**31), 2**31, 3000)
    e = rng.integers(0, 32, 3000)
    got = rounding_divide_by_pot(x, e)
    assert [int(v) for v in got] == [exact_divide(int(a), int(b)) for a, b in zip(x, e)]
    assert [int(v) for v in rounding_divide_by_pot([5, -5, 6, -6, 7, -7], 1)] == [3, -3, 3, -3, 4, -4]


@pytest.mark.parametrize("m", [1e-9, 3.3e-4, 0.0071, 0.25, 0.5, 0.999999, 1.0, 1.5, 7.25, 2.0**-31, 1e-12])
def test_quantize_multiplier_represents_the_real_multiplier(m):
    m0, shift = quantize_multiplier(m)
    if m0 == 0:
        assert m < 2.0**-31
        return
    assert 2**30 <= m0 < 2**31
    assert abs(m0 * 2.0**(shift - 31) - m) <= m * 2.0**-30


def test_requantization_is_within_one_step_of_the_real_product():
    rng = np.random.default_rng(2)
    for m in rng.uniform(1e-5, 0.9, 200):
        m0, shift = quantize_multiplier(float(m))
        acc = rng.integers(-(2**24), 2**24, 50)
        got = multiply_by_quantized_multiplier(acc, m0, shift)
        assert np.all(np.abs(got - acc * m) <= 1.0)
