"""The first ops of a network run patch by patch as one op (``patches``, MCUNetV2-style; issue 17,
peak RAM): their tensors are never stored whole, only the regions one patch needs.

**How.** The op's last output is split into a grid of spatial patches (all channels). For each
patch, every op of the prefix (its *steps*: input normalization, convolutions with batch norm
folded and activation fused, additions) computes the region of its output that the steps after
it need for that patch (for a convolution reading rows ``y0 .. y1``: input rows ``y0 * sh - pt
.. y1 * sh - pt + (kh - 1) * dh``, clipped to the tensor; a tensor read by several steps: the
bounding box of their needs), into a patch buffer in the op's scratch; the last step writes its
patch into the op's output, which is stored whole. Neighbouring patches need overlapping regions
(the *halo*): those values are computed once per patch that needs them, and the extra
multiply-adds are reported (:attr:`Patches.extra_macs`, ``codegen build --plan``).

**Arithmetic.** Each step is a plain loop over its region (generic C in
``templates/c/ops/patches.c.j2``, no SIMD kernels: RAM first, time second): a convolution sums
over its taps inside the input (padding taps skipped) then adds nothing else, the same terms as
the reference; regions are a static table (``y0, x0, h, w`` per patch and step).

**Memory.** The arena holds the op's input (for MobileNetV2 the network input, the caller's), its
output and the patch buffers (``Op.scratch``, live only while the op runs; buffers of steps not
live at the same time within a patch share bytes).

**When.** Only when asked: ``patches=N`` (``codegen build --patches N``) splits the last output
into N x N patches, and the planner (:func:`codegen.plan.make_plan`) tries every prefix that can
run this way (:func:`prefixes`: ops from the first that are normalizations, convolutions and
additions, every tensor inside read only inside, one input from outside) and keeps the one with
the smallest arena (fewest extra multiply-adds on ties). Float C plans only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Op, Tensor
from .base import OpKind, op_kind

STEP_KINDS = ("normalize", "conv", "add")
ALIGN = 16              # floats: every patch buffer starts 64-byte aligned in the scratch
MAX_PREFIX = 24         # ops the planner considers for one patch op


@dataclass(frozen=True)
class Step:
    """One op of the prefix: its kind, attributes, fused activation, layers, output shape, and its
    sources (per input: -1 the op's input, k the output of step k)."""
    kind: str
    attrs: object
    act: object
    layers: tuple
    shape: tuple
    srcs: tuple


@dataclass(frozen=True)
class Patches:
    """The steps of a ``patches`` op, the grid of patches over the last step's output, the region
    ``(y0, x0, h, w)`` each step computes per patch, where each step's patch buffer lies in the
    scratch (None for the last step: the op's output), and the multiply-adds (``macs``: as run;
    ``extra_macs``: recomputed halos, over the prefix's own; below 0 when the patches skip rows or
    columns no later op reads, e.g. a stride-2 successor's last row)."""
    steps: tuple
    grid: tuple
    regions: tuple
    offsets: tuple
    scratch: int
    macs: int
    extra_macs: int

    def describe(self) -> str:
        base = self.macs - self.extra_macs
        pct = f" ({100 * self.extra_macs / base:+.1f} % of these ops')" if base else ""
        return (f" {self.grid[0]}x{self.grid[1]} patches over {len(self.steps)} ops, patch buffers "
                f"{self.scratch} floats, extra MACs {self.extra_macs:,}{pct}")


def _consumers(ops: list[Op]) -> dict[int, list[Op]]:
    users: dict[int, list[Op]] = {}
    for op in ops:
        for t in op.inputs:
            users.setdefault(id(t), []).append(op)
    return users


def _step_ok(op: Op) -> bool:
    if op.kind not in STEP_KINDS or op.scratch is not None or op.output.parent is not None:
        return False
    if op.kind == "add":
        return all(t.shape == op.output.shape for t in op.inputs)
    return len(op.inputs) == 1


def prefixes(ops: list[Op], net_outputs: list[Tensor]) -> list[int]:
    """The lengths n (at least 2) such that ``ops[:n]`` can run as one ``patches`` op: every op a step
    kind, one tensor from outside read (the op's input), every tensor made inside read only inside
    except the last op's output, which is no network output read by the prefix."""
    users = _consumers(ops)
    outs = {id(t) for t in net_outputs}
    found = []
    for n in range(2, min(len(ops), MAX_PREFIX) + 1):
        run = ops[:n]
        if not all(_step_ok(op) for op in run):
            break
        made = {id(op.output) for op in run}
        inside = {id(op) for op in run}
        outside = {id(t) for op in run for t in op.inputs if id(t) not in made}
        if len(outside) != 1:
            continue
        if any(id(op.output) in outs or any(id(u) not in inside for u in users.get(id(op.output), []))
               for op in run[:-1]):
            continue
        if any(id(u) in inside for u in users.get(id(run[-1].output), [])):
            continue
        found.append(n)
    return found


def _need(step: Step, region, k: int, src_shape) -> tuple:
    """The region of input ``k`` of ``step`` that computing ``region`` of its output reads (clipped)."""
    y0, x0, h, w = region
    if step.kind != "conv":
        return region
    g = step.attrs
    ih, iw = src_shape[:2]
    lo_y, hi_y = max(0, y0 * g.sh - g.pt), min(ih, (y0 + h - 1) * g.sh - g.pt + (g.kh - 1) * g.dh + 1)
    lo_x, hi_x = max(0, x0 * g.sw - g.pl), min(iw, (x0 + w - 1) * g.sw - g.pl + (g.kw - 1) * g.dw + 1)
    if hi_y <= lo_y or hi_x <= lo_x:
        return (0, 0, 0, 0)
    return (lo_y, lo_x, hi_y - lo_y, hi_x - lo_x)


def _union(a, b):
    if not a[2] or not a[3]:
        return b
    if not b[2] or not b[3]:
        return a
    y0, x0 = min(a[0], b[0]), min(a[1], b[1])
    y1, x1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (y0, x0, y1 - y0, x1 - x0)


def _splits(n: int, parts: int) -> list[tuple[int, int]]:
    cuts = [round(i * n / parts) for i in range(parts + 1)]
    return [(a, b - a) for a, b in zip(cuts, cuts[1:])]


def _layout(steps: tuple, sizes: list[int]) -> tuple[list, int]:
    """Scratch offsets (floats) of the patch buffers of every step but the last: first fit, largest
    first, over each buffer's life within a patch (its step to its last reader)."""
    last = {k: max([j for j, s in enumerate(steps) if k in s.srcs], default=k) for k in range(len(steps) - 1)}
    offsets: dict[int, int] = {}
    total = 0
    rounded = lambda n: -(-n // ALIGN) * ALIGN  # noqa: E731
    for k in sorted(last, key=lambda k: (-sizes[k], k)):
        busy = [(offsets[j], offsets[j] + rounded(sizes[j])) for j in offsets
                if not (last[j] < k or last[k] < j)]
        for off in sorted({0, *(hi for _, hi in busy)}):
            if all(off + rounded(sizes[k]) <= lo or hi <= off for lo, hi in busy):
                break
        offsets[k] = off
        total = max(total, off + rounded(sizes[k]))
    return [offsets.get(k) for k in range(len(steps))], total


def patch_prefix(ops: list[Op], n: int, grid: int) -> list[Op]:
    """Replace ``ops[:n]`` (a length from :func:`prefixes`) by one ``patches`` op over a grid of
    ``grid`` x ``grid`` patches (fewer along a side shorter than that)."""
    run, rest = ops[:n], ops[n:]
    index = {id(op.output): k for k, op in enumerate(run)}
    source = next(t for op in run for t in op.inputs if id(t) not in index)
    steps = tuple(Step(op.kind, op.attrs, op.act, tuple(op.layers), op.output.shape,
                       tuple(index.get(id(t), -1) for t in op.inputs)) for op in run)
    oh, ow = steps[-1].shape[:2]
    gy, gx = min(grid, oh), min(grid, ow)
    regions = []
    for y0, h in _splits(oh, gy):
        for x0, w in _splits(ow, gx):
            need: list = [(0, 0, 0, 0)] * len(steps)
            need[-1] = (y0, x0, h, w)
            for k in range(len(steps) - 1, -1, -1):
                for s in steps[k].srcs:
                    if s >= 0:
                        need[s] = _union(need[s], _need(steps[k], need[k], 0, steps[s].shape))
            regions.append(tuple(need))
    sizes = [max(r[k][2] * r[k][3] for r in regions) * steps[k].shape[2] for k in range(len(steps))]
    offsets, total = _layout(steps, sizes)
    macs = sum(r[k][2] * r[k][3] * s.shape[2] * s.attrs.cg * s.attrs.kh * s.attrs.kw
               for r in regions for k, s in enumerate(steps) if s.kind == "conv")
    base = sum(s.attrs.macs for s in steps if s.kind == "conv")
    attrs = Patches(steps, (gy, gx), tuple(regions), tuple(offsets), total, macs, macs - base)
    weights = {f"p{k}_{role}": w for k, op in enumerate(run) for role, w in op.weights.items()}
    layers = [name for op in run for name in op.layers]
    op = Op("patches", run[0].name, layers, [source], run[-1].output, attrs, weights)
    op.scratch = Tensor(f"{run[0].name}_patch", (1, 1, max(total, 1)))
    return [op, *rest]


def extra_macs(plan) -> int:
    """Multiply-adds the plan's ``patches`` ops recompute (halos)."""
    return sum(op.attrs.extra_macs for op in plan.ops if op.kind == "patches")


def describe_patches(plan) -> list[str]:
    """One line per ``patches`` op of ``plan``."""
    return [f"op {i}: {op.layers[0]} .. {op.layers[-1]}:{op.attrs.describe()}, "
            f"{op.scratch.size * plan.element_bytes:,} bytes" for i, op in enumerate(plan.ops) if op.kind == "patches"]


@op_kind
class PatchesKind(OpKind):
    name = "patches"
