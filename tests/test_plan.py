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

import numpy as np
import pytest

from codegen import (Network, additionLayer, batchNormalizationLayer, clippedReluLayer, connectLayers,
                     convolution2dLayer, depthConcatenationLayer, fullyConnectedLayer, groupedConvolution2dLayer,
                     imageInputLayer, layerGraph, leakyReluLayer, maxPooling2dLayer, reluLayer, sigmoidLayer,
                     softmaxLayer, tanhLayer)
from codegen.netfile import load
from codegen.plan import ALIGN_BYTES, fuse, lower, make_plan
from codegen.verify import rel_error
from netgen import random_dag
from planchecks import check_every_read_was_written, check_no_live_buffer_overwritten

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALIGN = ALIGN_BYTES // 4                     # floats


def rounded(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


# ----------------------------------------------------------------------------- what planned ops compute

def conv_of(op, x):
    """What a planned ``conv`` op computes from its own weights, in float64: x is H x W x C."""
    a = op.attrs
    w = op.weights["w"].astype(np.float64)                      # [g][ky][kx][c][f]
    xp = np.pad(x, ((a.pt, a.pb), (a.pl, a.pr), (0, 0)))
    y = np.zeros((a.oh, a.ow, a.groups, a.fg))
    for ky in range(a.kh):
        for kx in range(a.kw):
            y0, x0 = ky * a.dh, kx * a.dw
            view = xp[y0:y0 + (a.oh - 1) * a.sh + 1:a.sh, x0:x0 + (a.ow - 1) * a.sw + 1:a.sw]
            y += np.einsum("hwgc,gcf->hwgf", view.reshape(a.oh, a.ow, a.groups, a.cg), w[:, ky, kx])
    return y.reshape(a.oh, a.ow, a.oc) + op.weights["b"]


def fc_of(op, x):
    """What a planned ``fc`` op computes from its own weights ([in][out], HWC order), in float64."""
    return (x.reshape(-1) @ op.weights["w"].astype(np.float64) + op.weights["b"]).reshape(1, 1, -1)


def scale_shift_of(op, x):
    return x * op.weights["scale"].astype(np.float64) + op.weights["shift"]


def random_batchnorm(rng, channels: int, name: str = "bn"):
    return batchNormalizationLayer(TrainedMean=rng.normal(0, 1, (1, 1, channels)),
                                   TrainedVariance=rng.uniform(0.2, 3, (1, 1, channels)),
                                   Scale=rng.uniform(0.5, 2, (1, 1, channels)),
                                   Offset=rng.normal(0, 1, (1, 1, channels)), Name=name)


def conv_chain(skip: bool) -> Network:
    """in -> c1 -> c2 -> c3 -> c4, or with ``skip`` in -> c1 -> c2 -> c3 -> add(c3, c1); every
    tensor 4 x 4 x 4 (64 floats)."""
    convs = [convolution2dLayer(3, 4, Padding="same", Name=f"c{k}") for k in (1, 2, 3, 4)]
    if not skip:
        return Network([imageInputLayer([4, 4, 4], Normalization="none", Name="in"), *convs], seed=1)
    lgraph = layerGraph([imageInputLayer([4, 4, 4], Normalization="none", Name="in"), *convs[:3],
                         additionLayer(2, Name="add")])
    return Network(connectLayers(lgraph, "c1", "add/in2"), seed=1)


def op_of(plan_ops, layer: str):
    """The planned op that implements ``layer``."""
    return next(op for op in plan_ops if layer in op.layers)


# ----------------------------------------------------------------------------- fusion

def test_fusions_in_the_plan():
    plan = make_plan(load(EXAMPLES / "resnet_like.py"))
    kinds = [op.kind for op in plan.ops]
    assert "scale_shift" not in kinds and "act" not in kinds       # all folded or fused
    assert plan.ops[1].layers == ["conv_1", "batchnorm_1", "relu_1"]


CONVOLUTIONS = {    # name: (layer, its output channels on a 7 x 9 x 4 input)
    "conv": (lambda: convolution2dLayer(3, 5, Padding=1, Stride=[1, 2], Name="conv"), 5),
    "grouped": (lambda: groupedConvolution2dLayer([3, 2], 3, 2, Stride=2, DilationFactor=[2, 1],
                                                  Padding=[1, 0, 2, 1], Name="conv"), 6),
    "channel-wise": (lambda: groupedConvolution2dLayer(3, 2, "channel-wise", Padding="same", Name="conv"), 8),
}


@pytest.mark.parametrize("kind", list(CONVOLUTIONS))
def test_batchnorm_folds_into_a_convolution_exactly(kind):
    """The folded convolution computes what the unfused conv + scale_shift ops compute, per output
    channel (random statistics per channel: a scale applied to the wrong channels shows)."""
    make_conv, channels = CONVOLUTIONS[kind]
    rng = np.random.default_rng(len(kind))
    net = Network([imageInputLayer([7, 9, 4], Normalization="none"), make_conv(), random_batchnorm(rng, channels),
                   maxPooling2dLayer(2, Name="pool")], seed=3)
    plan = make_plan(net)
    fused = op_of(plan.ops, "conv")
    assert fused.kind == "conv" and fused.layers == ["conv", "bn"]
    assert "scale_shift" not in [op.kind for op in plan.ops]
    ops, _, _, _ = lower(net)                                   # the unfused ops, weights as the layers give them
    conv, bn = ops[0], ops[1]
    assert (conv.kind, bn.kind) == ("conv", "scale_shift")
    x = rng.standard_normal((7, 9, 4))
    ref = net.predict(x, return_all=True)
    assert rel_error(conv_of(conv, x), ref["conv"]) < 1e-6          # the evaluator reads conv weights right
    unfused = scale_shift_of(bn, conv_of(conv, x))
    assert rel_error(unfused, ref["bn"]) < 1e-6
    assert rel_error(conv_of(fused, x), unfused) < 1e-6
    assert not np.array_equal(fused.weights["w"], conv.weights["w"])     # the weights did change


def test_batchnorm_folds_into_a_fully_connected_layer_exactly():
    rng = np.random.default_rng(8)
    net = Network([imageInputLayer([3, 4, 5], Normalization="none"), fullyConnectedLayer(6, Name="fc"),
                   random_batchnorm(rng, 6), softmaxLayer(Name="sm")], seed=4)
    plan = make_plan(net)
    fused = op_of(plan.ops, "fc")
    assert fused.kind == "fc" and fused.layers == ["fc", "bn"] and [op.kind for op in plan.ops] == ["fc", "softmax"]
    ops, _, _, _ = lower(net)
    fc, bn = ops[0], ops[1]
    x = rng.standard_normal((3, 4, 5))
    ref = net.predict(x, return_all=True)
    assert rel_error(fc_of(fc, x), ref["fc"]) < 1e-6                # the evaluator reads fc weights right
    unfused = scale_shift_of(bn, fc_of(fc, x))
    assert rel_error(unfused, ref["bn"]) < 1e-6
    assert rel_error(fc_of(fused, x), unfused) < 1e-6
    assert not np.array_equal(fused.weights["b"], fc.weights["b"])


@pytest.mark.parametrize("before", ["activation", "pooling"])
def test_batchnorm_stays_a_scale_shift_op_where_it_cannot_fold(before):
    """Batch normalization folds only into a convolution or fully connected layer that has no fused
    activation (a ReLU before the scale does not commute with it), never into a pooling."""
    rng = np.random.default_rng(2)
    middle = [reluLayer(Name="relu")] if before == "activation" else [maxPooling2dLayer(2, Name="pool")]
    net = Network([imageInputLayer([6, 6, 2], Normalization="none"), convolution2dLayer(3, 4, Name="conv"),
                   *middle, random_batchnorm(rng, 4), fullyConnectedLayer(3, Name="fc")], seed=1)
    plan = make_plan(net)
    bn = op_of(plan.ops, "bn")
    assert bn.kind == "scale_shift" and bn.layers == ["bn"]
    assert "bn" not in op_of(plan.ops, "conv").layers


def two_consumer_graph(follower, second_input: str):
    """in -> conv -> follower -> add/in1, and ``second_input`` -> add/in2."""
    lgraph = layerGraph([imageInputLayer([6, 6, 3], Normalization="none", Name="in"),
                         convolution2dLayer(3, 3, Padding="same", Name="conv"), follower, additionLayer(2, Name="add")])
    return Network(connectLayers(lgraph, second_input, "add/in2"), seed=5)


@pytest.mark.parametrize("follower", [lambda: reluLayer(Name="f"), lambda: leakyReluLayer(0.1, Name="f"),
                                      lambda: random_batchnorm(np.random.default_rng(0), 3, name="f")],
                         ids=["relu", "leaky", "batchnorm"])
def test_nothing_fuses_into_a_producer_with_two_consumers(follower):
    """The conv's output is also read by the addition, so the follower must not change it in place."""
    plan = make_plan(two_consumer_graph(follower(), "conv"))
    conv, f = op_of(plan.ops, "conv"), op_of(plan.ops, "f")
    assert conv.layers == ["conv"] and conv.act is None and f is not conv
    assert f.kind in ("act", "scale_shift")
    # the same graph with the addition's second input taken from the network input: it fuses
    plan = make_plan(two_consumer_graph(follower(), "in"))
    assert op_of(plan.ops, "f") is op_of(plan.ops, "conv")


@pytest.mark.parametrize("follower", [lambda: reluLayer(Name="f"), lambda: clippedReluLayer(2.0, Name="f"),
                                      lambda: random_batchnorm(np.random.default_rng(1), 4, name="f")],
                         ids=["relu", "clipped", "batchnorm"])
def test_fuse_leaves_the_network_output_alone(follower):
    """``fuse`` never changes what the tensor named as the network's output holds."""
    net = Network([imageInputLayer([5, 5, 2], Normalization="none"), convolution2dLayer(3, 4, Name="conv"),
                   follower()], seed=2)
    ops, _, _, _ = lower(net)
    conv = ops[0]
    kept = fuse(ops, [conv.output])
    assert [op.layers for op in kept] == [["conv"], ["f"]] and conv.act is None and kept[0].output is conv.output
    ops, _, net_outs, _ = lower(net)                             # the real output: the follower's
    fused = fuse(ops, net_outs)
    assert [op.layers for op in fused] == [["conv", "f"]] and fused[0].output is net_outs[0]


def _producer_then(producer: str, act):
    """A network where ``act`` (named 'a') follows a producer whose epilogue takes a clamp."""
    rng = np.random.default_rng(6)
    head = [imageInputLayer([6, 5, 3], Normalization="none", Name="in")]
    if producer == "conv":
        layers = [*head, convolution2dLayer(3, 4, Name="p"), act]
    elif producer == "fc":
        layers = [*head, fullyConnectedLayer(7, Name="p"), act]
    elif producer == "batchnorm":                       # after a pooling: a scale_shift op of its own
        layers = [*head, maxPooling2dLayer(2, Name="pool"), random_batchnorm(rng, 3, name="p"), act]
    elif producer == "pooling":
        layers = [*head, maxPooling2dLayer(2, Name="p"), act]
    elif producer == "normalization":
        layers = [imageInputLayer([6, 5, 3], Normalization="zerocenter", Mean=rng.normal(0, 1, (1, 1, 3)),
                                  Name="p"), act]
    else:                                               # an addition of a convolution and the input
        lgraph = layerGraph([*head, convolution2dLayer(3, 3, Padding="same", Name="c"), additionLayer(2, Name="p"),
                             act])
        return Network(connectLayers(lgraph, "in", "p/in2"), seed=7)
    return Network(layers, seed=7)


PRODUCERS = ["conv", "fc", "batchnorm", "pooling", "normalization", "addition"]


@pytest.mark.parametrize("producer", PRODUCERS)
@pytest.mark.parametrize("act", [sigmoidLayer, tanhLayer])
def test_sigmoid_and_tanh_never_fuse_into_their_producer(producer, act):
    """Only clamps fuse: a sigmoid or tanh stays an ``act`` op after every kind of producer that
    takes a ReLU into its epilogue (the control: the same network with a ReLU fuses)."""
    plan = make_plan(_producer_then(producer, act(Name="a")))
    a = op_of(plan.ops, "a")
    assert a.kind == "act" and a.layers == ["a"] and a.act.kind == act.__name__.removesuffix("Layer")
    assert all(op.act is None for op in plan.ops if op is not a)
    control = make_plan(_producer_then(producer, reluLayer(Name="a")))
    fused = op_of(control.ops, "a")
    assert fused.layers == ["p", "a"] and fused.act.kind == "relu"


@pytest.mark.parametrize("before", ["softmax", "activation"])
def test_a_clamp_does_not_fuse_into_an_op_without_an_epilogue_or_with_one_taken(before):
    """A ReLU after a softmax (no epilogue) or after a conv that already took a ReLU stays an op."""
    middle = [softmaxLayer(Name="sm")] if before == "softmax" else [reluLayer(Name="relu")]
    net = Network([imageInputLayer([4, 4, 2], Normalization="none"), convolution2dLayer(3, 5, Name="conv"),
                   *middle, reluLayer(Name="a")], seed=9)
    plan = make_plan(net)
    a = op_of(plan.ops, "a")
    assert a.kind == "act" and a.layers == ["a"]
    assert len(plan.ops) == 3 - (before == "activation")          # conv(+relu), [softmax], act


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


def test_the_liveness_checker_catches_an_op_writing_over_its_own_input():
    """An op that is not in place may not write where its input is (it reads while it writes)."""
    plan = make_plan(conv_chain(skip=False))
    check_no_live_buffer_overwritten(plan)
    c2 = op_of(plan.ops, "c2")
    assert not c2.inplace
    c2.output.buffer.offset = c2.inputs[0].buffer.offset
    with pytest.raises(AssertionError, match=r"op 1 \(conv c2\) overwrites live tensor c1"):
        check_no_live_buffer_overwritten(plan)


@pytest.mark.parametrize("example", ["resnet_graph", "mobilenetv2"])
def test_the_read_checker_can_fail(example):
    """Every read of the example plans was written; without the first op writing a slice of a
    concatenation (or the first addition), the checker says which op reads what nobody wrote."""
    plan = make_plan(load(EXAMPLES / f"{example}.py"))
    check_every_read_was_written(plan)
    victim = next(i for i, op in enumerate(plan.ops) if op.output.parent is not None or op.kind == "add")
    del plan.ops[victim]
    with pytest.raises(AssertionError, match="that no earlier op wrote"):
        check_every_read_was_written(plan)


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


def test_a_buffer_is_reused_after_its_last_reader_and_not_before():
    chain = make_plan(conv_chain(skip=False))
    c1, c3 = op_of(chain.ops, "c1").output.buffer, op_of(chain.ops, "c3").output.buffer
    assert c1 is not c3 and c3.offset == c1.offset                 # c1 died at c2: c3 takes its place
    assert chain.arena_floats == 2 * rounded(64)
    skip = make_plan(conv_chain(skip=True))                        # c1 is read again by the addition
    check_no_live_buffer_overwritten(skip)
    offsets = {op_of(skip.ops, name).output.buffer.offset for name in ("c1", "c2", "c3")}
    assert len(offsets) == 3 and skip.arena_floats == 3 * rounded(64)


def test_elementwise_ops_run_in_place_only_over_an_input_that_dies_there():
    """conv -> sigmoid, and conv -> add/in2: the sigmoid may not write over the conv's output (the
    addition reads it later); the addition may write over either input (both die at it)."""
    lgraph = layerGraph([imageInputLayer([5, 5, 2], Normalization="none", Name="in"),
                         convolution2dLayer(3, 3, Padding="same", Name="conv"), sigmoidLayer(Name="sig"),
                         additionLayer(2, Name="add"), fullyConnectedLayer(2, Name="fc")])
    net = Network(connectLayers(lgraph, "conv", "add/in2"), seed=3)
    plan = make_plan(net)
    check_no_live_buffer_overwritten(plan)
    sig, add = op_of(plan.ops, "sig"), op_of(plan.ops, "add")
    assert not sig.inplace and sig.output.buffer is not sig.inputs[0].buffer
    assert add.inplace and add.output.buffer in [t.buffer for t in add.inputs]
    debug = make_plan(net, reuse=False)                            # every op's output survives the run
    assert not any(op.inplace for op in debug.ops)


def test_concatenation_inputs_become_channel_slices_or_copies():
    """conv a and conv b are written straight into their slices of the concatenation; the network
    input, and a tensor read by another op too (b also feeds 'other'), are copied into theirs."""
    lgraph = layerGraph([imageInputLayer([5, 5, 2], Normalization="none", Name="in"),
                         convolution2dLayer(1, 3, Name="a"), depthConcatenationLayer(4, Name="cat"),
                         fullyConnectedLayer(4, Name="fc"), additionLayer(2, Name="add")])
    for layer in (convolution2dLayer(3, 4, Padding="same", Name="b"), convolution2dLayer(1, 5, Name="c"),
                  fullyConnectedLayer(4, Name="other")):
        lgraph = lgraph.addLayers(layer)
    for src, dst in [("in", "b"), ("b", "cat/in2"), ("in", "c"), ("c", "cat/in3"), ("in", "cat/in4"),
                     ("b", "other"), ("other", "add/in2")]:
        lgraph = connectLayers(lgraph, src, dst)
    plan = make_plan(Network(lgraph, seed=2))
    check_no_live_buffer_overwritten(plan)
    assert "concat" not in [op.kind for op in plan.ops]
    cat = op_of(plan.ops, "fc").inputs[0]                       # 3 + 4 + 5 + 2 = 14 channels
    convs = {op.layers[0]: op.output for op in plan.ops if op.kind == "conv"}
    assert [(convs[n].buffer is cat.buffer, convs[n].choff, convs[n].pitch) for n in "ac"] == [(True, 0, 14),
                                                                                             (True, 7, 14)]
    assert convs["b"].buffer is not cat.buffer and convs["b"].dense      # b is read twice: copied into 3..6
    copies = [op for op in plan.ops if op.kind == "copy"]
    assert sorted((op.inputs[0].name, op.output.choff) for op in copies) == [("b", 3), ("input", 12)]
    assert all(op.output.buffer is cat.buffer and op.output.pitch == 14 for op in copies)


def test_a_network_that_computes_nothing_copies_its_input_to_its_output():
    plan = make_plan(Network([imageInputLayer([3, 4, 2], Normalization="none")], name="ident"))
    assert [op.kind for op in plan.ops] == ["copy"]
    assert (plan.ops[0].inputs[0].buffer.kind, plan.ops[0].output.buffer.kind) == ("input", "output")
    assert plan.arena_floats == 0


# ----------------------------------------------------------------------------- random DAGs

@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "no-reuse"])
def test_random_dag_plans_never_overwrite_a_live_buffer(reuse):
    """100 random DAGs (skip additions, concatenations, in-place ops): the oracle passes, every arena
    buffer is 64-byte aligned inside the arena; without reuse no two buffers share memory."""
    rng = np.random.default_rng(800)
    reused = inplace = sliced = 0
    for i in range(100):
        net = random_dag(rng, f"plan{i}", steps=int(rng.integers(4, 14)))
        plan = make_plan(net, reuse=reuse)
        check_no_live_buffer_overwritten(plan)
        check_every_read_was_written(plan)
        arena = {id(t.buffer): t.buffer for op in plan.ops for t in [*op.inputs, op.output]
                 if t.buffer.kind == "arena"}.values()
        assert all(b.offset % ALIGN == 0 and b.offset + b.size <= plan.arena_floats for b in arena), net.name
        assert plan.arena_floats <= plan.naive_floats
        if not reuse:
            spans = sorted((b.offset, b.offset + b.size) for b in arena)
            assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:])), plan.describe()
            assert plan.arena_floats == plan.naive_floats and not any(op.inplace for op in plan.ops)
        reused += plan.arena_floats < plan.naive_floats
        inplace += any(op.inplace for op in plan.ops)
        sliced += any(not op.output.dense for op in plan.ops)
    assert sliced >= 30, sliced                # concatenations written as channel slices
    if reuse:                                  # the oracle saw plans that really share memory
        assert reused >= 50 and inplace >= 20, (reused, inplace)
