"""Flash and RAM of a network on a device (from the minimal firmware's map file) and the budgets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..devices import Device
from ..errors import BuildError
from .linkmap import _category, _member_name, parse_map
from .stack import stack_estimate
from .toolchain import Artifacts


def _fmt(n: int) -> str:
    return f"{n:,}"


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


def footprint_of(art: Artifacts, device: Device, prefix: str, plan, weights_section: str | None) -> Footprint:
    link = parse_map(art.read("footprint.map"))
    net_files = [f"{prefix}.o", f"{prefix}_weights.o"]
    members = link.closure(net_files)
    totals = dict(code=0, const=0, weights=0, lib=0, data=0, bss=0, arena=0)
    fw_flash = fw_ram = 0
    arena_symbols = (f"{prefix}_arena", f"{prefix}_workspace")    # float; int8 (arena + int8 input and output)
    for sec in link.sections:
        cat = _category(sec.name, weights_section)
        if cat is None:
            continue
        if cat in ("data", "bss"):
            fw_ram += sec.size
        if cat != "bss":
            fw_flash += sec.size
        if sec.file in net_files:
            if cat == "bss" and any(a in sec.symbols or sec.name.endswith("." + a) for a in arena_symbols):
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
                     4 * (plan.input.size + plan.output_floats), members, stack_static=est, stack_static_calls=calls,
                     firmware_flash=fw_flash if device.kind == "baremetal" else None,
                     firmware_ram=fw_ram if device.kind == "baremetal" else None)


# --- command line --------------------------------------------------------------------------

def parse_bytes(text) -> int | None:
    """'65536', '64K', '64KiB', '1M' -> bytes (K and M are 1024-based); None stays None."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*(?:(k|kb|kib)|(m|mb|mib))?\s*", str(text), re.I)
    if not m:
        raise ValueError(f"{text!r} is not a size in bytes (e.g. 65536, 64K, 1M)")
    return int(m.group(1)) * (1024 if m.group(2) else 1024 * 1024 if m.group(3) else 1)
