"""Convolution + max/average pooling as one op (``convpool``): the convolution's output, which
only the pooling reads, is never stored (issue 17, peak RAM). LeNet's 24x24x20 convolution
output (46,080 bytes) feeding a 2x2 max pool is the example: fused, only the pooled 12x12x20
output is in the arena.

**Arithmetic: exactly the two ops'.** The convolution (its batch norm folded, its activation
fused) is computed by the same C kernels as a ``conv`` op, a register tile (``P`` pixels of a row
times ``CH`` channels) at a time into a tile-sized temporary on the stack; the tile's values then
go into every pooled value whose window holds them, in the pooled output itself (max: from
-INFINITY; average: a sum, divided by the count at the end). Each pooled value receives its
window's values in the order the pooling op reads them (rows, then columns), so results equal the
separate ops' bit for bit. int8: the convolution requantizes to its own output's int8 scale (the
calibrated one of layer ``mid``) and the pooling works on those int8 values, with the pooling's
multipliers, exactly as the two int8 ops do (:meth:`ConvPoolKind.int8_reference` runs the two
ops' integer references); the int8 kernel computes one pooled pixel at a time (the window's
convolution pixels, recomputed where windows overlap: ``kh*kw / (sh*sw)`` times the convolution's
multiply-adds for an overlapping pool, none otherwise).

**Memory:** the arena holds the pooled output only; the stack a tile (``P x VB`` floats, about
the size of the convolution's own register tile) or, int8, one pixel's int32 accumulators.

**When:** a convolution whose one reader is a max or average pooling (its output neither a
network output nor part of a concatenation), except depthwise convolutions (whose SIMD kernel
vectorizes over channels; a pooling after one is rare). Only the C dialect fuses (the plan step
``codegen.plan.fuse_producers``, asked for by :class:`codegen.emit.dialect.Dialect`'s
``conv_pool``): CUDA keeps the two kernels (its implicit-GEMM convolution would lose its tiling,
and a GPU's memory is not the constraint). Compiled with OpenMP, the pooled rows are split into
bands computed in parallel (conv rows shared by two bands' windows are computed by both);
without it, one band: every convolution row is computed once (splitting into bands there made
``examples/resnet_like.py``'s fused stem, a 3x3 / stride-2 pool, compute 40 convolution rows
instead of 32: 27.5 us against 21.7 + 5.0 us for the separate ops; one band: 22.5 us).

Templates: ``templates/c/ops/convpool.c.j2`` (the convolution's tiles from
``templates/c/kernels/direct.c.j2``) and ``templates/c/ops/int8/convpool.c.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import ConvPool, Op, Tensor
from . import cortexm
from .base import KINDS, OpKind, op_kind
from .conv import GroupedKernel, direct_kernel
from .tiling import HOST_ISAS

POOL_KINDS = {"max": "maxpool", "avg": "avgpool"}
MAX_BANDS = 8          # OpenMP jobs along the pooled rows


def fuse_conv_pool(conv: Op, pool: Op) -> Op | None:
    """The ``convpool`` op computing ``pool`` of ``conv``'s output, or None where it does not apply."""
    mode = {v: k for k, v in POOL_KINDS.items()}.get(pool.kind)
    if conv.kind != "conv" or mode is None or conv.attrs.depthwise:
        return None
    attrs = ConvPool(conv.attrs, pool.attrs, mode, conv.output.name, pool.act)
    return Op("convpool", conv.name, conv.layers + pool.layers, list(conv.inputs), pool.output, attrs,
              dict(conv.weights), act=conv.act)


@dataclass
class FusedQuant:
    """The int8 quantization of a ``convpool`` op: the convolution's and the pooling's."""
    conv: object              # codegen.quant.scheme.OpQuant
    pool: object

    @property
    def inputs(self):
        return self.conv.inputs

    @property
    def output(self):
        return self.pool.output


