"""A chain of convolutions streamed row by row as one op (``stream``): the tensors between them are
never stored whole (issue 17, peak RAM). MobileNetV2's inverted residual block (1x1 expansion ->
depthwise -> 1x1 projection, + the residual addition) is the example: its expanded tensor, six
times the block's input, only ever exists as the few rows the depthwise convolution's window needs.

**How.** Stage ``s`` (a convolution, batch norm folded, activation fused) reads a *window* of
``K = (kh - 1) * dh + 1`` consecutive rows of its input and writes one row of its output. The last
stage's rows are the op's output; each earlier stage's rows go into the next stage's window, in
the arena's scratch region of the op. A window moves down by the next stage's stride: its rows
still needed move up, the new ones are computed by the stage before (or are zeros
where the window reads the vertical padding). Every row of every stage is computed once and in
order, so there is no recomputation (0 extra multiply-adds). Stage 0 reads the op's input: its
window is the input itself where it lies inside, a zero-padded copy at the top and bottom edges;
when the op's input is the network input and the input layer's normalization is streamed too,
every window of stage 0 is a normalized copy (the normalized input is never stored either).

**Arithmetic.** Each stage is an ordinary ``conv`` op over its window (``ih = K``, no vertical
padding, one output row), rendered by the same templates and SIMD kernels as a stored
convolution (``templates/c/ops/conv.c.j2``): the same multiply-adds except that a tap in the
vertical padding adds ``0 * w`` instead of being skipped (exactly zero for finite weights). The
residual addition, when absorbed, adds the block input to each output row (then its activation).

**Memory.** The arena holds the op's input and output and the windows (``Op.scratch``, live only
while the op runs): for MobileNetV2's block 2, three rows of 24 x 96 expanded values instead of
24 x 24 x 96.

**Depthwise convolution in place.** A depthwise convolution no stream takes (its input from an
activation, an addition, a pooling; its output read by several ops) may still overwrite its own
input: a one-stage ``stream`` op (``Stream.delay`` set) whose output has its input's buffer
(:func:`codegen.plan.place`). Its rows are computed in order, each into a ring of ``delay + 1``
rows in the scratch, and copied over the input once no later row reads the input under it
(:func:`inplace_delay`: 1 row held for stride 1 with one padding row, as row ``r`` is written
over input row ``r``, which row ``r + 1`` still reads; none for stride 2, whose output rows are
half as long). The arena holds the input (the output inside it) and the scratch (the ring, and
the zero-padded window at the top and bottom edges) instead of input + output.

**When.** The planner (:func:`codegen.plan.make_plan`, search in :mod:`codegen.ramplan`) names the
*links* to stream: a tensor written by one convolution and read by exactly one other, neither a
network output nor part of a concatenation, where the reader's stride is at most its window
(every row is needed), and the depthwise convolutions to run in place
(:func:`inplace_candidates`), only where the peak drops. Consecutive links form one op
(:func:`fuse_streams`). Float C plans only: CUDA keeps its kernels (GPU memory is not the
constraint), int8 plans keep their ops. Streams and in-place ops cost time (a call per row, window
moves, row copies: mobilenetv2's streamed blocks 31.0 us against 28.4 separate, conv_options 20 %
of the whole network, its first stage normalizing its input for every window), so by default only
device builds stream to the smallest arena; the host streams to meet a ``max_ram`` goal
(:attr:`codegen.targets.base.Target.smallest_arena`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..ir import ConvGeometry, Op, Tensor
from .base import KINDS, OpKind, op_kind
from .tiling import HOST_ISAS

ROW_ALIGN = 16          # floats: every window starts 64-byte aligned in the scratch
INPLACE = "inplace:"    # the planner's choices: link names, and this + a depthwise output's name


@dataclass(frozen=True)
class Stream:
    """The stages of a ``stream`` op (their geometries as stored convolutions, fused activations and
    layers) and, when the op ends with the block's residual addition, ``residual`` (its activation
    ``after``)."""
    stages: tuple
    acts: tuple
    names: tuple
    residual: bool = False
    after: object = None
    pre: object = None          # the input normalization applied on the fly (Normalization), if any
    pre_act: object = None      # its fused activation
    delay: int | None = None    # in place (one depthwise stage): output rows held before written back

    def describe(self) -> str:
        convs = " -> ".join(f"{g.kh}x{g.kw}/{g.sh}{' dw' if g.depthwise else ''} {g.oh}x{g.ow}x{g.oc}"
                            for g in self.stages)
        if self.delay is not None:
            return f" in place: {convs}, output rows over the input's, {self.delay + 1} held at a time"
        add = " + residual" + (f" +{self.after.kind}" if self.after else "") if self.residual else ""
        pre = "input normalized on the fly -> " if self.pre is not None else ""
        return f" rows streamed: {pre}{convs}{add} (inner tensors never stored)"


def window(g: ConvGeometry) -> int:
    """Rows of input one output row of ``g`` reads."""
    return (g.kh - 1) * g.dh + 1


def row_geometry(g: ConvGeometry) -> ConvGeometry:
    """``g`` computing one output row from its window (K rows, vertical padding present as zero rows)."""
    return dataclasses.replace(g, ih=window(g), oh=1, sh=1, pt=0, pb=0)


def _consumers(ops: list[Op]) -> dict[int, list[Op]]:
    users: dict[int, list[Op]] = {}
    for op in ops:
        for t in op.inputs:
            users.setdefault(id(t), []).append(op)
    return users


def links(ops: list[Op], net_outputs: list[Tensor]) -> list[str]:
    """Names of the tensors a ``stream`` op may keep to windows: written by a convolution (or the
    input normalization, then applied on the fly), read by one convolution only (once, its only
    input), no network output, and every row of it needed by that reader (stride at most the window)."""
    users = _consumers(ops)
    outs = {id(t) for t in net_outputs}
    found = []
    for op in ops:
        t = op.output
        readers = users.get(id(t), [])
        if op.kind not in ("conv", "normalize") or id(t) in outs or len(readers) != 1 or t.parent is not None:
            continue
        reader = readers[0]
        if reader.kind == "conv" and len(reader.inputs) == 1 and reader.attrs.sh <= window(reader.attrs):
            found.append(t.name)
    return found


def fuse_streams(ops: list[Op], net_outputs: list[Tensor], chosen: set[str]) -> list[Op]:
    """Replace each run of convolutions joined by ``chosen`` links (see :func:`links`) by one ``stream``
    op; a run whose last output only a two-input addition reads, with the run's input as the other
    addend, takes that addition too."""
    allowed = set(links(ops, net_outputs)) & set(chosen)
    users = _consumers(ops)
    by_output = {id(op.output): op for op in ops}
    result, done = [], set()
    for op in ops:
        if id(op) in done:
            continue
        if op.kind not in ("conv", "normalize") or op.output.name not in allowed or (
                op.inputs and by_output.get(id(op.inputs[0])) is not None
                and by_output[id(op.inputs[0])].output.name in allowed):
            result.append(op)          # not the first convolution of a run
            continue
        run = [op]
        while run[-1].output.name in allowed:
            run.append(users[id(run[-1].output)][0])
        done.update(id(o) for o in run)
        stream = _stream_op(run, users, net_outputs)
        if stream.attrs.residual:
            done.add(id(users[id(run[-1].output)][0]))
        result.append(stream)
    return result


def inplace_delay(g: ConvGeometry) -> int | None:
    """Output rows a depthwise convolution ``g`` computed in place must hold before writing one back:
    the least ``D`` such that output row ``r`` (``ow * oc`` values from offset ``r * ow * oc``), written
    once row ``r + D`` is computed, covers only input rows no later output row reads (rows from
    ``(r + D + 1) * sh - pt`` on); None where only holding every row would do (no gain). Stride 1 with
    one padding row: 1; stride 2 (output rows half as long): 0."""
    orow, irow = g.ow * g.oc, g.iw * g.ic
    for d in range(g.oh - 1):
        if all((r + 1) * orow <= max(0, (r + d + 1) * g.sh - g.pt) * irow for r in range(g.oh - d - 1)):
            return d
    return None


def inplace_candidates(ops: list[Op], net_input: Tensor, net_outputs: list[Tensor]) -> list[str]:
    """Output names of the depthwise convolutions that may overwrite their input (in place, see
    :func:`inplace_ops`): the input an arena tensor only this op reads (not the network's input nor an
    output), both whole tensors (no concatenation slices), the output no larger than the input, and
    the output rows need not all be held."""
    users = _consumers(ops)
    outs = {id(t) for t in net_outputs}
    found = []
    for op in ops:
        if op.kind != "conv" or not op.attrs.depthwise or len(op.inputs) != 1:
            continue
        x, y = op.inputs[0], op.output
        if (x is net_input or id(x) in outs or id(y) in outs or len(users.get(id(x), [])) != 1
                or x.parent is not None or y.parent is not None or y.size > x.size
                or inplace_delay(op.attrs) is None):
            continue
        found.append(y.name)
    return found


def inplace_ops(ops: list[Op], chosen: set[str]) -> list[Op]:
    """Each depthwise convolution whose output is named in ``chosen`` (see :func:`inplace_candidates`)
    as a one-stage ``stream`` op computing its output over its input (:func:`codegen.plan.place` gives
    both one buffer): a row at a time into a ring of ``delay + 1`` rows in the op's scratch, each
    written back once no later row reads the input under it."""
    result = []
    for op in ops:
        if op.kind != "conv" or op.output.name not in chosen:
            result.append(op)
            continue
        attrs = Stream((op.attrs,), (op.act,), (tuple(op.layers),), delay=inplace_delay(op.attrs))
        new = Op("stream", op.name, list(op.layers), list(op.inputs), op.output, attrs,
                 {f"s0_{role}": w for role, w in op.weights.items()})
        new.scratch = Tensor(f"{op.name}_rows", (1, 1, scratch_floats(attrs)))
        result.append(new)
    return result


def _stream_op(run: list[Op], users, net_outputs) -> Op:
    pre = run[0] if run[0].kind == "normalize" else None
    convs = run[1:] if pre is not None else run
    last, source = run[-1], run[0].inputs[0]
    readers = users.get(id(last.output), [])
    add = readers[0] if len(readers) == 1 and pre is None else None
    residual = (add is not None and add.kind == "add" and len(add.inputs) == 2 and last.output not in net_outputs
                and {id(t) for t in add.inputs} == {id(last.output), id(source)} and source.shape == last.output.shape
                and add.output.parent is None)
    weights = {f"s{k}_{role}": w for k, o in enumerate(convs) for role, w in o.weights.items()}
    if pre is not None:
        weights.update({f"n_{role}": w for role, w in pre.weights.items()})
    layers = [name for o in run + ([add] if residual else []) for name in o.layers]
    attrs = Stream(tuple(o.attrs for o in convs), tuple(o.act for o in convs), tuple(tuple(o.layers) for o in convs),
                   residual, add.act if residual else None, pre.attrs if pre else None, pre.act if pre else None)
    out = add.output if residual else last.output
    op = Op("stream", run[0].name, layers, [source], out, attrs, weights)
    op.scratch = Tensor(f"{run[0].name}_rows", (1, 1, scratch_floats(attrs)))
    return op


def scratch_layout(attrs: Stream) -> list[int]:
    """Offsets (floats) of each stage's window in the scratch, then (in place) of the ring of output
    rows, then the total; stage 0's window is only used at the input's edges (its interior windows
    are the input itself), and not at all for K = 1 without padding, unless the input is normalized
    on the fly (then every window is a normalized copy)."""
    offsets, total = [], 0
    for k, g in enumerate(attrs.stages):
        offsets.append(total)
        if k > 0 or window(g) > 1 or g.pt or g.pb or attrs.pre is not None:
            total += -(-window(g) * g.iw * g.ic // ROW_ALIGN) * ROW_ALIGN
    offsets.append(total)
    if attrs.delay is not None:            # in place: then the ring of output rows held
        g = attrs.stages[-1]
        offsets.append(total + (attrs.delay + 1) * g.ow * g.oc)
    return offsets


def scratch_floats(attrs: Stream) -> int:
    return scratch_layout(attrs)[-1]


def stage_ops(op: Op) -> list[Op]:
    """The row convolutions of ``op``, as ``conv`` ops the C templates render (one output row each)."""
    a = op.attrs
    ops = []
    for k, (g, act, layers) in enumerate(zip(a.stages, a.acts, a.names)):
        rg = row_geometry(g)
        weights = {role[len(f"s{k}_"):]: w for role, w in op.weights.items() if role.startswith(f"s{k}_")}
        ops.append(Op("conv", f"{op.name}_s{k}", list(layers), [Tensor("window", (rg.ih, rg.iw, rg.ic))],
                      Tensor("row", (1, rg.ow, rg.oc)), rg, weights, act=act))
    return ops


@dataclass(frozen=True)
class StageKernel:
    """One stage as the template sees it: its row op and kernel, the output pitch it writes, the
    full input height ``h``, stride ``sh`` and top padding ``pt`` its window moves by, and where its
    window lies in the scratch."""
    op: Op
    kernel: object
    pitch: int
    k: int
    h: int
    row: int
    sh: int
    pt: int
    offset: int


@dataclass(frozen=True)
class StreamKernel:
    stages: tuple
    ring: int = 0               # in place: where the ring of output rows starts in the scratch
    kind: str = "stream"

    @property
    def zeros(self) -> int:
        return max(s.kernel.zeros for s in self.stages)

    @property
    def omp(self) -> bool:
        return False

    @property
    def partial_neon(self) -> bool:
        return any(s.kernel.partial_neon for s in self.stages)


@op_kind
class StreamKind(OpKind):
    name = "stream"
    uses_simd = True

    def index_bound(self, op) -> int:
        return max(KINDS["conv"].index_bound(s) for s in stage_ops(op))

    def shrinks_in_place(self, op) -> bool:
        return op.attrs.delay is not None           # an in-place depthwise convolution

    def c_kernel(self, op, isas=HOST_ISAS):
        a, offsets = op.attrs, scratch_layout(op.attrs)
        stages, packed = [], {}
        for k, (g, row_op) in enumerate(zip(a.stages, stage_ops(op))):
            kernel, weights = KINDS["conv"].c_kernel(row_op, isas)
            if hasattr(kernel, "omp"):
                kernel = dataclasses.replace(kernel, omp=False)     # one row: too little to share
            last = k == len(a.stages) - 1
            stages.append(StageKernel(row_op, kernel, 0 if last else g.oc, window(g), g.ih, g.iw * g.ic, g.sh,
                                      g.pt, offsets[k]))
            packed.update({f"s{k}_{role}": w for role, w in weights.items()})
        packed.update({role: w for role, w in op.weights.items() if role.startswith("n_")})
        return StreamKernel(tuple(stages), offsets[len(a.stages)]), packed


def describe_streams(plan) -> list[str]:
    """One line per ``stream`` op of ``plan``: its layers, stages and the bytes its windows take."""
    lines = []
    for i, op in enumerate(plan.ops):
        if op.kind == "stream" and op.attrs.delay is not None:
            lines.append(f"op {i}: {op.layers[0]}: depthwise convolution in place (output over its input), "
                         f"scratch {op.scratch.size * plan.element_bytes:,} bytes")
        elif op.kind == "stream":
            a = op.attrs
            lines.append(f"op {i}: {op.layers[0]} .. {op.layers[-1]}: {len(a.stages)} convolutions"
                         f"{' + residual' if a.residual else ''} streamed by rows, windows "
                         f"{op.scratch.size * plan.element_bytes:,} bytes")
    return lines
