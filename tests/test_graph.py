"""Networks as graphs (issue 9): the layerGraph API, its errors, and random DAGs compiled to C
against the reference with dead buffers poisoned (the plans themselves: test_plan.py)."""

from __future__ import annotations

import numpy as np
import pytest

import codegen
from codegen import (Network, NetworkError, LayerError, additionLayer, addLayers, batchNormalizationLayer,
                     concatenationLayer, connectLayers, convolution2dLayer, depthConcatenationLayer, disconnectLayers,
                     fullyConnectedLayer, imageInputLayer, layerGraph, maxPooling2dLayer, reluLayer, removeLayers)
from codegen import build_many
from codegen.netfile import load
from codegen.verify import random_inputs, rel_error
from netgen import random_dag
from planchecks import check_no_live_buffer_overwritten


def residual_graph():
    lgraph = layerGraph([imageInputLayer([8, 8, 4], Normalization="none", Name="in"),
                         convolution2dLayer(3, 4, Padding="same", Name="c1"), reluLayer(Name="r1"),
                         convolution2dLayer(3, 4, Padding="same", Name="c2"), additionLayer(2, Name="add"),
                         reluLayer(Name="out")])
    return connectLayers(lgraph, "r1", "add/in2")


# ----------------------------------------------------------------------------- API

def test_layer_graph_connections_and_names():
    lgraph = residual_graph()
    assert lgraph.Connections == [("in", "c1"), ("c1", "r1"), ("r1", "c2"), ("c2", "add/in1"), ("r1", "add/in2"),
                                  ("add", "out")]
    assert lgraph.InputNames == ["in"] and lgraph.OutputNames == ["out"]
    assert lgraph.layer("add").InputNames == ["in1", "in2"] and lgraph.layer("add").NumInputs == 2


def test_graph_functions_return_new_graphs_like_matlab():
    base = layerGraph([imageInputLayer([4, 4, 1]), reluLayer(), additionLayer(2)])
    connected = connectLayers(base, "imageinput_1", "addition_1/in2")
    assert ("imageinput_1", "addition_1/in2") in connected.Connections
    assert ("imageinput_1", "addition_1/in2") not in base.Connections
    back = disconnectLayers(connected, "imageinput_1", "addition_1/in2")
    assert back.Connections == base.Connections


def test_unnamed_layers_get_matlab_style_names():
    lgraph = layerGraph([imageInputLayer([4, 4, 1]), convolution2dLayer(1, 2), reluLayer(), convolution2dLayer(1, 2),
                         reluLayer()])
    assert lgraph.names() == ["imageinput_1", "conv_1", "relu_1", "conv_2", "relu_2"]
    more = addLayers(lgraph, [convolution2dLayer(1, 2), reluLayer(Name="relu_3")])
    assert more.names()[-2:] == ["conv_3", "relu_3"]


def test_remove_layers_drops_their_connections():
    lgraph = removeLayers(residual_graph(), "c2")
    assert "c2" not in lgraph.names()
    assert all("c2" not in (s, d.split("/")[0]) for s, d in lgraph.Connections)
    with pytest.raises(NetworkError, match=r"input 'add/in1' of additionLayer 'add' is not connected"):
        Network(lgraph)


def test_network_accepts_a_graph_and_a_chain_is_a_graph():
    layers = [imageInputLayer([6, 6, 2]), convolution2dLayer(3, 3), reluLayer()]
    x = np.random.default_rng(0).standard_normal((6, 6, 2))
    assert np.array_equal(Network(layers).predict(x), Network(layerGraph(layers)).predict(x))
    assert Network(layers).is_chain() and not Network(residual_graph()).is_chain()


def test_reference_of_a_residual_graph_is_the_sum_of_its_branches():
    net = Network(residual_graph(), seed=4)
    x = np.random.default_rng(1).standard_normal((8, 8, 4))
    outs = net.predict(x, return_all=True)
    assert np.allclose(outs["add"], outs["c2"] + outs["r1"])
    assert np.allclose(outs["out"], np.maximum(outs["add"], 0))


def test_concatenation_layers():
    lgraph = layerGraph([imageInputLayer([5, 5, 2], Name="in"), convolution2dLayer(1, 3, Name="a"),
                         depthConcatenationLayer(3, Name="cat")])
    lgraph = addLayers(lgraph, convolution2dLayer(3, 4, Padding="same", Name="b"))
    lgraph = connectLayers(connectLayers(lgraph, "in", "b"), "b", "cat/in2")
    lgraph = connectLayers(lgraph, "in", "cat/in3")
    net = Network(lgraph)
    assert net.output_shape == (5, 5, 9)
    outs = net.predict(np.ones((5, 5, 2)), return_all=True)
    assert np.array_equal(outs["cat"], np.concatenate([outs["a"], outs["b"], outs["in"]], axis=-1))
    assert concatenationLayer(3, 2).describe() == "Concatenation of 2 inputs along dimension 3"
    with pytest.raises(LayerError, match="only dimension 3"):
        concatenationLayer(1, 2)


# ----------------------------------------------------------------------------- errors

def test_cycle_is_an_error_naming_the_layers():
    lgraph = layerGraph([imageInputLayer([4, 4, 1], Name="in"), additionLayer(2, Name="add"), reluLayer(Name="r")])
    lgraph = connectLayers(lgraph, "r", "add/in2")
    with pytest.raises(NetworkError, match=r"cycle.*'add'.*'r'"):
        Network(lgraph)


def test_dangling_input_is_an_error():
    lgraph = layerGraph([imageInputLayer([4, 4, 1]), additionLayer(2, Name="add")])
    with pytest.raises(NetworkError, match=r"input 'add/in2' of additionLayer 'add' is not connected"):
        Network(lgraph)


