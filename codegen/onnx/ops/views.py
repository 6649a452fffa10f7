"""Views: ONNX ``Identity``, ``Dropout`` (inference), ``Flatten``, ``Reshape``, ``Squeeze``,
``Unsqueeze`` make no layer; they change how ONNX sees the tensor (N x C x H x W, N x K, or
N x C*H*W flattened row-major), which later translators (Gemm, MatMul) take into account.
Only views that move no data are supported: flattening to N x K and N x K <-> N x K x 1 x 1.
``Transpose(perm=[0, 1, 3, 2])`` of an N x C x H x W tensor read only by a ``Flatten(axis=1)``
is MATLAB's column-major flatten: a ``flattenLayer`` (the spelling our export writes).

Export: ``classificationLayer``, ``regressionLayer`` and ``dropoutLayer`` are no node: the
output is the input's ONNX tensor. ``flattenLayer`` of an N x C x H x W tensor is ``Transpose``
to N x C x W x H and ``Flatten``: ONNX's row-major flatten of c x w x h is MATLAB's order
h + H*(w + W*c); of an N x K tensor (already flat, in that order) it is no node.
"""

from __future__ import annotations

import math

import numpy as np

from ...layers import ClassificationOutputLayer, DropoutLayer, FlattenLayer, RegressionOutputLayer, flattenLayer
from ..binding import OnnxTensor
from ..limits import MAX_RANK
from ..registry import exports, spelling, translates

MATLAB_ORDER = [0, 1, 3, 2]     # N x C x H x W -> N x C x W x H: a row-major flatten is then MATLAB's order


@translates("Identity")
def _identity(imp, node):
    imp.set(node, imp.tensor(node, 0))


@translates("Dropout")
def _dropout(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"ratio", "seed", "is_test"})
    if imp.opset < 7 and attrs.get("is_test", 0) != 1:
        imp.refuse(node, "attribute 'is_test'", attrs.get("is_test", 0), "only inference (is_test=1) is supported")
    if len(node.input) > 2 and node.input[2]:
        if imp.scalar(node, 2, "training_mode"):
            imp.refuse(node, "input 'training_mode'", "'true'", "only inference is supported")
    imp.only_first_output(node)
    imp.set(node, imp.tensor(node, 0))


def _flat(x: OnnxTensor) -> OnnxTensor:
    if x.kind != "nchw":
        return x
    h, w, _ = x.shape
    return OnnxTensor(x.layer, x.shape, "nc" if h == 1 and w == 1 else "flat_chw")


def _view(imp, node, x: OnnxTensor, shape: list[int], what: str) -> OnnxTensor:
    """``x`` seen with ONNX shape ``shape`` (batch first), where that needs no data movement."""
    h, w, c = x.shape
    if shape == list(x.onnx_shape()):
        return x
    if len(shape) == 2:
        if x.kind == "nchw":
            return _flat(x)
        return x            # nc / flat_chw: already N x K
    if len(shape) == 4 and shape[2:] == [1, 1] and (x.kind == "nc" or (x.kind == "nchw" and h == w == 1)):
        return OnnxTensor(x.layer, (1, 1, h * w * c), "nchw")
    shuffle = (", and 5-D shapes only as the first Reshape of a channel shuffle (Reshape to N x g x C/g x H x W, "
               "Transpose perm [0, 2, 1, 3, 4], Reshape back to N x C x H x W)") if len(shape) == 5 else ""
    imp.refuse(node, what, shape, f"from {list(x.onnx_shape())}: only flattening to N x K (or N x K x 1 x 1) "
               f"is supported{shuffle}")


@translates("Flatten")
def _flatten(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axis"})
    x = imp.tensor(node, 0)
    rank = 4 if x.kind == "nchw" else 2
    axis = attrs.get("axis", 1)
    if axis % rank != 1 if -rank <= axis <= rank else True:
        imp.refuse(node, "attribute 'axis'", axis, "only Flatten(axis=1), keeping the batch, is supported")
    imp.set(node, _flat(x))


@translates("Reshape")
def _reshape(imp, node):
    x = imp.tensor(node, 0)
    imp.set(node, _view(imp, node, x, reshape_target(imp, node, list(x.onnx_shape())), "target shape"))


def reshape_target(imp, node, src: list[int]) -> list[int]:
    """The shape a Reshape ``node`` of a tensor of ONNX shape ``src`` (batch 1) makes, with 0 and -1
    resolved; refused unless it keeps the batch and every element."""
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"allowzero", "shape"})
    if imp.opset < 5 or "shape" in attrs:
        target = list(attrs.get("shape", []))
    else:
        target = imp.ints(node, 1, "shape", low=-1)
    if target.count(-1) > 1:
        imp.refuse(node, "the target shape", target, "at most one dimension can be -1 (inferred)")
    resolved = [src[i] if (v == 0 and not attrs.get("allowzero", 0) and i < len(src)) else v
                for i, v in enumerate(target)]
    if resolved and imp.batch and resolved[0] == imp.batch:
        resolved[0] = 1        # a model exported with a fixed batch: we compute one image at a time
    total = math.prod(src)
    if resolved.count(-1) == 1:
        known = math.prod(v for v in resolved if v != -1)
        resolved[resolved.index(-1)] = total // known if known else 0
    if math.prod(resolved) != total or resolved[:1] != [1]:
        imp.refuse(node, "the target shape", target, f"reshaping {src} must keep the batch dimension "
                   "and every element")
    return resolved


