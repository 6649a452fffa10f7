"""Pooling: ONNX ``MaxPool``, ``AveragePool``, ``GlobalAveragePool``, ``GlobalMaxPool``,
``ReduceMean`` <-> ``maxPooling2dLayer``, ``averagePooling2dLayer``,
``globalAveragePooling2dLayer``, ``globalMaxPooling2dLayer``.

Import: pads ``[t l b r]`` become ``[t b l r]`` (``auto_pad`` as for Conv); ``ceil_mode``
becomes extra bottom/right padding where our layers give the same result (max pooling, average
pooling that ignores padding). With ``auto_pad=VALID``, ``ceil_mode=1`` is refused where it
would add a window: onnxruntime adds a last partial window there, ONNX's reference evaluator
does not (with SAME_* the padding makes every window whole, so it changes nothing).
``AveragePool``'s ``count_include_pad`` 1 is ``PaddingValue`` 0, 0 is ``'mean'``.
``GlobalMaxPool`` is a global max pooling; ``ReduceMean`` only over H and W (axes [2, 3]), as a
global average pooling. Pooling has no dilation.

Export: ``MaxPool``, ``AveragePool`` (``count_include_pad`` from ``PaddingValue``),
``GlobalAveragePool`` and ``GlobalMaxPool`` on N x C x H x W tensors.
"""

from __future__ import annotations

import math


from ...layers import (AveragePooling2DLayer, GlobalAveragePooling2DLayer, GlobalMaxPooling2DLayer, MaxPooling2DLayer,
                       averagePooling2dLayer, globalAveragePooling2dLayer, globalMaxPooling2dLayer, maxPooling2dLayer)
from ..registry import exports, translates
from .views import axes_of
from .windows import absorb, auto_pad, average_pool_padding, pads as window_pads, pair


def _pool_common(imp, node, attrs, x):
    if x.kind != "nchw":
        imp.refuse(node, "input 0", "'a 2-D tensor'", f"{node.op_type} needs an N x C x H x W input")
    kernel = list(attrs.get("kernel_shape", []))
    if len(kernel) != 2:
        imp.refuse(node, "attribute 'kernel_shape'", kernel, "only 2-D pooling is supported")
    if min(kernel) < 1:
        imp.refuse(node, "attribute 'kernel_shape'", kernel, "expected two positive integers")
    dil = list(attrs.get("dilations", [1, 1]))
    if dil != [1, 1]:
        imp.refuse(node, "attribute 'dilations'", dil, "pooling layers have no dilation")
    strides = pair(imp, node, attrs, "strides")
    h, w, _ = x.shape
    pads = window_pads(imp, node, attrs, (h, w), kernel, strides)
    auto = auto_pad(attrs)
    extra = [0, 0]
    if attrs.get("ceil_mode", 0) and auto == "VALID":
        for n, k, s in zip((h, w), kernel, strides):
            floor_out, ceil_out = (n - k) // s + 1, -(-(n - k) // s) + 1
            if n >= k and ceil_out != floor_out:
                imp.refuse(node, "attribute 'ceil_mode'", 1,
                           f"with auto_pad=VALID the runtimes disagree on an input of {n}, kernel {k}, stride {s}: "
                           f"onnxruntime adds a last partial window ({ceil_out} outputs), ONNX's reference "
                           f"evaluator does not ({floor_out}); give explicit pads (auto_pad=NOTSET) instead")
    if attrs.get("ceil_mode", 0) and auto == "NOTSET":
        for dim, (n, k, s) in enumerate(zip((h, w), kernel, strides)):
            begin, end = pads[2 * dim], pads[2 * dim + 1]
            out = math.ceil((n + begin + end - k) / s) + 1
            if (out - 1) * s >= n + begin:         # the last window must start inside the image
                out -= 1
            extra[dim] = max(0, (out - 1) * s + k - (n + begin + end))
    return kernel, strides, pads, extra


