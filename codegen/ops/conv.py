"""Convolution (``convolution2dLayer``, ``groupedConvolution2dLayer``): lowering, batch-norm
folding, the C kernel choice with its weight packing, and the CUDA launch.

The plan keeps the canonical layout ``w[g][ky][kx][c][f]`` (which the CUDA kernel reads); the
C kernels re-pack it at generation time:

- **direct** convolution: output channels in blocks of ``vb`` (16, 32 or 64, zero-padded),
  weights ``w[g][blk][ky][kx][c][vb]``, bias ``b[g][blk][vb]``. A tile is ``p`` output pixels
  along a row times ``ch`` channels of a block (``ch`` divides ``vb``), one accumulator per pixel
  and vector; the input is broadcast, the weights are vector loads. A 1x1, stride 1, unpadded
  convolution is a matrix product: its pixels are treated as one long row.
- **grouped** convolution whose groups have few filters (blocks of 16 would be more than a fifth
  padding): the canonical layout, one output pixel at a time.
- **depthwise** convolution (one input and one output channel per group): vectors run over
  channels, weights ``w[ky][kx][C]``; a tile is ``p`` pixels times ``ch`` channels.

Templates: ``templates/c/ops/conv.c.j2`` (which includes the chosen kernel from
``templates/c/kernels/``) and ``templates/cuda/ops/conv.cu.j2``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError
from ..ir import ConvGeometry, Op, Tensor
from ..layers import Convolution2DLayer, GroupedConvolution2DLayer
from .base import CUDA_MAX_THREADS, TENSOR_CORE_MIN, CudaLaunch, OpKind, lowers, mma_tiles, op_kind, pow2
from ..quant.scheme import OpQuant, clamp_range, multipliers, quantize_bias, quantize_weights, requantize, windows
from . import cortexm, int8simd
from .tiling import HOST_ISAS, ISAS, OMP_MIN_MACS, Rows, Tile, ceil_div, device_tiers, interior, row_tile, tile_cost


@lowers(Convolution2DLayer, GroupedConvolution2DLayer)
def lower_conv(layer, inputs: list[Tensor], out: Tensor) -> Op:
    x = inputs[0]
    w = layer._weights_as_groups()                       # kh x kw x C/G x F/G x G
    kh, kw, cg, fg, g = w.shape
    packed = np.ascontiguousarray(np.transpose(w, (4, 0, 1, 2, 3)), dtype=np.float32)   # [g][ky][kx][c][f]
    pt, pb, pl, pr = layer.PaddingSize
    if layer.PaddingValue != 0:
        raise UnsupportedError(
            f"{layer.label}: property 'PaddingValue' is {layer.PaddingValue!r}; code generation supports only "
            "PaddingValue 0 (MATLAB Coder: \"Code generation does not support 'PaddingValue' equal to "
            "'replicate', 'symmetric-include-edge', 'symmetric-exclude-edge' or a nonzero scalar\"). "
            "The reference (net.predict) supports it.")
    geom = ConvGeometry(ih=x.shape[0], iw=x.shape[1], ic=x.shape[2], oh=out.shape[0], ow=out.shape[1],
                        oc=out.shape[2], kh=kh, kw=kw, sh=layer.Stride[0], sw=layer.Stride[1],
                        dh=layer.DilationFactor[0], dw=layer.DilationFactor[1], pt=pt, pb=pb, pl=pl, pr=pr,
                        groups=g, cg=cg, fg=fg)
    bias = np.asarray(layer._bias_flat(), dtype=np.float32)
    return Op("conv", layer.Name, [layer.Name], [x], out, geom, {"w": packed, "b": bias})


# =============================================================================== C kernels

@dataclass(frozen=True)
class DirectKernel:
    """Register tiles over rows of ``ow`` pixels (a 1x1 convolution: one row of every pixel)."""
    pointwise: bool
    ih: int
    iw: int
    oh: int
    ow: int
    vb: int                  # output channels per packed block
    nb: int                  # blocks per group
    rlo: int                 # rows [rlo, rhi) x columns [qlo, qhi) read only inside the input
    rhi: int
    qlo: int
    qhi: int
    tiles: dict              # instruction set -> Tile
    zeros: int               # length of the row of zeros a tap in the padding reads (0: none)
    omp: bool                # large enough to share its tiles between OpenMP threads
    kind: str = "direct"
    partial_neon: bool = False


@dataclass(frozen=True)
class DepthwiseKernel:
    """Vectors over ``cp`` channels (padded), tiles of pixels along a row."""
    ih: int
    iw: int
    oh: int
    ow: int
    cp: int
    rlo: int
    rhi: int
    qlo: int
    qhi: int
    tiles: dict
    zeros: int               # a row of zeros the edge tiles read for padding and past a row's end
    omp: bool
    partial_neon: bool       # the channels are not a whole number of NEON tiles
    kind: str = "depthwise"


@dataclass(frozen=True)
class GroupedKernel:
    """The canonical layout, one output pixel at a time."""
    kind: str = "grouped"
    zeros: int = 0
    omp: bool = False
    partial_neon: bool = False


DEVICE_BLOCK = 96          # most output channels of a microcontroller's weight block


def device_block(fg: int, ch: int) -> int:
    """The weight block of ``fg`` filters for a microcontroller tile of ``ch`` channels: the filters
    padded to a whole number of tiles, in the largest block of at most DEVICE_BLOCK channels that
    divides them. A wider block puts the weight offsets of a tile's unrolled steps out of the load
    instructions' immediate range (VLDR: 1020 bytes; arm-none-eabi-gcc 12 even emits Helium's
    post-incremented VLDRW, limited to 508, with the block's stride): MLPerf Tiny VWW's 1x1 layers of
    256 filters took 21 % more instructions on the Cortex-M4 as one block; 96 measured best (64:
    MobileNetV2's 96-filter expansion 11 % more; 128: VWW again)."""
    whole = ceil_div(fg, ch) * ch
    return max(b for b in range(ch, min(whole, DEVICE_BLOCK) + 1, ch) if whole % b == 0)


def direct_kernel(op: Op, isas: tuple = HOST_ISAS, flatten: bool = True) -> tuple[DirectKernel, dict]:
    """The direct kernel of ``op`` and its packed weights for a build holding ``isas``; ``flatten=False``
    keeps a 1x1 convolution's rows (a fused pooling reads them)."""
    a = op.attrs
    ih, iw, oh, ow = a.ih, a.iw, a.oh, a.ow
    pointwise = a.pointwise and flatten
    if pointwise:            # a matrix product: all pixels in one row
        ih, iw, oh, ow = 1, ih * iw, 1, oh * ow
    rlo, rhi = interior(oh, ih, a.kh, a.sh, a.dh, a.pt)
    qlo, qhi = interior(ow, iw, a.kw, a.sw, a.dw, a.pl)
    rows = Rows(oh, ow, rlo, rhi, qlo, qhi, a.cg, a.padded)
    tiles = {}
    if device_tiers(isas):
        # a microcontroller: the filters padded only to a whole number of the device tile's channels
        # (LeNet's 20 filters stay 20), the tile chosen first over a block every channel count divides
        if "mve" in isas:
            tier, every = "mve", 48
            tile = lambda vb: cortexm.mve_tile(rows, a.kh, a.kw, a.cg, a.fg, vb)  # noqa: E731
        else:
            tier, every = "cortexm", 8
            tile = lambda vb: cortexm.direct_tile(rows, a.kh, a.kw, a.sw, a.dw, a.cg, vb, iw, a.pl)  # noqa: E731
        vb = device_block(a.fg, tile(ceil_div(a.fg, every) * every).ch)
        tiles[tier] = tile(vb)
    else:
        # the packing block: the AVX-512 tile's channel count with the least modelled cost
        best = None
        for vb in ISAS["avx512"].chunks:
            if vb > 16 and a.fg <= vb // 2:
                continue
            t = row_tile(ISAS["avx512"], rows, vb)
            cost = ceil_div(a.fg, vb) * tile_cost(rows, t.p, t.nv)
            if best is None or cost < best[0]:
                best = (cost, vb)
        vb = best[1]
        for name, isa in ISAS.items():
            ch = vb if name == "avx512" else max(c for c in isa.chunks if vb % c == 0 and c <= vb)
            tiles[name] = row_tile(isa, rows, ch)
    nb = ceil_div(a.fg, vb)
    # weights [g][ky][kx][c][f] -> [g][blk][ky][kx][c][vb], zero-padded output channels
    g, kh, kw, cg, fg = a.groups, a.kh, a.kw, a.cg, a.fg
    padded = np.zeros((g, kh, kw, cg, nb * vb), np.float32)
    padded[..., :fg] = op.weights["w"]
    packed = np.ascontiguousarray(padded.reshape(g, kh, kw, cg, nb, vb).transpose(0, 4, 1, 2, 3, 5))
    bias = np.zeros((g, nb * vb), np.float32)
    bias[:, :fg] = op.weights["b"].reshape(g, fg)
    kernel = DirectKernel(pointwise, ih, iw, oh, ow, vb, nb, rlo, rhi, qlo, qhi, tiles,
                          zeros=cg if a.padded else 0, omp=a.macs >= OMP_MIN_MACS)
    return kernel, {"w": packed, "b": bias.reshape(g, nb, vb)}


DW_REGISTERS = {"avx512": 32, "avx2": 16, "neon": 32}


def _depthwise(op: Op, isas: tuple = HOST_ISAS) -> tuple[DepthwiseKernel, dict]:
    """SIMD tiles: one vector of channels times P pixels of a row, the row's KW weight vectors held in
    registers; each input column a tile touches is loaded once and used by every tap that reads it
    (a sliding window). Portable tiles: acc[P][CH], one tap at a time. A microcontroller build has
    only its own tiles (whose channel chunks divide the channels: no padding)."""
    a = op.attrs
    c = a.groups
    rlo, rhi = interior(a.oh, a.ih, a.kh, a.sh, a.dh, a.pt)
    qlo, qhi = interior(a.ow, a.iw, a.kw, a.sw, a.dw, a.pl)
    rows = Rows(a.oh, a.ow, rlo, rhi, qlo, qhi)
    tiles: dict[str, Tile] = {}
    if device_tiers(isas):
        mve = cortexm.mve_depthwise_tile(rows, a.kh, a.kw, a.sw, a.dw, c) if "mve" in isas else None
        if mve:
            tiles["mve"] = mve
        tiles["cortexm"] = cortexm.depthwise_tile(rows, a.kh, a.kw, a.sw, a.dw, c)
    else:
        for name, isa in ISAS.items():
            if name == "portable":
                tiles[name] = row_tile(isa, rows, 32 if c > 16 else 16)
            else:
                most = min(24, DW_REGISTERS[name] - a.kw - 2)     # accumulators beside KW weights and a column
                tiles[name] = row_tile(dataclasses.replace(isa, acc=most, pixels=tuple(range(2, most + 1))), rows,
                                       isa.vl)
    # weights [g][ky][kx][0][0] -> [ky][kx][cp]: every chunk reads whole vectors of weights and bias
    widest = max(t.ch for t in tiles.values())
    cp = ceil_div(c, widest) * widest
    w = np.zeros((a.kh, a.kw, cp), np.float32)
    w[:, :, :c] = op.weights["w"].reshape(c, a.kh, a.kw).transpose(1, 2, 0)
    b = np.zeros(cp, np.float32)
    b[:c] = op.weights["b"]
    kernel = DepthwiseKernel(a.ih, a.iw, a.oh, a.ow, cp, rlo, rhi, qlo, qhi, tiles, zeros=widest,
                             omp=a.macs >= OMP_MIN_MACS // 4,
                             partial_neon="neon" in tiles and a.ic % tiles["neon"].ch != 0)
    return kernel, {"w": w, "b": b}


# =============================================================================== CUDA

@dataclass(frozen=True)
class ConvTiles:
    """Tiles of the implicit-GEMM convolution (per group: m pixels x n filters, k = kh*kw*cg).

    A block computes a bm x bn output tile with ty x tx threads, each a tm x tn micro-tile;
    the reduction runs over k in steps of bk through shared memory (an im2col tile of bk x bm
    inputs and a bk x bn weight tile), so every staged input is reused by bn filters and every
    staged weight by bm pixels."""
    m: int
    n: int
    k: int
    bm: int
    bn: int
    bk: int
    tm: int
    tn: int
    tx: int
    ty: int
    threads: int
    mt: int                  # pixel tiles
    nt: int                  # filter tiles per group


def conv_tiles(a: ConvGeometry) -> ConvTiles:
    m, n, k = a.oh * a.ow, a.fg, a.kh * a.kw * a.cg
    bn = min(64, pow2(n))
    tn = min(4, bn)
    tx = bn // tn
    tm = 4 if m >= 64 else 2 if m >= 16 else 1
    ty = max(1, min(CUDA_MAX_THREADS // tx, pow2(ceil_div(m, tm)), 64))
    bk = min(8, pow2(k))
    return ConvTiles(m=m, n=n, k=k, bm=ty * tm, bn=bn, bk=bk, tm=tm, tn=tn, tx=tx, ty=ty, threads=tx * ty,
                     mt=ceil_div(m, ty * tm), nt=ceil_div(n, bn))


# =============================================================================== the kind

@op_kind
class Conv(OpKind):
    name = "conv"
    epilogue = True
    uses_simd = True

    def index_bound(self, op) -> int:
        a = op.attrs
        return (a.ih + a.pt + a.pb + a.kh * a.dh) * (a.iw + a.pl + a.pr + a.kw * a.dw) * a.ic

    def fold_scale_shift(self, op, scale, shift) -> bool:
        g, fg = op.attrs.groups, op.attrs.fg
        op.weights["w"] = (op.weights["w"].astype(np.float64) * scale.reshape(g, 1, 1, 1, 1, fg)[:, 0]
                           ).astype(np.float32)
        op.weights["b"] = (op.weights["b"].astype(np.float64) * scale + shift).astype(np.float32)
        return True

    def int8(self, op, qin, qout, ctx) -> None:
        """Per output channel symmetric int8 weights (canonical layout), int32 bias at s_in * s_w,
        Q31 multipliers s_in * s_w / s_out; a fused clamp is the output range."""
        a = op.attrs
        g, fg = a.groups, a.fg
        w = op.weights["w"].astype(np.float64)                     # [g][ky][kx][c][f]
        per_channel = np.moveaxis(w, 4, 1).reshape(g * fg, -1)      # one row per output channel (g, f)
        wq, sw = quantize_weights(per_channel, axis=0, given=ctx.weight_scale(op))
        wq = np.moveaxis(wq.reshape(g, fg, a.kh, a.kw, a.cg), 1, 4)
        s_in = np.float64(qin[0].scale)
        m0, shift = multipliers(s_in * sw / np.float64(qout.scale))
        op.weights = {"w": np.ascontiguousarray(wq), "b": quantize_bias(op.weights["b"], s_in * sw),
                      "m": m0, "s": shift}
        op.quant = OpQuant(qin, qout, *clamp_range(op.act.bounds if op.act else None, qout))

    def int8_reference(self, op, xs):
        a, q = op.attrs, op.quant
        x = xs[0].astype(np.int64) - q.inputs[0].zero_point
        win = windows(x, a, 0)                                      # (oh, ow, kh, kw, ic): padding adds 0
        win = win.reshape(a.oh, a.ow, a.kh, a.kw, a.groups, a.cg)
        acc = np.einsum("hwyxgc,gyxcf->hwgf", win, op.weights["w"].astype(np.int64)).reshape(a.oh, a.ow, -1)
        return requantize(acc + op.weights["b"], op.weights["m"], op.weights["s"], q)

    def fold_permutation(self, op, source) -> bool:
        if op.attrs.groups != 1:         # grouped outputs stay group-major
            return False
        op.weights["w"] = np.ascontiguousarray(op.weights["w"][..., source])
        op.weights["b"] = np.ascontiguousarray(op.weights["b"][source])
        return True

    def c_kernel(self, op, isas=HOST_ISAS):
        a = op.attrs
        if a.depthwise:
            return _depthwise(op, isas)
        if a.groups > 1 and (-a.fg % 16) * 4 > a.fg:
            # groups of few filters: blocks of 16 or more output channels per group would be mostly
            # zeros (flash on a microcontroller, and wasted lanes)
            return GroupedKernel(), dict(op.weights)
        return direct_kernel(op, isas)

    def c_kernel_int8(self, op):
        return cortexm.int8_depthwise(op) if op.attrs.depthwise else cortexm.int8_direct(op)

    def c_kernel_int8_simd(self, op, isas):
        if op.attrs.depthwise:
            return int8simd.depthwise_kernel(op, isas)
        return int8simd.conv_kernel(op, isas)

    def cuda_launch(self, op) -> CudaLaunch:
        t = conv_tiles(op.attrs)
        grid = (t.mt, t.nt * op.attrs.groups)
        if grid[1] > 65535:
            raise UnsupportedError(f"{'+'.join(op.layers)}: {grid[1]} blocks along y (groups x filter tiles) "
                                   "exceed CUDA's limit of 65535")
        return CudaLaunch(grid, t.threads, t)

    def cuda_tensor_core_launch(self, op) -> CudaLaunch | None:
        """Implicit GEMM per group on the tensor cores (templates/cuda/ops/conv_tc.cu.j2): m output
        pixels x n = FG filters, k = KH*KW*CG; groups too narrow or too short for a 16 x 16 x 8 tile
        to pay (depthwise convolutions) stay in float32."""
        a = op.attrs
        t = mma_tiles(a.oh * a.ow, a.fg, a.kh * a.kw * a.cg)
        if min(t.n, t.k) < TENSOR_CORE_MIN:
            return None
        grid = (t.mt, t.nt * a.groups)
        if grid[1] > 65535:
            return None
        return CudaLaunch(grid, t.threads, t, template="conv_tc")
