"""ONNX import of what real PyTorch CNNs export around their layers: zero ``Pad`` before a
convolution or pooling (Keras-style asymmetric 'same', ``nn.ZeroPad2d``), ShuffleNet's channel
shuffle (Reshape -> Transpose -> Reshape), ``Split`` and ``Slice`` on the channels.

Oracles no one here wrote: onnxruntime for hand-written single-node and pattern models,
PyTorch (float64) for models exported by ``torch.onnx`` (the legacy exporter, ``dynamo=False``,
and the default one where it exports here); every model runs through ``net.predict`` (the NumPy
reference) and the compiled C: relative error ||y - ref|| / ||ref|| < 1e-5 on seeded random
inputs. The extension layers (channelShuffleLayer, channelSliceLayer) run as generated C, as
CUDA in the CPU execution mode and on an emulated Cortex-M4 against the reference, and export to
ONNX (checked with onnxruntime). Refusals must name the node, the attribute or input, the value
and the reason.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import codegen  # noqa: E402
from codegen.onnx import OnnxImportError, import_onnx  # noqa: E402
from codegen.verify import rel_error  # noqa: E402

TOL = 1e-5


# =========================================================================== helpers

def onnx_model(nodes, x_shape, inits=(), opset=17, outputs=("y",)):
    """A model of ``nodes`` reading ``x`` (float, ``x_shape``) with the float ``outputs``."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def ort_run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def weights(rng, *shape):
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def reference_output(net, x):
    """``net.predict`` (float64) in the ONNX model's layout, one array per graph output."""
    y = net.onnx.from_output(net.predict(net.onnx.to_input(x).astype(np.float64)))
    return list(y) if isinstance(y, tuple) else [y]


def compiled_output(net, lib, x):
    y = net.onnx.from_output(lib.predict(net.onnx.to_input(x)))
    return list(y) if isinstance(y, tuple) else [y]


def check_against_ort(models, batch=2, seed=0):
    """Import every model, compare ``net.predict`` with onnxruntime, then compile them all in one
    compiler run and compare the C with onnxruntime. Returns the networks."""
    nets, cases = [], []
    for k, model in enumerate(models):
        net = import_onnx(model, name=f"m{k}")
        shape = [d.dim_value or batch for d in model.graph.input[0].type.tensor_type.shape.dim]
        x = np.random.default_rng(seed + k).standard_normal(shape).astype(np.float32)
        want = ort_run(model, x)
        got = reference_output(net, x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape, f"model {k}: shape {g.shape}, onnxruntime {w.shape}"
            assert rel_error(g, w) < TOL, f"model {k}: reference vs onnxruntime {rel_error(g, w):.2e}"
        nets.append(net)
        cases.append((x, want))
    for net, lib, (x, want) in zip(nets, codegen.build_many(nets), cases):
        for g, w in zip(compiled_output(net, lib, x), want):
            assert rel_error(g, w) < TOL, f"{net.name}: C vs onnxruntime {rel_error(g, w):.2e}"
    return nets


def export_torch(model, shape, dynamo=False, opset=17) -> bytes:
    """ONNX bytes of ``model`` (eval mode) for inputs of ``shape`` (N, C, H, W): the legacy exporter
    with a dynamic batch, or the default (dynamo) exporter."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(model, (torch.zeros(shape),), dynamo=True, verbose=False).model_proto
        buf = io.BytesIO()
        torch.onnx.export(model, (torch.zeros(shape),), buf, dynamo=False, opset_version=opset, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        return buf.getvalue()


def check_torch(model, shape, dynamo=False, batch=3, seed=0, compile_c=True):
    """Export ``model`` (seeded nonzero parameters), import it and compare ``net.predict`` and the
    compiled C with PyTorch in float64. Returns the network."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    data = export_torch(model, (1, *shape), dynamo=dynamo)
    net = import_onnx(data, name="torch_case")
    n = 1 if dynamo else batch                 # the default exporter fixes the batch
    x = np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)
    with torch.no_grad():
        ref = copy.deepcopy(model).double().eval()(torch.from_numpy(x.astype(np.float64))).numpy()
    y = reference_output(net, x)[0]
    assert y.shape == ref.shape and rel_error(y, ref) < TOL, f"reference: {rel_error(y, ref):.2e}"
    if compile_c:
        lib = codegen.build(net, write=False)
        yc = compiled_output(net, lib, x)[0]
        assert rel_error(yc, ref) < TOL, f"C: relative error {rel_error(yc, ref):.2e}"
    return net


def functions(net) -> list[str]:
    return [layer.FUNCTION for layer in net.layers]


def slices(net) -> list[tuple[int, int]]:
    """(FirstChannel, NumChannels) of every channelSliceLayer."""
    return [(a.FirstChannel, a.NumChannels) for a in net.layers if a.FUNCTION == "channelSliceLayer"]


# =========================================================================== Pad

