"""Building the C output for a device, running it under QEMU, and reporting what it costs.

    dev = codegen.embedded.build(net, "cortex-m4")     # cross-compile (cached), footprint, checks
    y = dev.predict(x)                                 # runs the harness under QEMU: (N, H, W, C)
    print(dev.footprint.report())                      # flash and RAM
    codegen.embedded.check_budget(dev.footprint, max_ram=64 * 1024)

For every device (see :mod:`codegen.devices`) the generated ``<name>.c`` and ``<name>_weights.c``
are compiled as they are, with the device's flags plus ``-ffunction-sections -fdata-sections``
(so that the map file names every function and array), and linked twice:

- **the harness** (runtime/embedded/harness.c): reads images from a file, calls
  ``<name>_predict`` and ``<name>_predict_ws``, writes the outputs to a file and measures the
  stack the network used. On Cortex-M it is linked with our start-up file and linker script
  (runtime/embedded/startup.c, flat.ld) and newlib's semihosting library, and runs under
  ``qemu-system-arm``; AArch64 runs under ``qemu-aarch64``, the host runs it directly.
- **a minimal firmware** (runtime/embedded/main_min.c: static buffers and one call of
  ``<name>_predict``; on Cortex-M with no C start-up code and no semihosting). Its map file
  gives the footprint of the network and of exactly the library members the network pulls in,
  and is checked: no malloc, no C library beyond ``<math.h>``/``<string.h>`` (plus the errno
  that math functions set), and no double-precision helpers.

Footprint: flash = code + weights and other constants + library code the network pulls in
(e.g. ``expf``) + initial values of its static data; RAM = arena + stack + static data. The
stack is measured by the harness when it ran (the deepest word of a painted region that the
network overwrote), and otherwise estimated from GCC's ``-fcallgraph-info=su`` (the network's
own frames, library calls not included).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compiler import cache_root, compiler_identity, new_work_folder
from .devices import Device, get_device, require_tools
from .errors import BuildError, CodegenError, InputError, UnsupportedError
from .resources import runtime_dir

# Bump when the build steps change: it is part of the cache key.
BUILD_VERSION = "embedded-1"
RUN_TIMEOUT = 120          # seconds for one harness run under QEMU
COMPILE_TIMEOUT = 900

RUNTIME_FILES = ("startup.c", "harness.c", "main_min.c", "flat.ld")

# --- what the network code may use --------------------------------------------------------

_MATH_BASE = """acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 expm1 frexp ilogb
ldexp log log10 log1p log2 logb modf scalbn scalbln cbrt fabs hypot pow sqrt erf erfc lgamma tgamma ceil floor
nearbyint rint lrint llrint round lround llround trunc fmod remainder remquo copysign nan nextafter nexttoward
fdim fmax fmin fma""".split()
MATH_FUNCTIONS = frozenset(f"{b}{s}" for b in _MATH_BASE for s in ("", "f", "l"))
STRING_FUNCTIONS = frozenset("""memcpy memmove memset memcmp memchr strcpy strncpy strcat strncat strcmp strncmp
strlen strchr strrchr strstr strspn strcspn strpbrk strcoll strxfrm""".split())
# Storage of errno, which <math.h> functions may set (newlib keeps it in the reentrancy struct).
ERRNO_SYMBOLS = frozenset("__errno errno __errno_location __libc_errno _impure_ptr _impure_data _global_impure_ptr"
                          .split())
ALLOCATION_SYMBOLS = frozenset("""malloc free calloc realloc _malloc_r _free_r _calloc_r _realloc_r __libc_malloc
__libc_free aligned_alloc posix_memalign memalign valloc pvalloc sbrk _sbrk brk __brk""".split())

_COMPILER_HELPER = re.compile(r"^(__aeabi_\w+|__stack_chk_(fail|guard)|__[a-z0-9]+[sdt][if][0-9]|"
                              r"__(float|fix)\w+|__(extend|trunc)\w+|__gnu_\w+|_GLOBAL_OFFSET_TABLE_)$")
# compiler and C library spellings of the string functions: __aeabi_memclr8, __libc_memcpy, __memcpy_simd
_STRING_HELPER = re.compile(r"^__(?:libc_|aeabi_)?(?:mem|str)\w*$")
DOUBLE_HELPER = re.compile(r"\b(__aeabi_(?:d[a-z0-9]+|[a-z]*2d)|__(?:[a-z]+df[0-9]|float[a-z]*df|fix[a-z]*df[a-z]*|"
                           r"extendsfdf2|truncdfsf2))\b")
_ARM_NOT_ARITHMETIC = ("vmov", "vldr", "vstr", "vldm", "vstm", "vpush", "vpop", "vld1", "vst1")
_X86_DOUBLE = re.compile(r"^v?(?:add|sub|mul|div|sqrt|max|min|fn?m(?:add|sub)\w*|cvt\w*|round|hadd|dp)(?:sd|pd)$|"
                         r"^v?cvt(?:ss2sd|sd2ss|ps2pd|pd2ps|si2sd|sd2si|tsd2si)\w*$")


def _fmt(n: int) -> str:
    return f"{n:,}"


# --- map files -----------------------------------------------------------------------------

@dataclass
class InputSection:
    output: str           # output section, e.g. '.text'
    name: str             # input section, e.g. '.text.lenet_predict'
    size: int
    file: str             # object file or 'archive.a(member.o)'
    symbols: list[str] = field(default_factory=list)


@dataclass
class LinkMap:
    """What a GNU ld map file says: which archive members were pulled in and why, and every
    input section that ended in the image with the symbols it defines."""
    members: dict[str, tuple[str, str]]      # member -> (file that referenced it, symbol)
    sections: list[InputSection]

    def defined(self, files) -> dict[str, str]:
        """{symbol: file} for the symbols that ``files`` define in the image."""
        files = set(files)
        return {s: sec.file for sec in self.sections if sec.file in files for s in sec.symbols}

    def closure(self, roots) -> list[str]:
        """The archive members pulled in, directly or through other members, by ``roots``.

        ld records the first reference that pulled each member in; the minimal firmware (whose
        other objects reference no library) therefore attributes every member exactly."""
        chosen = set(roots)
        changed = True
        while changed:
            changed = False
            for member, (referrer, _) in self.members.items():
                if member not in chosen and referrer in chosen:
                    chosen.add(member)
                    changed = True
        return [m for m in self.members if m in chosen]


_INPUT_LINE = re.compile(r"^ (\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_CONT_LINE = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_SYMBOL_LINE = re.compile(r"^\s+0x[0-9a-fA-F]+\s+([A-Za-z_.$][\w.$@]*)\s*$")
_OUTPUT_LINE = re.compile(r"^(\S+)(?:\s+0x[0-9a-fA-F]+\s+0x[0-9a-fA-F]+.*)?$")


def parse_map(text: str) -> LinkMap:
    members: dict[str, tuple[str, str]] = {}
    sections: list[InputSection] = []
    lines = text.splitlines()
    i = 0
    # 1. "Archive member included to satisfy reference by file (symbol)"
    while i < len(lines) and not lines[i].startswith("Archive member included"):
        if lines[i].startswith(("Discarded input sections", "Memory Configuration", "Linker script and memory map")):
            break
        i += 1
    if i < len(lines) and lines[i].startswith("Archive member included"):
        i += 1
        pending = None
        while i < len(lines):
            line = lines[i]
            if line.startswith(("Discarded input sections", "Memory Configuration", "Allocating common symbols",
                                "Linker script and memory map", "As-needed library")):
                break
            if line.strip():
                if not line[0].isspace():
                    m = re.match(r"^(\S+\))\s*(.*)$", line)
                    pending = m.group(1) if m else line.strip()
                    rest = m.group(2).strip() if m else ""
                    if rest:
                        ref = re.match(r"^(.*) \((.*)\)$", rest)
                        if ref:
                            members[pending] = (ref.group(1), ref.group(2))
                            pending = None
                elif pending is not None:
                    ref = re.match(r"^(.*) \((.*)\)$", line.strip())
                    if ref:
                        members[pending] = (ref.group(1), ref.group(2))
                    pending = None
            i += 1
    # 2. "Linker script and memory map"
    while i < len(lines) and not lines[i].startswith("Linker script and memory map"):
        i += 1
    output = ""
    current: InputSection | None = None
    pending_name: str | None = None
    for line in lines[i + 1:]:
        if not line.strip():
            pending_name = None
            continue
        if line.startswith(("OUTPUT(", "LOAD ", "START GROUP", "END GROUP")):
            continue
        if not line[0].isspace():
            m = _OUTPUT_LINE.match(line)
            output = m.group(1) if m else line.split()[0]
            current, pending_name = None, None
            continue
        if line.startswith(" *") or line.startswith(" [") or "*fill*" in line:
            continue
        if pending_name is not None:
            m = _CONT_LINE.match(line)
            if m:
                current = InputSection(output, pending_name, int(m.group(2), 16), m.group(3).strip())
                sections.append(current)
                pending_name = None
                continue
            pending_name = None
        m = _INPUT_LINE.match(line)
        if m:
            current = InputSection(output, m.group(1), int(m.group(3), 16), m.group(4).strip())
            sections.append(current)
            continue
        if re.match(r"^ [^\s*]\S*$", line):          # a long input section name on its own line
            pending_name = line.strip()
            continue
        m = _SYMBOL_LINE.match(line)
        if m and current is not None and "=" not in line:
            current.symbols.append(m.group(1))
    sections = [s for s in sections if s.output != "/DISCARD/"]
    return LinkMap(members, sections)


def _archive(member: str) -> str:
    """'/usr/.../libm.a(lib_a-wf_exp.o)' -> 'libm.a'."""
    m = re.match(r"^(.*)\((.*)\)$", member)
    return Path(m.group(1)).name if m else Path(member).name


def _short(member: str) -> str:
    m = re.match(r"^(.*)\((.*)\)$", member)
    return f"{Path(m.group(1)).name}({m.group(2)})" if m else Path(member).name


def _category(section: str, weights_section: str | None) -> str | None:
    """'code', 'const', 'weights', 'data', 'bss', or None (not part of the image)."""
    if weights_section and (section == weights_section or section.startswith(weights_section + ".")):
        return "weights"
    if section.startswith((".debug", ".comment", ".note", ".ARM.attributes", ".gnu.attributes", ".stab",
                           ".gnu_debug", ".gnu.warning", ".group", ".rel.", ".rela.")):
        return None
    if section.startswith((".text", ".init", ".fini", ".glue", ".vfp11", ".v4_bx", ".iplt", ".plt")):
        return "code"
    if section.startswith((".bss", ".sbss", ".tbss", "COMMON", ".noinit")):
        return "bss"
    if section.startswith((".data", ".sdata", ".tdata", ".got", ".igot")):
        return "data"
    return "const"          # .rodata, .ARM.exidx/extab, .eh_frame, .init_array, ...


# --- footprint -----------------------------------------------------------------------------

@dataclass
class Footprint:
    device: str
    prefix: str
    code: int                  # the network's functions
    constants: int             # weights (unless in a named section) and other constants
    weights_in_section: int    # bytes in the --weights-section section
    weights_section: str | None
    lib_code: int              # code and constants of the library members the network pulls in
    data: int                  # initialised static data (network + library): RAM, and flash for the values
    bss: int                   # zero-initialised static data other than the arena
    arena: int
    io_bytes: int              # the caller's input and output buffers (not included)
    libs: list[str]            # the library members, 'libm.a(lib_a-wf_exp.o)'
    stack_static: int | None = None     # GCC's call-graph estimate (network frames only)
    stack_static_calls: list[str] = field(default_factory=list)   # library calls not in the estimate
    stack_measured: int | None = None
    stack_saturated: bool = False
    firmware_flash: int | None = None   # the minimal firmware (start-up + main + network), bare metal
    firmware_ram: int | None = None

    @property
    def stack(self) -> int:
        return max(self.stack_measured or 0, self.stack_static or 0)

    @property
    def flash(self) -> int:
        return self.code + self.constants + self.weights_in_section + self.lib_code + self.data

    @property
    def static_data(self) -> int:
        return self.data + self.bss

    @property
    def ram(self) -> int:
        return self.arena + self.stack + self.static_data

    def flash_detail(self) -> str:
        parts = [f"code {_fmt(self.code)}", f"weights and constants {_fmt(self.constants)}"]
        if self.weights_section:
            parts.append(f"weights in section {self.weights_section} {_fmt(self.weights_in_section)}")
        parts.append(f"library {_fmt(self.lib_code)}")
        parts.append(f"data initial values {_fmt(self.data)}")
        return " + ".join(parts)

    def stack_detail(self) -> str:
        if self.stack_measured is not None:
            how = f"measured{' (at least: the whole painted region)' if self.stack_saturated else ''}"
            if self.stack_static is not None and self.stack_static > self.stack_measured:
                how = (f"measured {_fmt(self.stack_measured)}, static estimate {_fmt(self.stack_static)}: "
                       "the larger is used")
            return how
        if self.stack_static is not None:
            calls = f", plus {', '.join(self.stack_static_calls)}" if self.stack_static_calls else ""
            return f"static estimate from -fcallgraph-info{calls}; run the harness to measure"
        return "unknown"

    def ram_detail(self) -> str:
        return (f"arena {_fmt(self.arena)} + stack {_fmt(self.stack)} ({self.stack_detail()}) + "
                f"static data {_fmt(self.static_data)}")

    def report(self) -> str:
        libs = ", ".join(sorted({_member_name(m) for m in self.libs})) or "none"
        lines = [f"footprint of '{self.prefix}' on {self.device}:",
                 f"  flash {_fmt(self.flash):>10} bytes = {self.flash_detail()}",
                 f"  RAM   {_fmt(self.ram):>10} bytes = {self.ram_detail()}",
                 f"  library members: {libs}",
                 f"  not included: the caller's input and output buffers ({_fmt(self.io_bytes)} bytes)"]
        if self.firmware_flash is not None:
            lines.append(f"  a minimal firmware (start-up code, main, network): flash {_fmt(self.firmware_flash)}, "
                         f"RAM {_fmt(self.firmware_ram)} + stack")
        return "\n".join(lines)


def _member_name(member: str) -> str:
    m = re.match(r"^(.*)\((.*)\)$", member)
    return m.group(2) if m else Path(member).name


class BudgetError(BuildError):
    """The network does not fit the flash or RAM budget."""


def check_budget(fp: Footprint, max_ram: int | None = None, max_flash: int | None = None) -> None:
    """Raise :class:`BudgetError` (one line, with the figures) if a budget is exceeded."""
    problems = []
    if max_flash is not None and fp.flash > max_flash:
        problems.append(f"flash {_fmt(fp.flash)} bytes exceeds the budget of {_fmt(max_flash)} bytes (--max-flash): "
                        f"{fp.flash_detail()}")
    if max_ram is not None and fp.ram > max_ram:
        problems.append(f"RAM {_fmt(fp.ram)} bytes exceeds the budget of {_fmt(max_ram)} bytes (--max-ram): "
                        f"{fp.ram_detail()}")
    if problems:
        raise BudgetError(f"'{fp.prefix}' on {fp.device}: " + "; ".join(problems))


# --- checks --------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"  {'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


def _nm_undefined(text: str) -> set[str]:
    """Symbols the objects in ``nm`` output reference and none of them defines."""
    undefined, defined = set(), set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1].split("@")[0])
        elif len(parts) == 3:
            defined.add(parts[2].split("@")[0])
    return undefined - defined


def check_libc(link: LinkMap, network_files: list[str], undefined: set[str]) -> Check:
    """The network references only <math.h>/<string.h> functions and compiler helpers, and what
    it pulls in from the libraries (the map) allocates nothing and is libm, libgcc, or the
    string functions and errno of libc."""
    problems = []
    bad_refs = sorted(s for s in undefined if s not in MATH_FUNCTIONS and s not in STRING_FUNCTIONS
                      and not _COMPILER_HELPER.match(s) and not _STRING_HELPER.match(s))
    if bad_refs:
        problems.append(f"the network code references {', '.join(bad_refs)}")
    members = link.closure(network_files)
    defined = link.defined(members)
    alloc = sorted(s for s in defined if s in ALLOCATION_SYMBOLS)
    if alloc:
        problems.append(f"the link pulls in allocation: {', '.join(f'{s} from {_short(defined[s])}' for s in alloc)}")
    for member in members:
        archive = _archive(member)
        if archive.startswith(("libm.", "libm-", "libgcc", "libmvec")):
            continue
        syms = [s for s, f in defined.items() if f == member]
        extra = [s for s in syms if s not in STRING_FUNCTIONS and s not in ERRNO_SYMBOLS
                 and not _STRING_HELPER.match(s) and s not in MATH_FUNCTIONS]
        if extra:
            ref, sym = link.members[member]
            problems.append(f"{_short(member)} (pulled in by {Path(ref).name} for {sym}) defines {', '.join(extra)}")
    pulled = ", ".join(sorted({_member_name(m) for m in members})) or "nothing"
    if problems:
        return Check("no malloc, no libc beyond <math.h>/<string.h>/<stddef.h>/<stdint.h>", False,
                     "; ".join(problems))
    return Check("no malloc, no libc beyond <math.h>/<string.h>/<stddef.h>/<stdint.h>", True,
                 f"references {', '.join(sorted(undefined)) or 'nothing'}; library members {pulled}")


def double_instructions(disassembly: str, device: Device) -> list[str]:
    """Lines of ``objdump -dr`` output that compute in double precision or call a double helper."""
    found = []
    func = "?"
    for line in disassembly.splitlines():
        m = re.match(r"^[0-9a-fA-F]+ <(.+)>:$", line)
        if m:
            func = m.group(1)
            continue
        if DOUBLE_HELPER.search(line) and ("R_" in line or "<" in line):
            found.append(f"{func}: {line.strip()}")
            continue
        parts = line.split("\t")
        if len(parts) < 3 or not re.match(r"^\s*[0-9a-fA-F]+:$", parts[0]):
            continue
        mnemonic = parts[2].strip().split()[0] if parts[2].strip() else ""
        operands = parts[3] if len(parts) > 3 else ""
        if device.binutils_prefix.startswith("arm"):
            base = mnemonic.split(".")[0]
            if ".f64" in mnemonic and base not in _ARM_NOT_ARITHMETIC:
                found.append(f"{func}: {mnemonic} {operands.strip()}")
        elif device.binutils_prefix.startswith("aarch64"):
            if ((mnemonic.startswith("f") and mnemonic not in ("fmov",)) or mnemonic in ("scvtf", "ucvtf")) and \
                    re.search(r"\bd\d+\b|\.2d\b", operands):
                found.append(f"{func}: {mnemonic} {operands.strip()}")
        elif _X86_DOUBLE.match(mnemonic):
            found.append(f"{func}: {mnemonic} {operands.strip()}")
    return found


def check_double(device: Device, network_disassembly: str, link: LinkMap, network_files: list[str]) -> Check:
    """No double-precision arithmetic in the network code (disassembly) and, on a
    single-precision-FPU device, no double-precision soft-float helper linked in by the network
    or the library functions it calls (the map)."""
    name = "no double-precision arithmetic" + (" (no __aeabi_d* soft-float calls)" if device.fpu == "sp" else "")
    found = double_instructions(network_disassembly, device)
    helpers = sorted(s for s in link.defined(link.closure(network_files)) if DOUBLE_HELPER.fullmatch(s))
    problems = []
    if found:
        problems.append(f"{len(found)} instruction(s) in the network code, e.g. {'; '.join(found[:3])}")
    if helpers:
        problems.append(f"double-precision helpers linked in: {', '.join(helpers)}")
    if problems:
        return Check(name, False, "; ".join(problems))
    return Check(name, True, "none in the network code's disassembly" +
                 (" or in the library members it pulls in" if device.fpu == "sp" else ""))


# --- stack estimate (GCC -fcallgraph-info=su) ---------------------------------------------

def stack_estimate(ci_text: str, root: str) -> tuple[int | None, list[str]]:
    """(worst-case stack of ``root`` over the call graph, external functions called) from a .ci
    file; None if ``root`` is not in it or a frame is dynamic."""
    sizes: dict[str, int | None] = {}
    edges: dict[str, list[str]] = {}
    for m in re.finditer(r'node: \{ title: "([^"]+)" label: "([^"]*)"([^}]*)\}', ci_text):
        title, label = m.group(1), m.group(2)
        s = re.search(r"(\d+) bytes \(([^)]*)\)", label)
        if s:
            sizes[title] = int(s.group(1)) if s.group(2) in ("static", "dynamic,bounded") else None
    for m in re.finditer(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', ci_text):
        edges.setdefault(m.group(1), []).append(m.group(2))
    if root not in sizes:
        return None, []
    external: set[str] = set()
    memo: dict[str, int | None] = {}

    def depth(fn: str, seen: frozenset) -> int | None:
        if fn in memo:
            return memo[fn]
        if fn not in sizes:
            external.add(fn)
            return 0
        own = sizes[fn]
        if own is None or fn in seen:
            return None
        worst = 0
        for callee in edges.get(fn, []):
            d = depth(callee, seen | {fn})
            if d is None:
                memo[fn] = None
                return None
            worst = max(worst, d)
        memo[fn] = own + worst
        return memo[fn]

    return depth(root, frozenset()), sorted(external)


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


def _compile_steps(device: Device, prefix: str, callgraph: bool, extra: tuple[str, ...] = ()
                   ) -> list[tuple[str, list[str]]]:
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
    rt = [*cc, "-Wall", "-Wextra", "-fno-tree-loop-distribute-patterns", *defines]
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
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    except FileNotFoundError:
        raise BuildError(f"{device.name}: '{argv[0]}' not found; install it with 'make toolchains' "
                         f"(Debian packages: {device.packages})") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{device.name}: {too_long}") from None

def compile_device(files: dict[str, str], prefix: str, device: Device | str, cflags=()) -> Artifacts:
    """Cross-compile the generated ``files`` for ``device`` with the harness and the minimal
    firmware, in a content-keyed cache folder (see :mod:`codegen.compiler`). ``cflags`` are
    added to the device's (e.g. ``-DCODEGEN_PORTABLE`` for the plain C99 kernels)."""
    device = get_device(device) if isinstance(device, str) else device
    require_tools(device)
    identity = compiler_identity(device.compiler)
    callgraph = "clang" not in identity.lower()
    sources = {name: files[name] for name in (f"{prefix}.h", f"{prefix}.c", f"{prefix}_weights.c")}
    runtime = {f"rt/{name}": (runtime_dir() / "embedded" / name).read_text() for name in RUNTIME_FILES}
    all_files = {**sources, **runtime}
    if device.kind == "baremetal":
        all_files["cg_memory.ld"] = _memory_script(device)
    steps = _compile_steps(device, prefix, callgraph, tuple(cflags))

    h = hashlib.sha256()
    for part in [BUILD_VERSION, device.name, identity, repr(steps)]:
        h.update(part.encode() + b"\0")
    for name in sorted(all_files):
        h.update(name.encode() + b"\0" + all_files[name].encode() + b"\0")
    key = h.hexdigest()
    folder = cache_root() / "embedded" / key[:2] / key
    commands = [shlex.join(argv) for _, argv in steps]
    if (folder / "harness.elf").exists() and (folder / "footprint.map").exists():
        return Artifacts(folder, True, commands)
    work = new_work_folder(folder)
    try:
        (work / "rt").mkdir()
        for name, text in all_files.items():
            (work / name).write_text(text)
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
        try:
            os.rename(work, folder)
        except OSError:                    # built concurrently by another process: identical
            shutil.rmtree(work, ignore_errors=True)
        return Artifacts(folder, False, commands)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def footprint_of(art: Artifacts, device: Device, prefix: str, plan, weights_section: str | None) -> Footprint:
    link = parse_map(art.read("footprint.map"))
    net_files = [f"{prefix}.o", f"{prefix}_weights.o"]
    members = link.closure(net_files)
    totals = dict(code=0, const=0, weights=0, lib=0, data=0, bss=0, arena=0)
    fw_flash = fw_ram = 0
    arena_symbol = f"{prefix}_arena"
    for sec in link.sections:
        cat = _category(sec.name, weights_section)
        if cat is None:
            continue
        if cat in ("data", "bss"):
            fw_ram += sec.size
        if cat != "bss":
            fw_flash += sec.size
        if sec.file in net_files:
            if cat == "bss" and (arena_symbol in sec.symbols or sec.name.endswith("." + arena_symbol)):
                totals["arena"] += sec.size
            elif cat == "code":
                totals["code"] += sec.size
            elif cat in ("const", "weights"):
                totals["const" if cat == "const" else "weights"] += sec.size
            else:
                totals[cat] += sec.size
        elif sec.file in members:
            if cat in ("code", "const", "weights"):
                totals["lib"] += sec.size
            else:
                totals[cat] += sec.size
    arena = totals["arena"] if totals["arena"] else plan.arena_bytes
    est, calls = stack_estimate(art.read(f"{prefix}.ci"), f"{prefix}_predict")
    return Footprint(device.name, prefix, totals["code"], totals["const"], totals["weights"], weights_section,
                     totals["lib"], totals["data"], totals["bss"], arena,
                     4 * (plan.input.size + plan.output.size), members, stack_static=est, stack_static_calls=calls,
                     firmware_flash=fw_flash if device.kind == "baremetal" else None,
                     firmware_ram=fw_ram if device.kind == "baremetal" else None)


