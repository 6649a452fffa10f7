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

from ..ir import Op, PoolGeometry, Tensor
from ..layers import AveragePooling2DLayer, GlobalAveragePooling2DLayer, GlobalMaxPooling2DLayer, MaxPooling2DLayer
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


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

    def index_bound(self, op) -> int:
        a = op.attrs
        return (a.ih + a.pt + a.pb + a.kh) * (a.iw + a.pl + a.pr + a.kw) * a.c

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.oh * a.ow * a.c)


@op_kind
class MaxPool(_Pool):
    name = "maxpool"


@op_kind
class AvgPool(_Pool):
    name = "avgpool"