def _pad_node(pads, value=None, name="pad", opset=17, out="p", mode=None, data="x"):
    """A Pad node of ``data`` and its initializers (``pads`` in ONNX order, all four axes)."""
    extra = {} if mode is None else {"mode": mode}
    if opset < 11:
        attrs = dict(pads=list(pads), **extra)
        if value is not None:
            attrs["value"] = float(value)
        return helper.make_node("Pad", [data], [out], name=name, **attrs), []
    inputs = [data, f"{name}_pads"] + ([f"{name}_value"] if value is not None else [])
    inits = [(f"{name}_pads", np.asarray(pads, np.int64))]
    if value is not None:
        inits.append((f"{name}_value", np.float32(value)))
    return helper.make_node("Pad", inputs, [out], name=name, **extra), inits


def _pad_then(op, pad_values, opset=17, relu=False, value=None, mode=None, x_shape=("N", 3, 7, 8), **attrs):
    """[Relu ->] Pad -> ``op`` (Conv with 4 random 3x3 filters, MaxPool, AveragePool)."""
    rng = np.random.default_rng(sum(pad_values) + opset)
    nodes, inits = [], []
    data = "x"
    if relu:
        nodes.append(helper.make_node("Relu", ["x"], ["r"], name="relu"))
        data = "r"
    pad, pad_inits = _pad_node(pad_values, value, opset=opset, data=data, mode=mode)
    nodes.append(pad)
    inits += pad_inits
    if op == "Conv":
        inits += [("w", weights(rng, 4, x_shape[1], 3, 3)), ("b", weights(rng, 4))]
        nodes.append(helper.make_node("Conv", ["p", "w", "b"], ["y"], name="conv", **attrs))
    else:
        nodes.append(helper.make_node(op, ["p"], ["y"], name="pool", **attrs))
    return onnx_model(nodes, x_shape, inits, opset=opset)


PAD_CASES = {
    # Keras-style asymmetric 'same' before a stride-2 convolution: F.pad(x, (0, 1, 0, 1))
    "conv_keras_same": lambda: _pad_then("Conv", [0, 0, 0, 0, 0, 0, 1, 1], strides=[2, 2]),
    "conv_own_pads": lambda: _pad_then("Conv", [0, 0, 2, 1, 0, 0, 0, 3], pads=[1, 0, 1, 2], strides=[1, 2]),
    "conv_explicit_zero": lambda: _pad_then("Conv", [0, 0, 1, 1, 0, 0, 1, 1], value=0.0, dilations=[2, 1]),
    "conv_same_upper": lambda: _pad_then("Conv", [0, 0, 1, 0, 0, 0, 0, 2], auto_pad="SAME_UPPER", strides=[2, 2]),
    "conv_same_lower": lambda: _pad_then("Conv", [0, 0, 0, 1, 0, 0, 3, 0], auto_pad="SAME_LOWER", strides=[2, 3]),
    "conv_opset10_attribute": lambda: _pad_then("Conv", [0, 0, 1, 2, 0, 0, 2, 1], opset=10, value=0.0),
    "conv_opset9_no_value": lambda: _pad_then("Conv", [0, 0, 0, 1, 0, 0, 1, 0], opset=9),
    "maxpool_after_relu": lambda: _pad_then("MaxPool", [0, 0, 1, 0, 0, 0, 0, 1], relu=True, kernel_shape=[2, 2],
                                            strides=[2, 2]),
    "maxpool_own_pads_ceil": lambda: _pad_then("MaxPool", [0, 0, 1, 0, 0, 0, 0, 1], relu=True, kernel_shape=[3, 3],
                                               strides=[2, 2], pads=[1, 1, 0, 0], ceil_mode=1),
    "avgpool_include_pad": lambda: _pad_then("AveragePool", [0, 0, 1, 0, 0, 0, 1, 1], kernel_shape=[3, 2],
                                             pads=[1, 1, 1, 0], count_include_pad=1, strides=[2, 1]),
    "avgpool_exclude_pad_no_own": lambda: _pad_then("AveragePool", [0, 0, 0, 1, 0, 0, 1, 1], kernel_shape=[2, 2],
                                                    strides=[2, 2]),
    "nothing_padded": lambda: _pad_then("AveragePool", [0] * 8, kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
}


def test_pad_folds_into_conv_and_pooling_as_onnxruntime_computes():
    models = [make() for make in PAD_CASES.values()]
    nets = check_against_ort(models)
    for name, net in zip(PAD_CASES, nets):
        assert len(net.layers) == 2 + ("relu" in name or "maxpool" in name), (name, functions(net))
    conv = nets[0].layers[1]
    assert conv.PaddingSize == [0, 1, 0, 1]                       # [t b l r]: bottom and right
    assert nets[1].layers[1].PaddingSize == [3, 1, 1, 5]           # the node's pads plus the Pad's, as [t b l r]
    assert nets[-1].layers[1].PaddingValue == "mean"               # count_include_pad 0 still (no Pad folded)


def test_pad_with_axes_input_opset18():
    """Opset 18: ``axes`` says which axes the pads are for."""
    rng = np.random.default_rng(5)
    pad = helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"], name="pad")
    conv = helper.make_node("Conv", ["p", "w"], ["y"], name="conv", strides=[2, 2])
    model = onnx_model([pad, conv], ("N", 2, 6, 7), [("pads", np.array([0, 1, 2, 1], np.int64)),
                                                   ("axes", np.array([-1, 2], np.int64)),
                                                   ("w", weights(rng, 3, 2, 3, 3))], opset=18)
    net = check_against_ort([model])[0]
    assert net.layers[1].PaddingSize == [1, 1, 0, 2]


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_pytorch_keras_same_pad_before_stride2_conv(dynamo):
    class KerasSame(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, stride=2)
            self.conv2 = nn.Conv2d(8, 4, 3, stride=2)

        def forward(self, x):
            return self.conv2(F.relu(self.conv1(F.pad(x, (0, 1, 0, 1)))).relu())

    net = check_torch(KerasSame(), (3, 10, 9), dynamo=dynamo)
    assert functions(net).count("convolution2dLayer") == 2
    assert net.layers[1].PaddingSize == [0, 1, 0, 1]


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_pytorch_zeropad_before_maxpool_after_relu(dynamo):
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.ZeroPad2d((1, 0, 2, 1)), nn.MaxPool2d(3, stride=2),
                          nn.Conv2d(6, 4, 1), nn.ReLU6(), nn.ZeroPad2d(1), nn.AvgPool2d(2))
    net = check_torch(model, (3, 12, 11), dynamo=dynamo)
    pools = [layer for layer in net.layers if "Pooling" in layer.FUNCTION]
    assert [p.PaddingSize for p in pools] == [[2, 1, 1, 0], [1, 1, 1, 1]]


