"""Convolution: ONNX ``Conv`` <-> ``convolution2dLayer`` (group 1) / ``groupedConvolution2dLayer``.

Import: weights ``F x C/G x kh x kw`` become ``kh x kw x C x F`` (grouped:
``kh x kw x C/G x F/G x G``), pads ``[t l b r]`` become ``[t b l r]``; ``auto_pad``
SAME_UPPER/SAME_LOWER are resolved with ONNX's rule (output ceil(in / stride), the dilated
kernel, the odd pad after resp. before) into explicit padding.

Export: the inverse (group-major outputs); a nonzero ``PaddingValue`` becomes a Pad node
before the Conv (a number -> constant, ``'replicate'`` -> edge, ``'symmetric-exclude-edge'``
-> reflect; ``'symmetric-include-edge'`` has no ONNX mode and is refused).
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...layers import Convolution2DLayer, GroupedConvolution2DLayer, convolution2dLayer, groupedConvolution2dLayer
from ..registry import exports, translates
from .windows import absorb, pads as window_pads, pair

_PAD_MODES = {"replicate": "edge", "symmetric-exclude-edge": "reflect"}


@translates("Conv")
def _conv(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
    x = imp.tensor(node, 0)
    if x.kind != "nchw":
        imp.refuse(node, "input 0", "'a 2-D tensor'", "Conv needs an N x C x H x W input")
    w = imp.weight(node, 1, "W")
    if w.ndim != 4:
        imp.refuse(node, "input 1 (W)", f"'{w.ndim - 2}-D'", "only 2-D convolutions are supported")
    b = imp.weight(node, 2, "B", required=False)
    h, wd, c = x.shape
    f, cg, kh, kw = w.shape
    kernel = attrs.get("kernel_shape", [kh, kw])
    if list(kernel) != [kh, kw]:
        imp.refuse(node, "attribute 'kernel_shape'", kernel, f"it differs from W's kernel {kh}x{kw}")
    g = attrs.get("group", 1)
    if g < 1 or c != cg * g or f % g:
        imp.refuse(node, "attribute 'group'", g,
                   f"the input has {c} channels and W is {f}x{cg}x{kh}x{kw}; need C = {cg} * group and "
                   "F divisible by group")
    strides = pair(imp, node, attrs, "strides")
    dil = pair(imp, node, attrs, "dilations")
    eff = ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1)
    pads = absorb(x, window_pads(imp, node, attrs, (h, wd), eff, strides))      # with a zero Pad before it
    if b is not None and b.size != f:
        imp.refuse(node, "input 2 (B)", f"'of {b.size} values'", f"W has {f} filters")
    fg = f // g
    name = imp.layer_name(node, "conv")
    bias = np.zeros(f, np.float32) if b is None else b.reshape(f)
    opts = dict(Stride=strides, DilationFactor=dil, Padding=pads, Name=name)
    if g == 1:
        layer = convolution2dLayer([kh, kw], f, **opts)
        weights = {"Weights": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "Bias": bias.reshape(1, 1, f)}
    else:
        layer = groupedConvolution2dLayer([kh, kw], fg, g, **opts)
        wg = w.reshape(g, fg, cg, kh, kw).transpose(3, 4, 2, 1, 0)        # kh x kw x C/G x F/G x G
        weights = {"Weights": np.ascontiguousarray(wg), "Bias": bias.reshape(g, fg).T.reshape(1, 1, fg, g)}
    imp.new(node, layer, [x], "nchw", weights)


@exports(Convolution2DLayer, GroupedConvolution2DLayer)
def _convolution(exp, layer):
    name = layer.Name
    wg = layer._weights_as_groups()                            # kh x kw x C/G x F/G x G
    kh, kw, cg, fg, g = wg.shape
    w = np.ascontiguousarray(wg.transpose(4, 3, 2, 0, 1)).reshape(g * fg, cg, kh, kw)
    bias = np.asarray(layer._bias_flat(), np.float32)
    x = exp.input(layer, rank=4)
    t, b, left, r = layer.PaddingSize
    pads = [t, left, b, r]
    value = layer.PaddingValue
    if value != 0 and any(pads):
        if isinstance(value, str) and value not in _PAD_MODES:
            raise UnsupportedError(f"{layer.label}: property 'PaddingValue' is '{value}', which ONNX's Pad "
                                   "cannot express (its modes: constant, reflect, edge)")
        pad_sizes = exp.const(f"{name}_pads", [0, 0, t, left, 0, 0, b, r], np.int64)
        if isinstance(value, str):
            x = exp.node("Pad", [x, pad_sizes], f"{name}_padded", mode=_PAD_MODES[value])
        else:
            fill = exp.const(f"{name}_padvalue", value)
            x = exp.node("Pad", [x, pad_sizes, fill], f"{name}_padded", mode="constant")
        pads = [0, 0, 0, 0]
    inputs = [x, exp.const(f"{name}_W", w), exp.const(f"{name}_B", bias)]
    return exp.node("Conv", inputs, name, kernel_shape=[kh, kw], strides=list(layer.Stride),
                    dilations=list(layer.DilationFactor), pads=pads, group=g), 4
