"""Register tiles of the Cortex-M float kernels (Cortex-M4F and M7: one scalar FPU with 32
single-precision registers and a fused multiply-add, VFMA.F32).

A tile is P output pixels of a row times CH output channels: P x CH scalar accumulators that stay
in registers, beside the CH weights of the current tap and the inputs. Every multiply-add is one
VFMA; what a tile costs beyond them is its loads (CH weights and P inputs per step) and, in the
tiles at the padding, the input pointers chosen per tap. Two ways to feed a row of taps:

- **window** (kernel width > 1, registers permitting): per kernel row and input channel, every
  input column the tile's P pixels read through the KW taps is loaded once (``cols``: column j,
  relative to the tile's first input column, feeds pixel p through tap kx when j = p*SW + kx*DW),
  and the KW taps are unrolled; a 3x3 tile of 4 pixels loads 6 inputs for 12 pixel-taps.
- **tap**: one tap at a time, P inputs and CH weights per step.

The choice (P, CH, window or not) is the least modelled instruction count for the layer's rows,
counting the pixels a short last tile computes and does not store. Used by ``conv.py`` (direct and
depthwise convolution); the templates are ``templates/c/kernels/cortexm_direct.c.j2`` and
``cortexm_depthwise.c.j2``, compiled where ``__ARM_ARCH_7EM__`` and a single-precision FPU with
FMA are present (the generated code stays one portable source; see ``simd.c.j2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tiling import Rows, ceil_div

FP_REGISTERS = 31        # of the 32 single-precision registers: one left to the compiler
EDGE_POINTER = 5         # instructions to choose one input pointer of an edge tile (bounds test, select)
STORE = 5                # instructions per stored output: activation (compare, select) and store


@dataclass(frozen=True)
class McuTile:
    p: int                   # pixels per tile
    ch: int                  # output channels per tile
    t0: int                  # interior tiles of a row: t0 <= t < t1
    t1: int
    cols: tuple = ()         # window: ((j, ((p, kx), ...)), ...) sorted by column j; () for taps one at a time
    unroll: int = 1          # reduction steps per loop iteration (the channel loop of a direct convolution)
    classes: tuple = ()      # window, direct convolution: the tiles of a row grouped by what they read (below)

    @property
    def window(self) -> bool:
        return bool(self.cols)


@dataclass(frozen=True)
class ColumnClass:
    """Tiles of a row (indices ``tiles``) that read the same input columns: only ``n`` pixels are
    stored, and the taps that fall into the left or right padding (or feed a pixel past the row's
    end) are left out at generation time, so such a tile runs the window code with a single input
    pointer (at column ``first`` relative to the tile's first column) instead of one per column."""
    tiles: tuple
    n: int
    first: int               # the first input column it reads, relative to the tile's
    cols: tuple              # as McuTile.cols, columns relative to ``first``, only the taps kept


def window_cols(p: int, kw: int, sw: int, dw: int) -> tuple:
    cols: dict[int, list] = {}
    for q in range(p):
        for kx in range(kw):
            cols.setdefault(q * sw + kx * dw, []).append((q, kx))
    return tuple((j, tuple(cols[j])) for j in sorted(cols))


def _cost(rows: Rows, p: int, ch: int, kh: int, kw: int, cg: int, window: bool, d: int) -> float:
    """Modelled instructions per output channel (all rows of a chunk of ``ch`` channels, over ch)."""
    tiles = ceil_div(rows.cols, p)
    t0, t1 = ceil_div(rows.qlo, p), max(ceil_div(rows.qlo, p), rows.qhi // p)
    inside = max(0, rows.rhi - rows.rlo) * max(0, t1 - t0)
    edge = rows.rows * tiles - inside
    fmas = p * ch * kh * kw * cg
    if window:              # edge tiles: a dispatch to their column class, which reads one pointer
        loads = kh * cg * (d + kw * ch)
        pointers = 4
    else:
        loads = kh * kw * cg * (p + ch)
        pointers = kh * kw * p
    loops = kh * cg * (1 if window else kw) * 1.5 / max(1, min(cg, 4))
    step = fmas + loads + loops + p * ch * STORE + 20
    return ((inside + edge) * step + edge * pointers * EDGE_POINTER) / ch


def direct_tile(rows: Rows, kh: int, kw: int, sw: int, dw: int, cg: int, vb: int, iw: int = 0,
                pl: int = 0) -> McuTile:
    """The tile of a direct convolution whose weights are packed in blocks of ``vb`` channels
    (CH divides vb, so a tile's weights are consecutive)."""
    best = None
    for ch in (8, 4, 2, 1):
        if vb % ch:
            continue
        for p in range(1, 9):
            for window in (True, False) if kw > 1 else (False,):
                d = len(window_cols(p, kw, sw, dw)) if window else 1
                if p * ch + ch + d > FP_REGISTERS:
                    continue
                key = (_cost(rows, p, ch, kh, kw, cg, window, d), -p)
                if best is None or key < best[0]:
                    best = (key, p, ch, window)
    _, p, ch, window = best
    t0 = ceil_div(rows.qlo, p)
    fmas = p * ch
    # taps one at a time: up to 4 channel steps per loop iteration (its overhead amortized); a window
    # step is long already, and unrolled it no longer fits the registers
    unroll = 1 if window else next(u for u in (4, 2, 1) if cg % u == 0 and u * fmas <= 100 or u == 1)
    cols = window_cols(p, kw, sw, dw) if window else ()
    return McuTile(p, ch, t0, max(t0, rows.qhi // p), cols, unroll, column_classes(rows, p, cols, sw, iw, pl))


def column_classes(rows: Rows, p: int, cols: tuple, sw: int, iw: int, pl: int) -> tuple:
    """The tiles of a row by the (pixel, tap) pairs that read inside the input (window tiles only)."""
    if not cols:
        return ()
    groups: dict = {}
    for t in range(ceil_div(rows.cols, p)):
        n = min(p, rows.cols - t * p)
        ix0 = t * p * sw - pl
        kept = tuple((j, tuple(u for u in users if u[0] < n)) for j, users in cols if 0 <= ix0 + j < iw)
        kept = tuple((j, users) for j, users in kept if users)
        first = kept[0][0] if kept else 0
        key = (n, first, tuple((j - first, users) for j, users in kept))
        groups.setdefault(key, []).append(t)
    return tuple(ColumnClass(tuple(ts), n, first, rel) for (n, first, rel), ts in groups.items())


def depthwise_tile(rows: Rows, kh: int, kw: int, sw: int, dw: int, channels: int) -> McuTile:
    """The tile of a depthwise convolution: P pixels x CH channels (CH divides the channels), each
    channel's KW weights of a kernel row and its window of input columns loaded once per row of taps."""
    best = None
    for ch in (4, 2, 1):
        if channels % ch:            # no chunk reads past the last channel
            continue
        for p in range(1, 9):
            d = len(window_cols(p, kw, sw, dw))
            if p * ch + kw + d > FP_REGISTERS:
                continue
            tiles = ceil_div(rows.cols, p)
            t0, t1 = ceil_div(rows.qlo, p), max(ceil_div(rows.qlo, p), rows.qhi // p)
            inside = max(0, rows.rhi - rows.rlo) * max(0, t1 - t0)
            edge = rows.rows * tiles - inside
            step = kh * (p * ch * kw + ch * (kw + d) + 2) + p * ch * STORE + 20
            key = (((inside + edge) * step + edge * kh * d * EDGE_POINTER) / ch, -p)
            if best is None or key < best[0]:
                best = (key, p, ch)
    _, p, ch = best
    t0 = ceil_div(rows.qlo, p)
    return McuTile(p, ch, t0, max(t0, rows.qhi // p), window_cols(p, kw, sw, dw))


Q_REGISTERS = 8          # Helium: eight 128-bit q registers (4 floats each)


def mve_tile(rows: Rows, kh: int, kw: int, cg: int, fg: int, vb: int) -> McuTile:
    """The tile of a direct convolution on Helium (Cortex-M55): P pixels x CH = 4 NV channels, P x NV
    vector accumulators and NV weight vectors in the 8 q registers; an input is a scalar in a
    general register (VFMA.F32 Qd, Qn, Rm), so a step costs P x NV FMAs, NV vector and P scalar loads.
    Taps one at a time (edge tiles choose P pointers per tap; the short last tile of a row has a
    function of its own, with only its pixels)."""
    best = None
    for nv in (1, 2, 3, 4):
        ch = 4 * nv
        if vb % ch:
            continue
        for p in range(1, 8):
            if p * nv + nv > Q_REGISTERS:
                continue
            tiles = ceil_div(rows.cols, p)
            t0, t1 = ceil_div(rows.qlo, p), max(ceil_div(rows.qlo, p), rows.qhi // p)
            inside = max(0, rows.rhi - rows.rlo) * max(0, t1 - t0)
            edge = rows.rows * tiles - inside
            unroll = _unroll(cg, p * nv, 8)
            step = p * nv + nv + p + 1.5 / unroll
            per_tile = kh * kw * (cg * step + 3) + p * nv * 3 + 20
            # the short last tile of a row computes only its pixels
            key = (ceil_div(fg, ch) * ((inside + edge) * per_tile * rows.cols / (tiles * p)
                                       + edge * kh * kw * p * EDGE_POINTER), -p)
            if best is None or key < best[0]:
                best = (key, p, ch, unroll)
    _, p, ch, unroll = best
    t0 = ceil_div(rows.qlo, p)
    return McuTile(p, ch, t0, max(t0, rows.qhi // p), (), unroll)


def _unroll(cg: int, fmas: int, most: int) -> int:
    """Channel steps per loop iteration: up to 4 that divide the channels, at most ``most`` FMAs."""
    return next(u for u in (4, 2, 1) if cg % u == 0 and u * fmas <= most or u == 1)


# =============================================================================== int8

INT8_MOST_K = 768        # the staged inputs of a tile (up to 6 bytes per reduction element) stay under 4.6 KB of stack


@dataclass(frozen=True)
class Int8Kernel:
    """int8 direct convolution, two output pixels at a time (consecutive in the output, a pair may
    span two rows): the two pixels' K = KH x KW x CG inputs are gathered once (the padding as the
    input zero point; a 1 x 1 convolution without padding reads them where they are when K is whole
    vectors) and every pair of filters runs over them; Helium (Cortex-M55): VMLADAVA, 16 products
    per instruction, and the 2 x 2 outputs requantized in one vector; the DSP extension (Cortex-M4,
    M7): the inputs widened to pairs of int16 once (SXTB16), two products per SMLAD; a plain C loop
    elsewhere. Weights w[f / 2][k / 16][f % 2][16] (filters padded to ``fp``, even; K to ``k16``
    with zeros, of which the DSP loop reads only up to ``k4``); the input zero point is folded into
    the bias."""
    k: int                   # KH x KW x CG
    k4: int                  # k rounded up to a multiple of 4
    k16: int                 # k rounded up to a multiple of 16
    fp: int                  # filters, rounded up to a multiple of 2
    right_only: bool         # every requantization shift <= 0 (multipliers below 1): no left shift
    in_place: bool = False   # the inputs are read where they are (1 x 1, no padding, K = k16)
    some_exact: bool = False  # right_only and some shift is 0 (those lanes are not rounded)
    kind: str = "int8_dsp"
    zeros: int = 0           # (what the float kernels' zeros and NEON tail would need: nothing)
    partial_neon: bool = False


def int8_direct(op):
    """The int8 kernel of a one-group convolution whose reduction stages in little memory, or None."""
    a, q = op.attrs, op.quant
    k = a.kh * a.kw * a.cg
    k4, k16 = ceil_div(k, 4) * 4, ceil_div(k, 16) * 16
    if a.groups != 1 or k16 > INT8_MOST_K:
        return None
    fp = ceil_div(a.fg, 2) * 2
    w = np.zeros((k16, fp), np.int64)
    w[:k, :a.fg] = op.weights["w"][0].reshape(k, a.fg)
    zp = int(q.inputs[0].zero_point)
    bias = op.weights["b"].astype(np.int64) - zp * w[:k, :a.fg].sum(axis=0)
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        return None
    packed = w.reshape(k16 // 16, 16, fp // 2, 2).transpose(2, 0, 3, 1)     # [f/2][k/16][f%2][16]

    def padded(v, fill):
        return np.concatenate([v, np.full(fp - a.fg, fill, v.dtype)])
    right_only = bool((op.weights["s"] <= 0).all())
    in_place = a.kh == a.kw == 1 and not (a.pt or a.pb or a.pl or a.pr) and k16 == k
    kernel = Int8Kernel(k, k4, k16, fp, right_only, in_place, right_only and bool((op.weights["s"] == 0).any()))
    m, sh = padded(op.weights["m"], 0), padded(op.weights["s"], 0)
    weights = {"w": np.ascontiguousarray(packed, np.int8).ravel(), "b": padded(bias.astype(np.int32), 0), "m": m, "s": sh}
    if kernel.right_only:
        weights.update(vector_requantization(m, sh))
    return kernel, weights


def vector_requantization(m, shift) -> dict:
    """Helium's requantization of a 2 x 2 tile (lanes: pixel 0 filters f, f + 1, pixel 1 filters
    f, f + 1), per filter pair: the multiplier (VQRDMULH) and the shift (a VRSHL count, <= 0)."""
    def lanes(v):
        return np.tile(np.asarray(v, np.int64).reshape(-1, 2), (1, 2)).astype(np.int32).ravel()
    return {"vm": lanes(m), "vs": lanes(shift)}


@dataclass(frozen=True)
class Int8DepthwiseKernel:
    """int8 depthwise convolution, one output pixel at a time in chunks of 4 channels (a word of the
    input and of the weights: SXTB16, then SMLABB / SMLATT, one product each, into 4 accumulators);
    the taps' input pointers are chosen once per pixel (the padding reads a word of zero points).
    Weights w[ky][kx][c] (int8), the input zero point folded into the bias."""
    right_only: bool
    some_exact: bool = False  # right_only and some shift is 0 (those lanes are not rounded)
    vectors: int = 1         # Helium: vectors of 4 channels per pass (each tap's input pointer read once)
    kind: str = "int8_dw_dsp"
    zeros: int = 0
    partial_neon: bool = False


def int8_depthwise(op):
    """The int8 kernel of a depthwise convolution with channels in words of 4, or None."""
    a, q = op.attrs, op.quant
    c = a.groups
    if not a.depthwise or c % 4:
        return None
    w = op.weights["w"].reshape(c, a.kh, a.kw).transpose(1, 2, 0).astype(np.int64)    # [ky][kx][c]
    bias = op.weights["b"].astype(np.int64) - int(q.inputs[0].zero_point) * w.sum(axis=(0, 1))
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        return None
    right_only = bool((op.weights["s"] <= 0).all())
    vectors = next(n for n in (4, 2, 1) if (c // 4) % n == 0)
    kernel = Int8DepthwiseKernel(right_only, right_only and bool((op.weights["s"] == 0).any()), vectors)
    return kernel, {"w": np.ascontiguousarray(w, np.int8).ravel(), "b": bias.astype(np.int32),
                    "m": op.weights["m"], "s": op.weights["s"]}


@dataclass(frozen=True)
class Int8AddKernel:
    """int8 addition (TensorFlow Lite's) on Helium: 4 channels in the 32-bit lanes of a vector, each
    input's (q - zero point) * 2^20 rescaled by VQRDMULH and a rounding shift right, summed and
    requantized; every shift is a right shift, known at generation (``rights``: per input, then the
    output's). Elsewhere the same in C, the doubling high multiply as a 64-bit rounding high multiply
    of twice the value (SMMULR; every value stays below 2^30: at most 7 inputs, each rescaled by at
    most 1/2), without the portable helper's division."""
    rights: tuple
    kind: str = "int8_add_mve"
    zeros: int = 0
    partial_neon: bool = False


def int8_add(op):
    """The Helium kernel of an int8 addition whose channels are whole vectors and whose rescalings
    all shift right, or None."""
    shift = op.weights["s"]
    if (shift > 0).any() or op.attrs.c % 4 or len(op.inputs) > 7:
        return None
    return Int8AddKernel(tuple(int(-v) for v in shift)), dict(op.weights)


def mve_depthwise_tile(rows: Rows, kh: int, kw: int, sw: int, dw: int, channels: int) -> McuTile | None:
    """Helium tile of a depthwise convolution with channels in vectors of 4: P pixels x 4 channels,
    P vector accumulators beside the kernel row's KW weight vectors and one input column at a time
    (the window); None when the channels are not a whole number of vectors."""
    if channels % 4:
        return None
    best = None
    for p in range(1, Q_REGISTERS - kw):
        d = len(window_cols(p, kw, sw, dw))
        tiles = ceil_div(rows.cols, p)
        t0, t1 = ceil_div(rows.qlo, p), max(ceil_div(rows.qlo, p), rows.qhi // p)
        inside = max(0, rows.rhi - rows.rlo) * max(0, t1 - t0)
        edge = rows.rows * tiles - inside
        step = kh * (p * kw + kw + d + 2) + p * 3 + 16
        key = ((inside + edge) * step + edge * kh * d * EDGE_POINTER, -p)
        if best is None or key < best[0]:
            best = (key, p)
    p = best[1]
    t0 = ceil_div(rows.qlo, p)
    return McuTile(p, 4, t0, max(t0, rows.qhi // p), window_cols(p, kw, sw, dw))
