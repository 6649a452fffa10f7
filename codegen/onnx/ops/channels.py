"""Rearranging channels: ONNX ``Split`` and ``Slice`` on the channel axis <-> ``channelSliceLayer``;
the channel shuffle exporters write as three nodes <-> ``channelShuffleLayer`` (both layers are
extensions, :mod:`codegen.layers.channels`).

Import:

- ``Split`` along axis 1 (the channels of N x C x H x W, or K of N x K): every used output is a
  ``channelSliceLayer`` of its range (an output holding every channel is the input itself).
  The sizes come from the ``split`` attribute (before opset 13), the ``split`` input (13 on),
  ``num_outputs`` (18 on: ceil(C / n) each, the last smaller), or are equal.
- ``Slice`` with constant ``starts``/``ends``/``axes``/``steps`` (attributes before opset 10):
  step 1, on axis 1 only (other axes only over their whole range), ONNX's clamping of negative
  and out-of-range bounds (PyTorch writes ``x[:, 8:]`` with the end 2^63 - 1).
- The channel shuffle (ShuffleNet's ``view -> transpose -> view``): ``Reshape`` of N x C x H x W
  to N x g x C/g x H x W (or N x g x C/g x H*W), ``Transpose`` perm [0, 2, 1, 3, 4] (resp.
  [0, 2, 1, 3]), ``Reshape`` back to N x C x H x W. A recognizer (``@spelling``, see
  :mod:`codegen.onnx.neighbours`) claims the three nodes where the intermediate results have no
  other reader; the shapes are checked when the walk translates the group (they may come from
  ``Shape`` of computed tensors, known only then), and what is not a shuffle is refused there.
  A Reshape to 5-D outside such a group is refused by :mod:`codegen.onnx.ops.views`.

Export: ``channelSliceLayer`` as ``Slice`` (axis 1), ``channelShuffleLayer`` as ``Reshape``
(to N x g x C/g x H x W) -> ``Transpose`` -> ``Reshape``, the nodes PyTorch writes.
"""

from __future__ import annotations

import numpy as np

from ...layers import ChannelShuffleLayer, ChannelSliceLayer, channelShuffleLayer, channelSliceLayer
from ..errors import quote
from ..registry import exports, spelling, translates
from .views import reshape_target

INT64 = 2**63                   # the bounds of Slice's int64 starts and ends
SHUFFLE_PERMS = {5: [0, 2, 1, 3, 4], 4: [0, 2, 1, 3]}


def _channels_of(imp, node, x) -> int:
    """The channel count of ``x``, an N x C x H x W or N x K tensor (axis 1 of either)."""
    if x.kind not in ("nchw", "nc"):
        imp.refuse(node, "input 0", f"'of shape {list(x.onnx_shape())}'", "only the channels of an N x C x H x W "
                   "tensor (or the K of an N x K one) can be split or sliced; this one is a flattened image")
    return x.shape[2]


def _take(imp, node, x, k: int, first: int, count: int):
    """Output ``k`` of ``node`` is channels [first, first + count) of ``x``."""
    if (first, count) == (0, x.shape[2]):
        return imp.set(node, x, k)
    layer = channelSliceLayer(first + 1, count, Name=imp.layer_name(node, "slice"))
    imp.new(node, layer, [x], x.kind, k=k)


# ============================================================================ Split

