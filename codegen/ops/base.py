"""The registries that make each op kind's module its one home.

- ``@lowers(LayerClass, ...)`` registers the function that turns a layer into a planned op
  (:data:`LOWERINGS`). It is called as ``fn(layer, inputs, out)`` with the layer's input
  tensors (the network input for an input layer) and its output tensor, and returns an
  :class:`~codegen.ir.Op`, or one of ``inputs`` when the layer computes nothing (an output
  layer, an input layer without normalization).
- ``@op_kind`` registers an :class:`OpKind` subclass under its ``name`` (:data:`KINDS`): what
  the planner and the emitters need to know about that kind of op. Templates are found by the
  same name: ``templates/c/ops/<name>.c.j2`` and ``templates/cuda/ops/<name>.cu.j2``.

Nothing outside ``codegen/ops/`` (and the layers themselves) looks at a layer's class or an
op's kind: the planner asks :data:`KINDS`, the emitters ask :data:`KINDS` and render the
template of the kind (``tests/test_architecture.py`` checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UnsupportedError
from ..ir import Op, Tensor
from .tiling import HOST_ISAS

CUDA_MAX_THREADS = 256          # threads per block of every CUDA kernel (__launch_bounds__)

LOWERINGS: dict[type, Callable] = {}
KINDS: dict[str, "OpKind"] = {}


def lowers(*layer_classes: type):
    """Register the decorated function as the lowering of ``layer_classes``."""
    def register(fn):
        for cls in layer_classes:
            if cls in LOWERINGS:
                raise RuntimeError(f"{cls.__name__} already has a lowering ({LOWERINGS[cls].__qualname__})")
            LOWERINGS[cls] = fn
        return fn
    return register


def op_kind(cls):
    """Register an :class:`OpKind` subclass (one instance) under its name."""
    if cls.name in KINDS:
        raise RuntimeError(f"op kind {cls.name!r} is registered twice")
    KINDS[cls.name] = cls()
    return cls


def lower_layer(layer, inputs: list[Tensor], out: Tensor) -> Op | Tensor:
    """The planned op of ``layer`` (or the tensor it passes on), by the most specific registered class."""
    for cls in type(layer).__mro__:
        fn = LOWERINGS.get(cls)
        if fn is not None:
            return fn(layer, inputs, out)
    raise UnsupportedError(f"{layer.label}: code generation does not support {layer.CLASS}")


@dataclass(frozen=True)
class CudaLaunch:
    """How a CUDA kernel is launched: ``grid`` blocks in x and y of ``block`` threads, and the tile
    constants its template reads. Grid z is the batch: one image per z, or, with ``batch_rows``,
    that many images per z (the kernel then takes the batch size ``n``: the images are rows of its
    matrix). ``template``: the kernel's template (``templates/cuda/ops/<template>.cu.j2``) when it
    is not the kind's own."""
    grid: tuple[int, int]
    block: int
    tiles: object = None
    template: str = ""
    batch_rows: int = 0


@dataclass(frozen=True)
class MmaTiles:
    """Tiles of a GEMM on the tensor cores (WMMA m16n16k8 TF32 or m16n16k16 half/bfloat16 inputs,
    float accumulators):
    C[m][n] = sum_k A[m][k] * B[k][n]. A block of ``wm`` x ``wn`` x ``wk`` warps computes a ``bm``
    x ``bn`` tile of C, each warp ``fm`` x ``fn`` fragments of 16 x 16; the reduction walks k in
    steps of ``bk`` (16, 32 or 64: whole k-steps of TF32's 8 and of half's 16) through shared
    memory, the ``wk`` warps of a fragment taking every wk-th k-step of it (split K: their partial
    sums are added in a fixed order at the end)."""
    m: int
    n: int
    k: int
    bm: int
    bn: int
    bk: int
    wm: int
    wn: int
    fm: int
    fn: int
    threads: int
    mt: int                  # tiles along m
    nt: int                  # tiles along n
    wk: int = 1              # warps splitting the reduction


