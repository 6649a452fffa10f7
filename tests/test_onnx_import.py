"""ONNX import: PyTorch models and hand-written ONNX graphs against independent oracles.

Every model is exported (PyTorch) or written (onnx.helper), imported, and its outputs are
compared, through ``net.predict`` (the NumPy reference) and through the compiled C, with
PyTorch in float64 or onnxruntime: relative error ||y - ref|| / ||ref|| < 1e-5 on seeded
random inputs. Unsupported nodes must be refused with a message naming node, op and attribute.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

import codegen  # noqa: E402
from codegen.onnx import OnnxImportError, import_onnx  # noqa: E402
from codegen.verify import rel_error  # noqa: E402

TOL = 1e-5


# =========================================================================== helpers

def export_torch(model: nn.Module, shape, opset: int = 17, fold: bool = True, dynamic: bool = True) -> bytes:
    """ONNX bytes of ``model`` (eval mode) for inputs of ``shape`` (N, C, H, W)."""
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(shape),), buf, dynamo=False, opset_version=opset,
                          do_constant_folding=fold, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}} if dynamic else None)
    return buf.getvalue()


def randomize_bn(model: nn.Module, seed: int = 0):
    """Nontrivial running statistics and affine parameters for every BatchNorm2d."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
    return model


def torch_reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's output in float64 (float32 weights, exactly widened)."""
    import copy
    m64 = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return m64(torch.from_numpy(x.astype(np.float64))).numpy()


def check(net, x_nchw: np.ndarray, ref: np.ndarray, compile_c: bool = True):
    """``net.predict`` and the compiled C against ``ref`` (ONNX layout)."""
    b = net.onnx
    y = b.from_output(net.predict(b.to_input(x_nchw).astype(np.float64)))
    assert y.shape == ref.shape
    assert rel_error(y, ref) < TOL, f"reference: relative error {rel_error(y, ref):.2e}"
    if compile_c:
        lib = codegen.build(net, target="c", write=False)
        yc = b.from_output(lib.predict(b.to_input(x_nchw)))
        assert rel_error(yc, ref) < TOL, f"C: relative error {rel_error(yc, ref):.2e}"
    return y


def run_torch_case(model, shape, seed=0, fold=True, opset=17, batch=3):
    torch.manual_seed(seed)
    for p in model.parameters():           # never all-zero biases etc.
        with torch.no_grad():
            p.add_(0.1 * torch.randn_like(p))
    randomize_bn(model, seed)
    data = export_torch(model, (1, *shape), opset=opset, fold=fold)
    net = import_onnx(data, name="torch_case")
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)
    check(net, x, torch_reference(model, x))
    return net


def onnx_model(nodes, x_shape, y_shape, inits=(), opset=17, x_name="x", y_name="y", check_model=True):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, y_shape)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if check_model and y_shape is not None:
        onnx.checker.check_model(model)
    return model


def ort_run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


# =========================================================================== PyTorch models

CONVS = {
    "pad1": lambda: nn.Conv2d(3, 8, 3, padding=1),
    "pad_hw": lambda: nn.Conv2d(3, 8, 3, padding=(1, 2)),
    "same_odd": lambda: nn.Conv2d(3, 8, 3, padding="same"),
    "same_even": lambda: nn.Conv2d(3, 8, 4, padding="same"),           # extra pad bottom/right
    "same_dilated": lambda: nn.Conv2d(3, 8, 3, padding="same", dilation=2),
    "valid": lambda: nn.Conv2d(3, 8, 3, padding="valid"),
    "stride2": lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1),
    "stride_hw_rect": lambda: nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(0, 2)),
    "dilation": lambda: nn.Conv2d(3, 8, 3, dilation=(2, 3), padding=2),
    "groups": lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1),
    "depthwise": lambda: nn.Conv2d(4, 4, 3, groups=4, padding=1),
    "depthwise_multiplier": lambda: nn.Conv2d(4, 8, 3, groups=4, stride=2),
    "no_bias": lambda: nn.Conv2d(3, 5, 1, bias=False),
}