def parts(op: Op) -> tuple[Op, Op]:
    """The ``conv`` and pooling ops that ``op`` computes together (views of its weights and quantization)."""
    a = op.attrs
    k = op.layers.index(a.mid) + 1 if a.mid in op.layers else 1
    mid = Tensor(a.mid, (a.conv.oh, a.conv.ow, a.conv.oc))
    conv = Op("conv", op.name, op.layers[:k], op.inputs, mid, a.conv,
              {r: op.weights[r] for r in ("w", "b", "m", "s") if r in op.weights}, act=op.act)
    pool = Op(POOL_KINDS[a.mode], op.name, op.layers[k:], [mid], op.output, a.pool,
              {r: op.weights["p" + r] for r in ("m", "s") if "p" + r in op.weights}, act=a.after)
    if isinstance(op.quant, FusedQuant):
        conv.quant, pool.quant = op.quant.conv, op.quant.pool
    return conv, pool


@dataclass(frozen=True)
class Int8ConvPoolKernel:
    """The int8 kernel of a ``convpool`` op on a microcontroller: the convolution's
    (:class:`codegen.ops.cortexm.Int8Kernel`) computes two pixels of a pooling window at a time
    into a small buffer, which the pooling reads."""
    conv: object
    kind: str = "int8_convpool_dsp"
    zeros: int = 0
    partial_neon: bool = False


@dataclass(frozen=True)
class ConvPoolKernel:
    """The C kernel of a ``convpool`` op: the convolution's (``conv``: direct register tiles, or one
    pixel at a time for groups of few filters), its op as the tile functions read it, and
    ``bands`` of pooled rows (OpenMP jobs; 1 when the convolution is too small to share)."""
    conv: object
    conv_op: Op
    bands: int
    kind: str = "convpool"

    @property
    def zeros(self) -> int:
        return self.conv.zeros

    @property
    def omp(self) -> bool:
        return self.conv.omp

    @property
    def partial_neon(self) -> bool:
        return self.conv.partial_neon


@op_kind
class ConvPoolKind(OpKind):
    name = "convpool"
    uses_simd = True

    def index_bound(self, op) -> int:
        return KINDS["conv"].index_bound(parts(op)[0])

    def int8(self, op, qin, qout, ctx) -> None:
        conv, pool = parts(op)
        qmid = KINDS["conv"].int8_output(conv, qin, ctx.calibration.params[op.attrs.mid])
        KINDS["conv"].int8(conv, qin, qmid, ctx)
        KINDS[pool.kind].int8(pool, [qmid], qout, ctx)
        op.weights = {**conv.weights, "pm": pool.weights["m"], "ps": pool.weights["s"]}
        op.quant = FusedQuant(conv.quant, pool.quant)

    def int8_reference(self, op, xs):
        conv, pool = parts(op)
        return KINDS[pool.kind].int8_reference(pool, [KINDS["conv"].int8_reference(conv, xs)])

    def c_kernel_int8(self, op):
        """The convolution's int8 kernel (codegen.ops.cortexm.Int8Kernel: two pixels of a pooling
        window at a time), or None (the portable template)."""
        conv, _ = parts(op)
        chosen = cortexm.int8_direct(conv)
        if chosen is None:
            return None
        kernel, packed = chosen
        return Int8ConvPoolKernel(kernel), {**packed, "pm": op.weights["pm"], "ps": op.weights["ps"]}

    def c_kernel(self, op, isas=HOST_ISAS):
        conv, _ = parts(op)
        a = conv.attrs
        if a.groups > 1 and (-a.fg % 16) * 4 > a.fg:       # as Conv.c_kernel: groups of few filters
            kernel, packed = GroupedKernel(), dict(conv.weights)
        else:
            kernel, packed = direct_kernel(conv, isas, flatten=False)     # rows stay rows: the pooling reads them
        bands = min(op.attrs.pool.oh, MAX_BANDS) if kernel.omp else 1
        return ConvPoolKernel(kernel, conv, bands), packed
