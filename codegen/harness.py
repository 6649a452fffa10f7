"""Running generated C as a standalone program on the host (runtime/host/harness.c).

Used to check generated code under AddressSanitizer + UndefinedBehaviorSanitizer and under
valgrind, where loading a library into Python would not work (the sanitizer runtime must be
first) or would hide errors.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

import numpy as np

from .compiler import run_tool, write_file
from .errors import BuildError
from .resources import runtime_dir

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


def run_harness(files: dict[str, str], prefix: str, inputs: np.ndarray, out_size: int, *, cc: str = "cc",
                cflags: list[str] | None = None, runner: list[str] | None = None, static_arena: bool = False,
                timeout: int = 300) -> np.ndarray:
    """Compile the generated ``files`` with the harness, run it on ``inputs`` (N, H, W, C) and
    return the outputs (N, out_size). ``runner`` prefixes the command (e.g. valgrind)."""
    cflags = cflags if cflags is not None else ["-O1"]
    with tempfile.TemporaryDirectory(prefix="codegen-harness-") as tmp:
        tmp = Path(tmp)
        for name, content in files.items():
            write_file(tmp / name, content)
        exe = tmp / "harness"
        cmd = [*shlex.split(cc), "-std=c99", *cflags, f'-DCG_HEADER="{prefix}.h"', f"-DCG_PREFIX={prefix}",
               f"-DCG_MACRO={prefix.upper()}", f"-I{tmp}", str(runtime_dir() / "host" / "harness.c"),
               str(tmp / f"{prefix}.c"), str(tmp / f"{prefix}_weights.c"), "-o", str(exe), "-lm"]
        proc = run_tool(cmd, cwd=tmp, timeout=timeout)
        if proc.returncode != 0:
            raise BuildError(f"harness build failed ({shlex.join(cmd)}):\n{proc.stderr.strip()}")
        x = np.ascontiguousarray(inputs, np.float32)
        x.tofile(tmp / "in.bin")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        run = [*(runner or []), str(exe), str(tmp / "in.bin"), str(tmp / "out.bin"), str(len(x)),
               "static" if static_arena else "ws"]
        proc = run_tool(run, timeout=timeout, env=env)
        if proc.returncode != 0:
            raise BuildError(f"harness run failed (exit {proc.returncode}): {shlex.join(run)}\n"
                             f"{(proc.stdout + proc.stderr).strip()[-4000:]}")
        return np.fromfile(tmp / "out.bin", np.float32).reshape(len(x), out_size)
