"""The C backend's files: <name>.h, <name>.c, <name>_weights.c, Makefile, CMakeLists.txt, README.md."""

from __future__ import annotations

from ..plan import Plan
from .c_kernels import specialize
from .common import make_context, render
from .dialect import C


def render_c(net, plan: Plan, options: dict) -> dict[str, str]:
    """Render every file of the C output; returns {file name: text}. Convolution and fully connected
    weights are re-packed for the kernels (see :mod:`codegen.emit.c_kernels`); ``plan`` is unchanged."""
    plan, zeros = specialize(plan)
    ctx = make_context(plan, net, C, options)
    simd = dict(zeros=zeros,
                used=any(op.kind in ("conv", "fc") for op in plan.ops),
                partial_neon=any(op.kind == "conv" and op.attrs["K"]["kind"] == "depthwise"
                                 and op.attrs["IC"] % op.attrs["K"]["tiles"]["neon"].CH for op in plan.ops))
    p = ctx.prefix
    return {
        f"{p}.h": render("c/network.h.j2", ctx),
        f"{p}.c": render("c/network.c.j2", ctx, simd=simd),
        f"{p}_weights.c": render("c/weights.c.j2", ctx),
        "Makefile": render("c/Makefile.j2", ctx),
        "CMakeLists.txt": render("c/CMakeLists.txt.j2", ctx),
        "README.md": render("c/README.md.j2", ctx),
    }
