"""What a plan's arena holds while each op runs (issue 17: the plan explains memory).

The planner (:func:`codegen.plan.place`) gives every arena buffer an offset and a lifetime (the
ops from its first write to its last read). :func:`op_memory` turns that back into a per-op view:
which tensors are live in the arena while the op runs (its inputs, its output, and whatever
later ops still need), their byte ranges, and the high-water mark, the highest arena byte in
use. The op with the highest mark sets the arena size; ``codegen build --plan`` prints the table
(:func:`describe_memory`) so a user sees which layer to change, fuse or stream.

Only arena buffers count: the network's input and outputs are the caller's. An int8 plan also
stages the float API's quantized input (until its last reader) and outputs (from the first op
writing one) in the arena; they appear as ``(quantized input)`` and ``(quantized outputs)``.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN_BYTES = 64        # every arena buffer starts at a multiple of this many bytes


@dataclass(frozen=True)
class Live:
    """An arena buffer live during an op: the tensors it holds (names), its bytes from ``start``."""
    names: tuple
    start: int
    nbytes: int

    @property
    def end(self) -> int:
        return self.start + self.nbytes


@dataclass(frozen=True)
class OpMemory:
    """The arena while op ``index`` runs: its live buffers (by offset) and the high-water mark in
    bytes (the end of the highest live buffer, rounded up to ``ALIGN_BYTES`` as placed)."""
    index: int
    op: object
    live: tuple
    high: int

    @property
    def live_bytes(self) -> int:
        return sum(b.nbytes for b in self.live)


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN_BYTES) * ALIGN_BYTES


def _arena_buffers(plan) -> list[tuple[tuple, object, int, int, int]]:
    """(names, buffer, first op, last op, offset) of every arena buffer of ``plan``; offsets in elements."""
    names: dict[int, list[str]] = {}
    buffers = {}
    for op in plan.ops:
        for t in [*op.inputs, op.output, *([op.scratch] if op.scratch is not None else [])]:
            b = t.buffer
            if b is None or b.kind != "arena":
                continue
            buffers[id(b)] = b
            label = t.name if t.parent is None else _root_name(t)
            if label not in names.setdefault(id(b), []):
                names[id(b)].append(label)
    result = [(tuple(names[k]), b, b.first, b.last, b.offset) for k, b in buffers.items()]
    if plan.io_stage is not None:
        reads = [i for i, op in enumerate(plan.ops) if any(t.buffer.kind == "input" for t in op.inputs)]
        writes = [i for i, op in enumerate(plan.ops) if op.output.buffer.kind == "output"]
        stage_in, stage_out = plan.io_stage
        result.append((("(quantized input)",), _Sized(plan.input.size), 0, max(reads, default=0), stage_in))
        result.append((("(quantized outputs)",), _Sized(plan.output_floats), min(writes, default=0),
                       len(plan.ops), stage_out))
    return result


@dataclass(frozen=True)
class _Sized:
    size: int


def _root_name(t) -> str:
    while t.parent is not None:
        t = t.parent
    return t.name


def op_memory(plan) -> list[OpMemory]:
    """Per op of ``plan``: the arena buffers live while it runs and the high-water mark."""
    unit = plan.element_bytes
    buffers = _arena_buffers(plan)
    table = []
    for i, op in enumerate(plan.ops):
        here = [(names, b, offset) for names, b, first, last, offset in buffers if first <= i <= last]
        held = {id(b) for _, b, _ in here}
        # an output written over its op's dying input (pinned there, codegen.plan.place): one range with it
        over = {id(b.pin): names for names, b, _ in here if getattr(b, "pin", None) is not None and id(b.pin) in held}
        live = sorted((Live(names + over.get(id(b), ()), offset * unit, b.size * unit) for names, b, offset in here
                       if getattr(b, "pin", None) is None or id(b.pin) not in held), key=lambda v: v.start)
        table.append(OpMemory(i, op, tuple(live), max((v.start + _aligned(v.nbytes) for v in live), default=0)))
    return table


def peak(plan) -> OpMemory | None:
    """The (first) op with the highest high-water mark: the one that sets the arena size."""
    table = op_memory(plan)
    return max(table, key=lambda m: (m.high, -m.index)) if table else None


def describe_memory(plan) -> str:
    """The table ``codegen build --plan`` prints: per op, the live arena tensors (byte ranges) and the
    high-water mark; the op that sets the peak is marked."""
    table = op_memory(plan)
    top = peak(plan)
    lines = ["arena while each op runs (live tensors: byte ranges; high: highest byte in use):"]
    for m in table:
        live = ", ".join(f"{'='.join(v.names)} {v.start}..{v.end - 1}" for v in m.live) or "-"
        mark = "  <- peak" if top is not None and m.index == top.index else ""
        lines.append(f"  {m.index:>3}  {'+'.join(m.op.layers):<40s} high {m.high:>10,}  live {m.live_bytes:>10,}: "
                     f"{live}{mark}")
    if top is not None:
        lines.append(f"peak {top.high:,} bytes while op {top.index} ({'+'.join(top.op.layers)}) runs")
    return "\n".join(lines)
