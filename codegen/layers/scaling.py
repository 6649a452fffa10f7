"""scalingLayer: y = Scale .* x + Offset (MATLAB's Deep Learning Toolbox ``scalingLayer``; its
``Offset`` was called ``Bias`` before R2025a).

``Scale`` and ``Offset`` are numeric scalars or arrays of size h x w x c (MATLAB's dimension order,
the NumPy shape ``(h, w, c)``; a vector of per-channel values is ``(1, 1, c)``) whose singleton
dimensions expand to the input's size (MATLAB's implicit expansion, since R2025a): the size of
``Scale .* x + Offset`` must be the input's. Neither is learnable. The values are kept as float32
(the generated code's arithmetic), so the reference computes with exactly the values the code
holds.

The ONNX importer maps the arithmetic of a tensor and a constant (``x * 0.5``, ``x + b[c]``,
``x - c``, ``c - x``, ``x / 6``) onto this layer.
"""

from __future__ import annotations

import numpy as np

from .. import options as opt
from ..errors import LayerError
from .base import Layer, check_single_input, constructor


def _array(label: str, prop: str, value) -> np.ndarray:
    """A finite float32 scalar (shape ()) or an array of at most 3 dimensions (trailing singletons
    dropped down to 2, as MATLAB's size does)."""
    arr = opt.array_or_empty(label, prop, value)
    if arr is None:
        raise LayerError(label, prop, value, "expected a numeric scalar or an h x w x c array")
    if arr.size == 1:
        return arr.reshape(())
    shape = list(arr.shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    if len(shape) > 3:
        raise LayerError(label, prop, value, "expected a scalar or an array of at most 3 dimensions (h x w x c)")
    return arr.reshape(shape)


def hwc(arr: np.ndarray) -> tuple:
    """The size of a Scale or Offset as (h, w, c)."""
    shape = tuple(arr.shape) + (1,) * (3 - arr.ndim)
    return shape


class ScalingLayer(Layer):
    FUNCTION = "scalingLayer"
    CLASS = "ScalingLayer"
    TYPE = "Scaling"
    BASE_NAME = "scaling"
    OPTIONS = ["Scale", "Offset", "Name"]
    SETTABLE = {"Name", "Scale", "Offset"}
    GROUPS = [(None, ["Name"]), ("Scaling", ["Scale", "Offset"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._p.update(Scale=np.array(1.0, np.float32), Offset=np.array(0.0, np.float32))
        self._apply_options(pairs, kwargs)

    def _set(self, key, value):
        if key in ("Scale", "Offset"):
            self._p[key] = _array(self.label, key, value)
        else:
            super()._set(key, value)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        shape = tuple(int(v) for v in in_shapes[0])
        for prop in ("Scale", "Offset"):
            size = hwc(self._p[prop])
            if any(s not in (1, n) for s, n in zip(size, shape)):
                raise LayerError(self.label, prop, self._p[prop],
                                 f"its size {'x'.join(map(str, size))} does not expand to the input size "
                                 f"{'x'.join(map(str, shape))}; each dimension must be 1 or the input's")
        return shape

    def forward(self, xs):
        scale, offset = (self._p[p].astype(np.float64).reshape((1, *hwc(self._p[p]))) for p in ("Scale", "Offset"))
        return xs[0] * scale + offset

    def is_identity(self) -> bool:
        return bool(np.all(self.Scale == 1) and np.all(self.Offset == 0))

    def describe(self):
        return "Scaling"


@constructor
def scalingLayer(*pairs, **kwargs) -> ScalingLayer:  # noqa: N802
    """Scaling layer (MATLAB ``scalingLayer``): y = Scale .* x + Offset, singleton dimensions expanding."""
    return ScalingLayer(*pairs, **kwargs)
