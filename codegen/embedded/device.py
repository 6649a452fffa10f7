"""The public object: a network built for a device, its checks and footprint, ``predict`` on the
device, and ``codegen build/verify --device``."""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..devices import Device, get_device, require_tools
from ..emit import render_files
from ..emit.names import c_identifier
from ..errors import CodegenError, InputError, UnsupportedError
from ..load import default_out_dir
from ..network import Network
from ..output import write_folder
from ..plan import make_plan
from ..verify import DEFAULT_TOL, verify as run_verify
from .checks import Check, checks_of
from .footprint import Footprint, _fmt, check_budget, footprint_of
from .qemu import RUN_TIMEOUT, RunResult, run_harness
from .toolchain import Artifacts, compile_device


# --- the public object ---------------------------------------------------------------------

@dataclass
class DeviceBuild:
    """A network built for a device: the generated files, the build, footprint and checks;
    ``predict`` runs the harness (under QEMU for ARM devices)."""
    net: object
    plan: object
    device: Device
    files: dict[str, str]
    out_dir: Path | None
    prefix: str
    artifacts: Artifacts
    footprint: Footprint
    checks: list[Check]
    weights_section: str | None = None
    timeout: float = RUN_TIMEOUT
    last_run: RunResult | None = None
    seconds: float = 0.0

    target = "c"

    @property
    def cached(self) -> bool:
        return self.artifacts.cached

    @property
    def library(self) -> Path:
        return self.artifacts.harness

    @property
    def in_shape(self) -> tuple:
        return tuple(self.plan.input.shape)

    @property
    def out_shape(self) -> tuple:
        return tuple(self.plan.output.shape)

    @property
    def checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def predict(self, x) -> np.ndarray:
        """Run the network on the device on ``x``, (H, W, C) or (N, H, W, C); float32 outputs."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise InputError(f"predict: input has dtype {x.dtype}; expected float32 (or a real type to convert)")
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise InputError(f"predict: input has shape {np.shape(x)}; expected (H, W, C) = {self.in_shape} "
                             "or (N, H, W, C) with that H, W, C")
        if not np.all(np.isfinite(x)):
            raise InputError("predict: input contains NaN or Inf")
        out_size = int(np.prod(self.out_shape))
        result = run_harness(self.artifacts, self.device, x.astype(np.float32), out_size, self.timeout)
        self.last_run = result
        if result.stack is not None:
            self.footprint.stack_measured = result.stack
            self.footprint.stack_saturated = result.saturated
        y = result.outputs.reshape(x.shape[0], *self.out_shape)
        return y[0] if single else y

    def describe_build(self) -> str:
        return f"{self.device.name}: {shlex.join([self.device.compiler, *self.device.cflags])}"

    def checks_report(self) -> str:
        return "checks:\n" + "\n".join(c.line() for c in self.checks)


def build(net, device: str | Device = "cortex-m4", out_dir=None, *, weights_section: str | None = None,
          source: str = "", write: bool = True, timeout: float = RUN_TIMEOUT, cflags=()) -> DeviceBuild:
    """Generate C for ``net`` with the device's toolchain section in its Makefile and
    CMakeLists.txt, write it to ``out_dir`` (default ``./codegen_out/<name>/``; nothing with
    ``write=False``), cross-compile it with the harness and the minimal firmware (``cflags``
    added to the device's), and work out its footprint and checks. ``DeviceBuild.predict`` runs it."""
    if not isinstance(net, Network):
        raise CodegenError(f"build expects a codegen.Network, got {type(net).__name__}")
    device = get_device(device) if isinstance(device, str) else device
    if weights_section is not None and not re.fullmatch(r"\.?[A-Za-z_][A-Za-z0-9_.]*", weights_section):
        raise CodegenError(f"weights section {weights_section!r} is not a valid section name "
                           "(letters, digits, '_' and '.')")
    require_tools(device)
    t0 = time.perf_counter()
    plan = make_plan(net)
    options = dict(weights_section=weights_section, source=source, toolchain=device.toolchain_option())
    files = render_files(net, plan, "c", options)
    prefix = c_identifier(net.name, "net").lower()
    folder = None
    if write:
        folder = write_folder(out_dir if out_dir is not None else default_out_dir(net), files)
    art = compile_device(files, prefix, device, cflags)
    fp = footprint_of(art, device, prefix, plan, weights_section)
    checks = checks_of(art, device, prefix)
    return DeviceBuild(net, plan, device, files, folder, prefix, art, fp, checks, weights_section, timeout,
                       seconds=time.perf_counter() - t0)


def verify(net, dev: DeviceBuild, count: int = 3, seed: int = 0, tol: float | None = None):
    """Compare the device's outputs with ``net.predict`` on seeded random inputs (a
    :class:`codegen.verify.Verification`)."""
    return run_verify(net, dev, count=count, seed=seed, tol=DEFAULT_TOL if tol is None else tol)


def reject_per_layer(device: str) -> None:
    raise UnsupportedError(f"--per-layer runs on the host only (it reads the workspace back); "
                           f"drop --device {device} or --per-layer")


# --- command line --------------------------------------------------------------------------

def build_and_report(net, net_file, device: str, echo, *, target: str = "c", out_dir=None, tol=None, count: int = 3,
                     per_layer: bool = False, verbose: bool = False, show_plan: bool = False,
                     do_verify: bool = True, weights_section: str | None = None, max_ram: int | None = None,
                     max_flash: int | None = None, quiet_files: bool = False) -> int:
    """``codegen build/verify --device``: build, run and verify on the device, print the
    footprint and the checks, enforce the budgets. Returns the exit status (0 pass, 1 the
    verification or a check failed); a budget overrun raises :class:`BudgetError`."""
    if target != "c":
        raise UnsupportedError(f"--device {device} needs --target c (the CUDA output runs on NVIDIA GPUs)")
    if per_layer:
        reject_per_layer(device)
    dev = build(net, device, out_dir, weights_section=weights_section, source=str(net_file))
    plan = dev.plan
    if show_plan:
        echo(plan.describe())
    if not quiet_files and dev.out_dir is not None:
        where = "" if dev.device.name == "host" else f" ({dev.device.name} toolchain in Makefile and CMakeLists.txt)"
        echo(f"generated C for '{net.name}'{where} in {dev.out_dir}/")
        for name in sorted(dev.files):
            echo(f"  {name:<28} {len(dev.files[name].encode()):>10,} bytes")
    echo(f"arena {plan.arena_bytes:,} bytes (sum of activations {plan.activations_floats * 4:,}; "
         f"one buffer per op {plan.naive_floats * 4:,}), weights {plan.weight_bytes:,} bytes, "
         f"{plan.macs:,} MACs, {len(plan.ops)} ops")
    echo(f"{dev.describe_build()}" + (" (cache hit)" if dev.cached else f" (built in {dev.seconds:.1f} s)"))
    if verbose:
        echo(f"build folder {dev.artifacts.folder}")
        for cmd in dev.artifacts.commands:
            echo(f"  {cmd}")
        for log in ("network", "runtime", "link"):
            text = dev.artifacts.read(f"{log}.log").strip()
            if text:
                echo(text)
    result = None
    if do_verify:
        result = verify(net, dev, count=count, tol=tol)
        run = dev.last_run
        echo(f"ran {count} input(s) on {dev.device.description} in {run.seconds:.2f} s"
             + (f": {shlex.join(run.command)}" if verbose else ""))
    echo(dev.footprint.report())
    echo(dev.checks_report())
    if result is not None:
        echo(result.report())
    check_budget(dev.footprint, max_ram=max_ram, max_flash=max_flash)
    if max_ram is not None or max_flash is not None:
        echo("budget: " + ", ".join(f"{what} {_fmt(have)} of {_fmt(limit)} bytes" for what, have, limit in
                                    (("flash", dev.footprint.flash, max_flash), ("RAM", dev.footprint.ram, max_ram))
                                    if limit is not None))
    return 0 if (result is None or result.passed) and dev.checks_passed else 1
