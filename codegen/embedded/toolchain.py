"""Cross-compiling the generated C with the harness and the minimal firmware into the build cache."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..compiler import cache_root, compiler_identity, data_of, new_work_folder, run_tool, seal, sealed, write_file
from ..devices import Device, get_device, require_tools
from ..errors import BuildError
from ..resources import runtime_dir

# Bump when the build steps change: it is part of the cache key.
BUILD_VERSION = "embedded-1"
COMPILE_TIMEOUT = 900

RUNTIME_FILES = ("startup.c", "harness.c", "main_min.c", "flat.ld", "systick.h")
SEALED = ("harness.elf", "footprint.map", "footprint.elf")      # what a cache entry must hold intact


# --- building ------------------------------------------------------------------------------

@dataclass
class Artifacts:
    """A device build folder in the cache."""
    folder: Path
    cached: bool
    commands: list[str]

    def read(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def harness(self) -> Path:
        return self.folder / "harness.elf"


def _memory_script(device: Device) -> str:
    return f"/* {device.description} */\n{device.memory}"


def _compile_steps(device: Device, prefix: str, callgraph: bool, extra: tuple[str, ...] = (),
                   rt_extra: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """(log name, argv) of every step, run in the build folder."""
    cc = [*shlex.split(device.compiler), *device.cflags, "-std=c99", "-ffunction-sections", "-fdata-sections",
          *extra]
    defines = [f'-DCG_HEADER="{prefix}.h"', f"-DCG_PREFIX={prefix}", f"-DCG_MACRO={prefix.upper()}", "-I."]
    net = [f"{prefix}.o", f"{prefix}_weights.o"]
    steps = []
    for src in (f"{prefix}.c", f"{prefix}_weights.c"):
        steps.append(("network", [*cc, "-Wall", "-Wextra", "-pedantic", *(["-fcallgraph-info=su"] if callgraph else []),
                                  "-c", src, "-o", src[:-2] + ".o"]))
    # no memset/memcpy calls made up from the runtime's loops: the map then attributes the string
    # functions the firmware links to the network alone
    rt = [*cc, "-Wall", "-Wextra", "-fno-tree-loop-distribute-patterns", *defines, *rt_extra]
    steps.append(("runtime", [*rt, "-c", "rt/harness.c", "-o", "rt/harness.o"]))
    steps.append(("runtime", [*rt, "-c", "rt/main_min.c", "-o", "rt/main_min.o"]))
    link = [*shlex.split(device.compiler), *device.cflags, "-Wl,--gc-sections"]
    if device.kind == "baremetal":
        steps.append(("runtime", [*rt, "-c", "rt/startup.c", "-o", "rt/startup.o"]))
        steps.append(("runtime", [*rt, "-DCG_NO_CRT0", "-c", "rt/startup.c", "-o", "rt/startup_min.o"]))
        script = ["-T", "rt/flat.ld", "-L."]
        steps.append(("link", [*link, "--specs=rdimon.specs", *script, "-Wl,-Map=harness.map", *net, "rt/startup.o",
                               "rt/harness.o", "-lm", "-o", "harness.elf"]))
        steps.append(("link", [*link, "-nostartfiles", "--specs=nosys.specs", *script, "-Wl,-Map=footprint.map",
                               *net, "rt/startup_min.o", "rt/main_min.o", "-lm", "-o", "footprint.elf"]))
    else:
        static = ["-static"] if device.static else []
        steps.append(("link", [*link, *static, "-Wl,-Map=harness.map", *net, "rt/harness.o", "-lm",
                               "-o", "harness.elf"]))
        steps.append(("link", [*link, "-static", "-Wl,-Map=footprint.map", *net, "rt/main_min.o", "-lm",
                               "-o", "footprint.elf"]))
    steps.append(("tool:network.dis", [device.tool("objdump"), "-dr", f"{prefix}.o"]))
    steps.append(("tool:network.nm", [device.tool("nm"), *net]))
    return steps


def _run_tool(device: Device, argv: list[str], cwd, timeout: float, too_long: str) -> subprocess.CompletedProcess:
    """Run a cross tool or emulator; a missing tool or a timeout becomes a BuildError naming the device."""
    try:
        return run_tool(argv, cwd=cwd, timeout=timeout)
    except FileNotFoundError:
        raise BuildError(f"{device.name}: '{argv[0]}' not found; install it with 'make toolchains' "
                         f"(Debian packages: {device.packages})") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{device.name}: {too_long}") from None


def compile_device(files: dict[str, str], prefix: str, device: Device | str, cflags=(),
                   profile: bool = False) -> Artifacts:
    """Cross-compile the generated ``files`` for ``device`` with the harness and the minimal
    firmware, in a content-keyed cache folder (see :mod:`codegen.compiler`). ``cflags`` are
    added to the device's (e.g. ``-DCODEGEN_PORTABLE`` for the plain C99 kernels); ``profile``:
    the files were generated with profiling hooks, which the harness times."""
    device = get_device(device) if isinstance(device, str) else device
    require_tools(device)
    identity = compiler_identity(device.compiler)
    callgraph = "clang" not in identity.lower()
    sources = {name: content for name, content in files.items()
               if name in (f"{prefix}.h", f"{prefix}.c", "codegen_simd.h", "codegen_simd_int8.h")
               or name.startswith(f"{prefix}_weights.")}
    runtime = {f"rt/{name}": (runtime_dir() / "embedded" / name).read_text() for name in RUNTIME_FILES}
    all_files = {**sources, **runtime}
    if device.kind == "baremetal":
        all_files["cg_memory.ld"] = _memory_script(device)
    steps = _compile_steps(device, prefix, callgraph, tuple(cflags), ("-DCG_PROFILE",) if profile else ())

    h = hashlib.sha256()
    for part in [BUILD_VERSION, device.name, identity, repr(steps)]:
        h.update(part.encode() + b"\0")
    for name in sorted(all_files):
        h.update(name.encode() + b"\0" + data_of(all_files[name]) + b"\0")
    key = h.hexdigest()
    folder = cache_root() / "embedded" / key[:2] / key
    commands = [shlex.join(argv) for _, argv in steps]
    if sealed(folder, SEALED):
        return Artifacts(folder, True, commands)
    work = new_work_folder(folder)
    try:
        (work / "rt").mkdir()
        for name, content in all_files.items():
            write_file(work / name, content)
        logs: dict[str, str] = {}
        for log_name, argv in steps:
            proc = _run_tool(device, argv, work, COMPILE_TIMEOUT,
                             f"a build step ran longer than {COMPILE_TIMEOUT} s: {shlex.join(argv)}")
            if log_name.startswith("tool:"):
                if proc.returncode != 0:
                    raise BuildError(f"{device.name}: {shlex.join(argv)} failed:\n{proc.stderr.strip()}")
                (work / log_name[5:]).write_text(proc.stdout)
                continue
            out = (proc.stdout + proc.stderr).replace(str(work) + "/", "")
            if proc.returncode != 0:
                hint = ""
                if "overflowed" in out or "will not fit in region" in out:
                    hint = (f"\n(the network does not fit the memory of the emulated {device.description}; "
                            "see codegen/devices.py)")
                raise BuildError(f"{device.name}: build step failed ({shlex.join(argv)}):\n{out.strip()}{hint}")
            logs[log_name] = logs.get(log_name, "") + out
        for log_name, text in logs.items():
            (work / f"{log_name}.log").write_text(text)
        (work / "commands.txt").write_text("\n".join(commands) + "\n")
        seal(work, SEALED)
        try:
            os.rename(work, folder)
        except OSError:                    # built concurrently by another process: identical
            shutil.rmtree(work, ignore_errors=True)
        return Artifacts(folder, False, commands)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
