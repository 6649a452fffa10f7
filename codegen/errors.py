"""Error types raised by codegen.

Every error a user can cause is a :class:`CodegenError`.  Layer errors name the
layer, the property, the bad value and what is allowed, so that one line on
stderr is enough to fix the input.
"""

from __future__ import annotations

import numpy as np


class CodegenError(Exception):
    """Base class of every error codegen raises for bad input or a failed build."""


class LayerError(CodegenError, ValueError):
    """A layer property has a bad value."""

    def __init__(self, layer: str, prop: str | None, value, allowed: str):
        self.layer, self.prop, self.value, self.allowed = layer, prop, value, allowed
        where = f"{layer}: property '{prop}'" if prop else layer
        if value is _NO_VALUE:
            super().__init__(f"{where}: {allowed}")
        else:
            super().__init__(f"{where} is {show_value(value)}; {allowed}")


class LayerTypeError(LayerError, TypeError):
    """A layer property has a value of the wrong type."""


class NetworkError(CodegenError, ValueError):
    """The network as a whole is invalid (connections, shapes, names)."""


class UnsupportedError(CodegenError, ValueError):
    """Valid for the reference, but outside what code generation supports."""


class BuildError(CodegenError, RuntimeError):
    """Compiling, linking or running generated code failed."""


class InputError(CodegenError, ValueError):
    """An array passed to a compiled network has the wrong shape or type."""


_NO_VALUE = object()
NO_VALUE = _NO_VALUE


def show_value(value) -> str:
    """Render a value the way a user would have typed it, shortened for messages."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value.ravel(), separator=" ").replace("\n", "")
        return f"an array of shape {'x'.join(map(str, value.shape))}"
    if isinstance(value, (list, tuple)):
        if len(value) <= 8:
            return "[" + " ".join(show_value(v) for v in value) + "]"
        return f"a list of {len(value)} values"
    if callable(value):
        return f"the function {getattr(value, '__name__', 'f')}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
