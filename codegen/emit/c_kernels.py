"""Kernel choices of the C backend: register tiles per instruction set and weights re-packed for them.

The plan keeps its canonical layouts (convolution ``w[g][ky][kx][c][f]``, fully connected
``w[in][out]``), which the CUDA backend reads. The C output re-packs them here, at generation
time, into the layouts its kernels want, and records each kernel's blocking in ``attrs["K"]``:

- direct convolution: output channels in blocks of ``VB`` (16, 32 or 64, zero-padded), weights
  ``w[g][blk][ky][kx][c][VB]``, bias ``b[g][blk][VB]``. A tile is ``P`` output pixels along a row
  times ``CH`` channels of a block (``CH`` divides ``VB``), one accumulator per pixel and vector;
  the input is broadcast, the weights are vector loads. A 1x1, stride 1, unpadded convolution is a
  matrix product: its pixels are treated as one long row.
- grouped convolution whose groups have few filters (blocks of 16 would be more than a fifth
  padding): the canonical layout, one output pixel at a time.
- depthwise convolution (one input and one output channel per group): vectors run over channels,
  weights ``w[ky][kx][C]``; a tile is ``P`` pixels times ``CH`` channels.
- fully connected: outputs in blocks of ``VB``, weights ``w[blk][in][VB]``; the reduction over the
  input is split ``R`` ways so that enough independent accumulators hide the FMA latency. With few
  outputs (blocks more than a fifth padding) it is a dot product per output over ``w[out][in]``.

Each instruction set (AVX-512, AVX2 with FMA, AArch64 NEON, and the portable C99 tier) gets its
own tile, chosen by a small cost model from the layer's shape; the generated code picks one at
compile time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..plan import Op, Plan

@dataclass(frozen=True)
class Isa:
    name: str
    vl: int              # floats per vector (the portable tier: its channel chunk is vectorized by the compiler)
    acc: int             # most accumulators (vector registers) a tile may use
    chunks: tuple        # channel counts per tile it may use (each a multiple of vl)
    pixels: tuple        # pixels per tile it may use


# In the order the generated code tests for them; 'portable' is the #else.
ISAS = {
    # AVX-512, 32 zmm registers of 16 floats: up to 28 accumulators, the rest for weights and the broadcast.
    "avx512": Isa("avx512", 16, 28, (16, 32, 64), tuple(range(4, 15))),
    # AVX2 with FMA, 16 ymm registers of 8 floats: 12 accumulators, 2 weight vectors, 1 broadcast.
    "avx2": Isa("avx2", 8, 12, (16,), (3, 4, 5, 6)),
    # AArch64 NEON, 32 q registers of 4 floats: 24 accumulators, 4 weight vectors, 1 broadcast.
    "neon": Isa("neon", 4, 24, (16,), (4, 5, 6)),
    # plain C: acc[P][16] floats on the stack (at most 512 bytes), a loop over 16 channels that compilers
    # vectorize (direct convolution; the depthwise kernel chooses its own).
    "portable": Isa("portable", 1, 256, (16,), (4, 5, 6, 7, 8)),
}

TILE_OVERHEAD = 8          # cost of a reduction step beyond its FMAs (loads, loop, tile set-up), in FMA slots
FC_ACCUMULATORS = {"avx512": 8, "avx2": 8, "neon": 16, "portable": 4}   # R * vectors per block
OMP_MIN_MACS = 2_000_000   # layers with fewer multiply-adds run on one thread (a fork costs microseconds)


@dataclass(frozen=True)
class Tile:
    isa: str
    P: int               # output pixels per tile (depthwise and direct) or reduction split R (fully connected)
    CH: int              # channels per tile
    NV: int              # vectors per tile (CH / vector length)
    T0: int = 0          # interior tiles of a row: T0 <= t < T1 (direct and depthwise convolution)
    T1: int = 0


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _interior(n_out: int, n_in: int, k: int, s: int, d: int, pad: int) -> tuple[int, int]:
    """Output positions [lo, hi) whose every tap lies inside the input."""
    lo = _ceil(pad, s)
    hi = (n_in - 1 - (k - 1) * d + pad) // s + 1 if n_in - 1 - (k - 1) * d + pad >= 0 else 0
    hi = max(lo, min(hi, n_out))
    return min(lo, n_out), hi


@dataclass(frozen=True)
class Rows:
    """The output rows of a layer as the tiles see them: [RLO, RHI) x [QLO, QHI) is the interior."""
    rows: int
    cols: int
    rlo: int
    rhi: int
    qlo: int
    qhi: int
    cg: int = 0              # input channels a tap reads (direct convolution); 0: edge tiles cost no more
    padded: bool = False     # edge tiles choose between the input and a row of zeros per tap


def _tile_cost(rows: Rows, p: int, nv: int) -> float:
    """Modelled cost (in FMA issue slots per reduction step, summed over a row-chunk's tiles) of
    P x nv tiles: every reduction step costs P*nv FMAs plus TILE_OVERHEAD; an edge tile of a direct
    convolution also computes P input pointers per tap, amortized over the tap's cg channels (more
    when it chooses each between the input and the zeros, most when P pointers no longer fit the
    general registers)."""
    tiles = _ceil(rows.cols, p)
    t0, t1 = _ceil(rows.qlo, p), max(_ceil(rows.qlo, p), rows.qhi // p)
    interior = max(0, rows.rhi - rows.rlo) * max(0, t1 - t0)
    edge = rows.rows * tiles - interior
    step = p * nv + TILE_OVERHEAD
    per_pointer = (4 if p <= 8 else 12) if rows.padded else 1
    edge_step = step + (p * per_pointer / rows.cg if rows.cg else 0)
    return interior * step + edge * edge_step


def _row_tile(isa: Isa, rows: Rows, ch: int) -> Tile:
    """The pixel count P for tiles of ``ch`` channels: least modelled cost, then the larger tile."""
    nv = max(1, ch // isa.vl)
    best = None
    for p in isa.pixels:
        if p * nv > isa.acc:
            continue
        key = (_tile_cost(rows, p, nv), -p)
        if best is None or key < best[0]:
            best = (key, p)
    p = best[1] if best else 1
    t0 = _ceil(rows.qlo, p)
    return Tile(isa.name, p, ch, nv, t0, max(t0, rows.qhi // p))


# =============================================================================== direct convolution

def _grouped(op: Op) -> tuple[dict, dict]:
    """Groups of few filters: blocks of 16 or more output channels per group would be mostly zeros
    (flash on a microcontroller, and wasted lanes): the canonical layout, one pixel at a time."""
    return dict(kind="grouped", zeros=0, omp=False), dict(op.weights)


def _direct(op: Op) -> tuple[dict, dict]:
    a = op.attrs
    ih, iw, oh, ow = a["IH"], a["IW"], a["OH"], a["OW"]
    pointwise = (a["KH"], a["KW"], a["SH"], a["SW"], a["PT"], a["PB"], a["PL"], a["PR"]) == (1, 1, 1, 1, 0, 0, 0, 0)
    if pointwise:            # a matrix product: all pixels in one row
        ih, iw, oh, ow = 1, ih * iw, 1, oh * ow
    fg, cg, g = a["FG"], a["CG"], a["G"]
    rlo, rhi = _interior(oh, ih, a["KH"], a["SH"], a["DH"], a["PT"])
    qlo, qhi = _interior(ow, iw, a["KW"], a["SW"], a["DW"], a["PL"])
    rows = Rows(oh, ow, rlo, rhi, qlo, qhi, cg, any(a[k] for k in ("PT", "PB", "PL", "PR")))
    # the packing block: the AVX-512 tile's channel count with the least modelled cost
    best = None
    for vb in ISAS["avx512"].chunks:
        if vb > 16 and fg <= vb // 2:
            continue
        t = _row_tile(ISAS["avx512"], rows, vb)
        cost = _ceil(fg, vb) * _tile_cost(rows, t.P, t.NV)
        if best is None or cost < best[0]:
            best = (cost, vb)
    vb = best[1]
    nb = _ceil(fg, vb)
    tiles = {}
    for name, isa in ISAS.items():
        ch = vb if name == "avx512" else max(c for c in isa.chunks if vb % c == 0 and c <= vb)
        tiles[name] = _row_tile(isa, rows, ch)
    # weights [g][ky][kx][c][f] -> [g][blk][ky][kx][c][VB], zero-padded output channels
    w = op.weights["w"]
    kh, kw = a["KH"], a["KW"]
    padded = np.zeros((g, kh, kw, cg, nb * vb), np.float32)
    padded[..., :fg] = w
    packed = np.ascontiguousarray(padded.reshape(g, kh, kw, cg, nb, vb).transpose(0, 4, 1, 2, 3, 5))
    bias = np.zeros((g, nb * vb), np.float32)
    bias[:, :fg] = op.weights["b"].reshape(g, fg)
    k = dict(kind="direct", pointwise=pointwise, IH=ih, IW=iw, OH=oh, OW=ow, VB=vb, NB=nb,
             RLO=rlo, RHI=rhi, QLO=qlo, QHI=qhi, tiles=tiles, zeros=cg,
             omp=op_macs(op) >= OMP_MIN_MACS)
    return k, {"w": packed.ravel(), "b": bias.ravel()}


# =============================================================================== depthwise convolution

DW_REGISTERS = {"avx512": 32, "avx2": 16, "neon": 32}


def _depthwise(op: Op) -> tuple[dict, dict]:
    """SIMD tiles: one vector of channels times P pixels of a row, the row's KW weight vectors held in
    registers; each input column a tile touches is loaded once and used by every tap that reads it
    (a sliding window). Portable tiles: acc[P][CH], one tap at a time."""
    a = op.attrs
    c = a["G"]
    rlo, rhi = _interior(a["OH"], a["IH"], a["KH"], a["SH"], a["DH"], a["PT"])
    qlo, qhi = _interior(a["OW"], a["IW"], a["KW"], a["SW"], a["DW"], a["PL"])
    rows = Rows(a["OH"], a["OW"], rlo, rhi, qlo, qhi)
    tiles = {}
    for name, isa in ISAS.items():
        if name == "portable":
            tiles[name] = _row_tile(isa, rows, 32 if c > 16 else 16)
        else:
            most = min(24, DW_REGISTERS[name] - a["KW"] - 2)     # accumulators beside KW weights and a column
            tiles[name] = _row_tile(dataclasses.replace(isa, acc=most, pixels=tuple(range(2, most + 1))), rows,
                                    isa.vl)
    # weights [g][ky][kx][0][0] -> [ky][kx][CP]: every chunk reads whole vectors of weights and bias
    widest = max(t.CH for t in tiles.values())
    cp = _ceil(c, widest) * widest
    w = np.zeros((a["KH"], a["KW"], cp), np.float32)
    w[:, :, :c] = op.weights["w"].reshape(c, a["KH"], a["KW"]).transpose(1, 2, 0)
    b = np.zeros(cp, np.float32)
    b[:c] = op.weights["b"]
    k = dict(kind="depthwise", IH=a["IH"], IW=a["IW"], OH=a["OH"], OW=a["OW"], CP=cp,
             RLO=rlo, RHI=rhi, QLO=qlo, QHI=qhi, tiles=tiles, zeros=widest,
             omp=op_macs(op) >= OMP_MIN_MACS // 4)
    return k, {"w": w.ravel(), "b": b}


# =============================================================================== fully connected

def _fc(op: Op) -> tuple[dict, dict]:
    n_in, n_out = op.attrs["IN"], op.attrs["OUT"]
    vb = 16 if n_out <= 16 else 32 if n_out <= 48 else 64
    nb = _ceil(n_out, vb)
    if (nb * vb - n_out) * 4 > n_out:
        # more than a fifth of the blocked weights would be padding (e.g. a 10-class classifier: 16 columns
        # for 10), which costs flash on a microcontroller: dot products over MATLAB's [out][in] instead
        k = dict(kind="fc_dot", zeros=0, omp=False)
        return k, {"w": np.ascontiguousarray(op.weights["w"].T).ravel(), "b": op.weights["b"]}
    tiles = {}
    for name, isa in ISAS.items():
        ch = vb if name == "avx512" else 16
        nv = max(1, ch // isa.vl)
        r = FC_ACCUMULATORS[name] if name == "portable" else max(1, FC_ACCUMULATORS[name] // nv)
        tiles[name] = Tile(name, r, ch, nv)
    padded = np.zeros((n_in, nb * vb), np.float32)
    padded[:, :n_out] = op.weights["w"]
    packed = np.ascontiguousarray(padded.reshape(n_in, nb, vb).transpose(1, 0, 2))
    b = np.zeros(nb * vb, np.float32)
    b[:n_out] = op.weights["b"]
    k = dict(kind="fc", VB=vb, NB=nb, tiles=tiles, zeros=0, omp=op_macs(op) >= 8 * OMP_MIN_MACS)
    return k, {"w": packed.ravel(), "b": b}


# =============================================================================== plan

def op_macs(op: Op) -> int:
    a = op.attrs
    if op.kind == "conv":
        return a["OH"] * a["OW"] * a["OC"] * a["CG"] * a["KH"] * a["KW"]
    if op.kind == "fc":
        return a["IN"] * a["OUT"]
    return 0


def is_depthwise(op: Op) -> bool:
    a = op.attrs
    return op.kind == "conv" and a["G"] > 1 and a["CG"] == 1 and a["FG"] == 1


def specialize(plan: Plan) -> tuple[Plan, int]:
    """A copy of ``plan`` whose conv and fc ops carry re-packed weights and their kernel choices
    in ``attrs["K"]``; and the length of the row of zeros the padded tiles read (0: none)."""
    ops = []
    zeros = 0
    for op in plan.ops:
        if op.kind not in ("conv", "fc"):
            ops.append(op)
            continue
        if op.kind == "fc":
            k, weights = _fc(op)
        elif is_depthwise(op):
            k, weights = _depthwise(op)
        elif op.attrs["G"] > 1 and (-op.attrs["FG"] % 16) * 4 > op.attrs["FG"]:
            k, weights = _grouped(op)
        else:
            k, weights = _direct(op)
        if k["kind"] == "depthwise" or (op.kind == "conv" and any(op.attrs[p] for p in ("PT", "PB", "PL", "PR"))):
            zeros = max(zeros, k["zeros"])      # edge tiles read them for padding (depthwise: and past a row's end)
        ops.append(dataclasses.replace(op, attrs={**op.attrs, "K": k}, weights=weights))
    return dataclasses.replace(plan, ops=ops), zeros
