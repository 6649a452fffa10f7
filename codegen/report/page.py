"""``report.html``: the facts (:mod:`codegen.report.facts`) and the generated files rendered into one
self-contained page (inline CSS, SVG and script; nothing fetched) from ``templates/report/``.

Links: each layer row points at the line that defines the function implementing it (an element
``id="src-<file>-L<line>"``); that line points back at the rows of its layers
(``id="layer-<name>"``), and each call in ``predict`` at its op's function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import jinja2
from markupsafe import Markup, escape

from ..resources import templates_dir
from . import graph, plots, sources

_ENV: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                                  undefined=jinja2.StrictUndefined, autoescape=True, trim_blocks=True,
                                  lstrip_blocks=True)
        _ENV.filters["shape"] = lambda s: "x".join(str(int(v)) for v in s)
        _ENV.filters["num"] = lambda n: "" if n is None else f"{n:,}"
    return _ENV


def file_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def line_id(name: str, line: int) -> str:
    return f"src-{file_slug(name)}-L{line}"


@dataclass
class SourceView:
    """One generated file as shown: its line numbers and highlighted text, the link targets marked."""
    name: str
    slug: str
    numbers: str                 # the gutter, one number (or '...') per line
    code: Markup                 # the highlighted lines, joined
    lines: int
    elided: int = 0              # lines of weight values left out


@dataclass
class Links:
    """Per line of a file: the element id to give it and the HTML to add after it."""
    ids: dict[int, str] = field(default_factory=dict)
    notes: dict[int, Markup] = field(default_factory=dict)


def _layer_links(layers: list[str]) -> Markup:
    return Markup(", ").join(Markup('<a href="#layer-{0}">{0}</a>').format(name) for name in layers)


def source_view(name: str, text: str, links: Links, elide: bool = False) -> SourceView:
    """``text`` highlighted, with line numbers, the ``links`` placed; ``elide``: runs of weight values cut."""
    count = text.count("\n") + (0 if text.endswith("\n") else 1)
    shown = sources.elide_values(text) if elide else [(k, None) for k in range(1, count + 1)]
    body = "\n".join(line for k, line in shown if k is not None) if elide else text
    elided = sum(n for k, n in shown if k is None)
    html_lines = iter(sources.highlight_lines(body))
    out, gutter = [], []
    for k, skipped in shown:
        if k is None:
            gutter.append("\u22ee")
            out.append(f'<span class="elided">\u2026 {skipped:,} lines of values left out \u2026</span>')
            continue
        line = next(html_lines, "")                # HTML from Pygments' formatter: escaped already
        gutter.append(str(k))
        if k in links.ids:
            line = f'<span class="target" id="{escape(links.ids[k])}">{line}</span>'
        if k in links.notes:
            line += str(links.notes[k])
        out.append(line)
    numbers = "\n".join(gutter)
    code = Markup("\n".join(out))
    return SourceView(name, file_slug(name), numbers, code, count, elided)


def _main_source(facts: dict, files: dict[str, str]) -> str | None:
    prefix = facts["network"]["prefix"]
    for ext in (".c", ".cu"):
        if f"{prefix}{ext}" in files:
            return f"{prefix}{ext}"
    return None


def build_page(facts: dict, files: dict[str, str], use_dot: bool = True) -> str:
    """The HTML of the report of ``facts`` with the generated ``files`` (name -> text)."""
    prefix = facts["network"]["prefix"]
    main = _main_source(facts, files)
    weights_name = f"{prefix}_weights.c"
    weights = sources.weight_arrays(files.get(weights_name, ""))
    ops = facts["ops"]
    code = sources.locate(files.get(main, ""), prefix, len(ops), weights) if main else [sources.OpCode() for _ in ops]
    links = Links()
    weight_links = Links()
    weight_lines = {}
    if weights_name in files:
        for k, line in enumerate(files[weights_name].splitlines(), 1):
            m = re.match(r"^(?:extern const \w+ |\s*\"\s*\.global )([A-Za-z_]\w*)", line)
            if m and m.group(1) not in weight_lines:
                weight_lines[m.group(1)] = k
    for op, oc in zip(ops, code):
        if oc.definition:
            links.ids[oc.definition] = line_id(main, oc.definition)
            links.notes[oc.definition] = Markup('<span class="back">\u2190 op {}: {}</span>').format(
                op["index"], _layer_links(op["layers"]))
        if oc.call:
            links.ids[oc.call] = line_id(main, oc.call)
            if oc.definition:
                links.notes[oc.call] = Markup('<span class="back">\u2192 <a href="#{}">definition</a></span>').format(
                    line_id(main, oc.definition))
        for sym in oc.weights:
            k = weight_lines.get(sym)
            if k:
                weight_links.ids[k] = line_id(weights_name, k)
                weight_links.notes[k] = Markup('<span class="back">\u2190 {}</span>').format(_layer_links(op["layers"]))
    views = []
    for name in sorted(files, key=lambda n: (n != main, not n.endswith(".h"), n)):
        text = files[name]
        if name == main:
            views.append(source_view(name, text, links))
        elif name == weights_name:
            views.append(source_view(name, text, weight_links, elide=True))
        elif name.endswith((".h", ".c", ".cu")) and name.startswith(prefix):
            views.append(source_view(name, text, Links()))
    weights_per_op = [sum(oc.weights.values()) for oc in code]
    svg, layout = graph.network_svg(facts, use_dot=use_dot)
    hw = plots.peak(facts)
    context = dict(
        f=facts, net=facts["network"], plan=facts["plan"], target=facts["target"], ops=ops,
        rows=_rows(facts, code, main), sources=views, graph_svg=Markup(svg), graph_layout=layout,
        memory_svg=Markup(plots.memory_svg(facts)), flash_svg=Markup(plots.flash_svg(facts, weights_per_op)),
        flash_parts=plots.flash_parts(facts, weights_per_op), peak=hw,
        peak_op=None if hw is None else ops[hw[0]], style_css=Markup(sources.style_css()),
        main_source=main, code=code)
    return environment().get_template("report/report.html.j2").render(**context)


def _measure(facts: dict, layer: str) -> tuple[str, bool]:
    """(the verification column's text, whether it is flagged) for a layer row: the per-layer build
    (which fuses less than the plan) measures each of its ops at its last layer."""
    per = facts.get("per_layer")
    if per is None:
        return "", False
    label = next((k for k in per["per_layer"] if k.split("+")[-1] == layer), None)
    if label is None:
        return "", False
    value = per["per_layer"][label]
    text = f"{value:.1f} dB" if per["kind"] == "int8" else f"{value:.2e}"
    return text, label == per.get("flagged")


def _rows(facts: dict, code: list, main: str | None) -> list[dict]:
    """One row per layer: the layer's facts, its op, the op's output place, links, measures."""
    op_of = {layer: op for op in facts["ops"] for layer in op["layers"]}
    rows = []
    for layer in facts["layers"]:
        op = op_of.get(layer["name"])
        oc = code[op["index"]] if op is not None else None
        last = op is not None and op["layers"][-1] == layer["name"]
        measure, flagged = _measure(facts, layer["name"])
        rows.append(dict(
            layer=layer, op=op, fused=op is not None and len(op["layers"]) > 1, last=last,
            fn=oc.fn if oc else None,
            href=line_id(main, oc.definition) if oc and oc.definition and main else None,
            measure=measure, flagged=flagged,
            instructions=op["instructions"] if op is not None and last else None,
            micros=op["seconds"] * 1e6 if op is not None and last and op.get("seconds") is not None else None))
    return rows
