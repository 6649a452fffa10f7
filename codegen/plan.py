"""Lowering: a Network becomes a short list of planned operations over a static arena.

Steps (each a small function below):

1. ``lower``: one operation per layer, by the lowering its op home registered
   (:mod:`codegen.ops`), with concrete shapes and weights in canonical layouts; layers that
   compute nothing (output layers, ``'none'`` normalization) pass their input on.
2. ``absorb_reorders``: an op that only moves values (a flatten) disappears where its one reader
   can read the values where they are (a fully connected layer, by permuting its weight rows).
   ``fuse``: per-channel affine ops (batch normalization) fold into the convolution or fully
   connected layer before them (exact in real arithmetic: w' = w * a, b' = b * a + shift);
   channel permutations (a channel shuffle) into the convolution before them (its filters
   reordered: exact); clamp activations (the ReLU family) fuse into their producer's epilogue
   when it has no other consumer. What each op kind allows is declared in its home
   (:class:`~codegen.ops.OpKind`). ``fuse_producers`` (for targets that ask for it): an op
   computed together with the op producing its input, whose output is then never stored (a
   pooling with its convolution: :mod:`codegen.ops.convpool`).
3. ``place``: concatenations are written in place by their producers (each producer writes
   its channel slice with the concatenation's pixel pitch); elementwise ops reuse a buffer
   that dies at them; every other buffer gets an arena offset by liveness (greedy by size,
   64-byte aligned), so a skip connection keeps its buffer alive until its last reader.

Only writers deal with pitched views; every op reads dense tensors.
"""

from __future__ import annotations

import math

from .errors import UnsupportedError
from .ir import Buffer, Op, Plan, Tensor
from .memory import ALIGN_BYTES
from .network import Network
from .ops import KINDS, lower_layer
from .ops.combine import copy_op
from .ops.patches import patch_prefix, prefixes
from .ops.stream import INPLACE, fuse_streams, inplace_ops
from .ramplan import check_goal, choose_patches, choose_streams
from .quant.plan import quantize_plan

INDEX_LIMIT = 2**31 - 1          # the generated C indexes tensors, the arena and weights with 32-bit int
SOURCE_WEIGHTS_LIMIT = 256 * 2**20   # bytes of weights written as C literals (4 more per byte of text)


# =============================================================================== lowering

def lower(net: Network) -> tuple[list[Op], Tensor, list[Tensor], dict[str, Tensor]]:
    """One op per layer (identities removed). Returns (ops, input tensor, output tensors, tensors by layer)."""
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []
    net_in = Tensor("input", net.input_shape)
    for layer in net.layers:
        name = layer.Name
        xs = [tensors[s] for s in net.inputs[name]] or [net_in]
        result = lower_layer(layer, xs, Tensor(name, net.shapes[name]))
        if isinstance(result, Op):
            ops.append(result)
            tensors[name] = result.output
        else:                              # the layer passes its input on
            tensors[name] = result
    return ops, net_in, [tensors[n] for n in net.output_names], tensors


# =============================================================================== fusion

def absorb_reorders(ops: list[Op], net_outputs: list[Tensor]) -> list[Op]:
    """Remove ops that only move values (a flatten) where their one reader can read the values
    where they are (a fully connected layer, its weight rows permuted)."""
    users = _consumers(ops)
    kept = []
    for op in ops:
        perm = KINDS[op.kind].reorder(op)
        readers = users.get(id(op.output), [])
        if (perm is not None and len(readers) == 1 and not any(op.output is t for t in net_outputs)
                and len(readers[0].inputs) == 1 and KINDS[readers[0].kind].read_reordered(readers[0], op.inputs[0],
                                                                                          perm)):
            readers[0].layers = op.layers + readers[0].layers
            users.setdefault(id(op.inputs[0]), []).append(readers[0])
            continue
        kept.append(op)
    return kept


def _consumers(ops: list[Op]) -> dict[int, list[Op]]:
    users: dict[int, list[Op]] = {}
    for op in ops:
        for t in op.inputs:
            users.setdefault(id(t), []).append(op)
    return users


