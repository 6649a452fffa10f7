"""The network's ends: ``imageInputLayer`` and ``featureInputLayer`` (the normalization becomes a
``normalize`` op, or nothing when it is the identity), ``classificationLayer`` and
``regressionLayer`` (nothing: the output is its input).

Templates: ``templates/c/ops/normalize.c.j2``, ``templates/cuda/ops/normalize.cu.j2``.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Normalization, Op, Tensor
from ..layers import ClassificationOutputLayer, FeatureInputLayer, ImageInputLayer, RegressionOutputLayer
from ..quant.scheme import OpQuant, affine, affine_reference, clamp_range
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value


@lowers(ImageInputLayer, FeatureInputLayer)
def lower_input(layer, inputs: list[Tensor], out: Tensor) -> Op | Tensor:
    x = inputs[0]
    if callable(layer.Normalization):
        raise UnsupportedError(f"{layer.label}: property 'Normalization' is a function handle; code generation "
                               "supports 'zerocenter', 'zscore', 'rescale-symmetric', 'rescale-zero-one' and 'none'")
    aff = layer.affine()
    if aff is None:
        return x
    sub, mul, add = aff
    h, w, c = x.shape
    full = lambda a: np.asarray(a, np.float64).reshape((1, 1, 1) if np.size(a) == 1 else np.shape(a))  # noqa: E731
    sub, mul = full(sub), full(mul)
    if not sub.any() and np.all(mul == 1.0) and add == 0.0:
        return x                        # the identity (e.g. 'zerocenter' with Mean 0)
    # the template broadcasts per element, per channel or as a scalar
    shape = np.broadcast_shapes(sub.shape, mul.shape)
    per = "element" if shape[:2] != (1, 1) else ("channel" if shape[2] != 1 else "scalar")
    target = {"element": (h, w, c), "channel": (1, 1, c), "scalar": (1, 1, 1)}[per]
    weights = {"sub": np.broadcast_to(sub, target).astype(np.float32).ravel(),
               "mul": np.broadcast_to(mul, target).astype(np.float32).ravel()}
    return Op("normalize", layer.Name, [layer.Name], [x], out, Normalization(h, w, c, per, float(add)), weights)


@lowers(ClassificationOutputLayer, RegressionOutputLayer)
def lower_output(layer, inputs: list[Tensor], out: Tensor) -> Tensor:
    return inputs[0]


@op_kind
class Normalize(OpKind):
    """int8: y = (x - sub) * mul + add as an affine per element, channel or the whole tensor."""
    name = "normalize"
    elementwise = True
    epilogue = True

    def int8(self, op, qin, qout, ctx) -> None:
        mul, sub = op.weights["mul"].astype(np.float64), op.weights["sub"].astype(np.float64)
        op.weights = affine(mul, op.attrs.add - sub * mul, qin[0], qout)
        op.quant = OpQuant(qin, qout, *clamp_range(op.act.bounds if op.act else None, qout))

    def int8_reference(self, op, xs):
        a = op.attrs
        index = {"element": np.arange(a.h * a.w * a.c).reshape(a.h, a.w, a.c), "channel": np.arange(a.c),
                 "scalar": np.zeros(1, np.int64)}[a.per]
        return affine_reference(xs[0], op.weights, index, op.quant)

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.h * a.w * a.c)
