"""Issue 20 in the CPU execution mode: tensor-core kernels (WMMA m16n16k8 TF32 and m16n16k16
half/bfloat16 inputs, float accumulators; emulated by runtime/cuda_emu.h with the fragment
semantics of the GPU), the forward pass as a CUDA graph
captured once and replayed, and fully connected layers that take the batch as the rows of their
GEMM.

Tolerances. A kernel whose inputs are the network's input is checked against a float64 reference
computed on the SAME rounded inputs and weights (TF32, half or bfloat16): what is left is float32
accumulation, so 1e-5 holds (as for the float32 kernels), and a kernel that truncated instead of
rounding, or skipped the rounding, would be off by ~2^-12 (2.4e-4; more for bfloat16). Whole
networks are checked against the exact reference with the tolerance of codegen/verify.py: float32's
plus max(5 x the deviation of the reference run with rounded inputs and weights, 2u per op on the
tensor cores; u = 2^-11 for TF32 and half, 2^-8 for bfloat16)."""

from __future__ import annotations

import copy
import os

import cffi
import numpy as np
import pytest

from codegen import (Network, build_many, convolution2dLayer, fullyConnectedLayer, groupedConvolution2dLayer,
                     imageInputLayer, reluLayer)
from codegen.compiler import CompileJob, compile_cached
from codegen.resources import runtime_dir
from codegen.targets.cuda import EMULATION_FLAGS
from codegen.verify import UNIT_ROUNDOFF, default_tolerance, random_inputs, rel_error, round_to
from checks import check_against_reference
from netgen import random_dag
from test_cuda_emulation import FAST, tile_stack


def tf32(a) -> np.ndarray:
    """PTX cvt.rna.tf32.f32 in NumPy: 10 mantissa bits, nearest, ties away from zero."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).copy()
    finite = (u & 0x7F800000) != 0x7F800000
    u[finite] = (u[finite] + 0x1000) & 0xFFFFE000
    return u.view(np.float32)


def bf16(a) -> np.ndarray:
    """__float2bfloat16_rn in NumPy: 7 mantissa bits, nearest even (finite values)."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    return u.view(np.float32)


ROUND = {"tf32": tf32, "fp16": lambda a: np.asarray(a, np.float32).astype(np.float16).astype(np.float32), "bf16": bf16}


def rounded_reference(net: Network, x: np.ndarray, precision: str = "tf32") -> np.ndarray:
    """The exact result of ``net`` on inputs and weights rounded to ``precision`` (biases stay float32)."""
    rnd = ROUND[precision]
    rounded = copy.deepcopy(net)
    for layer in rounded.layers[1:]:
        if layer._p.get("Weights") is not None:
            layer._p["Weights"] = rnd(layer._p["Weights"]).astype(np.float64)
    return rounded.predict(rnd(x).astype(np.float64))


# ------------------------------------------------------------------ the emulator's WMMA and graphs

