"""The report's plots, drawn by matplotlib as inline SVG (text kept as text, so the page can be
searched): the arena over time and the flash breakdown."""

from __future__ import annotations

import io

from ..errors import CodegenError


def occupancy(facts: dict) -> list[int]:
    """Bytes of arena buffers live while each op runs (written at or before it, read at or after it)."""
    live = [0] * len(facts["ops"])
    for b in facts["buffers"]:
        for i in range(b["first"], min(b["last"], len(live) - 1) + 1):
            live[i] += b["bytes"]
    return live


def peak(facts: dict) -> tuple[int, int] | None:
    """(op index, bytes) of the op at the arena's high-water mark; None without arena buffers."""
    live = occupancy(facts)
    if not live or max(live) == 0:
        return None
    i = max(range(len(live)), key=lambda k: (live[k], -k))
    return i, live[i]


def flash_parts(facts: dict, weights_per_op: list[int]) -> list[tuple[str, int]]:
    """(what, bytes) of flash: each op's weights, then (on a device) the code, the library, the rest."""
    parts = [(f"op {op['index']} {op['label']}", w) for op, w in zip(facts["ops"], weights_per_op) if w]
    fp = facts["target"].get("footprint")
    if fp:
        other = fp["constants"] + fp["weights_in_section"] - sum(weights_per_op)
        parts += [("code (the network's functions)", fp["code"]), ("library members", fp["lib_code"]),
                  ("other constants", max(other, 0)), ("initial values of static data", fp["data"])]
    return parts


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CodegenError("the report needs matplotlib: pip install 'codegen[report]'") from None
    return Figure(figsize=(width, height), dpi=100)


TOP_OPS = 12        # ops with their own bar in the flash plot


def _collections():
    import matplotlib.collections
    return matplotlib.collections


def _svg(fig, salt: str) -> str:
    import matplotlib
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def memory_svg(facts: dict) -> str:
    """Live arena bytes per op (the peak op named) above the arena's layout: one rectangle per
    buffer, from the op that writes it to the last that reads it, at its byte offsets."""
    ops, buffers = facts["ops"], facts["buffers"]
    live = occupancy(facts)
    arena = facts["plan"]["arena_bytes"]
    fig = _figure(9.5, 6.2)
    PolyCollection = _collections().PolyCollection
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.4])
    fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.08, hspace=0.18)
    xs = list(range(len(ops)))
    top.bar(xs, live, color="#60a5fa", width=0.8, label="live buffers")
    top.axhline(arena, color="#dc2626", linestyle="--", linewidth=1, label=f"arena {arena:,} bytes")
    top.set_ylabel("bytes live")
    top.set_title("arena occupancy per op", fontsize=10, loc="left")
    hw = peak(facts)
    if hw is not None:
        i, nbytes = hw
        top.bar([i], [nbytes], color="#dc2626", width=0.8, label="high-water mark")
        top.annotate(f"peak {nbytes:,} B at op {i}: {_short(ops[i]['label'], 40)}", xy=(i, nbytes),
                     xytext=(0.5, 0.97), textcoords="axes fraction", ha="center", va="top", fontsize=9,
                     arrowprops=dict(arrowstyle="->", color="#334155"))
    top.set_ylim(0, max([arena, *live, 1]) * 1.3)
    top.legend(loc="upper right", fontsize=7, frameon=False, bbox_to_anchor=(1, 0.88))
    colors = ("#93c5fd", "#86efac", "#fcd34d", "#f9a8d4", "#c4b5fd", "#67e8f9", "#fca5a5")
    boxes = [[(b["first"] - 0.4, b["offset"]), (b["last"] + 0.4, b["offset"]),
              (b["last"] + 0.4, b["offset"] + b["bytes"]), (b["first"] - 0.4, b["offset"] + b["bytes"])]
             for b in buffers]
    bottom.add_collection(PolyCollection(boxes, facecolors=[colors[k % len(colors)] for k in range(len(boxes))],
                                         edgecolors="#334155", linewidths=0.5))
    for b in buffers:
        if b["bytes"] >= arena * 0.08 and b["last"] - b["first"] >= 1:
            bottom.text(b["first"] - 0.3, b["offset"] + b["bytes"] / 2, _short(b["tensors"][0], 18), fontsize=6,
                        va="center")
    bottom.set_ylim(0, max(arena, 1))
    bottom.invert_yaxis()
    bottom.set_ylabel("arena byte offset")
    bottom.set_xlabel("op (in the order predict runs them)")
    bottom.set_title("buffers: lifetime (ops) x place (bytes)", fontsize=10, loc="left")
    step = max(1, len(ops) // 25)
    bottom.set_xticks(xs[::step])
    bottom.set_xlim(-0.8, max(len(ops) - 0.2, 0.8))
    return _svg(fig, "memory")


def flash_svg(facts: dict, weights_per_op: list[int]) -> str:
    """One horizontal bar per part of flash, largest first."""
    parts = sorted(flash_parts(facts, weights_per_op), key=lambda p: -p[1])
    ops = [p for p in parts if p[0].startswith("op ")]
    if len(ops) > TOP_OPS + 1:                 # the largest ops' weights, the rest as one bar (the table has all)
        rest = ops[TOP_OPS:]
        parts = [p for p in parts if p not in rest] + [(f"{len(rest)} other ops' weights", sum(n for _, n in rest))]
        parts.sort(key=lambda p: -p[1])
    if not parts:
        parts = [("no weights", 0)]
    height = 0.9 + 0.2 * len(parts)
    fig = _figure(9.5, height)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.3, right=0.97, top=1 - 0.35 / height, bottom=0.45 / height)
    ys = list(range(len(parts)))
    colors = ["#f59e0b" if name.startswith("op ") or name.endswith("weights") else "#6366f1" for name, _ in parts]
    ax.barh(ys, [n for _, n in parts], color=colors)
    ax.set_yticks(ys, [_short(name, 44) for name, _ in parts], fontsize=7)
    ax.invert_yaxis()
    total = sum(n for _, n in parts)
    for y, (_, n) in zip(ys, parts):
        ax.text(n, y, f" {n:,}", va="center", fontsize=6)
    fp = facts["target"].get("footprint")
    what = f"flash {fp['flash']:,} bytes on {fp['device']}" if fp else f"weights {total:,} bytes (host build: no map file)"
    ax.set_title(f"{what}: weights per op (amber), code and library (indigo)", fontsize=10, loc="left")
    ax.set_xlabel("bytes")
    ax.set_xlim(0, max(n for _, n in parts) * 1.18 + 1)
    return _svg(fig, "flash")