def fuse(ops: list[Op], net_outputs: list[Tensor], int8: bool = False) -> list[Op]:
    """Fold per-channel affine ops (batch normalization) into the convolution or fully connected
    layer producing their input, channel permutations into the convolution producing their input,
    and clamp activations into their producer's epilogue (for int8 code only clamps to a range,
    which become the output's int8 range)."""
    changed = True
    while changed:
        changed = False
        users = _consumers(ops)
        producer = {id(op.output): op for op in ops}
        for op in ops:
            kind = KINDS[op.kind]
            src = producer.get(id(op.inputs[0]))
            if src is None or len(users.get(id(src.output), [])) != 1 or any(src.output is t for t in net_outputs):
                continue
            affine = kind.per_channel_affine(op)
            permutation = kind.channel_permutation(op)
            if affine is not None:
                if src.act is not None or not KINDS[src.kind].fold_scale_shift(src, *affine):
                    continue
            elif permutation is not None:       # reordered filters (a fused activation acts per value)
                if op.act is not None or not KINDS[src.kind].fold_permutation(src, permutation):
                    continue
            elif not (kind.activation_only and op.act.clamp and KINDS[src.kind].epilogue and src.act is None
                      and (not int8 or op.act.bounds is not None)):
                continue
            else:
                src.act = op.act
            # src now produces what op produced
            src.layers += op.layers
            src.output = op.output
            ops = [o for o in ops if o is not op]
            changed = True
            break
    return ops


def fuse_producers(ops: list[Op], net_outputs: list[Tensor]) -> list[Op]:
    """Replace an op and the op producing its input by one op where the reader's home can compute
    them together (:meth:`~codegen.ops.OpKind.absorb_producer`): the producer's output, read by
    that op only and no network output, is never stored. The fused op takes the producer's place."""
    users = _consumers(ops)
    producer = {id(op.output): op for op in ops}
    result = list(ops)
    for op in ops:
        src = producer.get(id(op.inputs[0])) if op.inputs else None
        if (src is None or not any(o is src for o in result) or len(users.get(id(src.output), [])) != 1
                or any(src.output is t for t in net_outputs)):
            continue
        fused = KINDS[op.kind].absorb_producer(op, src)
        if fused is not None:
            result = [fused if o is src else o for o in result if o is not op]
    return result


# =============================================================================== placement

def _expand_concats(ops: list[Op], net_outs: list[Tensor]) -> list[Op]:
    """Make each concatenation input a channel slice of the concatenation's output, written in place
    by its producer; an input that cannot be (the network input, a network output, or one read by
    other ops too) is copied into its slice by a ``copy`` op where the concatenation was."""
    users = _consumers(ops)
    produced = {id(op.output) for op in ops} - {id(t) for t in net_outs}
    result: list[Op] = []
    for op in reversed(ops):                 # outer concatenations first
        if not KINDS[op.kind].concatenates:
            result.append(op)
            continue
        c0, seen, copies = 0, set(), []
        for t in op.inputs:
            if id(t) in produced and len(users[id(t)]) == 1 and id(t) not in seen:
                t.parent, t.parent_choff = op.output, c0
            else:
                view = Tensor(t.name, t.shape, parent=op.output, parent_choff=c0)
                copies.append(copy_op(f"{op.name}_in{len(copies) + 1}", [op.name], t, view))
            seen.add(id(t))
            c0 += t.shape[2]
        result.extend(reversed(copies))
    result.reverse()
    return result


def _root(t: Tensor) -> tuple[Tensor, int]:
    """The tensor owning t's memory and t's channel offset in it."""
    off = 0
    while t.parent is not None:
        off += t.parent_choff
        t = t.parent
    return t, off


# orders in which buffers are given the lowest arena offset that fits: largest first (then by first
# use, or by last use, latest first), longest-lived first, largest size x lifetime first
PLACEMENT_ORDERS = (lambda b: (-b.size, b.first), lambda b: (-b.size, -b.last, b.first),
                    lambda b: (b.first - b.last, -b.size, b.first),
                    lambda b: (-b.size * (b.last - b.first + 1), b.first))


