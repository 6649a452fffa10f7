"""Transposed convolution: ONNX ``ConvTranspose`` <-> ``transposedConv2dLayer``.

Both describe the same thing: the uncropped result ``stride * (in - 1) + kernel`` trimmed by
``pads`` (ONNX ``[t l b r]``; our CroppingSize ``[t b l r]``); ONNX's ``output_padding`` adds rows
and columns at the end. Weights ``C x F x kh x kw`` (ONNX) and ``kh x kw x F x C`` (MATLAB).

Import: the begin/end pads of each dimension come from ``pads``, or, with ``output_shape`` or
``auto_pad`` SAME_UPPER/SAME_LOWER, from ONNX's rule: total = stride * (in - 1) + output_padding
+ kernel - output size, halved with Python's floor as ONNX's reference does, the odd pad at the
end for SAME_UPPER and at the beginning otherwise; with NOTSET and an output_shape larger than
that, the extra rows go at the end (onnxruntime and ONNX's reference agree there; for SAME_* with
a kernel smaller than the stride onnxruntime 1.32 deviates from the spec's in * stride output, and
we follow the spec). The output is then MATLAB's: the pads as cropping, ``output_padding`` up to
the end pad lowering the bottom (right) crop; or Cropping 'same' where that is equivalent (a
kernel smaller than the stride: MATLAB's OutputSizeOffset). Rows before or past the uncropped
result otherwise (an ``output_padding`` beyond the end pad, say) become zero taps added to the
filter, which move the uncropped result's ends out that far without changing a value (fewer than
stride of them, so at most stride - 1 zero rows of taps; more are refused). Dilations other than
1 and ``group`` > 1 are refused: MATLAB's layer has no dilation and no groups.

Export: ConvTranspose with ``pads`` from CroppingSize and ``output_padding`` from the layer's
output offset (MATLAB's OutputSizeOffset), group 1.
"""

from __future__ import annotations

import numpy as np

from ...errors import CodegenError
from ...layers import TransposedConvolution2DLayer, transposedConv2dLayer
from ...layers.transposed_conv import same_cropping
from ..errors import quote
from ..limits import element_count
from ..registry import exports, translates
from .windows import auto_pad, pair


def _ints(imp, node, attrs, key: str, default: list[int], low: int) -> list[int]:
    """A 2-D attribute of integers >= low."""
    v = [int(a) for a in attrs.get(key, default)]
    if len(v) != 2 or min(v) < low:
        imp.refuse(node, f"attribute '{key}'", v, f"expected two integers >= {low} (2-D)")
    return v