PAD_REFUSALS = {
    "reflect": (lambda: _pad_then("Conv", [0, 0, 1, 1, 0, 0, 1, 1], mode="reflect"),
                r"ONNX node 'pad' \(Pad\): attribute 'mode' is 'reflect'; it cannot be folded into the following Conv "
                r"\('conv'\): codegen's convolutions and poolings pad with zeros"),
    "edge": (lambda: _pad_then("MaxPool", [0, 0, 1, 1, 0, 0, 1, 1], relu=True, mode="edge", kernel_shape=[2, 2]),
             r"'pad' \(Pad\): attribute 'mode' is 'edge'; it cannot be folded into the following MaxPool \('pool'\)"),
    "nonzero value": (lambda: _pad_then("Conv", [0, 0, 1, 1, 0, 0, 1, 1], value=-1.5),
                      r"'pad' \(Pad\): input 2 \(constant_value, 'pad_value'\) is -1.5; it cannot be folded into the "
                      r"following Conv \('conv'\): codegen's convolutions and poolings pad with zeros"),
    "nonzero value attribute": (lambda: _pad_then("Conv", [0, 0, 1, 1, 0, 0, 1, 1], value=2.0, opset=10),
                                r"'pad' \(Pad\): attribute 'value' is 2; it cannot be folded"),
    "NaN value": (lambda: _pad_then("Conv", [0, 0, 1, 1, 0, 0, 1, 1], value=np.nan),
                  r"'pad' \(Pad\): input 2 \(constant_value, 'pad_value'\) is nan"),
    "negative pads": (lambda: _pad_then("Conv", [0, 0, -1, 0, 0, 0, 1, 1]),
                      r"'pad' \(Pad\): input 1 \(pads\) is \[0, 0, -1, 0, 0, 0, 1, 1\]; negative pads crop"),
    "channel pads": (lambda: _pad_then("Conv", [0, 1, 0, 0, 0, 0, 1, 1]),
                     r"'pad' \(Pad\): input 1 \(pads\) is \[0, 1, 0, 0, 0, 0, 1, 1\]; only H and W can be padded"),
    "maxpool without relu": (lambda: _pad_then("MaxPool", [0, 0, 1, 1, 0, 0, 1, 1], kernel_shape=[2, 2]),
                             r"'pad' \(Pad\): input 0 \('x'\) comes from imageInputLayer 'x', which can be "
                             r"negative; the following MaxPool \('pool'\) pads with -infinity, the Pad with zeros: the "
                             r"Pad folds into it only where its input is known nonnegative"),
    "avgpool own pads exclude": (lambda: _pad_then("AveragePool", [0, 0, 1, 1, 0, 0, 1, 1], kernel_shape=[2, 2],
                                                   pads=[1, 1, 1, 1]),
                                 r"'pool' \(AveragePool\): attribute 'count_include_pad' is 0; with padding of its own "
                                 r"\(\[1, 1, 1, 1\]\) after a Pad"),
}


