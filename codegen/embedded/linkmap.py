"""Reading GNU ld map files: the archive members pulled in and the input sections of the image."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


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


def _member_name(member: str) -> str:
    m = re.match(r"^(.*)\((.*)\)$", member)
    return m.group(2) if m else Path(member).name
