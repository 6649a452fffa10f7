"""Peak RAM (issue 17): chains of convolutions streamed by rows (``stream`` ops, codegen/ops/stream.py)
and the planner's choice of what to stream (codegen/ramplan.py).

Random chains (a random input normalization, 1x1 expansions and projections, depthwise and
ordinary convolutions with random sizes, strides, dilations and padding, grouped ones, batch
norms, clamp activations, residual additions) are built with every streamable tensor streamed and
checked against the reference with the workspace poisoned with NaN, on the host (SIMD and
portable tiers) and on the Cortex-M4 under QEMU; each test asserts that streams were made, so
none passes vacuously. The example targets of the issue are checked as figures (MobileNetV2
example, MLPerf Tiny VWW), and ``max_ram`` as a goal.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import codegen
import codegen.plan
from codegen import (LayerError, additionLayer, batchNormalizationLayer, clippedReluLayer, convolution2dLayer,
                     groupedConvolution2dLayer, imageInputLayer, layerGraph, leakyReluLayer, reluLayer)
from codegen.cli import main as cli_main
from codegen.emit.dialect import DIALECTS
from codegen.memory import op_memory, peak
from codegen.netfile import load
from codegen.ops.stream import INPLACE, inplace_candidates, links
from codegen.plan import make_plan
from codegen.quant.calibrate import calibrate
from codegen.ramplan import RamGoalError
from checks import check_against_reference
from conftest import require_tool
from netgen import input_layer
from test_peak_ram import _check_memory_table

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ZOO = Path(__file__).resolve().parent / "zoo"


def _streams(plan) -> int:
    return sum(op.kind == "stream" for op in plan.ops)


@pytest.fixture
def stream_everything(monkeypatch):
    """Plans stream every streamable tensor (not only where the arena drops)."""
    def every(plan_of, max_ram=None):
        base = plan_of(frozenset())
        return plan_of(frozenset(links(base.ops, base.outputs)))
    monkeypatch.setattr(codegen.plan, "choose_streams", every)


def _stage(rng, c):
    """A random convolution for c channels: 1x1, depthwise, ordinary or grouped."""
    kind = str(rng.choice(["pointwise", "depthwise", "depthwise", "conv", "grouped"]))
    pad = [["same", 0, 1, [1, 0, 2, 1], [0, 2, 1, 1]][int(rng.integers(0, 5))]][0]
    stride = int(rng.choice([1, 1, 2])) if rng.random() < 0.7 else [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    dil = 1 if rng.random() < 0.7 else [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    if kind == "pointwise":
        f = int(rng.choice([1, 3, 8, 16, 24, 40]))
        return convolution2dLayer(1, f, Bias=rng.normal(0, 0.3, (1, 1, f)))
    if kind == "depthwise":
        return groupedConvolution2dLayer(int(rng.choice([3, 3, 5])), 1, "channel-wise", Stride=stride, Padding=pad,
                                         DilationFactor=dil, Bias=rng.normal(0, 0.3, (1, 1, 1, c)))
    if kind == "grouped":
        g = int(rng.choice([d for d in range(1, c + 1) if c % d == 0]))
        f = int(rng.integers(1, 4))
        return groupedConvolution2dLayer(int(rng.choice([1, 3])), f, g, Stride=stride, Padding=pad,
                                         Bias=rng.normal(0, 0.3, (1, 1, f, g)))
    f = int(rng.choice([2, 5, 8, 17]))
    return convolution2dLayer([int(rng.integers(1, 4)), int(rng.integers(1, 4))], f, Stride=stride, Padding=pad,
                              DilationFactor=dil, Bias=rng.normal(0, 0.3, (1, 1, f)))


def _shape(layers):
    try:
        net = codegen.Network(list(layers), seed=0, name="probe")
    except LayerError:
        return None
    return net.shapes[net.layers[-1].Name]


def stream_net(rng, name: str) -> codegen.Network:
    """An input, then 1-2 blocks of 2-4 convolutions (each maybe + batch norm + clamp); a block whose
    output has its input's shape is usually closed by a residual addition."""
    h, w, c = int(rng.integers(3, 17)), int(rng.integers(3, 17)), int(rng.choice([1, 3, 4, 8]))
    chain = [input_layer(rng, h, w, c) if rng.random() < 0.5 else imageInputLayer([h, w, c], Normalization="none")]
    chain[0].Name = "in"               # a random normalization (per element, channel or scalar) or none
    lg, last, k = layerGraph(chain), "in", 0
    for block in range(int(rng.integers(1, 3))):
        start, start_shape, body = last, _shape(chain), []
        if rng.random() < 0.4:           # an inverted residual block: expand, depthwise 'same', project
            e, c = int(rng.choice([2, 3, 6])), start_shape[2]
            body = [convolution2dLayer(1, e * c, Bias=rng.normal(0, 0.3, (1, 1, e * c))), clippedReluLayer(6),
                    groupedConvolution2dLayer(3, 1, "channel-wise", Padding="same",
                                              DilationFactor=int(rng.integers(1, 3)),
                                              Bias=rng.normal(0, 0.3, (1, 1, 1, e * c))), reluLayer(),
                    convolution2dLayer(1, c, Bias=rng.normal(0, 0.3, (1, 1, c))), batchNormalizationLayer()]
        for _ in range(0 if body else int(rng.integers(2, 5))):
            for _attempt in range(30):
                stage = [_stage(rng, _shape(chain + body)[2])]
                if rng.random() < 0.3:
                    stage.append(batchNormalizationLayer())
                if rng.random() < 0.6:
                    stage.append(clippedReluLayer(6) if rng.random() < 0.5 else reluLayer())
                if _shape(chain + body + stage) is not None:
                    body += stage
                    break
        for layer in body:
            k += 1
            layer.Name = f"l{k}"
        lg = lg.addLayers(body).connectLayers(last, body[0].Name)
        chain, last = chain + body, body[-1].Name
        if _shape(chain) == start_shape and rng.random() < 0.7:
            lg = lg.addLayers([additionLayer(2, Name=f"add{block}")])
            lg = lg.connectLayers(last, f"add{block}/in1").connectLayers(start, f"add{block}/in2")
            last = f"add{block}"
    return codegen.Network(lg, seed=int(rng.integers(1 << 30)), name=name)


