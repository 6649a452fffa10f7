"""The host target: the C output as a shared library for this machine, loaded with cffi.

The generated header is the contract: its API block (between the ``codegen-api-begin`` and
``codegen-api-end`` comments) is handed to ``cffi.cdef`` as it is, so the Python side and C
callers see the same sizes and functions.

Thread safety: every ``predict`` call runs in a workspace of its own (the generated
``<name>_predict_ws`` is re-entrant), so concurrent calls on one library are correct; cffi
releases the GIL during the call, so they also run in parallel.

A profiling build (``profile=True``, ``codegen build --profile``) has the hooks between ops that
device builds use for instruction counts; here ``runtime/host/profile.c`` records the monotonic
clock at each, and :meth:`HostLibrary.time_ops` gives each op's time (the median of repeated runs).
"""

from __future__ import annotations

import re
import shlex
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cffi
import numpy as np

from ..compiler import BuildResult, compile_cached, host_c_job
from ..emit.c import int8_spans
from ..errors import BuildError, UnsupportedError
from ..library import Library, aligned_empty, check_input
from ..ops.tiling import ISAS, isa_choice
from ..resources import runtime_dir
from .base import Target


def api_block(header: str) -> str:
    m = re.search(r"codegen-api-begin[^\n]*\n(.*?)/\* codegen-api-end", header, re.S)
    if not m:
        raise BuildError("the generated header has no codegen-api block")
    return m.group(1)


class Cffi:
    """A generated library opened through the API block of its header."""

    def __init__(self, header: str, library: Path):
        self.ffi = cffi.FFI()
        self.ffi.cdef(api_block(header))
        self.lib = self.ffi.dlopen(str(library))

    def value(self, name: str):
        return getattr(self.lib, name)


@dataclass(eq=False)
class HostLibrary(Library):
    """The C output compiled for this machine."""
    build: BuildResult = None
    poison: float | None = None          # fill the workspace with this before each call (tests)
    profile: bool = False                # built with a clock at each hook between ops: time_ops()
    _api: Cffi = field(default=None, repr=False)

    target = "c"

    def __post_init__(self):
        self._api = Cffi(self.files[f"{self.prefix}.h"], self.build.library)
        m = self.prefix.upper()
        declared = (tuple(self._api.value(f"{m}_IN_{d}") for d in "HWC"), self._api.value(f"{m}_OUT_SIZE"))
        if declared != (self.in_shape, self.out_floats):
            raise BuildError(f"{self.prefix}: the library declares sizes {declared}, the plan "
                             f"{(self.in_shape, self.out_floats)}")
        self.workspace_bytes = self._api.value(f"{m}_ARENA_BYTES")   # an int8 build adds its staging buffers
        self._predict_ws = self._api.value(f"{self.prefix}_predict_ws")
        self._op_seconds: dict[str, float] | None = None
        if self.profile:
            self._api.ffi.cdef(f"int {self.prefix}_profile_stamps(long long *out, int n);")
            self._profile_lock = threading.Lock()

    @property
    def library(self) -> Path:
        return self.build.library

    @property
    def cached(self) -> bool:
        return self.build.cached

    def _workspace(self) -> np.ndarray:
        ws = aligned_empty(max(self.workspace_bytes, 64))
        if self.poison is not None:
            ws.view(np.float32)[:] = self.poison
        return ws

    def _call(self, x: np.ndarray, out: np.ndarray, ws: np.ndarray) -> None:
        ffi = self._api.ffi
        status = self._predict_ws(ffi.cast("const float *", x.ctypes.data), ffi.cast("float *", out.ctypes.data),
                                  ffi.cast("void *", ws.ctypes.data))
        if status != 0:
            raise BuildError(f"{self.prefix}_predict_ws returned error {status}")

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], self.out_floats), np.float32)
        ws = self._workspace()
        for i in range(x.shape[0]):
            if i and self.poison is not None:
                ws.view(np.float32)[:] = self.poison
            self._call(x[i], out[i], ws)
        return out

    def run_single_with_workspace(self, x) -> tuple[np.ndarray, np.ndarray]:
        xb = check_input(x, self.in_shape, finite=False)[0]
        out = np.empty((1, self.out_floats), np.float32)
        ws = self._workspace()
        self._call(xb[0], out[0], ws)
        if self.plan.dtype == "int8":          # the int8 output and arena inside the float API's workspace
            start = int8_spans(self.plan)["out_at"]
            return ws[start: start + self.out_floats].view(np.int8).copy(), ws.view(np.int8).copy()
        return out[0], ws.view(np.float32).copy()

    def report_facts(self) -> dict:
        return dict(super().report_facts(), compiler=shlex.join(self.build.command),
                    op_seconds=self.time_ops() if self.profile else None)

    def time_ops(self, x=None, seconds: float = 0.2, max_runs: int = 200) -> dict[str, float]:
        """Profiling builds: each op's time in seconds (op label -> median over repeated runs on ``x``, or on
        a seeded random input), in the order the ops run; measured once and kept."""
        if not self.profile:
            raise UnsupportedError("time_ops needs a profiling build (codegen.build(net, profile=True), --profile)")
        if self._op_seconds is not None and x is None:
            return self._op_seconds
        n_ops = len(self.plan.ops)
        if x is None:
            x = np.random.default_rng(0).random(self.in_shape)
        xb = check_input(x, self.in_shape, observation=self.net.observation_shape)[0][:1]
        out = np.empty((1, self.out_floats), np.float32)
        ws = self._workspace()
        ffi = self._api.ffi
        stamps = ffi.new("long long[]", n_ops + 1)
        read = self._api.value(f"{self.prefix}_profile_stamps")
        runs: list[list[int]] = []
        with self._profile_lock:
            self._call(xb[0], out[0], ws)                       # warm the caches
            start = time.perf_counter()
            while len(runs) < max_runs and (len(runs) < 5 or time.perf_counter() - start < seconds):
                self._call(xb[0], out[0], ws)
                read(stamps, n_ops + 1)
                runs.append([stamps[i + 1] - stamps[i] for i in range(n_ops)])
        result = {"+".join(op.layers): statistics.median(r[i] for r in runs) * 1e-9
                  for i, op in enumerate(self.plan.ops)}
        if x is None or self._op_seconds is None:
            self._op_seconds = result
        return result

    def run_report(self) -> list[str]:
        if not self.profile:
            return []
        ops = self.time_ops()
        total = sum(ops.values())
        width = max(len(name) for name in ops)
        lines = [f"time per op on this machine (median of repeated runs, one image): {total * 1e6:,.1f} us in all",
                 f"  {'op':<{width}}  {'us':>10}  {'share':>6}"]
        lines += [f"  {name:<{width}}  {t * 1e6:>10,.1f}  {100 * t / max(total, 1e-12):5.1f}%" for name, t in ops.items()]
        return lines

    def build_report(self, verbose: bool = False) -> list[str]:
        if not verbose:
            return []
        lines = [f"compile: {shlex.join(self.build.command)}" + (" (cached)" if self.cached else "")]
        if self.build.log.strip():
            lines.append(self.build.log.rstrip())
        return lines


