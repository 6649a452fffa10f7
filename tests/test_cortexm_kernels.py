"""The Cortex-M float kernels (issue 16): scalar register tiles for the Cortex-M4F / M7 FPU with
fused multiply-adds (templates/c/kernels/cortexm_*.c.j2) and vector tiles for the Cortex-M55's
Helium (mve_direct.c.j2, mve_depthwise.c.j2), tiles chosen in codegen/ops/cortexm.py.

- random chains of convolutions (kernel sizes, strides, dilations, padding, channel counts that
  are and are not multiples of the tile's) built for the Cortex-M4 and M55 compile without a warning
  and, run under QEMU, match the NumPy reference; so do depthwise layers;
- the Cortex-M tier is what the device compiles (its tiles' FMAs are in the disassembly), and the
  portable C99 tier (``--isa portable``) still builds and matches: it stays the fallback;
- the tile choice keeps the accumulators, the weights and the inputs within the 32 registers;
- int8 convolutions (inputs staged two pixels at a time, SXTB16 + SMLAD on the Cortex-M DSP
  extension) and depthwise convolutions (SMLABB / SMLATT), and their plain C forms on the host
  over the same layouts, equal the integer reference bit for bit;
- so do the Helium int8 kernels on random shapes of each of their paths (1 x 1 read in place,
  staged kernel rows, the DS-CNN stem's one channel, depthwise with fixed tap offsets, shifts of 0
  in the vector requantization), a convolution computed with its pooling (M4 and M55), and int8
  additions (Helium, and the division-free C form on the host and the M4).

A device whose tools are missing skips with the reason (fails under CI: CODEGEN_CI=1).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import (Network, additionLayer, averagePooling2dLayer, batchNormalizationLayer, connectLayers,
                     convolution2dLayer, fullyConnectedLayer, globalAveragePooling2dLayer, groupedConvolution2dLayer,
                     imageInputLayer, layerGraph, maxPooling2dLayer, reluLayer)
from codegen.emit.c import c_kernels
from codegen.ops.cortexm import FP_REGISTERS, depthwise_tile, direct_tile
from codegen.ops.tiling import Rows, interior
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.quant.reference import predict_int8
from codegen.verify import random_inputs, rel_error
from test_embedded import require_device

TOL = 1e-5


def random_chain(seed: int) -> Network:
    """An input and three or four random convolutions (each with batch norm or ReLU now and then)."""
    rng = np.random.default_rng(seed)
    h, w, c = int(rng.integers(7, 15)), int(rng.integers(5, 15)), int(rng.integers(1, 21))
    layers = [imageInputLayer([h, w, c], "Name", "in")]
    for i in range(int(rng.integers(3, 5))):
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        # keep the output at least 2x2 without padding; pad some layers
        while (kh - 1) * dh + 1 > h:
            kh, dh = max(1, kh - 1), 1
        while (kw - 1) * dw + 1 > w:
            kw, dw = max(1, kw - 1), 1
        pads = [int(p) for p in rng.integers(0, 3, 4)] if rng.random() < 0.6 else [0, 0, 0, 0]
        pads = [min(p, k - 1) for p, k in zip(pads, (kh, kh, kw, kw))]
        f = int(rng.choice([1, 3, 4, 7, 8, 16, 20, 33]))
        layers.append(convolution2dLayer([kh, kw], f, "Stride", [sh, sw], "DilationFactor", [dh, dw],
                                         "Padding", pads, "Name", f"conv{i}"))
        if rng.random() < 0.3:
            layers.append(batchNormalizationLayer("Name", f"bn{i}"))
        if rng.random() < 0.7:
            layers.append(reluLayer("Name", f"relu{i}"))
        h = (h + pads[0] + pads[1] - (kh - 1) * dh - 1) // sh + 1
        w = (w + pads[2] + pads[3] - (kw - 1) * dw - 1) // sw + 1
        if h < 3 or w < 3:
            break
    return Network(layers, seed=seed, name=f"chain{seed}")


def depthwise_net(seed: int) -> Network:
    rng = np.random.default_rng(seed)
    h, w, c = int(rng.integers(6, 14)), int(rng.integers(6, 14)), int(rng.choice([3, 8, 13, 16, 24]))
    k, s = int(rng.choice([3, 5])), int(rng.integers(1, 3))
    pad = int(rng.integers(0, k // 2 + 1))
    return Network([imageInputLayer([h, w, c], "Name", "in"),
                    groupedConvolution2dLayer(k, 1, "channel-wise", "Stride", s, "Padding", pad, "Name", "dw"),
                    reluLayer("Name", "relu"),
                    convolution2dLayer(1, int(rng.choice([4, 10, 16])), "Name", "pw")], seed=seed, name=f"dw{seed}")


def check_on_m4(net: Network, cflags=(), device="cortex-m4", isa=None):
    require_device(device)
    lib = codegen.build(net, device=device, write=False, cflags=list(cflags), isa=isa)
    assert "warning" not in lib.artifacts.read("network.log"), lib.artifacts.read("network.log")   # -Wall -Wextra
    x = random_inputs(net, 2, seed=5)
    y = lib.predict(x)
    ref = net.predict(x.astype(np.float64))
    errors = [rel_error(y[i], ref[i]) for i in range(len(x))]
    assert max(errors) < TOL, (net.name, errors)
    return lib


@pytest.mark.parametrize("seed", range(12))
def test_random_convolution_chains_match_the_reference_on_cortex_m4(seed):
    check_on_m4(random_chain(seed))


@pytest.mark.parametrize("seed", range(8))
def test_random_convolution_chains_match_the_reference_on_cortex_m55(seed):
    check_on_m4(random_chain(100 + seed), device="cortex-m55")


@pytest.mark.parametrize("device", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("seed", [0, 1, 2, 4, 7, 9, 10, 11])
def test_depthwise_layers_match_the_reference(seed, device):
    check_on_m4(depthwise_net(seed), device=device)


def test_the_helium_tier_is_compiled():
    require_device("cortex-m55")
    lib = check_on_m4(random_chain(2), device="cortex-m55")
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(lib.artifacts.folder / "chain2.o")],
                         capture_output=True, text=True, check=True).stdout
    assert re.search(r"vfma\.f32\s+q\d+, q\d+, (r\d+|ip|lr)", dis)   # vector x scalar FMAs


def test_the_cortex_m_tier_is_compiled_and_the_portable_tier_still_works():
    net = random_chain(1)
    fast = check_on_m4(net)
    dis = fast.artifacts.read("network.dis")
    assert "vfma.f32" in dis and "vmul.f32" not in dis        # fused multiply-adds, scalar tiles
    portable = check_on_m4(net, isa="portable")
    assert "vfma.f32" not in portable.artifacts.read("network.dis")


@pytest.mark.parametrize("cols,kw,sw,dw,cg,vb", [(16, 3, 1, 1, 16, 16), (256, 1, 1, 1, 64, 64),
                                                 (24, 5, 1, 1, 1, 32), (5, 4, 2, 1, 1, 64), (7, 3, 2, 2, 5, 16)])
def test_tiles_fit_the_registers(cols, kw, sw, dw, cg, vb):
    lo, hi = interior(cols, cols + kw - 1, kw, sw, dw, 1)
    rows = Rows(cols, cols, lo, hi, lo, hi, cg, True)
    t = direct_tile(rows, 3, kw, sw, dw, cg, vb)
    assert vb % t.ch == 0 and cg % t.unroll == 0
    assert t.p * t.ch + t.ch + (len(t.cols) if t.window else 1) <= FP_REGISTERS
    d = depthwise_tile(rows, 3, kw, sw, dw, 64)
    assert d.p * d.ch + kw + len(d.cols) <= FP_REGISTERS


def int8_chain(seed: int) -> Network:
    """Three random convolutions (input and filter counts that are and are not multiples of 4)."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(6, 13)), int(rng.integers(5, 13))
    layers = [imageInputLayer([h, w, int(rng.choice([4, 8, 16]))], "Name", "in")]
    if seed % 2:                    # a depthwise layer first (channels in words of 4: its DSP kernel)
        layers.append(groupedConvolution2dLayer(3, 1, "channel-wise", "Stride", int(rng.integers(1, 3)),
                                                "Padding", int(rng.integers(0, 2)), "Name", "dw"))
    for i in range(3):
        k = int(rng.integers(1, 4))
        pad = int(rng.integers(0, k))
        layers.append(convolution2dLayer(k, int(rng.choice([3, 4, 8, 12])), "Stride", int(rng.integers(1, 3)),
                                         "Padding", pad, "Name", f"conv{i}"))
        if rng.random() < 0.6:
            layers.append(reluLayer("Name", f"relu{i}"))
    return Network(layers, seed=seed, name=f"i8chain{seed}")


