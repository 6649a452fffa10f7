"""The device target: the C output cross-compiled for a device (:mod:`codegen.devices`) with the
test harness and a minimal firmware, its footprint and link checks, and ``predict`` running the
harness (under QEMU for the ARM devices). The steps are in :mod:`codegen.embedded`.

Thread safety: every ``predict`` runs the harness in a folder of its own; the measured stack is
recorded under a lock.
"""

from __future__ import annotations

import shlex
import threading
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..devices import Device, get_device, require_tools
from ..embedded import (RUN_TIMEOUT, Artifacts, Check, Footprint, RunResult, check_budget, checks_of,
                        compile_device, footprint_of, run_harness)
from ..errors import UnsupportedError
from ..library import Library
from ..ops.tiling import isa_choice
from .base import Target


@dataclass(eq=False)
class DeviceLibrary(Library):
    """A network built for a device: the build, footprint and checks; ``predict`` runs the harness.
    On the Cortex-M boards ``last_run.instructions`` is the instructions per inference (and
    ``last_run.per_op`` each op's, in a profiling build): see :mod:`codegen.embedded.counting`."""
    device: Device = None
    artifacts: Artifacts = None
    footprint: Footprint = None
    checks: list[Check] = field(default_factory=list)
    timeout: float = RUN_TIMEOUT
    last_run: RunResult | None = None      # the latest run: outputs, stack, instructions (Cortex-M)
    profile: bool = False                  # generated with hooks between ops: instructions per op

    target = "c"

    def __post_init__(self):
        self._lock = threading.Lock()

    @property
    def cached(self) -> bool:
        return self.artifacts.cached

    @property
    def library(self) -> Path:
        return self.artifacts.harness

    @property
    def checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def _run(self, x: np.ndarray) -> np.ndarray:
        ops = None
        if self.profile:             # (name, MACs) of every op
            ops = [("+".join(op.layers), getattr(op.attrs, "macs", None)) for op in self.plan.ops]
        result = run_harness(self.artifacts, self.device, x, self.out_floats, self.timeout, ops, self.plan.macs)
        with self._lock:
            self.last_run = result
            if result.stack is not None:
                self.footprint.stack_measured = result.stack
                self.footprint.stack_saturated = result.saturated
        return result.outputs

    def describe(self) -> str:
        return f"{self.prefix} ({self.device.name}) from {self.library}"

    def describe_build(self) -> str:
        return f"{self.device.name}: {shlex.join([self.device.compiler, *self.device.cflags])}"

    def build_line(self, seconds: float) -> str:
        return self.describe_build() + (" (cache hit)" if self.cached else f" (built in {seconds:.1f} s)")

    def build_report(self, verbose: bool = False) -> list[str]:
        if not verbose:
            return []
        lines = [f"build folder {self.artifacts.folder}", *(f"  {cmd}" for cmd in self.artifacts.commands)]
        for log in ("network", "runtime", "link"):
            text = self.artifacts.read(f"{log}.log").strip()
            if text:
                lines.append(text)
        return lines

    def run_report(self) -> list[str]:
        lines = []
        if self.last_run is not None:
            lines.append(f"ran {self.last_run.outputs.shape[0]} input(s) on {self.device.description} in "
                         f"{self.last_run.seconds:.2f} s: {shlex.join(self.last_run.command)}")
            if self.last_run.count is not None:
                lines.extend(self.last_run.count.report())
        return [*lines, self.footprint.report(), self.checks_report()]

    def report_facts(self) -> dict:
        fp = self.footprint
        count = self.last_run.count if self.last_run is not None else None
        footprint = dict(dataclasses.asdict(fp), flash=fp.flash, ram=fp.ram, stack=fp.stack,
                         static_data=fp.static_data, flash_detail=fp.flash_detail(), ram_detail=fp.ram_detail())
        return dict(super().report_facts(), device=f"{self.device.name}: {self.device.description}",
                    compiler=shlex.join([self.device.compiler, *self.device.cflags]), footprint=footprint,
                    instructions=None if count is None else count.instructions,
                    per_op=None if count is None else count.per_op,
                    checks=[c.line().strip() for c in self.checks])

    def checks_report(self) -> str:
        return "checks:\n" + "\n".join(c.line() for c in self.checks)

    def check_budget(self, max_ram: int | None = None, max_flash: int | None = None) -> str | None:
        check_budget(self.footprint, max_ram=max_ram, max_flash=max_flash)
        if max_ram is None and max_flash is None:
            return None
        return "budget: " + ", ".join(f"{what} {have:,} of {limit:,} bytes" for what, have, limit in
                                      (("flash", self.footprint.flash, max_flash), ("RAM", self.footprint.ram, max_ram))
                                      if limit is not None)


class DeviceTarget(Target):
    """Cross-compiles for ``device`` (a name or a :class:`~codegen.devices.Device`); ``cflags`` are
    added to the device's (e.g. ``-DCODEGEN_PORTABLE``); ``timeout`` bounds one harness run; ``profile``:
    generate a hook between ops, so the Cortex-M harness counts every op's instructions."""
    dialect = "c"

    def __init__(self, device: str | Device, weights_section: str | None = None, cflags=(),
                 timeout: float = RUN_TIMEOUT, profile: bool = False, isa=None):
        self.device = get_device(device) if isinstance(device, str) else device
        self.name = self.device.name
        self.isas = isa_choice(isa, self.device.isa_options or self.device.isas, f"--isa for --device {self.name}",
                               default=self.device.isas)
        self.weights_section, self.cflags, self.timeout = weights_section, tuple(cflags), timeout
        self.profile = profile
        self.smallest_arena = self.device.name != "host"    # cross-compiled: plan the smallest arena

    def render_options(self) -> dict:
        return dict(toolchain=self.device.toolchain_option(), profile=self.profile, isas=self.isas)

    def check_tools(self) -> None:
        require_tools(self.device)

    def compile(self, files: dict[str, str], prefixes: list[str]) -> Artifacts:
        if len(prefixes) != 1:
            raise UnsupportedError(f"{self.device.name}: a device build holds one network, not {len(prefixes)}")
        return compile_device(files, prefixes[0], self.device, self.cflags, self.profile)

    def load(self, net, plan, files, out_dir, prefix, built) -> DeviceLibrary:
        footprint = footprint_of(built, self.device, prefix, plan, self.weights_section)
        return DeviceLibrary(net, plan, files, out_dir, prefix, device=self.device, artifacts=built,
                             footprint=footprint, checks=checks_of(built, self.device, prefix), timeout=self.timeout,
                             profile=self.profile)
