"""The CUDA backend in the CPU execution mode (issue 4): the generated kernels, compiled with g++
against runtime/cuda_emu.h (every thread a fiber, __syncthreads() a real barrier), against
the NumPy reference on hundreds of random layer stacks; the emulator's barrier; the host API.

Compiling is the slow part, so each test renders many networks into ONE library
(``build_many(..., target="cuda", emulate=True)``: one g++ run over a unity file)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cffi
import numpy as np
import pytest

import codegen
from codegen import (Network, averagePooling2dLayer, batchNormalizationLayer, clippedReluLayer, convolution2dLayer,
                     fullyConnectedLayer, groupedConvolution2dLayer, imageInputLayer, leakyReluLayer,
                     maxPooling2dLayer, reluLayer, softmaxLayer)
from codegen.compiler import CompileJob, compile_cached
from codegen import build_many
from codegen.targets.cuda import EMULATION_FLAGS
from codegen.ops.conv import conv_tiles
from codegen.ops.fc import fc_tiles
from codegen.ops.softmax import softmax_threads
from codegen.netfile import load
from codegen.resources import runtime_dir
from codegen.verify import default_tolerance, random_inputs, rel_error, verify_per_layer
from checks import TOL, check_against_reference
from netgen import input_layer, random_chain, random_dag

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAST = ["-O1"]      # the big random batches: a third less g++ time than -O2, same float arithmetic


def assert_clean_log(lib):
    log = lib.build.log
    assert "warning" not in log.lower(), log


# ------------------------------------------------------------------ random stacks crossing the tiles

FILTERS = [1, 2, 5, 20, 37, 64, 65, 70, 96]          # around the conv tile widths (BN <= 64)


def _pads(rng):
    r = rng.random()
    if r < 0.35:
        return "same"
    if r < 0.5:
        return 0
    return [int(v) for v in rng.integers(0, 3, size=4)]


def tile_stack(rng: np.random.Generator, name: str) -> Network:
    """A chain whose layers are larger than the CUDA tiles in some dimension and not a multiple of
    them: output pixels around and above the 256-pixel conv tile, 65-100 filters (two filter tiles),
    reductions K = KH*KW*C that are not multiples of 8, fully connected layers with more than 256
    inputs and 32 outputs, softmax over more than 256 channels."""
    h, w = int(rng.integers(5, 26)), int(rng.integers(5, 26))
    c = int(rng.choice([1, 3, 6, 9, 17]))
    layers = [input_layer(rng, h, w, c)]
    shape = (h, w, c)
    for _ in range(int(rng.integers(2, 5))):
        hh, ww, cc = shape
        r = rng.random()
        if r < 0.45:
            f = int(rng.choice(FILTERS))
            k = [int(v) for v in rng.integers(1, 5, size=2)]
            layer = convolution2dLayer(k, f, Stride=[int(v) for v in rng.integers(1, 3, size=2)],
                                       DilationFactor=int(rng.integers(1, 3)) if rng.random() < 0.3 else 1,
                                       Padding=_pads(rng), Bias=rng.normal(0, 0.3, (1, 1, f)))
        elif r < 0.6:
            divisors = [g for g in range(2, cc + 1) if cc % g == 0]
            if not divisors:
                continue
            g = int(rng.choice(divisors))
            fg = int(rng.choice([1, 3, 33, 70]))
            layer = groupedConvolution2dLayer(int(rng.integers(1, 4)), fg, g, Padding=_pads(rng),
                                              Stride=int(rng.integers(1, 3)), Bias=rng.normal(0, 0.3, (1, 1, fg, g)))
        elif r < 0.7:
            layer = batchNormalizationLayer(TrainedMean=rng.normal(0, 0.3, (1, 1, cc)),
                                            TrainedVariance=rng.uniform(0.2, 2.0, (1, 1, cc)),
                                            Scale=rng.uniform(0.5, 1.5, (1, 1, cc)),
                                            Offset=rng.normal(0, 0.3, (1, 1, cc)))
        elif r < 0.8:
            layer = [reluLayer(), leakyReluLayer(float(rng.uniform(0.01, 0.5))),
                     clippedReluLayer(float(rng.uniform(0.3, 3.0)))][int(rng.integers(3))]
        elif r < 0.9:
            p = int(rng.integers(2, 4))
            cls = maxPooling2dLayer if rng.random() < 0.5 else averagePooling2dLayer
            extra = {"PaddingValue": "mean"} if cls is averagePooling2dLayer and rng.random() < 0.5 else {}
            layer = cls(p, Stride=int(rng.integers(1, 3)), Padding="same" if rng.random() < 0.5 else 0, **extra)
        else:
            n = int(rng.choice([1, 33, 45, 100, 300]))
            layer = fullyConnectedLayer(n, Bias=rng.normal(0, 0.3, (n, 1)))
        try:
            new_shape = tuple(layer.copy().resolve([shape]))
        except codegen.LayerError:
            continue
        if _weight_count(layer, shape, new_shape) > 40_000:     # big weights files make slow builds
            continue
        layers.append(layer)
        shape = new_shape
    if rng.random() < 0.3:
        layers.append(softmaxLayer())
    return Network(layers, seed=int(rng.integers(1 << 30)), name=name)


def _weight_count(layer, shape, new_shape) -> int:
    if isinstance(layer, codegen.FullyConnectedLayer):
        return int(np.prod(shape)) * new_shape[2]
    if isinstance(layer, (codegen.Convolution2DLayer, codegen.GroupedConvolution2DLayer)):
        kh, kw = layer.FilterSize
        return kh * kw * shape[2] * new_shape[2]        # an upper bound for grouped convolutions
    return 0


def tile_coverage(nets) -> set[str]:
    """Which tiling edge cases the plans of ``nets`` exercise."""
    seen = set()
    for net in nets:
        for op in codegen.plan.make_plan(net).ops:
            a = op.attrs
            if op.kind == "conv":
                t = conv_tiles(a)
                seen.add(f"TM={t.tm}")
                seen.add(f"TN={t.tn}")
                if t.mt > 1 and t.m % t.bm:
                    seen.add("ragged pixel tiles")
                if t.nt > 1 and t.n % t.bn:
                    seen.add("ragged filter tiles")
                if t.k > t.bk and t.k % t.bk:
                    seen.add("ragged K steps")
                if a.groups > 1:
                    seen.add("groups")
                if op.act:
                    seen.add("conv+act")
            elif op.kind == "fc":
                t = fc_tiles(a)
                if t.ot > 1 and a.n_out % t.bo:
                    seen.add("ragged fc outputs")
                if a.n_in > t.threads and a.n_in % t.threads:
                    seen.add("ragged fc chunks")
            elif op.kind == "softmax" and a.c > softmax_threads(a.c):
                seen.add("softmax channels > threads")
            elif op.kind in ("maxpool", "avgpool") and (a.oh * a.ow * a.c) % 256:
                seen.add("ragged pool grid")
    return seen


# ------------------------------------------------------------------ the tests

@pytest.mark.parametrize("batch", range(3))
def test_random_stacks_match_reference(batch):
    """150 random chains and DAGs (skip additions, in-place ops, concatenations written as channel
    slices), 50 per library, 2 images per call, arena poisoned with NaN."""
    rng = np.random.default_rng(4000 + batch)
    nets = [random_chain(rng, f"cu{batch}_c{i}") if i % 2 else random_dag(rng, f"cu{batch}_d{i}") for i in range(50)]
    libs = build_many(nets, opt_flags=FAST, target="cuda", emulate=True)
    assert_clean_log(libs[0])
    check_against_reference(nets, libs)
    kinds = {op.kind for lib in libs for op in lib.plan.ops}
    assert {"conv", "maxpool", "avgpool", "add", "normalize", "act"} <= kinds, kinds
    assert any(op.inplace for lib in libs for op in lib.plan.ops)
    assert any(not op.output.dense for lib in libs for op in lib.plan.ops)     # concatenation slices


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_tile_crossing_stacks_match_reference(precision):
    """60 stacks larger than the tiles in every dimension, not multiples of them: the float32 kernels,
    and (tf32) most convolutions and fully connected layers on the tensor-core kernels instead."""
    rng = np.random.default_rng(5000)
    nets = [tile_stack(rng, f"tile{i}") for i in range(60)]
    covered = tile_coverage(nets)
    wanted = {"TM=1", "TM=2", "TM=4", "TN=1", "TN=2", "TN=4", "ragged pixel tiles", "ragged filter tiles",
              "ragged K steps", "groups", "conv+act", "ragged fc outputs", "ragged fc chunks",
              "softmax channels > threads", "ragged pool grid"}
    assert wanted <= covered, f"the generator no longer covers {wanted - covered}"
    libs = build_many(nets, opt_flags=FAST, target="cuda", emulate=True, precision=precision)
    check_against_reference(nets, libs, count=3)
    on_tensor_cores = sum(lib.tensor_core_ops for lib in libs)
    assert on_tensor_cores == 0 if precision == "fp32" else on_tensor_cores >= 40, on_tensor_cores


def test_thread_schedules_give_bit_identical_results(monkeypatch):
    """The kernels are race free: running the threads between barriers forward, backward or in a
    random order gives the same bits (a missing barrier would make the orders disagree)."""
    rng = np.random.default_rng(5001)
    nets = [tile_stack(rng, f"sched{i}") for i in range(12)]
    libs = build_many(nets, target="cuda", emulate=True)
    outputs = {}
    for schedule in ("forward", "reverse", "shuffle"):
        monkeypatch.setenv("CUDA_EMU_SCHEDULE", schedule)
        monkeypatch.setenv("CUDA_EMU_SEED", "7")
        outputs[schedule] = [lib.predict(random_inputs(net, 1, seed=3)) for net, lib in zip(nets, libs)]
    for schedule in ("reverse", "shuffle"):
        for net, a, b in zip(nets, outputs["forward"], outputs[schedule]):
            assert np.array_equal(a, b), f"{net.name}: {schedule} differs from forward"
    check_against_reference(nets, libs)


def test_per_layer_outputs_and_poisoned_dead_buffers():
    """Every op's output (a reuse=False build, read back from the device arena) matches the reference
    layer; with poison_dead, each buffer is overwritten with NaN after its last reader, so a kernel
    that reads a dead buffer shows."""
    rng = np.random.default_rng(5002)
    nets = [random_dag(rng, f"pl{i}") if i % 2 else tile_stack(rng, f"pl{i}") for i in range(16)]
    debug = build_many(nets, reuse=False, opt_flags=FAST, target="cuda", emulate=True)
    for net, lib in zip(nets, debug):
        result = verify_per_layer(net, lib)
        assert result.passed and result.per_layer, f"{net.name}:\n{result.report()}\n{lib.plan.describe()}"
    poisoned = build_many(nets, poison_dead=True, opt_flags=FAST, target="cuda", emulate=True)
    assert "NAN" in poisoned[0].files[f"{poisoned[0].prefix}.cu"]
    check_against_reference(nets, poisoned)


BARRIER_KERNEL = r"""
#include "cuda_emu.h"