class HostC(Target):
    """A shared library for this machine: ``cc`` (default $CC or cc), ``opt_flags`` (default
    :func:`codegen.compiler.host_opt_flags`), ``extra_flags``; ``openmp`` compiles the kernels'
    OpenMP pragmas in; ``isa`` the kernels' instruction sets (default: every one, chosen when compiled)."""
    name = "c"
    dialect = "c"

    def __init__(self, cc: str | None = None, opt_flags: list[str] | None = None,
                 extra_flags: list[str] | None = None, openmp: bool = False, isa=None, profile: bool = False):
        self.cc, self.opt_flags, self.extra_flags, self.openmp = cc, opt_flags, extra_flags, openmp
        # the Cortex-M4F/M7 tier is plain C (and fmaf): the host compiles it too, for tests
        self.isas = isa_choice(isa, (*ISAS, "cortexm"), default=tuple(ISAS))
        self.profile = profile

    def render_options(self) -> dict:
        return dict(isas=self.isas, profile=True) if self.profile else dict(isas=self.isas)

    def compile(self, files: dict[str, str], prefixes: list[str]) -> BuildResult:
        job = host_c_job(prefixes[0], self.cc, self.opt_flags, self.extra_flags, openmp=self.openmp)
        if len(prefixes) > 1:
            job.sources = [name for p in prefixes for name in (f"{p}.c", f"{p}_weights.c")]
            job.output = "libnets.so"
        if self.profile:
            files = dict(files)
            for p in prefixes:
                files[f"{p}_profile.c"] = profile_source(p, files[f"{p}.h"])
                job.sources.append(f"{p}_profile.c")
        return compile_cached(files, job)

    def load(self, net, plan, files, out_dir, prefix, built) -> HostLibrary:
        return HostLibrary(net, plan, files, out_dir, prefix, build=built, profile=self.profile)


def profile_source(prefix: str, header: str) -> str:
    """runtime/host/profile.c for the network ``prefix`` (its stamps sized by the header's PROFILE_OPS)."""
    m = re.search(r"#define \w+_PROFILE_OPS (\d+)", header)
    if not m:
        raise BuildError(f"{prefix}: a profiling build's header declares no PROFILE_OPS")
    text = (runtime_dir() / "host" / "profile.c").read_text()
    return f"#define CG_PREFIX {prefix}\n#define CG_MAX_STAMPS {int(m.group(1)) + 1}\n{text}"