def _random_nets(count, seed):
    rng = np.random.default_rng(seed)
    return [stream_net(rng, f"st_{seed}_{i}") for i in range(count)]


@pytest.mark.parametrize("batch", range(3))
def test_streamed_chains_match_the_reference(batch, stream_everything):
    """45 random chains, every streamable tensor streamed, workspace poisoned with NaN."""
    nets = _random_nets(15, 80 + batch)
    libs = codegen.build_many(nets, extra_flags=["-Werror"], smallest_arena=True)
    streamed = [lib for lib in libs if _streams(lib.plan)]
    assert len(streamed) >= 10, [n.name for n, lib in zip(nets, libs) if not _streams(lib.plan)]
    assert any(op.attrs.residual for lib in libs for op in lib.plan.ops if op.kind == "stream")
    assert any(op.attrs.pre is not None for lib in libs for op in lib.plan.ops if op.kind == "stream")
    check_against_reference(nets, libs)
    for lib in streamed:
        assert peak(lib.plan).high == lib.plan.arena_bytes
        assert lib.plan.arena_bytes <= lib.plan.naive_bytes        # one buffer per op counts the windows too


def test_streamed_chains_portable_tier(stream_everything):
    nets = _random_nets(6, 90)
    libs = codegen.build_many(nets, opt_flags=["-O2"], extra_flags=["-Werror", "-DCODEGEN_PORTABLE"],
                              smallest_arena=True)
    assert sum(map(_streams, (lib.plan for lib in libs))) >= 4
    check_against_reference(nets, libs)


