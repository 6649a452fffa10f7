"""Combining tensors: ONNX ``Add``, ``Sum``, ``Concat`` <-> ``additionLayer``,
``depthConcatenationLayer`` / ``concatenationLayer``.

Import: ``Add``/``Sum`` of tensors of equal shape (no broadcasting) is an ``additionLayer``;
``Concat`` only along the channels (axis 1) is a ``depthConcatenationLayer``. ``Add`` with one
constant input is not a combination: on the graph input it is input normalization
(:mod:`codegen.onnx.ops.normalization`), elsewhere the bias of the preceding fully connected
layer (:mod:`codegen.onnx.ops.dense`).

Export: ``Sum`` / ``Concat(axis=1)``; inputs of mixed rank are all made N x C x H x W.
"""

from __future__ import annotations

from ...layers import AdditionLayer, ConcatenationLayer, additionLayer, depthConcatenationLayer
from ..registry import exports, translates
from .dense import add_bias
from .normalization import applies_to_input, normalize_input


@translates("Add")
def _add(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"broadcast", "axis", "consumed_inputs"})
    names = list(node.input)
    consts = [n for n in names if n in imp.consts]
    if len(consts) == 1:
        if applies_to_input(imp, node, names):
            return normalize_input(imp, node, "Add")
        return add_bias(imp, node, names)
    _combine(imp, node, [imp.tensor(node, k) for k in range(len(names))])


@translates("Sum")
def _sum(imp, node):
    imp.check_attrs(node, imp.attrs(node), {"consumed_inputs"})
    xs = [imp.tensor(node, k) for k in range(len(node.input))]
    if len(xs) == 1:
        return imp.set(node, xs[0])
    _combine(imp, node, xs)


def _combine(imp, node, xs):
    first = xs[0]
    for k, t in enumerate(xs[1:], start=1):
        if t.kind != first.kind or t.shape != first.shape:
            imp.refuse(node, f"input {k}", f"'of shape {list(t.onnx_shape())}'",
                       f"input 0 is {list(first.onnx_shape())}; only tensors of equal shape can be added "
                       "(no broadcasting)")
    imp.new(node, additionLayer(len(xs), Name=imp.layer_name(node, "addition")), xs, first.kind)


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