@translates("Split")
def _split(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axis", "num_outputs", "split"})
    x = imp.tensor(node, 0)
    c = _channels_of(imp, node, x)
    rank = 4 if x.kind == "nchw" else 2
    axis = attrs.get("axis", 0)
    if not -rank <= axis < rank or axis % rank != 1:
        imp.refuse(node, "attribute 'axis'", axis, "only a split of the channels (axis 1) is supported "
                   "(channelSliceLayer)")
    n = len(node.output)
    what = "the sizes"
    if "split" in attrs:
        sizes, what = list(attrs["split"]), "attribute 'split'"
    elif len(node.input) > 1 and node.input[1]:
        sizes, what = imp.ints(node, 1, "split", low=0), "input 1 (split)"
    elif "num_outputs" in attrs:
        k = attrs["num_outputs"]
        if k != n or k < 1:
            imp.refuse(node, "attribute 'num_outputs'", k, f"the node has {n} outputs")
        chunk = -(-c // k)
        sizes = [chunk] * (k - 1) + [c - chunk * (k - 1)]
        if sizes[-1] < 0:
            imp.refuse(node, "attribute 'num_outputs'", k, f"{c} channels in chunks of {chunk} fill fewer outputs")
    else:
        if c % n:
            imp.refuse(node, "the number of outputs", n, f"{c} channels cannot be split into {n} equal parts (and no "
                       "'split' sizes are given)")
        sizes = [c // n] * n
    if len(sizes) != n or sum(sizes) != c or min(sizes) < 0:
        imp.refuse(node, what, sizes, f"expected {n} nonnegative sizes (one per output) adding up to the "
                   f"{c} channels")
    first = 0
    for k, (out, size) in enumerate(zip(node.output, sizes)):
        if out and imp.consumers.get(out, 0):
            if size == 0:
                imp.refuse(node, f"output {k} ({quote(out)})", "'empty (0 channels)'", "it is used, but a tensor "
                           "needs at least one channel")
            _take(imp, node, x, k, first, size)
        first += size


# ============================================================================ Slice

def _bound(v: int, d: int) -> int:
    """A Slice start or end (step 1) clamped as ONNX does."""
    return min(max(v + d if v < 0 else v, 0), d)


@translates("Slice")
def _slice(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axes", "ends", "starts"})
    x = imp.tensor(node, 0)
    c = _channels_of(imp, node, x)
    src = list(x.onnx_shape())
    rank = len(src)
    if imp.opset < 10:
        starts, ends = list(attrs.get("starts", [])), list(attrs.get("ends", []))
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = imp.ints(node, 1, "starts", low=-INT64, high=INT64 - 1)
        ends = imp.ints(node, 2, "ends", low=-INT64, high=INT64 - 1)
        given = len(node.input) > 3 and node.input[3]
        axes = imp.ints(node, 3, "axes", low=-rank, high=rank - 1) if given else list(range(len(starts)))
        given = len(node.input) > 4 and node.input[4]
        steps = imp.ints(node, 4, "steps", low=-INT64, high=INT64 - 1) if given else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        imp.refuse(node, "starts, ends, axes and steps", [starts, ends, axes, steps], "expected as many of each")
    norm = [a % rank if -rank <= a < rank else None for a in axes]
    if None in norm or len(set(norm)) != len(norm):
        imp.refuse(node, "axes", axes, f"each axis must lie in [{-rank}, {rank - 1}] and appear once")
    first, end = 0, c
    for a, s, e, step in zip(norm, starts, ends, steps):
        if step != 1:
            imp.refuse(node, "steps", steps, "only step 1 is supported (a contiguous range of channels)")
        if a == 1:
            first, end = _bound(s, c), _bound(e, c)
        elif a == 0:
            whole = imp.batch if imp.batch else 2**31 - 1       # ends this large mean "to the end"
            if s != 0 or e < whole:
                imp.refuse(node, "the slice of axis 0", [s, e], "the batch cannot be sliced")
        elif (_bound(s, src[a]), _bound(e, src[a])) != (0, src[a]):
            imp.refuse(node, f"the slice of axis {a}", [s, e], f"of {src[a]}: only the channels (axis 1) can be "
                       "sliced; other axes only over their whole range")
    if end <= first:
        imp.refuse(node, "the slice of the channels", [first, end], f"of {c} channels: it is empty")
    _take(imp, node, x, 0, first, end - first)


# ============================================================================ channel shuffle

def _sole_reader(imp, name: str):
    readers = imp.readers(name) if name else []
    return readers[0] if len(readers) == 1 and imp.consumers.get(name, 0) == 1 else None


@spelling("Transpose")
def _channel_shuffle(imp, node):
    perm = [list(a.ints) for a in node.attribute if a.name == "perm" and a.type == a.INTS]
    if len(perm) != 1 or perm[0] not in SHUFFLE_PERMS.values() or len(node.input) != 1 or len(node.output) != 1:
        return
    first = imp.producer(node.input[0])
    last = _sole_reader(imp, node.output[0])
    if first is None or last is None or first.op_type != "Reshape" or last.op_type != "Reshape":
        return
    if _sole_reader(imp, node.input[0]) is not node or not last.input or last.input[0] != node.output[0]:
        return
    rank = len(perm[0])

    def translate(imp, last_node):
        x = imp.tensor(first, 0)
        if x.kind != "nchw":
            imp.refuse(first, "input 0", f"'of shape {list(x.onnx_shape())}'",
                       "a channel shuffle needs an N x C x H x W tensor")
        _, c, h, w = src = list(x.onnx_shape())
        grouped = reshape_target(imp, first, src)
        spatial = [h, w] if rank == 5 else [h * w]
        if len(grouped) != rank or grouped[1] * grouped[2] != c or grouped[3:] != spatial:
            want = "N x g x C/g x H x W" if rank == 5 else "N x g x C/g x H*W"
            imp.refuse(first, "the target shape", grouped,
                       f"from {src}: followed by Transpose perm {perm[0]} and a Reshape, it must split the channels "
                       f"({want}) for a channel shuffle")
        g, cg = grouped[1], grouped[2]
        back = reshape_target(imp, last_node, [1, cg, g, *spatial])
        if back != src:
            imp.refuse(last_node, "the target shape", back, f"after a channel shuffle's Reshape to {grouped} and "
                       f"Transpose perm {perm[0]}, it must be the original shape {src}")
        layer = channelShuffleLayer(g, Name=imp.layer_name(node, "shuffle"))
        imp.new(last_node, layer, [x], "nchw")

    imp.claim([first, node, last], translate)


# ============================================================================ export

@exports(ChannelSliceLayer)
def _channel_slice_layer(exp, layer):
    first, end = layer.channels
    x = exp.input(layer)
    bounds = [exp.const(f"{layer.Name}_{what}", [v], np.int64) for what, v in (("starts", first), ("ends", end),
                                                                                ("axes", 1))]
    return exp.node("Slice", [x, *bounds], layer.Name), exp.rank_of(layer)


@exports(ChannelShuffleLayer)
def _channel_shuffle_layer(exp, layer):
    h, w, c = exp.net.shapes[exp.net.inputs[layer.Name][0]]
    g, name = layer.Groups, layer.Name
    x = exp.input(layer, rank=4)
    grouped = exp.node("Reshape", [x, exp.const(f"{name}_groups", [0, g, c // g, h, w], np.int64)], f"{name}_grouped")
    swapped = exp.node("Transpose", [grouped], f"{name}_transposed", perm=SHUFFLE_PERMS[5])
    return exp.node("Reshape", [swapped, exp.const(f"{name}_shape", [0, c, h, w], np.int64)], name), 4
