"""Decoding ONNX tensors (initializers, ``Constant`` values), which are untrusted input.

:func:`decode` checks a TensorProto before converting it: a known element type, nonnegative
dimensions within :mod:`codegen.onnx.limits`, and exactly as many values (or raw bytes) as the
dimensions and the type need; only then does ``onnx.numpy_helper`` convert it. Every problem
is an :class:`OnnxImportError` naming the tensor. External data must have been read (and
checked) by :mod:`codegen.onnx.external` before; here it is refused.

:func:`as_weights` is the rule for floating-point weights: float32 as is; float16 and bfloat16
widened (exact); float64 rounded to float32 when finite and in float32's range, with a warning
naming the tensor when rounding changed a value; integer and boolean tensors are refused.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import OnnxImportError, quote
from .limits import element_count

FLOAT32_MAX = float(np.finfo(np.float32).max)

# ONNX element type -> (bytes per element, the typed field holding the values when there is no raw_data)
_LAYOUT = {
    1: (4, "float_data"),      # FLOAT
    2: (1, "int32_data"),      # UINT8
    3: (1, "int32_data"),      # INT8
    4: (2, "int32_data"),      # UINT16
    5: (2, "int32_data"),      # INT16
    6: (4, "int32_data"),      # INT32
    7: (8, "int64_data"),      # INT64
    9: (1, "int32_data"),      # BOOL
    10: (2, "int32_data"),     # FLOAT16
    11: (8, "double_data"),    # DOUBLE
    12: (4, "uint64_data"),    # UINT32
    13: (8, "uint64_data"),    # UINT64
    16: (2, "int32_data"),     # BFLOAT16
}


def type_name(data_type: int) -> str:
    """ONNX's name of an element type ('FLOAT', 'INT64'), or the number when it has none."""
    from onnx import TensorProto
    try:
        return TensorProto.DataType.Name(data_type)
    except ValueError:
        return f"{data_type} (not an ONNX element type)"


def itemsize(data_type: int, what: str) -> int:
    """Bytes per element of ``data_type``; OnnxImportError naming ``what`` for a type we do not read."""
    if data_type not in _LAYOUT:
        names = ", ".join(type_name(t) for t in _LAYOUT)
        raise OnnxImportError(f"{what} has element type {type_name(data_type)}; supported element types: {names}")
    return _LAYOUT[data_type][0]


def decode(tensor, what: str) -> np.ndarray:
    """The values of the TensorProto ``tensor`` (called ``what`` in messages) as an array of its type."""
    from onnx import TensorProto, numpy_helper
    if tensor.data_location == TensorProto.EXTERNAL:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        raise OnnxImportError(f"{what} keeps its data in an external file ({quote(location)}), which was not read: "
                              "external data is read only for a model given as a path")
    if tensor.HasField("segment"):
        raise OnnxImportError(f"{what} is a segment of a tensor; segmented tensors are not supported")
    size = itemsize(tensor.data_type, what)
    count = element_count(tensor.dims, what)
    field = _LAYOUT[tensor.data_type][1]
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != count * size:
            raise OnnxImportError(f"{what} has {len(tensor.raw_data)} bytes of raw data; {type_name(tensor.data_type)} "
                                  f"of shape {list(tensor.dims)} needs {count * size} ({count} x {size})")
    elif len(getattr(tensor, field)) != count:
        raise OnnxImportError(f"{what} has {len(getattr(tensor, field))} values; {type_name(tensor.data_type)} of "
                              f"shape {list(tensor.dims)} needs {count}")
    try:
        return np.asarray(numpy_helper.to_array(tensor))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the model's fault
        raise OnnxImportError(f"{what} cannot be decoded: {type(exc).__name__}: {exc}") from None


def as_weights(value, what: str) -> np.ndarray:
    """``value`` (a constant, called ``what`` in messages) as float32 weights (see the module doc)."""
    arr = np.asarray(value)
    if arr.dtype == np.float32:
        return arr
    if arr.dtype == np.float16 or arr.dtype.name == "bfloat16":
        return arr.astype(np.float32)
    if arr.dtype == np.float64:
        if not np.all(np.isfinite(arr)):
            raise OnnxImportError(f"{what} is float64 with NaN or infinite values; weights must be finite")
        big = float(np.max(np.abs(arr))) if arr.size else 0.0
        if big > FLOAT32_MAX:
            raise OnnxImportError(f"{what} is float64 with a value of magnitude {big:.3g}; float32 (the type of the "
                                  f"generated code) reaches {FLOAT32_MAX:.4g}")
        out = arr.astype(np.float32)
        if np.any(out != arr):
            changed = int(np.count_nonzero(out != arr))
            warnings.warn(f"{what}: float64 values rounded to float32 ({changed} of {arr.size} changed; "
                          "the generated code computes in float32)", stacklevel=3)
        return out
    raise OnnxImportError(f"{what} has element type {arr.dtype}; weights must be floating point (float32; float16, "
                          "bfloat16 and float64 are converted)")


def as_ints(value, what: str, low: int, high: int, max_count: int) -> list[int]:
    """``value`` (a constant, called ``what`` in messages) as at most ``max_count`` integers in
    [low, high]: a shape, axes or indices. Floating-point values (NaN, 2.5, even 2.0) are refused,
    as ONNX's int64 inputs demand; nothing is rounded or wrapped."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise OnnxImportError(f"{what} has element type {arr.dtype} ({_few(arr)}); expected integers (int64)")
    if arr.size > max_count:
        raise OnnxImportError(f"{what} has {arr.size} values; at most {max_count} are supported")
    out = [int(v) for v in arr.ravel()]
    for v in out:
        if not low <= v <= high:
            raise OnnxImportError(f"{what} is {out}: the value {v} is outside [{low}, {high}]")
    return out


def _few(arr: np.ndarray) -> str:
    flat = arr.ravel()[:6]
    text = ", ".join(str(v) for v in flat.tolist())
    return f"[{text}{', ...' if arr.size > 6 else ''}]"
