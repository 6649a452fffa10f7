"""Checks on memory plans (:mod:`codegen.plan`), shared by the planner's tests and the tests that
compile planned networks: the liveness oracle replays a plan and fails when an op writes memory
that still holds a tensor some later op reads."""

from __future__ import annotations


def _regions(t):
    """(first float, end float, first channel, end channel) of t in the arena."""
    b = t.buffer
    return b.offset, b.offset + b.size, t.choff, t.choff + t.shape[2]


def check_no_live_buffer_overwritten(plan):
    """Replay the plan: no op may write memory that holds a tensor still to be read."""
    ops = plan.ops
    last_read = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            last_read[id(t)] = i
    written = {}                       # id(tensor) -> tensor, for tensors written and not yet dead
    for i, op in enumerate(ops):
        out = op.output
        if out.buffer.kind == "arena":
            lo, hi, c0, c1 = _regions(out)
            for tid, t in list(written.items()):
                if last_read.get(tid, -1) < i or (last_read[tid] == i and op.inplace and t in op.inputs):
                    continue
                tlo, thi, t0, t1 = _regions(t)
                same_buffer = t.buffer is out.buffer
                overlap = lo < thi and tlo < hi and (not same_buffer or (c0 < t1 and t0 < c1))
                assert not overlap, f"op {i} ({op.kind} {'+'.join(op.layers)}) overwrites live tensor {t.name}"
        written[id(out)] = out
        for tid in [tid for tid in written if last_read.get(tid, -1) <= i and written[tid] is not out]:
            del written[tid]


def _root(t):
    """The tensor whose memory t is a channel slice of (t itself if none), and t's first channel there."""
    off = 0
    while t.parent is not None:
        off += t.parent_choff
        t = t.parent
    return t, off


def check_every_read_was_written(plan):
    """Replay the plan: every channel an op reads was written by an earlier op, or is the network
    input (a concatenation's output is written in slices, by its producers or by copies)."""
    written = {id(plan.input): set(range(plan.input.shape[2]))}
    for i, op in enumerate(plan.ops):
        for t in op.inputs:
            root, off = _root(t)
            missing = set(range(off, off + t.shape[2])) - written.get(id(root), set())
            assert not missing, (f"op {i} ({op.kind} {'+'.join(op.layers)}) reads channels {sorted(missing)} of "
                                 f"{t.name} that no earlier op wrote")
        root, off = _root(op.output)
        written.setdefault(id(root), set()).update(range(off, off + op.output.shape[2]))
