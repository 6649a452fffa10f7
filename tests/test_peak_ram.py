"""Peak RAM (issue 17): a convolution and the pooling reading it computed as one op (``convpool``),
whose convolution output is never stored.

Random networks with conv + pool patterns (random filters, strides, padding, dilation, groups,
pool sizes, strides and padding, max and average, with and without activations before and after
the pooling): float against the reference with the workspace poisoned, bit for bit against the
same network built without the fusion, int8 bit for bit against the integer reference (and the
fused plan's integer reference against the unfused plan's), on the host and on the Cortex-M4
under QEMU. Every test asserts that the fusion happened, so none passes vacuously.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import codegen
from codegen import (LayerError, averagePooling2dLayer, batchNormalizationLayer, clippedReluLayer, convolution2dLayer,
                     fullyConnectedLayer, groupedConvolution2dLayer, imageInputLayer, leakyReluLayer, maxPooling2dLayer,
                     reluLayer, softmaxLayer, tanhLayer)
from codegen.cli import main as cli_main
from codegen.emit.dialect import DIALECTS
from codegen.memory import op_memory, peak
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.quant.calibrate import calibrate
from codegen.quant.reference import predict_int8
from checks import check_against_reference
from conftest import require_tool

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _pair(rng, lo, hi):
    return int(rng.integers(lo, hi + 1)) if rng.random() < 0.5 else [int(v) for v in rng.integers(lo, hi + 1, 2)]


def _conv(rng, c):
    """A random convolution (plain or grouped, never depthwise: those stay unfused) for c channels."""
    paddings = ["same", 0, 1, [0, 1, 2, 1]]
    kw = dict(Stride=_pair(rng, 1, 2), Padding=paddings[int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1]))],
              DilationFactor=_pair(rng, 1, 2) if rng.random() < 0.3 else 1)
    groups = [g for g in range(2, c + 1) if c % g == 0]
    if groups and rng.random() < 0.3:
        g = int(rng.choice(groups))
        fg = int(rng.integers(2, 5)) if c // g == 1 else int(rng.integers(1, 5))
        return groupedConvolution2dLayer(_pair(rng, 1, 3), fg, g, Bias=rng.normal(0, 0.3, (1, 1, fg, g)), **kw)
    f = int(rng.choice([1, 3, 5, 8, 13, 16, 21, 40]))
    return convolution2dLayer(_pair(rng, 1, 5), f, Bias=rng.normal(0, 0.3, (1, 1, f)), **kw)


def _pool(rng):
    size = _pair(rng, 1, 3)
    pad = str(rng.choice(["same", "zero", "manual"]))
    if pad == "manual":
        ph, pw = (size, size) if isinstance(size, int) else size
        pad = [int(rng.integers(0, ph)), int(rng.integers(0, ph)), int(rng.integers(0, pw)), int(rng.integers(0, pw))]
    pad = 0 if pad == "zero" else pad
    if rng.random() < 0.5:
        return maxPooling2dLayer(size, Stride=_pair(rng, 1, 3), Padding=pad)
    return averagePooling2dLayer(size, Stride=_pair(rng, 1, 3), Padding=pad,
                                 PaddingValue="mean" if rng.random() < 0.5 else 0)


def _act(rng, clamps_only=False, int8=False):
    """A random activation or None; ``clamps_only``: those a float epilogue fuses (int8 fuses only the
    clamps: no leaky ReLU)."""
    kinds = ["none", "relu", "clipped"] + ([] if int8 else ["leaky"]) + ([] if clamps_only else ["tanh"])
    kind = str(rng.choice(kinds))
    return {"none": None, "relu": reluLayer(), "leaky": leakyReluLayer(0.1), "clipped": clippedReluLayer(1.5),
            "tanh": tanhLayer()}[kind]


def _fits(layers) -> bool:
    try:
        codegen.Network(layers, seed=0, name="probe")
    except LayerError:
        return False
    return True


def conv_pool_net(rng, name: str, blocks: int = 1, int8: bool = False) -> codegen.Network:
    """An input, ``blocks`` x (conv [+ batch norm] [+ clamp activation] + pool [+ activation]), then
    maybe a fully connected layer and softmax."""
    h, w, c = int(rng.integers(4, 19)), int(rng.integers(4, 19)), int(rng.choice([1, 2, 3, 4, 6]))
    layers = [imageInputLayer([h, w, c], Normalization="none")]
    for _ in range(blocks):
        for _attempt in range(50):
            block = [_conv(rng, c)]
            if rng.random() < 0.3:
                block.append(batchNormalizationLayer())
            act = _act(rng, clamps_only=True, int8=int8)
            block += [act] if act is not None else []
            block.append(_pool(rng))
            after = _act(rng, clamps_only=int8, int8=int8)
            block += [after] if after is not None else []
            if _fits(layers + block):
                layers += block
                probe = codegen.Network(layers, seed=0, name="probe")
                c = probe.shapes[probe.layers[-1].Name][2]
                break
    if rng.random() < 0.4:
        layers.append(fullyConnectedLayer(7))
        if rng.random() < 0.5:
            layers.append(softmaxLayer())
    return codegen.Network(layers, seed=int(rng.integers(1 << 30)), name=name)


def _random_nets(count: int, seed: int, int8: bool = False) -> list[codegen.Network]:
    rng = np.random.default_rng(seed)
    return [conv_pool_net(rng, f"cp{'8' if int8 else ''}_{seed}_{i}", blocks=1 + i % 2, int8=int8)
            for i in range(count)]


def _fused_ops(plan) -> int:
    return sum(op.kind == "convpool" for op in plan.ops)


def _calibrated(net, seed):
    rng = np.random.default_rng(seed)
    return calibrate(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32))


def _unfused(monkeypatch):
    """Builds in this test take the C dialect without the conv + pool fusion."""
    monkeypatch.setattr(codegen.pipeline, "DIALECTS",
                        {**DIALECTS, "c": dataclasses.replace(DIALECTS["c"], conv_pool=False)})


NO_CONTRACTION = ["-O3", "-march=native", "-ffp-contract=off"]   # two programs round alike only without it


@pytest.mark.parametrize("batch", range(3))
def test_fused_conv_pool_matches_reference_and_the_unfused_build(batch, monkeypatch):
    """45 random networks (1-2 conv + pool blocks), workspace poisoned with NaN: against the reference;
    and, compiled without floating-point contraction, bit for bit against the same networks built
    without the fusion."""
    nets = _random_nets(15, 40 + batch)
    libs = codegen.build_many(nets, extra_flags=["-Werror"])
    assert all(_fused_ops(lib.plan) >= 1 for lib in libs), [n.name for n, lib in zip(nets, libs)
                                                            if not _fused_ops(lib.plan)]
    check_against_reference(nets, libs)
    exact = codegen.build_many(nets, opt_flags=NO_CONTRACTION)
    _unfused(monkeypatch)
    plain = codegen.build_many(nets, opt_flags=NO_CONTRACTION)
    assert not any(_fused_ops(lib.plan) for lib in plain)
    for net, fused, unfused in zip(nets, exact, plain):
        x = np.random.default_rng(3).standard_normal((2, *net.input_shape)).astype(np.float32)
        assert np.array_equal(fused.predict(x), unfused.predict(x)), net.name
        assert fused.plan.arena_bytes <= unfused.plan.arena_bytes, net.name


def test_fused_conv_pool_tiled_windows(monkeypatch):
    """Pools whose windows tile the convolution output (kernel = stride, no padding; each convolution
    pixel goes to one pooled value), with columns and rows no window reads: against the reference
    (workspace poisoned) and bit for bit against the separate ops."""
    def net(i, pool):
        return codegen.Network([imageInputLayer([11, 13, 3], Normalization="none"),
                                convolution2dLayer(3, 21, Padding="same"), reluLayer(), pool,
                                convolution2dLayer([2, 3], 5), averagePooling2dLayer(2, Stride=2)],
                               seed=i, name=f"cp_tiled_{i}")
    nets = [net(0, maxPooling2dLayer(2, Stride=2)), net(1, averagePooling2dLayer([3, 2], Stride=[3, 2])),
            net(2, maxPooling2dLayer([1, 3], Stride=[1, 3]))]
    libs = codegen.build_many(nets, extra_flags=["-Werror"])
    assert all(_fused_ops(lib.plan) == 2 for lib in libs)
    assert all("tile the convolution output" in lib.files[f"{lib.prefix}.c"] for lib in libs)
    check_against_reference(nets, libs)
    exact = codegen.build_many(nets, opt_flags=NO_CONTRACTION)
    _unfused(monkeypatch)
    plain = codegen.build_many(nets, opt_flags=NO_CONTRACTION)
    for n, fused, unfused in zip(nets, exact, plain):
        x = np.random.default_rng(4).standard_normal((2, *n.input_shape)).astype(np.float32)
        assert np.array_equal(fused.predict(x), unfused.predict(x)), n.name


def test_fused_conv_pool_portable_and_openmp(monkeypatch):
    """The portable C tier, and OpenMP bands of pooled rows on convolutions large enough to share."""
    nets = _random_nets(6, 50)
    check_against_reference(nets, codegen.build_many(nets, opt_flags=["-O2"], extra_flags=["-Werror",
                                                                                            "-DCODEGEN_PORTABLE"]))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    big = codegen.Network([imageInputLayer([40, 36, 8], Normalization="none"),
                           convolution2dLayer(3, 64, Padding="same"), reluLayer(),
                           maxPooling2dLayer(3, Stride=2, Padding=1), convolution2dLayer(3, 40, Padding=1),
                           averagePooling2dLayer([3, 2], Stride=[2, 1], Padding=[1, 0, 1, 0]), reluLayer()],
                          seed=1, name="cp_omp")
    lib = codegen.build(big, write=False, openmp=True, extra_flags=["-Werror"])
    fused = [op for op in lib.plan.ops if op.kind == "convpool"]
    assert len(fused) == 2 and any("#pragma omp parallel for" in t for t in lib.files.values())
    check_against_reference([big], [lib])


@pytest.mark.parametrize("batch", range(2))
def test_int8_fused_conv_pool_is_bit_exact(batch):
    """30 random networks in int8: the compiled code equals the integer reference bit for bit, and the
    fused plan's integer reference equals the unfused plan's (the fusion keeps the arithmetic)."""
    nets = _random_nets(15, 60 + batch, int8=True)
    cals = [_calibrated(net, k) for k, net in enumerate(nets)]
    libs = codegen.build_many(nets, calibrations=cals, extra_flags=["-Werror"])
    assert all(_fused_ops(lib.plan) >= 1 for lib in libs)
    for k, (net, lib) in enumerate(zip(nets, libs)):
        x = np.random.default_rng(k).standard_normal((6, *net.input_shape)).astype(np.float32) * 1.5
        want = predict_int8(lib.plan, x)[0]
        assert np.array_equal(lib.predict(x), want), net.name
        unfused = make_plan(net, calibration=cals[k])
        assert not _fused_ops(unfused)
        assert np.array_equal(predict_int8(unfused, x)[0], want), net.name


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_fused_conv_pool_on_cortex_m4(int8):
    """3 random networks on the emulated Cortex-M4 (QEMU): float against the reference, int8 bit for bit."""
    require_tool("qemu-system-arm")
    for k, net in enumerate(_random_nets(3, 70 + int8, int8=int8)):
        cal = _calibrated(net, k) if int8 else None
        dev = codegen.build(net, device="cortex-m4", calibration=cal, write=False)
        assert dev.checks_passed, dev.checks_report()
        assert _fused_ops(dev.plan) >= 1
        x = np.random.default_rng(k).standard_normal((2, *net.input_shape)).astype(np.float32)
        if int8:
            assert np.array_equal(dev.predict(x), predict_int8(dev.plan, x)[0]), net.name
        else:
            check_against_reference([net], [dev])


def test_lenet_arena_fits_the_pooled_output():
    """LeNet: the 24x24x20 convolution output feeding the 2x2 max pool is never stored."""
    net = load(EXAMPLES / "lenet.py")
    lib = codegen.build(net, write=False)
    assert [op.kind for op in lib.plan.ops] == ["convpool", "fc", "softmax"]
    assert lib.plan.arena_bytes <= 11_600, lib.plan.describe()
    assert make_plan(net).arena_bytes == 57_600          # what the separate ops need
    check_against_reference([net], [lib])


def test_cuda_keeps_the_separate_kernels():
    net = load(EXAMPLES / "lenet.py")
    plan = make_plan(net, conv_pool=DIALECTS["cuda"].conv_pool)
    assert "convpool" not in {op.kind for op in plan.ops}


def test_no_fusion_where_the_conv_output_is_needed():
    """A convolution output that is a network output, or read by another layer too, is stored."""
    lg = codegen.layerGraph([imageInputLayer([8, 8, 2], Normalization="none", Name="in"),
                             convolution2dLayer(3, 4, Padding="same", Name="c"), maxPooling2dLayer(2, Stride=2,
                                                                                                   Name="p")])
    lg = lg.addLayers(averagePooling2dLayer(2, Stride=2, Name="q"))
    lg = lg.connectLayers("c", "q")
    net = codegen.Network(lg, seed=0, name="two_readers")
    assert "convpool" not in {op.kind for op in make_plan(net, conv_pool=True).ops}
    single = codegen.Network([imageInputLayer([8, 8, 2], Normalization="none"), convolution2dLayer(3, 4),
                              maxPooling2dLayer(2)], seed=0, name="one_reader")
    assert [op.kind for op in make_plan(single, conv_pool=True).ops] == ["convpool"]


# ----------------------------------------------------------------------------- the plan explains memory

def _check_memory_table(plan):
    """Per op: the arena tensors it reads and writes are live, live buffers do not overlap, and the
    highest high-water mark is the arena size."""
    table = op_memory(plan)
    assert len(table) == len(plan.ops)
    unit = plan.element_bytes
    for m, op in zip(table, plan.ops):
        starts = {v.start for v in m.live}
        for t in [*op.inputs, op.output]:
            if t.buffer.kind == "arena":
                assert t.buffer.offset * unit in starts, (op.name, t.name)
        for a, b in zip(m.live, m.live[1:]):
            assert a.end <= b.start, (op.name, a, b)
        assert m.high >= max((v.end for v in m.live), default=0)
    top = peak(plan)
    assert top.high == plan.arena_bytes, plan.describe()
    return table, top


@pytest.mark.parametrize("example", ["lenet", "resnet_like", "resnet_graph", "mobilenetv2", "grouped"])
def test_memory_table_explains_the_arena(example):
    net = load(EXAMPLES / f"{example}.py")
    for conv_pool in (False, True):
        _check_memory_table(make_plan(net, conv_pool=conv_pool))
    _check_memory_table(make_plan(net, calibration=_calibrated(net, 0)))    # int8: staged input and outputs


def test_memory_table_names_the_peak_op():
    net = load(EXAMPLES / "lenet.py")
    table, top = _check_memory_table(make_plan(net))
    assert top.op.layers == ["maxpool_1"] and top.high == 57_600       # the conv output and the pooled one
    assert [v.names for v in table[top.index].live] == [("relu_1",), ("maxpool_1",)]
    text = make_plan(net).describe()
    assert "peak 57,600 bytes while op 1 (maxpool_1) runs" in text
    assert "relu_1 0..46079, maxpool_1 46080..57599  <- peak" in text


def test_cli_plan_prints_the_memory_table(tmp_path):
    result = CliRunner().invoke(cli_main, ["build", str(EXAMPLES / "lenet.py"), "--out", str(tmp_path / "o"),
                                           "--plan", "--no-verify"], obj={})
    assert result.exit_code == 0, result.output
    assert "arena while each op runs" in result.output
    assert "peak 11,584 bytes while op 1 (fc_1) runs" in result.output


def test_per_layer_debug_build_keeps_the_conv_output():
    """reuse=False (codegen verify --per-layer) keeps every layer's output: no conv + pool fusion."""
    net = load(EXAMPLES / "lenet.py")
    assert "convpool" not in {op.kind for op in make_plan(net, reuse=False, **DIALECTS["c"].plan_options()).ops}