def axes_of(imp, node, attrs, rank: int) -> list[int] | None:
    """The ``axes`` attribute or constant input 1 (None if neither), each in [-rank, rank - 1]
    and given once, made nonnegative."""
    if "axes" in attrs:
        axes = list(attrs["axes"])
    elif len(node.input) > 1 and node.input[1]:
        axes = imp.ints(node, 1, "axes", low=-MAX_RANK, high=MAX_RANK)
    else:
        return None
    out = [a % rank if -rank <= a < rank else None for a in axes]
    if None in out or len(set(out)) != len(out):
        imp.refuse(node, "axes", axes, f"each axis must lie in [{-rank}, {rank - 1}] and appear once")
    return out


@translates("Squeeze")
def _squeeze(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axes"})
    x = imp.tensor(node, 0)
    src = list(x.onnx_shape())
    axes = axes_of(imp, node, attrs, len(src))
    if axes is None:
        axes = [i for i, d in enumerate(src) if d == 1 and i > 0]
    axes = sorted(axes)
    if 0 in axes or any(src[a] != 1 for a in axes):
        imp.refuse(node, "axes", axes, f"of a {src} tensor: only unit dimensions other than the batch can go")
    imp.set(node, _view(imp, node, x, [d for i, d in enumerate(src) if i not in axes], "the result"))


@translates("Unsqueeze")
def _unsqueeze(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axes"})
    x = imp.tensor(node, 0)
    src = list(x.onnx_shape())
    n_axes = len(attrs["axes"]) if "axes" in attrs else np.size(imp.const(node, 1, "axes", required=False))
    axes = axes_of(imp, node, attrs, len(src) + n_axes)
    if axes is None:
        imp.refuse(node, "axes", "'missing'", "Unsqueeze needs axes")
    n = len(src) + len(axes)
    axes = sorted(axes)
    out, it = [], iter(src)
    for i in range(n):
        out.append(1 if i in axes else next(it))
    if 0 in axes:
        imp.refuse(node, "axes", axes, "a new dimension before the batch is not supported")
    imp.set(node, _view(imp, node, x, out, "the result"))


@spelling("Transpose")
def _matlab_flatten(imp, node):
    """Transpose(perm=[0, 1, 3, 2]) read only by a Flatten(axis=1): a flattenLayer."""
    attrs = imp.attrs(node)
    readers = imp.readers(node.output[0]) if len(node.output) == 1 else []
    if list(attrs.get("perm", [])) != MATLAB_ORDER or len(readers) != 1 or readers[0].op_type != "Flatten":
        return
    flat = readers[0]
    if imp.attrs(flat).get("axis", 1) not in (1, -3):
        return
    imp.claim([node, flat], lambda imp, last: _translate_flatten(imp, node, last))


def _translate_flatten(imp, transpose, flat):
    x = imp.tensor(transpose, 0)
    if x.kind != "nchw":
        imp.refuse(transpose, "input 0", "'a 2-D tensor'", "a Transpose before Flatten (MATLAB's flatten) needs an "
                   "N x C x H x W input")
    imp.new(flat, flattenLayer(Name=imp.layer_name(flat, "flatten")), [x], "nc")


@exports(ClassificationOutputLayer, RegressionOutputLayer, DropoutLayer)
def _classification_layer(exp, layer):
    return exp.tensors[exp.net.inputs[layer.Name][0]]


@exports(FlattenLayer)
def _flatten_layer(exp, layer):
    if exp.rank_of(layer) == 2:
        return exp.input(layer), 2          # N x K: already flat, in MATLAB's order
    t = exp.node("Transpose", [exp.input(layer)], f"{layer.Name}_matlab_order", perm=MATLAB_ORDER)
    return exp.node("Flatten", [t], layer.Name, axis=1), 2
