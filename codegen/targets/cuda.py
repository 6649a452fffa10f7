"""The CUDA targets: nvcc for GPUs, or the host C++ compiler for the CPU execution mode (the same
kernels run by ``runtime/cuda_emu.h``).

:class:`Cuda` compiles the rendered files (:mod:`codegen.emit.cuda`) with nvcc into a shared
library (a fat binary for ``arch``, default sm_80 + sm_90 + PTX compute_90; ``-Xptxas -v``
figures are kept per kernel). :class:`CudaEmulated` compiles the same ``.cu`` as C++ with
``-DCODEGEN_CUDA_EMULATION``: every CUDA thread becomes a fiber and ``__syncthreads()`` a real
barrier, so ``predict`` runs the kernels on the CPU; no GPU, driver or CUDA toolkit is needed.

Both load as a :class:`CudaLibrary`. The device context is created on the first ``predict``, so
a library built here without a GPU still loads; running it then raises
:class:`CudaUnavailable` with CUDA's reason. Thread safety: the context (device buffers and a
stream) is shared, so calls on one library are serialized by a lock.

An int8 build (``calibration=``) loads the same way: ``predict`` takes and returns float32 (the
generated code quantizes and dequantizes on the device), :meth:`CudaLibrary.predict_int8` runs
the int8 API on quantized inputs, and the arena it reads back for per-layer checks is int8.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..compiler import BuildResult, CompileJob, compile_cached
from ..emit.common import make_context
from ..emit.cuda import DEFAULT_PRECISION, PRECISIONS
from ..emit.dialect import CUDA
from ..errors import BuildError, CodegenError
from ..library import Library, check_input
from .base import Target
from .host import Cffi
from .ptxas import KernelResources, parse_ptxas, resources_table

DEFAULT_ARCH = ("sm_80", "sm_90", "compute_90")
NVCC_FLAGS = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC,-Wall,-Wextra", "-Xptxas", "-v", "-shared"]
EMULATION_FLAGS = ["-std=c++17", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-DCODEGEN_CUDA_EMULATION"]
MAX_BATCH = 64            # images per device call of predict (the context is sized for the batch seen)


class CudaUnavailable(BuildError):
    """The CUDA library was built, but there is no usable GPU (or driver) to run it."""


# ------------------------------------------------------------------ compilers

def nvcc_path() -> str:
    return os.environ.get("NVCC") or "nvcc"


@functools.lru_cache(maxsize=None)
def nvcc_version(nvcc: str) -> str:
    """nvcc's full ``--version`` text (its first line does not name the release)."""
    exe = shutil.which(nvcc)
    if exe is None:
        raise BuildError(f"'{nvcc}' not found on PATH: the CUDA target needs the CUDA toolkit's nvcc "
                         "(or use emulate=True / --emulate to run the kernels on the CPU with g++)")
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"'{nvcc}' does not run: {exc}") from None


MIN_SM = {"tf32": 80, "bf16": 80, "fp16": 70}      # the first GPUs whose tensor cores take each input type


def check_precision(precision: str | None, arch=None) -> str:
    """The precision (:data:`codegen.emit.cuda.PRECISIONS`); the tensor-core ones need GPUs that
    have them (TF32 and bfloat16: sm_80 and newer)."""
    precision = precision or DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise CodegenError(f"CUDA precision {precision!r} is not valid; expected one of {', '.join(PRECISIONS)}")
    old = [a for a in arch_names(arch)
           if (m := re.fullmatch(r"(?:sm|compute)_(\d+)[a-z]?", str(a).strip())) and int(m.group(1)) < MIN_SM.get(
               precision, 0)]
    if old:
        raise CodegenError(f"precision {precision} needs tensor cores that take it (sm_{MIN_SM[precision]} or newer); "
                           f"{', '.join(old)} has none: build with precision='fp32' (--precision fp32) for it")
    return precision


def arch_names(arch) -> tuple:
    return tuple([arch] if isinstance(arch, str) else list(arch or DEFAULT_ARCH))


def arch_flags(arch) -> list[str]:
    """nvcc flags for ``arch``: names like 'sm_80' (machine code), 'compute_90' (PTX, JIT-compiled
    by newer GPUs' drivers) or 'native' (the GPU of this machine); a string or a list."""
    flags: list[str] = []
    for item in arch_names(arch):
        item = str(item).strip()
        m = re.fullmatch(r"(sm|compute)_(\d+[a-z]?)", item)
        if item == "native":
            flags.append("-arch=native")
        elif m and m.group(1) == "sm":
            flags += ["-gencode", f"arch=compute_{m.group(2)},code=sm_{m.group(2)}"]
        elif m:
            flags += ["-gencode", f"arch=compute_{m.group(2)},code=compute_{m.group(2)}"]
        else:
            raise CodegenError(f"CUDA architecture {item!r} is not valid; expected e.g. sm_80, sm_90, "
                               "compute_90 or native")
    return flags


