"""multiplicationLayer (with singleton dimensions expanding), scalingLayer and
crossChannelNormalizationLayer end to end, against oracles no one here wrote: PyTorch for the
semantics, onnxruntime for the ONNX export, PyTorch's own ONNX export for the import (squeeze-and-
excitation, SiLU and hard-swish written as products, arithmetic with constants, AlexNet's local
response normalization); and the generated C (host, Cortex-M4 under QEMU) and CUDA (CPU execution
mode) against the reference on random networks.

Tolerance: relative error 1e-5 (as tests/checks.py); the references against PyTorch in float64
to 1e-12.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import codegen
from codegen import (LayerError, Network, additionLayer, batchNormalizationLayer, connectLayers, convolution2dLayer,
                     crossChannelNormalizationLayer, fullyConnectedLayer, globalAveragePooling2dLayer, imageInputLayer,
                     layerGraph, maxPooling2dLayer, multiplicationLayer, reluLayer, scalingLayer, sigmoidLayer)
from codegen.graph import addLayers
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from checks import check_against_reference
from conftest import require_tool


def _torch_nhwc(fn, x, *args, **kwargs):
    """``fn`` applied to an (N, H, W, C) array as PyTorch's N x C x H x W, back to (N, H, W, C)."""
    y = fn(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), *args, **kwargs)
    return y.numpy().transpose(0, 2, 3, 1)


# ------------------------------------------------------------------ references

def test_multiplication_reference_matches_pytorch_broadcasting():
    """Random shapes, each input with random singleton dimensions: the layer's output size and
    values are PyTorch's broadcast product (float64)."""
    rng = np.random.default_rng(1)
    for _ in range(60):
        full = [int(v) for v in rng.integers(1, 7, size=3)]
        n = int(rng.integers(2, 5))
        shapes = [tuple(d if rng.random() < 0.6 else 1 for d in full) for _ in range(n)]
        layer = multiplicationLayer(n)
        out = layer.copy().resolve(shapes)
        xs = [rng.standard_normal((2, *s)) * 3 for s in shapes]
        theirs = torch.from_numpy(xs[0])
        for x in xs[1:]:
            theirs = theirs * torch.from_numpy(x)
        assert tuple(theirs.shape[1:]) == out
        np.testing.assert_allclose(layer.forward(xs), theirs.numpy(), rtol=1e-15, atol=0)


def test_scaling_reference_matches_pytorch():
    rng = np.random.default_rng(2)
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(1, 6, size=3))
        arrays = []
        for _ in range(2):
            size = tuple(d if rng.random() < 0.5 else 1 for d in shape)
            arrays.append(rng.standard_normal(size).astype(np.float32) if rng.random() < 0.8 else
                          np.float32(rng.standard_normal()))
        layer = scalingLayer(Scale=arrays[0], Offset=arrays[1])
        assert layer.copy().resolve([shape]) == shape
        x = rng.standard_normal((2, *shape))
        s, o = (torch.from_numpy(np.asarray(a, np.float64).reshape(
            (1, *np.shape(a), *(1,) * (3 - np.ndim(a))))) for a in arrays)
        theirs = torch.from_numpy(x) * s + o
        np.testing.assert_allclose(layer.forward([x]), theirs.numpy(), rtol=1e-15, atol=1e-15)


def test_lrn_reference_matches_pytorch():
    """Odd windows: PyTorch's LocalResponseNorm is MATLAB's formula and window. Even windows:
    PyTorch's window is the mirror image of MATLAB's (and ONNX's), so MATLAB's result is PyTorch's on
    the channels in reverse order, reversed back."""
    rng = np.random.default_rng(3)
    for _ in range(60):
        shape = (2, *(int(v) for v in rng.integers(1, 6, size=2)), int(rng.integers(1, 20)))
        n = int(rng.integers(1, 17))
        alpha, beta, k = float(rng.uniform(0, 2)), float(rng.uniform(0.01, 2)), float(rng.uniform(1e-5, 3))
        x = rng.standard_normal(shape) * rng.choice([0.1, 1.0, 5.0])
        ours = crossChannelNormalizationLayer(n, Alpha=alpha, Beta=beta, K=k).forward([x])
        lrn = lambda t: F.local_response_norm(t, n, alpha=alpha, beta=beta, k=k)  # noqa: E731
        if n % 2:
            theirs = _torch_nhwc(lrn, x)
        else:
            theirs = _torch_nhwc(lrn, x[..., ::-1])[..., ::-1]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-300)


