"""Loading an ONNX model from a path, bytes or an ``onnx.ModelProto`` (untrusted input).

The model is parsed without its external data (``load_external_data=False``); the external
data of a model given as a path is then read from the model's folder, after the checks of
:mod:`codegen.onnx.external` (a model given as bytes or a ModelProto may not have any). An
empty file, or bytes that are no ONNX model, are refused with a message naming the file.
"""

from __future__ import annotations

from pathlib import Path

from .errors import OnnxImportError, escape, quote
from .external import read_external_data


def load_model(src):
    """``(model, default network name)`` of ``src``: a path, bytes or an ``onnx.ModelProto``."""
    try:
        import onnx
    except ImportError:       # pragma: no cover - onnx is a test dependency
        raise OnnxImportError("importing ONNX needs the 'onnx' package: pip install onnx") from None
    if isinstance(src, onnx.ModelProto):
        _check_is_model(src, "the ONNX model (an onnx.ModelProto)", 1)
        read_external_data(src, None, "an onnx.ModelProto (give the model's path instead)")
        return src, (src.graph.name or "onnx_model")
    if isinstance(src, (bytes, bytearray)):
        what = f"the ONNX model ({len(src)} bytes)"
        model = _parse(onnx, bytes(src), what)
        read_external_data(model, None, "a model given as bytes")
        return model, (model.graph.name or "onnx_model")
    path = Path(src)
    what = f"ONNX model {quote(str(path), 200)}"
    if not path.exists():
        raise OnnxImportError(f"{quote(str(path), 200)}: no such file")
    if not path.is_file():
        raise OnnxImportError(f"{what} is not a regular file (a folder, a device or a pipe)")
    try:
        size = path.stat().st_size
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a damaged or unreadable file is the user's input
        raise OnnxImportError(f"{what} cannot be parsed: it is not an ONNX model ({escape(exc, 200)})") from None
    _check_is_model(model, what, size)
    read_external_data(model, path.resolve().parent, str(path))
    return model, path.stem


def _parse(onnx, data: bytes, what: str):
    """The ModelProto in ``data`` (which never loads external data)."""
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - a damaged model is the user's input
        raise OnnxImportError(f"{what} cannot be parsed: it is not an ONNX model ({escape(exc, 200)})") from None
    _check_is_model(model, what, len(data))
    return model


def _check_is_model(model, what: str, size: int):
    """Refuse an empty file, and bytes that parse (protobuf is lenient) but hold no ONNX graph."""
    if size == 0:
        raise OnnxImportError(f"{what} is empty: it is not an ONNX model")
    if not model.HasField("graph") or not model.ir_version:
        missing = "no graph" if not model.HasField("graph") else "no IR version"
        raise OnnxImportError(f"{what} is not an ONNX model: it has {missing}")
