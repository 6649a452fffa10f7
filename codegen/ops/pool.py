"""Pooling (``maxPooling2dLayer``, ``averagePooling2dLayer``, ``globalAveragePooling2dLayer``,
``globalMaxPooling2dLayer``): lowering and the CUDA launch (one thread per output value).

Both kinds clip each window to the input, so max pooling ignores its padding; average pooling
divides by the window area, or (``PaddingValue`` 'mean': ``exclude_pad``) by the number of input
elements in the window. A global average (max) pool is an average (max) pooling with a window of the
whole input.

Templates: ``templates/c/ops/{maxpool,avgpool}.c.j2``, ``templates/cuda/ops/{maxpool,avgpool}.cu.j2``
(both including ``pool.cu.j2``).
"""

from __future__ import annotations

import numpy as np

from ..ir import Op, PoolGeometry, Tensor
from ..layers import AveragePooling2DLayer, GlobalAveragePooling2DLayer, GlobalMaxPooling2DLayer, MaxPooling2DLayer
from ..quant.scheme import OpQuant, clamp_range, multipliers, requantize, windows
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value
from .convpool import fuse_conv_pool


def _geometry(x: Tensor, out: Tensor, pool_size, stride, pads, exclude_pad: bool) -> PoolGeometry:
    (kh, kw), (sh, sw) = pool_size, stride
    return PoolGeometry(ih=x.shape[0], iw=x.shape[1], c=x.shape[2], oh=out.shape[0], ow=out.shape[1], kh=kh, kw=kw,
                        sh=sh, sw=sw, pt=pads[0], pb=pads[1], pl=pads[2], pr=pads[3], exclude_pad=exclude_pad)


@lowers(MaxPooling2DLayer)
def lower_maxpool(layer, inputs: list[Tensor], out: Tensor) -> Op:
    geom = _geometry(inputs[0], out, layer.PoolSize, layer.Stride, layer.PaddingSize, False)
    return Op("maxpool", layer.Name, [layer.Name], [inputs[0]], out, geom)


@lowers(AveragePooling2DLayer)
def lower_avgpool(layer, inputs: list[Tensor], out: Tensor) -> Op:
    geom = _geometry(inputs[0], out, layer.PoolSize, layer.Stride, layer.PaddingSize, layer.PaddingValue == "mean")
    return Op("avgpool", layer.Name, [layer.Name], [inputs[0]], out, geom)


@lowers(GlobalAveragePooling2DLayer)
def lower_global_avgpool(layer, inputs: list[Tensor], out: Tensor) -> Op:
    x = inputs[0]
    geom = _geometry(x, out, x.shape[:2], (1, 1), (0, 0, 0, 0), False)
    return Op("avgpool", layer.Name, [layer.Name], [x], out, geom)


@lowers(GlobalMaxPooling2DLayer)
def lower_global_maxpool(layer, inputs: list[Tensor], out: Tensor) -> Op:
    x = inputs[0]
    geom = _geometry(x, out, x.shape[:2], (1, 1), (0, 0, 0, 0), False)
    return Op("maxpool", layer.Name, [layer.Name], [x], out, geom)


class _Pool(OpKind):
    epilogue = True

    def absorb_producer(self, op, producer):
        return fuse_conv_pool(producer, op)

    def int8(self, op, qin, qout, ctx) -> None:
        op.quant = OpQuant(qin, qout, *clamp_range(op.act.bounds if op.act else None, qout))
        op.weights = self.int8_weights(op, qin[0], qout)

    def index_bound(self, op) -> int:
        a = op.attrs
        return (a.ih + a.pt + a.pb + a.kh) * (a.iw + a.pl + a.pr + a.kw) * a.c

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.oh * a.ow * a.c)


@op_kind
class MaxPool(_Pool):
    """int8: the max of the window's values (order is kept by quantization), requantized to the
    output's scale (exactly the input when both are the same)."""
    name = "maxpool"

    def int8_weights(self, op, qin, qout) -> dict:
        m0, shift = multipliers(np.float64(qin.scale) / np.float64(qout.scale))
        return {"m": m0, "s": shift}

    def int8_reference(self, op, xs):
        win = windows(xs[0].astype(np.int64), op.attrs, -129, dilated=False)     # -129: below every value
        top = win.max(axis=(2, 3)) - op.quant.inputs[0].zero_point
        return requantize(top, op.weights["m"][0], op.weights["s"][0], op.quant)


@op_kind
class AvgPool(_Pool):
    """int8: the window's sum of (q - zero point), requantized with s_in / (s_out * count), one
    multiplier per possible count (windows clipped at the borders count fewer when padding is
    excluded)."""
    name = "avgpool"

    def int8_weights(self, op, qin, qout) -> dict:
        a = op.attrs
        counts = np.arange(1, a.kh * a.kw + 1, dtype=np.float64)
        m0, shift = multipliers(np.float64(qin.scale) / (np.float64(qout.scale) * counts))
        return {"m": m0, "s": shift}

    def int8_reference(self, op, xs):
        a = op.attrs
        x = xs[0].astype(np.int64) - op.quant.inputs[0].zero_point
        total = windows(x, a, 0, dilated=False).sum(axis=(2, 3))
        if a.exclude_pad:
            count = windows(np.ones(x.shape[:2] + (1,), np.int64), a, 0, dilated=False).sum(axis=(2, 3))
        else:
            count = np.full(total.shape[:2] + (1,), a.kh * a.kw)
        index = count - 1
        return requantize(total, op.weights["m"][index], op.weights["s"][index], op.quant)