/* Each block reverses its 256 values through shared memory: thread t writes s[t] and reads
 * s[255 - t], written by another thread, so the result is right only if __syncthreads() really
 * waits for every thread of the block. */
static __global__ void reverse_blocks(const float *in, float *out, int sync)
{
    __shared__ float s[256];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    s[t] = in[base + t];
    if (sync)
        __syncthreads();
    out[base + t] = s[blockDim.x - 1 - t];
}

/* Threads 0-2 leave before the barrier the others wait at: undefined on a GPU, an error here. */
static __global__ void diverge(float *out)
{
    if (threadIdx.x < 3)
        return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

extern "C" int reverse(const float *in, float *out, int blocks, int sync)
{
    cuda_emu_launch(reverse_blocks, dim3(blocks), dim3(256), nullptr, in, out, sync);
    return (int)cudaGetLastError();
}

extern "C" int divergent(float *out)
{
    cuda_emu_launch(diverge, dim3(1), dim3(32), nullptr, out);
    const int launch = (int)cudaGetLastError();
    float *p = nullptr;
    const int after = (int)cudaMalloc((void **)&p, 16);    /* the failure is sticky, as on a GPU */
    return launch * 1000 + after;
}
"""


@pytest.fixture(scope="module")
def barrier_lib():
    files = {"barrier.cu": BARRIER_KERNEL, "cuda_emu.h": (runtime_dir() / "cuda_emu.h").read_text()}
    job = CompileJob(os.environ.get("CXX") or "g++", [*EMULATION_FLAGS, "-x", "c++"], ["barrier.cu"],
                     "libbarrier.so", libs=[])
    result = compile_cached(files, job)
    assert "warning" not in result.log.lower(), result.log
    ffi = cffi.FFI()
    ffi.cdef("int reverse(const float *in, float *out, int blocks, int sync); int divergent(float *out);")
    return ffi, ffi.dlopen(str(result.library))


@pytest.mark.parametrize("schedule", ["forward", "reverse", "shuffle"])
def test_syncthreads_is_a_real_barrier(barrier_lib, monkeypatch, schedule):
    monkeypatch.setenv("CUDA_EMU_SCHEDULE", schedule)
    ffi, lib = barrier_lib
    x = np.arange(3 * 256, dtype=np.float32)
    expected = x.reshape(3, 256)[:, ::-1].ravel()
    out = np.zeros_like(x)
    ptr = lambda a, t: ffi.cast(t, a.ctypes.data)  # noqa: E731
    assert lib.reverse(ptr(x, "const float *"), ptr(out, "float *"), 3, 1) == 0
    assert np.array_equal(out, expected)
    out[:] = 0
    assert lib.reverse(ptr(x, "const float *"), ptr(out, "float *"), 3, 0) == 0
    wrong = np.count_nonzero(out != expected)
    assert wrong > 200, f"without the barrier only {wrong} of 768 values are wrong"


def test_barrier_divergence_is_a_sticky_launch_failure(barrier_lib):
    ffi, lib = barrier_lib
    out = np.zeros(32, np.float32)
    assert lib.divergent(ffi.cast("float *", out.ctypes.data)) == 719 * 1000 + 719   # cudaErrorLaunchFailure


def test_batches_of_any_size_match_single_images():
    net = load(str(EXAMPLES / "lenet.py"))
    (lib,) = build_many([net], target="cuda", emulate=True)
    x = random_inputs(net, 70, seed=9)            # > MAX_BATCH: two device calls, the context grows
    y = lib.predict(x)
    single = np.stack([lib.predict(x[i]) for i in (0, 33, 69)])
    assert np.array_equal(y[[0, 33, 69]], single)
    ref = net.predict(x.astype(np.float64))
    assert lib.tensor_core_ops == 2           # the convolution and the FC layer: TF32, the default
    assert max(rel_error(y[i], ref[i]) for i in range(70)) < default_tolerance(net, x[:3], lib.tensor_core_ops)[0]


def test_host_api_reports_errors_as_codes(tmp_path):
    net = load(str(EXAMPLES / "lenet.py"))
    lib = codegen.build(net, target="cuda", emulate=True, out_dir=tmp_path / "lenet")
    ffi, c = lib._api.ffi, lib._api.lib
    pp = ffi.new("lenet_cuda **")
    assert c.lenet_cuda_init(pp, 0) == c.LENET_ERR_ARG and pp[0] == ffi.NULL
    assert "max_batch" in ffi.string(c.lenet_cuda_error(ffi.NULL)).decode()
    assert c.lenet_cuda_init(ffi.NULL, 1) == c.LENET_ERR_NULL
    assert c.lenet_cuda_init(pp, 2) == c.LENET_OK
    ctx = pp[0]
    x = np.zeros(3 * c.LENET_IN_SIZE, np.float32)
    y = np.zeros(3 * c.LENET_OUT_SIZE, np.float32)
    xp, yp = ffi.cast("const float *", x.ctypes.data), ffi.cast("float *", y.ctypes.data)
    assert c.lenet_cuda_predict(ctx, xp, yp, 3) == c.LENET_ERR_ARG
    assert "batch of 3" in ffi.string(c.lenet_cuda_error(ctx)).decode()
    assert c.lenet_cuda_predict(ctx, ffi.NULL, yp, 1) == c.LENET_ERR_NULL
    assert c.lenet_cuda_predict_device(ctx, xp, yp, 0, ffi.NULL) == c.LENET_ERR_ARG
    assert c.lenet_cuda_predict(ctx, xp, yp, 2) == c.LENET_OK
    assert np.allclose(y[:10].sum(), 1.0)                     # softmax of a zero image
    assert c.lenet_cuda_read_arena(ctx, 5, ffi.cast("float *", y.ctypes.data)) == c.LENET_ERR_ARG
    assert c.lenet_cuda_op_name(99) == ffi.NULL
    assert c.lenet_cuda_free(ctx) == c.LENET_OK
    assert c.lenet_cuda_free(ffi.NULL) == c.LENET_OK


def test_time_ops_times_every_kernel():
    net = load(str(EXAMPLES / "grouped.py"))
    (lib,) = build_many([net], target="cuda", emulate=True)
    lib.predict(random_inputs(net, 2))
    per_op, total = lib.time_ops(batch=2, reps=2)
    assert [name for name, _ in per_op] == ["+".join(op.layers) for op in lib.plan.ops]
    assert all(ms >= 0 for _, ms in per_op) and total > 0


def test_examples_match_reference_in_cpu_mode():
    nets = [load(str(p)) for p in sorted(EXAMPLES.glob("*.py"))]
    libs = build_many(nets, target="cuda", emulate=True)
    check_against_reference(nets, libs, count=2)


def test_public_build_writes_the_cuda_folder(tmp_path):
    net = Network([imageInputLayer([9, 7, 3]), convolution2dLayer(3, 70, Padding="same"), reluLayer(),
                   fullyConnectedLayer(5), softmaxLayer()], seed=1, name="tiny cuda!")
    lib = codegen.build(net, target="cuda", emulate=True, out_dir=tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"tiny_cuda.cu", "tiny_cuda.h", "tiny_cuda_weights.c", "cuda_emu.h", "Makefile", "README.md"} <= names
    assert lib.emulate and lib.plan is not None and lib.out_dir == tmp_path / "out" and lib.library.exists()
    assert_clean_log(lib)
    x = random_inputs(net, 2)
    tol = default_tolerance(net, x, lib.tensor_core_ops)[0]
    assert max(rel_error(a, b) for a, b in zip(lib.predict(x), net.predict(x.astype(np.float64)))) < tol
    lines = lib.build_report()
    assert "CPU" in lines[0]
    again = codegen.build(net, target="cuda", emulate=True, out_dir=tmp_path / "out")
    assert again.cached


def test_generated_source_structure():
    """One launch macro; every CUDA runtime call checked; a shape comment above every kernel."""
    rng = np.random.default_rng(5003)
    net = random_dag(rng, "shape")
    files = codegen.emit.render_files(net, codegen.plan.make_plan(net), "cuda", {})
    cu = files["shape.cu"]
    assert cu.count("<<<") == 1 and "#define SHAPE_LAUNCH(" in cu
    plan = codegen.plan.make_plan(net)
    assert len(re.findall(r"SHAPE_LAUNCH\(shape_\w+, dim3", cu)) == len(plan.ops)
    kernels = re.findall(r"static __global__ void __launch_bounds__\(\d+(?:, \d+)?\) (\w+)\(", cu)
    assert len(kernels) == len(plan.ops) + (plan.arena_bytes > 0)      # + the fill kernel
    for name in kernels[plan.arena_bytes > 0:]:
        head = cu[: cu.index(f") {name}(")]
        assert re.search(r"\d+x\d+x\d+ -> \d+x\d+x\d+", head[head.rindex("/*"):]), name
    # every runtime call is checked, except cleanup (cudaEventDestroy, cudaGraphDestroy; cudaFree reports its first error)
    body = cu[cu.index("/* ============================================================================ host"):]
    for line in body.splitlines():
        code = re.sub(r'"[^"]*"', '""', line)
        for call in re.findall(r"\b(cuda[A-Z]\w*)\(", code):
            if call in ("cudaGetErrorString", "cudaGetErrorName"):
                continue
            checked = "_CHECK(" in code or "err = " in code
            assert checked or call in ("cudaEventDestroy", "cudaGraphDestroy"), line


@pytest.mark.long
@pytest.mark.parametrize("batch", range(8))
def test_random_stacks_long(batch):
    """800 more stacks: 100 per library, deeper chains, DAGs and tile-crossing stacks."""
    rng = np.random.default_rng(6000 + batch)
    nets = []
    for i in range(100):
        r = i % 3
        nets.append(random_chain(rng, f"lg{batch}_{i}", max_layers=10) if r == 0 else
                    random_dag(rng, f"lg{batch}_{i}", steps=10) if r == 1 else tile_stack(rng, f"lg{batch}_{i}"))
    check_against_reference(nets, build_many(nets, opt_flags=FAST, target="cuda", emulate=True))
