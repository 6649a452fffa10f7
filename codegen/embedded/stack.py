"""The worst-case stack of a function from GCC's ``-fcallgraph-info=su`` output."""

from __future__ import annotations

import re


# --- stack estimate (GCC -fcallgraph-info=su) ---------------------------------------------

def stack_estimate(ci_text: str, root: str) -> tuple[int | None, list[str]]:
    """(worst-case stack of ``root`` over the call graph, external functions called) from a .ci
    file; None if ``root`` is not in it or a frame is dynamic."""
    sizes: dict[str, int | None] = {}
    edges: dict[str, list[str]] = {}
    for m in re.finditer(r'node: \{ title: "([^"]+)" label: "([^"]*)"([^}]*)\}', ci_text):
        title, label = m.group(1), m.group(2)
        s = re.search(r"(\d+) bytes \(([^)]*)\)", label)
        if s:
            sizes[title] = int(s.group(1)) if s.group(2) in ("static", "dynamic,bounded") else None
    for m in re.finditer(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', ci_text):
        edges.setdefault(m.group(1), []).append(m.group(2))
    if root not in sizes:
        return None, []
    external: set[str] = set()
    memo: dict[str, int | None] = {}

    def depth(fn: str, seen: frozenset) -> int | None:
        if fn in memo:
            return memo[fn]
        if fn not in sizes:
            external.add(fn)
            return 0
        own = sizes[fn]
        if own is None or fn in seen:
            return None
        worst = 0
        for callee in edges.get(fn, []):
            d = depth(callee, seen | {fn})
            if d is None:
                memo[fn] = None
                return None
            worst = max(worst, d)
        memo[fn] = own + worst
        return memo[fn]

    return depth(root, frozenset()), sorted(external)
