"""The checks on what the network links: no allocation, no C library beyond <math.h> and
<string.h>, no double precision, no compiler warnings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..devices import Device
from .linkmap import LinkMap, _archive, _member_name, _short, parse_map
from .toolchain import Artifacts


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
# compiler and C library spellings of the string functions: __aeabi_memclr8, __libc_memcpy, __memcpy_simd,
# glibc's versioned __new_memcpy (a loop copy the compiler turns into memcpy, as a streamed op's windows are)
_STRING_HELPER = re.compile(r"^__(?:libc_|aeabi_|new_)?(?:mem|str)\w*$")
DOUBLE_HELPER = re.compile(r"\b(__aeabi_(?:d[a-z0-9]+|[a-z]*2d)|__(?:[a-z]+df[0-9]|float[a-z]*df|fix[a-z]*df[a-z]*|"
                           r"extendsfdf2|truncdfsf2))\b")
_ARM_NOT_ARITHMETIC = ("vmov", "vldr", "vstr", "vldm", "vstm", "vpush", "vpop", "vld1", "vst1")
_X86_DOUBLE = re.compile(r"^v?(?:add|sub|mul|div|sqrt|max|min|fn?m(?:add|sub)\w*|cvt\w*|round|hadd|dp)(?:sd|pd)$|"
                         r"^v?cvt(?:ss2sd|sd2ss|ps2pd|pd2ps|si2sd|sd2si|tsd2si)\w*$")


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


def checks_of(art: Artifacts, device: Device, prefix: str) -> list[Check]:
    link = parse_map(art.read("footprint.map"))
    net_files = [f"{prefix}.o", f"{prefix}_weights.o"]
    # a profiling build's hook is the caller's (the harness's), not the C library's
    undefined = _nm_undefined(art.read("network.nm")) - {f"{prefix}_profile_op"}
    checks = [check_libc(link, net_files, undefined),
              check_double(device, art.read("network.dis"), link, net_files)]
    warnings = art.read("network.log").strip()
    checks.append(Check(f"the network compiles without warnings ({device.compiler} -Wall -Wextra -pedantic)",
                        not warnings, warnings.splitlines()[0] if warnings else "no warnings"))
    return checks