def _two_readers():
    rng = np.random.default_rng(0)
    pad, inits = _pad_node([0, 0, 1, 1, 0, 0, 1, 1])
    nodes = [pad, helper.make_node("Conv", ["p", "w"], ["a"], name="conv"),
             helper.make_node("Conv", ["p", "w"], ["b"], name="conv2"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    return onnx_model(nodes, ("N", 3, 5, 5), inits + [("w", weights(rng, 2, 3, 3, 3))])


def _read_by_relu():
    pad, inits = _pad_node([0, 0, 1, 1, 0, 0, 1, 1])
    return onnx_model([pad, helper.make_node("Relu", ["p"], ["y"], name="relu")], ("N", 3, 5, 5), inits)


def _graph_output():
    pad, inits = _pad_node([0, 0, 1, 1, 0, 0, 1, 1], out="y")
    return onnx_model([pad], ("N", 3, 5, 5), inits)


def _after_leaky_relu():
    pad, inits = _pad_node([0, 0, 1, 1, 0, 0, 1, 1], data="r")
    return onnx_model([helper.make_node("LeakyRelu", ["x"], ["r"], name="leaky"), pad,
                       helper.make_node("MaxPool", ["p"], ["y"], name="pool", kernel_shape=[2, 2])],
                      ("N", 3, 5, 5), inits)


PAD_REFUSALS.update({
    "read by two nodes": (_two_readers, r"'pad' \(Pad\): its output 'p' is 'read by 2 nodes'; a Pad is folded into "
                                        r"the one Conv, MaxPool, AveragePool node that reads it; here ONNX node 'conv' "
                                        r"\(Conv\), ONNX node 'conv2' \(Conv\) read it"),
    "read by relu": (_read_by_relu, r"'pad' \(Pad\): its output 'p' is 'read by ONNX node 'relu' \(Relu\)'; a Pad is "
                                    r"supported only folded into a following Conv, MaxPool, AveragePool"),
    "graph output": (_graph_output, r"'pad' \(Pad\): its output 'y' is 'a graph output'"),
    "maxpool after leaky relu": (_after_leaky_relu, r"'pad' \(Pad\): input 0 \('r'\) comes from leakyReluLayer "
                                                    r"'leaky', which can be negative"),
})


@pytest.mark.parametrize("case", list(PAD_REFUSALS))
def test_pad_refusals_say_why(case):
    make, pattern = PAD_REFUSALS[case]
    with pytest.raises(OnnxImportError, match=pattern):
        import_onnx(make())


# =========================================================================== the extension layers

def torch_channel_shuffle(x, groups):
    """torchvision's ShuffleNetV2 channel_shuffle."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, c, h, w)


def test_reference_matches_pytorch():
    rng = np.random.default_rng(1)
    for _ in range(30):
        g = int(rng.integers(1, 5))
        h, w, c = int(rng.integers(1, 6)), int(rng.integers(1, 6)), g * int(rng.integers(1, 5))
        x = rng.standard_normal((2, h, w, c))
        ours = codegen.channelShuffleLayer(g).forward([x])
        theirs = torch_channel_shuffle(torch.from_numpy(x.transpose(0, 3, 1, 2)), g).numpy().transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(ours, theirs)
        first = int(rng.integers(1, c + 1))
        count = int(rng.integers(1, c - first + 2))
        ours = codegen.channelSliceLayer(first, count).forward([x])
        theirs = torch.from_numpy(x).narrow(3, first - 1, count).numpy()
        np.testing.assert_array_equal(ours, theirs)


def test_options_display_and_errors():
    s = codegen.channelShuffleLayer(3, Name="mix")
    assert (s.Name, s.CLASS, s.Groups, s.NumInputs) == ("mix", "ChannelShuffleLayer", 3, 1)
    assert "ChannelShuffleLayer with properties" in repr(s) and "Groups: 3" in repr(s)
    t = codegen.channelSliceLayer(2, 5, "Name", "half")
    assert (t.Name, t.FirstChannel, t.NumChannels) == ("half", 2, 5)
    net = codegen.Network([codegen.imageInputLayer([2, 2, 6]), codegen.channelShuffleLayer(2),
                           codegen.channelSliceLayer(1, 3)], name="auto")
    assert [layer.Name for layer in net.layers[1:]] == ["shuffle_1", "slice_1"]
    text = repr(codegen.LayerArray(net.layers))
    assert "Channel shuffle in 2 groups (extension, not a MATLAB layer)" in text
    assert "Channels 1 to 3 of the input (extension, not a MATLAB layer)" in text
    with pytest.raises(codegen.LayerError, match=r"channelShuffleLayer: property 'Groups' is 0"):
        codegen.channelShuffleLayer(0)
    with pytest.raises(codegen.LayerError, match=r"channelSliceLayer: property 'FirstChannel' is 0"):
        codegen.channelSliceLayer(0, 2)
    with pytest.raises(codegen.LayerError, match=r"channelSliceLayer: property 'NumChannels' is 2.5"):
        codegen.channelSliceLayer(1, 2.5)
    with pytest.raises(codegen.CodegenError, match=r"channelShuffleLayer 'shuffle_1': property 'Groups' is 4; the "
                                                   r"input has 6 channels, which 4 groups do not divide"):
        codegen.Network([codegen.imageInputLayer([2, 2, 6]), codegen.channelShuffleLayer(4)])
    with pytest.raises(codegen.CodegenError, match=r"channelSliceLayer 'slice_1': property 'NumChannels' is 3; "
                                                   r"channels 5 to 7 do not lie in the input's 6 channels"):
        codegen.Network([codegen.imageInputLayer([2, 2, 6]), codegen.channelSliceLayer(5, 3)])


def random_channel_net(rng, index: int) -> codegen.Network:
    """A random DAG of ShuffleNet pieces after random layers (tests/netgen.py): channel slices of
    any range, shuffles in any group count (1 and C included: no op), ShuffleNetV2 units (split in
    halves, one branch convolved, concatenated, shuffled; the stride-2 unit convolves both), a
    shuffle right after a convolution (folded into its filters) and ReLUs after slices and
    shuffles (fused into them)."""
    import netgen
    h, w = (int(v) for v in rng.integers(1, 9, size=2))
    c = int(rng.choice([2, 4, 6, 8, 12]))
    lgraph = codegen.layerGraph([netgen.input_layer(rng, h, w, c)])
    shapes = {lgraph.names()[0]: (h, w, c)}
    last = [lgraph.names()[0]]

    def add(layer, sources):
        nonlocal lgraph
        layer.Name = f"n{len(shapes)}_{layer.BASE_NAME}"
        shapes[layer.Name] = netgen.output_shape(layer, [shapes[s] for s in sources])
        lgraph = lgraph.addLayers(layer)
        for k, s in enumerate(sources):
            lgraph = lgraph.connectLayers(s, layer.Name if len(sources) == 1 else f"{layer.Name}/in{k + 1}")
        last[0] = layer.Name
        return layer.Name

    def conv(src, filters, size=1, stride=1):
        return add(codegen.convolution2dLayer(size, filters, Stride=stride, Padding="same",
                                              Bias=rng.normal(0, 0.3, (1, 1, filters))), [src])

    for _ in range(int(rng.integers(3, 7))):
        x = last[0]
        hh, ww, cc = shapes[x]
        kind = rng.choice(["unary", "slice", "shuffle", "unit", "unit2", "conv_shuffle"])
        if kind == "unary":
            layer = netgen.unary_layer(rng, shapes[x], allow_fc=False)
            if layer is not None:
                add(layer, [x])
        elif kind == "slice":
            first = int(rng.integers(1, cc + 1))
            add(codegen.channelSliceLayer(first, int(rng.integers(1, cc - first + 2))), [x])
        elif kind in ("shuffle", "conv_shuffle"):
            if kind == "conv_shuffle":
                x = conv(x, 2 * int(rng.integers(1, 5)), size=int(rng.integers(1, 4)))
                cc = shapes[x][2]
            groups = [g for g in range(1, cc + 1) if cc % g == 0]
            add(codegen.channelShuffleLayer(int(rng.choice(groups))), [x])
        elif kind == "unit" and cc % 2 == 0:
            half = cc // 2
            a = add(codegen.channelSliceLayer(1, half), [x])
            b = add(codegen.channelSliceLayer(half + 1, half), [x])
            b = add(codegen.reluLayer(), [conv(b, half, size=3)])
            add(codegen.channelShuffleLayer(2), [add(codegen.depthConcatenationLayer(2), [a, b])])
        elif kind == "unit2":
            a = add(codegen.reluLayer(), [conv(x, cc, size=3, stride=2)])
            b = add(codegen.reluLayer(), [conv(x, cc, size=1, stride=2)])
            add(codegen.channelShuffleLayer(2), [add(codegen.depthConcatenationLayer(2), [a, b])])
        if rng.random() < 0.3 and shapes[last[0]][2] > 1:
            add(codegen.reluLayer(), [last[0]])
    return codegen.Network(lgraph, seed=index, name=f"ch{index}")


def channel_nets(count: int, seed: int) -> list[codegen.Network]:
    rng = np.random.default_rng(seed)
    return [random_channel_net(rng, seed * 1000 + i) for i in range(count)]


def test_c_matches_reference_on_random_networks():
    from checks import check_against_reference
    batch = channel_nets(40, 1)
    libs = codegen.build_many(batch, extra_flags=["-Werror"])
    check_against_reference(batch, libs)
    ops = [op for lib in libs for op in lib.plan.ops]
    kinds = {op.kind for op in ops}
    assert {"permute_channels", "slice_channels"} <= kinds
    assert any(op.act is not None for op in ops if op.kind in ("permute_channels", "slice_channels"))
    folded = [op for op in ops if op.kind == "conv" and any("_shuffle" in n for n in op.layers)]
    assert folded, "no shuffle was folded into a convolution"
    in_place = [op for op in ops if op.kind == "slice_channels" and not op.output.dense]
    assert in_place, "no slice wrote into its concatenation's slice"


def test_cuda_emulated_matches_reference_on_random_networks():
    from checks import check_against_reference
    batch = channel_nets(16, 2)
    libs = codegen.build_many(batch, target="cuda", emulate=True, opt_flags=["-O1"])
    check_against_reference(batch, libs)
    assert {"permute_channels", "slice_channels"} <= {op.kind for lib in libs for op in lib.plan.ops}


def test_cuda_kernels_compile_with_nvcc_without_warnings_or_spills():
    """The new kernels with the real compiler (sm_80, sm_90, PTX); running them needs a GPU (the
    emulated run above checks the same kernels' results)."""
    from conftest import require_tool
    require_tool("nvcc")
    batch = channel_nets(6, 4)
    libs = codegen.build_many(batch, target="cuda")
    log = libs[0].build.log
    assert not [line for line in log.splitlines() if "warning" in line.lower()], log
    names = {k.kernel for lib in libs for k in lib.kernels if k.arch == "sm_90"}
    for lib in libs:
        assert not lib.spill_warnings(), lib.spill_warnings()
    ops = [(lib.prefix, op) for lib in libs for op in lib.plan.ops if op.kind in ("permute_channels", "slice_channels")]
    assert ops and all(any(n.startswith(prefix) and n.endswith(op.name) for n in names) for prefix, op in ops)


def test_export_matches_onnxruntime_and_imports_back():
    """The extension layers export as Slice and Reshape -> Transpose -> Reshape; onnxruntime agrees
    with the reference, and the import gives back the same layers."""
    from codegen.onnx import export_onnx, output_rank, to_onnx_layout
    from codegen.verify import random_inputs
    seen = set()
    for net in channel_nets(12, 3):
        model = export_onnx(net)
        onnx.checker.check_model(model, full_check=True)
        seen |= {n.op_type for n in model.graph.node}
        x = random_inputs(net, 2, seed=1)
        y = ort_run(model, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))[0]
        ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
        assert rel_error(y, ref) < TOL, net.name
        back = import_onnx(model)
        assert [type(a).__name__ for a in back.layers] == [type(b).__name__ for b in net.layers]
        assert rel_error(back.onnx.from_output(back.predict(x.astype(np.float64))), ref) < 1e-6
    assert {"Slice", "Transpose", "Reshape"} <= seen


def test_cortex_m4_runs_an_imported_shufflenet_v2():
    """A ShuffleNetV2-style model from PyTorch (legacy exporter), imported and run on the emulated
    Cortex-M4 board: the same output as PyTorch."""
    from conftest import require_tool
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    model = ShuffleNetV2Mini()
    net = check_torch(model, (3, 24, 24), compile_c=False)
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()
    x = np.random.default_rng(7).standard_normal((2, 3, 24, 24)).astype(np.float32)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(torch.from_numpy(x.astype(np.float64))).numpy()
    y = compiled_output(net, dev, x)[0]
    assert rel_error(y, ref) < TOL
    assert {"permute_channels", "slice_channels"} <= {op.kind for op in dev.plan.ops}


# =========================================================================== PyTorch's ShuffleNetV2

class InvertedResidual(nn.Module):
    """torchvision's ShuffleNetV2 unit (torchvision.models.shufflenetv2.InvertedResidual), with
    the split written as ``chunk`` (torchvision), ``split`` or slicing."""

    def __init__(self, inp: int, oup: int, stride: int, split: str = "chunk"):
        super().__init__()
        self.stride, self.split = stride, split
        branch = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, bias=False), nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            nn.Conv2d(branch, branch, 3, stride, 1, groups=branch, bias=False), nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            if self.split == "chunk":
                x1, x2 = x.chunk(2, dim=1)
            elif self.split == "split":
                x1, x2 = torch.split(x, x.shape[1] // 2, dim=1)
            else:
                half = x.shape[1] // 2
                x1, x2 = x[:, :half], x[:, half:]
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return torch_channel_shuffle(out, 2)


class ShuffleNetV2Mini(nn.Module):
    """torchvision's ShuffleNetV2 layout at a small size: stem (conv 3x3 stride 2, BN, ReLU, max
    pooling), one stage (a stride-2 unit, two stride-1 units), conv 1x1, global mean, fc."""

    def __init__(self, split: str = "chunk", width: int = 16):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.stage2 = nn.Sequential(InvertedResidual(8, width, 2, split), InvertedResidual(width, width, 1, split),
                                    InvertedResidual(width, width, 1, split))
        self.conv5 = nn.Sequential(nn.Conv2d(width, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv5(self.stage2(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


def _randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model


@pytest.mark.parametrize("split,dynamo", [("chunk", False), ("chunk", True), ("split", False), ("split", True),
                                          ("slicing", False), ("slicing", True)])
def test_pytorch_shufflenet_v2(split, dynamo):
    net = check_torch(_randomize_bn(ShuffleNetV2Mini(split)), (3, 24, 24), dynamo=dynamo)
    names = functions(net)
    assert names.count("channelShuffleLayer") == 3
    assert names.count("channelSliceLayer") == 4            # two stride-1 units, two halves each
    assert "depthConcatenationLayer" in names


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_pytorch_shufflenet_unit_across_opsets(opset):
    """Split's sizes: the attribute (opset 11), the input (13), the input or num_outputs (18)."""
    model = _randomize_bn(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), InvertedResidual(8, 8, 1, "split")))
    torch.manual_seed(0)
    data = export_torch(model, (1, 3, 6, 7), opset=opset)
    split = [n for n in onnx.load_from_string(data).graph.node if n.op_type == "Split"]
    assert len(split) == 1 and ({a.name for a in split[0].attribute} == {"axis", "split"}) == (opset < 13)
    net = import_onnx(data)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7)).astype(np.float32)
    with torch.no_grad():
        ref = copy.deepcopy(model).double().eval()(torch.from_numpy(x.astype(np.float64))).numpy()
    assert rel_error(reference_output(net, x)[0], ref) < TOL


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_pytorch_channel_slicing(dynamo):
    class Slicing(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 12, 3, padding=1)
            self.head = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            return torch.cat((self.head(y[:, :8]).relu(), y[:, 8:], y[:, -6:-3]), dim=1)

    net = check_torch(Slicing(), (3, 5, 6), dynamo=dynamo)
    assert sorted(slices(net)) == [(1, 8), (7, 3), (9, 4)]


# =========================================================================== Split, Slice, shuffle: single nodes

def _conv_then(nodes, x_shape=("N", 3, 5, 4), filters=12, opset=17, inits=(), outputs=("y",)):
    """Conv (``filters`` random 3x3 filters, 'same') of x into 'c', then ``nodes``."""
    rng = np.random.default_rng(filters)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])
    inits = [("w", weights(rng, filters, x_shape[1], 3, 3)), ("b", weights(rng, filters)), *inits]
    return onnx_model([conv, *nodes], x_shape, inits, opset=opset, outputs=outputs)


