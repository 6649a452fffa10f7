"""The common machinery of every layer: properties with MATLAB names, display,
and the hooks a layer implements.

A layer module defines one class per layer with:

- ``__init__`` parsing MATLAB-style arguments (validation happens here);
- ``resolve(in_shapes)``: resolve ``'auto'`` values and ``'same'`` padding for the given input
  shapes and return the output shape ``(H, W, C)``; called by :class:`~codegen.Network` on its
  own copy of the layer, never on the user's object;
- ``learnables()``: {property: (MATLAB shape, numIn, numOut, initializer property)};
- ``forward(xs)``: the NumPy reference on float64 ``(N, H, W, C)`` arrays;
- ``describe()``: the one-line description of a layer array display;
- ``macs(in_shapes, out_shape)``: multiply-accumulates of one inference.

The lowering of a layer into planned operations lives in :mod:`codegen.plan`.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import options as opt
from ..errors import LayerError, LayerTypeError, NO_VALUE
from ..initializers import initialize

Shape = tuple  # (H, W, C)

CONSTRUCTORS: dict = {}       # MATLAB constructor name -> function, e.g. 'reluLayer' (see @constructor)
LAYER_CLASSES: dict = {}      # class name -> class, every public Layer subclass


def constructor(fn):
    """Register a layer's MATLAB-named constructor function (``reluLayer``): it becomes part of
    ``codegen``'s namespace and of a net.py file's."""
    CONSTRUCTORS[fn.__name__] = fn
    return fn


class Layer:
    FUNCTION = "layer"          # MATLAB constructor name
    CLASS = "Layer"             # MATLAB class name shown in the property display
    TYPE = "Layer"              # type column of a layer array display
    BASE_NAME = "layer"         # prefix of automatic names (conv -> conv_1, conv_2, ...)
    OPTIONS: list[str] = ["Name"]
    SETTABLE: set[str] = {"Name"}
    GROUPS: list[tuple[str | None, list[str]]] = []   # property display groups
    NUM_INPUTS = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            LAYER_CLASSES[cls.__name__] = cls

    def __init__(self):
        object.__setattr__(self, "_p", {"Name": ""})

    # ------------------------------------------------------------------ properties
    def __getattr__(self, key):
        props = self.__dict__.get("_p")
        if props is not None and key in props:
            return props[key]
        raise AttributeError(f"{type(self).__name__} has no property {key!r}")

    def __setattr__(self, key, value):
        if key.startswith("_"):
            object.__setattr__(self, key, value)
        elif key in self.SETTABLE:
            self._set(key, value)
        elif key in self._p or key in self._derived():
            raise LayerError(self.label, key, NO_VALUE, "this property is read-only")
        else:
            raise LayerError(self.label, key, NO_VALUE, f"{self.CLASS} has no property {key!r}")

    def _set(self, key, value):
        """Validate and store a settable property (subclasses extend)."""
        if key == "Name":
            self._p["Name"] = opt.name(self.label, value)
        else:
            self._p[key] = opt.array_or_empty(self.label, key, value)

    def _derived(self) -> dict:
        return {
            "NumInputs": self.NUM_INPUTS,
            "InputNames": self.input_names,
            "NumOutputs": 1,
            "OutputNames": ["out"],
        }

    @property
    def NumInputs(self):  # noqa: N802 - MATLAB name
        return self.NUM_INPUTS

    @property
    def InputNames(self):  # noqa: N802
        return self.input_names

    @property
    def NumOutputs(self):  # noqa: N802
        return 1

    @property
    def OutputNames(self):  # noqa: N802
        return ["out"]

    @property
    def input_names(self) -> list[str]:
        if self.NUM_INPUTS == 1:
            return ["in"]
        return [f"in{i + 1}" for i in range(self.NUM_INPUTS)]

    @property
    def label(self) -> str:
        """How messages name this layer: ``convolution2dLayer 'conv_1'``."""
        nm = self.__dict__["_p"].get("Name", "")
        return f"{self.FUNCTION} '{nm}'" if nm else self.FUNCTION

    def _apply_options(self, pairs, kwargs):
        for key, value in opt.collect_options(self.label, pairs, kwargs, self.OPTIONS).items():
            self._option(key, value)

    def _option(self, key, value):
        """Store a constructor option (subclasses handle their non-property options)."""
        self._set(key, value)

    def copy(self) -> "Layer":
        return copy.deepcopy(self)

    # ------------------------------------------------------------------ hooks
    def resolve(self, in_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def learnables(self) -> dict:
        return {}

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return self.TYPE

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0

    # ------------------------------------------------------------------ learnables
    def initialize(self, rng: np.random.Generator) -> None:
        """Fill empty learnables from their initializers; check given ones' shapes."""
        for prop, (shape, num_in, num_out, init_prop) in self.learnables().items():
            value = self._p.get(prop)
            if value is None:
                init = self._p[init_prop] if init_prop else "zeros"
                self._p[prop] = initialize(self.label, init_prop or prop, init, shape, num_in, num_out, rng)
            else:
                self._p[prop] = self._check_shape(prop, value, shape)

    def _check_shape(self, prop, value: np.ndarray, shape) -> np.ndarray:
        want = tuple(shape)
        got = value.shape
        # MATLAB drops trailing singleton dimensions: 5x5x1x20 and 5x5 x1 ... compare padded
        trimmed = lambda s: tuple(s[: max([i + 1 for i, d in enumerate(s) if d != 1] or [0])])  # noqa: E731
        if got != want and trimmed(got) != trimmed(want):
            raise LayerError(self.label, prop, value,
                             f"expected size {'x'.join(map(str, want))}, got {'x'.join(map(str, got))}")
        return value.reshape(want)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        lines = [f"  {self.CLASS} with properties:", ""]
        everything = dict(self._p)
        everything.update(self._derived())
        width = max(len(k) for _, props in self.GROUPS for k in props) if self.GROUPS else 4
        for title, props in self.GROUPS:
            if title:
                lines.append(f"   {title}")
            for key in props:
                lines.append(f"{key:>{width + 4}}: {format_property(everything.get(key))}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    __str__ = __repr__


def format_property(value) -> str:
    """Format a property value like MATLAB's display."""
    if value is None:
        return "[]"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, np.ndarray):
        if value.size == 1 and value.ndim <= 1:
            return _num(value.item())
        return f"[{'x'.join(map(str, value.shape))} single]"
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return "{" + " ".join(f"'{v}'" for v in value) + "}"
        return "[" + " ".join(_num(v) for v in value) + "]"
    if callable(value):
        return f"@{getattr(value, '__name__', 'f')}"
    return _num(value)


def _num(v) -> str:
    """MATLAB's ``format short``: integers as they are, others with 4 decimals (0.1000, 1.0000e-05)."""
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:.4f}" if 1e-3 < abs(v) < 1e3 else f"{v:.4e}"


def vec2(v) -> str:
    """MATLAB's display of a numeric vector inside a description: [1  1]."""
    return "[" + "  ".join(str(x) for x in v) + "]"


def check_single_input(layer: Layer, in_shapes):
    if len(in_shapes) != 1:
        raise LayerError(layer.label, None, NO_VALUE, f"takes one input, got {len(in_shapes)}")


def require_type(layer_label: str, prop: str, value, kinds, allowed: str):
    if not isinstance(value, kinds):
        raise LayerTypeError(layer_label, prop, value, allowed)