@pytest.mark.parametrize("kind", list(CONVS))
def test_conv2d(kind):
    conv = CONVS[kind]()
    shape = (conv.in_channels, 11, 10)
    run_torch_case(nn.Sequential(conv), shape)


def test_conv_weights_are_bit_exact():
    conv = nn.Conv2d(4, 6, (3, 2), groups=2)
    net = import_onnx(export_torch(nn.Sequential(conv), (1, 4, 6, 6)))
    w = conv.weight.detach().numpy()                     # F x C/G x kh x kw
    layer = [lay for lay in net.layers if lay.FUNCTION == "groupedConvolution2dLayer"][0]
    ours = layer.Weights                                  # kh x kw x C/G x F/G x G
    for g in range(2):
        for j in range(3):
            np.testing.assert_array_equal(ours[:, :, :, j, g], w[g * 3 + j].transpose(1, 2, 0))
    np.testing.assert_array_equal(layer.Bias.reshape(3, 2, order="F").T.ravel(), conv.bias.detach().numpy())


@pytest.mark.parametrize("fold", [True, False], ids=["bn_folded_by_exporter", "bn_node"])
def test_batchnorm_relu(fold):
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.BatchNorm2d(6))
    net = run_torch_case(model, (3, 9, 8), fold=fold)
    n_bn = sum(lay.FUNCTION == "batchNormalizationLayer" for lay in net.layers)
    assert n_bn == (1 if fold else 2)        # the exporter folds a BN that follows a convolution


@pytest.mark.parametrize("act", ["relu", "leaky", "relu6", "hardtanh06"])
def test_activations(act):
    layer = {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(0.2), "relu6": nn.ReLU6(), "hardtanh06": nn.Hardtanh(0, 6)}[act]
    model = nn.Sequential(nn.Conv2d(2, 4, 3), layer)
    with torch.no_grad():
        model[0].weight.mul_(8.0)            # reach the clipping ceiling
    net = run_torch_case(model, (2, 7, 7))
    want = {"relu": "reluLayer", "leaky": "leakyReluLayer", "relu6": "clippedReluLayer",
            "hardtanh06": "clippedReluLayer"}[act]
    assert net.layers[-1].FUNCTION == want


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_relu6_across_opsets(opset):
    """Clip's bounds are attributes before opset 11 and inputs after."""
    run_torch_case(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU6()), (2, 6, 6), opset=opset)


POOLS = {
    "max2": lambda: nn.MaxPool2d(2),
    "max3_s2_p1": lambda: nn.MaxPool2d(3, stride=2, padding=1),
    "max_ceil": lambda: nn.MaxPool2d(2, ceil_mode=True),
    "max_ceil_s3": lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
    "max_rect": lambda: nn.MaxPool2d((3, 2), stride=(1, 2)),
    "avg_include_pad": lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=True),
    "avg_exclude_pad": lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    "avg_ceil_exclude_pad": lambda: nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
    "avg_ceil_no_overhang": lambda: nn.AvgPool2d(3, stride=2, ceil_mode=True),     # 11 -> 5 either way
    "adaptive_avg_1": lambda: nn.AdaptiveAvgPool2d(1),
}


@pytest.mark.parametrize("kind", list(POOLS))
def test_pooling(kind):
    run_torch_case(nn.Sequential(nn.Conv2d(3, 4, 1), POOLS[kind]()), (3, 11, 9))


def test_avgpool_ceil_with_count_include_pad_is_refused_when_a_window_overhangs():
    data = export_torch(nn.Sequential(nn.AvgPool2d(2, ceil_mode=True, count_include_pad=True)), (1, 3, 5, 5))
    with pytest.raises(OnnxImportError, match=r"\(AveragePool\): attribute 'ceil_mode' is 1; with count_include_pad"):
        import_onnx(data)


