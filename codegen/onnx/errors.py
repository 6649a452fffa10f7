"""The error the ONNX importer raises."""

from __future__ import annotations

from ..errors import UnsupportedError


class OnnxImportError(UnsupportedError):
    """An ONNX model (or one of its nodes) that our layers cannot express."""
