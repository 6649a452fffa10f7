"""The planner's two jobs (codegen/plan.py), checked on plans alone (no compiler):

- fusion: batch normalization folded into the convolution or fully connected layer before it,
  clamp activations (the ReLU family) fused into their producer's epilogue, and what must not fuse;
- placement: buffers reused only after their last reader (the liveness oracle of
  tests/planchecks.py), elementwise ops in place, concatenations written as channel slices by
  their producers, copy ops where they cannot be, and the arena's size.

The generated code that runs these plans is checked in the backend tests (test_c_backend.py,
test_graph.py's poisoned random DAGs, test_cuda_emulation.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen.netfile import load
from codegen.plan import make_plan
from planchecks import check_no_live_buffer_overwritten

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ----------------------------------------------------------------------------- fusion

def test_fusions_in_the_plan():
    plan = make_plan(load(EXAMPLES / "resnet_like.py"))
    kinds = [op.kind for op in plan.ops]
    assert "scale_shift" not in kinds and "act" not in kinds       # all folded or fused
    assert plan.ops[1].layers == ["conv_1", "batchnorm_1", "relu_1"]


# ----------------------------------------------------------------------------- placement

@pytest.mark.parametrize("example", ["resnet_graph", "mobilenetv2", "resnet_like", "conv_options"])
def test_example_plans_never_overwrite_a_live_buffer(example):
    check_no_live_buffer_overwritten(make_plan(load(EXAMPLES / f"{example}.py")))


def test_the_liveness_checker_can_fail():
    plan = make_plan(load(EXAMPLES / "resnet_graph.py"))
    skip = next(op for op in plan.ops if op.kind == "add").inputs[1]       # the shortcut, alive across the block
    victim = next(op for op in plan.ops if op.kind == "conv" and op.output.buffer.kind == "arena"
                  and op.output.buffer is not skip.buffer and plan.ops.index(op) > plan.ops.index(
                      next(o for o in plan.ops if o.output is skip)))
    victim.output.buffer.offset = skip.buffer.offset
    with pytest.raises(AssertionError, match="overwrites live tensor"):
        check_no_live_buffer_overwritten(plan)


def test_skip_connection_keeps_its_buffer_and_addition_runs_in_place():
    plan = make_plan(load(EXAMPLES / "resnet_graph.py"))
    adds = [op for op in plan.ops if op.kind == "add"]
    assert adds and all(op.inplace for op in adds)
    assert all(op.act is not None for op in adds)                    # the ReLU after each addition is fused


def test_concatenation_is_written_in_place_by_its_producers():
    plan = make_plan(load(EXAMPLES / "mobilenetv2.py"))
    assert "concat" not in [op.kind for op in plan.ops] and "copy" not in [op.kind for op in plan.ops]
    heads = [op for op in plan.ops if op.layers[0] in ("head_a", "head_b")]
    assert [(op.output.choff, op.output.pitch) for op in heads] == [(0, 128), (96, 128)]


@pytest.mark.parametrize("example", ["resnet_graph", "mobilenetv2"])
def test_graph_examples_arena_against_naive_plans(example):
    plan = make_plan(load(EXAMPLES / f"{example}.py"))
    assert plan.arena_bytes < plan.naive_floats * 4 / 2 < plan.activations_floats * 4


def test_arena_of_resnet_like_is_smaller_than_sum_of_activations():
    plan = make_plan(load(EXAMPLES / "resnet_like.py"))
    assert plan.arena_bytes < plan.activations_floats * 4 / 2
    assert plan.arena_bytes <= plan.naive_floats * 4
