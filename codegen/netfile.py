"""Reading a network description: a ``net.py`` file (or an ``.onnx`` model).

A ``net.py`` is a Python file that defines ``layers`` (a list of layers) or ``lgraph`` (a
layerGraph), and optionally ``weights`` (a dict, or a .npz/.mat path relative to the file),
``seed`` and ``name``. The layer constructors and graph functions are predefined, so the
file can read like MATLAB; ``from codegen import *`` works too.
"""

from __future__ import annotations

import traceback
import types
from pathlib import Path

import numpy as np

import codegen

from .errors import CodegenError, NetworkError
from .network import Network
from .onnx import import_onnx


def _namespace() -> dict:
    # not the submodules: codegen.layers would pass for a file's own `layers`
    ns = {name: value for name, value in vars(codegen).items()
          if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    ns["np"] = np
    return ns


def load(path, seed: int | None = None) -> Network:
    """Build the Network described by ``path`` (a net.py or .onnx file)."""
    path = Path(path)
    if not path.exists():
        raise NetworkError(f"'{path}': no such file")
    if path.suffix.lower() == ".onnx":
        return import_onnx(path)
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise NetworkError(f"cannot read '{path}': {exc}") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise NetworkError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    ns = _namespace()
    ns["__file__"] = str(path)
    ns["__name__"] = "__netfile__"
    try:
        exec(code, ns)  # noqa: S102 - the user's own network description
    except CodegenError as exc:
        raise _located(exc, path) from None
    except Exception as exc:  # noqa: BLE001 - report where in the user's file it failed
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f"{path}:{frames[-1].lineno}" if frames else str(path)
        raise NetworkError(f"{where}: {type(exc).__name__}: {exc}") from None
    if "layers" not in ns and "lgraph" not in ns:
        raise NetworkError(f"{path} defines neither 'layers' (a list of layers) nor 'lgraph' (a layerGraph)")
    spec = ns["lgraph"] if "lgraph" in ns else ns["layers"]
    weights = ns.get("weights")
    if isinstance(weights, (str, Path)) and not Path(weights).is_absolute():
        weights = path.parent / weights
    name = ns.get("name", path.stem)
    if not isinstance(name, str):
        raise NetworkError(f"{path}: 'name' must be a string")
    try:
        return Network(spec, seed=ns.get("seed", 0) if seed is None else seed, weights=weights, name=name)
    except CodegenError as exc:
        raise _located(exc, path) from None


def _located(exc: CodegenError, path: Path) -> CodegenError:
    """The same error, its message prefixed with the file it came from."""
    exc.args = (f"{path}: {exc}",)
    return exc