def _first_fit(buffers: list[Buffer], rounded) -> tuple[int, dict]:
    """(arena size, {buffer: offset}): each buffer in turn at the lowest offset where it overlaps
    no buffer placed before it that is live at the same time. Buffers pinned to one another
    (``Buffer.pin``: an output written over its op's dying input) are placed together, at one offset
    where each fits during its own lifetime."""
    groups: dict = {}
    for b in buffers:
        root = b
        while root.pin is not None:
            root = root.pin
        groups.setdefault(root, []).append(b)
    offsets: dict = {}
    total = 0
    for b in buffers:
        if b in offsets:
            continue
        root = b
        while root.pin is not None:
            root = root.pin
        members = groups[root]
        busy = [(m, offsets[p], offsets[p] + rounded(p.size)) for m in members for p in offsets
                if not (p.last < m.first or m.last < p.first)]
        for offset in sorted({0, *(hi for _, _, hi in busy)}):
            if all(offset + rounded(m.size) <= lo or hi <= offset for m, lo, hi in busy):
                break
        for m in members:
            offsets[m] = offset
            total = max(total, offset + rounded(m.size))
    return total, offsets


def place(ops: list[Op], net_in: Tensor, net_outs: list[Tensor], reuse: bool = True,
          element_bytes: int = 4, stage_io: bool = False) -> tuple[list[Op], int, int, tuple | None]:
    """Give every tensor a buffer, offset and pitch, and every arena buffer an arena offset. With
    ``stage_io`` (int8) the arena also holds the quantized input, where it is free until the
    input's last reader, and the quantized outputs, from the first op writing one: the float API
    stages them there.

    Returns (ops, arena elements, elements of a plan without reuse, (input offset, output offset)
    in the arena or None)."""
    ops = _expand_concats(ops, net_outs)
    tensors = {id(t): t for op in ops for t in [*op.inputs, op.output]}
    tensors[id(net_in)] = net_in
    tensors.update((id(t), t) for t in net_outs)       # a concatenation output is only its slices' parent
    owners: dict[int, Buffer] = {}
    offset = 0
    for t in net_outs:                     # the outputs, back to back in the caller's buffer
        owners[id(t)] = Buffer("output", t.size, offset)
        offset += t.size
    for t in tensors.values():
        r, off = _root(t)
        if id(r) not in owners:
            owners[id(r)] = Buffer("input" if r is net_in else "arena", r.size)
        t.buffer, t.choff, t.pitch = owners[id(r)], off, r.shape[2]
    align = ALIGN_BYTES // element_bytes
    rounded = lambda n: -(-n // align) * align  # noqa: E731
    naive = sum(rounded(b.size) for b in owners.values() if b.kind == "arena")

    def last_reads() -> dict[Buffer, int]:
        last = {}
        for i, op in enumerate(ops):
            for t in op.inputs:
                last[t.buffer] = i
        return last

    if reuse:   # an elementwise op (or in-place depthwise convolution) writes over an input dying at it
        for i, op in enumerate(ops):
            out = op.output
            over = KINDS[op.kind].shrinks_in_place(op)      # its output may be smaller
            if not (KINDS[op.kind].elementwise or over) or out.buffer.kind != "arena" or out.parent is not None:
                continue
            last = last_reads()
            for t in op.inputs:
                b = t.buffer
                if over and b.kind == "arena" and t.parent is None and last.get(b) == i and out.buffer.size < b.size:
                    out.buffer.pin = b          # a smaller output at the input's offset: the rest is free after
                    op.inplace = True
                    break
                if b.kind == "arena" and t.parent is None and last.get(b) == i and b.size == out.buffer.size:
                    old = out.buffer
                    for t2 in tensors.values():
                        if t2.buffer is old:
                            t2.buffer = b
                    op.inplace = True
                    break

    for op in ops:                          # workspace live only while its op runs
        if op.scratch is not None:
            op.scratch.buffer, op.scratch.pitch = Buffer("arena", op.scratch.size), op.scratch.shape[2]
            naive += rounded(op.scratch.size)
    live: dict[Buffer, list[int]] = {}
    for i, op in enumerate(ops):
        for t in [*op.inputs, op.output, *([op.scratch] if op.scratch is not None else [])]:
            if t.buffer.kind == "arena":
                span = live.setdefault(t.buffer, [i, i])
                span[0], span[1] = min(span[0], i), max(span[1], i)
    stages = None
    if stage_io:
        reads = [i for i, op in enumerate(ops) if any(t.buffer.kind == "input" for t in op.inputs)]
        writes = [i for i, op in enumerate(ops) if op.output.buffer.kind == "output"]
        stages = (Buffer("arena", net_in.size), Buffer("arena", sum(t.size for t in net_outs)))
        live[stages[0]] = [0, max(reads, default=0)]
        live[stages[1]] = [min(writes, default=0), len(ops)]
    for b, (first, last) in live.items():
        b.first, b.last = first, last
    if reuse:   # first fit in a few orders; the smallest arena wins (the first order on ties)
        total, offsets = min((_first_fit(sorted(live, key=order), rounded) for order in PLACEMENT_ORDERS),
                             key=lambda r: r[0])
    else:
        offsets, total = {}, 0
        for b in sorted(live, key=PLACEMENT_ORDERS[0]):
            offsets[b], total = total, total + rounded(b.size)
    for b, offset in offsets.items():
        b.offset = offset
    return ops, total, naive, stages and (stages[0].offset, stages[1].offset)


# =============================================================================== limits

def _too_big(what: str, count: int, unit: str = "values") -> UnsupportedError:
    return UnsupportedError(f"{what} has {count:,} {unit}; the generated code indexes with 32-bit int, "
                            f"which allows at most {INDEX_LIMIT:,}")


def check_network_sizes(net: Network) -> None:
    """Refuse, before lowering allocates anything, a layer whose output or learnables the generated
    code cannot index."""
    weight_bytes = 0
    for layer in net.layers:
        shape = net.shapes[layer.Name]
        if math.prod(shape) > INDEX_LIMIT:
            raise _too_big(f"{layer.label}: its output {'x'.join(map(str, shape))}", math.prod(shape))
        for prop, (pshape, *_rest) in layer.learnables().items():
            if math.prod(pshape) > INDEX_LIMIT:
                raise _too_big(f"{layer.label}: property '{prop}' ({'x'.join(map(str, pshape))})", math.prod(pshape))
            weight_bytes += 4 * math.prod(pshape)
    if weight_bytes > SOURCE_WEIGHTS_LIMIT:
        raise UnsupportedError(f"'{net.name}' has {weight_bytes:,} bytes of learnables; codegen writes at most "
                               f"{SOURCE_WEIGHTS_LIMIT:,} bytes of weights as C source")


def check_plan_sizes(plan: Plan) -> None:
    """Refuse a plan whose arena, windows or weights the generated code cannot index or write."""
    if plan.arena_floats > INDEX_LIMIT:
        raise _too_big(f"the arena of '{plan.name}'", plan.arena_floats, "floats")
    for op in plan.ops:
        bound = KINDS[op.kind].index_bound(op)
        if bound > INDEX_LIMIT:
            raise _too_big(f"layer '{'+'.join(op.layers)}': the padded input window", bound)
        for role, w in op.weights.items():
            if w.size > INDEX_LIMIT:
                raise _too_big(f"layer '{'+'.join(op.layers)}': weights '{role}'", w.size)
    if plan.weight_bytes > SOURCE_WEIGHTS_LIMIT:
        raise UnsupportedError(f"'{plan.name}' has {plan.weight_bytes:,} bytes of weights; codegen writes at most "
                               f"{SOURCE_WEIGHTS_LIMIT:,} bytes as C source")


def make_plan(net: Network, reuse: bool = True, calibration=None, conv_pool: bool = False, stream: bool = False,
              max_ram: int | None = None, smallest_arena: bool = True, patches: int | None = None) -> Plan:
    """Lower, fuse and place ``net``. ``reuse=False`` gives every buffer its own arena region and no
    op works in place, so every op's output survives the run (the per-layer debug build). Sizes the
    generated code cannot handle are refused (UnsupportedError naming the layer and the size).
    With a ``calibration`` (:func:`codegen.quantize`) the plan is int8 (:mod:`codegen.quant.plan`).
    ``conv_pool``: compute a convolution and the pooling reading it as one op (``fuse_producers``;
    the C dialect asks for it, see :class:`codegen.emit.dialect.Dialect`; not with ``reuse=False``).
    ``stream``: float plans with reuse stream chains of convolutions by rows where that lowers the
    arena, or, with ``max_ram`` (bytes), until it fits (:mod:`codegen.ramplan`,
    :mod:`codegen.ops.stream`); an arena over ``max_ram`` raises
    :class:`codegen.ramplan.RamGoalError` naming the op that sets the peak. ``smallest_arena=False``
    streams only for a ``max_ram`` goal (none without one): streaming saves RAM, not time (the host's
    default, see :attr:`codegen.targets.base.Target.smallest_arena`). ``patches=N`` (float C plans
    with reuse): the first ops run patch by patch over N x N patches of their last output
    (:mod:`codegen.ops.patches`), the prefix with the smallest arena (then fewest extra multiply-adds),
    none where no prefix lowers the arena. A ``max_ram`` goal that streaming cannot meet tries
    patches too (:func:`codegen.ramplan.choose_patches`)."""
    if patches is not None and not (stream and reuse and calibration is None):
        raise UnsupportedError("patch-based execution (patches=) is for float C plans with buffer reuse only")
    if patches is not None and patches < 1:
        raise UnsupportedError(f"patches={patches}: the grid needs at least 1 patch per side")
    candidates = [None]
    if patches is not None:
        candidates = _patch_candidates(net, conv_pool, patches)
        if not any(candidates):
            raise UnsupportedError(f"'{net.name}': no first ops can run patch by patch (normalizations, "
                                   "convolutions and additions reading one input from outside)")
    best = None
    for patched in candidates:
        if stream and reuse and calibration is None and (smallest_arena or max_ram is not None):
            plan = choose_streams(lambda chosen: _make_plan(net, reuse, None, conv_pool, chosen, patched), max_ram)
        else:
            plan = _make_plan(net, reuse, calibration, conv_pool, frozenset(), patched)
        key = (plan.arena_bytes, plan.extra_macs)
        if best is None or key < best[0]:
            best = (key, plan)
    plan = best[1]
    if (patches is None and max_ram is not None and plan.arena_bytes > max_ram and stream and reuse
            and calibration is None):
        patched = choose_patches(lambda grid: filter(None, _patch_candidates(net, conv_pool, grid)),
                                 lambda chosen, p: _make_plan(net, True, None, conv_pool, chosen, p), max_ram)
        if patched is not None and patched.arena_bytes < plan.arena_bytes:
            plan = patched
    check_goal(plan, max_ram)
    return plan



def _fused_ops(net: Network, conv_pool: bool, int8: bool = False):
    ops, net_in, net_outs, _ = lower(net)
    ops = fuse(absorb_reorders(ops, net_outs), net_outs, int8=int8)
    if conv_pool:
        ops = fuse_producers(ops, net_outs)
    return ops, net_in, net_outs


def _patch_candidates(net: Network, conv_pool: bool, grid: int) -> list:
    """None (no patches), then (n, grid) for every prefix of n ops that can run patch by patch."""
    ops, _, net_outs = _fused_ops(net, conv_pool)
    return [None, *((n, grid) for n in prefixes(ops, net_outs))]


def _make_plan(net: Network, reuse: bool, calibration, conv_pool: bool, streamed: frozenset,
               patched: tuple | None = None) -> Plan:
    """The plan of ``net`` with the tensors named in ``streamed`` kept to rows and, with ``patched``
    (n, grid), its first n ops run patch by patch (see make_plan)."""
    check_network_sizes(net)
    int8 = calibration is not None
    ops, net_in, net_outs = _fused_ops(net, conv_pool and reuse, int8)   # the per-layer debug build keeps
    if patched is not None:                                                 # every layer's output
        ops = patch_prefix(ops, *patched)
    if streamed:
        ops = fuse_streams(ops, net_outs, {n for n in streamed if not n.startswith(INPLACE)})
        ops = inplace_ops(ops, {n[len(INPLACE):] for n in streamed if n.startswith(INPLACE)})
    produced = {id(op.output) for op in ops}
    seen: set[int] = set()
    for k, (name, t) in enumerate(zip(net.output_names, net_outs)):
        # an output the network's input is, or another output already is, is copied into its place
        if id(t) not in produced or id(t) in seen:
            copy = Tensor(name, t.shape)
            ops.append(copy_op(name, [name], t, copy))
            net_outs[k] = copy
        seen.add(id(net_outs[k]))
    ops, arena, naive, stages = place(ops, net_in, net_outs, reuse=reuse, element_bytes=1 if int8 else 4,
                                      stage_io=int8)
    activations = sum(math.prod(s) for s in net.shapes.values())
    macs = sum(net.layer(n).macs([net.shapes[s] for s in net.inputs[n]], net.shapes[n]) for n in net.shapes)
    plan = Plan(net.name, ops, net_in, net_outs, arena, activations, naive, macs, reuse, io_stage=stages)
    check_plan_sizes(plan)
    if int8:
        plan = quantize_plan(plan, net, calibration)
    return plan
