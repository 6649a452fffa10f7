"""additionLayer, multiplicationLayer, depthConcatenationLayer and concatenationLayer (several
inputs).

Inputs are named ``in1``, ``in2``, ... as in MATLAB; connect them with
``connectLayers(lgraph, 'relu_1', 'add_1/in2')``.

MATLAB's additionLayer needs inputs of equal size ("All inputs to an addition layer must have
the same dimension"); its multiplicationLayer expands singleton dimensions ("same across all
dimensions or same across at least one dimension with other dimensions as singleton
dimensions"): an h x w x c feature map times a 1 x 1 x c gate (squeeze-and-excitation), or an
h x w x 1 mask. Here every dimension of every input is either the output's or 1 (MATLAB's
implicit expansion, :func:`expanded_shape`).
"""

from __future__ import annotations

import numpy as np

from .. import options as opt
from ..errors import LayerError, NO_VALUE
from .base import Layer, constructor


class _Combine(Layer):
    GROUPS = [(None, ["Name", "NumInputs", "InputNames"])]

    def _init_combine(self, num_inputs, pairs, kwargs):
        Layer.__init__(self)
        n = opt.pos_int(self.label, "NumInputs", num_inputs)
        if n < 2:
            raise LayerError(self.label, "NumInputs", num_inputs, "expected an integer >= 2")
        self._n = n
        self._apply_options(pairs, kwargs)

    @property
    def NUM_INPUTS(self):  # noqa: N802 - per instance
        return self._n

    def _check_inputs(self, in_shapes):
        if len(in_shapes) != self._n:
            raise LayerError(self.label, "NumInputs", self._n, f"{len(in_shapes)} inputs are connected")


class AdditionLayer(_Combine):
    FUNCTION = "additionLayer"
    CLASS = "AdditionLayer"
    TYPE = "Addition"
    BASE_NAME = "addition"

    def __init__(self, numInputs, *pairs, **kwargs):  # noqa: N803
        self._init_combine(numInputs, pairs, kwargs)

    def resolve(self, in_shapes):
        self._check_inputs(in_shapes)
        first = tuple(in_shapes[0])
        for name, shape in zip(self.input_names, in_shapes):
            if tuple(shape) != first:
                raise LayerError(self.label, None, NO_VALUE,
                                 f"input sizes differ: in1 is {'x'.join(map(str, first))} but {name} is "
                                 f"{'x'.join(map(str, shape))}; an addition needs equal sizes")
        return first

    def forward(self, xs):
        return sum(xs[1:], xs[0])

    def describe(self):
        return f"Element-wise addition of {self._n} inputs"


def expanded_shape(layer, names, shapes) -> tuple:
    """The size of an elementwise result of inputs of ``shapes`` (h, w, c) with singleton dimensions
    expanded; a LayerError naming the inputs where a dimension is neither 1 nor the result's."""
    out = tuple(max(s[d] for s in shapes) for d in range(3))
    for name, shape in zip(names, shapes):
        for d in range(3):
            if shape[d] not in (1, out[d]):
                k = next(i for i, s in enumerate(shapes) if s[d] == out[d])
                raise LayerError(layer.label, None, NO_VALUE,
                                 f"input sizes differ: {names[k]} is {'x'.join(map(str, shapes[k]))} but {name} is "
                                 f"{'x'.join(map(str, shape))}; each dimension must be equal or 1 (singleton "
                                 "dimensions expand)")
    return out


class MultiplicationLayer(_Combine):
    """Element-wise product; singleton dimensions of an input expand to the other inputs' size."""
    FUNCTION = "multiplicationLayer"
    CLASS = "MultiplicationLayer"
    TYPE = "Multiplication"
    BASE_NAME = "multiplication"

    def __init__(self, numInputs, *pairs, **kwargs):  # noqa: N803
        self._init_combine(numInputs, pairs, kwargs)

    def resolve(self, in_shapes):
        self._check_inputs(in_shapes)
        return expanded_shape(self, self.input_names, [tuple(int(v) for v in s) for s in in_shapes])

    def forward(self, xs):
        out = xs[0]
        for x in xs[1:]:                  # (N, H, W, C) arrays: NumPy expands the singleton dimensions
            out = out * x
        return out

    def describe(self):
        return f"Element-wise multiplication of {self._n} inputs"


class ConcatenationLayer(_Combine):
    """Concatenation along dimension 3 (channels); the only dimension code generation supports."""
    FUNCTION = "concatenationLayer"
    CLASS = "ConcatenationLayer"
    TYPE = "Concatenation"
    BASE_NAME = "concat"
    GROUPS = [(None, ["Name", "Dim", "NumInputs", "InputNames"])]

    def __init__(self, dim, numInputs, *pairs, **kwargs):  # noqa: N803
        Layer.__init__(self)
        d = opt.pos_int(self.FUNCTION, "Dim", dim)
        if d != 3:
            raise LayerError(self.FUNCTION, "Dim", dim, "only dimension 3 (channels) is supported")
        self._init_combine(numInputs, pairs, kwargs)
        self._p["Dim"] = 3

    def resolve(self, in_shapes):
        self._check_inputs(in_shapes)
        h, w = in_shapes[0][:2]
        for name, shape in zip(self.input_names, in_shapes):
            if tuple(shape[:2]) != (h, w):
                raise LayerError(self.label, None, NO_VALUE,
                                 f"input sizes differ: in1 is {h}x{w} spatially but {name} is "
                                 f"{shape[0]}x{shape[1]}; concatenation along channels needs equal height and width")
        return (h, w, sum(s[2] for s in in_shapes))

    def forward(self, xs):
        return np.concatenate(xs, axis=-1)

    def describe(self):
        return f"Concatenation of {self._n} inputs along dimension 3"


class DepthConcatenationLayer(ConcatenationLayer):
    FUNCTION = "depthConcatenationLayer"
    CLASS = "DepthConcatenationLayer"
    TYPE = "Depth concatenation"
    BASE_NAME = "depthcat"
    GROUPS = [(None, ["Name", "NumInputs", "InputNames"])]

    def __init__(self, numInputs, *pairs, **kwargs):  # noqa: N803
        self._init_combine(numInputs, pairs, kwargs)

    def describe(self):
        return f"Depth concatenation of {self._n} inputs"


@constructor
def additionLayer(numInputs, *pairs, **kwargs) -> AdditionLayer:  # noqa: N802,N803
    """Element-wise addition of ``numInputs`` inputs of equal size."""
    return AdditionLayer(numInputs, *pairs, **kwargs)


@constructor
def multiplicationLayer(numInputs, *pairs, **kwargs) -> MultiplicationLayer:  # noqa: N802,N803
    """Element-wise multiplication of ``numInputs`` inputs; singleton dimensions expand."""
    return MultiplicationLayer(numInputs, *pairs, **kwargs)


@constructor
def depthConcatenationLayer(numInputs, *pairs, **kwargs) -> DepthConcatenationLayer:  # noqa: N802,N803
    """Concatenation of ``numInputs`` inputs along the channel dimension."""
    return DepthConcatenationLayer(numInputs, *pairs, **kwargs)


@constructor
def concatenationLayer(dim, numInputs, *pairs, **kwargs) -> ConcatenationLayer:  # noqa: N802,N803
    """Concatenation along dimension ``dim`` (3 only: channels)."""
    return ConcatenationLayer(dim, numInputs, *pairs, **kwargs)