EMU_PROGRAM = r"""
#include "cuda_emu.h"

extern "C" float to_tf32(float v) { return nvcuda::wmma::__float_to_tf32(v); }
extern "C" float to_half(float v) { return __half2float(__float2half_rn(v)); }
extern "C" float to_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

/* One 16x16x8 product through fragments; `convert`: round the inputs with __float_to_tf32 first. */
static __global__ void mma16(const float *a, const float *b, float *c, int convert, int offset)
{
    __shared__ __align__(32) float sa[16 * 8 + 8], sb[8 * 16], sc[16 * 16];
    for (int i = threadIdx.x; i < 128; i += 32) {
        sa[i] = convert ? nvcuda::wmma::__float_to_tf32(a[i]) : a[i];
        sb[i] = convert ? nvcuda::wmma::__float_to_tf32(b[i]) : b[i];
    }
    __syncthreads();
    nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 8, nvcuda::wmma::precision::tf32, nvcuda::wmma::row_major> fa;
    nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 8, nvcuda::wmma::precision::tf32, nvcuda::wmma::col_major> fb;
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float> fc;
    nvcuda::wmma::fill_fragment(fc, 1.0f);
    nvcuda::wmma::load_matrix_sync(fa, sa + offset, 8);
    nvcuda::wmma::load_matrix_sync(fb, sb, 8);           /* col-major B: b[n * 8 + k] */
    nvcuda::wmma::mma_sync(fc, fa, fb, fc);
    nvcuda::wmma::store_matrix_sync(sc, fc, 16, nvcuda::wmma::mem_row_major);
    __syncthreads();
    for (int i = threadIdx.x; i < 256; i += 32)
        c[i] = sc[i];
}

extern "C" int mma(const float *a, const float *b, float *c, int convert, int offset)
{
    cuda_emu_launch(mma16, dim3(1), dim3(32), nullptr, a, b, c, convert, offset);
    return (int)cudaGetLastError();
}

static __global__ void add_one(float *p) { p[threadIdx.x] += 1.0f; }

/* Capture 3 launches, then check: nothing ran during capture; each replay runs all 3; a copy
 * during a capture fails and invalidates it. Returns a bit mask of the checks that failed. */
extern "C" int graphs(float *p)
{
    int failed = 0;
    cudaStream_t s = nullptr;
    cudaGraph_t g = nullptr;
    cudaGraphExec_t e = nullptr;
    cudaStreamCreate(&s);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    for (int i = 0; i < 3; ++i)
        cuda_emu_launch(add_one, dim3(1), dim3(4), s, p);
    failed |= (p[0] != 0.0f) << 0;
    failed |= (cudaStreamEndCapture(s, &g) != cudaSuccess) << 1;
    failed |= (cudaGraphInstantiate(&e, g, 0) != cudaSuccess) << 2;
    cudaGraphDestroy(g);                           /* the executable graph lives on */
    failed |= (cudaGraphLaunch(e, s) != cudaSuccess || p[3] != 3.0f) << 3;
    failed |= (cudaGraphLaunch(e, s) != cudaSuccess || p[3] != 6.0f) << 4;
    cudaGraphExecDestroy(e);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    failed |= (cudaMemcpyAsync(p, p + 1, 4, cudaMemcpyDeviceToDevice, s) != cudaErrorStreamCaptureUnsupported) << 5;
    failed |= (cudaStreamEndCapture(s, &g) != cudaErrorStreamCaptureInvalidated || g != nullptr) << 6;
    cudaGetLastError();
    cudaStreamDestroy(s);
    return failed;
}
"""


def _emu_library(name: str):
    files = {"emu.cu": EMU_PROGRAM, "cuda_emu.h": (runtime_dir() / "cuda_emu.h").read_text()}
    job = CompileJob(os.environ.get("CXX") or "g++", [*EMULATION_FLAGS, "-x", "c++"], ["emu.cu"], name, libs=[])
    result = compile_cached(files, job)
    assert "warning" not in result.log.lower(), result.log
    ffi = cffi.FFI()
    ffi.cdef("float to_tf32(float v); float to_half(float v); float to_bf16(float v); int mma(const float *a, const float *b, float *c, int convert, int offset);"
             "int graphs(float *p);")
    return ffi, ffi.dlopen(str(result.library))


@pytest.fixture(scope="module")
def emu():
    return _emu_library("libemu20.so")


@pytest.fixture(scope="module")
def faulted():
    """A library of its own: the fault it is made to take is sticky, as on a GPU."""
    return _emu_library("libemu20_fault.so")


def test_float_to_tf32_is_round_to_nearest_ties_away(emu):
    ffi, lib = emu
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -10)                    # TF32's unit in the last place at 1
    cases = {1 + ulp / 2: 1 + ulp,                   # a tie: away from zero
             -(1 + ulp / 2): -(1 + ulp),
             1 + ulp / 2 - np.float32(2.0 ** -23): one,      # just below the tie: down
             1 + ulp + ulp / 2: 1 + 2 * ulp,         # a tie above an odd last bit: still away (not to even)
             np.float32(2.0 - 2.0 ** -23): np.float32(2.0),  # carries into the exponent
             np.float32(3.4028235e38): np.float32(np.inf),   # beyond the largest TF32 value
             np.float32(1e-40): tf32(np.float32(1e-40))[()]}  # subnormal
    for v, want in cases.items():
        got = lib.to_tf32(float(v))
        assert np.float32(got) == np.float32(want), (v, got, want)
    assert np.isnan(lib.to_tf32(float("nan"))) and lib.to_tf32(float("-inf")) == float("-inf")
    x = np.random.default_rng(1).standard_normal(2000).astype(np.float32) * 1e3
    assert np.array_equal(np.array([lib.to_tf32(float(v)) for v in x], np.float32), tf32(x))