def _split(sizes=None, outputs=3, opset=17, **attrs):
    outs = [f"s{k}" for k in range(outputs)]
    inputs = ["c"] + (["sizes"] if sizes is not None and opset >= 13 else [])
    if sizes is not None and opset < 13:
        attrs["split"] = sizes
    node = helper.make_node("Split", inputs, outs, name="split", axis=1, **attrs)
    inits = [("sizes", np.asarray(sizes, np.int64))] if sizes is not None and opset >= 13 else []
    relus = [helper.make_node("Relu", [o], [f"y{k}"], name=f"relu{k}") for k, o in enumerate(outs)]
    return _conv_then([node, *relus], opset=opset, inits=inits, outputs=[f"y{k}" for k in range(outputs)])


def _slice(starts, ends, axes=None, steps=None, opset=17, x_shape=("N", 3, 5, 4)):
    if opset < 10:
        attrs = dict(starts=starts, ends=ends, **({"axes": axes} if axes is not None else {}))
        node = helper.make_node("Slice", ["c"], ["y"], name="slice", **attrs)
        return _conv_then([node], opset=opset, x_shape=x_shape)
    names = ["starts", "ends"] + (["axes"] if axes is not None else []) + (["steps"] if steps is not None else [])
    values = [starts, ends] + ([axes] if axes is not None else []) + ([steps] if steps is not None else [])
    node = helper.make_node("Slice", ["c", *names], ["y"], name="slice")
    return _conv_then([node], opset=opset, x_shape=x_shape,
                      inits=[(n, np.asarray(v, np.int64)) for n, v in zip(names, values)])


