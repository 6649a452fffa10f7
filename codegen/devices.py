"""The devices the C output can be built for and run on: compiler, flags, binutils, and the
emulator that runs the test harness (see :mod:`codegen.embedded`).

The generated sources are the same portable C99 for every device; a device only chooses how
they are compiled, linked around a harness, and run:

==========  ==================  =======================================================  ===========================
device      compiler            flags                                                    runs under
==========  ==================  =======================================================  ===========================
host        $CC or cc           -O2, static                                              the host itself
cortex-m4   arm-none-eabi-gcc   -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard  qemu-system-arm mps2-an386
cortex-m7   arm-none-eabi-gcc   -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard     qemu-system-arm mps2-an500
cortex-m55  arm-none-eabi-gcc   -mcpu=cortex-m55 -mthumb -mfloat-abi=hard (MVE, FP)      qemu-system-arm mps3-an547
aarch64     aarch64-linux-gnu-gcc  -march=armv8-a (NEON), static                          qemu-aarch64
==========  ==================  =======================================================  ===========================

On the Cortex-M boards QEMU runs with ``-icount shift=0`` (one instruction per nanosecond of
virtual time), so the harness's SysTick readings count the instructions ``predict`` executed
(:mod:`codegen.embedded.counting`); ``systick_hz`` is the board's SysTick clock.

Bare-metal (Cortex-M) images use our start-up file and linker script (runtime/embedded/) and
newlib's semihosting library (rdimon), so the harness reads and writes the host's files.
The memory regions below are those of QEMU's boards: everything except bulk constants sits in
the RAM region at address 0, which QEMU's SYS_HEAPINFO describes (newlib's crt0 puts the heap
and the stack there); weights and the harness's second workspace may go to a larger region.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from .errors import BuildError, CodegenError

# Debian packages that provide each device's tools (``make toolchains`` installs them).
ARM_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
AARCH64_PACKAGES = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    kind: str                       # 'baremetal' (Cortex-M, semihosting) or 'linux' (host, aarch64)
    cc: str
    arch_flags: tuple[str, ...]     # selects the instruction set, FPU and ABI
    opt_flags: tuple[str, ...] = ("-O2",)
    binutils_prefix: str = ""       # 'arm-none-eabi-' -> arm-none-eabi-objdump, -nm, -size, -ar
    fpu: str = "dp"                 # 'sp': single-precision-only FPU (double is soft-float), 'dp', 'none'
    qemu_machine: str | None = None  # qemu-system-arm -machine
    runner: tuple[str, ...] = ()    # prefix of the command that runs a Linux executable
    static: bool = False            # link Linux executables statically
    memory: str = ""                # MEMORY / REGION_ALIAS lines of cg_memory.ld (bare metal)
    cmake_system: str | None = None
    cmake_processor: str | None = None
    packages: str = ""              # where the tools come from
    extra_tools: tuple[str, ...] = field(default_factory=tuple)
    systick_hz: int | None = None   # the board's SysTick clock: counting instructions (see below)
    # the kernels' instruction sets the generated C holds (codegen.ops.tiling.ISAS): one per known
    # device; the host keeps every one, chosen when compiled
    isas: tuple[str, ...] = ("avx512", "avx2", "neon", "portable")

    def tool(self, name: str) -> str:
        """'objdump', 'nm', 'size', 'ar' for this device's binutils."""
        return f"{self.binutils_prefix}{name}"

    @property
    def compiler(self) -> str:
        if self.name == "host":
            return os.environ.get("CC") or "cc"
        return self.cc

    @property
    def cflags(self) -> list[str]:
        return [*self.arch_flags, *self.opt_flags]

    @property
    def tools(self) -> list[str]:
        """Every executable building and running on this device needs."""
        exe = self.compiler.split()[0]
        tools = [exe, *(self.tool(t) for t in ("objdump", "nm"))]
        if self.qemu_machine:
            tools.append("qemu-system-arm")
        tools.extend(self.runner[:1])
        tools.extend(self.extra_tools)
        return list(dict.fromkeys(tools))

    @property
    def instructions_per_tick(self) -> float | None:
        """Instructions per SysTick tick under QEMU's ``-icount shift=0`` (one instruction per
        nanosecond of virtual time): 40 on the mps2 boards, 31.25 on mps3-an547; None where the
        harness does not count."""
        return 1e9 / self.systick_hz if self.systick_hz else None

    def missing_tools(self) -> list[str]:
        return [t for t in self.tools if shutil.which(t) is None]

    def toolchain_option(self) -> dict | None:
        """The ``toolchain`` option of the C templates (Makefile / CMakeLists.txt section)."""
        if self.name == "host":
            return None
        return dict(device=self.name, cc=self.cc, ar=self.tool("ar"),
                    cflags=[*self.arch_flags, *self.opt_flags, "-Wall", "-Wextra"],
                    cmake_system=self.cmake_system, cmake_processor=self.cmake_processor)


