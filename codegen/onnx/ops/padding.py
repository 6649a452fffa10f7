"""Padding: ONNX ``Pad`` with zeros, folded into the ``Conv``, ``MaxPool`` or ``AveragePool`` that
reads it (no layer of its own; export writes none: our layers carry their padding).

Exporters write explicit padding as a Pad node before a window op: Keras-style asymmetric
'same' (``F.pad(x, (0, 1, 0, 1))`` before a stride-2 convolution, as in the MLPerf Tiny models),
``nn.ZeroPad2d`` before a pooling. Our convolutions and poolings take any ``[t b l r]`` padding,
so a Pad whose result one such node reads adds its pads to that node's. The translator makes no
layer: the Pad's result is an :class:`~codegen.onnx.binding.OnnxTensor` with ``pad`` set (and the
padded shape), which the reader absorbs (:func:`codegen.onnx.ops.windows.absorb`).

Folded only where the result is the same:

- mode ``constant`` with value 0 (absent or a zero constant; ``pads`` from the attribute before
  opset 11, the constant input from 11 on, ``axes`` from 18 on), pads nonnegative and only on H
  and W, of an N x C x H x W tensor;
- read by exactly one node, a Conv, MaxPool or AveragePool (as its data input), and not a
  graph output;
- MaxPool: its own padding is -infinity, not zero, so the Pad folds only where its input is
  known nonnegative (the output of a Relu, a clipped ReLU, a sigmoid ..., also through
  poolings, concatenations, additions and channel rearrangements of such outputs);
- AveragePool (:func:`codegen.onnx.ops.windows.average_pool_padding`): with ``count_include_pad=1`` (zeros counted, as
  ``averagePooling2dLayer`` with PaddingValue 0), or with no padding of its own; not with
  ``ceil_mode`` windows past the padded input.

Anything else is refused, naming the node, the attribute or input, the value and why.
"""

from __future__ import annotations

import numpy as np

from ...layers import (AdditionLayer, AveragePooling2DLayer, ChannelShuffleLayer, ChannelSliceLayer,
                       ClippedReLULayer, ConcatenationLayer, GlobalAveragePooling2DLayer, HardSigmoidLayer,
                       MaxPooling2DLayer, ReLULayer, Resize2DLayer, SigmoidLayer, SoftplusLayer)
from ..binding import OnnxTensor
from ..errors import OnnxImportError, quote
from ..registry import translates

READERS = ("Conv", "MaxPool", "AveragePool")       # the nodes a Pad folds into
NONNEGATIVE = (ReLULayer, ClippedReLULayer, SigmoidLayer, SoftplusLayer, HardSigmoidLayer)
KEEPS_SIGN = (MaxPooling2DLayer, AveragePooling2DLayer, GlobalAveragePooling2DLayer, ConcatenationLayer,
              AdditionLayer, ChannelShuffleLayer, ChannelSliceLayer, Resize2DLayer)
MAX_DEPTH = 64                                      # layers followed back to find a nonnegative source


def _text(value, default: str) -> str:
    if value is None:
        return default
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else str(value)


def _reader(imp, node):
    """The one node folding the Pad's result in, else a refusal saying who reads it."""
    out = node.output[0]
    readers = imp.readers(out)
    graph_output = imp.consumers.get(out, 0) > len(readers)
    if graph_output:
        imp.refuse(node, f"its output {quote(out)}", "'a graph output'",
                   f"a Pad is supported only folded into the one {', '.join(READERS)} node that reads it")
    if len(readers) != 1:
        shown = ", ".join(imp.where(r) for r in readers[:3])
        imp.refuse(node, f"its output {quote(out)}", f"'read by {len(readers)} nodes'",
                   f"a Pad is folded into the one {', '.join(READERS)} node that reads it; here {shown} read it")
    reader = readers[0]
    if reader.op_type not in READERS or list(reader.input).index(out) != 0:
        imp.refuse(node, f"its output {quote(out)}", f"'read by {imp.where(reader)}'",
                   f"a Pad is supported only folded into a following {', '.join(READERS)} (as its data input)")
    return reader


def pads_name(imp) -> str:
    """How messages name a Pad's pads: the attribute before opset 11, the input from 11 on."""
    return "attribute 'pads'" if imp.opset < 11 else "input 1 (pads)"


