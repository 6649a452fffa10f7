"""Building and loading the CUDA output: nvcc for GPUs, or the host C++ compiler for the CPU
execution mode (the same kernels run by ``runtime/cuda_emu.h``).

``codegen.build(net, target="cuda")`` renders the files (:mod:`codegen.emit.cuda`), compiles
them with nvcc into a shared library (a fat binary for ``arch``, default sm_80 + sm_90 + PTX
compute_90; ``-Xptxas -v`` figures are kept per kernel), and loads it with cffi. With
``emulate=True`` the same ``.cu`` is compiled as C++ by g++ with ``-DCODEGEN_CUDA_EMULATION``:
every CUDA thread becomes a fiber and ``__syncthreads()`` a real barrier, so ``predict`` runs
the kernels on the CPU; no GPU, driver or CUDA toolkit is needed.

Both give a :class:`CudaNetwork`, which behaves like the C backend's ``CompiledNetwork``
(``predict``, ``run_single_with_workspace``, ``plan``, ``files``, ``build``, ...). The device
context is created on the first ``predict``, so a library built here without a GPU still
loads; running it then raises :class:`CudaUnavailable` with CUDA's reason.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np

from .compiler import CompileJob, compile_cached
from .emit import render_files
from .emit.names import c_identifier
from .errors import BuildError, CodegenError
from .load import CompiledNetwork, default_out_dir
from .network import Network
from .output import write_folder
from .plan import Plan, make_plan

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


def arch_flags(arch) -> list[str]:
    """nvcc flags for ``arch``: names like 'sm_80' (machine code), 'compute_90' (PTX, JIT-compiled
    by newer GPUs' drivers) or 'native' (the GPU of this machine); a string or a list."""
    items = [arch] if isinstance(arch, str) else list(arch or DEFAULT_ARCH)
    flags: list[str] = []
    for item in items:
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


def nvcc_job(prefixes: list[str], arch=None, cc: str | None = None, sources: list[str] | None = None) -> CompileJob:
    flags = [*NVCC_FLAGS, *arch_flags(arch), *(["-ccbin", cc] if cc else [])]
    sources = sources or [name for p in prefixes for name in (f"{p}.cu", f"{p}_weights.c")]
    return CompileJob(nvcc_path(), flags, sources, f"lib{prefixes[0]}_cuda.so", libs=[])


def emulation_job(prefixes: list[str], cc: str | None = None, opt_flags: list[str] | None = None,
                  sources: list[str] | None = None) -> CompileJob:
    cxx = cc or os.environ.get("CXX") or "g++"
    # every .cu first: g++ stops applying '-x c++' after a file with a known suffix such as .c
    # (the weights files, which g++ compiles as C++ anyway)
    sources = sources or [f"{p}.cu" for p in prefixes] + [f"{p}_weights.c" for p in prefixes]
    flags = [*EMULATION_FLAGS, *(opt_flags or []), "-x", "c++"]
    return CompileJob(cxx, flags, sources, f"lib{prefixes[0]}_emu.so", libs=[])


def unity_files(prefixes: list[str]) -> dict[str, str]:
    """Two translation units that include every network's kernels and weights: compiling several
    networks at once then parses the headers (and, for nvcc, runs its tool chain) once, not once
    per network."""
    return {
        "unity.cu": "".join(f'#include "{p}.cu"\n' for p in prefixes),
        "unity_weights.c": "".join(f'#include "{p}_weights.c"\n' for p in prefixes),
    }


# ------------------------------------------------------------------ ptxas figures

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


# ------------------------------------------------------------------ the loaded library

@dataclass
class CudaNetwork(CompiledNetwork):
    """A loaded CUDA library of a generated network (a GPU build, or the CPU execution mode)."""
    emulate: bool = False
    arch: tuple = ()
    kernels: list = field(default_factory=list)      # KernelResources (GPU builds)
    max_batch: int = MAX_BATCH
    options: dict = field(default_factory=dict)       # the rendering options (for a rebuild)
    _ctx: object = field(default=None, repr=False)
    _ctx_batch: int = field(default=0, repr=False)

    def __post_init__(self):
        self._open()
        m = self.prefix.upper()
        self.num_ops = getattr(self._lib, f"{m}_NUM_OPS")
        if not self.emulate:
            order = {f"{self.prefix}_fill": -1, **{fn: i for i, fn in enumerate(kernel_names(self))}}
            kernels = [k for k in parse_ptxas(self.build.log) if k.kernel in order]
            self.kernels = sorted(kernels, key=lambda k: (k.arch, order[k.kernel]))

    def _fn(self, name: str):
        return getattr(self._lib, f"{self.prefix}_cuda_{name}")

    def _message(self, ctx=None) -> str:
        text = self._fn("error")(self._ffi.NULL if ctx is None else ctx)
        return self._ffi.string(text).decode(errors="replace") if text != self._ffi.NULL else ""

    def device_count(self) -> tuple[int, str]:
        """(number of CUDA devices, CUDA's message when there is none usable)."""
        n = self._ffi.new("int *")
        status = self._fn("device_count")(n)
        return (int(n[0]), "") if status == 0 else (0, self._message())

    def _context(self, batch: int):
        """The device context, (re)made for batches of at least ``batch`` images."""
        if self._ctx is not None and self._ctx_batch >= batch:
            return self._ctx
        self._ctx = None                                   # frees the old one (cffi gc)
        pp = self._ffi.new(f"{self.prefix}_cuda **")
        status = self._fn("init")(pp, batch)
        if status != 0:
            count, reason = self.device_count()
            what = self._message()
            if count == 0:
                raise CudaUnavailable(f"{self.prefix}_cuda_init: no usable CUDA device ({reason or what})")
            raise BuildError(f"{self.prefix}_cuda_init returned error {status}: {what}")
        self._ctx = self._ffi.gc(pp[0], self._fn("free"))
        self._ctx_batch = batch
        return self._ctx

    def _check(self, status: int, call: str, ctx):
        if status != 0:
            raise BuildError(f"{self.prefix}_cuda_{call} returned error {status}: {self._message(ctx)}")

    def predict(self, x) -> np.ndarray:
        """Run the compiled network on ``x``, (H, W, C) or (N, H, W, C); returns float32 outputs."""
        x, single = self._check_input(x)
        if not np.all(np.isfinite(x)):
            from .errors import InputError
            raise InputError("predict: input contains NaN or Inf")
        out = np.empty((x.shape[0], *self.out_shape), np.float32)
        step = max(1, min(self.max_batch, x.shape[0]))
        for i in range(0, x.shape[0], step):
            xb, ob = x[i: i + step], out[i: i + step]
            self._run(xb, ob)
        return out[0] if single else out

    def _run(self, x: np.ndarray, out: np.ndarray):
        ffi = self._ffi
        ctx = self._context(max(x.shape[0], self._ctx_batch))
        if self.poison is not None:
            self._check(self._fn("fill_arena")(ctx, float(self.poison)), "fill_arena", ctx)
        status = self._fn("predict")(ctx, ffi.cast("const float *", x.ctypes.data), ffi.cast("float *", out.ctypes.data),
                                     x.shape[0])
        self._check(status, "predict", ctx)

    def run_single_with_workspace(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(output, a copy of the device arena after the run) for one image (per-layer debugging)."""
        xb, _ = self._check_input(x)
        out = np.empty((1, *self.out_shape), np.float32)
        self._run(xb[:1], out)
        ws = np.zeros(max(self.arena_bytes // 4, 1), np.float32)
        ctx = self._ctx
        self._check(self._fn("read_arena")(ctx, 0, self._ffi.cast("float *", ws.ctypes.data)), "read_arena", ctx)
        return out[0], ws

    def time_ops(self, batch: int = 1, reps: int = 20) -> tuple[list[tuple[str, float]], float]:
        """([(op name, ms per launch)], ms per whole network) for a batch, on the inputs of the last
        ``predict`` (run one first)."""
        ctx = self._context(batch)
        ms = self._ffi.new("float[]", self.num_ops + 1)
        self._check(self._fn("time_ops")(ctx, batch, reps, ms), "time_ops", ctx)
        names = [self._ffi.string(self._fn("op_name")(i)).decode() for i in range(self.num_ops)]
        return [(names[i], float(ms[i])) for i in range(self.num_ops)], float(ms[self.num_ops])

    def verifiable(self, echo) -> tuple["CudaNetwork", bool]:
        """(a library that can run here, whether it is the CPU execution mode): this one, or, for a
        GPU build on a machine without a usable GPU, the same kernels built for the CPU (said on echo)."""
        if self.emulate:
            return self, True
        count, reason = self.device_count()
        if count > 0:
            return self, False
        echo(f"no usable CUDA device here ({reason}); verifying the same kernels in the CPU execution mode "
             "(--emulate)")
        return build_cuda(self.net, self.plan, None, self.options, emulate=True, write=False), True

    def spill_warnings(self) -> list[str]:
        return [f"warning: kernel {k.kernel} ({k.arch}) spills registers: {k.spill_stores} bytes stored, "
                f"{k.spill_loads} bytes loaded per thread" for k in self.kernels if k.spills]

    def report_build(self, echo, verbose: bool = False) -> None:
        """Print what the build made: per-kernel registers, shared memory and spills (nvcc)."""
        if self.emulate:
            echo(f"CUDA kernels compiled for CPU execution ({self.build.command[0]} + cuda_emu.h): "
                 f"{self.num_ops} kernels, every thread a fiber, __syncthreads() a real barrier")
            return
        echo(f"CUDA kernels for {', '.join(self.arch)} (ptxas -v):")
        echo(resources_table(self.kernels))
        for line in self.spill_warnings():
            echo(line)

    def describe(self) -> str:
        mode = "cuda, emulated on the CPU" if self.emulate else f"cuda, {' '.join(self.arch)}"
        return f"{self.prefix} ({mode}) from {self.library}"


def kernel_names(lib: CudaNetwork) -> list[str]:
    """The kernel of each planned op, in plan order (as the emitter names them)."""
    from .emit.common import make_context
    from .emit.dialect import CUDA
    return [v.fn for v in make_context(lib.plan, lib.net, CUDA, {}).ops]


# ------------------------------------------------------------------ build

def _arch_names(arch) -> tuple:
    return tuple([arch] if isinstance(arch, str) else list(arch or DEFAULT_ARCH))


def _job(prefixes: list[str], emulate: bool, arch, cc, opt_flags=None, sources=None) -> tuple[CompileJob, str]:
    """The compile job and the part of the cache key that names the compiler release."""
    if emulate:
        return emulation_job(prefixes, cc, opt_flags, sources), "emulate"
    job = nvcc_job(prefixes, arch, cc, sources)
    return job, nvcc_version(job.cc)


def build_cuda(net: Network, plan: Plan, out_dir, options: dict, *, emulate: bool = False, arch=None,
               cc: str | None = None, write: bool = True) -> CudaNetwork:
    """Render, write (to ``out_dir``, default ./codegen_out/<name>/), compile and load ``net`` for CUDA.

    ``emulate``: compile for the CPU execution mode (g++ or ``cc``) instead of with nvcc;
    ``arch``: nvcc targets (see :func:`arch_flags`); ``cc``: the host compiler."""
    files = render_files(net, plan, "cuda", options)
    prefix = c_identifier(net.name, "net").lower()
    folder = None
    if write:
        folder = write_folder(out_dir if out_dir is not None else default_out_dir(net), files)
    job, identity = _job([prefix], emulate, arch, cc)
    result = compile_cached(files, job, extra_key=identity)
    return CudaNetwork(net, plan, "cuda", files, folder, result, prefix, emulate=emulate,
                       arch=() if emulate else _arch_names(arch), options=dict(options))


def build_many_cuda(nets: list[Network], *, emulate: bool = True, arch=None, cc: str | None = None,
                    opt_flags: list[str] | None = None, reuse: bool = True, poison_dead: bool = False,
                    **target_options) -> list[CudaNetwork]:
    """Generate CUDA for several networks (distinct names) and compile them into ONE shared library
    (one compiler run: how the tests check hundreds of random networks). Nothing is written to an
    output folder."""
    prefixes = [c_identifier(n.name, "net").lower() for n in nets]
    if len(set(prefixes)) != len(prefixes):
        raise CodegenError("build_many_cuda needs networks with distinct names")
    all_files: dict[str, str] = {}
    per_net = []
    options = dict(poison_dead=poison_dead, **target_options)
    for net, prefix in zip(nets, prefixes):
        plan = make_plan(net, reuse=reuse)
        files = render_files(net, plan, "cuda", options)
        all_files.update({k: files[k] for k in (f"{prefix}.h", f"{prefix}.cu", f"{prefix}_weights.c", "cuda_emu.h")})
        per_net.append((net, plan, files, prefix))
    all_files.update(unity_files(prefixes))
    job, identity = _job(prefixes, emulate, arch, cc, opt_flags, ["unity.cu", "unity_weights.c"])
    job.output = "libnets_emu.so" if emulate else "libnets_cuda.so"
    result = compile_cached(all_files, job, extra_key=identity)
    return [CudaNetwork(net, plan, "cuda", files, None, result, prefix, emulate=emulate,
                        arch=() if emulate else _arch_names(arch), options=dict(options))
            for net, plan, files, prefix in per_net]
