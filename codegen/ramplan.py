"""Which tensors to stream (issue 17: plan to a RAM budget).

A *link* is a tensor between two convolutions that a ``stream`` op can keep to a few rows
(:func:`codegen.ops.stream.links`). Streaming every link would make the arena smallest but trades
the stored convolutions' layout for row-by-row calls, so the planner streams only what lowers the
peak: starting from the plan without streams, it repeatedly looks at the op that sets the arena's
high-water mark (:func:`codegen.memory.peak`; every op at that mark, and those with the most live
bytes, since the placement's gaps can put the mark elsewhere) and tries streaming each link live
there (alone, then in pairs: two tensors of one block may have to go together); it keeps the
choice that lowers the plan's memory profile most (the per-op high-water marks, highest first, compared in order: the
arena first, then the next highest peak, and so on), and stops when nothing lowers it, or, with a
budget (``max_ram``), as soon as the arena fits. The same search then continues from that plan
with depthwise convolutions to compute in place (their output over their input,
``inplace:<output name>``, :func:`codegen.ops.stream.inplace_candidates`) as choices too, so they
only add to what streaming alone reaches. Last, choices that are not needed for the figure
reached (the budget, or the smallest arena found) are dropped again, one at a time.

Streaming recomputes nothing (every row of a streamed tensor is computed once), so the extra cost
reported is 0 multiply-adds; the cost is in calls per row and window moves. A budget that streaming
cannot meet runs the network's first ops by patches too (:func:`choose_patches`), whose halos are
recomputed: the plan reports those extra multiply-adds.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable

from .errors import CodegenError
from .memory import op_memory, peak
from .ops.stream import INPLACE, inplace_candidates, links

MAX_STEPS = 64          # streaming decisions tried before the search gives up


class RamGoalError(CodegenError):
    """No plan the planner can make fits the RAM goal (``max_ram``); the message names the op that
    sets the peak, the bytes it needs and the tensors live there."""


def profile(plan) -> tuple:
    """The plan's memory profile: its ops' high-water marks, highest first (the first is the arena)."""
    return tuple(sorted((m.high for m in op_memory(plan)), reverse=True))


def choose_streams(plan_of: Callable, max_ram: int | None = None):
    """The plan, from ``plan_of(links to stream)``, with the links chosen as the module describes:
    streams first, then (from that plan) streams and in-place depthwise convolutions together, so
    the in-place choices only add to what streaming alone reaches."""
    base = plan_of(frozenset())
    streams = set(links(base.ops, base.outputs))
    inplace = {INPLACE + n for n in inplace_candidates(base.ops, base.input, base.outputs)}
    tried: dict[frozenset, object] = {frozenset(): base}

    def plan(links_: frozenset):
        if links_ not in tried:
            tried[links_] = plan_of(links_)
        return tried[links_]

    def search(chosen: frozenset, current, eligible: set):
        for _ in range(MAX_STEPS):
            if not eligible or (max_ram is not None and current.arena_bytes <= max_ram):
                break
            table = op_memory(current)
            most = max(m.live_bytes for m in table)
            hot = [m for m in table if m.high == current.arena_bytes or m.live_bytes == most]
            names = {name for m in hot for v in m.live for name in v.names}
            live = (names | {INPLACE + n for n in names}) & (eligible - chosen)
            best = None
            for size in (1, 2):
                for extra in combinations(sorted(live), size):
                    trial = chosen | set(extra)
                    p = plan(trial)
                    if profile(p) < profile(current) and (best is None or profile(p) < profile(best[1])):
                        best = (trial, p)
                if best is not None:
                    break
            if best is None:
                break
            chosen, current = best
        return chosen, current

    chosen, current = search(frozenset(), base, streams)
    if inplace:
        chosen, current = search(chosen, current, streams | inplace)
    target = current.arena_bytes if max_ram is None or current.arena_bytes > max_ram else max_ram
    for name in sorted(chosen):                 # drop what the figure reached does not need
        trial = chosen - {name}
        p = plan(trial)
        if p.arena_bytes <= target:
            chosen, current = trial, p
    return current



GOAL_GRIDS = range(2, 9)        # the patch grids a RAM goal may try, 2x2 to 8x8


def choose_patches(candidates: Callable, plan_for: Callable, max_ram: int):
    """A RAM goal that streaming alone cannot meet: the first ops run by patches
    (:mod:`codegen.ops.patches`), the coarsest grid that meets it (the fewest halos), there the prefix
    with the fewest extra multiply-adds. ``candidates(grid)``: the (ops, grid) prefixes that may run by
    patches; ``plan_for(streamed, prefix)``: the plan with those tensors streamed and that prefix. If
    no grid meets the goal, the smallest arena any reached (its peak op is what the error names); None
    when there is no such prefix."""
    smallest = None
    for grid in GOAL_GRIDS:
        fits = []
        for patched in candidates(grid):
            plan = choose_streams(lambda chosen: plan_for(chosen, patched), max_ram)
            if plan.arena_bytes <= max_ram:
                fits.append(((plan.extra_macs, plan.arena_bytes), plan))
            if smallest is None or (plan.arena_bytes, plan.extra_macs) < (smallest.arena_bytes, smallest.extra_macs):
                smallest = plan
        if fits:
            return min(fits, key=lambda f: f[0])[1]
    return smallest

def check_goal(plan, max_ram: int | None) -> None:
    """Raise :class:`RamGoalError` when ``plan``'s arena exceeds ``max_ram`` bytes."""
    if max_ram is None or plan.arena_bytes <= max_ram:
        return
    top = peak(plan)
    live = ", ".join(f"{'='.join(v.names)} {v.nbytes:,}" for v in top.live)
    raise RamGoalError(f"'{plan.name}' needs an arena of {plan.arena_bytes:,} bytes, over the RAM goal of "
                       f"{max_ram:,} bytes (--max-ram), with everything the planner can stream or run by patches: op {top.index} "
                       f"({'+'.join(top.op.layers)}) needs {top.high:,} bytes (live: {live})")
