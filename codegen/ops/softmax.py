"""Softmax over the channels (``softmaxLayer``): the ``softmax`` op, one CUDA block per pixel.

Templates: ``templates/c/ops/softmax.c.j2``, ``templates/cuda/ops/softmax.cu.j2``.
"""

from __future__ import annotations

from ..ir import Op, Pixels, Tensor
from ..layers import SoftmaxLayer
from .base import CUDA_MAX_THREADS, CudaLaunch, OpKind, lowers, op_kind, pow2


@lowers(SoftmaxLayer)
def lower_softmax(layer, inputs: list[Tensor], out: Tensor) -> Op:
    return Op("softmax", layer.Name, [layer.Name], inputs, out, Pixels(*out.shape))


def softmax_threads(channels: int) -> int:
    return min(CUDA_MAX_THREADS, max(32, pow2(channels)))


@op_kind
class Softmax(OpKind):
    name = "softmax"
    elementwise = True

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return CudaLaunch((a.h * a.w, 1), softmax_threads(a.c))
