"""int8 models from onnxruntime: float models (the small zoo architectures and random CNNs)
quantized by onnxruntime's ``quantize_static`` (QDQ format, int8 activations and weights, per
channel and per tensor) import with their own int8 parameters (``net.onnx.calibration``), build
as int8 C, equal the integer reference bit for bit, and agree with onnxruntime executing the
same file (its int8 kernels) within one quantization step on at least 99 % of the outputs.

Why not every output exactly: onnxruntime requantizes in float (the accumulator times the
float32 product of the scales, rounded half to even) where TensorFlow Lite's scheme, which the
generated code follows, uses a 32-bit fixed-point multiplier and rounds half away from zero; its
input QuantizeLinear divides where ours multiplies by the reciprocal; its softmax computes the
exponentials in float. Each differs from ours by at most one step now and then, and a step in
one layer can move the next layer's rounding.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import codegen
from codegen.quant.reference import predict_int8

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

sys.path.insert(0, str(Path(__file__).resolve().parent / "zoo"))
from models import ZOO, build  # noqa: E402

AGREEMENT = 0.99              # share of outputs within one step of onnxruntime's


def export(model, shape) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, *shape),), buf, dynamo=False, input_names=["x"],
                          opset_version=17)
    return buf.getvalue()


def quantize_qdq(model_bytes: bytes, shape, tmp_path: Path, per_channel: bool = True, seed: int = 0,
                 activation_type=None) -> Path:
    """The model quantized by onnxruntime (QDQ, int8), calibrated on 32 standard normal inputs."""
    q = quantization
    src, dst = tmp_path / f"float_{seed}.onnx", tmp_path / f"qdq_{seed}_{int(per_channel)}.onnx"
    src.write_bytes(model_bytes)
    rng = np.random.default_rng(seed)
    batches = iter([{"x": rng.standard_normal((1, *shape)).astype(np.float32)} for _ in range(32)])

    class Reader(q.CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=per_channel,
                          activation_type=activation_type or q.QuantType.QInt8, weight_type=q.QuantType.QInt8)
    return dst


def onnxruntime_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i: i + 1]})[0] for i in range(len(x))])


def agreement(path: Path, name: str, shape, count: int = 16):
    """(outputs differing from the integer reference, share within one step of onnxruntime, largest
    difference in steps)."""
    net = codegen.import_onnx(path, name=name)
    assert net.onnx.calibration is not None, net.onnx.int8_problem
    lib = codegen.build(net, calibration=net.onnx.calibration, write=False)
    assert lib.plan.dtype == "int8"
    x = np.random.default_rng(7).standard_normal((count, *shape)).astype(np.float32)
    ours = lib.predict(net.onnx.to_input(x))
    differing = int(np.sum(ours != predict_int8(lib.plan, net.onnx.to_input(x))[0]))
    theirs = onnxruntime_outputs(path, x)
    steps = np.abs(net.onnx.from_output(ours).reshape(theirs.shape) - theirs) / lib.plan.quant.outputs[0].scale
    return differing, float(np.mean(steps <= 1.0 + 1e-4)), float(steps.max())


class RandomCNN(nn.Module):
    """Convolutions (random kernels, strides, groups, dilations), ReLU/ReLU6, pools, a residual
    addition and a classifier: the ops onnxruntime quantizes in QDQ form."""

    def __init__(self, rng: np.random.Generator, cin: int):
        super().__init__()
        c1, c2 = int(rng.integers(4, 17)), int(rng.integers(4, 17)) * 2
        k = int(rng.choice([1, 3, 5]))
        self.stem = nn.Sequential(nn.Conv2d(cin, c1, k, stride=int(rng.integers(1, 3)), padding=k // 2),
                                  nn.BatchNorm2d(c1), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(c1, c1, 3, padding=int(rng.integers(1, 3)), dilation=int(rng.integers(1, 3)),
                                          groups=c1), nn.ReLU6())
        self.pool = nn.MaxPool2d(2) if rng.random() < 0.5 else nn.AvgPool2d(2)
        self.pw = nn.Conv2d(c1, c2, 1)
        self.res = nn.Conv2d(c2, c2, 3, padding=1, groups=2)
        self.head = nn.Linear(c2, int(rng.integers(2, 12)))
        self.softmax = rng.random() < 0.5

    def forward(self, x):
        y = self.pw(self.pool(self.dw(self.stem(x))))
        y = torch.relu(y + self.res(y))
        y = self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))
        return torch.softmax(y, 1) if self.softmax else y


# the small zoo models whose every layer onnxruntime quantizes (it leaves LeNet-5's Tanh in float,
# so that model's QDQ file has no int8 scale for it; test_qdq_errors checks what that gives) and
# whose ops have an int8 form (not yet: the U-Net's transposed convolution, the detector's resize)
SMALL = [name for name in ZOO if ZOO[name][2] == "small" and name not in ("lenet5", "unet", "two_head_detector")]


@pytest.mark.parametrize("name", SMALL)
def test_zoo_qdq_models_agree_with_onnxruntime(name, tmp_path):
    model, shape = build(name)
    path = quantize_qdq(export(model, shape), shape, tmp_path)
    differing, share, largest = agreement(path, name, shape)
    print(f"{name}: {share:.2%} of outputs within one step of onnxruntime, largest difference {largest:.2f} steps")
    assert differing == 0, f"{differing} outputs differ from the integer reference"
    assert share >= AGREEMENT and largest <= 4, (name, share, largest)


@pytest.mark.parametrize("seed", range(6))
def test_random_qdq_cnns_agree_with_onnxruntime(seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(12, 25)), int(rng.integers(12, 25)))
    torch.manual_seed(seed)
    model = RandomCNN(rng, shape[0]).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = quantize_qdq(export(model, shape), shape, tmp_path, per_channel=seed % 2 == 0, seed=seed)
    differing, share, largest = agreement(path, f"qdq_random_{seed}", shape)
    print(f"random CNN {seed} {shape}: {share:.2%} within one step, largest {largest:.2f} steps")
    assert differing == 0 and share >= AGREEMENT and largest <= 4, (differing, share, largest)


def test_qdq_weights_keep_the_models_int8_values(tmp_path):
    """The int8 weights in the generated code are the model's own (its DequantizeLinear inputs)."""
    import onnx
    from onnx import numpy_helper
    model, shape = build("mlperf_ds_cnn")
    path = quantize_qdq(export(model, shape), shape, tmp_path)
    quantized = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
                 if t.data_type == onnx.TensorProto.INT8 and len(t.dims) > 1}
    net = codegen.import_onnx(path)
    lib = codegen.build(net, calibration=net.onnx.calibration, write=False)
    ours = sorted(np.sort(op.weights["w"].ravel()).tobytes() for op in lib.plan.ops
                  if op.kind in ("conv", "fc", "convpool"))              # convpool: a convolution fused with its pooling
    theirs = sorted(np.sort(w.ravel()).tobytes() for w in quantized.values())
    assert len(ours) == len(theirs) >= 5 and ours == theirs


def test_qdq_errors(tmp_path):
    """uint8 activations are refused at import, naming the node and the fix; a model that leaves a
    layer unquantized imports as float and says why it is not int8."""
    model, shape = build("lenet5")
    path = quantize_qdq(export(model, shape), shape, tmp_path, activation_type=quantization.QuantType.QUInt8)
    with pytest.raises(codegen.CodegenError, match=r"QuantizeLinear.*zero point type is 'uint8'.*QInt8"):
        codegen.import_onnx(path)
    src = tmp_path / "f.onnx"
    src.write_bytes(export(model, shape))
    dst = tmp_path / "partial.onnx"
    batches = iter([{"x": np.zeros((1, *shape), np.float32)}])

    class Reader(quantization.CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantization.quantize_static(str(src), str(dst), Reader(), quant_format=quantization.QuantFormat.QDQ,
                                     op_types_to_quantize=["Conv"], activation_type=quantization.QuantType.QInt8,
                                     weight_type=quantization.QuantType.QInt8)
    net = codegen.import_onnx(dst)
    assert net.onnx.calibration is None and "does not quantize the output of layer" in net.onnx.int8_problem
    codegen.build(net, write=False)          # still a float network
