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
                      r"'pad' \(Pad\): pads is \[0, 0, -1, 0, 0, 0, 1, 1\]; negative pads crop"),
    "channel pads": (lambda: _pad_then("Conv", [0, 1, 0, 0, 0, 0, 1, 1]),
                     r"'pad' \(Pad\): pads is \[0, 1, 0, 0, 0, 0, 1, 1\]; only H and W can be padded"),
    "maxpool without relu": (lambda: _pad_then("MaxPool", [0, 0, 1, 1, 0, 0, 1, 1], kernel_shape=[2, 2]),
                             r"'pad' \(Pad\): its input is 'from imageInputLayer 'x''; the following MaxPool "
                             r"\('pool'\) pads with -infinity, the Pad with zeros: .*known nonnegative"),
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
    "maxpool after leaky relu": (_after_leaky_relu, r"'pad' \(Pad\): its input is 'from leakyReluLayer 'leaky''"),
})


@pytest.mark.parametrize("case", list(PAD_REFUSALS))
def test_pad_refusals_say_why(case):
    make, pattern = PAD_REFUSALS[case]
    with pytest.raises(OnnxImportError, match=pattern):
        import_onnx(make())
