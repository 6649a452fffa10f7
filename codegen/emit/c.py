"""The C backend's files: <name>.h, <name>.c, <name>_weights.c, Makefile, CMakeLists.txt, README.md."""

from __future__ import annotations

from ..ir import Plan
from ..ops import KINDS
from ..ops.int8simd import INT8_SIMD, INT8_SIMD_KERNELS
from ..ops.tiling import ISAS, device_tiers
from .common import KernelOwners, make_context, render
from .dialect import C


def c_kernels(plan: Plan, isas: tuple = tuple(ISAS)) -> list:
    """Per op: None, or (the C kernel its home chose, its weights packed for that kernel). int8 ops
    have a portable kernel each (templates/c/ops/int8/), unless the build is for a microcontroller
    tier or vector instruction sets (``isas``) and their home has a kernel for them."""
    if plan.dtype == "int8":
        if device_tiers(isas):
            return [KINDS[op.kind].c_kernel_int8(op) for op in plan.ops]
        if any(i in INT8_SIMD for i in isas):
            return [KINDS[op.kind].c_kernel_int8_simd(op, isas) for op in plan.ops]
        return [None for op in plan.ops]
    return [KINDS[op.kind].c_kernel(op, isas) for op in plan.ops]


def _align(n: int, to: int = 64) -> int:
    return -(-n // to) * to


def int8_spans(plan: Plan) -> dict:
    """The float API's workspace of an int8 plan: the int8 arena, which also holds the quantized
    input and outputs (at ``in_at`` and ``out_at``, where they are free: see codegen.plan.place)."""
    in_at, out_at = plan.io_stage
    used = [t.buffer for op in plan.ops for t in [*op.inputs, op.output] if t.buffer.kind == "arena"]
    ops_bytes = max((b.offset + b.size for b in used), default=0)      # what the int8 API's ops use
    return dict(in_at=in_at, out_at=out_at, workspace_bytes=_align(plan.arena_bytes), int8_arena_bytes=ops_bytes)


def render_c(net, plan: Plan, options: dict) -> dict[str, str]:
    """Render every file of the C output; returns {file name: text}. Weights are re-packed for the
    kernels the op homes choose (see :mod:`codegen.ops`); ``plan`` is unchanged."""
    isas = tuple(options.get("isas") or ISAS)          # chosen and checked by the target
    kernels = c_kernels(plan, isas)
    ctx = make_context(plan, net, C, options, kernels)
    chosen = [k for k, _ in filter(None, kernels)]
    simd = dict(zeros=max([k.zeros for k in chosen], default=0),
                used=any(KINDS[op.kind].uses_simd for op in plan.ops),
                partial_neon=any(k.partial_neon for k in chosen))
    p = ctx.prefix
    if plan.dtype == "int8":
        spans = int8_spans(plan)
        int8_simd = [k for k in chosen if isinstance(k, INT8_SIMD_KERNELS)]
        # the vector kernels' arrays start on a cache line (a 64-byte load across two lines costs twice)
        lined = {sym for v in ctx.ops if isinstance(v.kernel, INT8_SIMD_KERNELS) for sym in v.weights.values()}
        for w in ctx.weights:
            w.align = 64 if w.symbol in lined else w.align
        header = render("c/network_int8.h.j2", ctx, **spans)
        # the scalar requantization: in every branch, or (only vector kernels and table lookups) in the portable one
        scalar = any(KINDS[op.kind].int8_requantizes and not (k and isinstance(k[0], INT8_SIMD_KERNELS))
                     for op, k in zip(plan.ops, kernels))
        source = render("c/network_int8.c.j2", ctx, isas=isas, simd_header=bool(int8_simd), scalar_requantize=scalar,
                        **spans)
    else:
        header = render("c/network.h.j2", ctx)
        source = render("c/network.c.j2", ctx, simd=simd, isas=isas, kernel_owner=KernelOwners())
    if plan.dtype == "int8":
        runtime = {"codegen_simd_int8.h": render("c/codegen_simd_int8.h.j2", ctx, isas=isas)} if int8_simd else {}
    else:
        runtime = {"codegen_simd.h": render("c/codegen_simd.h.j2", ctx, isas=isas)} if simd["used"] else {}
    return {
        f"{p}.h": header,
        f"{p}.c": source,
        **runtime,
        **ctx.weight_files(),
        "Makefile": render("c/Makefile.j2", ctx),
        "CMakeLists.txt": render("c/CMakeLists.txt.j2", ctx),
        "README.md": render("c/README.md.j2", ctx, simd_header=next(iter(runtime), "")),
    }