@pytest.mark.parametrize("device", ["host", "cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("seed", range(4))
def test_int8_convolutions_are_bit_exact(device, seed):
    """The int8 convolution with the DSP extension (Cortex-M4, M55) and its plain C form (the host,
    --isa cortexm) over the same weight layout equal the integer reference bit for bit."""
    net = int8_chain(seed)
    rng = np.random.default_rng(seed)
    cal = codegen.quantize(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32))
    if device != "host":
        require_device(device)
    lib = codegen.build(net, calibration=cal, write=False, **({"isa": "cortexm"} if device == "host" else {"device": device}))
    if device != "host":
        assert "warning" not in lib.artifacts.read("network.log"), lib.artifacts.read("network.log")
    kinds = [k.kind for k, _ in filter(None, c_kernels(lib.plan, ("cortexm",)))]
    assert "int8_dsp" in kinds and ("int8_dw_dsp" in kinds) == bool(seed % 2)
    x = rng.standard_normal((2, *net.input_shape)).astype(np.float32)
    got, want = lib.predict(x), predict_int8(lib.plan, x)
    got = got if isinstance(got, tuple) else (got,)
    assert sum(int(np.sum(g != w)) for g, w in zip(got, want)) == 0


def int8_layer(seed: int) -> Network:
    """One random convolution (and ReLU now and then) on each path of the Helium int8 kernels: a 1 x 1
    over whole vectors of channels (the inputs read where they are), kernel rows of whole vectors
    (staged 16 bytes at a time), one input channel under a tall kernel with uneven padding (the
    DS-CNN stem's shape), and a depthwise convolution (4 channels a vector); odd output widths make
    pixel pairs that span two rows, odd filter counts a last filter without its pair."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    s = int(rng.integers(1, 3))
    f = int(rng.choice([2, 5, 16, 23]))
    if seed % 4 == 0:
        c, k, pads = 16 * int(rng.integers(1, 5)), [1, 1], [0, 0, 0, 0]
    elif seed % 4 == 1:
        c, k = int(rng.choice([16, 32])), [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    elif seed % 4 == 2:
        h, w = int(rng.integers(10, 20)), int(rng.integers(4, 11))
        c, k = 1, [int(rng.integers(3, 11)), int(rng.integers(2, 5))]
    else:
        c, k = 4 * int(rng.integers(1, 7)), [int(rng.choice([3, 5]))] * 2
    if seed % 4:
        pads = [int(rng.integers(0, k[0])), int(rng.integers(0, k[0])), int(rng.integers(0, k[1])), int(rng.integers(0, k[1]))]
    if seed % 4 == 3:                   # dilated now and then: the taps' fixed offsets
        d = 1 + (seed // 4) % 2
        h, w = max(h, (k[0] - 1) * d + 1), max(w, (k[1] - 1) * d + 1)
        conv = groupedConvolution2dLayer(k, 1, "channel-wise", "Stride", s, "DilationFactor", d, "Padding", pads,
                                         "Name", "conv")
    else:
        conv = convolution2dLayer(k, f, "Stride", s, "Padding", pads, "Name", "conv")
    layers = [imageInputLayer([h, w, c], "Name", "in"), conv]
    if rng.random() < 0.5:
        layers.append(reluLayer("Name", "relu"))
    return Network(layers, seed=seed, name=f"i8layer{seed}")


def check_int8_on_m55(net: Network, cal, seed: int):
    """Build for the Cortex-M55 without a warning; the Helium kernel (its 2 x 2 vector requantization)
    is what runs, and every output equals the integer reference."""
    require_device("cortex-m55")
    lib = codegen.build(net, device="cortex-m55", calibration=cal, write=False)
    assert "warning" not in lib.artifacts.read("network.log"), lib.artifacts.read("network.log")
    kernels = [k for k, _ in filter(None, c_kernels(lib.plan, ("cortexm",)))]
    assert any(k.kind in ("int8_dsp", "int8_dw_dsp") and k.right_only for k in kernels)
    assert re.search(r"vrshl\.s32\s+q\d+", lib.artifacts.read("network.dis"))
    x = np.random.default_rng(seed).standard_normal((3, *net.input_shape)).astype(np.float32)
    got, want = lib.predict(x), predict_int8(lib.plan, x)
    got = got if isinstance(got, tuple) else (got,)
    assert sum(int(np.sum(g != w)) for g, w in zip(got, want)) == 0
    return kernels


@pytest.mark.parametrize("seed", range(12))
def test_helium_int8_convolutions_on_random_shapes_are_bit_exact(seed):
    net = int8_layer(seed)
    rng = np.random.default_rng(seed)
    cal = codegen.quantize(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32))
    kernels = check_int8_on_m55(net, cal, seed)
    if seed % 4 == 0:
        assert any(k.in_place for k in kernels)         # read where they are
    assert any(k.kind == "int8_dw_dsp" for k in kernels) == (seed % 4 == 3)


@pytest.mark.parametrize("depthwise", [False, True])
def test_helium_int8_requantization_with_shifts_of_zero_is_bit_exact(depthwise):
    """Multipliers in [0.5, 1) (shift 0: VRSHL does not round there, so those lanes get no -1 for a
    negative value) beside smaller ones: the output range narrowed until some channels' shifts are 0."""
    conv = (groupedConvolution2dLayer(3, 1, "channel-wise", "Padding", 1, "Name", "conv") if depthwise else
            convolution2dLayer(3, 9, "Padding", 1, "Name", "conv"))
    net = Network([imageInputLayer([6, 7, 16], "Name", "in"), conv], seed=3, name="i8exact")
    rng = np.random.default_rng(3)
    cal = codegen.quantize(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32))
    lo, hi = cal.ranges["conv"]
    for narrow in 2.0 ** -np.arange(1, 16, 0.25):
        planted = cal.with_range("conv", lo * narrow, hi * narrow, "narrowed: multipliers near 1")
        kernels = [k for k, _ in filter(None, c_kernels(codegen.plan.make_plan(net, calibration=planted),
                                                        ("cortexm",)))]
        if any(k.some_exact for k in kernels):
            break
    else:
        pytest.fail("no output range gives shifts of 0 beside negative ones")
    check_int8_on_m55(net, planted, 3)