def test_half_and_bfloat16_conversions_round_to_nearest_even(emu):
    ffi, lib = emu
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(3000) * 10.0 ** rng.integers(-9, 6, 3000),    # subnormal halves too
                        [65504, 65519.99, 65520, -70000, 6e-8, 2e-8, 3e-8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.0,
                         -0.0, np.inf, -np.inf]]).astype(np.float32)
    half = np.array([lib.to_half(float(v)) for v in x], np.float32)
    with np.errstate(over="ignore"):                  # -70000 overflows to -inf, as it should
        assert np.array_equal(half, x.astype(np.float16).astype(np.float32))     # NumPy: IEEE nearest even
    assert np.isnan(lib.to_half(float("nan"))) and np.isnan(lib.to_bf16(float("nan")))
    finite = x[np.isfinite(x)]
    assert np.array_equal(np.array([lib.to_bf16(float(v)) for v in finite], np.float32), bf16(finite))
    assert lib.to_bf16(1 + 2 ** -8) == 1.0 and lib.to_bf16(1 + 3 * 2 ** -8) == 1 + 2 ** -6      # ties to even


def test_wmma_fragments_multiply_tf32_and_check_alignment(emu, faulted):
    ffi, lib = emu
    rng = np.random.default_rng(2)
    a = rng.standard_normal(128).astype(np.float32)
    b = rng.standard_normal(128).astype(np.float32)
    c = np.zeros(256, np.float32)
    ptr = lambda arr, t: ffi.cast(t, arr.ctypes.data)  # noqa: E731
    exact = 1.0 + a.reshape(16, 8).astype(np.float64) @ b.reshape(16, 8).T.astype(np.float64)   # B col-major
    rounded = 1.0 + tf32(a).reshape(16, 8).astype(np.float64) @ tf32(b).reshape(16, 8).T.astype(np.float64)
    assert lib.mma(ptr(a, "const float *"), ptr(b, "const float *"), ptr(c, "float *"), 1, 0) == 0
    assert np.allclose(c.reshape(16, 16), rounded, rtol=2e-7, atol=1e-6)
    assert np.abs(c.reshape(16, 16) - exact).max() > 1e-4                  # TF32, not float32
    # unconverted operands: the tensor core drops their low 13 bits (truncation, not rounding)
    truncated = 1.0 + (a.view(np.uint32) & 0xFFFFE000).view(np.float32).reshape(16, 8).astype(np.float64) @ \
        (b.view(np.uint32) & 0xFFFFE000).view(np.float32).reshape(16, 8).T.astype(np.float64)
    assert lib.mma(ptr(a, "const float *"), ptr(b, "const float *"), ptr(c, "float *"), 0, 0) == 0
    assert np.allclose(c.reshape(16, 16), truncated, rtol=2e-7, atol=1e-6)
    # a tile that does not start on a 32-byte boundary: a misaligned-address fault, sticky as on a GPU
    ffi, lib = faulted
    assert lib.mma(ptr(a, "const float *"), ptr(b, "const float *"), ptr(c, "float *"), 1, 4) == 716
    assert lib.mma(ptr(a, "const float *"), ptr(b, "const float *"), ptr(c, "float *"), 1, 0) == 716


def test_emulated_graphs_record_then_replay(emu):
    ffi, lib = emu
    p = np.zeros(4, np.float32)
    assert lib.graphs(ffi.cast("float *", p.ctypes.data)) == 0


# ------------------------------------------------------------------ the generated tensor-core kernels

def _single_op_nets() -> list[Network]:
    """Convolutions and FC layers reading the network's input (no normalization): filters and
    reductions around the 16 x 16 x 8 fragments and the 64-wide tiles, groups, strides, dilations,
    padding, fused ReLU."""
    rng = np.random.default_rng(20)
    nets = []
    shapes = [(9, 7, 3, 8, 3), (12, 11, 5, 17, 3), (6, 6, 8, 33, 1), (13, 9, 16, 64, 2), (5, 17, 7, 65, 3),
              (10, 10, 12, 96, 3), (1, 1, 40, 20, 1), (20, 19, 3, 16, 5)]
    for i, (h, w, c, f, k) in enumerate(shapes):
        layers = [imageInputLayer([h, w, c], Normalization="none"),
                  convolution2dLayer(k, f, Stride=1 + i % 2, DilationFactor=1 + (i % 3 == 2), Padding="same" if i % 2
                                     else [i % 3, 1, 0, 2], Bias=rng.normal(0, 0.3, (1, 1, f)))]
        if i % 3 == 0:
            layers.append(reluLayer())
        nets.append(Network(layers, seed=i, name=f"tcconv{i}"))
    nets.append(Network([imageInputLayer([8, 8, 12], Normalization="none"),
                         groupedConvolution2dLayer(3, 16, 3, Padding=1)], seed=9, name="tcgroup"))
    for i, (n_in, n_out) in enumerate([(8, 8), (100, 10), (300, 70), (33, 129)]):
        nets.append(Network([imageInputLayer([1, 1, n_in], Normalization="none"), fullyConnectedLayer(n_out)],
                            seed=20 + i, name=f"tcfc{i}"))
    return nets