def test_lrn_even_window_is_matlabs():
    """WindowChannelSize 4: the previous floor(3/2) = 1 and the following floor(4/2) = 2 channels
    (MATLAB's documentation), checked on one-hot inputs."""
    layer = crossChannelNormalizationLayer(4, Alpha=4.0, Beta=1.0, K=1.0)
    for src in range(6):
        x = np.zeros((1, 1, 1, 6))
        x[..., src] = 1.0
        x_all = x + 1.0                      # the value at every channel, plus 1 at src
        y = layer.forward([x_all])
        # channel c sees src iff c - 1 <= src <= c + 2; then ss has 3 more than without it
        for c in range(6):
            lo, hi = max(0, c - 1), min(5, c + 2)
            ss = (hi - lo + 1) + (3.0 if lo <= src <= hi else 0.0)
            assert y[0, 0, 0, c] == pytest.approx(x_all[0, 0, 0, c] / (1.0 + 4.0 * ss / 4), rel=1e-14)


# ------------------------------------------------------------------ options, display, errors

def test_options_display_and_errors():
    m = multiplicationLayer(3, "Name", "gate")
    assert (m.Name, m.CLASS, m.NumInputs, m.InputNames, m.NumOutputs) == ("gate", "MultiplicationLayer", 3,
                                                                          ["in1", "in2", "in3"], 1)
    assert "MultiplicationLayer with properties" in repr(m) and "InputNames: {'in1' 'in2' 'in3'}" in repr(m)
    lrn = crossChannelNormalizationLayer(5)
    assert (lrn.WindowChannelSize, lrn.Alpha, lrn.Beta, lrn.K) == (5, 1e-4, 0.75, 2.0)    # MATLAB's defaults
    text = repr(lrn)
    assert "Hyperparameters" in text and "WindowChannelSize: 5" in text and "Alpha: 1.0000e-04" in text
    assert "Beta: 0.7500" in text and "K: 2" in text
    lrn = crossChannelNormalizationLayer(3, "Alpha", 2e-4, "Beta", 0.5, "K", 1, "Name", "n1")
    assert (lrn.Alpha, lrn.Beta, lrn.K, lrn.Name) == (2e-4, 0.5, 1.0, "n1")
    s = scalingLayer(Scale=0.5, Offset=np.ones((1, 1, 3)))
    assert float(s.Scale) == 0.5 and s.Offset.shape == (1, 1, 3)
    assert "Scale: 0.5000" in repr(s) and "Offset: [1x1x3 single]" in repr(s)
    d = scalingLayer()
    assert float(d.Scale) == 1.0 and float(d.Offset) == 0.0 and d.is_identity()
    net = Network([imageInputLayer([4, 4, 6]), crossChannelNormalizationLayer(5), scalingLayer(Scale=2)], name="auto")
    assert [layer.Name for layer in net.layers[1:]] == ["crossnorm_1", "scaling_1"]
    shown = repr(codegen.LayerArray(net.layers))
    assert "Cross Channel Normalization" in shown and "cross channel normalization with 5 channels per element" in shown
    lg = layerGraph([imageInputLayer([4, 4, 2], Name="in"), reluLayer(Name="r"), multiplicationLayer(2)])
    lg = connectLayers(lg, "in", "multiplication_1/in2")
    assert Network(lg).layers[-1].Name == "multiplication_1"

    errors = [
        (lambda: multiplicationLayer(1), r"multiplicationLayer: property 'NumInputs' is 1; expected an integer >= 2"),
        (lambda: multiplicationLayer(2.5), r"multiplicationLayer: property 'NumInputs' is 2.5"),
        (lambda: multiplicationLayer(2, Scale=1), r"multiplicationLayer: unknown option 'Scale'"),
        (lambda: crossChannelNormalizationLayer(17), r"property 'WindowChannelSize' is 17; expected a positive "
                                                     r"integer <= 16"),
        (lambda: crossChannelNormalizationLayer(0), r"property 'WindowChannelSize' is 0"),
        (lambda: crossChannelNormalizationLayer(5, Beta=0.001), r"property 'Beta' is 0.001; expected a number >= "
                                                                r"0.01"),
        (lambda: crossChannelNormalizationLayer(5, K=0), r"property 'K' is 0; expected a number >= 1e-5"),
        (lambda: crossChannelNormalizationLayer(5, Alpha=np.nan), r"property 'Alpha' is nan; expected a finite"),
        (lambda: crossChannelNormalizationLayer(5, Alpah=1), r"unknown option 'Alpah'; did you mean 'Alpha'"),
        (lambda: scalingLayer(Scale=np.inf), r"scalingLayer: property 'Scale' is inf; contains Inf"),
        (lambda: scalingLayer(Offset="a"), r"scalingLayer: property 'Offset' is 'a'; expected a numeric array"),
        (lambda: scalingLayer(Scale=[]), r"scalingLayer: property 'Scale' is \[\]; expected a numeric scalar"),
        (lambda: scalingLayer(Scale=np.ones((2, 2, 2, 2))), r"expected a scalar or an array of at most 3 dimensions"),
    ]
    for make, pattern in errors:
        with pytest.raises(LayerError, match=pattern):
            make()


