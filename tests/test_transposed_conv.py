"""transposedConv2dLayer end to end, against oracles no one here wrote: PyTorch's
``conv_transpose2d`` for the semantics, onnxruntime for the ONNX export, PyTorch's own ONNX export
(nn.ConvTranspose2d) for the import; and the generated C (host, under ASan/UBSan, Cortex-M4 under
QEMU) and CUDA (CPU execution mode) against the reference on random networks, U-Net-like
encoder-decoders with a depth concatenation skip among them.

MATLAB's rules the oracle is given here, written out independently of the layer's code: the
uncropped result is ``Stride .* (in - 1) + FilterSize``; CroppingSize ``[t b l r]`` trims it;
'same' makes the output ``in .* Stride`` with the total crop ``max(FilterSize - Stride, 0)`` split
``floor`` at the top/left and ``ceil`` at the bottom/right, and ``max(Stride - FilterSize, 0)``
rows/columns past the uncropped result (MathWorks' TransposedConvolution2D
``setCroppingAndOutputSizeOffsetIfSame``); manual cropping that would leave no output gets the
least such offset below the stride. Rows past the uncropped result are torch's ``output_padding``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import codegen
from codegen import (LayerError, Network, batchNormalizationLayer, clippedReluLayer, convolution2dLayer,
                     depthConcatenationLayer, imageInputLayer, leakyReluLayer, maxPooling2dLayer, reluLayer,
                     transposedConv2dLayer)
from codegen.emit import render_files
from codegen.harness import SANITIZE, run_harness
from codegen.plan import make_plan
from codegen.targets.ptxas import resources_table
from codegen.verify import random_inputs, rel_error
from checks import TOL, check_against_reference
from conftest import require_tool
from netgen import input_layer, output_shape
from test_cuda_nvcc import gpu_or_skip, no_warnings

CONFIGS = 400
RTOL = 1e-12
CHANNELS = [1, 2, 3, 4, 5, 7, 11, 13]


# ------------------------------------------------------------------ the reference against PyTorch

def matlab_geometry(hw, f, s, cropping):
    """([t b l r], output offset (rows, cols)) by MATLAB's rules (see the module docstring)."""
    if cropping == "same":
        crop, offset = [], []
        for d in range(2):
            total = max(f[d] - s[d], 0)
            crop += [total // 2, total - total // 2]
            offset.append(max(s[d] - f[d], 0))
        return crop, offset
    crop = [cropping] * 4 if np.isscalar(cropping) else (
        [cropping[0], cropping[0], cropping[1], cropping[1]] if len(cropping) == 2 else list(cropping))
    offset = [max(0, 1 - (s[d] * (hw[d] - 1) + f[d] - crop[2 * d] - crop[2 * d + 1])) for d in range(2)]
    return crop, offset


def random_cropping(rng, high=3):
    form = rng.integers(5)
    if form == 0:
        return "same"
    if form == 1:
        return int(rng.integers(0, high + 1))
    if form == 2:
        return [int(v) for v in rng.integers(0, high + 1, 2)]
    return [int(v) for v in rng.integers(0, high + 1, 4)]


def torch_reference(x, weights, bias, s, crop, offset):
    """conv_transpose2d (N, C, H, W) with the rows past the uncropped result as output_padding, then
    cropped: by torch's own padding where the cropping is symmetric, by slicing otherwise."""
    t, b, l, r = crop
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    wt = torch.from_numpy(weights.astype(np.float64).transpose(3, 2, 0, 1).copy())     # C x F x kh x kw
    bt = torch.from_numpy(bias.astype(np.float64).ravel())
    if t == b and l == r and offset == [0, 0]:
        y = F.conv_transpose2d(xt, wt, bt, stride=s, padding=(t, l))
    else:
        y = F.conv_transpose2d(xt, wt, bt, stride=s, output_padding=tuple(offset))
        y = y[:, :, t: y.shape[2] - b, l: y.shape[3] - r]
    return y.numpy().transpose(0, 2, 3, 1)


def test_reference_matches_pytorch():
    rng = np.random.default_rng(14)
    drawn = set()
    for _ in range(CONFIGS):
        f = [int(v) for v in rng.integers(1, 6, 2)]
        s = [int(v) for v in rng.integers(1, 4, 2)]
        hw = [int(v) for v in rng.integers(1, 8, 2)]
        c, nf = int(rng.choice(CHANNELS)), int(rng.choice(CHANNELS))
        cropping = random_cropping(rng)
        crop, offset = matlab_geometry(hw, f, s, cropping)
        if any(offset[d] >= s[d] for d in range(2)):          # no output: MATLAB refuses (tested below)
            continue
        weights = rng.standard_normal((*f, nf, c)).astype(np.float32)
        bias = rng.standard_normal((1, 1, nf)).astype(np.float32)
        layer = transposedConv2dLayer(f, nf, Stride=s, Cropping=cropping, Weights=weights, Bias=bias)
        net = Network([imageInputLayer([*hw, c], Normalization="none"), layer])
        x = rng.standard_normal((int(rng.integers(1, 3)), *hw, c))
        y = net.predict(x)
        ref = torch_reference(x, weights, bias, s, crop, offset)
        config = dict(f=f, s=s, hw=hw, c=c, nf=nf, cropping=cropping)
        assert net.layers[1].CroppingSize == crop and list(net.layers[1].output_offset) == offset, config
        assert y.shape == ref.shape, f"{config}: shape {y.shape}, torch gives {ref.shape}"
        if cropping == "same":
            assert y.shape[1:3] == (hw[0] * s[0], hw[1] * s[1]), config
        assert np.linalg.norm(y - ref) <= RTOL * np.linalg.norm(ref), config
        drawn.add((cropping == "same", max(s) > 1, any(offset), min(f) == 1))
    assert len(drawn) >= 12, drawn        # 'same', strides, offsets and 1-wide filters in most combinations


def test_same_cropping_split_and_offset():
    """MATLAB's split of an odd crop: the extra row and column at the bottom and right."""
    def resolved(f, s, hw=(3, 3)):
        net = Network([imageInputLayer([*hw, 1]), transposedConv2dLayer(f, 1, Stride=s, Cropping="same")])
        return net.layers[1].CroppingSize, net.layers[1].output_offset, net.output_shape[:2]
    assert resolved(4, 1) == ([1, 2, 1, 2], (0, 0), (3, 3))
    assert resolved(3, 2) == ([0, 1, 0, 1], (0, 0), (6, 6))
    assert resolved([5, 2], [2, 3]) == ([1, 2, 0, 0], (0, 1), (6, 9))
    assert resolved(1, 3) == ([0, 0, 0, 0], (2, 2), (9, 9))


# ------------------------------------------------------------------ options, display, errors

def test_options_display_and_errors():
    layer = transposedConv2dLayer(11, 96, "Stride", 4)
    assert (layer.FilterSize, layer.NumFilters, layer.Stride) == ([11, 11], 96, [4, 4])
    assert (layer.CroppingMode, layer.CroppingSize, layer.NumChannels) == ("manual", [0, 0, 0, 0], "auto")
    assert (layer.WeightsInitializer, layer.BiasInitializer) == ("glorot", "zeros")
    assert (layer.WeightLearnRateFactor, layer.BiasLearnRateFactor, layer.WeightL2Factor, layer.BiasL2Factor) == \
        (1.0, 1.0, 1.0, 0.0)
    assert transposedConv2dLayer(3, 2, Cropping=2).CroppingSize == [2, 2, 2, 2]
    assert transposedConv2dLayer(3, 2, Cropping=[1, 2]).CroppingSize == [1, 1, 2, 2]
    assert transposedConv2dLayer(3, 2, Cropping=[1, 2, 3, 4]).Cropping == [1, 2, 3, 4]
    assert transposedConv2dLayer(3, 2, cropping="SAME").CroppingMode == "same"
    text = repr(transposedConv2dLayer([3, 5], 8, Stride=[2, 1], Cropping="same", Name="up"))
    for line in ["TransposedConvolution2DLayer with properties", "Name: 'up'", "FilterSize: [3 5]",
                 "NumChannels: 'auto'", "Stride: [2 1]", "CroppingMode: 'same'", "CroppingSize: [0 0 0 0]",
                 "Weights: []"]:
        assert line in text, text
    net = Network([imageInputLayer([4, 4, 3]), transposedConv2dLayer(3, 8, Stride=2, Cropping="same"),
                   transposedConv2dLayer(2, 1, Cropping=[1, 0, 0, 1])], seed=0)
    names = [layer.Name for layer in net.layers[1:]]
    assert names == ["transposed-conv_1", "transposed-conv_2"]
    table = repr(codegen.LayerArray(net.layers))
    assert "2-D Transposed Convolution" in table
    assert "8 3x3x3 transposed convolutions with stride [2  2] and cropping 'same'" in table
    assert "cropping [1  0  0  1]" in table
    assert net.layers[1].Weights.shape == (3, 3, 8, 3) and net.layers[1].Bias.shape == (1, 1, 8)
    assert net.output_shape == (8, 8, 1)

    with pytest.raises(LayerError, match=r"transposedConv2dLayer 'up': property 'Cropping' is 'full'; expected "
                                         r"'same', a nonnegative integer, \[a b\] or \[t b l r\]"):
        transposedConv2dLayer(3, 4, "Name", "up", "Cropping", "full")
    for bad in (-1, [1, 2, 3], 1.5, [1, np.nan]):
        with pytest.raises(LayerError, match="transposedConv2dLayer: property 'Cropping'"):
            transposedConv2dLayer(3, 4, Cropping=bad)
    with pytest.raises(LayerError, match="property 'Stride' is 0"):
        transposedConv2dLayer(3, 4, Stride=0)
    with pytest.raises(LayerError, match="property 'NumFilters'"):
        transposedConv2dLayer(3, 0)
    with pytest.raises(LayerError, match="unknown option 'Padding'"):
        transposedConv2dLayer(3, 4, Padding=1)                 # MATLAB's transposed layer crops; it does not pad
    with pytest.raises(LayerError, match="property 'NumChannels' is 3; the input has 2 channels"):
        Network([imageInputLayer([4, 4, 2]), transposedConv2dLayer(3, 4, NumChannels=3)])
    with pytest.raises(LayerError, match=r"property 'Weights'.*expected size 3x3x4x2, got 3x3x2x4"):
        Network([imageInputLayer([4, 4, 2]), transposedConv2dLayer(3, 4, Weights=np.zeros((3, 3, 2, 4)))])
    with pytest.raises(LayerError, match=r"property 'CroppingSize' is \[5 5 0 0\]; cropping 5\+5 rows of the "
                                         r"height 4 .*leaves no output"):
        Network([imageInputLayer([2, 2, 1]), transposedConv2dLayer(3, 1, Cropping=[5, 5, 0, 0])])
    with pytest.raises(LayerError, match="property 'CroppingSize': this property is read-only"):
        transposedConv2dLayer(3, 4).CroppingSize = [1, 1, 1, 1]
    # MATLAB's least offset: a 1x1 input, filter 2, stride 3, 2 rows cropped at the top -> one row, bias only
    lone = Network([imageInputLayer([1, 1, 1], Normalization="none"),
                    transposedConv2dLayer(2, 1, Stride=3, Cropping=[2, 0, 0, 0], Bias=np.ones((1, 1, 1)))])
    assert lone.output_shape == (1, 2, 1) and lone.layers[1].output_offset == (1, 0)
    assert np.all(lone.predict(np.ones((1, 1, 1))) == 1.0)


# ------------------------------------------------------------------ random networks

def bn(rng, c):
    return batchNormalizationLayer(TrainedMean=rng.normal(0, 0.5, (1, 1, c)),
                                   TrainedVariance=rng.uniform(0.3, 2.0, (1, 1, c)),
                                   Scale=rng.uniform(0.5, 1.5, (1, 1, c)), Offset=rng.normal(0, 0.5, (1, 1, c)))


def activation(rng):
    return [reluLayer(), leakyReluLayer(float(rng.uniform(0.05, 0.3))), clippedReluLayer(float(rng.uniform(0.5, 3)))][
        int(rng.integers(3))]


def tconv(rng, f, s, cropping, nf):
    return transposedConv2dLayer(f, nf, Stride=s, Cropping=cropping, Bias=rng.normal(0, 0.5, (1, 1, nf)))


def random_chain(rng, name):
    """Transposed convolutions of random geometry after convolutions, poolings, batch norm and
    activations, with batch norm and activations after them."""
    h, w = (int(v) for v in rng.integers(1, 9, 2))
    c = int(rng.choice(CHANNELS))
    layers = [input_layer(rng, h, w, c)]
    if rng.random() < 0.5:
        layers += [convolution2dLayer(int(rng.integers(1, 4)), int(rng.choice(CHANNELS)), Padding="same"),
                   activation(rng)]
    if rng.random() < 0.3 and min(h, w) >= 2:
        layers.append(maxPooling2dLayer(2, Stride=2))
    shape = Network(layers).output_shape
    for _ in range(int(rng.integers(1, 3))):
        while True:                     # a geometry that leaves an output (MATLAB refuses the others)
            f = [int(v) for v in rng.integers(1, 6, 2)]
            s = [int(v) for v in rng.integers(1, 4, 2)]
            nf = int(rng.choice(CHANNELS + [16, 19, 33]))
            layer = tconv(rng, f, s, random_cropping(rng, 2), nf)
            try:
                shape = output_shape(layer, [shape])
                break
            except LayerError:
                continue
        layers.append(layer)
        if rng.random() < 0.5:
            layers.append(bn(rng, nf))
        if rng.random() < 0.6:
            layers.append(activation(rng))
    return Network(layers, seed=int(rng.integers(1 << 30)), name=name)


def random_unet(rng, name):
    """conv -> [bn] -> act (the skip) -> maxpool -> conv -> act -> transposed conv back to the skip's
    size -> [bn] -> [act] -> depth concatenation with the skip -> conv -> act -> [transposed conv]."""
    h, w = (int(v) for v in rng.integers(2, 11, 2))
    c, f1, f2, fu = (int(rng.choice(CHANNELS)) for _ in range(4))
    lg = codegen.layerGraph([input_layer(rng, h, w, c)])
    count = [0]

    def chain(layers, src):
        """Add ``layers`` in series after ``src``; the name of the last."""
        nonlocal lg
        for layer in layers:
            count[0] += 1
            layer.Name = f"n{count[0]}_{layer.BASE_NAME}"
        lg = lg.addLayers(layers).connectLayers(src, layers[0].Name)
        return layers[-1].Name

    enc = [convolution2dLayer(3, f1, Padding="same", Bias=rng.normal(0, .3, (1, 1, f1)))]
    if rng.random() < 0.5:
        enc.append(bn(rng, f1))
    skip = chain([*enc, activation(rng)], lg.names()[0])
    dh, dw = -(-h // 2), -(-w // 2)
    down = chain([maxPooling2dLayer(2, Stride=2, Padding="same"),
                  convolution2dLayer(3, f2, Padding="same", Bias=rng.normal(0, .3, (1, 1, f2))), activation(rng)], skip)
    # back to h x w: the uncropped result 2 * (d - 1) + k must be at least h; crop the rest (a random split)
    k = [int(rng.integers(max(2, h - 2 * (dh - 1)), 6)), int(rng.integers(max(2, w - 2 * (dw - 1)), 6))]
    if h % 2 == 0 and w % 2 == 0 and rng.random() < 0.4:
        cropping = "same"
    else:
        tot = [2 * (dh - 1) + k[0] - h, 2 * (dw - 1) + k[1] - w]
        top, left = int(rng.integers(0, tot[0] + 1)), int(rng.integers(0, tot[1] + 1))
        cropping = [top, tot[0] - top, left, tot[1] - left]
    up = [tconv(rng, k, 2, cropping, fu)]
    if rng.random() < 0.5:
        up.append(bn(rng, fu))
    if rng.random() < 0.7:
        up.append(activation(rng))
    up_name = chain(up, down)
    lg = lg.addLayers(depthConcatenationLayer(2, Name="cat")).connectLayers(up_name, "cat/in1")
    lg = lg.connectLayers(skip, "cat/in2")
    tail = [convolution2dLayer(int(rng.integers(1, 4)), int(rng.choice(CHANNELS)), Padding="same"), activation(rng)]
    if rng.random() < 0.5:
        tail.append(tconv(rng, int(rng.integers(1, 4)), int(rng.integers(1, 4)), "same", int(rng.choice(CHANNELS))))
    chain(tail, "cat")
    return Network(lg, seed=int(rng.integers(1 << 30)), name=name)


def nets(count: int, seed: int) -> list[Network]:
    rng = np.random.default_rng(seed)
    return [(random_unet if i % 2 else random_chain)(rng, f"tc{seed}_{i}") for i in range(count)]


def tconv_ops(libs):
    return [op for lib in libs for op in lib.plan.ops if op.kind == "tconv"]


def test_c_matches_reference_on_random_networks():
    batch = nets(40, 1)
    libs = codegen.build_many(batch, extra_flags=["-Werror"])
    check_against_reference(batch, libs)
    ops = tconv_ops(libs)
    # the paths the networks are meant to exercise were taken: fused activations and batch norm,
    # writes into a concatenation's channel slice, rows past the uncropped result, strides 1 to 3
    assert any(op.act for op in ops) and any("batchnorm" in "+".join(op.layers) for op in ops)
    assert any(not op.output.dense for op in ops)
    assert any(op.attrs.eh or op.attrs.ew for op in ops)
    assert {op.attrs.sh for op in ops} >= {1, 2, 3}


def test_cuda_emulated_matches_reference_on_random_networks():
    batch = nets(40, 2)
    libs = codegen.build_many(batch, target="cuda", emulate=True, opt_flags=["-O1"])
    check_against_reference(batch, libs)
    assert any(not op.output.dense for op in tconv_ops(libs))


def test_nvcc_compiles_the_kernels_without_warnings_or_spills():
    require_tool("nvcc")
    batch = nets(6, 3)
    libs = codegen.build_many(batch, target="cuda")
    no_warnings(libs[0].build.log)
    for lib in libs:
        kernels = [k for k in lib.kernels if "transposed_conv" in k.kernel]      # named after the layers
        assert kernels and not lib.spill_warnings(), resources_table(lib.kernels)
        assert all(k.registers <= 128 and k.shared_bytes == 0 for k in kernels), resources_table(kernels)


def test_cuda_on_a_gpu_matches_reference():
    require_tool("nvcc")
    batch = nets(6, 3)
    libs = codegen.build_many(batch, target="cuda")
    gpu_or_skip(libs[0])
    check_against_reference(batch, libs)


def test_batchnorm_and_relu_fuse_into_the_transposed_convolution():
    rng = np.random.default_rng(5)
    net = Network([imageInputLayer([3, 4, 2]), tconv(rng, 3, 2, "same", 5), bn(rng, 5), reluLayer()], seed=1)
    plan = make_plan(net)
    assert [op.kind for op in plan.ops] == ["tconv"] and plan.ops[0].act.kind == "relu"
    assert plan.ops[0].layers == ["transposed-conv_1", "batchnorm_1", "relu_1"]
    x = random_inputs(net, 2, seed=1)
    assert rel_error(codegen.build(net, write=False).predict(x), net.predict(x.astype(np.float64))) < TOL


def test_clean_under_sanitizers():
    """Heap buffers of exactly the documented sizes, NaN-filled workspace, ASan + UBSan: a U-Net and a
    chain whose first transposed convolution reads the input buffer itself (taps at its edges)."""
    rng = np.random.default_rng(6)
    for net in [random_unet(rng, "san_unet"),
                Network([imageInputLayer([3, 5, 3], Normalization="none"), tconv(rng, [3, 4], [2, 3], [0, 1, 2, 0], 7),
                         reluLayer(), tconv(rng, 1, 3, "same", 4)], seed=3, name="san_chain")]:
        plan = make_plan(net)
        x = random_inputs(net, 2, seed=5)
        y = run_harness(render_files(net, plan), net.name, x, plan.output.size, cflags=["-O1", *SANITIZE])
        ref = net.predict(x.astype(np.float64)).reshape(2, -1)
        assert max(rel_error(y[i], ref[i]) for i in range(2)) < TOL


def test_sanitizers_catch_a_tap_past_the_input():
    """The check can fail: a kernel that lets the tap right of the input read it is reported."""
    rng = np.random.default_rng(7)
    net = Network([imageInputLayer([3, 3, 2], Normalization="none"), tconv(rng, 3, 2, 0, 4)], seed=3, name="oob")
    files = render_files(net, make_plan(net))
    broken = files["oob.c"].replace("(unsigned)ix < (unsigned)IW", "(unsigned)ix <= (unsigned)IW")
    assert broken != files["oob.c"]
    files["oob.c"] = broken
    with pytest.raises(codegen.BuildError, match="heap-buffer-overflow"):
        run_harness(files, "oob", random_inputs(net, 1), make_plan(net).output.size, cflags=["-O1", *SANITIZE])


def test_cortex_m4_matches_reference():
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    net = random_unet(np.random.default_rng(8), "tc_m4")
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()
    x = random_inputs(net, 2, seed=3)
    y, ref = dev.predict(x), net.predict(x.astype(np.float64))
    assert max(rel_error(y[i], ref[i]) for i in range(2)) < TOL


# ------------------------------------------------------------------ ONNX in and out

def test_export_matches_onnxruntime_and_imports_back():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from codegen.onnx import export_onnx, output_rank, to_onnx_layout
    rng = np.random.default_rng(9)
    batch = nets(8, 4) + [Network([imageInputLayer([3, 2, 2]), tconv(rng, [1, 2], [3, 3], "same", 3)], seed=2,
                                  name="offset")]
    for net in batch:
        model = export_onnx(net)
        onnx.checker.check_model(model, full_check=True)
        assert "ConvTranspose" in {n.op_type for n in model.graph.node}
        x = random_inputs(net, 2, seed=1)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
        ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
        assert rel_error(y, ref) < 1e-5, net.name
        back = codegen.import_onnx(model)
        assert [type(a).__name__ for a in back.layers] == [type(b).__name__ for b in net.layers]
        for a, b in zip(back.layers, net.layers):
            if type(b).__name__ == "TransposedConvolution2DLayer":
                assert np.array_equal(a.Weights, b.Weights) and np.array_equal(a.Bias, b.Bias)   # bit-exact
                assert (a.CroppingSize, a.output_offset) == (b.CroppingSize, b.output_offset)
        y_back = back.onnx.from_output(back.predict(x.astype(np.float64)))
        assert rel_error(y_back, ref) < 1e-6


class _Decoder(torch.nn.Module):
    """conv -> ConvTranspose2d -> BatchNorm -> ReLU, concatenated with an upsampled skip."""

    def __init__(self, k, s, p, op):
        super().__init__()
        self.enc = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.up = torch.nn.ConvTranspose2d(6, 5, k, stride=s, padding=p, output_padding=op)
        self.bn = torch.nn.BatchNorm2d(5)
        self.skip = torch.nn.ConvTranspose2d(3, 2, k, stride=s, padding=p, output_padding=op, bias=False)

    def forward(self, x):
        y = torch.relu(self.bn(self.up(torch.relu(self.enc(x)))))
        return torch.cat([y, self.skip(x)], dim=1)


@pytest.mark.parametrize("k, s, p, op", [(3, 2, 1, 1), (4, 2, 1, 0), (2, 2, 0, 0), (1, 2, 0, 1), (5, 3, 2, 1),
                                         (3, (2, 1), (1, 0), (1, 0)), (3, 1, 1, 0), (3, 2, 0, 1), (3, 3, 1, 2)])
def test_pytorch_export_imports_and_runs(k, s, p, op):
    """nn.ConvTranspose2d exported by torch.onnx (legacy exporter), imported and compiled: the C output
    equals PyTorch's. The last two put output_padding past the padding (rows past the uncropped result:
    zero filter taps at import)."""
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = _Decoder(k, s, p, op)
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(2, 3, 5, 6)
    buf = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buf, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    net = codegen.import_onnx(buf.getvalue(), name="torch_tc")
    ups = [layer for layer in net.layers if type(layer).__name__ == "TransposedConvolution2DLayer"]
    assert len(ups) == 2
    lib = codegen.build(net, write=False)
    y = net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy())))
    with torch.no_grad():
        ref = model(x).numpy()
    assert y.shape == ref.shape and rel_error(y, ref) < 1e-5


