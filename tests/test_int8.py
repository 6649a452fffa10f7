"""int8 code generation: the generated C equals the integer reference bit for bit (zero differing
outputs) on random networks, calibration is deterministic, and the int8 results stay close to
the float reference (signal-to-quantization-noise ratio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import (Network, averagePooling2dLayer, batchNormalizationLayer, convolution2dLayer, eluLayer,
                     fullyConnectedLayer, imageInputLayer, maxPooling2dLayer, reluLayer, sigmoidLayer, softmaxLayer,
                     tanhLayer)
from codegen.quant.calibrate import METHODS, calibrate
from codegen.quant.reference import predict_int8, run_int8
from codegen.quant.verify import int8_per_layer, verify_int8
from conftest import require_tool
from netgen import random_chain, random_dag


def sqnr_db(y, ref) -> float:
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    noise = np.sum((y - ref) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(ref ** 2) / noise))


def calibrated(net, seed: int, count: int = 24):
    rng = np.random.default_rng(seed)
    return calibrate(net, rng.standard_normal((count, *net.input_shape)).astype(np.float32))


def random_nets(count: int, seed: int) -> list[Network]:
    rng = np.random.default_rng(seed)
    return [(random_chain if i % 2 else random_dag)(rng, f"i8_{seed}_{i}") for i in range(count)]


def test_calibration_is_deterministic_and_covers_every_layer():
    net = random_nets(1, 1)[0]
    a, b = calibrated(net, 5), calibrated(net, 5)
    assert a.params == b.params and set(a.params) == {layer.Name for layer in net.layers}
    for method in METHODS:
        cal = calibrated(net, 5) if method == "minmax" else calibrate(
            net, np.random.default_rng(5).standard_normal((24, *net.input_shape)).astype(np.float32), method)
        for lo, hi in cal.ranges.values():
            assert lo <= 0 <= hi or lo <= hi
        assert "calibration (" in cal.report()


@pytest.mark.parametrize("batch", [*range(3), *(pytest.param(b, marks=pytest.mark.long) for b in range(3, 12))])
def test_generated_c_equals_the_integer_reference_bit_for_bit(batch):
    """90 random chains and DAGs (every op kind with an int8 form), 8 images each: 0 differing outputs
    (360 with --long)."""
    nets = random_nets(30, 100 + batch)
    cals = [calibrated(net, k) for k, net in enumerate(nets)]
    libs = codegen.build_many(nets, calibrations=cals, extra_flags=["-Werror"])
    differing = 0
    for k, (net, lib) in enumerate(zip(nets, libs)):
        x = np.random.default_rng(k).standard_normal((8, *net.input_shape)).astype(np.float32) * 1.5
        got = lib.predict(x)
        want = predict_int8(lib.plan, x)
        got = got if isinstance(got, tuple) else (got,)
        differing += sum(int(np.sum(g != w)) for g, w in zip(got, want))
    assert differing == 0, f"{differing} outputs differ from the integer reference"
    kinds = {op.kind for lib in libs for op in lib.plan.ops}
    assert {"conv", "maxpool", "avgpool", "add", "fc"} <= kinds, kinds


def test_int8_is_close_to_float():
    """A small CNN calibrated on its own input distribution: SQNR of the output above 25 dB."""
    net = Network([imageInputLayer([12, 12, 3]), convolution2dLayer(3, 8, Padding="same"), batchNormalizationLayer(),
                   reluLayer(), maxPooling2dLayer(2, Stride=2), convolution2dLayer(3, 12, Padding="same"), tanhLayer(),
                   averagePooling2dLayer(2, Stride=2), fullyConnectedLayer(10), eluLayer(), fullyConnectedLayer(5),
                   sigmoidLayer(), softmaxLayer()], seed=2, name="close")
    rng = np.random.default_rng(9)
    images = rng.standard_normal((128, 12, 12, 3)).astype(np.float32)
    lib = codegen.build(net, calibration=calibrate(net, images), write=False)
    x = rng.standard_normal((16, 12, 12, 3)).astype(np.float32)
    assert sqnr_db(lib.predict(x), net.predict(x.astype(np.float64))) > 25


def test_raw_int8_api_and_reference_agree():
    net = random_nets(1, 7)[0]
    cal = calibrated(net, 3)
    lib = codegen.build(net, calibration=cal, write=False)
    x = np.random.default_rng(1).standard_normal((4, *net.input_shape)).astype(np.float32)
    q = lib.plan.quant.input.quantize(x)
    outs = run_int8(lib.plan, q)
    header = lib.files[f"{lib.prefix}.h"]
    assert f"int {lib.prefix}_predict_int8_ws(const int8_t *in, int8_t *out, void *workspace);" in header
    assert [o.shape for o in outs] == [(4, *t.shape) for t in lib.plan.outputs]


DEVICE_CASES = [pytest.param(d, n, marks=[pytest.mark.long] if n > 3 else [], id=f"{d}-{n}")
                for d in ("cortex-m4", "cortex-m55", "aarch64") for n in (3, 40)]


@pytest.mark.parametrize("device,count", DEVICE_CASES)
def test_int8_on_devices_bit_for_bit(device, count):
    """3 random networks per device (40 with --long) under QEMU: 0 outputs differ from the integer reference."""
    tool = {"cortex-m4": "qemu-system-arm", "cortex-m55": "qemu-system-arm", "aarch64": "qemu-aarch64"}[device]
    require_tool(tool)
    for k, net in enumerate(random_nets(count, 300)):
        cal = calibrated(net, k)
        dev = codegen.build(net, device=device, calibration=cal, write=False)
        assert dev.checks_passed, dev.checks_report()
        x = np.random.default_rng(k).standard_normal((3, *net.input_shape)).astype(np.float32)
        got = dev.predict(x)
        want = predict_int8(dev.plan, x)
        got = got if isinstance(got, tuple) else (got,)
        assert sum(int(np.sum(g != w)) for g, w in zip(got, want)) == 0, net.name


def test_per_layer_report_names_a_planted_bad_range():
    """A layer calibrated to a range 100x too wide loses its resolution: int8_per_layer names it
    (and the build still equals the integer reference bit for bit)."""
    net = Network([imageInputLayer([10, 10, 3]), convolution2dLayer(3, 8, Padding="same", Name="conv_a"),
                   reluLayer(), convolution2dLayer(3, 8, Padding="same", Name="conv_b"), reluLayer(Name="relu_b"),
                   convolution2dLayer(3, 6, Name="conv_c"), fullyConnectedLayer(4)], seed=4, name="planted_i8")
    rng = np.random.default_rng(4)
    images = rng.standard_normal((64, 10, 10, 3)).astype(np.float32)
    good = calibrate(net, images)
    clean = int8_per_layer(net, codegen.build(net, calibration=good, reuse=False, write=False), images=images[:1])
    assert clean.first_below is None and clean.passed, clean.report()
    lo, hi = good.ranges["relu_b"]            # the output of the fused op conv_b+relu_b
    bad = good.with_range("relu_b", 100 * lo, 100 * hi, "planted: 100x too wide")
    result = int8_per_layer(net, codegen.build(net, calibration=bad, reuse=False, write=False), images=images[:1])
    assert result.passed and result.first_below == "conv_b+relu_b", result.report()
    assert "<-- first below" in result.report()


def test_verify_int8_counts_differences_from_the_reference():
    """verify_int8 can fail: a library whose int8 outputs are off by one step is reported."""
    net = random_nets(1, 11)[0]
    lib = codegen.build(net, calibration=calibrated(net, 11), write=False)
    assert verify_int8(net, lib).passed

    class OffByOne:
        plan = lib.plan

        def predict(self, x):
            y = lib.predict(x)
            return tuple(np.clip(a.astype(np.int16) + 1, -128, 127).astype(np.int8) for a in y) \
                if isinstance(y, tuple) else np.clip(y.astype(np.int16) + 1, -128, 127).astype(np.int8)

    result = verify_int8(net, OffByOne())
    assert not result.passed and result.differing > 0 and "FAIL" in result.report()


def test_cli_int8_build_verify_and_errors(tmp_path):
    """codegen build --int8 --calibration: the calibration report, bit-exact verification and the
    per-layer SQNR table (C and, in the CPU execution mode, CUDA); a missing or misshapen calibration
    set is a one-line error."""
    from test_cli import invoke
    net_file = Path(__file__).resolve().parent.parent / "examples" / "lenet5.py"
    images = tmp_path / "cal.npz"
    np.savez(images, images=np.random.default_rng(0).standard_normal((16, 32, 32, 1)).astype(np.float32))
    r = invoke("build", net_file, "--int8", "--calibration", images, "--per-layer", "-v", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "calibration (minmax, 16 images)" in r.output and "verification: PASS (0 of 30 int8 outputs" in r.output
    assert "per layer (int8 against the float reference)" in r.output and "SQNR" in r.output
    assert "int8_t" in (tmp_path / "out" / "lenet5.h").read_text()
    r = invoke("build", net_file, "--int8")
    assert r.exit_code == 2 and "--int8 needs --calibration" in r.output
    r = invoke("verify", net_file, "--int8", "--calibration", images, "--target", "cuda", "--emulate")
    assert r.exit_code == 0 and "verification: PASS (0 of 30 int8 outputs" in r.output, r.output
    np.save(tmp_path / "wrong.npy", np.zeros((4, 28, 28, 1), np.float32))
    r = invoke("verify", net_file, "--int8", "--calibration", tmp_path / "wrong.npy")
    assert r.exit_code == 2 and "calibration images have shape (4, 28, 28, 1)" in r.output


def test_int8_flatten_dropout_global_max_pool_and_feature_input():
    """The layers without weights of their own in int8: a flatten that stays an op (its reader is
    not a fully connected layer), dropout (no op), global max pooling, a feature input."""
    from codegen import dropoutLayer, featureInputLayer, flattenLayer, globalMaxPooling2dLayer
    nets = [Network([imageInputLayer([9, 7, 3]), convolution2dLayer(3, 6), dropoutLayer(0.3),
                     globalMaxPooling2dLayer(), fullyConnectedLayer(5), softmaxLayer()], seed=1, name="i8_gmp"),
            Network([imageInputLayer([5, 4, 3]), convolution2dLayer(3, 4, Padding="same"), reluLayer(), flattenLayer(),
                     softmaxLayer()], seed=2, name="i8_flatten"),
            Network([featureInputLayer(20), fullyConnectedLayer(16), reluLayer(), dropoutLayer(),
                     fullyConnectedLayer(4)], seed=3, name="i8_features")]
    libs = codegen.build_many(nets, calibrations=[calibrated(net, k) for k, net in enumerate(nets)],
                              extra_flags=["-Werror"])
    assert "flatten" in {op.kind for op in libs[1].plan.ops}
    for k, (net, lib) in enumerate(zip(nets, libs)):
        x = np.random.default_rng(k).standard_normal((6, *net.input_shape)).astype(np.float32)
        got, want = lib.predict(x), predict_int8(lib.plan, x)[0]
        assert np.sum(got.reshape(want.shape) != want) == 0, net.name
        assert sqnr_db(got.reshape(want.shape), net.predict(x.astype(np.float64)).reshape(want.shape)) > 20, net.name
