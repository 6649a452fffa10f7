"""Fully connected (``fullyConnectedLayer``): lowering, batch-norm folding, the C kernel choice
with its weight packing, and the CUDA launch.

The plan's layout is ``w[in][out]`` with the rows permuted from MATLAB's column-major flatten of
``h x w x c`` to our HWC memory order. The C kernels re-pack it:

- **blocked** (``fc``): outputs in blocks of ``vb``, weights ``w[blk][in][vb]``; the reduction
  over the input is split ``p`` ways (the tile's pixel count) so that enough independent
  accumulators hide the FMA latency.
- **dot products** (``fc_dot``): with few outputs (blocks more than a fifth padding) one dot
  product per output over ``w[out][in]``.

Templates: ``templates/c/ops/fc.c.j2`` (including ``templates/c/kernels/fc_*.c.j2``) and
``templates/cuda/ops/fc.cu.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import FcShape, Op, Tensor
from ..layers import FullyConnectedLayer
from .base import CUDA_MAX_THREADS, TENSOR_CORE_MIN, CudaLaunch, OpKind, lowers, mma_tiles, op_kind, pow2
from ..quant.scheme import OpQuant, clamp_range, multipliers, quantize_bias, quantize_weights, requantize
from . import int8simd
from .tiling import HOST_ISAS, ISAS, OMP_MIN_MACS, Tile, ceil_div, device_tiers

FC_ACCUMULATORS = {"avx512": 8, "avx2": 8, "neon": 16, "portable": 4}   # reduction split * vectors per block


@lowers(FullyConnectedLayer)
def lower_fc(layer, inputs: list[Tensor], out: Tensor) -> Op:
    x = inputs[0]
    h, w, c = x.shape
    # MATLAB flattens h x w x c column-major: index h + H*(w + W*c). Our memory is HWC: (h*W + w)*C + c.
    hh, ww, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    matlab_index = (hh + h * (ww + w * cc)).ravel()          # in HWC memory order
    weights = layer.Weights[:, matlab_index]                  # OutputSize x InputSize, columns in HWC order
    packed = np.ascontiguousarray(weights.T, dtype=np.float32)   # [in][out]
    return Op("fc", layer.Name, [layer.Name], [x], out, FcShape(h * w * c, layer.OutputSize),
              {"w": packed, "b": np.asarray(layer.Bias.ravel(), np.float32)})


@dataclass(frozen=True)
class BlockedFcKernel:
    vb: int
    nb: int
    tiles: dict              # instruction set -> Tile (p: the reduction split)
    omp: bool
    kind: str = "fc"
    zeros: int = 0
    partial_neon: bool = False


@dataclass(frozen=True)
class DotFcKernel:
    kind: str = "fc_dot"
    zeros: int = 0
    omp: bool = False
    partial_neon: bool = False


def _c_kernel(op: Op, isas: tuple = HOST_ISAS):
    n_in, n_out = op.attrs.n_in, op.attrs.n_out
    device = device_tiers(isas)
    if device:
        # a microcontroller (the portable tile): one block of all the outputs in chunks of 16, 8 or 4,
        # so no padding in its flash; dot products where none of them divides the outputs
        ch = next((c for c in (16, 8, 4) if n_out % c == 0), 0)
        vb = n_out if ch else 0
    else:
        vb = 16 if n_out <= 16 else 32 if n_out <= 48 else 64
    nb = ceil_div(n_out, vb) if vb else 0
    if not vb or (nb * vb - n_out) * 4 > n_out:
        # more than a fifth of the blocked weights would be padding (e.g. a 10-class classifier: 16 columns
        # for 10), which costs flash on a microcontroller: dot products over MATLAB's [out][in] instead
        return DotFcKernel(), {"w": np.ascontiguousarray(op.weights["w"].T), "b": op.weights["b"]}
    tiles = {}
    if device:
        tiles["portable"] = Tile("portable", FC_ACCUMULATORS["portable"], ch, 1)
    for name, isa in ISAS.items() if not device else ():
        ch = vb if name == "avx512" else 16
        nv = max(1, ch // isa.vl)
        r = FC_ACCUMULATORS[name] if name == "portable" else max(1, FC_ACCUMULATORS[name] // nv)
        tiles[name] = Tile(name, r, ch, nv)
    padded = np.zeros((n_in, nb * vb), np.float32)
    padded[:, :n_out] = op.weights["w"]
    packed = np.ascontiguousarray(padded.reshape(n_in, nb, vb).transpose(1, 0, 2))
    b = np.zeros(nb * vb, np.float32)
    b[:n_out] = op.weights["b"]
    return BlockedFcKernel(vb, nb, tiles, omp=op.attrs.macs >= 8 * OMP_MIN_MACS), {"w": packed, "b": b}


@dataclass(frozen=True)
class FcTiles:
    """CUDA: ``bo`` outputs per block, ``ks`` threads splitting the reduction over each."""
    bo: int
    ks: int
    threads: int
    ot: int                  # output tiles


def fc_tiles(a: FcShape) -> FcTiles:
    bo = min(32, pow2(a.n_out))
    ks = max(1, min(CUDA_MAX_THREADS // bo, pow2(a.n_in)))
    return FcTiles(bo=bo, ks=ks, threads=bo * ks, ot=ceil_div(a.n_out, bo))


@op_kind
class Fc(OpKind):
    name = "fc"
    epilogue = True
    uses_simd = True

    def fold_scale_shift(self, op, scale, shift) -> bool:
        op.weights["w"] = (op.weights["w"].astype(np.float64) * scale[None, :]).astype(np.float32)
        op.weights["b"] = (op.weights["b"].astype(np.float64) * scale + shift).astype(np.float32)
        return True

    def int8(self, op, qin, qout, ctx) -> None:
        """Per output symmetric int8 weights [in][out], int32 bias, Q31 multipliers."""
        wq, sw = quantize_weights(op.weights["w"], axis=1, given=ctx.weight_scale(op))
        s_in = np.float64(qin[0].scale)
        m0, shift = multipliers(s_in * sw / np.float64(qout.scale))
        op.weights = {"w": np.ascontiguousarray(wq.T), "b": quantize_bias(op.weights["b"], s_in * sw),   # [out][in]
                      "m": m0, "s": shift}
        op.quant = OpQuant(qin, qout, *clamp_range(op.act.bounds if op.act else None, qout))

    def int8_reference(self, op, xs):
        x = xs[0].astype(np.int64).reshape(-1) - op.quant.inputs[0].zero_point
        acc = op.weights["w"].astype(np.int64) @ x + op.weights["b"]
        return requantize(acc, op.weights["m"], op.weights["s"], op.quant).reshape(1, 1, -1)

    def read_reordered(self, op, source, perm) -> bool:
        w = op.weights["w"]                       # [in][out]: row k multiplies input value k = source[perm[k]]
        rows = np.empty_like(w)
        rows[perm] = w
        op.weights["w"] = rows
        op.inputs = [source]
        return True

    def c_kernel(self, op, isas=HOST_ISAS):
        return _c_kernel(op, isas)

    def c_kernel_int8_simd(self, op, isas):
        return int8simd.fc_kernel(op, isas)

    def cuda_launch(self, op) -> CudaLaunch:
        t = fc_tiles(op.attrs)
        return CudaLaunch((t.ot, 1), t.threads, t)

    def cuda_tensor_core_launch(self, op) -> CudaLaunch | None:
        """The batch as a GEMM on the tensor cores (templates/cuda/ops/fc_tc.cu.j2): m = 16 images
        per block (grid z), n = the outputs, k = the inputs; each weight is read once per 16 images.
        Blocks of 4 warps: those not needed along n split k (few outputs, long inputs: batch 1)."""
        a = op.attrs
        t = mma_tiles(16, a.n_out, a.n_in, split_k=True)
        if min(t.n, t.k) < TENSOR_CORE_MIN:
            return None
        return CudaLaunch((t.nt, 1), t.threads, t, template="fc_tc", batch_rows=t.bm)