def onnx_node_model(rng, c, f, h, w, k, **attrs):
    """A model of one ConvTranspose node with random weights and bias."""
    from onnx import TensorProto, helper, numpy_helper
    weights = rng.standard_normal((c, f, *k)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "W", "B"], ["y"], name="up", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weights, "W"),
                               numpy_helper.from_array(rng.standard_normal(f).astype(np.float32), "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_onnx_attributes_against_onnxruntime():
    """Single ConvTranspose nodes with random pads and output_padding, auto_pad and output_shape,
    imported: our reference equals onnxruntime's output; for SAME_* whose output reaches past the
    uncropped result (a kernel smaller than the stride), where onnxruntime gives an output other
    than in * stride, ONNX's reference evaluator is the oracle."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(10)
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 4          # its refusals are expected here
    seen = set()
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 7, 2))
        c, f = (int(v) for v in rng.integers(1, 5, 2))
        s = [int(v) for v in rng.integers(1, 4, 2)]
        k = [int(v) for v in rng.integers(1, 6, 2)]
        full = [s[0] * (h - 1) + k[0], s[1] * (w - 1) + k[1]]
        mode = str(rng.choice(["pads", "SAME_UPPER", "SAME_LOWER", "VALID", "output_shape"]))
        attrs = dict(strides=s)
        if mode == "pads":
            attrs.update(pads=[int(v) for v in rng.integers(0, 3, 4)],
                         output_padding=[int(rng.integers(0, s[0])), int(rng.integers(0, s[1]))])
        elif mode == "output_shape":
            attrs["output_shape"] = [full[0] + int(rng.integers(-2, s[0])), full[1] + int(rng.integers(-2, s[1]))]
        else:
            attrs["auto_pad"] = mode
        model = onnx_node_model(rng, c, f, h, w, k, **attrs)
        x = rng.standard_normal((1, c, h, w)).astype(np.float32)
        if mode.startswith("SAME") and min(k[0] - s[0], k[1] - s[1]) < 0:
            ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
        else:
            try:
                ref = ort.InferenceSession(model.SerializeToString(), quiet,
                                           providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            except Exception:       # noqa: BLE001 - onnxruntime refuses an output of no rows: so do we
                with pytest.raises(codegen.CodegenError, match="leave no output|2 positive integers"):
                    codegen.import_onnx(model)
                continue
        net = codegen.import_onnx(model)
        y = net.onnx.from_output(net.predict(net.onnx.to_input(x.astype(np.float64))))
        assert y.shape == ref.shape and rel_error(y, ref) < 1e-5, (attrs, k, (h, w))
        layer = net.layers[1]
        path = "same" if layer.CroppingMode == "same" else "zero taps" if layer.FilterSize != k else "crop"
        seen.add((mode, path))
    assert {m for m, _ in seen} == {"pads", "SAME_UPPER", "SAME_LOWER", "VALID", "output_shape"}
    assert {p for _, p in seen} == {"same", "zero taps", "crop"}


def test_onnx_refusals_name_the_attribute_and_the_reason():
    pytest.importorskip("onnx")
    rng = np.random.default_rng(11)
    with pytest.raises(codegen.CodegenError, match=r"attribute 'group' is 2; grouped transposed convolutions"):
        codegen.import_onnx(onnx_node_model(rng, 4, 2, 3, 3, [3, 3], group=2))
    with pytest.raises(codegen.CodegenError, match=r"attribute 'dilations' is \[2, 2\]; transposedConv2dLayer has "
                                                   "no dilation"):
        codegen.import_onnx(onnx_node_model(rng, 1, 1, 3, 3, [2, 2], dilations=[2, 2]))
    # an output reaching stride rows or more past the uncropped result (5 rows: 3 x (2 - 1) + 2)
    with pytest.raises(codegen.CodegenError, match=r"attribute 'output_shape' is \[8, 5\]; the output \(8x5\) "
                                                   r"starts 0 row\(s\) and 0 column\(s\) before and extends 3 row\(s\) "
                                                   r"and 0 column\(s\) past the uncropped result; at most stride - 1"):
        codegen.import_onnx(onnx_node_model(rng, 1, 1, 2, 2, [2, 2], strides=[3, 3], output_shape=[8, 5]))
    # the zero taps are bounded before anything is allocated (a 2^20 stride and output_padding 2^20 - 1)
    with pytest.raises(codegen.CodegenError, match=r"its filter with the zero taps added has 4294971392 elements "
                                                   r"\(shape \[64, 64, 1048577, 1\]\); the limit is 268435456"):
        codegen.import_onnx(onnx_node_model(rng, 64, 64, 2, 1, [2, 1], strides=[2 ** 20, 1],
                                            output_padding=[2 ** 20 - 1, 0]))
