"""dropoutLayer and flattenLayer: layers that compute nothing at inference, or only move values.

- ``dropoutLayer(probability)``: in training it zeroes input elements with probability
  ``Probability`` (a nonnegative number less than 1, default 0.5) and scales the rest by
  1/(1 - Probability); at prediction time its output is its input (MATLAB's semantics), so it
  generates no code.
- ``flattenLayer``: collapses the spatial dimensions into the channels: an ``h x w x c`` input
  becomes ``1 x 1 x (h*w*c)`` in MATLAB's column-major order, element ``h + H*(w + W*c)`` (the
  order in which ``fullyConnectedLayer`` flattens its input, so a fully connected layer after it
  computes what it computes on the unflattened input).
"""

from __future__ import annotations

from .. import options as opt
from ..errors import LayerError
from .base import Layer, check_single_input, constructor
from .fc import matlab_flatten


class DropoutLayer(Layer):
    FUNCTION = "dropoutLayer"
    CLASS = "DropoutLayer"
    TYPE = "Dropout"
    BASE_NAME = "dropout"
    OPTIONS = ["Name"]
    SETTABLE = {"Name", "Probability"}
    GROUPS = [(None, ["Name"]), ("Hyperparameters", ["Probability"])]

    def __init__(self, *args, **kwargs):
        Layer.__init__(self)
        self._p["Probability"] = 0.5
        if args and not isinstance(args[0], str):
            self._set("Probability", args[0])
            args = args[1:]
        self._apply_options(args, kwargs)

    def _set(self, key, value):
        if key == "Probability":
            allowed = "expected a nonnegative number less than 1"
            try:
                p = opt.real_scalar(self.label, key, value)
            except LayerError:
                raise LayerError(self.label, key, value, allowed) from None
            if not 0 <= p < 1:
                raise LayerError(self.label, key, value, allowed)
            self._p[key] = p
        else:
            super()._set(key, value)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        return tuple(in_shapes[0])

    def forward(self, xs):
        return xs[0]          # dropout is for training; at prediction time the output is the input

    def describe(self):
        return f"{self.Probability * 100:g}% dropout"


class FlattenLayer(Layer):
    FUNCTION = "flattenLayer"
    CLASS = "FlattenLayer"
    TYPE = "Flatten"
    BASE_NAME = "flatten"
    GROUPS = [(None, ["Name"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        return (1, 1, h * w * c)

    def forward(self, xs):
        flat = matlab_flatten(xs[0])
        return flat.reshape(flat.shape[0], 1, 1, -1)

    def describe(self):
        return "Flatten"


@constructor
def dropoutLayer(*args, **kwargs) -> DropoutLayer:  # noqa: N802
    """Dropout layer (``dropoutLayer(probability)``, default 0.5): the identity at prediction time."""
    return DropoutLayer(*args, **kwargs)


@constructor
def flattenLayer(*pairs, **kwargs) -> FlattenLayer:  # noqa: N802
    """Flatten layer: h x w x c -> 1 x 1 x (h*w*c) in MATLAB's column-major order."""
    return FlattenLayer(*pairs, **kwargs)