_MPS2_MEMORY = ("MEMORY\n{\n    RAM (rwx) : ORIGIN = 0x00000000, LENGTH = 0x00400000\n}\n"
                "REGION_ALIAS(\"BULK\", RAM);\n")
# mps3-an547: ITCM (512 KiB) at 0 for code, data, heap and stack; 2 MiB SRAM at 0x01000000
# for constants (weights) and the harness's second workspace.
_AN547_MEMORY = ("MEMORY\n{\n    RAM (rwx) : ORIGIN = 0x00000000, LENGTH = 0x00080000\n"
                 "    BULK (rwx) : ORIGIN = 0x01000000, LENGTH = 0x00200000\n}\n")

DEVICES: dict[str, Device] = {d.name: d for d in [
    Device("host", "this machine", "linux", "cc", (), static=True, packages="gcc libc6-dev"),
    Device("cortex-m4", "Cortex-M4F (single-precision FPU), QEMU mps2-an386", "baremetal", "arm-none-eabi-gcc",
           ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
           binutils_prefix="arm-none-eabi-", fpu="sp", qemu_machine="mps2-an386", memory=_MPS2_MEMORY,
           systick_hz=25_000_000, isas=("portable",),
           cmake_system="Generic", cmake_processor="arm", packages=ARM_PACKAGES),
    Device("cortex-m7", "Cortex-M7 (double-precision FPU), QEMU mps2-an500", "baremetal", "arm-none-eabi-gcc",
           ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
           binutils_prefix="arm-none-eabi-", fpu="dp", qemu_machine="mps2-an500", memory=_MPS2_MEMORY,
           systick_hz=25_000_000, isas=("portable",),
           cmake_system="Generic", cmake_processor="arm", packages=ARM_PACKAGES),
    Device("cortex-m55", "Cortex-M55 (Helium/MVE, FPU), QEMU mps3-an547", "baremetal", "arm-none-eabi-gcc",
           ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
           binutils_prefix="arm-none-eabi-", fpu="dp", qemu_machine="mps3-an547", memory=_AN547_MEMORY,
           systick_hz=32_000_000, isas=("portable",),
           cmake_system="Generic", cmake_processor="arm", packages=ARM_PACKAGES),
    Device("aarch64", "AArch64 Linux (NEON), qemu-aarch64", "linux", "aarch64-linux-gnu-gcc", ("-march=armv8-a",),
           isas=("neon", "portable"),
           binutils_prefix="aarch64-linux-gnu-", fpu="dp", runner=("qemu-aarch64",), static=True,
           cmake_system="Linux", cmake_processor="aarch64", packages=AARCH64_PACKAGES),
]}

DEVICE_NAMES = list(DEVICES)


def get_device(name: str) -> Device:
    try:
        return DEVICES[name]
    except KeyError:
        raise CodegenError(f"unknown device {name!r}; expected one of {', '.join(DEVICE_NAMES)}") from None


def require_tools(device: Device) -> None:
    """BuildError naming the missing tools and the packages that provide them."""
    missing = device.missing_tools()
    if missing:
        raise BuildError(f"{device.name}: missing tool(s) {', '.join(missing)}; install them with "
                         f"'make toolchains' (Debian packages: {device.packages})")
