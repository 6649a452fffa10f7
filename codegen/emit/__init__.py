"""Emission: a Plan rendered as source files from the Jinja templates in templates/."""

from __future__ import annotations

from ..errors import UnsupportedError
from ..ir import Plan
from .c import render_c
from .cuda import render_cuda

RENDERERS = {"c": render_c, "cuda": render_cuda}


def render_files(net, plan: Plan, target: str = "c", options: dict | None = None) -> dict[str, str]:
    """{file name: text} for ``target`` ('c' or 'cuda')."""
    options = dict(options or {})
    options.setdefault("poison_dead", False)
    options.setdefault("weights_section", None)
    options.setdefault("toolchain", None)
    options.setdefault("source", "")
    renderer = RENDERERS.get(target)
    if renderer is None:
        raise UnsupportedError(f"unknown target {target!r}; expected 'c' or 'cuda'")
    return renderer(net, plan, options)