@pytest.mark.parametrize("device", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("seed", range(3))
def test_int8_convolution_with_its_pooling_uses_the_pair_kernel_bit_exact(device, seed):
    """A convolution computed with the pooling that reads it (one op) runs the convolution's
    microcontroller kernel two window pixels at a time: max, average (overlapping, with padding)
    and global average pooling, odd window widths; every output equals the integer reference."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(6, 12)), int(rng.integers(5, 12))
    pool = [maxPooling2dLayer(2, "Stride", 2, "Name", "pool"),
            averagePooling2dLayer(3, "Stride", 2, "Padding", 1, "Name", "pool"),
            globalAveragePooling2dLayer("Name", "pool")][seed]
    net = Network([imageInputLayer([h, w, int(rng.choice([1, 8, 16]))], "Name", "in"),
                   convolution2dLayer(int(rng.choice([1, 3])), int(rng.choice([5, 16])), "Padding", "same", "Name", "conv"),
                   reluLayer("Name", "relu"), pool], seed=seed, name=f"i8pool{seed}")
    require_device(device)
    cal = codegen.quantize(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32))
    lib = codegen.build(net, device=device, calibration=cal, write=False)
    assert "warning" not in lib.artifacts.read("network.log"), lib.artifacts.read("network.log")
    assert [k.kind for k, _ in filter(None, c_kernels(lib.plan, ("cortexm",)))] == ["int8_convpool_dsp"]
    x = rng.standard_normal((3, *net.input_shape)).astype(np.float32)
    got, want = lib.predict(x), predict_int8(lib.plan, x)
    got = got if isinstance(got, tuple) else (got,)
    assert sum(int(np.sum(g != w)) for g, w in zip(got, want)) == 0


@pytest.mark.parametrize("device", ["host", "cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("seed", range(4))
def test_int8_additions_are_bit_exact(seed, device):
    """Residual additions of two or three inputs (channels in whole vectors: the Helium kernel on the
    M55, its C form without a division elsewhere (the host: --isa cortexm); the input with the
    largest scale not rounded, the others and the output rounded; otherwise the portable loop), with
    and without a ReLU after; every output equals the integer reference."""
    rng = np.random.default_rng(seed)
    c = [4, 12, 16, 6][seed]
    n = 3 if seed == 2 else 2
    layers = [imageInputLayer([int(rng.integers(3, 9)), int(rng.integers(3, 9)), c], "Normalization", "none", "Name", "in"),
              convolution2dLayer(3, c, "Padding", "same", "Name", "c1"), reluLayer("Name", "r1"),
              convolution2dLayer(3, c, "Padding", "same", "Name", "c2"),
              convolution2dLayer(1, c, "Name", "c3"), additionLayer(n, "Name", "add")]
    if seed % 2:
        layers.append(reluLayer("Name", "out"))
    g = connectLayers(layerGraph(layers), "r1", "add/in2")
    if n == 3:
        g = connectLayers(g, "c2", "add/in3")
    net = Network(g, seed=seed, name=f"i8add{seed}")
    if device != "host":
        require_device(device)
    cal = codegen.quantize(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32))
    lib = codegen.build(net, calibration=cal, write=False, **({"isa": "cortexm"} if device == "host" else {"device": device}))
    if device != "host":
        assert "warning" not in lib.artifacts.read("network.log"), lib.artifacts.read("network.log")
    kernels = [k for k, _ in filter(None, c_kernels(lib.plan, ("cortexm",)))]
    add = [k for k in kernels if k.kind == "int8_add_mve"]
    assert len(add) == (c % 4 == 0)
    if add:
        assert 0 in add[0].rights[:n] and max(add[0].rights) > 0     # both forms of the rescaling
    x = rng.standard_normal((3, *net.input_shape)).astype(np.float32)
    got, want = lib.predict(x), predict_int8(lib.plan, x)
    got = got if isinstance(got, tuple) else (got,)
    assert sum(int(np.sum(g != w)) for g, w in zip(got, want)) == 0


def fc_net(seed: int) -> Network:
    """A small convolution, then two fully connected layers with random output counts (some whole
    multiples of a vector, some not)."""
    rng = np.random.default_rng(seed)
    h, w, c = int(rng.integers(3, 8)), int(rng.integers(3, 8)), int(rng.integers(1, 6))
    return Network([imageInputLayer([h, w, c], "Name", "in"),
                    convolution2dLayer(3, int(rng.choice([5, 8])), "Padding", "same", "Name", "conv"),
                    reluLayer("Name", "relu"),
                    fullyConnectedLayer(int(rng.choice([8, 12, 20, 33, 64, 120])), "Name", "fc1"),
                    reluLayer("Name", "relu1"),
                    fullyConnectedLayer(int(rng.choice([3, 10, 16, 24])), "Name", "fc2")], seed=seed, name=f"fc{seed}")


@pytest.mark.parametrize("device", ["cortex-m4", "cortex-m55"])
@pytest.mark.parametrize("seed", range(4))
def test_fully_connected_layers_match_the_reference(seed, device):
    check_on_m4(fc_net(seed), device=device)


def _padding(net, isas) -> list:
    """(op, kernel, extra values, extra filters per group) of each convolution and fully connected
    layer of ``net`` packed for a build holding ``isas``."""
    plan = make_plan(net)
    rows = []
    for op, chosen in zip(plan.ops, c_kernels(plan, isas)):
        if chosen is None or op.kind not in ("conv", "fc", "convpool"):
            continue
        kernel, packed = chosen
        groups = {"conv": lambda: op.attrs.groups, "convpool": lambda: op.attrs.conv.groups}.get(op.kind, lambda: 1)()
        extra = packed["w"].size + packed["b"].size - op.weights["w"].size - op.weights["b"].size
        rows.append((op, kernel, extra, (packed["b"].size - op.weights["b"].size) / groups))
    return rows


@pytest.mark.parametrize("seed", range(16))
def test_microcontroller_weights_are_padded_only_to_the_device_tile(seed):
    """A Cortex-M build packs a layer's weights for its own tiles: fully connected and depthwise
    layers unpadded, a direct convolution's filters only to a whole number of the tile's channels
    (Cortex-M4: 8 at most, so 7 more at most; Helium: 16, 15 more)."""
    net = [random_chain, fc_net, depthwise_net][seed % 3](seed)
    for isas, most in ((("cortexm",), 7), (("mve", "cortexm"), 15)):
        for op, kernel, extra, filters in _padding(net, isas):
            if kernel.kind == "direct":
                assert filters <= most, (op.name, isas, filters)
            else:
                assert extra == 0, (op.name, isas, kernel.kind, extra)


def test_lenet_weights_drop_their_padding_on_a_microcontroller():
    lenet = load(Path(__file__).resolve().parent.parent / "examples" / "lenet.py")
    host = sum(extra for _, _, extra, _ in _padding(lenet, ("avx512", "avx2", "neon", "portable")))
    assert host == 312                  # conv_1: 20 filters in a block of 32 (300 weights, 12 biases)
    for isas in (("cortexm",), ("mve", "cortexm")):
        assert sum(extra for _, _, extra, _ in _padding(lenet, isas)) == 0
