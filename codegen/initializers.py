"""Weight and bias initializers, as documented for MATLAB's layers.

- ``'glorot'``: uniform on [-a, a] with a = sqrt(6 / (numIn + numOut)), i.e. variance
  2 / (numIn + numOut).
- ``'he'``: normal with mean 0 and variance 2 / numIn.
- ``'narrow-normal'``: normal with mean 0 and standard deviation 0.01.
- ``'zeros'``, ``'ones'``: constants.
- a callable ``f(sz)`` returning an array of size ``sz`` (the MATLAB shape).

numIn/numOut are given by the layer (e.g. h*w*C and h*w*F for a convolution).
"""

from __future__ import annotations

import numpy as np

from .errors import LayerError, LayerTypeError

WEIGHT_INITIALIZERS = ["glorot", "he", "narrow-normal", "zeros", "ones"]
BIAS_INITIALIZERS = ["zeros", "ones", "narrow-normal"]


def check(layer: str, prop: str, value, names: list[str]):
    """Validate an initializer option: one of ``names`` (case-insensitive) or a callable."""
    if callable(value):
        return value
    if isinstance(value, str):
        for n in names:
            if value.lower() == n:
                return n
    raise LayerError(layer, prop, value,
                     "expected " + ", ".join(repr(n) for n in names) + " or a function handle f(sz)")


def initialize(layer: str, prop: str, init, shape: tuple[int, ...], num_in: int, num_out: int,
               rng: np.random.Generator) -> np.ndarray:
    """Draw an array of ``shape`` (float32) from initializer ``init``."""
    if callable(init):
        try:
            value = init(tuple(shape))
        except Exception as exc:  # the user's function failed: report it as their input
            raise LayerError(layer, prop, init, f"the initializer function raised {exc!r}") from exc
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise LayerTypeError(layer, prop, init, "the initializer function must return a numeric array") from None
        if arr.size != int(np.prod(shape)):
            raise LayerError(layer, prop, init,
                             f"the initializer function returned {arr.size} values; expected an array of size "
                             + "x".join(map(str, shape)))
        arr = arr.reshape(shape)
        if not np.all(np.isfinite(arr)):
            raise LayerError(layer, prop, init, "the initializer function returned NaN or Inf")
        return arr.astype(np.float32)
    if init == "glorot":
        bound = np.sqrt(6.0 / (num_in + num_out))
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)
    if init == "he":
        return (rng.standard_normal(size=shape) * np.sqrt(2.0 / num_in)).astype(np.float32)
    if init == "narrow-normal":
        return (rng.standard_normal(size=shape) * 0.01).astype(np.float32)
    if init == "zeros":
        return np.zeros(shape, np.float32)
    if init == "ones":
        return np.ones(shape, np.float32)
    raise AssertionError(f"unvalidated initializer {init!r}")