def test_shape_mismatch_at_an_addition_names_the_layer_and_both_sizes():
    lgraph = layerGraph([imageInputLayer([8, 8, 3], Name="in"), convolution2dLayer(3, 3, Name="c"),
                         additionLayer(2, Name="add")])
    lgraph = connectLayers(lgraph, "in", "add/in2")
    with pytest.raises(LayerError, match=r"additionLayer 'add'.*in1 is 6x6x3 but in2 is 8x8x3"):
        Network(lgraph)


def test_spatial_mismatch_at_a_concatenation():
    lgraph = layerGraph([imageInputLayer([8, 8, 3], Name="in"), maxPooling2dLayer(2, Stride=2, Name="p"),
                         depthConcatenationLayer(2, Name="cat")])
    lgraph = connectLayers(lgraph, "in", "cat/in2")
    with pytest.raises(LayerError, match=r"depthConcatenationLayer 'cat'.*4x4 spatially but in2 is 8x8"):
        Network(lgraph)


def test_unconnected_layers_are_the_outputs():
    """As in MATLAB's dlnetwork: every layer whose output nothing reads is an output, in layer order
    (or in the order ``outputs`` gives)."""
    lgraph = layerGraph([imageInputLayer([4, 4, 1], Name="in"), reluLayer(Name="a")])
    lgraph = connectLayers(addLayers(lgraph, reluLayer(Name="b")), "in", "b")
    net = Network(lgraph)
    assert net.output_names == ["a", "b"] and net.output_shapes == [(4, 4, 1), (4, 4, 1)]
    with pytest.raises(NetworkError, match=r"has 2 outputs \('a', 'b'\); use output_names"):
        net.output_name
    assert Network(lgraph, outputs=["b", "a"]).output_names == ["b", "a"]
    with pytest.raises(NetworkError, match=r"must name each unconnected layer once: 'a', 'b'"):
        Network(lgraph, outputs=["a"])


def test_connection_errors():
    lgraph = residual_graph()
    with pytest.raises(NetworkError, match="already connected"):
        connectLayers(lgraph, "in", "add/in2")
    with pytest.raises(NetworkError, match="no layer named 'nope'"):
        connectLayers(lgraph, "nope", "c1")
    with pytest.raises(NetworkError, match="has no input 'in3'; its inputs are in1, in2"):
        connectLayers(lgraph, "in", "add/in3")
    with pytest.raises(NetworkError, match="name one, e.g. 'add/in1'"):
        connectLayers(lgraph, "in", "add")
    with pytest.raises(NetworkError, match="two layers are named 'c1'"):
        addLayers(lgraph, reluLayer(Name="c1"))


def test_net_py_may_define_lgraph(tmp_path):
    path = tmp_path / "g.py"
    path.write_text("lgraph = layerGraph([imageInputLayer([4, 4, 2]), reluLayer(), additionLayer(2, Name='add')])\n"
                    "lgraph = connectLayers(lgraph, 'imageinput_1', 'add/in2')\n")
    net = load(path)
    assert net.name == "g" and [lay.Name for lay in net.layers] == ["imageinput_1", "relu_1", "add"]


# ----------------------------------------------------------------------------- random DAGs

@pytest.mark.parametrize("batch", range(2))
def test_random_dags_match_reference_with_dead_buffers_poisoned(batch):
    """50 random DAGs per batch; the generated code fills every buffer with NaN as soon as its
    last reader ran, and the workspace starts as NaN, so a plan that reuses live memory fails."""
    rng = np.random.default_rng(500 + batch)
    nets = [random_dag(rng, f"dag{batch}_{i}", steps=int(rng.integers(4, 12))) for i in range(50)]
    libs = build_many(nets, poison_dead=True)
    multi = 0
    for net, lib in zip(nets, libs):
        check_no_live_buffer_overwritten(lib.plan)
        multi += not net.is_chain()
        for poison in (np.nan, 3.0e38):
            lib.poison = poison
            x = random_inputs(net, 2, seed=batch)
            y = lib.predict(x)
            ref = net.predict(x.astype(np.float64))
            err = max(rel_error(y[i], ref[i]) for i in range(2))
            assert err < 1e-5, f"{net.name}: {err:.2e}\n{lib.plan.describe()}"
    assert multi >= 25           # the generator really makes branches (most DAGs are not chains)


@pytest.mark.long
def test_random_dags_long():
    rng = np.random.default_rng(9)
    for batch in range(10):
        nets = [random_dag(rng, f"ldag{batch}_{i}", steps=int(rng.integers(4, 20))) for i in range(60)]
        for net, lib in zip(nets, build_many(nets, poison_dead=True)):
            check_no_live_buffer_overwritten(lib.plan)
            x = random_inputs(net, 1)
            assert rel_error(lib.predict(x)[0], net.predict(x[0].astype(np.float64))) < 1e-5


def test_graph_with_batchnorm_and_fc_after_a_concatenation(tmp_path):
    lgraph = layerGraph([imageInputLayer([6, 6, 3], Normalization="none", Name="in"),
                         convolution2dLayer(3, 5, Padding=1, Name="a"), depthConcatenationLayer(2, Name="cat"),
                         batchNormalizationLayer(TrainedMean=np.arange(8.0).reshape(1, 1, 8) / 8, Name="bn"),
                         reluLayer(Name="r"), fullyConnectedLayer(4, Name="fc")])
    lgraph = connectLayers(lgraph, "in", "cat/in2")
    net = Network(lgraph, seed=2, name="catbn")
    lib = codegen.build(net, out_dir=tmp_path / "catbn")
    x = random_inputs(net, 2)
    assert max(rel_error(lib.predict(x)[i], net.predict(x.astype(np.float64))[i]) for i in range(2)) < 1e-5
