"""The generated sources as the report shows them: where each op's function is defined and called,
which weight arrays it owns, and the text highlighted with Pygments, line by line.

The links come from the generated code itself, not from a second copy of the emitter's naming:
in C, every call in ``<name>_predict_ws`` is preceded by its op's comment (``/* conv_1+relu_1: ...
(bytes) */``, see ``templates/c/network.c.j2``), the calls in op order; in CUDA, the launch
switch has one ``case <op index>:`` per op. A function's definition is the first line that
declares it with a body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import CodegenError

_C_CALL_NOTE = re.compile(r"^\s+/\* .* \(bytes\) \*/$")
_C_CALL = re.compile(r"^\s+([A-Za-z_]\w*)\(")
_CUDA_CASE = re.compile(r"^\s+case (\d+):\s+/\*")
_CUDA_LAUNCH = re.compile(r"_LAUNCH\(([A-Za-z_]\w*),")
_WEIGHT_DECL = re.compile(r"^extern const (float|int8_t|int32_t) ([A-Za-z_]\w*)\[(\d+)\];", re.M)
_WEIGHT_BLOB = re.compile(r'^\s*"\s*\.size ([A-Za-z_]\w*), (\d+)\\n"', re.M)
_ELEMENT = {"float": 4, "int8_t": 1, "int32_t": 4}
# the weights' values: long runs of literals that nobody reads in a report
_VALUES = re.compile(r"^\s*(?:[-+ ]?(?:0x[0-9a-fA-F.]+p[-+]?\d+f?|-?\d+),\s*)+(?:[-+ ]?(?:0x[0-9a-fA-F.]+p[-+]?\d+f?|-?\d+))?,?\s*$")


@dataclass
class OpCode:
    """Where an op lives in the generated source (1-based line numbers; None: not found)."""
    fn: str | None = None
    definition: int | None = None
    call: int | None = None
    weights: dict[str, int] = field(default_factory=dict)     # symbol -> bytes


def _definition(heads: list[tuple[int, str]], fn: str) -> int | None:
    """The line of ``fn``'s definition among ``heads``, the (line number, text) of lines that start with a
    name and hold a '(' (declarations end with ';')."""
    pattern = re.compile(rf"\b{re.escape(fn)}\s*\(")
    for k, line in heads:
        if pattern.search(line) and not line.rstrip().endswith(";"):
            return k
    return None


def _c_calls(lines: list[str], prefix: str) -> list[tuple[str, int]]:
    calls = []
    for k, line in enumerate(lines):
        if not _C_CALL_NOTE.match(line):
            continue
        for j in range(k + 1, min(k + 4, len(lines))):
            m = _C_CALL.match(lines[j])
            if m and m.group(1) != f"{prefix}_profile_op":
                calls.append((m.group(1), j + 1))
                break
    return calls


def _cuda_calls(lines: list[str], n_ops: int) -> list[tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    for k, line in enumerate(lines):
        m = _CUDA_CASE.match(line)
        if not m or int(m.group(1)) in found or int(m.group(1)) >= n_ops:
            continue
        launch = _CUDA_LAUNCH.search(lines[k + 1]) if k + 1 < len(lines) else None
        if launch:
            found[int(m.group(1))] = (launch.group(1), k + 2)
    return [found[i] for i in range(n_ops)] if len(found) == n_ops else []


def weight_arrays(text: str) -> dict[str, int]:
    """symbol -> bytes of the arrays a ``<name>_weights.c`` defines (C literals or a .incbin blob)."""
    arrays = {sym: int(n) * _ELEMENT[ctype] for ctype, sym, n in _WEIGHT_DECL.findall(text)}
    arrays.update({sym: int(n) for sym, n in _WEIGHT_BLOB.findall(text)})
    return arrays


def locate(source: str, prefix: str, n_ops: int, weights: dict[str, int]) -> list[OpCode]:
    """Each op's function, its definition and call lines, and its weight arrays (by symbol:
    ``<fn>_<role>``); empty OpCodes where the source does not say."""
    lines = source.splitlines()
    calls = _c_calls(lines, prefix) or _cuda_calls(lines, n_ops)
    if len(calls) != n_ops:
        return [OpCode() for _ in range(n_ops)]
    heads = [(k, line) for k, line in enumerate(lines, 1) if line[:1].isalpha() or line[:1] == "_" if "(" in line]
    out = [OpCode(fn, _definition(heads, fn), call) for fn, call in calls]
    by_length = sorted(range(n_ops), key=lambda i: -len(out[i].fn))
    for sym, nbytes in weights.items():
        for i in by_length:
            if sym.startswith(out[i].fn + "_"):
                out[i].weights[sym] = nbytes
                break
    return out


# --- highlighting -------------------------------------------------------------------------

_KEYWORDS = (r"break|case|const|continue|default|do|else|enum|extern|for|goto|if|inline|return|sizeof|static|"
             r"struct|switch|typedef|union|volatile|while|restrict|__restrict__|__global__|__device__|__host__|"
             r"__shared__|__launch_bounds__|__attribute__|__syncthreads")
_TYPES = r"void|char|short|int|long|float|double|signed|unsigned|size_t|u?int(?:8|16|32|64)_t|dim3|cudaStream_t|bool"
# one pass over the text, one match per token: the generated code needs no more than comments,
# preprocessor lines, strings, keywords, types, function names and numbers (Pygments' full C lexer
# tries its rules one by one and takes seconds on a 15,000-line file)
_TOKENS = re.compile("|".join([
    r"(?P<comment>/\*[\s\S]*?\*/|//[^\n]*)",
    r"(?P<preproc>^[ \t]*#[ \t]*[a-z]+(?:\\\n|[^\n])*)",
    r"(?P<string>\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*')",
    rf"(?P<keyword>\b(?:{_KEYWORDS})\b)",
    rf"(?P<type>\b(?:{_TYPES})\b)",
    r"(?P<function>\b[A-Za-z_]\w*(?=\())",
    r"(?P<number>\b(?:0[xX][0-9a-fA-F.]+(?:[pP][-+]?\d+)?|\d+\.?\d*(?:[eE][-+]?\d+)?)[fFuUlL]*)",
]), re.M)


def _token_types() -> dict:
    try:
        from pygments.token import Comment, Keyword, Name, Number, String, Text
    except ImportError:
        raise CodegenError("the report needs pygments: pip install 'codegen[report]'") from None
    return dict(comment=Comment, preproc=Comment.Preproc, string=String, keyword=Keyword, type=Keyword.Type,
                function=Name.Function, number=Number, text=Text)


def tokens(text: str):
    """(Pygments token type, text) for ``text``; everything between the matches is plain text (merged)."""
    kinds = _token_types()
    plain = kinds["text"]
    at = 0
    for m in _TOKENS.finditer(text):
        kind = m.lastgroup
        if m.start() > at:
            yield plain, text[at:m.start()]
        yield kinds[kind], m.group()
        at = m.end()
    if at < len(text):
        yield plain, text[at:]


def highlight_lines(text: str) -> list[str]:
    """``text`` as HTML, one string per line (every span closed on its line), classes of Pygments' default
    style (:func:`style_css`)."""
    try:
        from pygments import format as pyg_format
        from pygments.formatters import HtmlFormatter
    except ImportError:
        raise CodegenError("the report needs pygments: pip install 'codegen[report]'") from None
    html = pyg_format(tokens(text), HtmlFormatter(nowrap=True))
    lines = html.split("\n")
    if lines and lines[-1] == "" and text.endswith("\n"):
        lines.pop()
    return lines


def style_css() -> str:
    """Pygments' CSS for the highlighted sources (scoped to ``.src``)."""
    from pygments.formatters import HtmlFormatter
    return HtmlFormatter(style="default").get_style_defs(".src")


def elide_values(text: str, keep: int = 2) -> list[tuple[int, str] | tuple[None, int]]:
    """The lines of a weights file with the runs of literal values cut to ``keep`` lines: (line number,
    text), and (None, count) where ``count`` lines were left out."""
    out, run = [], 0
    for k, line in enumerate(text.splitlines(), 1):
        if _VALUES.match(line):
            run += 1
            if run > keep:
                if out and out[-1][0] is None:
                    out[-1] = (None, out[-1][1] + 1)
                else:
                    out.append((None, 1))
                continue
        else:
            run = 0
        out.append((k, line))
    return out
