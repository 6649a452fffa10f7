"""The code generation report: ``report.html`` in the output folder, one self-contained page.

    codegen build net.py --report            # build, verify, then write report.json and report.html
    codegen report codegen_out/net/          # render report.html again from report.json and the sources

A build with ``--report`` leaves ``report.json`` (:mod:`.facts`: what the build knew that the files do
not say: the layers, the plan's buffers, the target's footprint and counts, the verification) beside the
generated files; the page (:mod:`.page`) is rendered from it and the files, so ``codegen report`` needs
no compiler and builds nothing. Both files are listed in the folder's marker: the next build replaces
them like the rest. Needs the ``report`` extra (matplotlib, pygments); Graphviz's ``dot`` is used for
the graph when installed.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from ..errors import CodegenError
from ..output import add_files
from .facts import FORMAT, gather
from .page import build_page

FACTS_FILE = "report.json"
PAGE_FILE = "report.html"
TEXT_SUFFIXES = (".c", ".h", ".cu", ".txt", ".md")

__all__ = ["FACTS_FILE", "PAGE_FILE", "gather", "build_page", "write_report", "render_folder", "preload"]


def _import_libraries() -> None:
    try:
        import matplotlib.backends.backend_svg  # noqa: F401
        import matplotlib.figure  # noqa: F401
        import pygments.formatters  # noqa: F401
    except ImportError:
        pass                      # the report says what is missing when it is written


def preload() -> threading.Thread:
    """Import matplotlib and Pygments in a background thread (most of a report's time on a small network),
    e.g. while the build compiles; writing the report waits for nothing but Python's import lock."""
    thread = threading.Thread(target=_import_libraries, name="codegen-report-preload", daemon=True)
    thread.start()
    return thread


def _text_files(folder: Path, names) -> dict[str, str]:
    files = {}
    for name in names:
        path = folder / name
        if path.suffix in TEXT_SUFFIXES and path.is_file():
            files[name] = path.read_text(errors="replace")
    return files


def write_report(facts: dict, folder, use_dot: bool = True) -> tuple[Path, float]:
    """Write report.json and report.html into ``folder`` (a codegen output folder holding the generated
    files); (the page's path, seconds it took)."""
    t0 = time.perf_counter()
    folder = Path(folder)
    page = build_page(facts, _text_files(folder, facts["files"]), use_dot=use_dot)
    add_files(folder, {FACTS_FILE: json.dumps(facts, indent=1) + "\n", PAGE_FILE: page})
    return folder / PAGE_FILE, time.perf_counter() - t0


def render_folder(folder, use_dot: bool = True) -> tuple[Path, float]:
    """report.html again from ``folder``'s report.json and generated files."""
    folder = Path(folder)
    path = folder / FACTS_FILE
    try:
        facts = json.loads(path.read_text())
    except FileNotFoundError:
        raise CodegenError(f"'{folder}' has no {FACTS_FILE}: build with --report first "
                           f"(codegen build net.py --out {folder} --report)") from None
    except (OSError, ValueError) as exc:
        raise CodegenError(f"cannot read '{path}': {exc}") from None
    if not isinstance(facts, dict) or facts.get("format") != FORMAT:
        raise CodegenError(f"'{path}' is not a report of this codegen (format {facts.get('format')!r}, expected "
                           f"{FORMAT}); build again with --report" if isinstance(facts, dict) else
                           f"'{path}' is not a codegen report")
    missing = [name for name in facts.get("files", []) if not (folder / name).is_file()]
    if missing:
        raise CodegenError(f"'{folder}' lacks the generated files the report shows: {', '.join(missing)}")
    return write_report(facts, folder, use_dot=use_dot)
