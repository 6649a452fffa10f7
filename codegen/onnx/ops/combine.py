"""Combining tensors: ONNX ``Sum``, ``Concat`` <-> ``additionLayer``, ``depthConcatenationLayer`` /
``concatenationLayer``; ``multiplicationLayer`` -> ``Mul``.

Import: ``Sum`` of tensors of equal shape (no broadcasting: MATLAB's additionLayer needs equal
sizes) is an ``additionLayer``; ``Concat`` only along the channels (axis 1) is a
``depthConcatenationLayer``. (``Add`` and ``Mul`` of two tensors reach :func:`combine` from
:mod:`codegen.onnx.ops.arithmetic`, which owns the binary arithmetic.)

Export: ``Sum`` / ``Concat(axis=1)`` / a chain of ``Mul`` nodes (in1 * in2 * ..., left to right,
as the layer multiplies; ONNX broadcasting expands the singleton dimensions as MATLAB does); inputs
of mixed rank are all made N x C x H x W.
"""

from __future__ import annotations

from ...layers import (AdditionLayer, ConcatenationLayer, MultiplicationLayer, additionLayer, depthConcatenationLayer,
                       multiplicationLayer)
from ..registry import exports, translates


@translates("Sum")
def _sum(imp, node):
    imp.check_attrs(node, imp.attrs(node), {"consumed_inputs"})
    xs = [imp.tensor(node, k) for k in range(len(node.input))]
    if len(xs) == 1:
        return imp.set(node, xs[0])
    combine(imp, node, xs)


def combine(imp, node, xs, multiply: bool = False):
    """``xs`` added (equal shapes) or multiplied (singleton dimensions expand) by one new layer."""
    first = xs[0]
    for k, t in enumerate(xs[1:], start=1):
        if t.kind != first.kind or (t.shape != first.shape and not (multiply and t.kind in ("nchw", "nc"))):
            why = ("both inputs must be N x C x H x W tensors or both N x K (ONNX broadcasting would align an N x K "
                   "tensor with the last dimensions, not the channels)" if multiply else
                   "only tensors of equal shape can be added (no broadcasting: MATLAB's additionLayer needs inputs of "
                   "equal size)")
            imp.refuse(node, f"input {k}", f"'of shape {list(t.onnx_shape())}'",
                       f"input 0 is {list(first.onnx_shape())}; {why}")
    if multiply:
        layer = multiplicationLayer(len(xs), Name=imp.layer_name(node, "multiplication"))
    else:
        layer = additionLayer(len(xs), Name=imp.layer_name(node, "addition"))
    imp.new(node, layer, xs, first.kind)


@translates("Concat")
def _concat(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axis"})
    xs = [imp.tensor(node, k) for k in range(len(node.input))]
    first = xs[0]
    rank = 4 if first.kind == "nchw" else 2
    axis = attrs.get("axis", 1)
    if not -rank <= axis < rank or axis % rank != 1:
        imp.refuse(node, "attribute 'axis'", axis, "only concatenation along the channels (axis 1) is "
                   "supported (depthConcatenationLayer)")
    for k, t in enumerate(xs):
        if t.kind not in ("nchw", "nc") or t.kind != first.kind:
            imp.refuse(node, f"input {k}", f"'of shape {list(t.onnx_shape())}'",
                       "all inputs must be N x C x H x W (or all N x K) tensors")
    if len(xs) == 1:
        return imp.set(node, first)
    imp.new(node, depthConcatenationLayer(len(xs), Name=imp.layer_name(node, "depthcat")), xs, first.kind)


def _inputs(exp, layer):
    """The layer's inputs at one rank (4 where they differ), and that rank."""
    sources = exp.net.inputs[layer.Name]
    ranks = {exp.tensors[s][1] for s in sources}
    rank = 4 if len(ranks) > 1 else ranks.pop()
    return [exp.input(layer, k, rank) for k in range(len(sources))], rank


@exports(AdditionLayer)
def _addition_layer(exp, layer):
    xs, rank = _inputs(exp, layer)
    return exp.node("Sum", xs, layer.Name), rank


@exports(ConcatenationLayer)
def _concatenation_layer(exp, layer):
    xs, rank = _inputs(exp, layer)
    return exp.node("Concat", xs, layer.Name, axis=1), rank


@exports(MultiplicationLayer)
def _multiplication_layer(exp, layer):
    xs, rank = _inputs(exp, layer)
    out = xs[0]
    for k, x in enumerate(xs[1:], start=1):
        out = exp.node("Mul", [out, x], layer.Name if k == len(xs) - 1 else f"{layer.Name}_{k}")
    return out, rank
