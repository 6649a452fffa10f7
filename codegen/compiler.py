"""Compiling generated sources into a shared library, with a content-keyed cache.

The cache key covers the source text, the compiler (its path and ``--version``), the flags
and the target, so a change to any of them rebuilds and nothing else does. Libraries are
compiled in a temporary folder and moved into the cache atomically, so concurrent builds
of the same network are safe. Each entry is sealed with the SHA-256 of what it built
(``sealed.sha256``); an entry that no longer matches its seal (a truncated or edited file) is
set aside and rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError

C_WARNINGS = ["-Wall", "-Wextra", "-pedantic"]


def cache_root() -> Path:
    return Path(os.environ.get("CODEGEN_CACHE") or Path.home() / ".cache" / "codegen")


@functools.lru_cache(maxsize=None)
def compiler_identity(cc: str) -> str:
    """'<resolved path>: <first line of --version>'; BuildError if the compiler is missing."""
    exe = shlex.split(cc)[0]
    path = shutil.which(exe)
    if path is None:
        raise BuildError(f"compiler '{exe}' not found on PATH; install it (e.g. apt-get install gcc) or set CC")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"compiler '{exe}' does not run: {exc}") from None
    return f"{path}: {(out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else '?'}"


SEAL = "sealed.sha256"


def run_tool(argv: list[str], cwd=None, timeout: float | None = None, env=None) -> subprocess.CompletedProcess:
    """``subprocess.run`` for compilers, linkers and emulators, in a process group of their own: when
    the call ends early (a timeout, Ctrl-C, SIGTERM, any exception) the whole group is killed, so
    no compiler pass (gcc's cc1, nvcc's children) keeps running after codegen stopped."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def data_of(content: str | bytes) -> bytes:
    """A generated file's bytes: text (UTF-8) or binary (a weights blob)."""
    return content if isinstance(content, bytes) else content.encode()


def write_file(path: Path, content: str | bytes) -> None:
    path.write_bytes(data_of(content))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seal(folder: Path, names) -> None:
    """Record the SHA-256 of each built file ``names`` in ``folder``."""
    (folder / SEAL).write_text("".join(f"{_digest(folder / n)}  {n}\n" for n in names))


def sealed(folder: Path, names) -> bool:
    """Whether ``folder`` holds ``names``, each matching its seal. A cache entry that does not is moved
    aside (deleted), so the caller rebuilds it."""
    if not folder.is_dir():
        return False
    try:
        want = dict(reversed(line.split("  ", 1)) for line in (folder / SEAL).read_text().splitlines())
        if all(n in want and _digest(folder / n) == want[n] for n in names):
            return True
    except (OSError, ValueError):
        pass
    try:                                   # a damaged entry: out of the way, atomically
        graveyard = Path(tempfile.mkdtemp(prefix=".broken-", dir=folder.parent))
        os.rename(folder, graveyard / "entry")
        shutil.rmtree(graveyard, ignore_errors=True)
    except OSError:
        pass
    return False


def new_work_folder(folder: Path) -> Path:
    """A fresh temporary folder beside the cache entry ``folder``, renamed into place when complete."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{folder.name[:12]}.", dir=folder.parent))
    except OSError as exc:
        raise BuildError(f"cannot create the build cache under '{cache_root()}': {exc.strerror}; "
                         "set CODEGEN_CACHE to a writable folder") from None


@dataclass
class CompileJob:
    """One compiler invocation that turns the sources of ``files`` into ``output``."""
    cc: str
    flags: list[str]
    sources: list[str]                    # names in ``files`` to compile
    output: str                           # library file name
    libs: list[str] = field(default_factory=lambda: ["-lm"])

    def command(self, folder: Path, out_path: Path) -> list[str]:
        return [*shlex.split(self.cc), *self.flags, *[str(folder / s) for s in self.sources], "-o", str(out_path),
                *self.libs]


def cache_key(files: dict[str, str], job: CompileJob, extra: str = "") -> str:
    h = hashlib.sha256()
    for part in [compiler_identity(job.cc), " ".join(job.flags), " ".join(job.libs), job.output, extra]:
        h.update(part.encode())
        h.update(b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + data_of(files[name]) + b"\0")
    return h.hexdigest()


@dataclass
class BuildResult:
    library: Path
    cached: bool
    command: list[str]
    log: str = ""


def compile_cached(files: dict[str, str], job: CompileJob, extra_key: str = "", timeout: int = 900) -> BuildResult:
    """Compile ``files`` with ``job``, reusing a cached library built from identical input."""
    key = cache_key(files, job, extra_key)
    folder = cache_root() / key[:2] / key
    lib = folder / job.output
    if sealed(folder, [job.output]):
        log = (folder / "build.log").read_text() if (folder / "build.log").exists() else ""
        return BuildResult(lib, True, job.command(folder, lib), log)
    work = new_work_folder(folder)
    try:
        for name, content in files.items():
            write_file(work / name, content)
        out_path = work / job.output
        cmd = job.command(work, out_path)
        try:
            proc = run_tool(cmd, cwd=work, timeout=timeout)
        except FileNotFoundError:
            raise BuildError(f"compiler '{job.cc}' not found; install it or set CC") from None
        except subprocess.TimeoutExpired:
            raise BuildError(f"the compiler ran longer than {timeout} s: {shlex.join(cmd)}") from None
        log = (proc.stdout + proc.stderr).replace(str(work) + "/", "")
        if proc.returncode != 0:
            raise BuildError(f"compiling failed ({shlex.join(cmd)}):\n{log.strip()}")
        (work / "build.log").write_text(log)
        seal(work, [job.output])
        try:
            os.rename(work, folder)
        except OSError:            # another process built it first: theirs is identical
            shutil.rmtree(work, ignore_errors=True)
        return BuildResult(folder / job.output, False, job.command(folder, folder / job.output), log)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def host_opt_flags() -> list[str]:
    """Optimization flags of a host build: -O3 for this machine's instruction set, so the generated
    kernels take their AVX-512 / AVX2 / NEON paths; -ffp-contract=fast lets the compiler fuse the
    portable kernels' multiply-adds (GCC keeps them apart in its ISO C modes). gcc's -march=native
    may prefer 256-bit vectors even where the CPU has AVX-512; -mprefer-vector-width=512 lets the
    portable loops use them too."""
    flags = ["-O3", "-march=native", "-ffp-contract=fast"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags.append("-mprefer-vector-width=512")
    return flags


def host_c_job(prefix: str, cc: str | None = None, opt_flags: list[str] | None = None,
               extra_flags: list[str] | None = None, openmp: bool = False) -> CompileJob:
    """A shared library of the C output for the host, loadable with cffi. ``opt_flags`` replace
    :func:`host_opt_flags`; ``openmp`` compiles the kernels' OpenMP pragmas in (the threads are
    set by OMP_NUM_THREADS or omp_set_num_threads)."""
    cc = cc or os.environ.get("CC") or "cc"
    omp = ["-fopenmp"] if openmp else []
    flags = ["-std=c99", *(opt_flags or host_opt_flags()), *omp, "-fPIC", "-shared", *C_WARNINGS,
             *(extra_flags or [])]
    return CompileJob(cc, flags, [f"{prefix}.c", f"{prefix}_weights.c"], f"lib{prefix}.so", ["-lm", *omp])