def test_streamed_chains_on_cortex_m4(stream_everything):
    require_tool("qemu-system-arm")
    nets = [net for net in _random_nets(6, 95) if _streams(make_plan(net, stream=True))][:3]
    assert len(nets) == 3
    for net in nets:
        dev = codegen.build(net, device="cortex-m4", write=False)
        assert dev.checks_passed, dev.checks_report()
        assert _streams(dev.plan)
        check_against_reference([net], [dev])


# ----------------------------------------------------------------------------- depthwise in place

@pytest.fixture
def inplace_everything(monkeypatch):
    """Plans compute every depthwise convolution that may overwrite its input in place (and stream nothing)."""
    def every(plan_of, max_ram=None):
        base = plan_of(frozenset())
        return plan_of(frozenset(INPLACE + n for n in inplace_candidates(base.ops, base.input, base.outputs)))
    monkeypatch.setattr(codegen.plan, "choose_streams", every)


def _inplace(plan) -> list:
    return [op for op in plan.ops if op.kind == "stream" and op.attrs.delay is not None]


@pytest.mark.parametrize("batch", range(2))
def test_inplace_depthwise_matches_the_reference(batch, inplace_everything):
    """30 random chains, every depthwise convolution that may run in place does (strides 1 and 2,
    dilations, asymmetric padding), workspace poisoned with NaN, and each buffer once dead (a smaller
    output pinned at its input's offset: only the input's rest): output over input, same results."""
    nets = _random_nets(15, 80 + batch)
    libs = codegen.build_many(nets, extra_flags=["-Werror"], smallest_arena=True, poison_dead=True)
    ops = [op for lib in libs for op in _inplace(lib.plan)]
    assert len(ops) >= 10 and all(op.inplace for op in ops)          # output over input
    for lib in libs:
        for op in _inplace(lib.plan):
            x, y = op.inputs[0].buffer, op.output.buffer
            assert y is x or (y.pin is x and y.offset == x.offset and y.size < x.size)
    assert {op.attrs.stages[0].sh for op in ops} == {1, 2} and {op.attrs.delay for op in ops} >= {0, 1}
    check_against_reference(nets, libs)


def test_inplace_depthwise_on_cortex_m4(inplace_everything):
    require_tool("qemu-system-arm")
    nets = [net for net in _random_nets(6, 82) if _inplace(make_plan(net, stream=True))][:2]
    assert len(nets) == 2
    for net in nets:
        dev = codegen.build(net, device="cortex-m4", write=False)
        assert dev.checks_passed, dev.checks_report()
        assert {op.attrs.stages[0].sh for op in _inplace(dev.plan)} == {1, 2}
        check_against_reference([net], [dev])



def test_one_pixel_edge_tiles_build_without_warnings_on_cortex_m4(inplace_everything):
    """st_81_1's in-place depthwise layers have tiles of one pixel: their edge functions used to leave
    the pixel count unused (-Wunused-parameter)."""
    require_tool("qemu-system-arm")
    net = _random_nets(6, 81)[1]
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()
    check_against_reference([net], [dev])

def _branchy(stride: int) -> codegen.Network:
    """A depthwise convolution no stream can take (its input from an activation, its output read by two
    convolutions), at the peak: in place, its input's buffer holds its output."""
    lg = layerGraph([imageInputLayer([32, 32, 16], Normalization="none", Name="in"), leakyReluLayer(0.1, Name="r0"),
                     groupedConvolution2dLayer(3, 1, "channel-wise", Stride=stride, Padding="same", Name="dw"),
                     reluLayer(Name="r")])
    for k in (1, 2):
        lg = lg.addLayers([convolution2dLayer(1, 4, Name=f"p{k}")]).connectLayers("r", f"p{k}")
    lg = lg.addLayers([additionLayer(2, Name="out")]).connectLayers("p1", "out/in1").connectLayers("p2", "out/in2")
    return codegen.Network(lg, seed=stride, name=f"dw_inplace_{stride}")