def test_size_errors_name_the_inputs():
    # a 1 x 1 x 3 gate expands; a 1 x 1 x 2 gate does not fit 3 channels
    for c, ok in ((3, True), (1, True), (2, False)):
        lg = layerGraph([imageInputLayer([6, 6, 3], Name="in"), reluLayer(Name="r"), globalAveragePooling2dLayer(
            Name="g"), fullyConnectedLayer(c, Name="fc"), multiplicationLayer(2, Name="mul")])
        lg = connectLayers(lg, "r", "mul/in2")
        if ok:
            assert Network(lg).shapes["mul"] == (6, 6, 3)
        else:
            with pytest.raises(codegen.CodegenError, match=r"multiplicationLayer 'mul': input sizes differ: in2 is "
                                                            r"6x6x3 but in1 is 1x1x2; each dimension must be equal or "
                                                            r"1"):
                Network(lg)
    # MATLAB's additionLayer does not expand singleton dimensions
    lg = layerGraph([imageInputLayer([6, 6, 3], Name="in"), globalAveragePooling2dLayer(Name="g"),
                     additionLayer(2, Name="add")])
    lg = connectLayers(lg, "in", "add/in2")
    with pytest.raises(codegen.CodegenError, match=r"additionLayer 'add': input sizes differ: in1 is 1x1x3 but in2 "
                                                    r"is 6x6x3"):
        Network(lg)
    with pytest.raises(codegen.CodegenError, match=r"scalingLayer 's': property 'Scale' is \[1\. 1\.\]; its size "
                                                    r"1x1x2 does not expand to the input size 6x6x3"):
        Network([imageInputLayer([6, 6, 3]), scalingLayer(Scale=np.ones((1, 1, 2)), Name="s")])


# ------------------------------------------------------------------ random networks

