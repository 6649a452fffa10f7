"""The CUDA backend's files: <name>.cu, <name>.h, <name>_weights.c, cuda_emu.h, Makefile, README.md.

One ``__global__`` kernel per planned op, every shape a compile-time constant. This module
decides what the templates cannot: the arguments of each launch and where each weight array
lives in the single device allocation; each kind's tiles, grid and block come from its home
(:meth:`codegen.ops.OpKind.cuda_launch`).
The kernels themselves are in ``templates/cuda/ops/<kind>.cu.j2``; the host code (context,
init, predict, error handling, the one launch macro) in ``templates/cuda/network.cu.j2``.

Batches: every kernel takes the image index from ``blockIdx.z`` and offsets each pointer by
that image's stride (the input or output size, or the arena size: the device arena holds one
copy of the plan's arena per image of the largest batch).

Precision (the ``precision`` option, :data:`PRECISIONS`): 'tf32' (the default, as cuDNN's on
Ampere and newer) runs convolutions and fully connected layers whose kind offers a tensor-core
kernel (:meth:`codegen.ops.OpKind.cuda_tensor_core_launch`) on the tensor cores, with inputs
rounded to TF32 (10 mantissa bits) and float32 accumulation; 'fp16' and 'bf16' the same with the
inputs rounded to half or bfloat16 as they are staged (activations and weights stay float32 in
memory); 'fp32' keeps every op in strict float32 on the CUDA cores. A tensor-core FC kernel takes 16 images per block (grid z) and the batch
size ``n`` as its last parameter.

int8 plans (:mod:`codegen.quant`): the kernels are ``templates/cuda/ops/int8/<kind>.cu.j2`` over
int8 tensors, with the same launches (each kind's :meth:`~codegen.ops.OpKind.cuda_launch`); the
host code is ``templates/cuda/network_int8.cu.j2`` (a float API that quantizes and dequantizes on
the device, and an int8 API). Their weights are int8 and int32 arrays in one device block
addressed in bytes.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field

from ..errors import CodegenError
from ..ir import Plan, Tensor
from ..ops import KINDS
from ..resources import runtime_dir
from .common import Context, OpView, c_type, make_context, render
from .dialect import CUDA

WEIGHT_ALIGN_BYTES = 128          # each weight array starts a memory transaction
DEFAULT_PRECISION = "tf32"


@dataclass(frozen=True)
class MmaType:
    """What differs between the tensor-core precisions in templates/cuda/mma.j2."""
    name: str
    operand: str          # the fragments' element type
    storage: str          # the staged tiles' element type in shared memory
    convert: str          # float -> storage, rounding to nearest
    k: int                # WMMA shape m16n16k<k>
    pad: int              # leading-dimension padding in elements (16 bytes)
    header: str = ""      # the CUDA header that declares the storage type


MMA_TYPES = {
    "tf32": MmaType("tf32", "nvcuda::wmma::precision::tf32", "float", "nvcuda::wmma::__float_to_tf32", 8, 4),
    "fp16": MmaType("fp16", "__half", "__half", "__float2half_rn", 16, 8, "cuda_fp16.h"),
    "bf16": MmaType("bf16", "__nv_bfloat16", "__nv_bfloat16", "__float2bfloat16_rn", 16, 8, "cuda_bf16.h"),
}
PRECISIONS = (*MMA_TYPES, "fp32")     # float plans: tensor cores with rounded inputs, or strict float32


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
    strides: dict[str, int]       # pointer parameter -> elements between two images of a batch
    grid: tuple[int, int]         # blocks in x and y (z is the batch)
    block: int                    # threads per block (1-D)
    tiles: object = None          # tile constants of the kind's launch (codegen.ops)
    dead: list = field(default_factory=list)  # (offset, floats) of buffers to fill with NaN after it
    template: str = ""            # templates/cuda/ops/<template>.cu.j2
    batch_rows: int = 0           # images per grid z (0: one); the kernel then takes n
    mma: MmaType | None = None    # the tensor cores' precision (tensor-core kernels)

    @property
    def tensor_cores(self) -> bool:
        return self.template.endswith("_tc")

    @property
    def min_blocks(self) -> int:
        """Blocks per multiprocessor for __launch_bounds__ (see templates/cuda/macros.j2)."""
        return 3 if self.tensor_cores else 2

    def grid_z(self, n: str) -> str:
        """Grid z for a batch of ``n`` images (a C expression)."""
        return f"({n} + {self.batch_rows - 1}) / {self.batch_rows}" if self.batch_rows > 1 else n

    @property
    def fn(self) -> str:
        return self.v.fn


def batch_stride(t: Tensor, plan: Plan) -> int:
    b = t.buffer
    return {"arena": plan.arena_floats, "output": plan.output_floats}.get(b.kind, b.size)


def weight_offsets(ctx: Context, unit: int = 4) -> tuple[dict[str, int], int]:
    """{weight symbol: offset in the device weights block}, and the block's size, both in units of
    ``unit`` bytes (floats for a float plan, bytes for an int8 plan's int8 and int32 arrays)."""
    offsets, total, align = {}, 0, WEIGHT_ALIGN_BYTES // unit
    for w in ctx.weights:
        offsets[w.symbol] = total
        total += -(-(w.nbytes // unit) // align) * align
    return offsets, total


def cuda_op(v: OpView, plan: Plan, woff: dict[str, int], precision: str = DEFAULT_PRECISION) -> CudaOp:
    op = v.op
    int8 = plan.dtype == "int8"
    elem = "int8_t" if int8 else "float"
    names = ["in"] if len(op.inputs) == 1 else [f"in{i + 1}" for i in range(len(op.inputs))]
    alias = not op.inplace
    params = [Param(f"const {elem} *", n, alias) for n in names] + [Param(f"{elem} *", "out", alias)]
    args = [*v.src, v.dst]
    strides = {n: batch_stride(t, plan) for n, t in zip(names, op.inputs)}
    strides["out"] = batch_stride(op.output, plan)
    for role, sym in v.weights.items():
        ctype = c_type(op.weights[role])
        params.append(Param(f"const {ctype} *", role, True))
        # an int8 plan's block is bytes: each array is cast to its type
        args.append(f"(const {ctype} *)(weights + {woff[sym]})" if int8 else f"weights + {woff[sym]}")
    kind = KINDS[op.kind]
    mma = None if int8 else MMA_TYPES.get(precision)
    launch = (kind.cuda_tensor_core_launch(op) if mma else None) or kind.cuda_launch(op)
    if launch.batch_rows:
        params.append(Param("int ", "n", False))
        args.append("n")
    return CudaOp(v, names, params, args, strides, launch.grid, launch.block, launch.tiles, list(v.dead),
                  launch.template or op.kind, launch.batch_rows, mma if launch.template else None)


def launch_uses(cops: list[CudaOp]) -> set[str]:
    """Which of the launch function's pointers (arena, weights, in, out) some launch passes."""
    words = {w for c in cops for a in c.args for w in re.findall(r"[A-Za-z_]\w*", a)}
    return words & {"arena", "weights", "in", "out"}


def c_string(text: str) -> str:
    """A C string literal of printable ASCII text."""
    safe = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"').replace("??", "?\\?") + '"'


def render_cuda(net, plan: Plan, options: dict) -> dict[str, str]:
    """Render every file of the CUDA output; returns {file name: text}."""
    ctx = make_context(plan, net, CUDA, options)
    unit = plan.element_bytes                  # float plans: offsets in floats; int8 plans: in bytes
    woff, wsize = weight_offsets(ctx, unit)
    precision = options.get("precision") or DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise CodegenError(f"CUDA precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    cops = [cuda_op(v, plan, woff, precision) for v in ctx.ops]
    p = ctx.prefix
    extra = dict(cops=cops, woff=woff, weight_floats=wsize * unit // 4, block_bytes=wsize * unit, c_string=c_string,
                 op_names=["+".join(v.op.layers) for v in ctx.ops], launch_uses=launch_uses(cops),
                 precision=precision, tensor_core_ops=sum(c.tensor_cores for c in cops),
                 mma_headers=sorted({c.mma.header for c in cops if c.mma and c.mma.header}))
    network = "cuda/network_int8" if plan.dtype == "int8" else "cuda/network"
    return {
        f"{p}.h": render(f"{network}.h.j2", ctx, **extra),
        f"{p}.cu": render(f"{network}.cu.j2", ctx, **extra),
        **ctx.weight_files(),
        "cuda_emu.h": (runtime_dir() / "cuda_emu.h").read_text(),
        "Makefile": render("cuda/Makefile.j2", ctx, **extra),
        "README.md": render("cuda/README.md.j2", ctx, **extra),
    }
