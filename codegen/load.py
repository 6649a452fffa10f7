"""Generate, compile and load a network: ``lib = codegen.build(net)``, then ``lib.predict(x)``.

The generated header is the contract: its API block (between the ``codegen-api-begin`` and
``codegen-api-end`` comments) is handed to ``cffi.cdef`` as it is, so the Python side and C
callers see the same sizes and functions. ``predict`` checks dtype, shape and contiguity and
never passes a wrong-sized buffer to C.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import cffi
import numpy as np

from .compiler import BuildResult, compile_cached, host_c_job
from .emit import render_files
from .errors import BuildError, CodegenError, InputError, UnsupportedError
from .network import Network
from .output import write_folder
from .plan import Plan, make_plan


def api_block(header: str) -> str:
    m = re.search(r"codegen-api-begin[^\n]*\n(.*?)/\* codegen-api-end", header, re.S)
    if not m:
        raise BuildError("the generated header has no codegen-api block")
    return m.group(1)


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    """A uint8 array of ``nbytes`` whose data pointer is ``align``-byte aligned."""
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start: start + nbytes]


@dataclass
class CompiledNetwork:
    """A loaded library of a generated network."""
    net: Network
    plan: Plan
    target: str
    files: dict[str, str]
    out_dir: Path | None
    build: BuildResult
    prefix: str
    poison: float | None = None          # fill the workspace with this before each call (tests)
    _ffi: object = field(default=None, repr=False)
    _lib: object = field(default=None, repr=False)

    def __post_init__(self):
        self._open()
        self.workspace = aligned_empty(max(self.arena_bytes, 64))
        self._predict_ws = getattr(self._lib, f"{self.prefix}_predict_ws")

    def _open(self):
        """Load the library through the API block of its header; read the sizes it declares."""
        self._ffi = cffi.FFI()
        self._ffi.cdef(api_block(self.files[f"{self.prefix}.h"]))
        self._lib = self._ffi.dlopen(str(self.build.library))
        m = self.prefix.upper()
        self.in_shape = tuple(getattr(self._lib, f"{m}_IN_{d}") for d in "HWC")
        self.out_shape = tuple(getattr(self._lib, f"{m}_OUT_{d}") for d in "HWC")
        self.arena_bytes = getattr(self._lib, f"{m}_ARENA_BYTES")

    @property
    def library(self) -> Path:
        return self.build.library

    @property
    def cached(self) -> bool:
        return self.build.cached

    def _check_input(self, x) -> tuple[np.ndarray, bool]:
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise InputError(f"predict: input is not an array of numbers ({exc})") from None
        if x.dtype.kind not in "fiu":
            raise InputError(f"predict: input has dtype {x.dtype}; expected float32 (or a real type to convert)")
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise InputError(f"predict: input has shape {tuple(np.shape(x if not single else x[0]))}; expected "
                             f"(H, W, C) = {self.in_shape} or (N, H, W, C) with that H, W, C")
        return np.ascontiguousarray(x, dtype=np.float32), single

    def predict(self, x) -> np.ndarray:
        """Run the compiled network on ``x``, (H, W, C) or (N, H, W, C); returns float32 outputs."""
        x, single = self._check_input(x)
        if not np.all(np.isfinite(x)):
            raise InputError("predict: input contains NaN or Inf")
        out = np.empty((x.shape[0], *self.out_shape), np.float32)
        ffi = self._ffi
        for i in range(x.shape[0]):
            self._call(ffi.cast("const float *", x[i].ctypes.data), ffi.cast("float *", out[i].ctypes.data))
        return out[0] if single else out

    def _call(self, in_ptr, out_ptr):
        if self.poison is not None:
            self.workspace.view(np.float32)[:] = self.poison
        status = self._predict_ws(in_ptr, out_ptr, self._ffi.cast("void *", self.workspace.ctypes.data))
        if status != 0:
            raise BuildError(f"{self.prefix}_predict_ws returned error {status}")

    def run_single_with_workspace(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(output, a copy of the workspace after the run) for one image (per-layer debugging)."""
        xb, _ = self._check_input(x)
        out = np.empty(self.out_shape, np.float32)
        self._call(self._ffi.cast("const float *", xb[0].ctypes.data), self._ffi.cast("float *", out.ctypes.data))
        return out, self.workspace.view(np.float32).copy()

    def describe(self) -> str:
        return f"{self.prefix} ({self.target}) from {self.library}"


