"""Networks with several outputs (a detector's two heads): the reference, the generated C, CUDA and
Cortex-M4 code (outputs back to back in one buffer, described by the header), ONNX in and out."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch

import codegen
from codegen import (Network, addLayers, batchNormalizationLayer, connectLayers, convolution2dLayer,
                     depthConcatenationLayer, fullyConnectedLayer, globalAveragePooling2dLayer, imageInputLayer,
                     layerGraph, maxPooling2dLayer, regressionLayer, reluLayer, softmaxLayer)
from codegen.verify import random_inputs, rel_error, verify, verify_per_layer
from checks import tolerance_for
from conftest import require_tool


def two_heads(seed: int = 0, boxes: int = 4) -> Network:
    """A backbone and two heads: class scores (softmax) and box regressions (regressionLayer)."""
    layers = [imageInputLayer([12, 10, 3], Name="in"),
              convolution2dLayer(3, 8, Padding="same", Name="c1"), batchNormalizationLayer(Name="bn1"),
              reluLayer(Name="r1"), maxPooling2dLayer(2, Stride=2, Name="p1"),
              convolution2dLayer(3, 6, Padding="same", Name="cls_conv"), softmaxLayer(Name="cls")]
    g = layerGraph(layers)
    g = addLayers(g, [convolution2dLayer(1, boxes, Name="box_conv"), regressionLayer(Name="boxes")])
    g = connectLayers(g, "p1", "box_conv")
    return Network(g, seed=seed, name=f"heads{seed}")


def test_reference_returns_every_output_in_order():
    net = two_heads()
    assert net.output_names == ["cls", "boxes"] and net.output_shapes == [(6, 5, 6), (6, 5, 4)]
    x = random_inputs(net, 2)
    cls, boxes = net.predict(x.astype(np.float64))
    assert cls.shape == (2, 6, 5, 6) and boxes.shape == (2, 6, 5, 4)
    np.testing.assert_allclose(cls.sum(axis=-1), 1.0)
    single = net.predict(x[0].astype(np.float64))
    assert isinstance(single, tuple) and np.allclose(single[1], boxes[0])
    swapped = Network(net.graph, outputs=["boxes", "cls"])
    assert [y.shape[-1] for y in swapped.predict(x.astype(np.float64))] == [4, 6]


def test_c_writes_the_outputs_back_to_back_as_the_header_says():
    net = two_heads()
    lib = codegen.build(net, write=False, extra_flags=["-Werror"])
    header = lib.files["heads0.h"]
    macros = dict(re.findall(r"#define (HEADS0_\w+) (\d+)", header))
    assert macros["HEADS0_NUM_OUTPUTS"] == "2" and macros["HEADS0_OUT_SIZE"] == str(6 * 5 * 6 + 6 * 5 * 4)
    assert macros["HEADS0_OUT1_OFFSET"] == "0" and macros["HEADS0_OUT2_OFFSET"] == str(6 * 5 * 6)
    assert (macros["HEADS0_OUT2_H"], macros["HEADS0_OUT2_W"], macros["HEADS0_OUT2_C"]) == ("6", "5", "4")
    x = random_inputs(net, 3)
    ys = lib.predict(x)
    refs = net.predict(x.astype(np.float64))
    for y, ref in zip(ys, refs):
        assert max(rel_error(y[i], ref[i]) for i in range(3)) < 1e-5
    result = verify(net, lib)
    assert result.passed, result.report()
    debug = codegen.build(net, write=False, reuse=False)
    detail = verify_per_layer(net, debug)
    assert detail.passed and {name for name, _ in detail.per_layer} >= {"c1+bn1+r1", "cls", "box_conv"}


def random_heads(rng, k: int) -> Network:
    """A random backbone and 2-3 heads, one of them sometimes fed straight by the input or shared."""
    c = int(rng.integers(1, 5))
    layers = [imageInputLayer([int(rng.integers(4, 10)), int(rng.integers(4, 10)), c], Name="in"),
              convolution2dLayer(int(rng.integers(1, 4)), int(rng.integers(2, 9)), Padding="same", Name="trunk"),
              reluLayer(Name="trunk_relu")]
    g = layerGraph(layers)
    for h in range(int(rng.integers(2, 4))):
        src = "trunk_relu" if rng.random() < 0.8 else "in"
        head = [convolution2dLayer(int(rng.integers(1, 4)), int(rng.integers(1, 7)), Padding="same", Name=f"h{h}")]
        if rng.random() < 0.5:
            head += [globalAveragePooling2dLayer(Name=f"h{h}_gap"), fullyConnectedLayer(3, Name=f"h{h}_fc")]
        g = connectLayers(addLayers(g, head), src, f"h{h}")
    if rng.random() < 0.5:       # a concatenation of two heads is a third output; the heads stay outputs
        g = addLayers(g, depthConcatenationLayer(2, Name="cat"))
        g = connectLayers(connectLayers(g, "h0", "cat/in1"), "trunk_relu", "cat/in2")
        g = addLayers(g, regressionLayer(Name="h0_out"))
        g = connectLayers(g, "h0", "h0_out")
    return Network(g, seed=k, name=f"rh{k}")


def check(nets, libs):
    for net, lib in zip(nets, libs):
        x = random_inputs(net, 2, seed=1)
        ys, refs = lib.predict(x), net.predict(x.astype(np.float64))
        ys = ys if isinstance(ys, tuple) else (ys,)
        refs = refs if isinstance(refs, tuple) else (refs,)
        assert len(ys) == len(net.output_names) >= 2
        tol = tolerance_for(net, lib, x, 1e-5)
        for y, ref in zip(ys, refs):
            assert y.shape == ref.shape and max(rel_error(y[i], ref[i]) for i in range(2)) < tol, net.name


def test_random_multi_head_networks_in_c_and_cuda():
    rng = np.random.default_rng(3)
    nets = [random_heads(rng, k) for k in range(30)]
    check(nets, codegen.build_many(nets, extra_flags=["-Werror"]))
    check(nets[:12], codegen.build_many(nets[:12], target="cuda", emulate=True, opt_flags=["-O1"]))


def test_cortex_m4_two_heads():
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    net = two_heads(1)
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()
    check([net], [dev])


def test_onnx_export_and_import_keep_every_output():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from codegen.onnx import export_onnx, to_onnx_layout
    net = two_heads(2)
    model = export_onnx(net)
    onnx.checker.check_model(model, full_check=True)
    assert [[d.dim_value for d in o.type.tensor_type.shape.dim][1:] for o in model.graph.output] == [[6, 6, 5],
                                                                                                     [4, 6, 5]]
    x = random_inputs(net, 2)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    for y, ref in zip(got, net.predict(x.astype(np.float64))):
        assert rel_error(y, to_onnx_layout(ref, 4)) < 1e-5
    back = codegen.import_onnx(model)
    assert back.onnx.output_names == [o.name for o in model.graph.output] and len(back.output_names) == 2
    lib = codegen.build(back, write=False)
    for y, ref in zip(back.onnx.from_output(lib.predict(x)), got):
        assert rel_error(y, ref) < 1e-5


def test_pytorch_two_head_detector_imports():
    """A YOLO-style head pair exported by torch.onnx; one output is also read by the other head."""
    pytest.importorskip("onnx")

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                                torch.nn.ReLU(), torch.nn.MaxPool2d(2))
            self.cls = torch.nn.Conv2d(8, 5, 1)
            self.box = torch.nn.Conv2d(8 + 5, 4, 3, padding=1)

        def forward(self, x):
            f = self.backbone(x)
            scores = self.cls(f)
            return scores, self.box(torch.cat([f, scores], dim=1))

    torch.manual_seed(0)
    model = Detector().eval()
    with torch.no_grad():
        model.backbone[1].running_mean.uniform_(-1, 1)
        model.backbone[1].running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 16, 12)
    buf = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buf, dynamo=False, input_names=["x"], output_names=["scores", "boxes"],
                      dynamic_axes={"x": {0: "n"}})
    net = codegen.import_onnx(buf.getvalue(), name="detector")
    assert net.onnx.output_names == ["scores", "boxes"] and len(net.output_names) == 2
    lib = codegen.build(net, write=False)
    ys = net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy())))
    with torch.no_grad():
        refs = model(x)
    for y, ref in zip(ys, refs):
        assert rel_error(y, ref.numpy()) < 1e-5


def test_an_output_that_is_the_input_or_another_output_gets_its_own_copy():
    g = layerGraph([imageInputLayer([3, 3, 2], Normalization="none", Name="in"), reluLayer(Name="r"),
                    regressionLayer(Name="relu_out")])
    g = connectLayers(addLayers(g, regressionLayer(Name="raw")), "in", "raw")
    g = connectLayers(addLayers(g, regressionLayer(Name="again")), "r", "again")
    net = Network(g, name="copies")
    assert net.output_names == ["relu_out", "raw", "again"]
    lib = codegen.build(net, write=False)
    x = random_inputs(net, 2)
    r, raw, again = lib.predict(x)
    assert np.array_equal(raw, x) and np.array_equal(r, np.maximum(x, 0)) and np.array_equal(again, r)
    assert [op.kind for op in lib.plan.ops].count("copy") == 2
