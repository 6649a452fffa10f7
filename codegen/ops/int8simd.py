"""int8 kernels of the host and AArch64 (x86 AVX-512 VNNI and AVX2, AArch64 NEON with or without
the dot product extension, and the portable C they fall back to): direct convolution of one group
and fully connected layers, which are the same computation here (a fully connected layer is a
1x1 convolution of one pixel), and depthwise convolution (:class:`Int8DepthwiseSimdKernel`).
Grouped convolutions of several channels per group and a convolution fused with its pooling keep
the portable templates (templates/c/ops/int8/).

A layer's K = KH x KW x CG inputs of one output pixel (k = (ky * KW + kx) * CG + c) are staged once
per tile, in the type the instruction set multiplies (a tap in the padding gives the input zero
point, K is padded to K4, a multiple of 4, with zeros), then a register tile of P pixels x 16 NV
filters runs over them, four inputs at a time:

- AVX-512 VNNI: VPDPBUSD multiplies unsigned by signed bytes, 4 products summed into each of 16
  int32 lanes. The inputs are staged as x + 128 (x ^ 0x80, unsigned), and the bias ``bu`` carries
  the correction: b - (zp + 128) * sum(w).
- AVX2: the inputs staged as int16, the weights widened to int16 (VPMOVSXBW) and multiplied in pairs
  (VPMADDWD): a product is at most 128 * 128 and a pair sum 2^15, so nothing saturates (VPMADDUBSW
  would: 2 * 255 * 127 > 2^15 - 1). Each 32-bit lane holds half of one filter's sum; the two halves
  are added once per tile (VPHADDD).
- NEON: SDOT (``vdotq_s32``, 4 products per lane) where ``__ARM_FEATURE_DOTPROD``; else SMULL
  (``vmull_s8``) and SADALP (``vpadalq_s16``), pairs of lanes added once per tile.
- portable C: the same staged int8 inputs and weights, a loop over 16 filters that compilers vectorize.

All of them read one weight layout, w[F16][K4 / 4][16][4] (16 filters by 4 inputs: a 64-byte AVX-512
vector, two AVX2 or four NEON vectors), packed here at generation time. The signed kernels' bias
``b`` is b - zp * sum(w). Accumulators are int32 and wrap as the portable C's do: their final value is
the reference's wherever that fits int32.

The requantization (TFLite's, :mod:`codegen.quant.fixedpoint`) is vectorized bit-exactly: the
rounding doubling high multiply of x by m0 (>= 0) is floor((x * m0 + 2^30) / 2^31) (64-bit products
of even and odd lanes on x86; SQRDMULH on NEON), the rounding divide by 2^right a shift plus a
compare of the remainder with its threshold, as in the scalar code (AVX2, NEON); AVX-512 does both
roundings in one 64-bit arithmetic shift (:func:`requant64`). The saturating shift left (multipliers
>= 1) is emitted only where a layer has one. The tiles store their sums and requantize them from
memory after the reduction loop: with the epilogue unrolled into it, GCC spilled accumulators inside
the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tiling import ceil_div

INT8_SIMD = ("avx512", "avx2", "neon")

# What the int8 code tests to take each instruction set (codegen_simd_int8.h); the
# portable kernels are the #else. AVX-512 needs VNNI (VPDPBUSD) and BW (byte masks).
INT8_GUARDS = {"avx512": "defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)",
               "avx2": "defined(__AVX2__)",
               "neon": "defined(__ARM_NEON) && defined(__aarch64__)"}

ACC = {"avx512": 24, "avx2": 12, "neon": 20, "portable": 4}    # int32 vectors (portable: 16-lane rows) a tile may hold
ACC_PER_BLOCK = {"avx512": 1, "avx2": 4, "neon": 4, "portable": 1}   # per pixel and block of 16 filters
MOST_PIXELS = 8
SHORT_K4 = 128               # a reduction this short: AVX-512 tiles of more pixels and fewer blocks (choose_tile)
MOST_STAGED = 64 * 1024      # bytes of staged inputs on the stack (P pixels x K4, int16 for AVX2)


@dataclass(frozen=True)
class Int8Tile:
    p: int                   # pixels per tile
    nv: int                  # blocks of 16 filters per tile
    tail: int                # blocks of the last, narrower tile of a pixel group (0: none)


@dataclass(frozen=True)
class Geometry:
    """The convolution a kernel computes (a fully connected layer: 1x1 x n_in -> 1x1 x n_out)."""
    ih: int
    iw: int
    ic: int
    oh: int
    ow: int
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
    f: int

    @property
    def padded(self) -> bool:
        return bool(self.pt or self.pb or self.pl or self.pr)


@dataclass(frozen=True)
class Int8SimdKernel:
    g: Geometry
    k: int                   # KH x KW x CG
    k4: int                  # K rounded up to a multiple of 4
    fp: int                  # filters rounded up to a multiple of 16
    left: bool               # some requantization shifts left (a multiplier >= 1)
    tiles: dict              # instruction set -> Int8Tile
    fc: bool = False
    zp_in_rk: bool = False   # AVX-512: the output zero point is in rk (requant64)
    kind: str = "int8_simd"
    zeros: int = 0
    partial_neon: bool = False

    @property
    def nb(self) -> int:
        return self.fp // 16

    @property
    def n(self) -> int:
        return self.g.oh * self.g.ow


def choose_tile(isa: str, pixels: int, nb: int, k4: int = 1 << 30) -> Int8Tile:
    """P pixels x NV blocks within the instruction set's accumulators: up to 4 blocks while 4 pixels
    still fit (a staged input then feeds 64 filters, a weight vector P pixels); one pixel (fully
    connected): as many blocks as fit, up to 8, for independent sums. AVX-512 with a short reduction
    (K4 <= 128) and 4 blocks or more: 12 pixels x 2 blocks (measured on the 1x1 bench shape e,
    K = 64: 158 us against 180 us for 6 x 4; 6 x 4 stays ahead from K = 147 up)."""
    per = ACC_PER_BLOCK[isa]
    most = ACC[isa] // per
    if pixels == 1:
        nv = min(nb, most, 8)
        return Int8Tile(1, nv, nb % nv)
    if isa == "avx512" and k4 <= SHORT_K4 and nb >= 4 and pixels >= 12:
        return Int8Tile(12, 2, nb % 2)
    nv = min(nb, 4, max(1, most // 4))
    p = max(1, min(MOST_PIXELS, pixels, most // nv))
    return Int8Tile(p, nv, nb % nv)


def int8_simd_kernel(g: Geometry, w: np.ndarray, b: np.ndarray, m: np.ndarray, s: np.ndarray, zp: int,
                     out_zp: int, isas: tuple, fc: bool = False):
    """(kernel, packed weights) for weights ``w`` (K x F, k = (ky * KW + kx) * CG + c), or None when
    the layer does not suit it (a negative multiplier, a bias out of int32, too many inputs to stage)."""
    k, f = w.shape
    k4, fp = ceil_div(k, 4) * 4, ceil_div(f, 16) * 16
    emitted = tuple(i for i in INT8_SIMD if i in isas)
    if not emitted or (np.asarray(m) < 0).any():
        return None
    tiles = {isa: choose_tile(isa, g.oh * g.ow, fp // 16, k4) for isa in (*emitted, "portable")}
    if max(t.p for t in tiles.values()) * k4 * 2 > MOST_STAGED:
        return None
    wp = np.zeros((k4, fp), np.int64)
    wp[:k, :f] = w
    sums = wp.sum(axis=0)
    bias = _padded(b, fp) - zp * sums
    biasu = bias - 128 * sums
    if max(np.abs(bias).max(), np.abs(biasu).max() if "avx512" in emitted else 0) >= 2 ** 31:
        return None
    s = np.asarray(s, np.int64)
    packed = wp.reshape(k4 // 4, 4, fp // 16, 16).transpose(2, 0, 3, 1)        # [F16][K4 / 4][16][4]
    weights = {"w": np.ascontiguousarray(packed, np.int8), "b": bias.astype(np.int32)}
    if "avx512" in emitted:
        weights["bu"] = biasu.astype(np.int32)
    left = bool((s > 0).any())
    arrays, folded = requant_arrays(_padded(m, fp), _padded(s, fp), emitted, out_zp)
    weights.update(arrays)
    return Int8SimdKernel(g, k, k4, fp, left, tiles, fc, folded), weights


def _padded(v, n: int) -> np.ndarray:
    """``v`` as int64 followed by zeros up to ``n`` values (whole blocks of 16 channels)."""
    out = np.zeros(n, np.int64)
    out[:len(v)] = v
    return out


def requant_arrays(m: np.ndarray, s: np.ndarray, emitted: tuple, out_zp: int) -> tuple[dict, bool]:
    """The requantization's per-channel arrays (padded to whole blocks of 16): m, sl (only where some
    shift is left), sr, and AVX-512's rk, rc, rs (:func:`requant64`); and whether rk carries the
    output zero point."""
    s = np.asarray(s, np.int64)
    out = {"m": np.asarray(m).astype(np.int32)}
    if (s > 0).any():
        out["sl"] = np.maximum(s, 0).astype(np.int32)
    out["sr"] = np.maximum(-s, 0).astype(np.int32)
    folded = False
    if "avx512" in emitted:
        right = np.maximum(-s, 0)
        folded = bool(right.max(initial=0) <= ZP_FOLD_MOST_RIGHT)
        out.update(requant64(right, out_zp if folded else 0))
    return out, folded


@dataclass(frozen=True)
class Int8DepthwiseSimdKernel:
    """int8 depthwise convolution, one output pixel at a time: its KH x KW taps' input pointers
    chosen once (a tap in the padding reads a row of input zero points), then per vector of 16 (AVX-512),
    8 (AVX2, NEON) channels every tap's inputs widened to int32 lanes and multiplied by the tap's
    weights (VPDPWSSD on AVX-512, VPMADDWD on AVX2, SMLAL on NEON; a product is at most 2^14). Weights
    w[ky][kx][c][2] int16, the weight then 0: a 32-bit lane whose upper half is zero, so that the
    pair product of VPMADDWD with a sign-extended input is the one product (padded to 16 channels);
    bias b[c] - zp * sum of channel c's weights."""
    g: Geometry
    cp: int                  # channels rounded up to a multiple of 16
    left: bool
    nvd: int = 1             # AVX-512: vectors of 16 channels summed side by side (divides cp / 16, at most 8)
    zp_in_rk: bool = False   # AVX-512: the output zero point is in rk (requant64)
    kind: str = "int8_dw_simd"
    zeros: int = 0
    partial_neon: bool = False


