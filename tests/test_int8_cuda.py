"""int8 CUDA code (issue 15): the generated int8 kernels equal the integer reference bit for bit (zero
differing outputs) in the CPU execution mode on random networks, through the float API and the
int8 API; a planted rounding error is caught; nvcc compiles them for sm_80, sm_90 and PTX without
warnings or spills; on a GPU they equal the reference there too (elsewhere that test skips and
says why).

Compiling is the slow part, so each test renders many networks into ONE library
(``build_many(..., target="cuda", emulate=True, calibrations=...)``: one g++ run)."""

from __future__ import annotations

import numpy as np
import pytest

import codegen
from codegen import (Network, addLayers, connectLayers, convolution2dLayer, imageInputLayer, layerGraph,
                     maxPooling2dLayer, regressionLayer, reluLayer, softmaxLayer)
from codegen.emit import render_files
from codegen.names import network_prefix
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.quant.reference import predict_int8, run_int8
from codegen.quant.verify import int8_per_layer, verify_int8
from codegen.targets import CudaEmulated, CudaUnavailable
from conftest import require_tool
from test_cuda_emulation import EXAMPLES, FAST, assert_clean_log, tile_stack
from test_cuda_nvcc import gpu_or_skip, no_warnings
from test_int8 import calibrated, random_nets

POISON = -77                 # every arena byte before each call: a read of an unwritten value shows


def _tuple(y) -> tuple:
    return y if isinstance(y, tuple) else (y,)


def differing_outputs(nets, libs, images: int = 6, int8_api: bool = True) -> tuple[int, int, int]:
    """(outputs of the float API that differ from predict_int8, outputs of the int8 API that differ from
    run_int8, networks whose outputs are not all the same value) over ``images`` random images each."""
    float_api = raw_api = varied = 0
    for k, (net, lib) in enumerate(zip(nets, libs)):
        x = np.random.default_rng(k).standard_normal((images, *net.input_shape)).astype(np.float32) * 1.5
        got, want = _tuple(lib.predict(x)), predict_int8(lib.plan, x)
        float_api += sum(int(np.sum(g != w)) for g, w in zip(got, want))
        varied += len(np.unique(np.concatenate([w.ravel() for w in want]))) > 1
        if int8_api:
            q = lib.plan.quant.input.quantize(x)
            ref = np.concatenate([r.reshape(images, -1) for r in run_int8(lib.plan, q)], axis=1)
            raw_api += int(np.sum(lib.predict_int8(q) != ref))
    return float_api, raw_api, varied


# ------------------------------------------------------------------ the CPU execution mode

@pytest.mark.parametrize("batch", range(3))
def test_emulated_int8_kernels_equal_the_integer_reference_bit_for_bit(batch):
    """90 random chains and DAGs (every op kind with an int8 form) and 15 chains crossing the CUDA tiles,
    6 images each as one batch, arena poisoned: 0 differing outputs through both APIs."""
    nets = random_nets(30, 500 + batch)
    rng = np.random.default_rng(900 + batch)
    nets += [tile_stack(rng, f"i8ts_{batch}_{i}") for i in range(5)]
    cals = [calibrated(net, k) for k, net in enumerate(nets)]
    libs = codegen.build_many(nets, target="cuda", emulate=True, calibrations=cals, opt_flags=FAST)
    assert_clean_log(libs[0])
    for lib in libs:
        lib.poison = POISON
    float_api, raw_api, varied = differing_outputs(nets, libs)
    assert float_api == 0, f"{float_api} outputs of the float API differ from the integer reference"
    assert raw_api == 0, f"{raw_api} outputs of the int8 API differ from the integer reference"
    assert varied >= 0.75 * len(nets), f"only {varied} of {len(nets)} networks have outputs that vary"
    kinds = {op.kind for lib in libs for op in lib.plan.ops}
    assert {"conv", "maxpool", "avgpool", "add", "fc", "act", "normalize"} <= kinds, kinds


def test_a_planted_rounding_error_is_counted():
    """The comparison can fail: the same kernels with the requantization's rounding shift rounding
    ties the other way differ from the reference."""
    nets = random_nets(4, 520)
    cals = [calibrated(net, k) for k, net in enumerate(nets)]
    plans = [make_plan(net, calibration=cal) for net, cal in zip(nets, cals)]
    target = CudaEmulated(opt_flags=FAST)
    libs = []
    for net, plan in zip(nets, plans):
        prefix = network_prefix(net.name)
        files = render_files(net, plan, "cuda")
        assert "(remainder > threshold ? 1 : 0)" in files[f"{prefix}.cu"]
        files[f"{prefix}.cu"] = files[f"{prefix}.cu"].replace("(remainder > threshold ? 1 : 0)",
                                                              "(remainder >= threshold ? 1 : 0)")
        libs.append(target.load(net, plan, files, None, prefix, target.compile(files, [prefix])))
    float_api, raw_api, _ = differing_outputs(nets, libs)
    assert float_api > 0 and raw_api > 0, (float_api, raw_api)