def checks_of(art: Artifacts, device: Device, prefix: str) -> list[Check]:
    link = parse_map(art.read("footprint.map"))
    net_files = [f"{prefix}.o", f"{prefix}_weights.o"]
    undefined = _nm_undefined(art.read("network.nm"))
    checks = [check_libc(link, net_files, undefined),
              check_double(device, art.read("network.dis"), link, net_files)]
    warnings = art.read("network.log").strip()
    checks.append(Check(f"the network compiles without warnings ({device.compiler} -Wall -Wextra -pedantic)",
                        not warnings, warnings.splitlines()[0] if warnings else "no warnings"))
    return checks


# --- running -------------------------------------------------------------------------------

_STACK_LINE = re.compile(r"codegen-harness: (\d+) images, stack (\d+) bytes \(painted (\d+)\)")


def run_command(device: Device, executable: Path, count: int) -> list[str]:
    if device.kind == "baremetal":
        return ["qemu-system-arm", "-machine", device.qemu_machine, "-nographic", "-monitor", "none",
                "-serial", "none", "-semihosting-config",
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


def run_harness(art: Artifacts, device: Device, inputs: np.ndarray, out_size: int,
                timeout: float = RUN_TIMEOUT) -> RunResult:
    """Run the harness on ``inputs`` (N, ...) float32 and return its outputs (N, out_size)."""
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
        return RunResult(y.reshape(n, out_size), stack, saturated, cmd, seconds, log)


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
    from .emit import render_files
    from .emit.names import c_identifier
    from .load import default_out_dir
    from .network import Network
    from .output import write_folder
    from .plan import make_plan

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
    from .verify import DEFAULT_TOL, verify as run_verify
    return run_verify(net, dev, count=count, seed=seed, tol=DEFAULT_TOL if tol is None else tol)


def reject_per_layer(device: str) -> None:
    raise UnsupportedError(f"--per-layer runs on the host only (it reads the workspace back); "
                           f"drop --device {device} or --per-layer")


# --- command line --------------------------------------------------------------------------

def parse_bytes(text) -> int | None:
    """'65536', '64K', '64KiB', '1M' -> bytes (K and M are 1024-based); None stays None."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*(?:(k|kb|kib)|(m|mb|mib))?\s*", str(text), re.I)
    if not m:
        raise ValueError(f"{text!r} is not a size in bytes (e.g. 65536, 64K, 1M)")
    return int(m.group(1)) * (1024 if m.group(2) else 1024 * 1024 if m.group(3) else 1)


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