def unity_files(prefixes: list[str]) -> dict[str, str]:
    """Two translation units that include every network's kernels and weights: compiling several
    networks at once then parses the headers (and, for nvcc, runs its tool chain) once, not once
    per network."""
    return {
        "unity.cu": "".join(f'#include "{p}.cu"\n' for p in prefixes),
        "unity_weights.c": "".join(f'#include "{p}_weights.c"\n' for p in prefixes),
    }


def _sources(files: dict[str, str], prefixes: list[str]) -> tuple[dict[str, str], list[str] | None]:
    """The files to compile and their sources: one network as it is, several through unity files."""
    if len(prefixes) == 1:
        return files, None
    return {**files, **unity_files(prefixes)}, ["unity.cu", "unity_weights.c"]


# ------------------------------------------------------------------ the targets

class Cuda(Target):
    """nvcc: a fat binary for ``arch`` (see :func:`arch_flags`); ``cc`` is nvcc's host compiler."""
    name = "cuda"
    dialect = "cuda"
    emulate = False

    def __init__(self, arch=None, cc: str | None = None, precision: str | None = None):
        self.arch, self.cc = arch, cc
        arch_flags(arch)                  # a bad name fails before any work
        self.precision = check_precision(precision, arch)

    def render_options(self) -> dict:
        return {"precision": self.precision}

    def compile(self, files: dict[str, str], prefixes: list[str]) -> BuildResult:
        files, sources = _sources(files, prefixes)
        flags = [*NVCC_FLAGS, *arch_flags(self.arch), *(["-ccbin", self.cc] if self.cc else [])]
        sources = sources or [f"{prefixes[0]}.cu", f"{prefixes[0]}_weights.c"]
        output = "libnets_cuda.so" if len(prefixes) > 1 else f"lib{prefixes[0]}_cuda.so"
        job = CompileJob(nvcc_path(), flags, sources, output, libs=[])
        return compile_cached(files, job, extra_key=nvcc_version(job.cc))

    def load(self, net, plan, files, out_dir, prefix, built) -> "CudaLibrary":
        return CudaLibrary(net, plan, files, out_dir, prefix, build=built, arch=arch_names(self.arch),
                           precision=self.precision)


class CudaEmulated(Target):
    """The CPU execution mode: the host C++ compiler (``cc``, default $CXX or g++) and cuda_emu.h;
    ``opt_flags`` are added to the compile flags."""
    name = "cuda-emulated"
    dialect = "cuda"
    emulate = True

    def __init__(self, cc: str | None = None, opt_flags: list[str] | None = None, precision: str | None = None):
        self.cc, self.opt_flags = cc, opt_flags
        self.precision = check_precision(precision)

    def render_options(self) -> dict:
        return {"precision": self.precision}

    def compile(self, files: dict[str, str], prefixes: list[str]) -> BuildResult:
        files, sources = _sources(files, prefixes)
        cxx = self.cc or os.environ.get("CXX") or "g++"
        # every .cu first: g++ stops applying '-x c++' after a file with a known suffix such as .c
        # (the weights files, which g++ compiles as C++ anyway)
        sources = sources or [f"{prefixes[0]}.cu", f"{prefixes[0]}_weights.c"]
        output = "libnets_emu.so" if len(prefixes) > 1 else f"lib{prefixes[0]}_emu.so"
        job = CompileJob(cxx, [*EMULATION_FLAGS, *(self.opt_flags or []), "-x", "c++"], sources, output, libs=[])
        return compile_cached(files, job, extra_key="emulate")

    def load(self, net, plan, files, out_dir, prefix, built) -> "CudaLibrary":
        return CudaLibrary(net, plan, files, out_dir, prefix, build=built, emulate=True, precision=self.precision)


# ------------------------------------------------------------------ the loaded library

def kernel_names(lib: "CudaLibrary") -> list[str]:
    """The kernel of each planned op, in plan order (as the emitter names them)."""
    return [v.fn for v in make_context(lib.plan, lib.net, CUDA, {}).ops]


