"""The plan's data: tensors, buffers, planned ops and their typed attributes.

A :class:`Plan` is what the planner (:mod:`codegen.plan`) makes of a network and what every
emitter reads: a list of :class:`Op` over :class:`Tensor` values whose memory is a
:class:`Buffer` (the network's input, its output, or a region of the arena). Each op kind has
one attribute record (a frozen dataclass) with named fields; templates read those fields and
write them as C enums (``enum { IH = {{ a.ih }} }``).

The kinds themselves (what each one lowers from, how it packs weights, which C kernel and CUDA
launch it gets) live in :mod:`codegen.ops`, one module per kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .memory import describe_memory

FLOAT_BYTES = 4


# =============================================================================== tensors and memory

@dataclass(eq=False)
class Buffer:
    kind: str                 # 'arena', 'input' or 'output'
    size: int                 # floats
    offset: int = 0           # floats from the start of the arena (or of the output: outputs lie back to back)
    first: int = 0            # op index of the first write
    last: int = 0             # op index of the last read
    pin: "Buffer | None" = None   # placed at this buffer's offset: an op writes it over that (dying) input


@dataclass(eq=False)
class Tensor:
    name: str                 # the layer that produces it
    shape: tuple              # (H, W, C)
    parent: "Tensor | None" = None   # the concatenation output this tensor is a channel slice of
    parent_choff: int = 0            # first channel of the slice in the parent
    # filled by placement:
    buffer: Buffer | None = None
    choff: int = 0            # channel offset inside the buffer's pixel
    pitch: int = 0            # floats per pixel in the buffer

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dense(self) -> bool:
        return self.choff == 0 and self.pitch == self.shape[2]


# =============================================================================== attributes per op kind

@dataclass(frozen=True)
class Pixels:
    """Ops that work pixel by pixel on an h x w x c tensor (activations, batch norm, addition,
    softmax, copies). ``note``: what the op computes, for comments where the kind serves several
    layers ('' for the kind's usual one)."""
    h: int
    w: int
    c: int
    note: str = ""

    def describe(self) -> str:
        return ""


@dataclass(frozen=True)
class Broadcast:
    """An elementwise op over an h x w x c result whose operands may have singleton dimensions
    that expand (MATLAB's implicit expansion): ``expand`` holds, per operand, whether its height,
    width and channels are 1 and expand, e.g. ``((False, False, False), (True, True, False))`` for
    a feature map times a 1 x 1 x c gate. An operand is dense, of size h' x w' x c' with each
    dimension the result's or 1."""
    h: int
    w: int
    c: int
    expand: tuple

    def offset(self, k: int, y: str, x: str, c: str) -> str:
        """The C expression of the offset in operand ``k`` of the element at row ``y``, column ``x``,
        channel ``c`` of the result."""
        bh, bw, bc = self.expand[k]
        wk, ck = (1 if bw else self.w), (1 if bc else self.c)
        scaled = lambda v, n: f"{v} * {n}" if n > 1 else v  # noqa: E731
        terms = ([] if bh else [scaled(y, wk * ck)]) + ([] if bw else [scaled(x, ck)])
        terms += [] if bc else [c]
        return " + ".join(terms) or "0"

    def describe(self) -> str:
        parts = []
        for k, flags in enumerate(self.expand):
            dims = ",".join(d for d, f in zip("hwc", flags) if f)
            if dims:
                parts.append(f"operand {k + 1} expands {dims}")
        return f" ({'; '.join(parts)})" if parts else ""


@dataclass(frozen=True)
class ChannelWindow:
    """Local response normalization of an h x w x c tensor: y = x / (k + alpha * ss / size)^beta,
    ss the sum of squares over channels c - before .. c + after (clipped to the tensor)."""
    h: int
    w: int
    c: int
    size: int
    before: int
    after: int
    alpha: float
    beta: float
    k: float

    def describe(self) -> str:
        return (f" window {self.size} (-{self.before}..+{self.after}) alpha {self.alpha:g} beta {self.beta:g} "
                f"k {self.k:g}")


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution: input ih x iw x ic, output oh x ow x oc, kernel kh x kw, stride, dilation,
    padding [pt pb pl pr], ``groups`` groups of ``cg`` input and ``fg`` output channels."""
    ih: int
    iw: int
    ic: int
    oh: int
    ow: int
    oc: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    groups: int
    cg: int
    fg: int

    @property
    def padded(self) -> bool:
        return bool(self.pt or self.pb or self.pl or self.pr)

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, no padding: a matrix product over the pixels."""
        return (self.kh, self.kw, self.sh, self.sw) == (1, 1, 1, 1) and not self.padded

    @property
    def depthwise(self) -> bool:
        """One input and one output channel per group."""
        return self.groups > 1 and self.cg == 1 and self.fg == 1

    @property
    def macs(self) -> int:
        return self.oh * self.ow * self.oc * self.cg * self.kh * self.kw

    def describe(self) -> str:
        return (f" {self.kh}x{self.kw} stride {self.sh},{self.sw} dilation {self.dh},{self.dw} "
                f"pad {self.pt},{self.pb},{self.pl},{self.pr} groups {self.groups}")


@dataclass(frozen=True)
class TConvGeometry:
    """A 2-D transposed convolution: input ih x iw x ic, output oh x ow x oc, kernel kh x kw, stride.
    Input pixel (iy, ix) reaches pixel (iy*sh + ky, ix*sw + kx) of the uncropped result, which is
    cropped by [pt pb pl pr]: output pixel (oy, ox) is uncropped pixel (oy + pt, ox + pl). ``eh``
    rows and ``ew`` columns past the uncropped result (MATLAB's OutputSizeOffset) hold only the bias."""
    ih: int
    iw: int
    ic: int
    oh: int
    ow: int
    oc: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    eh: int = 0
    ew: int = 0

    def describe(self) -> str:
        extra = f" extend {self.eh},{self.ew}" if self.eh or self.ew else ""
        return (f" {self.kh}x{self.kw} stride {self.sh},{self.sw} crop {self.pt},{self.pb},{self.pl},{self.pr}"
                f"{extra}")


@dataclass(frozen=True)
class PoolGeometry:
    """Max or average pooling of an ih x iw x c input to oh x ow x c: window kh x kw, stride,
    padding [pt pb pl pr]; ``exclude_pad``: an average divides by the window's input elements."""
    ih: int
    iw: int
    c: int
    oh: int
    ow: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    exclude_pad: bool = False

    def describe(self) -> str:
        return f" {self.kh}x{self.kw} stride {self.sh},{self.sw} pad {self.pt},{self.pb},{self.pl},{self.pr}"


@dataclass(frozen=True)
class FcShape:
    """A fully connected layer: ``n_in`` inputs (an HWC tensor, flattened) to ``n_out`` outputs."""
    n_in: int
    n_out: int

    @property
    def macs(self) -> int:
        return self.n_in * self.n_out

    def describe(self) -> str:
        return ""


@dataclass(frozen=True)
class FlattenShape:
    """MATLAB's flatten of a dense h x w x c input into 1 x 1 x (h*w*c), column-major: output
    element y + h*(x + w*ch) is input pixel (y, x), channel ch."""
    h: int
    w: int
    c: int

    def describe(self) -> str:
        return f" column-major {self.h}x{self.w}x{self.c}"


@dataclass(frozen=True)
class Normalization:
    """Input normalization y = (x - sub) * mul + add, with sub and mul given per 'element',
    'channel' or 'scalar'."""
    h: int
    w: int
    c: int
    per: str
    add: float

    def describe(self) -> str:
        return ""


@dataclass(frozen=True)
class ResizeSampling:
    """Resizing an ih x iw x c input to oh x ow x c, ``method`` 'nearest' or 'bilinear'. ``rows``
    holds, per output row, (first source row, second source row, weight of the second); ``cols``
    the same per output column (nearest: both rows equal, weight 0). Computed exactly at
    generation time (:func:`codegen.layers.resize.axis_samples`); ``mode`` names the geometry
    for comments ('half-pixel, round', ...)."""
    ih: int
    iw: int
    c: int
    oh: int
    ow: int
    method: str
    mode: str
    rows: tuple
    cols: tuple

    def describe(self) -> str:
        return f" {self.method} ({self.mode})"


@dataclass(frozen=True)
class ChannelShuffle:
    """A channel shuffle of an h x w x c tensor in ``groups`` groups: output channel
    ``j * groups + i`` is input channel ``i * (c / groups) + j``."""
    h: int
    w: int
    c: int
    groups: int

    def source(self, o: int) -> int:
        """The input channel that output channel ``o`` holds."""
        return (o % self.groups) * (self.c // self.groups) + o // self.groups

    def describe(self) -> str:
        return f" shuffle in {self.groups} groups"


@dataclass(frozen=True)
class ChannelRange:
    """Channels ``first`` .. ``first + c - 1`` of an h x w x ``ic`` tensor (an h x w x c result)."""
    h: int
    w: int
    c: int
    ic: int
    first: int

    def describe(self) -> str:
        return f" channels {self.first}..{self.first + self.c - 1} of {self.ic}"


@dataclass(frozen=True)
class ConvPool:
    """A convolution (``conv``, its activation the op's ``act``) whose output only a max or average
    pooling (``pool``, ``mode`` 'max' or 'avg', then the activation ``after``) reads, computed as one
    op: the convolution's output is never stored. ``mid``: the layer whose output it is (its int8
    quantization is the calibrated one of that layer)."""
    conv: ConvGeometry
    pool: PoolGeometry
    mode: str
    mid: str
    after: "Activation | None" = None

    def describe(self) -> str:
        after = f" +{self.after.kind}" if self.after else ""
        return f"{self.conv.describe()}; {self.mode} pool{self.pool.describe()}{after} (conv output not stored)"


Attributes = (Pixels | Broadcast | ChannelWindow | ConvGeometry | TConvGeometry | PoolGeometry | FcShape | FlattenShape
              | ConvPool | Normalization | ResizeSampling | ChannelShuffle | ChannelRange)


# =============================================================================== activations

@dataclass(frozen=True)
class Activation:
    """An elementwise activation, standalone (an ``act`` op) or fused into its producer.

    ``scalar`` is the C statement that applies it to the lvalue ``{v}``; ``vector`` the SIMD
    expression (the macros of templates/c/kernels/simd.c.j2) applied to ``{e}``, or None when it
    has none. Only ``clamp`` activations (piecewise-linear clamps: the ReLU family) fuse into the
    op producing their input; NaN propagates through every one of them."""
    kind: str                 # 'relu', 'leaky', 'clipped', 'sigmoid', ...
    title: str                # for comments: 'ReLU', 'leaky ReLU (scale 0.01)'
    scalar: str
    param: float = 0.0        # the activation's parameter (leaky scale, clipped ceiling), 0 if none
    vector: str | None = None
    clamp: bool = False
    layer: str = ""
    bounds: tuple | None = None   # (lo, hi) for a clamp to a range: int8 code applies it as the output's range

    def apply(self, v: str) -> str:
        return self.scalar.replace("{v}", v)

    def apply_vector(self, e: str) -> str:
        return self.vector.replace("{e}", e)


# =============================================================================== ops and plans

@dataclass(eq=False)
class Op:
    kind: str                 # a key of codegen.ops.KINDS: 'conv', 'fc', 'maxpool', ...
    name: str                 # layer name it comes from (sanitized when emitted)
    layers: list[str]         # every layer it implements (after fusion)
    inputs: list[Tensor]
    output: Tensor
    attrs: Attributes
    weights: dict = field(default_factory=dict)   # role -> packed float32 array
    act: Activation | None = None
    inplace: bool = False
    quant: object = None      # int8 plans: the op's quantization (codegen.quant), None in float plans
    scratch: "Tensor | None" = None   # arena workspace live only while the op runs (a stream op's row windows)

    def describe(self) -> str:
        """One line for ``codegen build --plan``."""
        ins = ", ".join(f"{t.name}[{'x'.join(map(str, t.shape))}]" for t in self.inputs)
        out = self.output
        extra = self.attrs.describe()
        if self.act:
            extra += f" +{self.act.kind}"
        if self.inplace:
            extra += " (in place)"
        if not out.dense:
            extra += f" -> channels {out.choff}..{out.choff + out.shape[2] - 1} of {out.pitch}"
        return f"{self.kind:<11} {'+'.join(self.layers)}: {ins} -> {'x'.join(map(str, out.shape))}{extra}"


@dataclass
class Plan:
    name: str
    ops: list[Op]
    input: Tensor
    outputs: list[Tensor]         # the network's outputs, back to back in the caller's output buffer
    arena_floats: int
    activations_floats: int       # sum of every layer's activation (the unfused network)
    naive_floats: int             # one buffer per planned op output
    macs: int
    reuse: bool
    dtype: str = "float32"        # 'float32' or 'int8': the type of every tensor (and arena element)
    quant: object = None          # int8 plans: the input and output quantization (codegen.quant)
    io_stage: tuple | None = None  # int8 plans: arena offsets of the float API's quantized input and outputs

    @property
    def output(self) -> Tensor:
        """The output of a network with one output."""
        if len(self.outputs) != 1:
            raise ValueError(f"plan '{self.name}' has {len(self.outputs)} outputs")
        return self.outputs[0]

    @property
    def output_floats(self) -> int:
        """Floats of the caller's output buffer: every output, back to back."""
        return sum(t.size for t in self.outputs)

    @property
    def element_bytes(self) -> int:
        return 1 if self.dtype == "int8" else FLOAT_BYTES

    @property
    def arena_bytes(self) -> int:
        return self.arena_floats * self.element_bytes

    @property
    def activation_bytes(self) -> int:
        return self.activations_floats * self.element_bytes

    @property
    def naive_bytes(self) -> int:
        return self.naive_floats * self.element_bytes

    @property
    def weight_bytes(self) -> int:
        return sum(w.nbytes for op in self.ops for w in op.weights.values())

    @property
    def extra_macs(self) -> int:    # multiply-adds recomputed beyond the network's (patch-based execution's halos)
        return sum(getattr(op.attrs, "extra_macs", 0) for op in self.ops)

    def describe(self) -> str:
        lines = [f"plan for '{self.name}': {len(self.ops)} ops"]
        for i, op in enumerate(self.ops):
            place = "out" if op.output.buffer.kind == "output" else \
                f"arena+{op.output.buffer.offset * self.element_bytes}B"
            lines.append(f"  {i:>3}  {op.describe()}  @ {place}")
        lines.append(f"arena {self.arena_bytes:,} bytes; sum of activations {self.activation_bytes:,} bytes; "
                     f"one buffer per op {self.naive_bytes:,} bytes; weights {self.weight_bytes:,} bytes; "
                     f"MACs {self.macs:,}")
        if self.extra_macs:
            lines.append(f"patch-based execution: extra MACs {self.extra_macs:,} ({self.extra_macs / self.macs:+.1%})")
        return "\n".join(lines) + "\n" + describe_memory(self)
