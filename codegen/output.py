"""Writing a generated folder safely.

Files are written into a temporary folder beside the destination, which then replaces the
destination in two renames under a lock: an interrupted build leaves the old folder (or
none), never a half-written one, and concurrent builds of the same folder end with one
complete result.

codegen only ever replaces a folder it made, and only when it holds nothing else: it writes a
marker file, ``.codegen``, whose first line is :data:`MARKER_HEADER` and whose other lines name
the files it wrote. A folder is replaced when it is empty, or when its marker is exactly such a
file and every other entry is named in it; anything else (a ``.codegen`` directory, another
tool's marker, a file the user added) is refused with a message naming it, so ``--out ~`` or
``--out .`` cannot delete a user's files. Every check runs under the lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .compiler import data_of, write_file
from .errors import BuildError

MARKER = ".codegen"
MARKER_HEADER = "made by codegen; this folder is replaced on every build. Files codegen wrote:"
LEGACY_HEADER = "made by codegen; this folder is replaced on every build"    # markers before the file list
MAX_LISTED = 5


def marker_text(files) -> str:
    return "\n".join([MARKER_HEADER, *sorted(files)]) + "\n"


def _written_by_codegen(folder: Path, new_files) -> set[str] | None:
    """The names codegen wrote into ``folder`` per its marker, or None if the marker is not codegen's."""
    marker = folder / MARKER
    try:
        info = marker.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > 1 << 20:
            return None
        lines = marker.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if lines[:1] == [MARKER_HEADER]:
        return set(lines[1:])
    if lines == [LEGACY_HEADER]:                 # an older codegen: it wrote the files it writes now
        return set(new_files)
    return None


def _check_replaceable(out_dir: Path, files: dict[str, str]) -> bool:
    """Whether ``out_dir`` exists (a folder codegen may replace); BuildError if it may not be replaced."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise BuildError(f"the output path '{out_dir}' exists and is not a folder")
    entries = sorted(p.name for p in out_dir.iterdir())
    if not entries:
        return True
    written = _written_by_codegen(out_dir, files)
    if written is None:
        raise BuildError(f"the output folder '{out_dir}' exists and was not made by codegen; "
                         "choose another folder or empty it")
    foreign = [name for name in entries if name != MARKER and name not in written]
    if foreign:
        shown = ", ".join(foreign[:MAX_LISTED]) + (f" and {len(foreign) - MAX_LISTED} more" if len(foreign) > MAX_LISTED
                                                   else "")
        raise BuildError(f"the output folder '{out_dir}' holds files codegen did not write ({shown}); "
                         "codegen replaces the whole folder: move them out or choose another folder")
    return True


def _same_contents(folder: Path, files: dict[str, str]) -> bool:
    try:
        present = {p.name for p in folder.iterdir() if p.name != MARKER}
        if present != set(files) or (folder / MARKER).read_text() != marker_text(files):
            return False
        return all((folder / name).read_bytes() == data_of(content) for name, content in files.items())
    except (OSError, UnicodeDecodeError):
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
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as exc:
        raise BuildError(f"cannot write the output folder '{out_dir}': {exc.strerror}") from None
    try:
        try:
            for name, content in files.items():
                write_file(tmp / name, content)
            (tmp / MARKER).write_text(marker_text(files))
        except OSError as exc:
            raise BuildError(f"cannot write the output folder '{out_dir}': {exc.strerror}") from None
        lock_path = parent / f".{out_dir.name}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                exists = _check_replaceable(out_dir, files)
                if exists and _same_contents(out_dir, files):
                    return out_dir                        # unchanged: keep the files (and their times)
                old = None
                if exists:
                    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
                    os.rename(out_dir, old / "x")
                os.rename(tmp, out_dir)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def add_files(out_dir, files: dict[str, str]) -> None:
    """Write ``files`` into ``out_dir``, a folder codegen made (e.g. the build report after the build), and
    list them in its marker, so the next build still replaces the whole folder. Under the folder's lock."""
    out_dir = Path(out_dir).resolve()
    lock_path = out_dir.parent / f".{out_dir.name}.lock"
    try:
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                written = _written_by_codegen(out_dir, files)
                if written is None:
                    raise BuildError(f"the output folder '{out_dir}' was not made by codegen; not writing "
                                     f"{', '.join(sorted(files))} into it")
                for name, content in files.items():
                    tmp = out_dir / f".{name}.tmp"
                    write_file(tmp, content)
                    os.replace(tmp, out_dir / name)
                (out_dir / MARKER).write_text(marker_text(written | set(files)))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError as exc:
        raise BuildError(f"cannot write into the output folder '{out_dir}': {exc.strerror}") from None