def default_out_dir(net: Network) -> Path:
    from .emit.names import c_identifier
    return Path.cwd() / "codegen_out" / c_identifier(net.name, "net").lower()


def build(net: Network, target: str = "c", out_dir=None, *, reuse: bool = True, poison_dead: bool = False,
          cc: str | None = None, opt_flags: list[str] | None = None, extra_flags: list[str] | None = None,
          weights_section: str | None = None, source: str = "", emulate: bool = False, arch=None,
          write: bool = True, **target_options) -> CompiledNetwork:
    """Generate code for ``net``, write it to ``out_dir`` (default ``./codegen_out/<name>/``),
    compile it for the host and load it.

    - ``reuse=False``: no buffer reuse (every op's output survives: per-layer debugging);
    - ``poison_dead``: the generated code fills each dead buffer with NaN (memory-plan tests);
    - ``cc``/``opt_flags``/``extra_flags``: the host compiler and its flags (``opt_flags`` default:
      ``-O3 -march=native``, see :func:`codegen.compiler.host_opt_flags`);
    - ``openmp=True``: compile with -fopenmp, so large layers share their tiles between threads;
    - ``weights_section``: put the weights in that linker section;
    - ``target='cuda'``: see :mod:`codegen.cuda_build` (``emulate``, ``arch``).
    """
    if not isinstance(net, Network):
        raise CodegenError(f"build expects a codegen.Network, got {type(net).__name__}")
    if weights_section is not None and not re.fullmatch(r"\.?[A-Za-z_][A-Za-z0-9_.]*", weights_section):
        raise CodegenError(f"weights section {weights_section!r} is not a valid section name "
                           "(letters, digits, '_' and '.')")
    plan = make_plan(net, reuse=reuse)
    options = dict(poison_dead=poison_dead, weights_section=weights_section, source=source, **target_options)
    if target == "cuda":
        from .cuda_build import build_cuda
        return build_cuda(net, plan, out_dir, options, emulate=emulate, arch=arch, cc=cc, write=write)
    if target != "c":
        raise UnsupportedError(f"unknown target {target!r}; expected 'c' or 'cuda'")
    files = render_files(net, plan, "c", options)
    from .emit.names import c_identifier
    prefix = c_identifier(net.name, "net").lower()
    folder = None
    if write:
        folder = write_folder(out_dir if out_dir is not None else default_out_dir(net), files)
    job = host_c_job(prefix, cc, opt_flags, extra_flags, openmp=bool(target_options.get("openmp")))
    result = compile_cached(files, job)
    return CompiledNetwork(net, plan, "c", files, folder, result, prefix)


def build_many(nets: list[Network], *, reuse: bool = True, poison_dead: bool = False, cc: str | None = None,
               opt_flags: list[str] | None = None, extra_flags: list[str] | None = None,
               **target_options) -> list[CompiledNetwork]:
    """Generate C for several networks (distinct names) and compile them into ONE shared library.

    One compiler run instead of one per network: this is how the test suite checks hundreds of
    random networks quickly. Nothing is written to an output folder."""
    from .emit.names import c_identifier
    prefixes = [c_identifier(n.name, "net").lower() for n in nets]
    if len(set(prefixes)) != len(prefixes):
        raise CodegenError("build_many needs networks with distinct names")
    all_files: dict[str, str] = {}
    per_net = []
    for net, prefix in zip(nets, prefixes):
        plan = make_plan(net, reuse=reuse)
        files = render_files(net, plan, "c", dict(poison_dead=poison_dead, **target_options))
        all_files.update({k: files[k] for k in (f"{prefix}.h", f"{prefix}.c", f"{prefix}_weights.c")})
        per_net.append((net, plan, files, prefix))
    job = host_c_job(prefixes[0], cc, opt_flags, extra_flags, openmp=bool(target_options.get("openmp")))
    job.sources = [name for p in prefixes for name in (f"{p}.c", f"{p}_weights.c")]
    job.output = "libnets.so"
    result = compile_cached(all_files, job)
    return [CompiledNetwork(net, plan, "c", files, None, result, prefix) for net, plan, files, prefix in per_net]


def command_line(result: BuildResult) -> str:
    return shlex.join(result.command)