@dataclass(eq=False)
class CudaLibrary(Library):
    """A loaded CUDA library of a generated network (a GPU build, or the CPU execution mode)."""
    build: BuildResult = None
    emulate: bool = False
    arch: tuple = ()
    poison: float | None = None                       # fill the arena with this before each call (tests;
                                                      # int8 builds: every byte int(poison), NaN 127)
    kernels: list[KernelResources] = field(default_factory=list)     # what ptxas said (GPU builds)
    max_batch: int = MAX_BATCH
    precision: str = "fp32"                           # 'tf32', 'fp16', 'bf16': convolutions and FC on the tensor cores
    tensor_core_ops: int = 0                          # how many ops run on them (<NAME>_TENSOR_CORE_OPS)
    _api: Cffi = field(default=None, repr=False)
    _ctx: object = field(default=None, repr=False)
    _ctx_batch: int = field(default=0, repr=False)

    target = "cuda"

    def __post_init__(self):
        self._api = Cffi(self.files[f"{self.prefix}.h"], self.build.library)
        self._lock = threading.Lock()
        self.num_ops = self._api.value(f"{self.prefix.upper()}_NUM_OPS")
        if not self.int8:
            self.tensor_core_ops = self._api.value(f"{self.prefix.upper()}_TENSOR_CORE_OPS")
        if not self.emulate:
            extra = ("quantize", "dequantize", "fill")          # int8 builds have the first two, float the last
            order = {**{f"{self.prefix}_{k}": i - 3 for i, k in enumerate(extra)},
                     **{fn: i for i, fn in enumerate(kernel_names(self))}}
            kernels = [k for k in parse_ptxas(self.build.log) if k.kernel in order]
            self.kernels = sorted(kernels, key=lambda k: (k.arch, order[k.kernel]))

    @property
    def library(self) -> Path:
        return self.build.library

    @property
    def int8(self) -> bool:
        return self.plan.dtype == "int8"

    @property
    def cached(self) -> bool:
        return self.build.cached

    def _fn(self, name: str):
        return self._api.value(f"{self.prefix}_cuda_{name}")

    def _message(self, ctx=None) -> str:
        ffi = self._api.ffi
        text = self._fn("error")(ffi.NULL if ctx is None else ctx)
        return ffi.string(text).decode(errors="replace") if text != ffi.NULL else ""

    def device_count(self) -> tuple[int, str]:
        """(number of CUDA devices, CUDA's message when there is none usable)."""
        n = self._api.ffi.new("int *")
        status = self._fn("device_count")(n)
        return (int(n[0]), "") if status == 0 else (0, self._message())

    def _context(self, batch: int):
        """The device context, (re)made for batches of at least ``batch`` images (under the lock)."""
        if self._ctx is not None and self._ctx_batch >= batch:
            return self._ctx
        self._ctx = None                                   # frees the old one (cffi gc)
        pp = self._api.ffi.new(f"{self.prefix}_cuda **")
        status = self._fn("init")(pp, batch)
        if status != 0:
            count, reason = self.device_count()
            what = self._message()
            if count == 0:
                raise CudaUnavailable(f"{self.prefix}_cuda_init: no usable CUDA device ({reason or what})")
            raise BuildError(f"{self.prefix}_cuda_init returned error {status}: {what}")
        self._ctx = self._api.ffi.gc(pp[0], self._fn("free"))
        self._ctx_batch = batch
        return self._ctx

    def _check(self, status: int, call: str, ctx):
        if status != 0:
            raise BuildError(f"{self.prefix}_cuda_{call} returned error {status}: {self._message(ctx)}")

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], self.out_floats), np.float32)
        step = max(1, min(self.max_batch, x.shape[0]))
        with self._lock:
            for i in range(0, x.shape[0], step):
                self._run_batch(x[i: i + step], out[i: i + step])
        return out

    def _run_batch(self, x: np.ndarray, out: np.ndarray):
        ffi = self._api.ffi
        ctx = self._context(max(x.shape[0], self._ctx_batch))
        if self.poison is not None:
            self._check(self._fn("fill_arena")(ctx, self._poison_value()), "fill_arena", ctx)
        # float API (float input and output), or an int8 build's int8 API (int8 arrays)
        call, ctype = ("predict_int8", "int8_t") if x.dtype == np.int8 else ("predict", "float")
        status = self._fn(call)(ctx, ffi.cast(f"const {ctype} *", x.ctypes.data),
                                ffi.cast(f"{ctype} *", out.ctypes.data), x.shape[0])
        self._check(status, call, ctx)

    def _poison_value(self):
        if not self.int8:
            return float(self.poison)
        return int(self.poison) if np.isfinite(self.poison) else 127

    def predict_int8(self, q) -> np.ndarray:
        """An int8 build's int8 API: quantized inputs (N, H, W, C) int8 -> the quantized outputs, (N,
        out_floats) int8 (every output back to back)."""
        if not self.int8:
            raise CodegenError(f"{self.prefix} is a float32 build: predict_int8 needs a calibrated (int8) build")
        q = np.ascontiguousarray(q, np.int8).reshape(-1, *self.in_shape)
        out = np.empty((q.shape[0], self.out_floats), np.int8)
        step = max(1, min(self.max_batch, q.shape[0]))
        with self._lock:
            for i in range(0, q.shape[0], step):
                self._run_batch(q[i: i + step], out[i: i + step])
        return out

    def run_single_with_workspace(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(output, a copy of the device arena after the run) for one image (per-layer debugging); for an
        int8 build, the int8 output and arena of the int8 API run on the quantized image."""
        xb = check_input(x, self.in_shape, finite=False)[0]
        if self.int8:
            xb = self.plan.quant.input.quantize(xb[:1])
        dtype = np.int8 if self.int8 else np.float32
        out = np.empty((1, self.out_floats), dtype)
        ws = np.zeros(max(self.arena_bytes // dtype().itemsize, 1), dtype)
        with self._lock:
            self._run_batch(xb[:1], out)
            ctx = self._ctx
            self._check(self._fn("read_arena")(ctx, 0, self._api.ffi.cast(f"{'int8_t' if self.int8 else 'float'} *",
                                                                          ws.ctypes.data)), "read_arena", ctx)
        return out[0], ws

    def time_ops(self, batch: int = 1, reps: int = 20) -> tuple[list[tuple[str, float]], float]:
        """([(op name, ms per launch)], ms per whole network) for a batch, on the inputs of the last
        ``predict`` (run one first)."""
        ffi = self._api.ffi
        with self._lock:
            ctx = self._context(batch)
            ms = ffi.new("float[]", self.num_ops + 1)
            self._check(self._fn("time_ops")(ctx, batch, reps, ms), "time_ops", ctx)
        names = [ffi.string(self._fn("op_name")(i)).decode() for i in range(self.num_ops)]
        return [(names[i], float(ms[i])) for i in range(self.num_ops)], float(ms[self.num_ops])

    def verifiable(self, echo) -> tuple["CudaLibrary", bool]:
        """This library if it can run here; for a GPU build on a machine without a usable GPU, the
        same kernels built for the CPU execution mode (said on echo)."""
        if self.emulate:
            return self, True
        count, reason = self.device_count()
        if count > 0:
            return self, False
        echo(f"no usable CUDA device here ({reason}); verifying the same kernels in the CPU execution mode "
             "(--emulate)")
        emulated = CudaEmulated(precision=self.precision)
        return emulated.load(self.net, self.plan, self.files, None, self.prefix,
                             emulated.compile(self.files, [self.prefix])), True

    def spill_warnings(self) -> list[str]:
        return [f"warning: kernel {k.kernel} ({k.arch}) spills registers: {k.spill_stores} bytes stored, "
                f"{k.spill_loads} bytes loaded per thread" for k in self.kernels if k.spills]

    def report_facts(self) -> dict:
        return dict(super().report_facts(), compiler=" ".join(self.build.command),
                    device="CPU execution mode (cuda_emu.h)" if self.emulate else ", ".join(self.arch))

    def build_report(self, verbose: bool = False) -> list[str]:
        """Per-kernel registers, shared memory and spills (nvcc), or what the CPU execution mode is."""
        lines = []
        if verbose:
            lines.append(f"compile: {' '.join(self.build.command)}" + (" (cached)" if self.cached else ""))
        if self.emulate:
            lines.append(f"CUDA kernels compiled for CPU execution ({self.build.command[0]} + cuda_emu.h): "
                         f"{self.num_ops} kernels, every thread a fiber, __syncthreads() a real barrier")
            lines.append(self.precision_line())
            return lines
        lines.append(f"CUDA kernels for {', '.join(self.arch)} (ptxas -v):")
        lines.append(resources_table(self.kernels))
        return lines + [self.precision_line()] + self.spill_warnings()

    def precision_line(self) -> str:
        if self.int8:
            return "precision: int8"
        if self.precision == "fp32":
            return "precision fp32: every op in strict float32 on the CUDA cores"
        return (f"precision {self.precision}: {self.tensor_core_ops} of {self.num_ops} ops on the tensor cores "
                f"({self.precision} inputs, float32 accumulation; --precision fp32 for strict float32)")

    def describe(self) -> str:
        mode = "cuda, emulated on the CPU" if self.emulate else f"cuda, {' '.join(self.arch)}"
        return f"{self.prefix} ({mode}) from {self.library}"
