"""sigmoidLayer and tanhLayer end to end, against oracles no one here wrote: PyTorch for the
semantics, onnxruntime for the ONNX export, PyTorch's own ONNX export for the import; and the
generated C (host, Cortex-M4 under QEMU) and CUDA (CPU execution mode) against the reference on
random networks.

Tolerance: relative error 1e-5 (float32 expf/tanhf are within a few ulps; the rest as in
tests/checks.py).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import codegen
from codegen import (LayerError, Network, averagePooling2dLayer, batchNormalizationLayer, convolution2dLayer,
                     fullyConnectedLayer, imageInputLayer, maxPooling2dLayer, reluLayer, sigmoidLayer, tanhLayer)
from codegen.verify import random_inputs, rel_error
from checks import check_against_reference
from conftest import require_tool

ACTIVATIONS = {"sigmoid": (sigmoidLayer, torch.sigmoid), "tanh": (tanhLayer, torch.tanh)}


# ------------------------------------------------------------------ the layers

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_reference_matches_pytorch(name):
    """Random shapes and values over a wide range (saturation included), float64."""
    make, fn = ACTIVATIONS[name]
    rng = np.random.default_rng(1)
    for _ in range(50):
        shape = tuple(int(v) for v in rng.integers(1, 9, size=3))
        x = rng.standard_normal((2, *shape)) * rng.choice([0.1, 1.0, 10.0, 60.0])
        ours = make().forward([x])
        theirs = fn(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-300)


def test_options_display_and_errors():
    s, t = sigmoidLayer("Name", "gate"), tanhLayer(Name="squash")
    assert (s.Name, s.CLASS, s.NumInputs, s.NumOutputs) == ("gate", "SigmoidLayer", 1, 1)
    assert (t.Name, t.CLASS) == ("squash", "TanhLayer")
    assert "SigmoidLayer with properties" in repr(s) and "Name: 'gate'" in repr(s)
    net = Network([imageInputLayer([2, 2, 1]), sigmoidLayer(), tanhLayer()], name="auto")
    assert [layer.Name for layer in net.layers[1:]] == ["sigmoid_1", "tanh_1"]
    assert "Hyperbolic tangent" in repr(codegen.LayerArray(net.layers))
    with pytest.raises(LayerError, match="sigmoidLayer.*Scale"):
        sigmoidLayer(Scale=2)
    with pytest.raises(LayerError, match="tanhLayer"):
        tanhLayer("Name")


# ------------------------------------------------------------------ generated code

def random_net(rng, index: int) -> Network:
    """A chain with sigmoid and tanh after convolutions, batch norm, poolings and fully connected
    layers (where a clamp would fuse, these stay separate ops)."""
    h, w = (int(v) for v in rng.integers(3, 12, size=2))
    c = int(rng.integers(1, 6))
    layers = [imageInputLayer([h, w, c])]
    for k in range(int(rng.integers(2, 6))):
        kind = rng.choice(["conv", "bn", "maxpool", "avgpool", "relu"])
        if kind == "conv":
            layers.append(convolution2dLayer(int(rng.integers(1, 4)), int(rng.integers(1, 20)), Padding="same"))
        elif kind == "bn":
            layers.append(batchNormalizationLayer())
        elif kind == "maxpool":
            layers.append(maxPooling2dLayer(2, Padding="same"))
        elif kind == "avgpool":
            layers.append(averagePooling2dLayer(2, Padding="same"))
        else:
            layers.append(reluLayer())
        layers.append(sigmoidLayer() if rng.random() < 0.5 else tanhLayer())
    layers += [fullyConnectedLayer(int(rng.integers(1, 12))), rng.choice([sigmoidLayer, tanhLayer])()]
    net = Network(layers, seed=index, name=f"st{index}")
    for layer in net.layers:                      # non-trivial batch-norm statistics
        if layer.FUNCTION == "batchNormalizationLayer":
            n = layer.NumChannels
            layer._p.update(TrainedMean=rng.normal(0, 1, (1, 1, n)), TrainedVariance=rng.uniform(0.2, 3, (1, 1, n)),
                            Scale=rng.uniform(0.5, 2, (1, 1, n)), Offset=rng.normal(0, 1, (1, 1, n)))
    return net


def nets(count: int, seed: int) -> list[Network]:
    rng = np.random.default_rng(seed)
    return [random_net(rng, seed * 1000 + i) for i in range(count)]


def test_c_matches_reference_on_random_networks():
    batch = nets(40, 1)
    libs = codegen.build_many(batch, extra_flags=["-Werror"])
    check_against_reference(batch, libs)
    kinds = {op.act.kind for lib in libs for op in lib.plan.ops if op.kind == "act"}
    assert kinds >= {"sigmoid", "tanh"}


def test_cuda_emulated_matches_reference_on_random_networks():
    batch = nets(20, 2)
    check_against_reference(batch, codegen.build_many(batch, target="cuda", emulate=True, opt_flags=["-O1"]))


def test_cortex_m4_matches_reference():
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    net = nets(1, 3)[0]
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()           # tanhf/expf pulled in without double helpers
    x = random_inputs(net, 2, seed=3)
    y, ref = dev.predict(x), net.predict(x.astype(np.float64))
    assert max(rel_error(y[i], ref[i]) for i in range(2)) < 1e-5


# ------------------------------------------------------------------ ONNX in and out

def test_export_matches_onnxruntime_and_imports_back():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from codegen.onnx import export_onnx, output_rank, to_onnx_layout
    for net in nets(5, 4):
        model = export_onnx(net)
        onnx.checker.check_model(model, full_check=True)
        assert {"Sigmoid", "Tanh"} & {n.op_type for n in model.graph.node}
        x = random_inputs(net, 2, seed=1)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
        ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
        assert rel_error(y, ref) < 1e-5
        back = codegen.import_onnx(model)
        assert [type(a).__name__ for a in back.layers] == [type(b).__name__ for b in net.layers]
        y_back = back.onnx.from_output(back.predict(x.astype(np.float64)))
        assert rel_error(y_back, ref) < 1e-6


def test_pytorch_export_imports_and_runs():
    """A PyTorch model with nn.Sigmoid and nn.Tanh, exported by torch.onnx (legacy exporter), imported
    and compiled: the C output equals PyTorch's."""
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Tanh(), torch.nn.MaxPool2d(2),
                                torch.nn.Conv2d(6, 4, 3), torch.nn.Sigmoid(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 2 * 2, 5), torch.nn.Tanh()).eval()
    x = torch.randn(3, 3, 8, 8)
    buf = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buf, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    net = codegen.import_onnx(buf.getvalue(), name="torch_st")
    assert {type(layer).__name__ for layer in net.layers} >= {"SigmoidLayer", "TanhLayer"}
    lib = codegen.build(net, write=False)
    y = net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy())))
    with torch.no_grad():
        ref = model(x).numpy()
    assert rel_error(y, ref) < 1e-5