@pytest.fixture(scope="module", params=["tf32", "fp16", "bf16"])
def single_ops(request):
    nets = _single_op_nets()
    return nets, build_many(nets, opt_flags=FAST, target="cuda", emulate=True, precision=request.param)


def test_tensor_core_kernels_compute_exact_products_of_rounded_inputs(single_ops):
    """Against the reference on inputs and weights rounded to the precision: float32 accumulation
    error only (< 1e-5); against the exact reference the rounding shows (> 1e-5 on some network,
    within 2u)."""
    nets, libs = single_ops
    precision = libs[0].precision
    off_exact = []
    for net, lib in zip(nets, libs):
        assert lib.tensor_core_ops == 1, net.name
        x = random_inputs(net, 35, seed=4)          # FC: three blocks of 16 images, the last ragged
        y = lib.predict(x)
        ref = rounded_reference(net, x, precision)
        err = max(rel_error(y[i], ref[i]) for i in range(len(x)))
        assert err < 1e-5, f"{net.name}: {err:.2e} from the {precision} reference"
        off_exact.append(max(rel_error(y[i], r) for i, r in enumerate(net.predict(x.astype(np.float64)))))
    assert max(off_exact) > 1e-5 and max(off_exact) < 2 * UNIT_ROUNDOFF[precision], off_exact


def test_batched_fc_rows_do_not_depend_on_the_other_images(single_ops):
    nets, libs = single_ops
    for net, lib in zip(nets, libs):
        if not net.name.startswith("tcfc"):
            continue
        assert "(n + 15) / 16" in lib.files[f"{lib.prefix}.cu"]           # 16 images per block along z
        x = random_inputs(net, 35, seed=5)
        y = lib.predict(x)
        for i in (0, 15, 16, 34):
            assert np.array_equal(y[i].ravel(), lib.predict(x[i]).ravel()), (net.name, i)


def test_precision_fp32_keeps_every_op_in_float32():
    nets = _single_op_nets()
    libs = build_many(nets[-2:], opt_flags=FAST, target="cuda", emulate=True, precision="fp32")
    for net, lib in zip(nets[-2:], libs):
        assert lib.tensor_core_ops == 0 and "wmma" not in lib.files[f"{lib.prefix}.cu"]
        x = random_inputs(net, 3)
        assert max(rel_error(a, b) for a, b in zip(lib.predict(x), net.predict(x.astype(np.float64)))) < 1e-5


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_and_bfloat16_stacks_match_reference(precision):
    """Random tile-crossing stacks with half or bfloat16 inputs to the tensor cores: within the bound
    (bfloat16's 2u = 2^-7 per op)."""
    rng = np.random.default_rng(2022)
    nets = [tile_stack(rng, f"h{precision}{i}") for i in range(16)]
    libs = build_many(nets, opt_flags=FAST, target="cuda", emulate=True, precision=precision)
    assert sum(lib.tensor_core_ops for lib in libs) >= 5
    check_against_reference(nets, libs, count=3)


def test_tensor_core_stacks_match_reference_under_every_schedule(monkeypatch):
    """Random tile-crossing stacks on the tensor cores: within the TF32 bound of the exact
    reference, and race free (the same bits whatever order the threads run in between barriers)."""
    rng = np.random.default_rng(2020)
    nets = [tile_stack(rng, f"tcs{i}") for i in range(16)]
    libs = build_many(nets, opt_flags=FAST, target="cuda", emulate=True)          # tf32: the default
    assert sum(lib.tensor_core_ops for lib in libs) >= 10
    check_against_reference(nets, libs, count=3)
    outputs = {}
    for schedule in ("forward", "reverse", "shuffle"):
        monkeypatch.setenv("CUDA_EMU_SCHEDULE", schedule)
        outputs[schedule] = [lib.predict(random_inputs(net, 2, seed=3)) for net, lib in zip(nets, libs)]
    for schedule in ("reverse", "shuffle"):
        for net, a, b in zip(nets, outputs["forward"], outputs[schedule]):
            assert np.array_equal(a, b), f"{net.name}: {schedule} differs from forward"


# ------------------------------------------------------------------ CUDA graphs in the generated code

