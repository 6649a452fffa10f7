"""Local response normalization: ONNX ``LRN`` <-> ``crossChannelNormalizationLayer``, and the
nodes PyTorch writes for ``nn.LocalResponseNorm`` (ONNX has had LRN since opset 1, but PyTorch's
exporter spells the function out).

``LRN(size, alpha, beta, bias)``: y = x / (bias + alpha / size * sum of x^2 over channels
c - floor((size - 1) / 2) .. c + ceil((size - 1) / 2))^beta, MATLAB's formula and window with
WindowChannelSize = size, Alpha = alpha, Beta = beta, K = bias (MATLAB's limits apply: size <=
16, beta >= 0.01, bias >= 1e-5; the layer refuses other values, naming them).

PyTorch's ``F.local_response_norm`` on an N x C x H x W tensor ``x`` is exported (``dynamo=False``)
as::

    s = Mul(x, x) -> Reshape to N x 1 x C x H x W' -> Pad channels by (size // 2, (size - 1) // 2)
      -> AveragePool(kernel [size, 1, 1], stride 1) -> views back to N x C x H x W (Squeeze,
         or If(Shape(...)[1] == 1, Squeeze, Identity), then Reshape; the default exporter
         reshapes to N x 1 x C x H x W and squeezes axis 1 only)
    y = Div(x, Pow(Add(Mul(s, alpha), k), beta))

The recognizer (``@spelling("AveragePool")``) matches that structure before the walk and claims
the nodes; the translation then checks the values (the reshapes keep the channels on the pooled
axis, the padding is zeros on the channel axis only) and makes one layer with Alpha = alpha,
Beta = beta, K = k (the average divides by size, as MATLAB's formula does). PyTorch's window
puts size // 2 channels before the element and (size - 1) // 2 after it: MATLAB's and ONNX's for
an odd size, their mirror image for an even size, which is refused.

Export: ``LRN`` on the input made N x C x H x W.
"""

from __future__ import annotations

import math

import numpy as np

from ...layers import CrossChannelNormalizationLayer, crossChannelNormalizationLayer
from ..errors import quote
from ..limits import MAX_DIM
from ..registry import exports, spelling, translates
from ..tensors import as_ints

VIEWS = ("Reshape", "Squeeze", "Unsqueeze", "Identity")      # nodes that move no data


@translates("LRN")
def _lrn(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"size", "alpha", "beta", "bias"})
    if "size" not in attrs:
        imp.refuse(node, "attribute 'size'", "'missing'", "LRN needs the size of its channel window")
    x = imp.tensor(node, 0)
    if x.kind == "flat_chw":
        imp.refuse(node, "input 0", "'a flattened image'", "LRN normalizes across channels")
    layer = crossChannelNormalizationLayer(attrs["size"], Alpha=attrs.get("alpha", 1e-4), Beta=attrs.get("beta", 0.75),
                                           K=attrs.get("bias", 1.0), Name=imp.layer_name(node, "crossnorm"))
    imp.new(node, layer, [x], x.kind)


@exports(CrossChannelNormalizationLayer)
def _cross_channel_normalization_layer(exp, layer):
    x = exp.input(layer, rank=4)
    return exp.node("LRN", [x], layer.Name, size=int(layer.WindowChannelSize), alpha=float(layer.Alpha),
                    beta=float(layer.Beta), bias=float(layer.K)), 4


# ============================================================================ PyTorch's spelling

def _ints(node, name: str):
    a = next((a for a in node.attribute if a.name == name), None)
    return None if a is None else list(a.ints)


def _sole_reader(imp, name: str, op_types):
    readers = imp.readers(name) if name else []
    if len(readers) == 1 and imp.consumers.get(name, 0) == 1 and readers[0].op_type in op_types:
        return readers[0]
    return None


def _sole_producer(imp, name: str, op_type: str):
    node = imp.producer(name)
    if node is None or node.op_type != op_type or imp.consumers.get(name, 0) != 1:
        return None
    return node


def _scalar(imp, node, other: str):
    """The scalar constant among ``node``'s two inputs other than tensor ``other`` (None if none)."""
    if len(node.input) != 2 or other not in node.input:
        return None
    value = imp.peek(node.input[1 - list(node.input).index(other)])
    if value is None or np.size(value) != 1 or np.asarray(value).dtype.kind != "f":
        return None
    v = float(np.asarray(value).ravel()[0])
    return v if math.isfinite(v) else None


def _branch_reads(graph, name: str) -> bool:
    """An If branch that only views ``name`` (an outer tensor): Constant nodes, and views of it."""
    data = [n for n in graph.node if n.op_type != "Constant"]
    return (len(data) == 1 and data[0].op_type in VIEWS and data[0].input[:1] == [name]
            and [o.name for o in graph.output] == list(data[0].output[:1]))


def _views_after(imp, name: str, group: list):
    """Follow ``name`` through the nodes that only view it (Reshape, Squeeze, PyTorch's If of a
    dynamic squeeze), adding them to ``group``; the last tensor and the Reshape nodes met."""
    reshapes = []
    for _ in range(4):
        view = _sole_reader(imp, name, VIEWS)
        if view is not None:
            group.append(view)
            reshapes += [view] if view.op_type == "Reshape" else []
            name = view.output[0]
            continue
        shape = _sole_reader(imp, name, ("Shape",))
        gather = _sole_reader(imp, shape.output[0], ("Gather",)) if shape is not None else None
        equal = _sole_reader(imp, gather.output[0], ("Equal",)) if gather is not None else None
        branch = _sole_reader(imp, equal.output[0], ("If",)) if equal is not None else None
        graphs = [a.g for a in branch.attribute if a.name in ("then_branch", "else_branch")] if branch else []
        if len(graphs) != 2 or not all(_branch_reads(g, name) for g in graphs) or len(branch.output) != 1:
            break
        group += [shape, gather, equal, branch]
        name = branch.output[0]
    return name, reshapes


