"""The error the ONNX importer raises, and how its messages show text taken from the model.

An ONNX file is untrusted input: its node, tensor, graph and attribute names (and string
attribute values) can hold newlines, ANSI escape sequences or a fake "Traceback" line. Every
message shows such text through :func:`quote` (printable ASCII, anything else escaped, long
names shortened), and :class:`OnnxImportError` escapes any control character left in the
final message, so that the command line always prints one harmless line.
"""

from __future__ import annotations

from ..errors import UnsupportedError

NAME_LIMIT = 64          # characters of a name shown in a message (longer ones keep their ends)
TEXT_LIMIT = 300         # characters of a foreign message (an exception text) shown in ours


class OnnxImportError(UnsupportedError):
    """An ONNX model (or one of its nodes) that our layers cannot express."""

    def __init__(self, message: str):
        super().__init__(_escape_controls(str(message)))


def escape(text, limit: int = NAME_LIMIT) -> str:
    """``text`` as printable ASCII: ``\\``, quotes, control and non-ASCII characters escaped as
    in Python literals (``\\n``, ``\\x1b``, ``\\u202e``); longer than ``limit`` characters
    (after escaping), the middle becomes ``...``."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="backslashreplace")
    out = "".join(_char(ch) for ch in str(text))
    if len(out) > limit:
        head = (limit - 3) * 2 // 3
        out = f"{out[:head]}...{out[len(out) - (limit - 3 - head):]}"
    return out


def quote(text, limit: int = NAME_LIMIT) -> str:
    """``'text'``, escaped and shortened: how every message shows a name from the model."""
    return f"'{escape(text, limit)}'"


def _char(ch: str) -> str:
    if ch == "\\" or ch == "'":
        return "\\" + ch
    if " " <= ch <= "~":
        return ch
    return _control(ch)


def _control(ch: str) -> str:
    code = ord(ch)
    if ch in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape_controls(message: str) -> str:
    """The safety net: control and non-ASCII characters still in a message, escaped."""
    return "".join(ch if " " <= ch <= "~" else _control(ch) for ch in message)