def test_planner_runs_depthwise_in_place_where_the_peak_drops():
    nets = [_branchy(1), _branchy(2)]
    libs = codegen.build_many(nets, extra_flags=["-Werror"], smallest_arena=True)
    for net, lib, (before, after) in zip(nets, libs, [(131_072, 98_304), (81_920, 72_704)]):
        assert make_plan(net, conv_pool=True).arena_bytes == before
        assert lib.plan.arena_bytes == after and len(_inplace(lib.plan)) == 1, lib.plan.describe()
        assert "Depthwise convolution in place" in lib.files[f"{lib.prefix}.c"]
        _check_memory_table(lib.plan)       # the output inside its input: one range in the table
    check_against_reference(nets, libs)
    assert not _inplace(make_plan(load(EXAMPLES / "lenet.py"), **DIALECTS["c"].plan_options()))


# ----------------------------------------------------------------------------- the figures

def _vww() -> codegen.Network:
    """MLPerf Tiny visual wake words (MobileNetV1-0.25, 96x96x3) from the zoo, through ONNX."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ZOO))
    from models import build
    model, shape = build("mlperf_mobilenet_v1_025")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, *shape),), buf, dynamo=False, input_names=["x"])
    return codegen.import_onnx(buf.getvalue(), name="vww")


def test_mobilenetv2_and_vww_arenas():
    """MobileNetV2 example <= 90,000 bytes (276,480 with every tensor stored), VWW <= 80,000 (221,184);
    both against the reference with the workspace poisoned."""
    nets = [load(EXAMPLES / "mobilenetv2.py"), _vww()]
    libs = codegen.build_many(nets, extra_flags=["-Werror"], smallest_arena=True)
    for net, lib, limit, stored in zip(nets, libs, (90_000, 80_000), (276_480, 221_184)):
        assert make_plan(net).arena_bytes == stored
        assert lib.plan.arena_bytes <= limit, lib.plan.describe()
        assert _streams(lib.plan) >= 1
    assert any(op.attrs.residual for op in libs[0].plan.ops if op.kind == "stream")
    check_against_reference(nets, libs)


def test_streams_only_where_the_arena_drops():
    """The planner streams nothing in networks where streaming would not lower the arena (LeNet), and
    CUDA and int8 plans never stream."""
    lenet = load(EXAMPLES / "lenet.py")
    assert not _streams(make_plan(lenet, **DIALECTS["c"].plan_options()))
    net = load(EXAMPLES / "mobilenetv2.py")
    assert not _streams(make_plan(net, **DIALECTS["cuda"].plan_options()))
    cal = calibrate(net, np.random.default_rng(0).standard_normal((4, *net.input_shape)).astype(np.float32))
    assert not _streams(make_plan(net, calibration=cal, **DIALECTS["c"].plan_options()))
    streamed = make_plan(net, **DIALECTS["c"].plan_options())
    for op in streamed.ops:
        if op.kind == "stream":
            inner = sum(g.oh * g.ow * g.oc for g in op.attrs.stages[:-1])     # what is not stored
            assert op.scratch.buffer.size < inner / 2, op.describe()
    table = op_memory(streamed)
    assert any(v.names[0].endswith("_rows") for m in table for v in m.live)      # the windows are in the table


def test_host_streams_only_for_a_goal(tmp_path):
    """Streaming saves RAM and costs time on the host (bench/results/peak_ram.md): host builds stream
    only to meet --max-ram (or with smallest_arena=True / --smallest-arena); device builds stream to the
    smallest arena by default."""
    from codegen.targets import make_target
    assert all(make_target("c", device=d).smallest_arena for d in ("cortex-m4", "cortex-m55", "aarch64"))
    assert not make_target("c").smallest_arena and not make_target("c", device="host").smallest_arena
    net = load(EXAMPLES / "conv_options.py")
    host = codegen.build(net, write=False)
    small = codegen.build(net, write=False, smallest_arena=True)
    assert not _streams(host.plan) and _streams(small.plan)
    assert small.plan.arena_bytes == make_plan(net, **DIALECTS["c"].plan_options()).arena_bytes < host.plan.arena_bytes
    assert "_row0(" in small.files["conv_options.c"] and "_row0(" not in host.files["conv_options.c"]
    out = CliRunner().invoke(cli_main, ["build", str(EXAMPLES / "conv_options.py"), "--out", str(tmp_path / "a"),
                                        "--no-verify", "--smallest-arena"], obj={})
    assert out.exit_code == 0, out.output
    assert f"arena {small.plan.arena_bytes:,} bytes" in out.output


# ----------------------------------------------------------------------------- --max-ram as a goal

def test_max_ram_streams_only_what_it_needs():
    net = load(EXAMPLES / "mobilenetv2.py")
    smallest = make_plan(net, **DIALECTS["c"].plan_options())
    goal = make_plan(net, max_ram=128 * 1024, **DIALECTS["c"].plan_options())
    assert smallest.arena_bytes < goal.arena_bytes <= 128 * 1024 < make_plan(net).arena_bytes
    assert 1 <= _streams(goal) < _streams(smallest)
    # 64K: streaming alone reaches 82,944 bytes; the first ops run by patches then (extra MACs)
    patched = make_plan(net, max_ram=64 * 1024, **DIALECTS["c"].plan_options())
    assert patched.arena_bytes <= 64 * 1024 < smallest.arena_bytes and patched.extra_macs > 0
    assert any(op.kind == "patches" for op in patched.ops)
    with pytest.raises(RamGoalError, match=r"needs an arena of 51,072 bytes, over the RAM goal of 40,960 bytes .*"
                                           r"stream or run by patches: op 0 \(input\+stem_conv\+.*\) needs 51,072 bytes "
                                           r"\(live: input_patch"):
        make_plan(net, max_ram=40 * 1024, **DIALECTS["c"].plan_options())
    with pytest.raises(RamGoalError):           # CUDA plans do not stream: the stored arena is over the goal
        make_plan(net, max_ram=128 * 1024, **DIALECTS["cuda"].plan_options())


def test_cli_max_ram_goal(tmp_path):
    """mobilenetv2 fits 128K of RAM only with streaming: the build succeeds and says what it streamed;
    70K only with its first ops run by patches: it says so and their extra MACs; 40K cannot be
    reached: exit 2, one line naming the op and its bytes."""
    ok = CliRunner().invoke(cli_main, ["build", str(EXAMPLES / "mobilenetv2.py"), "--out", str(tmp_path / "a"),
                                       "--max-ram", "128K", "--no-verify"], obj={})
    assert ok.exit_code == 0, ok.output
    assert "RAM goal 131,072 bytes (--max-ram): arena 129,024 bytes; streamed by rows (2 ops, 0 extra MACs)" \
        in ok.output
    assert "op 5: block2_expand .. block2_dw_relu6: 2 convolutions streamed by rows" in ok.output
    assert "budget: RAM" in ok.output
    patched = CliRunner().invoke(cli_main, ["build", str(EXAMPLES / "mobilenetv2.py"), "--out", str(tmp_path / "c"),
                                            "--max-ram", "70K"], obj={})
    assert patched.exit_code == 0, patched.output
    assert "the first ops by patches (+333,568 MACs, above)" in patched.output
    assert "patch-based execution: op 0: input .. block2_project_bn: 3x3 patches over 8 ops" in patched.output
    assert "verification: PASS" in patched.output
    bad = CliRunner().invoke(cli_main, ["build", str(EXAMPLES / "mobilenetv2.py"), "--out", str(tmp_path / "b"),
                                        "--max-ram", "40K"], obj={})
    assert bad.exit_code == 2
    assert "op 0 (input+stem_conv+" in bad.stderr and "needs 51,072 bytes" in bad.stderr