class Classifier(nn.Module):
    def __init__(self, head: str):
        super().__init__()
        self.head = head
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 5, 3), nn.ReLU())
        self.fc1 = nn.Linear(5 * 3 * 2 if head != "gap" else 5, 7)
        self.fc2 = nn.Linear(7, 4)

    def forward(self, x):
        x = self.features(x)
        if self.head == "flatten":
            x = torch.flatten(x, 1)
        elif self.head == "view":
            x = x.view(x.size(0), -1)            # Shape -> Gather -> Unsqueeze -> Concat -> Reshape
        elif self.head == "reshape_const":
            x = x.reshape(-1, 30)
        elif self.head == "gap":
            x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        elif self.head == "mean":
            x = x.mean((2, 3))                   # ReduceMean(axes=[2, 3], keepdims=0)
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)


@pytest.mark.parametrize("head", ["flatten", "view", "reshape_const", "gap"])
@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
def test_flatten_linear_softmax(head, fold):
    """The FC weights are permuted so that our HWC flatten reproduces ONNX's NCHW flatten."""
    net = run_torch_case(Classifier(head), (3, 10, 8), fold=fold)
    assert net.onnx.output_kind == "nc"
    assert [lay.FUNCTION for lay in net.layers][-4:] == ["fullyConnectedLayer", "reluLayer", "fullyConnectedLayer",
                                                         "softmaxLayer"]


def test_fixed_batch_export():
    """Exported with a fixed batch of 2 (x.view(2, -1) becomes a constant shape): we run one image
    at a time, so the batch dimension of the Reshape is the batch."""
    model = Classifier("view")
    data = export_torch(model, (2, 3, 10, 8), dynamic=False)
    consts = [list(numpy_helper.to_array(n.attribute[0].t)) for n in onnx.load_from_string(data).graph.node
              if n.op_type == "Constant"]
    assert [2, -1] in consts
    net = import_onnx(data)
    x = np.random.default_rng(6).standard_normal((2, 3, 10, 8)).astype(np.float32)
    check(net, x, torch_reference(model, x), compile_c=False)


def test_mean_over_hw_is_global_average_pooling():
    model = Classifier("mean")
    model.fc1 = nn.Linear(5, 7)
    net = run_torch_case(model, (3, 10, 8))
    assert "globalAveragePooling2dLayer" in [lay.FUNCTION for lay in net.layers]


class Residual(nn.Module):
    def __init__(self, combine: str):
        super().__init__()
        self.combine = combine
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.side = nn.Conv2d(8, 4, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 if combine == "add" else 20, 5))

    def forward(self, x):
        s = self.stem(x)
        if self.combine == "add":
            y = torch.relu(self.branch(s) + s)
        else:
            y = torch.cat([self.branch(s), s, self.side(s)], dim=1)
        return self.head(y)


@pytest.mark.parametrize("combine", ["add", "concat"])
def test_residual_add_and_concat(combine):
    net = run_torch_case(Residual(combine), (3, 8, 8), fold=False)
    want = "additionLayer" if combine == "add" else "depthConcatenationLayer"
    assert want in [lay.FUNCTION for lay in net.layers]
    assert not net.is_chain()


def test_same_input_twice_and_input_skip():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y + y) + x         # both inputs of an Add from one tensor; a skip from the input

    run_torch_case(M(), (3, 6, 7))


def test_nchw_softmax_over_channels():
    run_torch_case(nn.Sequential(nn.Conv2d(3, 5, 3), nn.Softmax(dim=1)), (3, 6, 6))


# =========================================================================== hand-written graphs (onnxruntime)