def mma_tiles(m: int, n: int, k: int, split_k: bool = False) -> MmaTiles:
    """At most 4 warps: along n 1 or 2 warps of 1 or 2 fragments (16, 32 or 64 columns; up to 4
    warps when m fits one fragment, as for a fully connected layer's 16 images), the rest along m;
    with ``split_k`` (a GEMM of few tiles and a long reduction, as a fully connected layer at batch
    1), the warps left over split k instead."""
    mf, nf = -(-m // 16), -(-n // 16)
    wn = min(4 if mf == 1 else 2, pow2(nf))
    fn = min(2, pow2(-(-nf // wn))) if mf > 1 else 1
    wm = min(4 // wn, pow2(mf))
    fm = min(2, pow2(-(-mf // wm)))
    bm, bn = 16 * wm * fm, 16 * wn * fn
    wk = 4 // (wm * wn) if split_k else 1
    bk = 64 if k >= 64 and wk > 1 else 32 if k >= 32 else 16
    return MmaTiles(m=m, n=n, k=k, bm=bm, bn=bn, bk=bk, wm=wm, wn=wn, fm=fm, fn=fn, threads=32 * wm * wn * wk,
                    mt=-(-m // bm), nt=-(-n // bn), wk=wk)


TENSOR_CORE_MIN = 8      # a GEMM with fewer columns or a shorter reduction stays on the CUDA cores


class OpKind:
    """What the planner and the emitters know about one kind of planned op."""
    name = ""
    elementwise = False      # may write its output over an input buffer that dies at it (same size)
    epilogue = False         # applies a fused activation to its results
    activation_only = False  # computes its activation (op.act) and nothing else: fuses into an epilogue
    concatenates = False     # its inputs become channel slices of its output (placement removes the op)
    uses_simd = False        # its C kernels use the SIMD macros of templates/c/kernels/simd.c.j2
    int8_requantizes = True  # its portable int8 C template calls the scalar requantization

    def shrinks_in_place(self, op) -> bool:
        """Whether ``op`` writes its output, possibly smaller, over an input that dies at it (the
        output pinned at the input's offset: codegen.plan)."""
        return False

    def index_bound(self, op: Op) -> int:
        """The largest element count the op's C code indexes beyond its tensors and weights (the
        padded input of a window, say); 0 if none. The planner keeps it within 32-bit ``int``."""
        return 0

    def per_channel_affine(self, op: Op):
        """(scale, shift) as float64 arrays if ``op`` computes y = x * scale[c] + shift[c], else None."""
        return None

    def fold_scale_shift(self, op: Op, scale, shift) -> bool:
        """Absorb a following per-channel y = x * scale + shift (float64 arrays) into ``op``'s
        weights; False if this kind cannot."""
        return False

    def absorb_producer(self, op: Op, producer: Op) -> Op | None:
        """One op computing ``op`` together with ``producer``, the op writing its input, so that the
        producer's output is never stored (the planner asks only where ``op`` is that output's one
        reader and it is no network output); None if this kind cannot."""
        return None

    def int8_output(self, op: Op, qin: list, calibrated):
        """The quantization of the op's int8 output: the calibrated one, unless the kind fixes it."""
        return calibrated

    def int8(self, op: Op, qin: list, qout, ctx) -> None:
        """Make ``op`` an int8 op: weights as int8/int32 arrays, ``op.quant`` (codegen.quant.scheme.OpQuant).
        ``ctx`` (codegen.quant.plan.QuantContext): the network and the calibration (e.g. the weight
        scales an imported int8 model fixes)."""
        raise UnsupportedError(f"layer '{'+'.join(op.layers)}': int8 code generation does not support "
                               f"{self.name} ops (yet); build it in float32")

    def int8_reference(self, op: Op, xs: list):
        """The integer reference: the op's int8 inputs, (H, W, C) arrays, -> its int8 output."""
        raise NotImplementedError(self.name)

    def reorder(self, op: Op):
        """For an op that only moves values (``flatten``): the index array ``perm`` with
        ``out[k] = in[perm[k]]`` over the dense tensors; else None."""
        return None

    def read_reordered(self, op: Op, source: Tensor, perm) -> bool:
        """Make ``op`` read ``source`` (dense) in place of its input, which is ``source`` reordered by
        ``perm`` (``input[k] = source[perm[k]]``), by adjusting its weights; False if this kind cannot."""
        return False

    def channel_permutation(self, op: Op) -> list[int] | None:
        """The input channel each output channel holds, if ``op`` only reorders channels; else None."""
        return None

    def fold_permutation(self, op: Op, source: list[int]) -> bool:
        """Reorder ``op``'s output channels in its weights, so that output channel ``o`` becomes what
        channel ``source[o]`` was; False if this kind cannot."""
        return False

    def c_kernel(self, op: Op, isas: tuple = HOST_ISAS):
        """(the C kernel chosen for ``op``, its weights packed for that kernel) or None when the
        op's template needs no choice and reads the plan's weights. ``isas``: the instruction sets
        the build holds (a microcontroller build packs weights for its own tiles, unpadded where
        they allow)."""
        return None

    def c_kernel_int8(self, op: Op):
        """As :meth:`c_kernel` for the op of an int8 plan (None: the portable template of
        templates/c/ops/int8/ over the plan's weights)."""
        return None

    def c_kernel_int8_simd(self, op: Op, isas: tuple):
        """As :meth:`c_kernel_int8` for a build with vector instruction sets (``isas``: the host's
        AVX-512 / AVX2 / NEON, AArch64's NEON; see :mod:`codegen.ops.int8simd`): None keeps the
        portable template."""
        return None

    def cuda_launch(self, op: Op) -> CudaLaunch:
        raise NotImplementedError(f"op kind {self.name!r} has no CUDA launch")

    def cuda_tensor_core_launch(self, op: Op) -> CudaLaunch | None:
        """The launch of a tensor-core kernel for ``op`` (float plans, precision 'tf32', 'fp16' or
        'bf16'), or None: the op then runs :meth:`cuda_launch`'s kernel in strict float32."""
        return None


def pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class ThreadPerValue:
    total: int               # values (threads) per image


def thread_per_value(total: int) -> CudaLaunch:
    """One thread per value: blocks of up to CUDA_MAX_THREADS (a multiple of 32) threads."""
    block = min(CUDA_MAX_THREADS, -(-total // 32) * 32)
    return CudaLaunch((-(-total // block), 1), block, ThreadPerValue(total))
