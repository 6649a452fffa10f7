"""Emission: a Plan rendered as source files from the Jinja templates in templates/."""

from __future__ import annotations

from ..errors import UnsupportedError
from ..plan import Plan


def render_files(net, plan: Plan, target: str = "c", options: dict | None = None) -> dict[str, str]:
    """{file name: text} for ``target`` ('c' or 'cuda')."""
    options = dict(options or {})
    options.setdefault("poison_dead", False)
    options.setdefault("weights_section", None)
    options.setdefault("toolchain", None)
    options.setdefault("source", "")
    if target == "c":
        from .c import render_c
        return render_c(net, plan, options)
    if target == "cuda":
        from .cuda import render_cuda
        return render_cuda(net, plan, options)
    raise UnsupportedError(f"unknown target {target!r}; expected 'c' or 'cuda'")
