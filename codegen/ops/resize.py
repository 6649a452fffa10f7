"""Resizing (``resize2dLayer``): the ``resize`` op, lowering and the CUDA launch (one thread per
output value).

The source rows and columns of every output row and column, and the bilinear weights, are
computed at generation time by the layer's own exact rule
(:func:`codegen.layers.resize.axis_samples`, the table its NumPy reference uses too), so the
generated code picks the same input elements as the reference, bit for bit, and holds them as
small ``static const`` tables: ``int`` indices and ``float`` weights (rounded to float32 from
the exact fractions). A clamp activation after the layer fuses into its epilogue.

Templates: ``templates/c/ops/resize.c.j2``, ``templates/cuda/ops/resize.cu.j2`` (tables from
``templates/c/ops/resize_tables.j2``).
"""

from __future__ import annotations

from ..ir import Op, ResizeSampling, Tensor
from ..layers import Resize2DLayer
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


def _table(samples) -> tuple:
    return tuple(zip(samples.first.tolist(), samples.second.tolist(), samples.weight.tolist()))


@lowers(Resize2DLayer)
def lower_resize(layer, inputs: list[Tensor], out: Tensor) -> Op:
    x = inputs[0]                 # a reference input ('ref') only sets the output size
    rows, cols = layer.samples()
    mode = layer.GeometricTransformMode
    if layer.Method == "nearest":
        mode += f", {layer.NearestRoundingMode}"
    (ih, iw, c), (oh, ow, _) = x.shape, out.shape
    attrs = ResizeSampling(ih=ih, iw=iw, c=c, oh=oh, ow=ow, method=layer.Method, mode=mode,
                           rows=_table(rows), cols=_table(cols))
    return Op("resize", layer.Name, [layer.Name], [x], out, attrs)


@op_kind
class Resize(OpKind):
    name = "resize"
    epilogue = True

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.oh * a.ow * a.c)