def depthwise_kernel(op, isas: tuple):
    """The int8 SIMD kernel of a depthwise convolution (one input channel per group, one filter per
    group), or None."""
    a, q = op.attrs, op.quant
    emitted = tuple(i for i in INT8_SIMD if i in isas)
    if not emitted or not a.depthwise or a.fg != 1 or (np.asarray(op.weights["m"]) < 0).any():
        return None
    c = a.groups
    cp = ceil_div(c, 16) * 16
    w = np.zeros((a.kh, a.kw, cp), np.int64)
    w[:, :, :c] = op.weights["w"].reshape(c, a.kh, a.kw).transpose(1, 2, 0)
    zp = int(q.inputs[0].zero_point)
    bias = _padded(op.weights["b"].astype(np.int64) - zp * w[:, :, :c].sum(axis=(0, 1)), cp)
    if np.abs(bias).max(initial=0) >= 2 ** 31:
        return None
    g = Geometry(a.ih, a.iw, a.ic, a.oh, a.ow, a.kh, a.kw, a.sh, a.sw, a.dh, a.dw, a.pt, a.pb, a.pl, a.pr, c)
    s = np.asarray(op.weights["s"], np.int64)
    lanes = np.stack([w, np.zeros_like(w)], axis=-1)          # [ky][kx][c][2]: the weight, then 0
    arrays, folded = requant_arrays(_padded(op.weights["m"], cp), _padded(s, cp), emitted, int(q.output.zero_point))
    weights = {"w": lanes.astype(np.int16), "b": bias.astype(np.int32), **arrays}
    nvd = max(d for d in range(1, 9) if (cp // 16) % d == 0)
    return Int8DepthwiseSimdKernel(g, cp, bool((s > 0).any()), nvd, folded), weights


ZP_FOLD_MOST_RIGHT = 20    # rk holds the output zero point where every right shift is at most this


def requant64(right: np.ndarray, zp: int = 0) -> dict:
    """AVX-512's requantization in 64-bit lanes, the two roundings in one shift: for x * m0 = p
    (m0 >= 0) and a right shift r, TFLite's result is floor((p + rk - [p < -2^30] rc) / 2^rs) with
    rk = 2^30 + 2^(30 + r), rc = 2^31, rs = 31 + r (r >= 1), and rk = 2^30, rc = 0, rs = 31 (r = 0):
    floor(floor(a / 2^31) + c) / 2^r) = floor((a + c 2^31) / 2^(31 + r)) for an integer c, and the
    rounding divide is floor((h + 2^(r - 1) - [h < 0]) / 2^r) (half away from zero), h < 0 exactly
    when a = p + 2^30 < 0. |p| < 2^62, so nothing overflows. The output zero point ``zp`` may be added
    too (zp 2^rs in rk: the shift is exact for a multiple of 2^rs); with r <= 20 the sum stays below
    2^62 + 2^58 + 2^51. Per block of 16 filters, the 8 even filters (the low halves of the 64-bit
    lanes) first, then the 8 odd ones."""
    r = right.astype(np.int64)
    rk = (1 << 30) + np.where(r >= 1, np.left_shift(1, 30 + r, dtype=np.int64), 0)
    if zp:
        assert r.max(initial=0) <= ZP_FOLD_MOST_RIGHT
        rk = rk + zp * np.left_shift(1, 31 + r, dtype=np.int64)
    rc = np.where(r >= 1, 1 << 31, 0).astype(np.int64)
    rs = 31 + r
    order = np.concatenate([np.arange(0, 16, 2), np.arange(1, 16, 2)])

    def lanes(v):
        return np.ascontiguousarray(v.reshape(-1, 16)[:, order], np.int64).ravel()
    return {"rk": lanes(rk), "rc": lanes(rc), "rs": lanes(rs)}


def conv_kernel(op, isas: tuple):
    """The int8 SIMD kernel of a convolution of one group, or None."""
    a = op.attrs
    if a.groups != 1:
        return None
    g = Geometry(a.ih, a.iw, a.ic, a.oh, a.ow, a.kh, a.kw, a.sh, a.sw, a.dh, a.dw, a.pt, a.pb, a.pl, a.pr, a.fg)
    w = op.weights["w"][0].reshape(-1, a.fg).astype(np.int64)
    return int8_simd_kernel(g, w, op.weights["b"], op.weights["m"], op.weights["s"],
                            int(op.quant.inputs[0].zero_point), int(op.quant.output.zero_point), isas)


def fc_kernel(op, isas: tuple):
    """The int8 SIMD kernel of a fully connected layer (one pixel of n_in channels), or None."""
    a = op.attrs
    g = Geometry(1, 1, a.n_in, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, a.n_out)
    w = op.weights["w"].T.astype(np.int64)                  # [out][in] -> [in][out]
    return int8_simd_kernel(g, w, op.weights["b"], op.weights["m"], op.weights["s"],
                            int(op.quant.inputs[0].zero_point), int(op.quant.output.zero_point), isas, fc=True)


INT8_SIMD_KERNELS = (Int8SimdKernel, Int8DepthwiseSimdKernel)    # the kernels that read codegen_simd_int8.h