def test_several_outputs_and_the_header():
    """Two heads (softmax and regression) written back to back and dequantized with their own scales;
    the header declares both APIs and the int8 arena."""
    g = layerGraph([imageInputLayer([12, 10, 3], Name="in"), convolution2dLayer(3, 8, Padding="same", Name="c1"),
                    reluLayer(Name="r1"), maxPooling2dLayer(2, Stride=2, Name="p1"),
                    convolution2dLayer(3, 6, Padding="same", Name="cls_conv"), softmaxLayer(Name="cls")])
    g = addLayers(g, [convolution2dLayer(1, 4, Name="box_conv"), regressionLayer(Name="boxes")])
    net = Network(connectLayers(g, "p1", "box_conv"), seed=3, name="heads_i8")
    lib = codegen.build(net, target="cuda", emulate=True, calibration=calibrated(net, 3), write=False)
    assert_clean_log(lib)
    header = lib.files["heads_i8.h"]
    for decl in ("int heads_i8_cuda_predict(heads_i8_cuda *ctx, const float *in, float *out, int n);",
                 "int heads_i8_cuda_predict_int8(heads_i8_cuda *ctx, const int8_t *in, int8_t *out, int n);",
                 "int heads_i8_cuda_predict_int8_device(heads_i8_cuda *ctx, const int8_t *in, int8_t *out, int n,",
                 f"#define HEADS_I8_ARENA_BYTES {lib.plan.arena_bytes}", "#define HEADS_I8_OUT2_ZERO_POINT"):
        assert decl in header, decl
    q = lib.plan.quant.outputs
    assert (q[0].scale, q[0].zero_point) != (q[1].scale, q[1].zero_point)
    float_api, raw_api, varied = differing_outputs([net], [lib], images=3)
    assert (float_api, raw_api, varied) == (0, 0, 1)


def test_per_layer_reads_the_int8_arena_like_the_host():
    """int8_per_layer on an emulated reuse=False build reads every op's int8 output back from the device
    arena: the same figures as the C build (both equal the integer reference)."""
    net = random_nets(1, 530)[0]
    cal = calibrated(net, 1)
    host = int8_per_layer(net, codegen.build(net, calibration=cal, reuse=False, write=False))
    cuda = int8_per_layer(net, codegen.build(net, target="cuda", emulate=True, calibration=cal, reuse=False,
                                             write=False))
    assert cuda.passed and cuda.per_layer and cuda.per_layer == host.per_layer, cuda.report()


def test_predict_int8_needs_an_int8_build():
    """predict_int8 is for int8 builds: a float32 CUDA build says so."""
    net = load(str(EXAMPLES / "lenet.py"))
    lib = codegen.build(net, target="cuda", emulate=True, write=False)
    with pytest.raises(codegen.CodegenError, match="float32 build"):
        lib.predict_int8(np.zeros((1, *net.input_shape), np.int8))


# ------------------------------------------------------------------ nvcc and the GPU

def test_nvcc_compiles_int8_kernels_without_warnings_or_spills():
    """16 random networks and 8 tile-crossing chains, int8, in one nvcc run for sm_80 + sm_90 + PTX."""
    require_tool("nvcc")
    rng = np.random.default_rng(940)
    nets = random_nets(16, 540) + [tile_stack(rng, f"i8nv{i}") for i in range(8)]
    cals = [calibrated(net, k) for k, net in enumerate(nets)]
    libs = codegen.build_many(nets, target="cuda", calibrations=cals)
    no_warnings(libs[0].build.log)
    for net, lib in zip(nets, libs):
        kernels = {k.kernel for k in lib.kernels if k.arch == "sm_90"}
        assert len(kernels) == len(lib.plan.ops) + 2, (net.name, kernels)     # + quantize and dequantize
        assert f"{lib.prefix}_quantize" in kernels and f"{lib.prefix}_dequantize" in kernels
        assert not lib.spill_warnings(), lib.spill_warnings()
        assert all(k.registers <= 128 for k in lib.kernels), lib.build_report()


def test_without_a_gpu_an_int8_build_says_why_and_verifies_emulated():
    require_tool("nvcc")
    net = load(str(EXAMPLES / "lenet.py"))
    lib = codegen.build(net, target="cuda", calibration=calibrated(net, 0), write=False)
    count, reason = lib.device_count()
    if count > 0:
        pytest.skip("this machine has a GPU: the no-GPU error path cannot be shown")
    with pytest.raises(CudaUnavailable, match="no usable CUDA device"):
        lib.predict(np.zeros((1, *net.input_shape), np.float32))
    emulated, is_emulated = lib.verifiable(lambda line: None)
    result = verify_int8(net, emulated)
    assert is_emulated and emulated.int8 and result.passed and result.outputs > 0, result.report()


@pytest.mark.gpu
def test_gpu_int8_kernels_equal_the_integer_reference():
    """On a GPU: lenet and 40 random networks, int8, built for this GPU: 0 differing outputs through
    both APIs (nvcc must not contract the quantization's multiply and add: __fmul_rn)."""
    require_tool("nvcc")
    lenet = load(str(EXAMPLES / "lenet.py"))
    gpu_or_skip(codegen.build(lenet, target="cuda", write=False))     # before the long build
    rng = np.random.default_rng(960)
    nets = [lenet] + random_nets(30, 560) + [tile_stack(rng, f"i8gpu{i}") for i in range(10)]
    cals = [calibrated(net, k) for k, net in enumerate(nets)]
    libs = codegen.build_many(nets, target="cuda", arch=["native"], calibrations=cals)
    no_warnings(libs[0].build.log)
    float_api, raw_api, _ = differing_outputs(nets, libs, images=8)
    assert (float_api, raw_api) == (0, 0), (float_api, raw_api)
    per_op, total = libs[0].time_ops(batch=8, reps=5)
    assert total > 0 and all(ms > 0 for _, ms in per_op)