def _pads(imp, node, attrs, rank: int) -> list[int]:
    """[begin..., end...] over all ``rank`` axes."""
    axes = list(range(rank))
    if imp.opset < 11:
        values = list(attrs.get("pads", []))
    else:
        values = imp.ints(node, 1, "pads")
        if len(node.input) > 3 and node.input[3]:          # opset 18: pads for these axes only
            given = imp.ints(node, 3, "axes", low=-rank, high=rank - 1)
            axes = [a % rank for a in given]
            if len(set(axes)) != len(axes):
                imp.refuse(node, "input 3 (axes)", given, "each axis may appear once")
    if len(values) != 2 * len(axes):
        imp.refuse(node, pads_name(imp), values, f"expected {2 * len(axes)} values (a begin and an end for each of "
                   f"{len(axes)} axes)")
    full = [0] * (2 * rank)
    for k, a in enumerate(axes):
        full[a], full[rank + a] = values[k], values[len(axes) + k]
    return full


@translates("Pad")
def _pad(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"mode", "pads", "value"})
    x = imp.tensor(node, 0)
    if x.kind != "nchw":
        imp.refuse(node, "input 0", f"'of shape {list(x.onnx_shape())}'",
                   "a Pad is folded into a following Conv or pooling, which needs an N x C x H x W input")
    full = _pads(imp, node, attrs, 4)
    if not any(full):
        return imp.set(node, x)                 # pads nothing: the input itself
    readers = imp.readers(node.output[0])
    one = readers[0] if len(readers) == 1 and readers[0].op_type in READERS else None
    follows = f"the following {one.op_type} ({quote(one.name or one.output[0])})" if one else \
        "a following Conv or pooling"
    mode = _text(attrs.get("mode"), "constant")
    if mode != "constant":
        imp.refuse(node, "attribute 'mode'", quote(mode),
                   f"it cannot be folded into {follows}: codegen's convolutions and poolings pad with zeros "
                   "(only mode 'constant' with value 0 folds)")
    value = attrs.get("value", 0.0) if imp.opset < 11 else imp.scalar(node, 2, "constant_value")
    if value is not None and not value == 0:        # NaN too
        what = "attribute 'value'" if imp.opset < 11 else f"input 2 (constant_value, {quote(node.input[2])})"
        shown = float(str(np.float32(value)))       # float32's shortest digits: 1.2, not 1.2000000476837158
        imp.refuse(node, what, shown, f"it cannot be folded into {follows}: codegen's convolutions and "
                   "poolings pad with zeros (only mode 'constant' with value 0 folds)")
    if min(full) < 0:
        imp.refuse(node, pads_name(imp), full, "negative pads crop the tensor; only padding (pads >= 0) is supported")
    if full[0] or full[1] or full[4] or full[5]:
        imp.refuse(node, pads_name(imp), full, "only H and W can be padded (the batch and channel pads must be 0)")
    reader = _reader(imp, node)
    t, left, b, r = full[2], full[3], full[6], full[7]
    h, w, c = x.shape
    if reader.op_type == "MaxPool":
        source = _negative_source(imp, x.layer)
        if source is not None:
            raise OnnxImportError(f"{imp.where(node)}: input 0 ({quote(node.input[0])}) comes from {source}, which "
                                  f"can be negative; {follows} pads with -infinity, the Pad with zeros: the Pad folds "
                                  "into it only where its input is known nonnegative (the output of a Relu, say)")
    imp.set(node, OnnxTensor(x.layer, (h + t + b, w + left + r, c), "nchw", (t, b, left, r)))


def _negative_source(imp, layer_name: str) -> str | None:
    """None if the layer's output is known nonnegative, else how messages name the layer that may
    make it negative."""
    layers = {lay.Name: lay for lay in imp.layers}
    stack, seen = [layer_name], set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        layer = layers[name]
        if isinstance(layer, NONNEGATIVE):
            continue
        if isinstance(layer, KEEPS_SIGN) and len(seen) < MAX_DEPTH:
            stack.extend(imp.sources[name])
            continue
        return f"{layer.FUNCTION} {quote(name)}"
    return None
