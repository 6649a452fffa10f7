"""The CUDA backend's files: <name>.cu, <name>.h, <name>_weights.c, cuda_emu.h, Makefile, README.md.

One ``__global__`` kernel per planned op, every shape a compile-time constant. This module
decides what the templates cannot: each kernel's tile sizes, launch grid and block, the
arguments of its launch, and where each weight array lives in the single device allocation.
The kernels themselves are in ``templates/cuda/ops/<kind>.cu.j2``; the host code (context,
init, predict, error handling, the one launch macro) in ``templates/cuda/network.cu.j2``.

Batches: every kernel takes the image index from ``blockIdx.z`` and offsets each pointer by
that image's stride (the input or output size, or the arena size: the device arena holds one
copy of the plan's arena per image of the largest batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UnsupportedError
from ..plan import Plan, Tensor
from ..resources import runtime_dir
from .common import Context, OpView, make_context, render
from .dialect import CUDA

WEIGHT_ALIGN_FLOATS = 32          # 128 bytes: each weight array starts a memory transaction
MAX_THREADS = 256                 # threads per block of every kernel (__launch_bounds__)
ELEMENTWISE_KINDS = ("act", "scale_shift", "add", "normalize", "copy", "maxpool", "avgpool")


def _pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))


# ------------------------------------------------------------------ tile choices

def conv_tiles(a: dict) -> dict:
    """Tiles of the implicit-GEMM convolution (per group: M pixels x N filters, K = KH*KW*CG).

    A block computes a BM x BN output tile with TY x TX threads, each a TM x TN micro-tile;
    the reduction runs over K in steps of BK through shared memory (an im2col tile of BK x BM
    inputs and a BK x BN weight tile), so every staged input is reused by BN filters and every
    staged weight by BM pixels."""
    m, n, k = a["OH"] * a["OW"], a["FG"], a["KH"] * a["KW"] * a["CG"]
    bn = min(64, _pow2(n))
    tn = min(4, bn)
    tx = bn // tn
    tm = 4 if m >= 64 else 2 if m >= 16 else 1
    ty = max(1, min(MAX_THREADS // tx, _pow2(_cdiv(m, tm)), 64))
    bk = min(8, _pow2(k))
    return dict(M=m, N=n, K=k, BM=ty * tm, BN=bn, BK=bk, TM=tm, TN=tn, TX=tx, TY=ty, THREADS=tx * ty,
                MT=_cdiv(m, ty * tm), NT=_cdiv(n, bn))


def fc_tiles(a: dict) -> dict:
    """Fully connected: BO outputs per block, KS threads splitting the reduction over each."""
    bo = min(32, _pow2(a["OUT"]))
    ks = max(1, min(MAX_THREADS // bo, _pow2(a["IN"])))
    return dict(BO=bo, KS=ks, THREADS=bo * ks, OT=_cdiv(a["OUT"], bo))


def softmax_threads(channels: int) -> int:
    return min(MAX_THREADS, max(32, _pow2(channels)))


def elementwise_threads(total: int) -> int:
    return min(MAX_THREADS, _cdiv(total, 32) * 32)


# ------------------------------------------------------------------ per-op view

@dataclass
class Param:
    ctype: str                    # 'const float *' or 'float *'
    name: str
    restrict: bool

    def declare(self, restrict_kw: str) -> str:
        return f"{self.ctype}{restrict_kw + ' ' if self.restrict else ''}{self.name}"


@dataclass
class CudaOp:
    """An op as the CUDA templates see it: the shared OpView plus kernel parameters and launch."""
    v: OpView
    in_names: list[str]           # the input pointer parameters: 'in', or 'in1', 'in2', ...
    params: list[Param]           # kernel parameters, in order
    args: list[str]               # launch arguments (host expressions), in the same order
    strides: dict[str, int]       # pointer parameter -> floats between two images of a batch
    grid: tuple[int, int]         # blocks in x and y (z is the batch)
    block: int                    # threads per block (1-D)
    T: dict = field(default_factory=dict)   # tile constants
    dead: list = field(default_factory=list)  # (offset, floats) of buffers to fill with NaN after it

    @property
    def fn(self) -> str:
        return self.v.fn


def batch_stride(t: Tensor, plan: Plan) -> int:
    b = t.buffer
    return plan.arena_floats if b.kind == "arena" else b.size


def weight_offsets(ctx: Context) -> tuple[dict[str, int], int]:
    """{weight symbol: float offset in the device weights block}, and the block's size in floats."""
    offsets, total = {}, 0
    for w in ctx.weights:
        offsets[w.symbol] = total
        total += _cdiv(w.size, WEIGHT_ALIGN_FLOATS) * WEIGHT_ALIGN_FLOATS
    return offsets, total


def cuda_op(v: OpView, plan: Plan, woff: dict[str, int]) -> CudaOp:
    op, a = v.op, v.A
    names = ["in"] if len(op.inputs) == 1 else [f"in{i + 1}" for i in range(len(op.inputs))]
    alias = not op.inplace
    params = [Param("const float *", n, alias) for n in names] + [Param("float *", "out", alias)]
    args = [*v.src, v.dst]
    strides = {n: batch_stride(t, plan) for n, t in zip(names, op.inputs)}
    strides["out"] = batch_stride(op.output, plan)
    for role, sym in v.weights.items():
        params.append(Param("const float *", role, True))
        args.append(f"weights + {woff[sym]}")
    T: dict = {}
    if op.kind == "conv":
        T = conv_tiles(a)
        grid, block = (T["MT"], T["NT"] * a["G"]), T["THREADS"]
    elif op.kind == "fc":
        T = fc_tiles(a)
        grid, block = (T["OT"], 1), T["THREADS"]
    elif op.kind == "softmax":
        block = softmax_threads(a["C"])
        grid = (a["H"] * a["W"], 1)
    else:
        total = a["OH"] * a["OW"] * a["C"] if op.kind in ("maxpool", "avgpool") else a["H"] * a["W"] * a["C"]
        block = elementwise_threads(total)
        grid = (_cdiv(total, block), 1)
        T = dict(TOTAL=total)
    if grid[1] > 65535:
        raise UnsupportedError(f"{'+'.join(op.layers)}: {grid[1]} blocks along y (groups x filter tiles) exceed "
                               "CUDA's limit of 65535")
    return CudaOp(v, names, params, args, strides, grid, block, T, list(v.dead))


def c_string(text: str) -> str:
    """A C string literal of printable ASCII text."""
    safe = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"').replace("??", "?\\?") + '"'


def render_cuda(net, plan: Plan, options: dict) -> dict[str, str]:
    """Render every file of the CUDA output; returns {file name: text}."""
    ctx = make_context(plan, net, CUDA, options)
    woff, wfloats = weight_offsets(ctx)
    cops = [cuda_op(v, plan, woff) for v in ctx.ops]
    p = ctx.prefix
    extra = dict(cops=cops, woff=woff, weight_floats=wfloats, c_string=c_string,
                 op_names=["+".join(v.op.layers) for v in ctx.ops])
    return {
        f"{p}.h": render("cuda/network.h.j2", ctx, **extra),
        f"{p}.cu": render("cuda/network.cu.j2", ctx, **extra),
        f"{p}_weights.c": render("c/weights.c.j2", ctx),
        "cuda_emu.h": (runtime_dir() / "cuda_emu.h").read_text(),
        "Makefile": render("cuda/Makefile.j2", ctx, **extra),
        "README.md": render("cuda/README.md.j2", ctx, **extra),
    }
