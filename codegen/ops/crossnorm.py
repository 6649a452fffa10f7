"""Cross-channel (local response) normalization (``crossChannelNormalizationLayer``): the ``lrn``
op, y = x / (K + Alpha * ss / WindowChannelSize)^Beta with ss the sum of squares over the
channel window of each value (:class:`~codegen.ir.ChannelWindow`), in float32 with ``powf`` (no
double helper on a single-precision FPU). Every value reads its pixel's neighbouring channels, so
the op never runs in place; a clamp activation after it fuses into its epilogue.

Templates: ``templates/c/ops/lrn.c.j2``, ``templates/cuda/ops/lrn.cu.j2``.
"""

from __future__ import annotations

from ..ir import ChannelWindow, Op, Tensor
from ..layers import CrossChannelNormalizationLayer
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


@lowers(CrossChannelNormalizationLayer)
def lower_cross_channel_normalization(layer, inputs: list[Tensor], out: Tensor) -> Op:
    h, w, c = out.shape
    before, after = layer.window
    attrs = ChannelWindow(h, w, c, layer.WindowChannelSize, before, after, float(layer.Alpha), float(layer.Beta),
                          float(layer.K))
    return Op("lrn", layer.Name, [layer.Name], inputs, out, attrs)


@op_kind
class LocalResponse(OpKind):
    name = "lrn"
    epilogue = True

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)