def _conv_model(auto_pad, kernel, stride, dilation=(1, 1), x_shape=(1, 3, 9, 8), f=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((f, x_shape[1], *kernel)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv", auto_pad=auto_pad, strides=list(stride),
                            dilations=list(dilation), kernel_shape=list(kernel))
    return onnx_model([node], ["N", *x_shape[1:]], None, [("W", w), ("B", b)])


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"])
@pytest.mark.parametrize("kernel,stride,dilation", [((3, 3), (1, 1), (1, 1)), ((4, 4), (1, 1), (1, 1)),
                                                    ((4, 3), (2, 2), (1, 1)), ((2, 5), (3, 2), (1, 1)),
                                                    ((3, 2), (2, 1), (2, 3))])
def test_conv_auto_pad_matches_onnxruntime(auto_pad, kernel, stride, dilation):
    """SAME_* use ONNX's rule with the stride (output ceil(in / stride)); SAME_LOWER puts the
    odd pad on top/left, expressed as explicit [t b l r] padding."""
    model = _conv_model(auto_pad, kernel, stride, dilation)
    net = import_onnx(model)
    conv = net.layers[1]
    t, b, l, r = conv.PaddingSize
    if auto_pad == "SAME_LOWER":
        assert t >= b and l >= r
    elif auto_pad == "SAME_UPPER":
        assert t <= b and l <= r
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8)).astype(np.float32)
    if dilation != (1, 1) and auto_pad.startswith("SAME"):
        # onnxruntime refuses dilation with SAME_*; ONNX's reference evaluator applies the spec
        from onnx.reference import ReferenceEvaluator
        ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    else:
        ref = ort_run(model, x)
    if auto_pad.startswith("SAME"):
        assert ref.shape[2:] == (-(-9 // stride[0]), -(-8 // stride[1]))
    check(net, x, ref, compile_c=(kernel, auto_pad) in {((4, 3), "SAME_LOWER"), ((3, 2), "SAME_UPPER")})


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_pool_auto_pad_matches_onnxruntime(op, auto_pad):
    extra = {"count_include_pad": 1} if op == "AveragePool" else {}
    node = helper.make_node(op, ["x"], ["y"], auto_pad=auto_pad, kernel_shape=[4, 3], strides=[2, 2], **extra)
    model = onnx_model([node], ["N", 2, 9, 8], None)
    x = np.random.default_rng(2).standard_normal((2, 2, 9, 8)).astype(np.float32)
    check(import_onnx(model), x, ort_run(model, x))


def test_matmul_add_is_one_fully_connected_layer():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((12, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "W"], ["m"], name="mm"),
             helper.make_node("Add", ["B", "m"], ["y"], name="bias")]
    model = onnx_model(nodes, ["N", 3, 2, 2], ["N", 5], [("W", w), ("B", b)])
    net = import_onnx(model)
    assert [lay.FUNCTION for lay in net.layers] == ["imageInputLayer", "fullyConnectedLayer"]
    x = rng.standard_normal((3, 3, 2, 2)).astype(np.float32)
    check(net, x, ort_run(model, x))


def test_input_normalization_becomes_the_input_layer():
    """Sub/Div (or Mul/Add) of constants on the graph input: zscore normalization."""
    mean = np.array([0.5, -0.25, 0.125], np.float32).reshape(1, 3, 1, 1)
    std = np.array([2.0, 0.5, 4.0], np.float32).reshape(3, 1, 1)
    w = np.random.default_rng(4).standard_normal((2, 3, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Sub", ["x", "mean"], ["c"]), helper.make_node("Div", ["c", "std"], ["n"]),
             helper.make_node("Conv", ["n", "W"], ["y"])]
    model = onnx_model(nodes, ["N", 3, 4, 5], None, [("mean", mean), ("std", std), ("W", w)])
    net = import_onnx(model)
    inp = net.layers[0]
    assert inp.Normalization == "zscore"
    np.testing.assert_array_equal(inp.Mean.ravel(), mean.ravel())
    np.testing.assert_array_equal(inp.StandardDeviation.ravel(), std.ravel())
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5)).astype(np.float32)
    check(net, x, ort_run(model, x))


def test_2d_input_mlp():
    """An N x K input becomes a 1 x 1 x K image."""
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    net = run_torch_case(model, (6,))
    assert net.input_shape == (1, 1, 6)


