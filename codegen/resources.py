"""Where the package's templates/ and runtime/ folders are.

In a source checkout (or an editable install) they sit beside the ``codegen`` package; a
wheel installs them inside it (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for candidate in (_HERE / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"codegen's '{name}' folder is missing from the installation ({_HERE})")


def templates_dir() -> Path:
    return data_dir("templates")


def runtime_dir() -> Path:
    return data_dir("runtime")
