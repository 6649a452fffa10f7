"""ONNX export: our layer files checked against onnxruntime, and export -> import round trips.

The exported model computes in NCHW what ``net.predict`` computes in HWC; onnxruntime's outputs
must match ``net.predict`` (relative error < 1e-5) on seeded random inputs, for every example
network and for random chains and DAGs (tests/netgen.py). Importing the exported model gives
back the same network: bit-exact learnables and the same predictions.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import codegen  # noqa: E402
from codegen import (averagePooling2dLayer, convolution2dLayer, fullyConnectedLayer, imageInputLayer,  # noqa: E402
                     reluLayer, softmaxLayer)
from codegen.errors import UnsupportedError  # noqa: E402
from codegen.netfile import load  # noqa: E402
from codegen.onnx import export_onnx, output_rank, to_onnx_layout  # noqa: E402
from codegen.verify import rel_error  # noqa: E402
from netgen import random_chain, random_dag  # noqa: E402

TOL = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))


def ort_predict(model, x_nhwc: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))})[0]


def check_against_onnxruntime(net, count: int = 3, seed: int = 0):
    model = export_onnx(net)
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(seed).standard_normal((count, *net.input_shape)).astype(np.float32)
    ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
    y = ort_predict(model, x)
    assert y.shape == ref.shape
    err = rel_error(y, ref)
    assert err < TOL, f"{net.name}: onnxruntime vs net.predict: relative error {err:.2e}"
    return model, x, ref


def check_round_trip(net, model, x, ref):
    back = codegen.import_onnx(model)
    y = back.onnx.from_output(back.predict(x.astype(np.float64)))
    assert rel_error(y, ref) < 1e-6
    for layer in net.layers:
        learn = {p for p in layer.learnables()}
        if not learn or layer.FUNCTION == "imageInputLayer":
            continue
        twin = back.layer(layer.Name)
        for prop in learn:
            got, want = getattr(twin, prop), getattr(layer, prop)
            np.testing.assert_array_equal(np.asarray(got).reshape(np.shape(want)), want,
                                          err_msg=f"{layer.Name}/{prop}")
    return back


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_examples_match_onnxruntime(path):
    net = load(path)
    model, x, ref = check_against_onnxruntime(net)
    check_round_trip(net, model, x, ref)


@pytest.mark.parametrize("seed", range(40))
def test_random_chains_match_onnxruntime(seed):
    net = random_chain(np.random.default_rng(1000 + seed), f"chain{seed}")
    model, x, ref = check_against_onnxruntime(net, seed=seed)
    check_round_trip(net, model, x, ref)


@pytest.mark.parametrize("seed", range(20))
def test_random_dags_match_onnxruntime(seed):
    net = random_dag(np.random.default_rng(2000 + seed), f"dag{seed}")
    model, x, ref = check_against_onnxruntime(net, seed=seed)
    check_round_trip(net, model, x, ref)


def test_round_trip_compiles_to_the_same_outputs():
    net = load(os.path.join(ROOT, "examples", "grouped.py"))
    model, x, ref = check_against_onnxruntime(net)
    back = check_round_trip(net, model, x, ref)
    lib = codegen.build(back, target="c", write=False)
    assert rel_error(back.onnx.from_output(lib.predict(x)), ref) < TOL


@pytest.mark.parametrize("value", [1.5, "replicate", "symmetric-exclude-edge"])
def test_conv_padding_value_becomes_a_pad_node(value):
    net = codegen.Network([imageInputLayer([7, 6, 2], Normalization="none"),
                           convolution2dLayer(3, 4, Padding=[1, 2, 2, 1], PaddingValue=value), reluLayer()],
                          seed=1, name="padval")
    model, _, _ = check_against_onnxruntime(net)
    assert "Pad" in [n.op_type for n in model.graph.node]


def test_symmetric_include_edge_is_refused():
    net = codegen.Network([imageInputLayer([5, 5, 1], Normalization="none"),
                           convolution2dLayer(3, 2, Padding=1, PaddingValue="symmetric-include-edge")], name="sym")
    with pytest.raises(UnsupportedError, match="'symmetric-include-edge', which ONNX's Pad cannot express"):
        export_onnx(net)


def test_fc_after_fc_and_spatial_fc():
    """A fully connected layer on an h x w x c input flattens in MATLAB's order; ONNX's Flatten
    is row-major over c, h, w: the exported weights are permuted."""
    net = codegen.Network([imageInputLayer([3, 4, 5], Normalization="none"), fullyConnectedLayer(6), reluLayer(),
                           fullyConnectedLayer(3), softmaxLayer()], seed=2, name="mlp")
    model, x, ref = check_against_onnxruntime(net)
    assert output_rank(model) == 2
    check_round_trip(net, model, x, ref)


def test_average_pooling_padding_modes():
    for value in (0, "mean"):
        net = codegen.Network([imageInputLayer([9, 8, 3], Normalization="none"),
                               averagePooling2dLayer(3, Stride=2, Padding=[1, 2, 0, 2], PaddingValue=value)],
                              name="avg")
        model, x, ref = check_against_onnxruntime(net)
        check_round_trip(net, model, x, ref)


def test_fc_output_feeding_convolutions_and_an_addition():
    """A fully connected output is N x K in ONNX; a convolution or an addition with an
    N x C x 1 x 1 tensor needs it back as N x K x 1 x 1 (Unsqueeze)."""
    from codegen import additionLayer, batchNormalizationLayer, connectLayers, layerGraph
    lgraph = layerGraph([imageInputLayer([4, 3, 2], Normalization="none"), fullyConnectedLayer(5, Name="fc"),
                         convolution2dLayer(1, 5, Name="conv"), batchNormalizationLayer(Name="bn"),
                         additionLayer(2, Name="add"), softmaxLayer(Name="sm")])
    lgraph = connectLayers(lgraph, "fc", "add/in2")
    net = codegen.Network(lgraph, seed=4, name="mixed")
    model, x, ref = check_against_onnxruntime(net)
    assert "Unsqueeze" in [n.op_type for n in model.graph.node]
    check_round_trip(net, model, x, ref)


@pytest.mark.parametrize("opset", [13, 21])
def test_export_opsets(opset):
    net = load(os.path.join(ROOT, "examples", "conv_options.py"))
    model = export_onnx(net, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset
    x = np.random.default_rng(5).standard_normal((2, *net.input_shape)).astype(np.float32)
    assert rel_error(ort_predict(model, x), to_onnx_layout(net.predict(x.astype(np.float64)), 2)) < TOL
