"""Size limits for ONNX models, which are untrusted input, checked before anything is used.

A few bytes of ONNX can claim a 2^31-pixel image, a 2^40 padding or a 50000 x 50000 constant;
these limits refuse such claims before any allocation, loop or code generation, with a
message that names the node (or input, initializer) and the limit. They are far above what a
real CNN needs:

- ``MAX_DIM``: one dimension (an image side, a channel count, a flattened feature count, a
  kernel size, a padding, a stride, a group count, a value of a shape). Real networks stay
  below 10^5 (VGG's widest flattened feature vector: 25088); 2^24 also keeps every product
  of two dimensions exact in float64 and far from int32 overflow in the generated C.
- ``MAX_ELEMENTS``: the elements of one tensor (a weight, an activation, a constant).
  VGG-16's largest weight has 1.0e8 elements; 2^28 (1 GiB of float32) keeps every tensor
  index (and the C enums of sizes) below 2^31.
- ``MAX_FOLD_ELEMENTS``: what evaluating a node of constants at import may create beyond
  the size of its inputs (``ConstantOfShape``, ``Range``, ``Expand``, broadcasting
  arithmetic ...). Shape arithmetic has a handful of elements; 2^22 (16 MiB of float32) still
  allows weights written as a constant fill.
- ``MAX_RANK``: the rank of a tensor (ONNX's CNNs use at most 5).
"""

from __future__ import annotations

import math

from .errors import OnnxImportError

MAX_DIM = 2 ** 24
MAX_ELEMENTS = 2 ** 28
MAX_FOLD_ELEMENTS = 2 ** 22
MAX_RANK = 8


def element_count(dims, what: str) -> int:
    """The number of elements of a tensor of shape ``dims`` (Python integers, no overflow),
    refusing negative dimensions, dimensions over MAX_DIM, ranks over MAX_RANK and more than
    MAX_ELEMENTS elements; ``what`` names the tensor in the message."""
    dims = [int(d) for d in dims]
    if len(dims) > MAX_RANK:
        raise OnnxImportError(f"{what} has rank {len(dims)}; at most {MAX_RANK} dimensions are supported")
    for k, d in enumerate(dims):
        check_dim(d, f"{what}: dimension {k}", dims)
    count = math.prod(dims)
    check_elements(count, what, dims)
    return count


def check_dim(value: int, what: str, shape=None, allow_zero: bool = True):
    """Refuse a dimension that is negative (or zero unless ``allow_zero``) or over MAX_DIM
    (``shape``, for the message: the dimensions, or their text)."""
    shown = _shape(shape)
    if value < 0 or (value == 0 and not allow_zero):
        allowed = "nonnegative" if allow_zero else "positive"
        raise OnnxImportError(f"{what} is {value}{shown}; dimensions must be {allowed}")
    if value > MAX_DIM:
        raise OnnxImportError(f"{what} is {value}{shown}; the limit is {MAX_DIM} (2^24) per dimension")


def check_elements(count: int, what: str, shape=None, limit: int = MAX_ELEMENTS):
    """Refuse more than ``limit`` elements."""
    if count > limit:
        shown = _shape(shape)
        raise OnnxImportError(f"{what} has {count} elements{shown}; the limit is {limit} (2^{limit.bit_length() - 1}) "
                              "elements per tensor")


def _shape(shape) -> str:
    if shape is None:
        return ""
    return f" (shape {shape if isinstance(shape, str) else list(shape)})"