def _se_block(rng, k, src, c):
    """Squeeze-and-excitation on ``src`` (c channels): layers and connections, and the output name."""
    r = max(1, c // int(rng.integers(1, 4)))
    names = [f"se{k}_{p}" for p in ("gap", "fc1", "relu", "fc2", "sig", "mul")]
    layers = [globalAveragePooling2dLayer(Name=names[0]), fullyConnectedLayer(r, Name=names[1]),
              reluLayer(Name=names[2]), fullyConnectedLayer(c, Name=names[3]), sigmoidLayer(Name=names[4]),
              multiplicationLayer(2, Name=names[5])]
    gate_first = rng.random() < 0.5
    links = [(src, names[0]), *zip(names[:4], names[1:5]), (names[4], f"{names[5]}/in{1 if gate_first else 2}"),
             (src, f"{names[5]}/in{2 if gate_first else 1}")]
    return layers, links, names[5]


def random_net(rng, index: int, odd_lrn: bool = False) -> Network:
    """A DAG: a convolution, then 2-5 blocks drawn from squeeze-and-excitation, residual sums,
    LRN after a convolution, scalings (per channel, scalar, or varying over h and w), spatial gates
    (h x w x 1 times h x w x c), products of equal-size branches (2 or 3 inputs) and a ReLU after
    a product (its epilogue); at the end, sometimes a fully connected layer."""
    h, w = (int(v) for v in rng.integers(2, 9, size=2))
    c = int(rng.integers(1, 9))
    layers = [imageInputLayer([h, w, c], Normalization="none", Name="in"),
              convolution2dLayer(3, c, Padding="same", Name="conv0")]
    links = [("in", "conv0")]
    src, n = "conv0", 0

    def add(new_layers, new_links, out):
        nonlocal src
        layers.extend(new_layers)
        links.extend(new_links)
        src = out

    for k in range(int(rng.integers(2, 6))):
        kind = rng.choice(["se", "residual", "lrn", "scaling", "spatial", "product"])
        p = f"b{k}"
        if kind == "se":
            add(*_se_block(rng, k, src, c))
        elif kind == "residual":
            add([convolution2dLayer(3, c, Padding="same", Name=f"{p}_conv"), batchNormalizationLayer(Name=f"{p}_bn"),
                 additionLayer(2, Name=f"{p}_add"), reluLayer(Name=f"{p}_relu")],
                [(src, f"{p}_conv"), (f"{p}_conv", f"{p}_bn"), (f"{p}_bn", f"{p}_add/in1"), (src, f"{p}_add/in2"),
                 (f"{p}_add", f"{p}_relu")], f"{p}_relu")
        elif kind == "lrn":
            size = int(rng.integers(1, 10))
            size -= 1 - size % 2 if odd_lrn else 0
            lrn = crossChannelNormalizationLayer(size, Alpha=float(rng.uniform(1e-4, 1)),
                                                 Beta=float(rng.uniform(0.3, 1)), K=float(rng.uniform(0.5, 2)),
                                                 Name=f"{p}_lrn")
            add([convolution2dLayer(int(rng.integers(1, 4)), c, Padding="same", Name=f"{p}_conv"), lrn],
                [(src, f"{p}_conv"), (f"{p}_conv", f"{p}_lrn")], f"{p}_lrn")
            if rng.random() < 0.4:
                add([reluLayer(Name=f"{p}_relu")], [(src, f"{p}_relu")], f"{p}_relu")
        elif kind == "scaling":
            sizes = [(1, 1, 1), (1, 1, c), (h, w, c), (h, 1, c), (1, w, 1)]
            scale = rng.uniform(-2, 2, sizes[int(rng.integers(0, 5))]).astype(np.float32)
            offset = rng.normal(0, 1, sizes[int(rng.integers(0, 5))]).astype(np.float32)
            add([scalingLayer(Scale=scale, Offset=offset, Name=f"{p}_scale")], [(src, f"{p}_scale")], f"{p}_scale")
        elif kind == "spatial":
            add([convolution2dLayer(1, 1, Name=f"{p}_conv"), sigmoidLayer(Name=f"{p}_sig"),
                 multiplicationLayer(2, Name=f"{p}_mul")],
                [(src, f"{p}_conv"), (f"{p}_conv", f"{p}_sig"), (f"{p}_sig", f"{p}_mul/in2"), (src, f"{p}_mul/in1")],
                f"{p}_mul")
        else:
            m = int(rng.integers(2, 4))
            branches = [convolution2dLayer(int(rng.integers(1, 4)), c, Padding="same", Name=f"{p}_conv{j}")
                        for j in range(m - 1)]
            add([*branches, multiplicationLayer(m, Name=f"{p}_mul")],
                [*((src, b.Name) for b in branches), *((b.Name, f"{p}_mul/in{j + 1}") for j, b in enumerate(branches)),
                 (src, f"{p}_mul/in{m}")], f"{p}_mul")
        n += 1
        if kind in ("se", "spatial", "product") and rng.random() < 0.5:
            add([reluLayer(Name=f"{p}_after")], [(src, f"{p}_after")], f"{p}_after")
    if rng.random() < 0.3:
        add([fullyConnectedLayer(int(rng.integers(1, 8)), Name="fc_out")], [(src, "fc_out")], "fc_out")
    lg = layerGraph()
    for layer in layers:                         # one at a time: addLayers connects a list in series
        lg = addLayers(lg, [layer])
    for s, d in links:
        lg = connectLayers(lg, s, d)
    net = Network(lg, seed=index, name=f"mul{index}")
    for layer in net.layers:                     # non-trivial batch-norm statistics
        if layer.FUNCTION == "batchNormalizationLayer":
            k = layer.NumChannels
            layer._p.update(TrainedMean=rng.normal(0, 1, (1, 1, k)), TrainedVariance=rng.uniform(0.2, 3, (1, 1, k)),
                            Scale=rng.uniform(0.5, 2, (1, 1, k)), Offset=rng.normal(0, 1, (1, 1, k)))
    return net


def nets(count: int, seed: int, odd_lrn: bool = False) -> list[Network]:
    rng = np.random.default_rng(seed)
    return [random_net(rng, seed * 1000 + i, odd_lrn) for i in range(count)]


def _ops(libs):
    return [op for lib in libs for op in lib.plan.ops]


def test_c_matches_reference_on_random_networks():
    batch = nets(40, 1)
    libs = codegen.build_many(batch, extra_flags=["-Werror"])
    check_against_reference(batch, libs)
    ops = _ops(libs)
    assert {op.kind for op in ops} >= {"mul", "lrn", "scale", "scale_shift", "add"}
    muls = [op for op in ops if op.kind == "mul"]
    assert any(op.inplace for op in muls) and any(any(map(any, op.attrs.expand)) for op in muls)
    assert any(op.act is not None for op in muls)                   # a ReLU after a product: its epilogue


def test_cuda_emulated_matches_reference_on_random_networks():
    batch = nets(40, 2)
    libs = codegen.build_many(batch, target="cuda", emulate=True, opt_flags=["-O1"])
    check_against_reference(batch, libs)
    assert {op.kind for op in _ops(libs)} >= {"mul", "lrn", "scale", "scale_shift"}


def test_nvcc_compiles_the_kernels_without_warnings_or_spills():
    """The real compiler (sm_80, sm_90) on a network with every new kernel; running them needs a GPU
    (make gpu-check), the emulated run above checks their results."""
    require_tool("nvcc")
    rng = np.random.default_rng(9)
    net = next(n for n in (random_net(rng, 9000 + i) for i in range(200))
               if {"mul", "lrn", "scale"} <= {op.kind for op in make_plan(n).ops})
    lib = codegen.build(net, target="cuda", write=False)
    assert not [line for line in lib.build.log.splitlines() if "warning" in line.lower()]
    assert not lib.spill_warnings()
    kernels = {k.kernel for k in lib.kernels if k.arch == "sm_90"}        # ptxas's report
    new = {f"{net.name}_{op.name}" for op in lib.plan.ops if op.kind in ("mul", "lrn", "scale")}
    assert len(new) >= 3 and new <= kernels, (new, kernels)


def test_multiplication_runs_in_place_only_over_a_dying_full_size_input():
    """A feature map that dies at the product is overwritten; one read again later is not, and the
    1 x 1 x c gate never is (it is smaller than the result)."""
    def net(reuse_later: bool):
        lg = layerGraph([imageInputLayer([5, 4, 3], Name="in"), convolution2dLayer(3, 3, Padding="same", Name="conv"),
                         globalAveragePooling2dLayer(Name="gap"), sigmoidLayer(Name="sig"),
                         multiplicationLayer(2, Name="mul"), additionLayer(2, Name="add")])
        lg = connectLayers(lg, "conv", "mul/in2")
        lg = connectLayers(lg, "conv" if reuse_later else "mul", "add/in2")
        return Network(lg, seed=0, name="inplace")
    for later, expected in ((False, True), (True, False)):
        n = net(later)
        plan = make_plan(n)
        mul = next(op for op in plan.ops if op.kind == "mul")
        assert mul.inplace is expected
        assert mul.attrs.expand == ((True, True, False), (False, False, False))
        lib = codegen.build(n, write=False)
        check_against_reference([n], [lib])


def test_cortex_m4_matches_reference():
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    rng = np.random.default_rng(3)
    net = next(n for n in (random_net(rng, 3000 + i) for i in range(50))
               if {layer.FUNCTION for layer in n.layers} >= {"multiplicationLayer", "crossChannelNormalizationLayer"})
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()           # powf pulled in without double helpers
    x = random_inputs(net, 2, seed=3)
    y, ref = dev.predict(x), net.predict(x.astype(np.float64))
    assert max(rel_error(y[i], ref[i]) for i in range(2)) < 1e-5


# ------------------------------------------------------------------ ONNX in and out

def test_export_matches_onnxruntime_and_imports_back():
    """Odd LRN windows only: onnxruntime's LRN kernel refuses even sizes (which ONNX allows), and
    onnx.reference's LRN (onnx 1.2x) sums over the wrong channels where N != C (it loops over the
    batch dimension); even windows are checked against PyTorch above."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from codegen.onnx import export_onnx, output_rank, to_onnx_layout
    seen = set()
    for net in nets(8, 4, odd_lrn=True):
        model = export_onnx(net)
        onnx.checker.check_model(model, full_check=True)
        seen |= {n.op_type for n in model.graph.node}
        x = random_inputs(net, 2, seed=1)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
        ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
        assert rel_error(y, ref) < 1e-5, net.name
        back = codegen.import_onnx(model)
        assert ({type(a).__name__ for a in back.layers} - {"RegressionOutputLayer"}
                == {type(b).__name__ for b in net.layers})
        y_back = back.onnx.from_output(back.predict(x.astype(np.float64)))
        assert rel_error(y_back, ref) < 1e-6, net.name
    assert seen >= {"Mul", "LRN", "Add", "Sum"}


def _import_torch(model, x, name, **kw):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x[:1],), buf, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, **kw)
    return codegen.import_onnx(buf.getvalue(), name=name)


class _SqueezeExcite(nn.Module):
    def __init__(self, c=8, r=4):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(c, c // r), nn.Linear(c // r, c)

    def forward(self, x):
        x = F.relu(self.conv(x))
        g = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * g.view(x.shape[0], -1, 1, 1)


class _Product(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv, self.fn = nn.Conv2d(3, 5, 3), fn

    def forward(self, x):
        y = self.conv(x)
        return self.fn(y)


class _TwoBranches(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.a, self.b, self.fn = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1), fn

    def forward(self, x):
        return self.fn(F.relu(self.a(x)), self.b(x))


TORCH_CASES = {
    "squeeze_excite": (_SqueezeExcite, {"MultiplicationLayer", "SigmoidLayer", "GlobalAveragePooling2DLayer"}),
    "silu_as_product": (lambda: _Product(lambda y: y * torch.sigmoid(y)), {"SwishLayer"}),
    "hardswish_as_product": (lambda: _Product(lambda y: y * F.hardsigmoid(y)), {"HardSwishLayer"}),
    "half_x_plus_y": (lambda: _TwoBranches(lambda a, b: a * 0.5 + b), {"ScalingLayer", "AdditionLayer"}),
    "difference_over_6": (lambda: _TwoBranches(lambda a, b: (a - b) / 6), {"ScalingLayer", "AdditionLayer"}),
    "channel_bias_and_reversed": (lambda: _TwoBranches(
        lambda a, b: (2.0 - a) * b + torch.arange(4.0).view(1, 4, 1, 1)), {"ScalingLayer", "MultiplicationLayer"}),
    "alexnet_lrn": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.LocalResponseNorm(5),
                                          nn.MaxPool2d(2), nn.Conv2d(8, 6, 3), nn.ReLU(),
                                          nn.LocalResponseNorm(3, k=2.0)), {"CrossChannelNormalizationLayer"}),
}


@pytest.mark.parametrize("case", TORCH_CASES)
def test_pytorch_export_imports_and_runs(case):
    """torch.onnx.export (legacy exporter) of each model, imported and compiled: the layers expected,
    and the C output within 1e-5 of PyTorch's."""
    pytest.importorskip("onnx")
    make, expected = TORCH_CASES[case]
    torch.manual_seed(0)
    model = make()
    x = torch.randn(3, 3, 9, 8)
    net = _import_torch(model, x, case)
    classes = [type(layer).__name__ for layer in net.layers]
    assert set(classes) >= expected, classes
    if case in ("silu_as_product", "hardswish_as_product"):
        assert "MultiplicationLayer" not in classes          # one activation layer, not a product
    lib = codegen.build(net, write=False)
    y = net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy())))
    with torch.no_grad():
        ref = model(x).numpy()
    assert rel_error(y, ref) < 1e-5


