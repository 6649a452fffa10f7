"""Name-value options and property validators shared by every layer.

MATLAB layers take options either as Python keywords
(``convolution2dLayer(3, 8, Stride=2)``) or as MATLAB pairs
(``convolution2dLayer(3, 8, 'Stride', 2)``); names are case-insensitive.
The validators turn user values into canonical Python values or raise a
:class:`~codegen.errors.LayerError` naming layer, property, value and what is allowed.
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np

from .errors import NO_VALUE, LayerError, LayerTypeError, show_value


def collect_options(layer: str, pairs: tuple, kwargs: dict, allowed: list[str]) -> dict:
    """Merge MATLAB pairs and keywords into {CanonicalName: value}.

    ``allowed`` lists the canonical (MATLAB-cased) option names.
    """
    if len(pairs) % 2:
        # the message names the value itself: "<layer> is <value>" would read as if the layer were it
        raise LayerError(layer, None, NO_VALUE, f"options must come in name-value pairs, e.g. 'Name', 'a'; "
                                                f"{show_value(pairs[-1])} has no value")
    items = [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)] + list(kwargs.items())
    by_lower = {name.lower(): name for name in allowed}
    out: dict = {}
    for name, value in items:
        if not isinstance(name, str):
            raise LayerTypeError(layer, None, NO_VALUE,
                                 f"option names must be strings such as 'Name', got {show_value(name)}")
        canonical = by_lower.get(name.lower())
        if canonical is None:
            close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
            hint = f"did you mean '{by_lower[close[0]]}'? " if close else ""
            raise LayerError(layer, None, NO_VALUE,
                             f"unknown option {name!r}; {hint}allowed: {', '.join(sorted(allowed))}")
        if canonical in out:
            raise LayerError(layer, canonical, value, "option given twice")
        out[canonical] = value
    return out


# --------------------------------------------------------------------------- numbers

def _is_int(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, numbers.Integral):
        return True
    return isinstance(v, numbers.Real) and float(v).is_integer()


def _flat(value) -> list | None:
    """A scalar or 1-D sequence of numbers as a flat list, or None if it is not one."""
    if isinstance(value, str) or value is None:
        return None
    arr = np.asarray(value, dtype=object)
    if arr.ndim > 2 or (arr.ndim == 2 and 1 not in arr.shape):
        return None
    items = list(arr.ravel())
    if not all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in items):
        return None
    return items


def real_list(value) -> list | None:
    """A scalar or 1-D sequence of real numbers (NaN and Inf included) as a flat list, else None."""
    return _flat(value)


def int_vector(layer: str, prop: str, value, lengths: tuple[int, ...], minimum: int,
               expand_to: int | None = None) -> list[int]:
    """Integers >= minimum, given with one of ``lengths`` elements; a scalar expands."""
    items = _flat(value)
    what = " or ".join("a scalar" if n == 1 else f"{n} elements" for n in lengths)
    rule = "positive integers" if minimum == 1 else f"integers >= {minimum}"
    if items is None or len(items) not in lengths:
        raise LayerError(layer, prop, value, f"expected {rule} given as {what}")
    for v in items:
        if not np.isfinite(float(v)) or not _is_int(v) or int(v) < minimum:
            raise LayerError(layer, prop, value, f"expected {rule} given as {what}")
    ints = [int(v) for v in items]
    if expand_to and len(ints) == 1:
        ints = ints * expand_to
    return ints


def pos_int(layer: str, prop: str, value) -> int:
    return int_vector(layer, prop, value, (1,), 1)[0]


def real_scalar(layer: str, prop: str, value, *, positive=False, nonneg=False, finite=True) -> float:
    items = _flat(value)
    if items is None or len(items) != 1:
        raise LayerError(layer, prop, value, "expected a real scalar")
    v = float(items[0])
    if finite and not np.isfinite(v):
        raise LayerError(layer, prop, value, "expected a finite real scalar")
    if positive and not v > 0:
        raise LayerError(layer, prop, value, "expected a positive scalar")
    if nonneg and not v >= 0:
        raise LayerError(layer, prop, value, "expected a nonnegative scalar")
    return v


def choice(layer: str, prop: str, value, choices: list[str]) -> str:
    if isinstance(value, str):
        for c in choices:
            if value.lower() == c.lower():
                return c
    raise LayerError(layer, prop, value, "expected one of " + ", ".join(repr(c) for c in choices))


def name(layer: str, value) -> str:
    if not isinstance(value, str):
        raise LayerTypeError(layer, "Name", value, "expected a string (text)")
    return value


def padding(layer: str, value, prop: str = "Padding") -> tuple[str, list[int]]:
    """'same', a scalar, [a b] (top/bottom a, left/right b) or [t b l r] -> (mode, [t b l r])."""
    if isinstance(value, str):
        if value.lower() == "same":
            return "same", [0, 0, 0, 0]
        raise LayerError(layer, prop, value,
                         "expected 'same', a nonnegative integer, [a b] or [t b l r]")
    try:
        p = int_vector(layer, prop, value, (1, 2, 4), 0)
    except LayerError:
        raise LayerError(layer, prop, value,
                         "expected 'same', a nonnegative integer, [a b] or [t b l r]") from None
    if len(p) == 1:
        p = p * 4
    elif len(p) == 2:
        p = [p[0], p[0], p[1], p[1]]
    return "manual", p


def array_or_empty(layer: str, prop: str, value) -> np.ndarray | None:
    """A learnable/statistic given by the user: None/[] mean empty; NaN and Inf are refused."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise LayerTypeError(layer, prop, value, "expected a numeric array")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise LayerTypeError(layer, prop, value, "expected a numeric array") from None
    if arr.size == 0:
        return None
    if arr.dtype.kind not in "biuf":
        raise LayerTypeError(layer, prop, value, "expected a real numeric array")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "Inf"
        raise LayerError(layer, prop, value, f"contains {bad}; all values must be finite")
    return arr