def _shuffle(groups=3, form=5, c=12, perm=None, back=None, first_shape=None, dims="static"):
    """Conv -> Reshape (N x g x C/g x H x W, or N x g x C/g x H*W) -> Transpose -> Reshape back."""
    h, w = 5, 4
    grouped = first_shape or ([0, groups, c // groups, h, w] if form == 5 else [0, groups, c // groups, h * w])
    if dims == "inferred":
        grouped = [-1 if k == 0 else v for k, v in enumerate(grouped)]
    perm = perm or ([0, 2, 1, 3, 4] if form == 5 else [0, 2, 1, 3])
    nodes = [helper.make_node("Reshape", ["c", "grouped"], ["r1"], name="view1"),
             helper.make_node("Transpose", ["r1"], ["t"], name="transpose", perm=perm),
             helper.make_node("Reshape", ["t", "back"], ["y"], name="view2")]
    inits = [("grouped", np.asarray(grouped, np.int64)), ("back", np.asarray(back or [0, -1, h, w], np.int64))]
    return _conv_then(nodes, filters=c, inits=inits)


STRUCTURE_CASES = {
    "split_sizes_input": lambda: _split([2, 7, 3]),
    "split_sizes_attribute_opset11": lambda: _split([5, 1, 6], opset=11),
    "split_equal": lambda: _split(None, outputs=4),
    "split_num_outputs": lambda: _split(None, outputs=3, opset=18, num_outputs=3),
    "split_whole_and_empty": lambda: _split_one_used(),
    "slice_first_8": lambda: _slice([0], [8], [1]),
    "slice_open_end": lambda: _slice([5], [2**63 - 1], [1], [1]),
    "slice_negative": lambda: _slice([-6], [-3], [-3]),
    "slice_clamped": lambda: _slice([-100, 0], [100, 2**63 - 1], [1, 2]),
    "slice_all_axes": lambda: _slice([0, 2, 0, -4], [2**63 - 1, 9, 5, 4], [0, 1, 2, 3], [1, 1, 1, 1]),
    "slice_opset9_attributes": lambda: _slice([0, 3], [2**31 - 1, 11], opset=9),
    "slice_of_a_vector": lambda: _vector_slice(),
    "shuffle_5d": lambda: _shuffle(3),
    "shuffle_5d_inferred_batch": lambda: _shuffle(4, dims="inferred"),
    "shuffle_4d": lambda: _shuffle(2, form=4),
    "shuffle_whole": lambda: _shuffle(12),
}


def _vector_slice():
    """Gemm of an N x 6 input to N x 9, Slice of K 2..6 (of the N x K tensor): a channel slice of 1 x 1 x K."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="gemm", transB=1),
             helper.make_node("Slice", ["g", "starts", "ends", "axes"], ["y"], name="slice")]
    inits = [("w", weights(rng, 9, 6)), ("b", weights(rng, 9)), ("starts", np.array([2], np.int64)),
             ("ends", np.array([7], np.int64)), ("axes", np.array([-1], np.int64))]
    return onnx_model(nodes, ("N", 6), inits)


def _split_one_used():
    """Split into [12, 0, 0] with only the first output used: the input itself, no layer."""
    node = helper.make_node("Split", ["c", "sizes"], ["s0", "s1", "s2"], name="split", axis=1)
    return _conv_then([node, helper.make_node("Relu", ["s0"], ["y"], name="relu")],
                      inits=[("sizes", np.array([12, 0, 0], np.int64))])


def test_split_slice_and_shuffle_match_onnxruntime():
    nets = check_against_ort([make() for make in STRUCTURE_CASES.values()])
    by_name = dict(zip(STRUCTURE_CASES, nets))
    assert slices(by_name["split_sizes_input"]) == [(1, 2), (3, 7), (10, 3)]
    assert slices(by_name["split_num_outputs"]) == [(1, 4), (5, 4), (9, 4)]
    assert slices(by_name["split_whole_and_empty"]) == []
    assert slices(by_name["slice_open_end"]) == [(6, 7)]
    assert slices(by_name["slice_negative"]) == [(7, 3)]
    assert slices(by_name["slice_of_a_vector"]) == [(3, 5)]
    assert slices(by_name["slice_clamped"]) == [] and slices(by_name["slice_all_axes"]) == [(3, 7)]
    shuffles = lambda net: [a.Groups for a in net.layers if a.FUNCTION == "channelShuffleLayer"]  # noqa: E731
    assert [shuffles(by_name[k]) for k in ("shuffle_5d", "shuffle_5d_inferred_batch", "shuffle_4d", "shuffle_whole")] \
        == [[3], [4], [2], [12]]


def _split_uneven_num_outputs():
    """num_outputs 3 of 10 channels: 4, 4, 2."""
    node = helper.make_node("Split", ["c"], ["s0", "s1", "s2"], name="split", axis=1, num_outputs=3)
    relus = [helper.make_node("Relu", [f"s{k}"], [f"y{k}"]) for k in range(3)]
    return _conv_then([node, *relus], filters=10, opset=18, outputs=["y0", "y1", "y2"])


def test_split_num_outputs_with_a_smaller_last_chunk():
    net = check_against_ort([_split_uneven_num_outputs()])[0]
    assert slices(net) == [(1, 4), (5, 4), (9, 2)]


STRUCTURE_REFUSALS = {
    "5-D reshape, other transpose": (lambda: _shuffle(3, perm=[0, 1, 2, 4, 3]),
                                     r"ONNX node 'view1' \(Reshape\): target shape is \[1, 3, 4, 5, 4\]; from "
                                     r"\[1, 12, 5, 4\]: only flattening to N x K \(or N x K x 1 x 1\) is supported, "
                                     r"and 5-D shapes only as the first Reshape of a channel shuffle"),
    "5-D reshape of H": (lambda: _shuffle(3, first_shape=[0, 12, 5, 2, 2]),
                         r"'view1' \(Reshape\): the target shape is \[1, 12, 5, 2, 2\]; from \[1, 12, 5, 4\]: followed "
                         r"by Transpose perm \[0, 2, 1, 3, 4\] and a Reshape, it must split the channels "
                         r"\(N x g x C/g x H x W\) for a channel shuffle"),
    "shuffle not back": (lambda: _shuffle(3, back=[0, 4, 15, 4]),
                         r"'view2' \(Reshape\): the target shape is \[1, 4, 15, 4\]; after a channel shuffle's Reshape "
                         r"to \[1, 3, 4, 5, 4\] and Transpose perm \[0, 2, 1, 3, 4\], it must be the original shape"),
    "split of H": (lambda: _conv_then([helper.make_node("Split", ["c"], ["y", "z"], name="split", axis=2,
                                                        split=[2, 3])], opset=11, outputs=["y", "z"]),
                   r"'split' \(Split\): attribute 'axis' is 2; only a split of the channels \(axis 1\)"),
    "split sizes": (lambda: _split([2, 7, 4]),
                    r"'split' \(Split\): input 1 \(split\) is \[2, 7, 4\]; expected 3 nonnegative sizes \(one per "
                    r"output\) adding up to the 12 channels"),
    "split unequal": (lambda: _split(None, outputs=5),
                      r"'split' \(Split\): the number of outputs is 5; 12 channels cannot be split into 5 equal "
                      r"parts"),
    "split empty used": (lambda: _split([12, 0, 0]),
                         r"'split' \(Split\): output 1 \('s1'\) is 'empty \(0 channels\)'"),
    "slice step 2": (lambda: _slice([0], [8], [1], [2]),
                     r"'slice' \(Slice\): steps is \[2\]; only step 1 is supported"),
    "slice reversed": (lambda: _slice([-1], [-2**63], [1], [-1]), r"'slice' \(Slice\): steps is \[-1\]"),
    "slice of H": (lambda: _slice([1], [3], [2]),
                   r"'slice' \(Slice\): the slice of axis 2 is \[1, 3\]; of 5: only the channels \(axis 1\) can be "
                   r"sliced"),
    "slice of the batch": (lambda: _slice([0], [1], [0]),
                           r"'slice' \(Slice\): the slice of axis 0 is \[0, 1\]; the batch cannot be sliced"),
    "empty slice": (lambda: _slice([8], [4], [1]),
                    r"'slice' \(Slice\): the slice of the channels is \[8, 4\]; of 12 channels: it is empty"),
}


@pytest.mark.parametrize("case", list(STRUCTURE_REFUSALS))
def test_structure_refusals_say_why(case):
    make, pattern = STRUCTURE_REFUSALS[case]
    with pytest.raises(OnnxImportError, match=pattern):
        import_onnx(make())
