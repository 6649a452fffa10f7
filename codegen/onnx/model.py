"""Loading an ONNX model from a path, bytes or an ``onnx.ModelProto``."""

from __future__ import annotations

from pathlib import Path

from .errors import OnnxImportError


def load_model(src):
    """``(model, default network name)`` of ``src``: a path, bytes or an ``onnx.ModelProto``."""
    try:
        import onnx
    except ImportError:       # pragma: no cover - onnx is a test dependency
        raise OnnxImportError("importing ONNX needs the 'onnx' package: pip install onnx") from None
    if isinstance(src, onnx.ModelProto):
        return src, (src.graph.name or "onnx_model")
    if isinstance(src, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(src))
        except Exception as exc:  # noqa: BLE001 - a damaged model is the user's input
            raise OnnxImportError(f"cannot parse the ONNX model: {exc}") from None
        return model, (model.graph.name or "onnx_model")
    path = Path(src)
    if not path.exists():
        raise OnnxImportError(f"'{path}': no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise OnnxImportError(f"cannot read ONNX model '{path}': {exc}") from None
    return model, path.stem