def test_graph_replay_matches_launching_every_kernel():
    """predict replays a graph per batch size (captured on first use); predict_device launches the
    kernels one by one. In the CPU mode device pointers are host pointers, so both run on the
    same arrays: the results must be the same bits, for batch sizes in any order."""
    rng = np.random.default_rng(2021)
    nets = [random_dag(rng, f"gr{i}") if i % 2 else tile_stack(rng, f"gr{i}") for i in range(6)]
    libs = build_many(nets, opt_flags=FAST, target="cuda", emulate=True)
    for net, lib in zip(nets, libs):
        cu = lib.files[f"{lib.prefix}.cu"]
        assert "cudaStreamBeginCapture" in cu and "cudaGraphLaunch" in cu
        ffi, c = lib._api.ffi, lib._api.lib
        for n in (2, 1, 3, 2, 1):
            x = random_inputs(net, n, seed=n)
            y = lib.predict(x)                                   # the graph of batch n
            eager = np.zeros((n, lib.out_floats), np.float32)
            status = getattr(c, f"{lib.prefix}_cuda_predict_device")(
                lib._ctx, ffi.cast("const float *", x.ctypes.data), ffi.cast("float *", eager.ctypes.data), n,
                ffi.NULL)
            assert status == 0
            assert np.array_equal(y.reshape(n, -1), eager), (net.name, n)


def test_int8_graph_replay_matches_launching_every_kernel():
    """int8 builds replay graphs too (one per batch size and API): the int8 API's graph and its
    eager device entry give the same bytes, the float API's graph the integer reference's values."""
    from codegen.quant.reference import predict_int8
    from test_int8 import calibrated, random_nets
    nets = random_nets(4, 2030)
    libs = build_many(nets, opt_flags=FAST, target="cuda", emulate=True,
                      calibrations=[calibrated(net, k) for k, net in enumerate(nets)])
    for net, lib in zip(nets, libs):
        assert "cudaGraphLaunch" in lib.files[f"{lib.prefix}.cu"]
        ffi, c = lib._api.ffi, lib._api.lib
        for n in (2, 1, 2):
            x = random_inputs(net, n, seed=n)
            y = lib.predict(x)                                   # the float API's graph
            want = predict_int8(lib.plan, x)                     # a list: one array per output
            assert all(np.sum(a != b) == 0 for a, b in zip(y if isinstance(y, tuple) else (y,), want))
            q = lib.plan.quant.input.quantize(x)
            graph = lib.predict_int8(q)                          # the int8 API's graph
            eager = np.zeros_like(graph)
            status = getattr(c, f"{lib.prefix}_cuda_predict_int8_device")(
                lib._ctx, ffi.cast("const int8_t *", q.ctypes.data), ffi.cast("int8_t *", eager.ctypes.data), n,
                ffi.NULL)
            assert status == 0 and np.array_equal(graph, eager), (net.name, n)


def test_tolerance_simulates_the_rounding_and_still_catches_planted_errors():
    """codegen.verify's tensor-core tolerance: its rounding is the kernels' (NumPy twins above); on
    tile-crossing stacks it is met with room (half of it), and a planted error (one bias off by
    0.05) exceeds it."""
    x = np.random.default_rng(6).standard_normal(4000).astype(np.float32) * 10.0 ** np.arange(-20, 20, 0.01)[:4000]
    for precision in ("tf32", "fp16", "bf16"):
        with np.errstate(over="ignore"):
            assert np.array_equal(round_to(x, precision), ROUND[precision](x).astype(np.float64)), precision
    rng = np.random.default_rng(2040)
    nets = [tile_stack(rng, f"tol{i}") for i in range(8)]
    libs = build_many(nets, opt_flags=FAST, target="cuda", emulate=True)
    caught = 0
    for net, lib in zip(nets, libs):
        if not lib.tensor_core_ops:
            continue
        x = random_inputs(net, 2, seed=1)
        y = lib.predict(x)
        tol, _ = default_tolerance(net, x, lib.tensor_core_ops)
        assert max(rel_error(y[i], r) for i, r in enumerate(net.predict(x.astype(np.float64)))) < tol / 2
        for planted in planted_errors(net):
            caught += max(rel_error(y[i], r) for i, r in enumerate(planted.predict(x.astype(np.float64)))) > tol
    assert caught >= 4, caught


def planted_errors(net: Network) -> list[Network]:
    """A copy of ``net`` with one bias of its first layer that has one off by 0.05."""
    out = []
    for layer_index, layer in enumerate(net.layers):
        if layer._p.get("Bias") is not None:
            wrong = copy.deepcopy(net)
            bias = np.array(wrong.layers[layer_index]._p["Bias"], np.float64)
            bias.flat[0] += 0.05
            wrong.layers[layer_index]._p["Bias"] = bias
            out.append(wrong)
            break
    return out
