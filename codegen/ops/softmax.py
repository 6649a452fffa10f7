"""Softmax over the channels (``softmaxLayer``): the ``softmax`` op, one CUDA block per pixel.

Templates: ``templates/c/ops/softmax.c.j2``, ``templates/cuda/ops/softmax.cu.j2``.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Op, Pixels, Tensor
from ..quant.calibrate import QParams
from ..quant.scheme import OpQuant
from ..layers import SoftmaxLayer
from .base import CUDA_MAX_THREADS, CudaLaunch, OpKind, lowers, op_kind, pow2


@lowers(SoftmaxLayer)
def lower_softmax(layer, inputs: list[Tensor], out: Tensor) -> Op:
    return Op("softmax", layer.Name, [layer.Name], inputs, out, Pixels(*out.shape))


def softmax_threads(channels: int) -> int:
    return min(CUDA_MAX_THREADS, max(32, pow2(channels)))


SOFTMAX_OUTPUT = QParams(1.0 / 256.0, -128)     # TFLite's int8 softmax output: [0, 1) in steps of 1/256
EXP_BITS = 16                                    # exp(-d * s_in) as a Q16 integer, d = max - q in [0, 255]


@op_kind
class Softmax(OpKind):
    """int8: per pixel, e = EXP[max - q] (a table of round(exp(-d * s_in) * 2^16)), then
    round(K * e / sum(e)) + zero point, in integers, for an output scale 1 / K (TFLite's 1/256 and
    zero point -128; an imported model may fix another, e.g. onnxruntime's 1/255)."""
    name = "softmax"
    elementwise = True
    int8_requantizes = False     # tables and integer division

    def int8_output(self, op, qin, calibrated):
        return SOFTMAX_OUTPUT

    def int8(self, op, qin, qout, ctx) -> None:
        k = round(1.0 / qout.scale)
        if not (1 <= k <= 2**16 and abs(k * qout.scale - 1.0) < 1e-6):
            raise UnsupportedError(f"layer '{'+'.join(op.layers)}': an int8 softmax output has scale 1/K for an "
                                   f"integer K <= 65536 (TFLite's 1/256); the calibration gives {qout.scale:.6g}")
        d = np.arange(256, dtype=np.float64)
        op.weights = {"exp": np.round(np.exp(-d * np.float64(qin[0].scale)) * 2**EXP_BITS).astype(np.int32)}
        op.quant = OpQuant(qin, qout, consts={"K": k})

    def int8_reference(self, op, xs):
        x = xs[0].astype(np.int64)
        e = op.weights["exp"].astype(np.int64)[x.max(axis=2, keepdims=True) - x]
        total = e.sum(axis=2, keepdims=True)
        y = (e * (2 * op.quant.consts["K"]) + total) // (2 * total) + op.quant.output.zero_point
        return np.clip(y, -128, 127).astype(np.int8)

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return CudaLaunch((a.h * a.w, 1), softmax_threads(a.c))