@translates("MaxPool")
def _max_pool(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides",
                                  "storage_order"})
    imp.only_first_output(node)
    x = imp.tensor(node, 0)
    kernel, strides, pads, extra = _pool_common(imp, node, attrs, x)
    pads = absorb(x, [pads[0], pads[1] + extra[0], pads[2], pads[3] + extra[1]])
    layer = maxPooling2dLayer(kernel, Stride=strides, Padding=pads, Name=imp.layer_name(node, "maxpool"))
    imp.new(node, layer, [x], "nchw")


@translates("AveragePool")
def _average_pool(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape",
                                  "pads", "strides"})
    x = imp.tensor(node, 0)
    kernel, strides, pads, extra = _pool_common(imp, node, attrs, x)
    include = average_pool_padding(imp, node, x, attrs, pads, extra)
    if include and any(extra):
        imp.refuse(node, "attribute 'ceil_mode'", attrs["ceil_mode"],
                   "with count_include_pad=1 the last window, which extends past the padding, averages over "
                   "fewer elements than the pool size; averagePooling2dLayer cannot express that")
    pads = absorb(x, [pads[0], pads[1] + extra[0], pads[2], pads[3] + extra[1]])
    layer = averagePooling2dLayer(kernel, Stride=strides, Padding=pads, PaddingValue=0 if include else "mean",
                                  Name=imp.layer_name(node, "avgpool"))
    imp.new(node, layer, [x], "nchw")


@translates("GlobalAveragePool")
def _global_average_pool(imp, node):
    imp.check_attrs(node, imp.attrs(node), set())
    x = imp.tensor(node, 0)
    if x.kind != "nchw":
        imp.refuse(node, "input 0", "'a 2-D tensor'", "GlobalAveragePool needs an N x C x H x W input")
    imp.new(node, globalAveragePooling2dLayer(Name=imp.layer_name(node, "gapool")), [x], "nchw")


@translates("GlobalMaxPool")
def _global_max_pool(imp, node):
    imp.check_attrs(node, imp.attrs(node), set())
    x = imp.tensor(node, 0)
    if x.kind != "nchw":
        imp.refuse(node, "input 0", "'a 2-D tensor'", "GlobalMaxPool needs an N x C x H x W input")
    imp.new(node, globalMaxPooling2dLayer(Name=imp.layer_name(node, "gmpool")), [x], "nchw")


@translates("ReduceMean")
def _reduce_mean(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"axes", "keepdims", "noop_with_empty_axes"})
    x = imp.tensor(node, 0)
    rank = 4 if x.kind == "nchw" else 2
    axes = axes_of(imp, node, attrs, rank)
    if axes is None or x.kind != "nchw" or sorted(axes) != [2, 3]:
        imp.refuse(node, "axes", axes if axes is not None else "'all'",
                   "only a mean over H and W (axes [2, 3]) of an N x C x H x W tensor is supported "
                   "(globalAveragePooling2dLayer)")
    keep = attrs.get("keepdims", 1)
    imp.new(node, globalAveragePooling2dLayer(Name=imp.layer_name(node, "gapool")), [x], "nchw" if keep else "nc")


def _pool(exp, layer, op: str, **attrs):
    t, b, left, r = layer.PaddingSize
    return exp.node(op, [exp.input(layer, rank=4)], layer.Name, kernel_shape=list(layer.PoolSize),
                    strides=list(layer.Stride), pads=[t, left, b, r], **attrs), 4


@exports(MaxPooling2DLayer)
def _max_pooling_layer(exp, layer):
    return _pool(exp, layer, "MaxPool")


@exports(AveragePooling2DLayer)
def _average_pooling_layer(exp, layer):
    return _pool(exp, layer, "AveragePool", count_include_pad=0 if layer.PaddingValue == "mean" else 1)


@exports(GlobalAveragePooling2DLayer)
def _global_average_pooling_layer(exp, layer):
    return exp.node("GlobalAveragePool", [exp.input(layer, rank=4)], layer.Name), 4


@exports(GlobalMaxPooling2DLayer)
def _global_max_pooling_layer(exp, layer):
    return exp.node("GlobalMaxPool", [exp.input(layer, rank=4)], layer.Name), 4
