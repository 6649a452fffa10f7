"""Transposed convolution (``transposedConv2dLayer``): lowering, batch-norm folding, the C kernel's
weight packing, and the CUDA launch.

The plan keeps the canonical layout ``w[ky][kx][c][f]`` (MATLAB's ``kh x kw x F x C`` with filters
and channels swapped back), bias ``b[f]``; the CUDA kernel reads it. Both kernels gather: output
pixel (oy, ox) is pixel (oy + pt, ox + pl) of the uncropped result, which the input reaches only
through the taps ky = (oy + pt) mod sh + j*sh (input row (oy + pt) div sh - j), and likewise for
columns, so each output value is one sum written once (no scatter, no zeroing pass, no atomics).

The C kernel re-packs the weights in blocks of ``ch`` output channels (zeros past the last filter):
``w[blk][ky][kx][c][ch]``, ``b[blk][ch]``; a block's sums are ``acc[ch]``, a loop with a constant
bound that compilers vectorize.

Templates: ``templates/c/ops/tconv.c.j2`` and ``templates/cuda/ops/tconv.cu.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Op, TConvGeometry, Tensor
from ..layers import TransposedConvolution2DLayer
from ..layers.transposed_conv import taps_reaching
from .base import CudaLaunch, OpKind, lowers, op_kind, thread_per_value
from .tiling import HOST_ISAS, OMP_MIN_MACS, ceil_div

BLOCKS = (4, 8, 16, 32)        # output channels per block the C kernel may use
BLOCK_OVERHEAD = 4             # cost of a block beyond its channels (loops, input reads), in channel slots
TILE_FLOATS = 96               # accumulators of a tile (pixels x channels): 6 AVX-512 or 12 AVX2 registers
MAX_PIXELS = 8


@lowers(TransposedConvolution2DLayer)
def lower_tconv(layer, inputs: list[Tensor], out: Tensor) -> Op:
    x = inputs[0]
    w = np.asarray(layer.Weights, np.float32)                                 # kh x kw x F x C
    packed = np.ascontiguousarray(w.transpose(0, 1, 3, 2))                  # [ky][kx][c][f]
    (kh, kw), (sh, sw) = layer.FilterSize, layer.Stride
    pt, pb, pl, pr = layer.CroppingSize
    eh, ew = layer.output_offset
    geom = TConvGeometry(ih=x.shape[0], iw=x.shape[1], ic=x.shape[2], oh=out.shape[0], ow=out.shape[1],
                         oc=out.shape[2], kh=kh, kw=kw, sh=sh, sw=sw, pt=pt, pb=pb, pl=pl, pr=pr, eh=eh, ew=ew)
    bias = np.asarray(layer.Bias, np.float32).reshape(-1)
    return Op("tconv", layer.Name, [layer.Name], [x], out, geom, {"w": packed, "b": bias})


@dataclass(frozen=True)
class TConvKernel:
    """Tiles of ``p`` pixels of a column phase times ``ch`` output channels (``nb`` blocks)."""
    p: int
    ch: int
    nb: int
    omp: bool                # large enough to share its rows between OpenMP threads
    kind: str = "tconv"
    zeros: int = 0
    partial_neon: bool = False


def block_size(oc: int) -> int:
    """The block with the least modelled cost: padded channels plus a per-block overhead."""
    return min(BLOCKS, key=lambda ch: (ceil_div(oc, ch) * (ch + BLOCK_OVERHEAD), -ch))


def macs(a: TConvGeometry) -> int:
    """Multiply-adds of the op: every (output pixel, tap) pair that reads an input, times ic x oc."""
    return taps_reaching(a.ih, a.oh, a.kh, a.sh, a.pt) * taps_reaching(a.iw, a.ow, a.kw, a.sw, a.pl) * a.ic * a.oc


@op_kind
class TConv(OpKind):
    name = "tconv"
    epilogue = True

    def index_bound(self, op) -> int:
        a = op.attrs      # the uncropped result (with its extension): every row/column index stays below it
        return (a.oh + a.pt + a.pb) * (a.ow + a.pl + a.pr) * max(a.ic, a.oc)

    def fold_scale_shift(self, op, scale, shift) -> bool:
        op.weights["w"] = (op.weights["w"].astype(np.float64) * scale).astype(np.float32)   # scale[f], last axis
        op.weights["b"] = (op.weights["b"].astype(np.float64) * scale + shift).astype(np.float32)
        return True

    def c_kernel(self, op, isas=HOST_ISAS):
        a = op.attrs
        ch = block_size(a.oc)
        nb = ceil_div(a.oc, ch)
        w = np.zeros((a.kh, a.kw, a.ic, nb * ch), np.float32)
        w[..., :a.oc] = op.weights["w"]
        packed = np.ascontiguousarray(w.reshape(a.kh, a.kw, a.ic, nb, ch).transpose(3, 0, 1, 2, 4))
        b = np.zeros(nb * ch, np.float32)
        b[:a.oc] = op.weights["b"]
        phase = ceil_div(a.ow, a.sw)                          # pixels of a row's longest column phase
        p = max(1, min(TILE_FLOATS // ch, MAX_PIXELS, phase))
        return TConvKernel(p, ch, nb, omp=macs(a) >= OMP_MIN_MACS), {"w": packed, "b": b}

    def cuda_launch(self, op) -> CudaLaunch:
        a = op.attrs
        return thread_per_value(a.oh * a.ow * a.oc)