def _begin_end(imp, node, attrs, in_hw, kernel, strides, out_pad) -> list[tuple[int, int]]:
    """(begin, end) pads of each dimension; negative where the output goes past the uncropped result."""
    auto = auto_pad(attrs)
    full = [s * (n - 1) + k for n, k, s in zip(in_hw, kernel, strides)]
    if "output_shape" in attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        if auto != "NOTSET" and any(attrs.get("pads", [])):
            imp.refuse(node, "attribute 'pads'", attrs["pads"], f"pads cannot be given with auto_pad={auto}")
        if "output_shape" in attrs:
            shape = [int(v) for v in attrs["output_shape"]]
            shape = shape[2:] if len(shape) == 4 else shape
            if len(shape) != 2 or min(shape) < 1:
                imp.refuse(node, "attribute 'output_shape'", attrs["output_shape"],
                           "expected the output height and width (2 positive integers)")
        else:
            shape = [n * s for n, s in zip(in_hw, strides)]
        pads = []
        for f, op, o in zip(full, out_pad, shape):
            total = f + op - o
            small = total // 2
            if auto == "SAME_UPPER":
                pads.append((small, total - small))
            elif auto == "SAME_LOWER" or total >= 0:
                pads.append((total - small, small))
            else:                   # NOTSET, output larger: the rows go at the end (onnxruntime, ONNX's reference)
                pads.append((0, total))
        return pads
    if auto == "VALID":
        return [(0, 0), (0, 0)]
    if auto != "NOTSET":
        imp.refuse(node, "attribute 'auto_pad'", quote(auto), "expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    values = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
    if len(values) != 4 or min(values) < 0:
        imp.refuse(node, "attribute 'pads'", values, "expected 4 nonnegative values [top left bottom right]")
    return [(values[0], values[2]), (values[1], values[3])]


def _resolves_to(kernel, strides, cropping, in_shape, out) -> bool:
    probe = transposedConv2dLayer(list(kernel), 1, Stride=list(strides), Cropping=cropping)
    try:
        return list(probe.resolve([in_shape])[:2]) == list(out)
    except CodegenError:
        return False


def _geometry(imp, node, attrs, in_shape, kernel, strides, out_pad):
    """(Cropping, zero filter taps to add before and after, per dimension) that give the node's output."""
    pads = _begin_end(imp, node, attrs, in_shape[:2], kernel, strides, out_pad)
    which = "output_shape" if "output_shape" in attrs else "output_padding"
    fulls = [s * (n - 1) + k for n, k, s in zip(in_shape[:2], kernel, strides)]
    out = [full + op - begin - end for full, op, (begin, end) in zip(fulls, out_pad, pads)]
    if min(out) < 1:
        imp.refuse(node, "the output size", out, f"the pads and {which} leave no output")
    crop = [v for full, o, (begin, _) in zip(fulls, out, pads) for v in (begin, max(0, full - begin - o))]
    if min(crop) >= 0 and _resolves_to(kernel, strides, crop, in_shape, out):
        return crop, [0, 0], [0, 0]
    if _resolves_to(kernel, strides, "same", in_shape, out) and all(
            begin == same_cropping(k, s)[0] for k, s, (begin, _) in zip(kernel, strides, pads)):
        return "same", [0, 0], [0, 0]
    # rows before or past the uncropped result: zero taps added to the filter move its ends there
    before = [max(0, -begin) for begin, _ in pads]
    after = [max(0, begin + o - full) for (begin, _), o, full in zip(pads, out, fulls)]
    if any(v >= s for v, s in zip(before + after, strides + strides)):
        imp.refuse(node, f"attribute '{which}'", attrs.get(which, out_pad),
                   f"the output ({out[0]}x{out[1]}) starts {before[0]} row(s) and {before[1]} column(s) before and "
                   f"extends {after[0]} row(s) and {after[1]} column(s) past the uncropped result; at most "
                   "stride - 1 of each are supported")
    crop = [v for full, o, (begin, _), pre, post in zip(fulls, out, pads, before, after)
            for v in (begin + pre, full + post - begin - o)]          # of the result grown by pre + post
    return crop, before, after


@translates("ConvTranspose")
def _conv_transpose(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"auto_pad", "dilations", "group", "kernel_shape", "output_padding",
                                  "output_shape", "pads", "strides"})
    x = imp.tensor(node, 0)
    if x.kind != "nchw":
        imp.refuse(node, "input 0", "'a 2-D tensor'", "ConvTranspose needs an N x C x H x W input")
    w = imp.weight(node, 1, "W")
    if w.ndim != 4:
        imp.refuse(node, "input 1 (W)", f"'{w.ndim - 2}-D'", "only 2-D transposed convolutions are supported")
    b = imp.weight(node, 2, "B", required=False)
    h, wd, c = x.shape
    cw, f, kh, kw = w.shape
    g = attrs.get("group", 1)
    if g != 1:
        imp.refuse(node, "attribute 'group'", g, "grouped transposed convolutions are not supported "
                   "(MATLAB's transposedConv2dLayer has no groups)")
    if cw != c:
        imp.refuse(node, "input 1 (W)", f"'of shape {cw}x{f}x{kh}x{kw}'", f"the input has {c} channels, W {cw}")
    kernel = attrs.get("kernel_shape", [kh, kw])
    if list(kernel) != [kh, kw]:
        imp.refuse(node, "attribute 'kernel_shape'", kernel, f"it differs from W's kernel {kh}x{kw}")
    strides = pair(imp, node, attrs, "strides")
    dil = pair(imp, node, attrs, "dilations")
    if dil != [1, 1]:
        imp.refuse(node, "attribute 'dilations'", dil, "transposedConv2dLayer has no dilation (only 1 is supported)")
    out_pad = _ints(imp, node, attrs, "output_padding", [0, 0], 0)
    if b is not None and b.size != f:
        imp.refuse(node, "input 2 (B)", f"'of {b.size} values'", f"W has {f} filters")
    cropping, before, after = _geometry(imp, node, attrs, x.shape, (kh, kw), strides, out_pad)
    element_count([cw, f, kh + before[0] + after[0], kw + before[1] + after[1]],
                  f"{imp.where(node)}: its filter with the zero taps added")
    w = np.pad(w, ((0, 0), (0, 0), (before[0], after[0]), (before[1], after[1])))
    name = imp.layer_name(node, "transposed-conv")
    layer = transposedConv2dLayer(list(w.shape[2:]), f, Stride=strides, Cropping=cropping, Name=name)
    bias = np.zeros(f, np.float32) if b is None else b.reshape(f)
    weights = {"Weights": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "Bias": bias.reshape(1, 1, f)}
    imp.new(node, layer, [x], "nchw", weights)


@exports(TransposedConvolution2DLayer)
def _transposed_convolution(exp, layer):
    name = layer.Name
    kh, kw = layer.FilterSize
    w = np.ascontiguousarray(np.asarray(layer.Weights, np.float32).transpose(3, 2, 0, 1))   # C x F x kh x kw
    bias = np.asarray(layer.Bias, np.float32).reshape(-1)
    x = exp.input(layer, rank=4)
    t, b, left, r = layer.CroppingSize
    attrs = dict(kernel_shape=[kh, kw], strides=list(layer.Stride), pads=[t, left, b, r], dilations=[1, 1], group=1)
    if any(layer.output_offset):
        attrs["output_padding"] = list(layer.output_offset)
    inputs = [x, exp.const(f"{name}_W", w), exp.const(f"{name}_B", bias)]
    return exp.node("ConvTranspose", inputs, name, **attrs), 4