@spelling("AveragePool")
def _torch_local_response_norm(imp, pool):
    kernel = _ints(pool, "kernel_shape")
    if (kernel is None or len(kernel) != 3 or kernel[1:] != [1, 1] or len(pool.output) != 1
            or any(_ints(pool, k) not in (None, w) for k, w in (("strides", [1, 1, 1]), ("pads", [0] * 6),
                                                                  ("dilations", [1, 1, 1])))
            or any(a.name == "auto_pad" and a.s not in (b"NOTSET", b"VALID") for a in pool.attribute)):
        return
    pad = _sole_producer(imp, pool.input[0], "Pad")
    before = _sole_producer(imp, pad.input[0], "Reshape") if pad is not None else None
    square = _sole_producer(imp, before.input[0], "Mul") if before is not None else None
    if square is None or len(square.input) != 2 or square.input[0] != square.input[1]:
        return
    x = square.input[0]
    group = [square, before, pad, pool]
    s, reshapes = _views_after(imp, pool.output[0], group)
    mul = _sole_reader(imp, s, ("Mul",))
    alpha = _scalar(imp, mul, s) if mul is not None else None
    add = _sole_reader(imp, mul.output[0], ("Add",)) if alpha is not None else None
    k = _scalar(imp, add, mul.output[0]) if add is not None else None
    power = _sole_reader(imp, add.output[0], ("Pow",)) if k is not None else None
    beta = _scalar(imp, power, add.output[0]) if power is not None and power.input[0] == add.output[0] else None
    div = _sole_reader(imp, power.output[0], ("Div",)) if beta is not None else None
    if div is None or list(div.input) != [x, power.output[0]] or len(reshapes) > 1:
        return
    group += [mul, add, power, div]
    size = kernel[0]

    def translate(imp, last):
        t = imp.tensor(square, 0)
        if t.kind != "nchw":
            imp.refuse(square, "input 0", f"'of shape {list(t.onnx_shape())}'", "PyTorch's local response "
                       "normalization is recognized on N x C x H x W tensors")
        h, w, c = t.shape
        if reshapes:
            _check_reshape(imp, before, 5, [1, c], h * w)
            _check_reshape(imp, reshapes[0], 4, [c, h, w], 1)
        else:                   # the default exporter: N x 1 x C x H x W, pooled, then Squeeze(axis 1)
            _check_reshape(imp, before, 5, [1, c, h], w)
            for view in (n for n in group if n.op_type == "Squeeze"):
                axes = (_ints(view, "axes") if imp.opset < 13
                        else _longer_ints(imp, view, 1, "axes", 5) if len(view.input) > 1 else None)
                if axes not in ([1], [-4]):
                    imp.refuse(view, "its axes", axes, "PyTorch's local response normalization squeezes the "
                               "pooled axis 1 only")
        pads = _ints(pad, "pads") if imp.opset < 11 else _longer_ints(imp, pad, 1, "pads", 10)
        value = (next((a.f for a in pad.attribute if a.name == "value"), 0.0) if imp.opset < 11
                 else imp.scalar(pad, 2, "constant_value") or 0.0)
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        if (pads is None or len(pads) != 10 or any(pads[i] for i in (0, 1, 3, 4, 5, 6, 8, 9)) or mode != b"constant"
                or value != 0.0 or pads[2] + pads[7] != size - 1):
            imp.refuse(pad, "its padding", pads, f"PyTorch's local response normalization pads the channel axis "
                       f"of the squares with {size - 1} zeros in all; this Pad does something else")
        if pads[2] != (size - 1) // 2:
            imp.refuse(pool, "the channel window", f"'{pads[2]} channels before and {pads[7]} after'",
                       f"crossChannelNormalizationLayer (and ONNX LRN) puts floor((size - 1) / 2) = {(size - 1) // 2}"
                       f" before: PyTorch's LocalResponseNorm of even size {size} is their mirror image")
        layer = crossChannelNormalizationLayer(size, Alpha=alpha, Beta=beta, K=k,
                                               Name=imp.layer_name(pool, "crossnorm"))
        imp.new(last, layer, [t], t.kind)

    imp.claim(group, translate)


def _check_reshape(imp, node, rank: int, want: list[int], rest: int):
    """Reshape ``node`` keeps the batch, then has the dimensions ``want``, then ``rest`` elements."""
    target = _longer_ints(imp, node, 1, "shape", rank)
    if len(target) == rank and target[0] in (-1, 0, 1, imp.batch) and target[1:1 + len(want)] == want:
        tail = target[1 + len(want):]
        if tail.count(-1) <= 1 and 0 not in tail:
            known = math.prod(v for v in tail if v != -1)
            if (known == rest) if -1 not in tail else (known and rest % known == 0):
                return
    imp.refuse(node, "the target shape", target, f"PyTorch's local response normalization reshapes to N x "
               f"{' x '.join(map(str, want))} (x {rest} elements); this Reshape does something else")


def _longer_ints(imp, node, k: int, what: str, count: int) -> list[int]:
    """Constant input ``k`` as up to ``count`` integers (pads and shapes of 5-D tensors)."""
    name = node.input[k] if k < len(node.input) else ""
    return as_ints(imp.const(node, k, what), f"{imp.where(node)}: input {k} ({what}, {quote(name)})", -1, MAX_DIM,
                   count)