# =========================================================================== refusals

def _single(op, x_shape=("N", 3, 6, 6), inits=(), opset=17, **attrs):
    inputs = ["x", *[k for k, _ in inits]]
    return onnx_model([helper.make_node(op, inputs, ["y"], name="the_node", **attrs)], list(x_shape), None,
                      inits, opset=opset, check_model=False)


REFUSALS = [
    ("unsupported op", lambda: _single("Cos"),
     r"ONNX node 'the_node' \(Cos\): operator Cos is not supported"),
    ("clip min", lambda: _single("Clip", inits=[("lo", np.float32(-1)), ("hi", np.float32(1))]),
     r"ONNX node 'the_node' \(Clip\): min is -1; only Clip\(min=0, max>0\)"),
    ("maxpool dilations", lambda: _single("MaxPool", kernel_shape=[2, 2], dilations=[2, 2]),
     r"'the_node' \(MaxPool\): attribute 'dilations' is \[2, 2\]"),
    ("auto_pad", lambda: _single("MaxPool", kernel_shape=[2, 2], auto_pad="FOO"),
     r"'the_node' \(MaxPool\): attribute 'auto_pad' is 'FOO'"),
    ("softmax axis", lambda: _single("Softmax", axis=3), r"'the_node' \(Softmax\): attribute 'axis' is 3"),
    ("softmax default axis opset 13", lambda: _single("Softmax"),
     r"'the_node' \(Softmax\): attribute 'axis' is 'the default'"),
    ("gemm transA", lambda: _single("Gemm", x_shape=("N", 4), inits=[("B", np.ones((4, 2), np.float32))], transA=1),
     r"'the_node' \(Gemm\): attribute 'transA' is 1"),
    ("conv runtime weights", lambda: onnx_model([helper.make_node("Relu", ["x"], ["w"]),
                                                 helper.make_node("Conv", ["x", "w"], ["y"], name="the_node")],
                                                ["N", 3, 3, 3], None),
     r"'the_node' \(Conv\): input 1 \(W, 'w'\) is 'computed at run time'"),
    ("batchnorm training", lambda: _single("BatchNormalization", opset=15, training_mode=1,
                                           inits=[(k, np.ones(3, np.float32)) for k in ("s", "b", "m", "v")]),
     r"'the_node' \(BatchNormalization\): attribute 'training_mode' is 1"),
    ("unknown attribute", lambda: _single("Relu", custom=1), r"'the_node' \(Relu\): attribute 'custom' is 1"),
    ("3-D input", lambda: _single("Relu", x_shape=("N", 3, 6)), r"graph input 'x' has shape \['N', 3, 6\] \(rank 3\)"),
    ("two inputs", lambda: onnx.helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 4]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 17)]), r"2 inputs that are not initializers \('a', 'b'\)"),
    ("opset 5", lambda: _single("Relu", opset=5), r"opset 5; opset 6 or later"),
    ("constant over tensor", lambda: onnx_model([helper.make_node("Relu", ["x"], ["r"]),
                                                 helper.make_node("Div", ["c", "r"], ["y"], name="the_node")],
                                                ["N", 3, 4, 4], None, [("c", np.float32(1))]),
     r"'the_node' \(Div\): input 1 is 'a tensor computed by the network'; dividing a constant by a tensor"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_node_op_and_attribute(case):
    _, make, pattern = case
    with pytest.raises(OnnxImportError, match=pattern):
        import_onnx(make())


# =========================================================================== the digits example

def test_digits_example_agrees_with_pytorch(tmp_path):
    """examples/digits/run.py end to end (3 epochs, host only): every test image gets the same
    class from the generated C as from PyTorch (the script returns 1 otherwise)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "examples" / "digits" / "run.py"
    spec = importlib.util.spec_from_file_location("digits_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--epochs", "3", "--out", str(tmp_path), "--device", "none"]) == 0
    assert (tmp_path / "digits.onnx").exists() and (tmp_path / "c" / "digits.c").exists()


# =========================================================================== real architectures

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def light_model_with_random_weights(name: str, seed: int = 0):
    """One of the 'light' model-zoo graphs the onnx wheel ships (their weights are constant
    fills), with seeded random weights, and the logits (the Softmax's input) as output."""
    model = onnx.load(os.path.join(LIGHT, f"{name}.onnx"))
    rng = np.random.default_rng(seed)
    fills = {n.input[0] for n in model.graph.node if n.op_type == "ConstantOfShape"}
    shapes = {t.name: [int(v) for v in numpy_helper.to_array(t)] for t in model.graph.initializer if t.name in fills}
    role = {}
    for n in model.graph.node:
        if n.op_type == "BatchNormalization":
            role.update(zip(n.input[1:], ["scale", "bias", "mean", "var"]))
        elif n.op_type in ("Conv", "Gemm"):
            role[n.input[1]] = "weights"
    nodes, inits = [], [t for t in model.graph.initializer if t.name not in fills]
    for n in model.graph.node:
        if n.op_type != "ConstantOfShape":
            nodes.append(n)
            continue
        shape, r = shapes[n.input[0]], role.get(n.output[0], "bias")
        if r == "weights":
            v = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        elif r == "var":
            v = rng.uniform(0.5, 2.0, shape)
        elif r == "scale":
            v = rng.uniform(0.3, 0.8, shape)
        else:
            v = rng.normal(0, 0.1, shape)
        inits.append(numpy_helper.from_array(v.astype(np.float32), n.output[0]))
    softmax = [n for n in nodes if n.op_type == "Softmax"][-1]
    nodes.remove(softmax)
    used = {i for n in nodes for i in n.input}
    inits = [t for t in inits if t.name in used]
    names = {t.name for t in inits}
    graph = helper.make_graph(nodes, name, [i for i in model.graph.input if i.name in used and i.name not in names],
                              [helper.make_tensor_value_info(softmax.input[0], TensorProto.FLOAT, None)], inits)
    out = helper.make_model(graph, opset_imports=model.opset_import)
    out.ir_version = model.ir_version
    return out


@pytest.mark.parametrize("name", ["light_squeezenet", "light_resnet50"])
def test_model_zoo_architectures_match_onnxruntime(name):
    """SqueezeNet (fire modules: concatenations) and ResNet-50 (bottlenecks: additions, BN),
    opset 8 graphs from the model zoo, with random weights: the reference against onnxruntime."""
    model = light_model_with_random_weights(name)
    net = import_onnx(model)
    assert len(net.layers) > 60 and not net.is_chain()
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    check(net, x, ref, compile_c=False)


@pytest.mark.long
def test_squeezenet_compiles_and_matches_onnxruntime():
    model = light_model_with_random_weights("light_squeezenet")
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    check(import_onnx(model), x, ort_run(model, x), compile_c=True)


def test_normalization_is_not_folded_when_the_raw_input_is_used_elsewhere():
    """x - c feeds one branch, x itself another: folding x - c into the input layer would change
    the other branch, so the Sub is a layer of its own (a scalingLayer with Offset -c)."""
    nodes = [helper.make_node("Identity", ["x"], ["i"]), helper.make_node("Sub", ["i", "c"], ["n"], name="sub"),
             helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["n", "r"], ["y"])]
    model = onnx_model(nodes, ["N", 2, 3, 3], None, [("c", np.float32(0.5))])
    net = import_onnx(model)
    assert net.layers[0].Normalization == "none"
    scaling = next(layer for layer in net.layers if layer.FUNCTION == "scalingLayer")
    assert (scaling.Name, float(scaling.Scale), float(scaling.Offset)) == ("sub", 1.0, -0.5)
    x = np.random.default_rng(6).standard_normal((2, 2, 3, 3)).astype(np.float32)
    check(net, x, ort_run(model, x))
