"""The network as an SVG graph: a box per layer (name, type, output shape) linking to its row of the
layer table, the layers fused into one op framed together.

Laid out by Graphviz (``dot -Tsvg``) when it is installed; otherwise by :func:`plain_svg`: the
layers in rows by depth (the longest path from the input), which is all a chain or a residual
network needs to be read.
"""

from __future__ import annotations

import html
import shutil
import subprocess

from ..errors import CodegenError

PALETTE = ("#dbeafe", "#dcfce7", "#fef3c7", "#fce7f3", "#ede9fe", "#cffafe", "#fee2e2", "#e0e7ff")
DOT_TIMEOUT = 20     # seconds; a layout that takes longer falls back to the plain one


def _groups(facts: dict) -> dict[str, int]:
    """layer -> op index, for the layers that produce code."""
    return {layer: op["index"] for op in facts["ops"] for layer in op["layers"]}


def _shape(shape) -> str:
    return "x".join(str(v) for v in shape)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return '"' + _escape(text) + '"'


def dot_source(facts: dict) -> str:
    """The Graphviz description: one cluster per op of several layers."""
    group = _groups(facts)
    out = ["digraph network {", '  graph [rankdir=TB, nodesep=0.25, ranksep=0.3, fontname="Helvetica", fontsize=10];',
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, margin="0.08,0.03"];',
           '  edge [arrowsize=0.6, color="#64748b"];']
    by_op: dict[int, list[dict]] = {}
    for layer in facts["layers"]:
        by_op.setdefault(group.get(layer["name"], -1), []).append(layer)

    def node(layer):
        op = group.get(layer["name"])
        fill = "#f1f5f9" if op is None else PALETTE[op % len(PALETTE)]
        label = f'"{_escape(layer["name"])}\\n{_escape(layer["type"])}  {_shape(layer["shape"])}"'
        tip = layer["name"] if op is None else f"{layer['name']}: op {op}"
        return (f"  {_quote(layer['name'])} [label={label}, "
                f"fillcolor={_quote(fill)}, href={_quote('#layer-' + layer['name'])}, tooltip={_quote(tip)}];")

    for op_index, layers in by_op.items():
        if op_index >= 0 and len(layers) > 1:
            op = facts["ops"][op_index]
            out.append(f"  subgraph cluster_op{op_index} {{")
            title = _quote(f"op {op_index}: {op['kind']}")
            out.append(f'    label={title}; style="dashed"; color="#475569"; '
                       'fontsize=8; labeljust=l;')
            out.extend("  " + node(layer) for layer in layers)
            out.append("  }")
        else:
            out.extend(node(layer) for layer in layers)
    for layer in facts["layers"]:
        for src in layer["inputs"]:
            out.append(f"  {_quote(src)} -> {_quote(layer['name'])};")
    out.append("}")
    return "\n".join(out)


def dot_svg(facts: dict) -> str | None:
    """The graph laid out by Graphviz, or None when ``dot`` is not installed or fails."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=dot_source(facts), capture_output=True, text=True,
                              timeout=DOT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0 or "<svg" not in proc.stdout:
        return None
    return proc.stdout[proc.stdout.index("<svg"):]


def _depths(facts: dict) -> dict[str, int]:
    depth: dict[str, int] = {}
    for layer in facts["layers"]:              # topological order
        depth[layer["name"]] = 1 + max((depth[s] for s in layer["inputs"]), default=-1)
    return depth


BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 230, 44, 60, 20, 12


def plain_svg(facts: dict) -> str:
    """A layered layout of our own: one row per depth, boxes left to right in the network's order,
    straight edges; the layers of one op share a colour and an op label."""
    group = _groups(facts)
    depth = _depths(facts)
    rows: dict[int, list[str]] = {}
    for layer in facts["layers"]:
        rows.setdefault(depth[layer["name"]], []).append(layer["name"])
    pos = {}
    for d, names in rows.items():
        for k, name in enumerate(names):
            pos[name] = (PAD + k * (BOX_W + GAP_X), PAD + d * (BOX_H + GAP_Y))
    width = PAD * 2 + max(len(names) for names in rows.values()) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + len(rows) * (BOX_H + GAP_Y) - GAP_Y
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="10">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#64748b"/></marker></defs>']
    for layer in facts["layers"]:
        x1, y1 = pos[layer["name"]]
        for src in layer["inputs"]:
            x0, y0 = pos[src]
            a, b = (x0 + BOX_W / 2, y0 + BOX_H), (x1 + BOX_W / 2, y1)
            if depth[layer["name"]] - depth[src] > 1:      # past the rows between: bow out to the right
                bow = (BOX_W + GAP_X) / 2 / 0.75     # a cubic reaches 3/4 of its control points: mid-gap
                path = (f"M{a[0]},{a[1]} C{a[0] + bow},{a[1] + GAP_Y} {b[0] + bow},{b[1] - GAP_Y} "
                        f"{b[0]},{b[1]}")
            else:
                path = f"M{a[0]},{a[1]} L{b[0]},{b[1]}"
            parts.append(f'<path d="{path}" fill="none" stroke="#64748b" marker-end="url(#arrow)"/>')
    for layer in facts["layers"]:
        name = layer["name"]
        x, y = pos[name]
        op = group.get(name)
        fill = "#f1f5f9" if op is None else PALETTE[op % len(PALETTE)]
        fused = op is not None and len(facts["ops"][op]["layers"]) > 1
        op_note = "no code" if op is None else f"op {op}{' (fused)' if fused else ''}"
        dash = ' stroke-dasharray="4 2"' if fused else ""
        parts.append(f'<a href="#layer-{html.escape(name, quote=True)}"><g>'
                     f'<title>{html.escape(name)}: {html.escape(op_note)}</title>'
                     f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="5" fill="{fill}" '
                     f'stroke="#475569"{dash}/>'
                     f'<text x="{x + 6}" y="{y + 13}" font-weight="bold">{html.escape(name[:36])}</text>'
                     f'<text x="{x + 6}" y="{y + 26}">{html.escape(layer["type"][:26])}  '
                     f'{_shape(layer["shape"])}</text>'
                     f'<text x="{x + 6}" y="{y + 39}" fill="#475569">{html.escape(op_note)}</text></g></a>')
    parts.append("</svg>")
    return "\n".join(parts)


def network_svg(facts: dict, use_dot: bool = True) -> tuple[str, str]:
    """(the SVG, how it was laid out: 'graphviz' or 'plain')."""
    if not facts["layers"]:
        raise CodegenError("the report has no layers to draw")
    svg = dot_svg(facts) if use_dot else None
    return (svg, "graphviz") if svg is not None else (plain_svg(facts), "plain")
