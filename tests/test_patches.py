"""Patch-based execution (issue 17 item 3): the first ops of a network run patch by patch
(``patches`` op, codegen/ops/patches.py), their tensors never stored whole, the halos recomputed.

Random chains (those of test_stream: a random input normalization, 1x1 expansions and projections,
depthwise, ordinary and grouped convolutions with random strides, dilations and padding, batch
norms, clamp activations, residual additions) are built with their longest patchable prefix
run over grids of 1 to 4 patches a side, and checked against the reference with the workspace
poisoned with NaN (and every dead buffer poisoned between ops), on the host and on the Cortex-M4
under QEMU. The MobileNetV2 example's arena is checked as a figure with and without patches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import codegen
import codegen.plan
from codegen.cli import main as cli_main
from codegen.errors import UnsupportedError
from codegen.netfile import load
from codegen.ops.patches import _need, _splits, prefixes
from codegen.plan import make_plan
from codegen.quant.calibrate import calibrate
from checks import check_against_reference
from conftest import require_tool
from test_peak_ram import _check_memory_table
from test_stream import stream_net

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _patch_ops(plan) -> list:
    return [op for op in plan.ops if op.kind == "patches"]


@pytest.fixture
def longest_prefix(monkeypatch):
    """Plans run their longest patchable prefix patch by patch (not the one with the smallest arena, or
    none where the arena does not drop)."""
    candidates = codegen.plan._patch_candidates
    monkeypatch.setattr(codegen.plan, "_patch_candidates", lambda *args: candidates(*args)[-1:])


def _patchable(count, seed):
    rng = np.random.default_rng(seed)
    nets = []
    while len(nets) < count:
        net = stream_net(rng, f"pt_{seed}_{len(nets)}")
        if codegen.plan._patch_candidates(net, True, 1)[-1] is not None:
            nets.append(net)
    return nets


@pytest.mark.parametrize("grid", [1, 2, 3, 4])
def test_patched_chains_match_the_reference(grid, longest_prefix):
    """12 random chains per grid, their longest prefix patched, workspace and dead buffers poisoned."""
    nets = _patchable(12, 300 + grid)
    libs = codegen.build_many(nets, poison_dead=True, patches=grid)     # (warnings: the Cortex-M4 test)
    ops = [op for lib in libs for op in _patch_ops(lib.plan)]
    assert len(ops) == len(nets)
    steps = [s for op in ops for s in op.attrs.steps]
    assert {s.kind for s in steps} >= {"conv", "add"}
    assert any(s.kind == "conv" and s.attrs.depthwise for s in steps)
    assert any(s.kind == "conv" and max(s.attrs.sh, s.attrs.sw) == 2 for s in steps)
    assert any(s.kind == "conv" and s.attrs.padded for s in steps)
    if grid > 1:       # halos recomputed somewhere: extra multiply-adds reported
        assert any(op.attrs.extra_macs > 0 for op in ops)
        assert all(len(op.attrs.regions) > 1 for op in ops if min(op.attrs.steps[-1].shape[:2]) > 1)
    else:              # one patch: nothing recomputed (fewer where a stride skips the last rows)
        assert all(op.attrs.extra_macs <= 0 for op in ops) and any(op.attrs.extra_macs == 0 for op in ops)
    check_against_reference(nets, libs)
    for lib in libs:
        _check_memory_table(lib.plan)


def test_patched_chains_compile_without_warnings(longest_prefix):
    """The host build with -Wall -Wextra -Werror (the poisoned build above defines a poison helper some
    of these one-op networks never call, which -Wextra would flag)."""
    nets = _patchable(8, 310)
    libs = codegen.build_many(nets, extra_flags=["-Wall", "-Wextra", "-Werror"], patches=3)
    assert all(_patch_ops(lib.plan) for lib in libs)
    check_against_reference(nets, libs)


def test_patched_chains_on_cortex_m4(longest_prefix):
    require_tool("qemu-system-arm")
    for net in _patchable(2, 320):
        dev = codegen.build(net, device="cortex-m4", write=False, patches=2)
        assert dev.checks_passed, dev.checks_report()
        assert _patch_ops(dev.plan)
        check_against_reference([net], [dev])


def test_regions_cover_what_the_next_op_reads():
    """A 3x3 stride-2 convolution with padding 1: output rows 2..3 read input rows 3..7, clipped."""
    net = codegen.Network([codegen.imageInputLayer([9, 9, 2], Normalization="none"),
                           codegen.convolution2dLayer(3, 4, Stride=2, Padding=1, Name="c1"),
                           codegen.convolution2dLayer(1, 3, Name="c2")], seed=1, name="regions")
    plan = make_plan(net, stream=True, patches=2)
    (op,) = _patch_ops(plan)
    c1 = op.attrs.steps[0]
    assert _need(c1, (2, 0, 2, 5), 0, (9, 9, 2)) == (3, 0, 5, 9)
    assert _need(c1, (0, 0, 1, 1), 0, (9, 9, 2)) == (0, 0, 2, 2)
    assert _splits(5, 2) == [(0, 2), (2, 3)]
    assert op.attrs.grid == (2, 2) and len(op.attrs.regions) == 4


def test_mobilenetv2_arena_is_lower_with_patches():
    """The issue's figure: the float arena <= 90,000 B without patches (row streaming), lower with
    patches, the extra multiply-adds reported in the plan."""
    net = load(EXAMPLES / "mobilenetv2.py")
    plain = make_plan(net, stream=True, conv_pool=True, smallest_arena=True)
    patched = make_plan(net, stream=True, conv_pool=True, smallest_arena=True, patches=3)
    assert not _patch_ops(plain) and plain.extra_macs == 0
    assert plain.arena_bytes <= 90_000
    assert patched.arena_bytes < plain.arena_bytes
    assert patched.arena_bytes <= 56_000, patched.arena_bytes
    (op,) = _patch_ops(patched)
    assert op.layers[0] == "input" and 0 < patched.extra_macs == op.attrs.extra_macs < patched.macs // 10
    assert f"extra MACs {patched.extra_macs:,}" in patched.describe()
    assert "extra MACs" not in plain.describe()
    _check_memory_table(patched)


def test_no_patches_where_the_arena_does_not_drop():
    """2x2 patches: the expanded tensor of block 2 in a patch is larger than what streaming needs."""
    net = load(EXAMPLES / "mobilenetv2.py")
    plan = make_plan(net, stream=True, conv_pool=True, smallest_arena=True, patches=2)
    assert not _patch_ops(plan) and plan.arena_bytes == 82_944


def test_cli_patches_prints_the_extra_macs(tmp_path):
    result = CliRunner().invoke(cli_main, ["build", str(EXAMPLES / "mobilenetv2.py"), "--patches", "3",
                                           "--smallest-arena", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "patch-based execution: op 0: input .. block2_project_bn: 3x3 patches" in result.output
    assert "arena 55,296 bytes" in result.output and "verification: PASS" in result.output


def test_patches_only_where_they_can_run():
    net = load(EXAMPLES / "mobilenetv2.py")
    with pytest.raises(UnsupportedError, match="float C plans"):
        make_plan(net, stream=False, patches=2)                     # CUDA plans
    with pytest.raises(UnsupportedError, match="float C plans"):
        make_plan(net, stream=True, patches=2, calibration=calibrate(net, np.random.default_rng(0).uniform(
            0, 255, (2, *net.input_shape))))
    ops, _, outs = codegen.plan._fused_ops(net, True)
    n = prefixes(ops, outs)
    assert n and 8 in n and 9 not in n          # block2's output is read by block3's addition too
