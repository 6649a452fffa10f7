"""What ptxas said about each CUDA kernel (``nvcc -Xptxas -v``): registers, shared memory, stack
and spills per kernel and architecture, and a table of them for the build report."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass
class KernelResources:
    """What ptxas reported for one kernel on one architecture."""
    kernel: str
    arch: str
    registers: int = 0
    shared_bytes: int = 0
    stack_bytes: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    barriers: int = 0

    @property
    def spills(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0


def _demangle(symbol: str) -> str:
    m = re.match(r"_ZL?(\d+)", symbol)
    return symbol[m.end(): m.end() + int(m.group(1))] if m else symbol


def parse_ptxas(log: str) -> list[KernelResources]:
    """The per-kernel figures of ``-Xptxas -v`` output."""
    kernels: list[KernelResources] = []
    current: KernelResources | None = None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for '([^']+)'", line)
        if m:
            current = KernelResources(_demangle(m.group(1)), m.group(2))
            kernels.append(current)
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current.stack_bytes, current.spill_stores, current.spill_loads = map(int, m.groups())
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current.registers = int(m.group(1))
            b = re.search(r"used (\d+) barriers", line)
            s = re.search(r"(\d+) bytes smem", line)
            current.barriers = int(b.group(1)) if b else 0
            current.shared_bytes = int(s.group(1)) if s else 0
    return kernels


def resources_table(kernels: list[KernelResources]) -> str:
    if not kernels:
        return "  (ptxas reported no kernels)"
    w = max(len(k.kernel) for k in kernels)
    lines = [f"  {'kernel':<{w}}  {'arch':<7} {'regs':>5} {'smem B':>7} {'stack B':>7} {'spill st/ld B':>14}"]
    for k in kernels:
        lines.append(f"  {k.kernel:<{w}}  {k.arch:<7} {k.registers:>5} {k.shared_bytes:>7} {k.stack_bytes:>7} "
                     f"{f'{k.spill_stores}/{k.spill_loads}':>14}")
    return "\n".join(lines)
