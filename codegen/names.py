"""Safe text for generated code: identifiers, comments and bit-exact float literals.

Nothing a user typed reaches generated code unfiltered: layer and network names become C
identifiers (``[A-Za-z0-9_]``, no leading digit or underscore), and comment text is reduced
to printable ASCII without comment delimiters or trigraphs.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import NetworkError

_C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while",
    "_Bool", "_Complex", "_Imaginary", "asm", "bool", "true", "false", "class", "new", "delete", "template",
}


def c_identifier(text: str, fallback: str = "x") -> str:
    """A C identifier made from ``text``: other characters become '_', runs collapse."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", str(text))
    ident = re.sub(r"_+", "_", ident).strip("_")
    if not ident:
        ident = fallback
    if ident[0].isdigit():
        ident = f"{fallback}_{ident}"
    if ident in _C_KEYWORDS:
        ident = f"{ident}_"
    return ident


def network_prefix(name: str) -> str:
    """The lower-case prefix of every symbol generated for the network ``name`` ('lenet');
    its upper-case form prefixes the macros."""
    return c_identifier(name, "net").lower()


def layer_identifiers(names: list[str]) -> dict[str, str]:
    """Map layer names to distinct identifiers; two names that sanitize alike are an error."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        ident = c_identifier(name, "layer").lower()
        if ident in seen:
            raise NetworkError(f"layer names '{seen[ident]}' and '{name}' both become the C identifier '{ident}'; "
                               "rename one of them")
        seen[ident] = name
        out[name] = ident
    return out


def c_comment(text: str, limit: int = 120) -> str:
    """Text that is safe inside a /* */ comment: printable ASCII, no '*/', '/*' or trigraphs."""
    safe = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))
    safe = safe.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?").replace("\\", "/")
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def float_literal(value) -> str:
    """A C float literal that round-trips the float32 value exactly (hexadecimal)."""
    v = float(np.float32(value))
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"non-finite value {v} cannot be a C literal")
    if v == 0.0:
        return "-0.0f" if np.signbit(v) else "0.0f"
    if v.is_integer() and abs(v) < 2 ** 24:
        return f"{int(v)}.0f"
    mant, _, exp = v.hex().partition("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_DEC = np.frombuffer(b"0123456789", np.uint8)


def array_lines(arr: np.ndarray, indent: str = "    ") -> str:
    """The values of a weight array as C literals (bit-exact floats, or integers), a line per block
    of its innermost dimension where that reads well (see block_per_line)."""
    arr = np.asarray(arr)
    floats = arr.dtype.kind == "f"
    per_line = block_per_line(arr.shape, 8 if floats else 16, 6 if floats else 16)
    if floats:
        return float_array_lines(arr, per_line, indent=indent)
    values = [str(int(v)) for v in arr.ravel()]
    return ",\n".join(indent + ", ".join(values[i: i + per_line]) for i in range(0, len(values), per_line))


def block_per_line(shape: tuple, most: int, default: int) -> int:
    """Values per line of an array of ``shape``: its innermost block (the kernel's vector of
    channels, say), or the largest part of it that divides it and has at most ``most`` values, so a
    line never straddles two blocks; ``default`` when that would leave lines of one or two values."""
    inner = shape[-1] if len(shape) > 1 else 0
    if inner <= 0:
        return default
    best = max(d for d in range(1, min(inner, most) + 1) if inner % d == 0)
    return best if best >= 3 or inner <= most else default


def float_array_lines(arr: np.ndarray, per_line: int = 6, indent: str = "    ") -> str:
    """The values of ``arr`` (flattened) as comma-separated, bit-exact hexadecimal float literals.

    Vectorized, fixed width (``-0x1.99999ap-004f``), so tens of millions of weights render in
    seconds: sign, the implicit bit ``0x1.`` (``0x0.`` for zero and subnormals with exponent
    -126), 23 mantissa bits as 6 hex digits (shifted left by one), and the exponent."""
    bits = np.ascontiguousarray(arr, dtype=np.float32).ravel().view(np.uint32).astype(np.int64)
    n = bits.size
    if n == 0:
        return ""
    if np.any(((bits >> 23) & 0xFF) == 0xFF):
        raise ValueError("non-finite values cannot be C literals")
    biased = (bits >> 23) & 0xFF
    mantissa = (bits & 0x7FFFFF) << 1
    exponent = np.where(biased == 0, np.where(mantissa == 0, 0, -126), biased - 127)
    width = 17                                   # -0x1.xxxxxxp+eeef
    out = np.empty((n, width), np.uint8)
    out[:, 0] = np.where(bits >> 31, ord("-"), ord(" "))
    out[:, 1:3] = np.frombuffer(b"0x", np.uint8)
    out[:, 3] = np.where(biased == 0, ord("0"), ord("1"))
    out[:, 4] = ord(".")
    for k in range(6):
        out[:, 5 + k] = _HEX[(mantissa >> (4 * (5 - k))) & 0xF]
    out[:, 11] = ord("p")
    out[:, 12] = np.where(exponent < 0, ord("-"), ord("+"))
    mag = np.abs(exponent)
    out[:, 13], out[:, 14], out[:, 15] = _DEC[mag // 100], _DEC[(mag // 10) % 10], _DEC[mag % 10]
    out[:, 16] = ord("f")
    literals = out.view(f"S{width}").ravel().astype(str)
    lines = []
    for i in range(0, n, per_line):
        lines.append(indent + ", ".join(literals[i: i + per_line]))
    return ",\n".join(lines)
