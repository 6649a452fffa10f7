"""Constants and shape arithmetic, evaluated at import (``@folds``; no layer, no export).

Exporters write ``x.view(x.size(0), -1)`` as ``Shape -> Gather -> Unsqueeze -> Concat ->
Reshape`` (PyTorch's ``dynamo=False`` exporter, with and without constant folding), a fixed
reshape as ``Constant -> Reshape``, weights as initializers or ``Constant`` nodes, sometimes
behind ``Cast``, ``Transpose`` or ``Identity``. These cheap operators are the allowlist; each
folder checks its inputs and predicts the size of its result from them, so that the walk can
refuse a few bytes of model that would allocate gigabytes (:mod:`codegen.onnx.constants`):

==============================================  ==========================================
op                                              result size at most
==============================================  ==========================================
Constant                                        decoded and checked here (its attribute)
Shape, Size (also of computed tensors)          computed here from the shape
Identity, Cast, Reshape, Flatten, Squeeze,      the data input's size
Unsqueeze, Transpose, Slice
Concat                                          the sum of the inputs
Gather                                          indices x the data's other dimensions
Add, Sub, Mul, Div                              the broadcast shape (integer division by 0
                                                refused)
ConstantOfShape, Expand                         the shape's product (integer values only)
Range                                           ceil((limit - start) / delta)
==============================================  ==========================================

Any other operator whose inputs are all constants is refused by the walk.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OnnxImportError, quote
from ..limits import MAX_DIM, MAX_RANK, check_elements, element_count
from ..registry import folds
from ..tensors import as_ints, decode

_NUMERIC = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16}     # ONNX element types Cast may produce here


def _input(imp, node, k: int) -> str:
    name = node.input[k] if k < len(node.input) else ""
    return f"{imp.where(node)}: input {k} ({quote(name)})"


@folds("Constant")
def _constant(imp, node, inputs):
    attrs = list(node.attribute)
    if len(attrs) != 1:
        imp.refuse(node, "its attributes", [a.name for a in attrs], "a Constant needs exactly one value attribute")
    a = attrs[0]
    what = f"{imp.where(node)}: attribute {quote(a.name)}"
    if a.name == "value":
        return [decode(a.t, what)]
    if a.name == "value_float":
        return [np.array(a.f, np.float32)]
    if a.name == "value_int":
        return [np.array(a.i, np.int64)]
    if a.name in ("value_floats", "value_ints"):
        values = a.floats if a.name == "value_floats" else a.ints
        check_elements(len(values), what)
        return [np.array(list(values), np.float32 if a.name == "value_floats" else np.int64)]
    imp.refuse(node, f"attribute {quote(a.name)}", "'given'", "supported: value, value_float(s), value_int(s)")


def _shape_of(value) -> list[int]:
    return list(value.onnx_shape()) if hasattr(value, "onnx_shape") else list(np.shape(value))


@folds("Shape", of_shapes=True)
def _shape(imp, node, inputs):
    attrs = imp.attrs(node)
    shape = _shape_of(inputs[0])
    return [np.array(shape[attrs.get("start", 0):attrs.get("end", None)], np.int64)]


@folds("Size", of_shapes=True)
def _size(imp, node, inputs):
    return [np.array(math.prod(_shape_of(inputs[0])), np.int64)]


@folds("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice")
def _rearranged(imp, node, inputs):
    """The result holds (some of) the data's elements."""
    return inputs[0].size


@folds("Cast")
def _cast(imp, node, inputs):
    to = imp.attrs(node).get("to", 0)
    if to not in _NUMERIC:
        imp.refuse(node, "attribute 'to'", to, "only numeric element types are evaluated at import")
    return inputs[0].size


@folds("Concat")
def _concat(imp, node, inputs):
    return sum(v.size for v in inputs if v is not None)


@folds("Gather")
def _gather(imp, node, inputs):
    data, indices = inputs[0], inputs[1]
    axis = imp.attrs(node).get("axis", 0)
    if not -data.ndim <= axis < data.ndim:
        imp.refuse(node, "attribute 'axis'", axis, f"the data has rank {data.ndim}")
    if indices is None or indices.dtype.kind not in "iu":
        imp.refuse(node, "input 1 (indices)", "'not integers'", "Gather's indices must be int32 or int64")
    rest = data.size // data.shape[axis] if data.shape[axis] else 0
    return rest * indices.size


@folds("Add", "Sub", "Mul", "Div")
def _arithmetic(imp, node, inputs):
    a, b = inputs[0], inputs[1]
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        imp.refuse(node, "the input shapes", [list(a.shape), list(b.shape)], "they do not broadcast")
    if node.op_type == "Div" and b.dtype.kind in "iub" and np.any(b == 0):
        imp.refuse(node, "input 1 (the divisor)", "'zero'", "integer division by zero")
    return math.prod(shape)


def _shape_values(imp, node, k: int) -> list[int]:
    """Input ``k``, a shape: at most MAX_RANK integers in [0, MAX_DIM]."""
    value = imp.consts[node.input[k]]
    return as_ints(value, _input(imp, node, k), 0, MAX_DIM, MAX_RANK)


@folds("ConstantOfShape")
def _constant_of_shape(imp, node, inputs):
    shape = _shape_values(imp, node, 0)
    attrs = {a.name: a for a in node.attribute}
    if "value" in attrs:
        fill = decode(attrs["value"].t, f"{imp.where(node)}: attribute 'value'")
        if fill.size != 1:
            imp.refuse(node, "attribute 'value'", f"'of {fill.size} elements'", "it must hold exactly one value")
    return element_count(shape, f"{imp.where(node)}: its result")


@folds("Expand")
def _expand(imp, node, inputs):
    shape = _shape_values(imp, node, 1)
    try:
        out = np.broadcast_shapes(inputs[0].shape, tuple(shape))
    except ValueError:
        imp.refuse(node, "input 1 (shape)", shape, f"it does not broadcast with the data's shape "
                   f"{list(inputs[0].shape)}")
    return element_count(out, f"{imp.where(node)}: its result")


@folds("Range")
def _range(imp, node, inputs):
    values = []
    for k, what in enumerate(("start", "limit", "delta")):
        v = inputs[k]
        if v.size != 1 or v.dtype.kind not in "iuf":
            imp.refuse(node, f"input {k} ({what})", f"'of {v.size} {v.dtype} values'", "expected one number")
        x = v.ravel()[0].item()
        if not math.isfinite(x):
            imp.refuse(node, f"input {k} ({what})", x, "expected a finite number")
        values.append(x)
    start, limit, delta = values
    if delta == 0:
        imp.refuse(node, "input 2 (delta)", 0, "a range needs a nonzero step")
    span = (limit - start) / delta
    if span > MAX_DIM:
        count = math.ceil(span) if span < 1e18 else f"{span:.3g}"
        raise OnnxImportError(f"{imp.where(node)}: its result would have {count} elements; a range is limited to "
                              f"{MAX_DIM} (2^24)")
    return max(0, math.ceil(span)) if math.isfinite(span) else 0
