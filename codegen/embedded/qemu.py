"""Running the harness on inputs: under QEMU for ARM devices, directly on the host. On the
Cortex-M boards QEMU counts instructions (``-icount shift=0``, see :mod:`.counting`)."""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..devices import Device
from ..errors import BuildError
from .counting import Count, parse_counts
from .toolchain import Artifacts, _run_tool

RUN_TIMEOUT = 120          # seconds for one harness run under QEMU


# --- running -------------------------------------------------------------------------------

_STACK_LINE = re.compile(r"codegen-harness: (\d+) images, stack (\d+) bytes \(painted (\d+)\)")


def run_command(device: Device, executable: Path, count: int) -> list[str]:
    if device.kind == "baremetal":
        return ["qemu-system-arm", "-machine", device.qemu_machine, "-nographic", "-monitor", "none",
                "-serial", "none", "-icount", "shift=0", "-semihosting-config",
                f"enable=on,target=native,arg=harness,arg=in.bin,arg=out.bin,arg={count}", "-kernel", str(executable)]
    return [*device.runner, str(executable), "in.bin", "out.bin", str(count)]


@dataclass
class RunResult:
    outputs: np.ndarray       # (N, OUT_SIZE) float32
    stack: int | None
    saturated: bool
    command: list[str]
    seconds: float
    log: str
    count: Count | None = None  # Cortex-M: instructions per image (and per op in a profiling build)

    @property
    def instructions(self) -> int | None:
        """Instructions per inference (Cortex-M boards; None elsewhere)."""
        return self.count.instructions if self.count else None

    @property
    def per_op(self) -> dict[str, int] | None:
        """A profiling build's instructions per op (op name -> count, in the order they ran)."""
        return self.count.per_op if self.count else None


def run_harness(art: Artifacts, device: Device, inputs: np.ndarray, out_size: int,
                timeout: float = RUN_TIMEOUT, ops: list[tuple[str, int | None]] | None = None,
                macs: int = 0) -> RunResult:
    """Run the harness on ``inputs`` (N, ...) float32 and return its outputs (N, out_size).
    ``ops``: (name, MACs) of each op of a profiling build; ``macs``: of one inference."""
    x = np.ascontiguousarray(inputs, np.float32)
    n = x.shape[0]
    with tempfile.TemporaryDirectory(prefix="codegen-device-") as tmp:
        tmp = Path(tmp)
        x.tofile(tmp / "in.bin")
        cmd = run_command(device, art.harness, n)
        t0 = time.perf_counter()
        proc = _run_tool(device, cmd, tmp, timeout,
                         f"the harness did not finish within {timeout:g} s ({shlex.join(cmd)})")
        seconds = time.perf_counter() - t0
        log = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            raise BuildError(f"{device.name}: the harness failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
                             f"{log[-4000:]}")
        out_path = tmp / "out.bin"
        y = np.fromfile(out_path, np.float32) if out_path.exists() else np.empty(0, np.float32)
        if y.size != n * out_size:
            raise BuildError(f"{device.name}: the harness wrote {y.size} floats, expected {n * out_size}\n{log}")
        m = _STACK_LINE.search(proc.stdout)
        stack = int(m.group(2)) if m else None
        saturated = bool(m) and int(m.group(2)) >= int(m.group(3))
        count = None
        if device.instructions_per_tick:
            per_image, per_op = parse_counts(proc.stdout, n, device.instructions_per_tick,
                                             None if ops is None else len(ops))
            if per_image is None or (ops is not None and per_op is None):
                raise BuildError(f"{device.name}: the harness printed no instruction counts\n{log[-2000:]}")
            count = Count(per_image, per_op, *(([name for name, _ in ops], [m for _, m in ops]) if ops else
                                              (None, None)), macs=macs)
        return RunResult(y.reshape(n, out_size), stack, saturated, cmd, seconds, log, count)