def test_pytorch_even_lrn_is_refused_with_the_reason():
    pytest.importorskip("onnx")
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LocalResponseNorm(4))
    with pytest.raises(codegen.onnx.OnnxImportError, match=r"\(AveragePool\): the channel window is '2 channels "
                                                           r"before and 1 after'; crossChannelNormalizationLayer"):
        _import_torch(model, torch.randn(1, 3, 6, 6), "even")


def _model(nodes, inputs, consts, out_shape=None, opset=17):
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_onnx_arithmetic_of_tensors_and_constants():
    """Each import against onnxruntime: tensors times tensors with ONNX broadcasting, constants of
    every shape that expands to the tensor, c - x, x / c."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper
    rng = np.random.default_rng(5)
    n = helper.make_node
    relu = [n("Relu", ["x"], ["r"]), n("Sigmoid", ["x"], ["s"]), n("GlobalAveragePool", ["r"], ["g"])]
    cases = {
        "gate": ([*relu, n("Mul", ["g", "r"], ["y"])], {}, "MultiplicationLayer"),
        "square": ([*relu, n("Mul", ["r", "r"], ["y"])], {}, "MultiplicationLayer"),
        "sub": ([*relu, n("Sub", ["s", "r"], ["y"])], {}, "AdditionLayer"),
        "per_channel": ([*relu, n("Add", ["r", "b"], ["y"])], {"b": rng.normal(size=(1, 3, 1, 1))}, "ScalingLayer"),
        "per_pixel": ([*relu, n("Mul", ["r", "b"], ["y"])], {"b": rng.normal(size=(5, 4))}, "ScalingLayer"),
        "full": ([*relu, n("Div", ["r", "b"], ["y"])], {"b": rng.uniform(1, 2, size=(1, 3, 5, 4))}, "ScalingLayer"),
        "reversed": ([*relu, n("Sub", ["b", "r"], ["y"])], {"b": np.float32(0.25)}, "ScalingLayer"),
        "negative_on_input": ([n("Mul", ["x", "b"], ["y"])], {"b": rng.normal(size=(1, 3, 1, 1)) - 2},
                              "ScalingLayer"),
    }
    for name, (nodes, consts, cls) in cases.items():
        model = _model(nodes, [("x", ["N", 3, 5, 4])], consts)
        net = codegen.import_onnx(model, name=name)
        assert cls in {type(layer).__name__ for layer in net.layers}, name
        x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
        ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        lib = codegen.build(net, write=False)
        assert rel_error(net.onnx.from_output(lib.predict(net.onnx.to_input(x))), ref) < 1e-6, name


def test_onnx_refusals_name_node_value_and_reason():
    pytest.importorskip("onnx")
    from onnx import helper
    n = helper.make_node
    base = [n("Relu", ["x"], ["r"]), n("GlobalAveragePool", ["r"], ["g"]), n("Flatten", ["g"], ["f"])]
    cases = [
        ([*base, n("Div", ["r", "g"], ["y"], name="d")], {}, r"'d' \(Div\): input 1 is 'a tensor computed by the "
                                                            r"network'; division by a computed tensor"),
        ([*base, n("Div", ["c", "r"], ["y"], name="d")], {"c": 1.0}, r"'d' \(Div\): input 1 is 'a tensor computed by "
                                                                     r"the network'; dividing a constant by a tensor"),
        ([*base, n("Div", ["r", "c"], ["y"], name="d")], {"c": np.zeros((1, 3, 1, 1))},
         r"'d' \(Div\): input 1 \(the divisor\) is '0'; x / c becomes x \* \(1 / c\)"),
        ([*base, n("Add", ["r", "g"], ["y"], name="a")], {}, r"'a' \(Add\): input 1 is 'of shape \[1, 3, 1, 1\]'; "
                                                            r"input 0 is \[1, 3, 5, 4\]; only tensors of equal shape"),
        ([*base, n("Sub", ["r", "g"], ["y"], name="s")], {}, r"'s' \(Sub\): input 1 is 'of shape \[1, 3, 1, 1\]'; "
                                                            r"input 0 is \[1, 3, 5, 4\]; a - b of two computed"),
        ([*base, n("Mul", ["r", "f"], ["y"], name="m")], {}, r"'m' \(Mul\): input 1 is 'of shape \[1, 3\]'; input 0 "
                                                            r"is \[1, 3, 5, 4\]; both inputs must be N x C x H x W"),
        ([*base, n("Mul", ["r", "c"], ["y"], name="m")], {"c": np.ones((2, 1, 1, 1))},
         r"'m' \(Mul\): input 1 \(the constant\) is 'of shape \[2, 1, 1, 1\]'; it must expand to the shape of input 0"),
        ([*base, n("Mul", ["r", "c"], ["y"], name="m")], {"c": np.ones((1, 1, 1, 1, 1))},
         r"'m' \(Mul\): input 1 \(the constant\) is 'of shape \[1, 1, 1, 1, 1\]'"),
        ([*base, n("LRN", ["r"], ["y"], name="l", size=17)], {}, r"'l' \(LRN\): crossChannelNormalizationLayer: "
                                                                 r"property 'WindowChannelSize' is 17"),
        ([*base, n("LRN", ["r"], ["y"], name="l", size=3, beta=0.001)], {}, r"'l' \(LRN\).*property 'Beta' is 0.001"),
        ([*base, n("LRN", ["f"], ["y"], name="l", size=3)], {}, None),          # N x K: channels, accepted
    ]
    for nodes, consts, pattern in cases:
        model = _model(nodes, [("x", ["N", 3, 5, 4])], consts)
        if pattern is None:
            assert codegen.import_onnx(model).layers[-1].FUNCTION == "crossChannelNormalizationLayer"
            continue
        with pytest.raises(codegen.onnx.OnnxImportError, match=pattern):
            codegen.import_onnx(model)
