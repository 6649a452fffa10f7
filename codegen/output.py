"""Writing a generated folder safely.

Files are written into a temporary folder beside the destination, which then replaces the
destination in two renames under a lock: an interrupted build leaves the old folder (or
none), never a half-written one, and concurrent builds of the same folder end with one
complete result. A folder is only ever replaced if codegen made it (it holds a marker file),
so ``--out .`` cannot wipe a user's files.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .errors import BuildError

MARKER = ".codegen"


def _same_contents(folder: Path, files: dict[str, str]) -> bool:
    try:
        present = {p.name for p in folder.iterdir() if p.name != MARKER}
        if present != set(files):
            return False
        return all((folder / name).read_text() == text for name, text in files.items())
    except OSError:
        return False


def write_folder(out_dir, files: dict[str, str]) -> Path:
    out_dir = Path(out_dir).resolve()
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the output folder '{out_dir}': {exc.strerror}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BuildError(f"the output folder '{out_dir}' is not writable (no write permission on '{parent}')")
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(f"the output path '{out_dir}' exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise BuildError(f"the output folder '{out_dir}' exists and was not made by codegen; "
                         "choose another folder or empty it")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as exc:
        raise BuildError(f"cannot write the output folder '{out_dir}': {exc.strerror}") from None
    try:
        for name, text in files.items():
            (tmp / name).write_text(text)
        (tmp / MARKER).write_text("made by codegen; this folder is replaced on every build\n")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"cannot write the output folder '{out_dir}': {exc.strerror}") from None
    lock_path = parent / f".{out_dir.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if out_dir.is_dir() and _same_contents(out_dir, files):
                shutil.rmtree(tmp, ignore_errors=True)       # unchanged: keep the files (and their times)
                return out_dir
            old = None
            if out_dir.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
                os.rename(out_dir, old / "x")
            os.rename(tmp, out_dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out_dir
