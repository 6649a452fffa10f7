"""swishLayer, eluLayer, geluLayer (both approximations), softplusLayer and the extensions
hardSigmoidLayer, hardSwishLayer end to end, against oracles no one here wrote: PyTorch (and
ONNX's reference evaluator where PyTorch has no such parameter) for the semantics, onnxruntime
for the ONNX export, PyTorch's own ONNX export (every opset spelling) for the import; and the
generated C (host, Cortex-M4 under QEMU) and CUDA (CPU execution mode) against the reference on
random networks and on single layers fed large magnitudes, NaN and infinities.

Tolerances: the references against PyTorch in float64, relative 1e-13 (PyTorch's GELU loses
the far negative tail to the cancellation of 1 + erf: an absolute 1e-13 there); compiled code
relative error 1e-5 (float32 expf/expm1f/log1pf/erfcf are within a few ulps; the rest as in
tests/checks.py).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import codegen
from codegen import (LayerError, Network, UnsupportedError, averagePooling2dLayer, batchNormalizationLayer,
                     convolution2dLayer, eluLayer, fullyConnectedLayer, geluLayer, hardSigmoidLayer, hardSwishLayer,
                     imageInputLayer, maxPooling2dLayer, reluLayer, softplusLayer, swishLayer)
from codegen.verify import random_inputs, rel_error
from checks import check_against_reference
from conftest import require_tool

# name -> (make the layer, PyTorch's function, the act kind of the generated code)
ACTIVATIONS = {
    "swish": (swishLayer, F.silu, "swish"),
    "elu": (lambda: eluLayer(0.7), lambda x: F.elu(x, alpha=0.7), "elu"),
    "elu_default": (eluLayer, F.elu, "elu"),
    "gelu": (geluLayer, lambda x: F.gelu(x, approximate="none"), "gelu"),
    "gelu_tanh": (lambda: geluLayer(Approximation="tanh"), lambda x: F.gelu(x, approximate="tanh"), "gelu_tanh"),
    # PyTorch returns x above its threshold (20 by default); far above any value here, it is the exact function
    "softplus": (softplusLayer, lambda x: F.softplus(x, beta=1.0, threshold=1e4), "softplus"),
    "hardsigmoid": (lambda: hardSigmoidLayer(Alpha=1 / 6, Beta=0.5), F.hardsigmoid, "hardsigmoid"),
    "hardswish": (hardSwishLayer, F.hardswish, "hardswish"),
}
KINDS = {kind for _, _, kind in ACTIVATIONS.values()}


def _magnitudes(rng, shape):
    return rng.standard_normal(shape) * rng.choice([0.1, 1.0, 10.0, 60.0])


# ------------------------------------------------------------------ the layers

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_reference_matches_pytorch(name):
    """Random shapes and values over a wide range (tails, saturation, the kinks), float64."""
    make, fn, _ = ACTIVATIONS[name]
    rng = np.random.default_rng(1)
    for _ in range(50):
        shape = tuple(int(v) for v in rng.integers(1, 9, size=3))
        x = _magnitudes(rng, (2, *shape))
        x.flat[0] = -3.0                          # the kinks of the hard ones, exactly
        x.flat[-1] = 3.0
        ours = make().forward([x])
        theirs = fn(torch.from_numpy(x)).numpy()
        atol = 1e-13 if name.startswith("gelu") else 1e-300
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=atol)


def _onnx_reference(op: str, x: np.ndarray, **attrs) -> np.ndarray:
    """ONNX's reference evaluator on one node (float64)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, None)],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def test_parameters_against_pytorch_and_onnx_reference():
    """Other ELU alphas against PyTorch; hard sigmoid's Alpha and Beta (PyTorch fixes them) against
    ONNX's reference evaluator; the defaults against ONNX's defaults."""
    pytest.importorskip("onnx")
    rng = np.random.default_rng(2)
    for _ in range(20):
        x = _magnitudes(rng, (2, 3, 4, 5))
        alpha = float(rng.uniform(-2, 5))
        np.testing.assert_allclose(eluLayer(alpha).forward([x]), F.elu(torch.from_numpy(x), alpha=alpha).numpy(),
                                   rtol=1e-13, atol=1e-300)
        a, b = (float(np.float32(v)) for v in (rng.uniform(-1, 1), rng.uniform(-1, 2)))   # ONNX attributes: float32
        np.testing.assert_allclose(hardSigmoidLayer(Alpha=a, Beta=b).forward([x]),
                                   _onnx_reference("HardSigmoid", x, alpha=a, beta=b), rtol=1e-13, atol=1e-15)
    x = _magnitudes(rng, (2, 3, 4, 5))
    np.testing.assert_allclose(hardSigmoidLayer().forward([x]), _onnx_reference("HardSigmoid", x), rtol=1e-7,
                               atol=1e-8)           # ONNX's default 0.2 is the float32 0.2
    np.testing.assert_allclose(eluLayer().forward([x]), _onnx_reference("Elu", x), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(hardSwishLayer().forward([x]), _onnx_reference("HardSwish", x), rtol=1e-7,
                               atol=1e-8)           # ONNX's reference: alpha = the float32 1/6


def test_options_display_and_errors():
    s, e, g, p = swishLayer("Name", "sw"), eluLayer(0.5, "Name", "e"), geluLayer(), softplusLayer(Name="sp")
    hs, hw = hardSigmoidLayer("Alpha", 1 / 6, Name="hs"), hardSwishLayer()
    assert (s.Name, s.CLASS, s.NumInputs, s.NumOutputs) == ("sw", "SwishLayer", 1, 1)
    assert (e.Name, e.CLASS, e.Alpha) == ("e", "ELULayer", 0.5) and eluLayer().Alpha == 1.0
    assert eluLayer("Name", "n").Alpha == 1.0                        # pairs without an alpha
    assert (g.CLASS, g.Approximation) == ("GELULayer", "none")
    assert geluLayer(Approximation="TANH").Approximation == "tanh"   # case-insensitive, stored canonical
    assert (p.Name, p.CLASS) == ("sp", "SoftplusLayer")
    assert (hs.Alpha, hs.Beta) == (1 / 6, 0.5) and (hardSigmoidLayer().Alpha, hardSigmoidLayer().Beta) == (0.2, 0.5)
    assert "Alpha: 0.5000" in repr(e) and "Name: 'e'" in repr(e)
    assert "Hyperparameters" in repr(g) and "Approximation: 'none'" in repr(g)
    assert "HardSigmoidLayer with properties" in repr(hs) and "Beta: 0.5000" in repr(hs)
    net = Network([imageInputLayer([2, 2, 1]), swishLayer(), eluLayer(), geluLayer(), softplusLayer(),
                   hardSigmoidLayer(), hardSwishLayer()], name="auto")
    assert [layer.Name for layer in net.layers[1:]] == ["swish_1", "elu_1", "gelu_1", "softplus_1", "hardsigmoid_1",
                                                       "hardswish_1"]
    shown = repr(codegen.LayerArray(net.layers))
    for text in ("Swish", "ELU with Alpha 1", "GELU", "Softplus", "Hard sigmoid with Alpha 0.2 and Beta 0.5",
                 "Hard swish"):
        assert text in shown
    # the extensions say that they are not MATLAB layers
    for layer in (hs, hw):
        assert "not a MATLAB layer" in layer.describe() and "not a MATLAB layer" in type(layer).__doc__
    with pytest.raises(LayerError, match=r"geluLayer: property 'Approximation' is 'erf'; expected one of 'none', "
                                         r"'tanh'"):
        geluLayer(Approximation="erf")
    with pytest.raises(LayerError, match=r"eluLayer: property 'Alpha' is nan; expected a finite real scalar"):
        eluLayer(np.nan)
    with pytest.raises(LayerError, match=r"eluLayer: property 'Alpha' is \[1 2\]; expected a real scalar"):
        eluLayer([1, 2])
    with pytest.raises(LayerError, match=r"hardSigmoidLayer: property 'Beta' is inf; expected a finite"):
        hardSigmoidLayer(Beta=np.inf)
    with pytest.raises(LayerError, match=r"hardSigmoidLayer: property 'Alpha' is 'x'"):
        hardSigmoidLayer("Alpha", "x")
    with pytest.raises(LayerError, match=r"swishLayer: unknown option 'Alpha'"):
        swishLayer(Alpha=1)
    with pytest.raises(LayerError, match=r"hardSwishLayer: unknown option 'Alpha'"):
        hardSwishLayer(Alpha=1)
    with pytest.raises(LayerError, match="softplusLayer"):
        softplusLayer("Name")


def test_alpha_beyond_float32_is_refused_at_code_generation():
    """MATLAB allows any finite Alpha; float32 C cannot hold 1e39."""
    net = Network([imageInputLayer([2, 2, 1]), eluLayer(1e39)], name="bigalpha")
    assert np.all(np.isfinite(net.predict(-np.ones((2, 2, 1)))))        # the reference runs it
    with pytest.raises(UnsupportedError, match=r"eluLayer 'elu_1': property 'Alpha' is 1e\+39; .*float32"):
        codegen.build(net, write=False)


# ------------------------------------------------------------------ generated code

def single_layer_nets() -> list[Network]:
    return [Network([imageInputLayer([4, 5, 3], Normalization="none"), make()], name=f"one_{name}")
            for name, (make, _, _) in ACTIVATIONS.items()]


@pytest.mark.parametrize("target", ["c", "cuda"])
def test_tails_nan_and_infinities_elementwise(target):
    """Each activation alone on values up to +-1e30 (overflow in a naive expf(x) or x^3), NaN and
    +-inf: elementwise against the reference (relative 1e-5, absolute 1e-30 for the tails that
    underflow), NaN where the input is NaN (and where the reference has one: -inf * 0 in swish and
    GELU, as in PyTorch). ``predict`` refuses NaN and Inf inputs, so the image with them goes through
    the per-layer debugging entry, which does not."""
    batch = single_layer_nets()
    kw = {"target": "cuda", "emulate": True, "opt_flags": ["-O1"]} if target == "cuda" else \
        {"extra_flags": ["-Werror"]}
    libs = codegen.build_many(batch, **kw)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 4, 5, 3)) * 10.0 ** rng.integers(-3, 31, size=(3, 4, 5, 3))).astype(np.float32)
    odd = x[0].copy()
    odd[0, 0] = [np.nan, np.inf, -np.inf]
    odd[0, 1] = [80.0, -80.0, 100.0]                   # expf(80) overflows float32
    odd[0, 2] = [-3.0, 3.0, 0.0]                       # the hard ones' kinks
    for net, lib in zip(batch, libs):
        y = lib.predict(x)
        ref = net.predict(x.astype(np.float64))
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-30, err_msg=net.name)
        y_odd = np.asarray(lib.run_single_with_workspace(odd)[0]).reshape(odd.shape)
        ref_odd = net.predict(odd[None].astype(np.float64))[0]
        assert np.all(np.isnan(y_odd[np.isnan(odd)])), f"{net.name}: NaN does not propagate"
        np.testing.assert_allclose(y_odd, ref_odd, rtol=1e-5, atol=1e-30, err_msg=net.name)   # NaN == NaN here


def random_net(rng, index: int) -> Network:
    """A chain with the new activations after convolutions, batch norm (scales up to 20: large
    magnitudes), poolings, ReLU and fully connected layers."""
    h, w = (int(v) for v in rng.integers(3, 12, size=2))
    c = int(rng.integers(1, 6))
    names = list(ACTIVATIONS)
    act = lambda: ACTIVATIONS[names[int(rng.integers(len(names)))]][0]()   # noqa: E731
    layers = [imageInputLayer([h, w, c])]
    for _ in range(int(rng.integers(2, 6))):
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
        layers.append(act())
    layers += [fullyConnectedLayer(int(rng.integers(1, 12))), act()]
    net = Network(layers, seed=index, name=f"am{index}")
    for layer in net.layers:                      # non-trivial batch-norm statistics
        if layer.FUNCTION == "batchNormalizationLayer":
            n = layer.NumChannels
            layer._p.update(TrainedMean=rng.normal(0, 1, (1, 1, n)), TrainedVariance=rng.uniform(0.2, 3, (1, 1, n)),
                            Scale=rng.uniform(0.5, 20, (1, 1, n)), Offset=rng.normal(0, 1, (1, 1, n)))
    return net


def nets(count: int, seed: int) -> list[Network]:
    rng = np.random.default_rng(seed)
    return [random_net(rng, seed * 1000 + i) for i in range(count)]


def test_c_matches_reference_on_random_networks():
    batch = nets(40, 1)
    libs = codegen.build_many(batch, extra_flags=["-Werror"])
    check_against_reference(batch, libs)
    kinds = {op.act.kind for lib in libs for op in lib.plan.ops if op.kind == "act"}
    assert kinds >= KINDS, KINDS - kinds


def test_cuda_emulated_matches_reference_on_random_networks():
    batch = nets(20, 2)
    libs = codegen.build_many(batch, target="cuda", emulate=True, opt_flags=["-O1"])
    check_against_reference(batch, libs)
    kinds = {op.act.kind for lib in libs for op in lib.plan.ops if op.kind == "act"}
    assert kinds >= KINDS, KINDS - kinds


def test_cortex_m4_matches_reference():
    """Every new activation in one network on the Cortex-M4F: the link checks pass (expf, expm1f,
    log1pf, erfcf pulled in without a double-precision helper) and the output is right."""
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    layers = [imageInputLayer([6, 5, 3]), convolution2dLayer(3, 8, Padding="same")]
    for make, _, _ in ACTIVATIONS.values():
        layers += [make(), convolution2dLayer(1, 8)]
    net = Network(layers + [fullyConnectedLayer(5), softplusLayer()], seed=3, name="acts_m4")
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()
    x = random_inputs(net, 2, seed=3) * 4
    y, ref = dev.predict(x), net.predict(x.astype(np.float64))
    assert max(rel_error(y[i], ref[i]) for i in range(2)) < 1e-5


def test_nvcc_builds_without_warnings_and_gpu_matches_reference():
    """The statements (expm1f, erfcf, log1pf, expf) through nvcc for sm_80 + sm_90 + PTX in one run:
    no warnings, no spills; on a GPU, the kernels against the reference (elsewhere that part skips
    and says why: the CPU execution mode above runs the same kernels)."""
    require_tool("nvcc")
    batch = single_layer_nets() + nets(2, 6)
    libs = codegen.build_many(batch, target="cuda")
    bad = [line for line in libs[0].build.log.splitlines() if "warning" in line.lower()]
    assert not bad, "\n".join(bad)
    for net, lib in zip(batch, libs):
        kernels = {k.kernel for k in lib.kernels if k.arch == "sm_90"}
        assert len(kernels) >= len(lib.plan.ops), (net.name, kernels)
        assert not lib.spill_warnings(), (net.name, lib.spill_warnings())
    count, reason = libs[0].device_count()
    if count == 0:
        pytest.skip(f"compiled with nvcc; no GPU here to run it ({reason})")
    check_against_reference(batch, libs)


# ------------------------------------------------------------------ ONNX in and out

@pytest.mark.parametrize("opset,expected", [(13, {"Erf", "Tanh", "HardSigmoid", "Sigmoid"}),
                                            (17, {"Erf", "Tanh", "HardSwish", "Elu", "Softplus"}),
                                            (20, {"Gelu", "HardSwish", "HardSigmoid"})])
def test_export_matches_onnxruntime_and_imports_back(opset, expected):
    """Gelu from opset 20 (before: Erf/Tanh spellings), HardSwish from 14 (before: x*HardSigmoid(x)),
    swish always x*Sigmoid(x); every spelling imports back as the same layers."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from codegen.onnx import export_onnx, output_rank, to_onnx_layout
    batch = nets(6, 4) + [Network([imageInputLayer([3, 4, 2], Normalization="none")]
                                  + [make() for make, _, _ in ACTIVATIONS.values()], name="all_acts")]
    seen = set()
    for net in batch:
        model = export_onnx(net, opset=opset)
        onnx.checker.check_model(model, full_check=True)
        seen |= {n.op_type for n in model.graph.node}
        x = random_inputs(net, 2, seed=1) * 3
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
        ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
        assert rel_error(y, ref) < 1e-5, net.name
        back = codegen.import_onnx(model)
        assert [type(a).__name__ for a in back.layers] == [type(b).__name__ for b in net.layers]
        assert [getattr(a, "Approximation", None) for a in back.layers] == \
            [getattr(b, "Approximation", None) for b in net.layers]
        y_back = back.onnx.from_output(back.predict(x.astype(np.float64)))
        assert rel_error(y_back, ref) < 1e-6
    assert seen >= expected, expected - seen


TORCH_MODULES = {
    "SiLU": (torch.nn.SiLU, "SwishLayer"),
    "ELU": (lambda: torch.nn.ELU(alpha=0.7), "ELULayer"),
    "GELU": (torch.nn.GELU, "GELULayer"),
    "GELU_tanh": (lambda: torch.nn.GELU(approximate="tanh"), "GELULayer"),
    "Softplus": (torch.nn.Softplus, "SoftplusLayer"),
    "Hardsigmoid": (torch.nn.Hardsigmoid, "HardSigmoidLayer"),
    "Hardswish": (torch.nn.Hardswish, "HardSwishLayer"),
}


def _torch_model(make):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), make(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(6, 4, 3), torch.nn.BatchNorm2d(4), make(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 2 * 2, 5), make()).eval()


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_pytorch_export_imports_and_runs(opset):
    """PyTorch models with each activation, exported by torch.onnx (legacy exporter) at opset 13
    (HardSwish as x*HardSigmoid(x)), 17 (GELU as Erf/Tanh nodes) and 20 (Gelu), imported and
    compiled: the C output equals PyTorch's."""
    pytest.importorskip("onnx")
    x = torch.randn(3, 3, 8, 8) * 3
    models, batch = [], []
    for key, (make, cls) in TORCH_MODULES.items():
        model = _torch_model(make)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x[:1],), buf, dynamo=False, input_names=["x"], output_names=["y"],
                              opset_version=opset, dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
        net = codegen.import_onnx(buf.getvalue(), name=f"torch_{key}_{opset}")
        assert [type(layer).__name__ for layer in net.layers].count(cls) == 3, (key, net.layers)
        models.append(model)
        batch.append(net)
    libs = codegen.build_many(batch)
    for (key, _), model, net, lib in zip(TORCH_MODULES.items(), models, batch, libs):
        y = net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy())))
        with torch.no_grad():
            ref = model(x).numpy()
        assert rel_error(y, ref) < 1e-5, key
    gelus = [layer.Approximation for layer in batch[3].layers if type(layer).__name__ == "GELULayer"]
    assert gelus == ["tanh"] * 3


# ------------------------------------------------------------------ ONNX spellings, written by hand

def _spelled(nodes, consts: dict, out: str = "y"):
    """A model: x (1 x 3 x 4 x 5) -> Relu -> r -> ``nodes`` -> ``out``; ``consts`` as initializers."""
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu")] + nodes, "spelled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 3, 4, 5])],
        [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _node(op, inputs, output, **attrs):
    from onnx import helper
    return helper.make_node(op, inputs, [output], name=output, **attrs)


SQRT2, BETA = np.sqrt(2.0), np.sqrt(2.0 / np.pi)


def _recognized_cases():
    from onnx import TensorProto, helper
    n = _node
    return {
        # 0.5 * x first, x * (1/sqrt2) instead of x / sqrt2, operands swapped
        "gelu_reordered": (GELU := "GELULayer", _spelled(
            [n("Mul", ["half", "r"], "h"), n("Mul", ["r", "inv_sqrt2"], "u"), n("Erf", ["u"], "e"),
             n("Add", ["one", "e"], "s"), n("Mul", ["s", "h"], "y")],
            {"half": 0.5, "inv_sqrt2": 1 / SQRT2, "one": 1.0})),
        # Div by 2 instead of Mul by 0.5
        "gelu_div2": (GELU, _spelled(
            [n("Div", ["r", "sqrt2"], "u"), n("Erf", ["u"], "e"), n("Add", ["e", "one"], "s"),
             n("Mul", ["r", "s"], "m"), n("Div", ["m", "two"], "y")],
            {"sqrt2": SQRT2, "one": 1.0, "two": 2.0})),
        # the constant as a float64 Constant node behind a Cast (evaluated early, then skipped by the walk)
        "gelu_cast_constant": (GELU, _spelled(
            [helper.make_node("Constant", [], ["c64"], value=helper.make_tensor("v", TensorProto.DOUBLE, [],
                                                                               [SQRT2])),
             n("Cast", ["c64"], "c", to=TensorProto.FLOAT), n("Div", ["r", "c"], "u"), n("Erf", ["u"], "e"),
             n("Add", ["e", "one"], "s"), n("Mul", ["r", "s"], "m"), n("Mul", ["m", "half"], "y")],
            {"one": 1.0, "half": 0.5})),
        # x^3 as Pow, the tanh approximation
        "gelu_tanh_pow": ("GELULayer", _spelled(
            [n("Pow", ["r", "three"], "p"), n("Mul", ["p", "kappa"], "k"), n("Add", ["k", "r"], "i"),
             n("Mul", ["i", "beta"], "u"), n("Tanh", ["u"], "t"), n("Add", ["t", "one"], "s"),
             n("Mul", ["half", "s"], "m"), n("Mul", ["m", "r"], "y")],
            {"three": 3.0, "kappa": 0.044715, "beta": BETA, "one": 1.0, "half": 0.5})),
        "swish_swapped": ("SwishLayer", _spelled([n("Sigmoid", ["r"], "g"), n("Mul", ["g", "r"], "y")], {})),
        "hardswish_spelled": ("HardSwishLayer", _spelled(
            [n("HardSigmoid", ["r"], "g", alpha=1 / 6, beta=0.5), n("Mul", ["r", "g"], "y")], {})),
    }


@pytest.mark.parametrize("case", ["gelu_reordered", "gelu_div2", "gelu_cast_constant", "gelu_tanh_pow",
                                  "swish_swapped", "hardswish_spelled"])
def test_spellings_are_recognized_structurally(case):
    """Other orders and spellings of the same formulas become one layer, whose output equals
    ONNX's reference evaluator on the original nodes."""
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    cls, model = _recognized_cases()[case]
    net = codegen.import_onnx(model)
    assert [type(layer).__name__ for layer in net.layers] == ["ImageInputLayer", "ReLULayer", cls]
    x = np.random.default_rng(0).normal(0, 3, (2, 3, 4, 5)).astype(np.float32)
    ref = np.concatenate([ReferenceEvaluator(model).run(None, {"x": x[i:i + 1]})[0] for i in range(2)])
    y = net.onnx.from_output(net.predict(net.onnx.to_input(x).astype(np.float64)))
    assert rel_error(y, ref) < 1e-6


def _near_misses():
    n = _node
    gelu = lambda c, tail=(): [n("Div", ["r", "c"], "u"), n("Erf", ["u"], "e"), n("Add", ["e", "one"], "s"),  # noqa
                               n("Mul", ["r", "s"], "m"), n("Mul", ["m", "half"], "g"), *tail]
    consts = {"one": 1.0, "half": 0.5}
    return {
        # not sqrt 2
        "wrong_constant": (_spelled(gelu("c"), {**consts, "c": 1.5}, out="g"), "operator Erf is not supported"),
        # Erf's result also read elsewhere: the group cannot be one layer
        "shared_intermediate": (_spelled(gelu("c", [n("Sum", ["g", "e"], "y")]), {**consts, "c": SQRT2}),
                                "operator Erf is not supported"),
        # no 0.5: x * (1 + erf(x / sqrt2))
        "missing_half": (_spelled(gelu("c")[:4], {**consts, "c": SQRT2}, out="m"), "operator Erf is not supported"),
        # a gate: y * Sigmoid(x), not x * Sigmoid(x): a sigmoid layer and a multiplication
        "sigmoid_gate": (_spelled([n("Sigmoid", ["r"], "s"), n("Relu", ["r"], "r2"), n("Mul", ["r2", "s"], "y")], {}),
                         ["SigmoidLayer", "ReLULayer", "MultiplicationLayer"]),
        # HardSigmoid with other parameters times x is not hardswish
        "other_hard_sigmoid": (_spelled([n("HardSigmoid", ["r"], "h", alpha=0.2, beta=0.5), n("Mul", ["r", "h"], "y")],
                                        {}), ["HardSigmoidLayer", "MultiplicationLayer"]),
        # a scalar 1 of rank 5 would make the result rank 5
        "rank5_scalar": (_spelled(gelu("c"), {"one": np.ones((1, 1, 1, 1, 1)), "half": 0.5, "c": SQRT2}, out="g"),
                         "'one' is 'of rank 5'; the tensor it applies to has rank 4"),
        # a node of the group with an attribute its schema lacks: not claimed, and the walk refuses
        "bad_attribute": (_spelled([n("Sigmoid", ["r"], "s", foo=1), n("Mul", ["r", "s"], "y")], {}),
                          "'foo'"),
    }


@pytest.mark.parametrize("case", ["wrong_constant", "shared_intermediate", "missing_half", "rank5_scalar",
                                  "bad_attribute"])
def test_near_misses_are_not_recognized(case):
    """What is not exactly the formula is left to the ordinary translators, which refuse it."""
    pytest.importorskip("onnx")
    model, message = _near_misses()[case]
    with pytest.raises(codegen.onnx.OnnxImportError, match=message):
        codegen.import_onnx(model)


@pytest.mark.parametrize("case", ["sigmoid_gate", "other_hard_sigmoid"])
def test_near_misses_of_products_are_separate_layers(case):
    """A product that is not x * Sigmoid(x) (or x * HardSigmoid(x) with hardswish's parameters) is
    left to the ordinary translators: the activation and a multiplicationLayer, computing what
    ONNX's reference evaluator computes."""
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    model, layers = _near_misses()[case]
    net = codegen.import_onnx(model)
    assert [type(layer).__name__ for layer in net.layers] == ["ImageInputLayer", "ReLULayer", *layers]
    x = np.random.default_rng(0).normal(0, 3, (2, 3, 4, 5)).astype(np.float32)
    ref = np.concatenate([ReferenceEvaluator(model).run(None, {"x": x[i:i + 1]})[0] for i in range(2)])
    y = net.onnx.from_output(net.predict(net.onnx.to_input(x).astype(np.float64)))
    assert rel_error(y, ref) < 1e-6


def test_recognizers_stay_bounded_on_hostile_graphs():
    """An Erf and a Sigmoid behind 3000 single-reader Add nodes, and 2000 Sigmoids reading one
    tensor: the recognizers look a bounded number of nodes deep (no recursion error, no
    quadratic time), and the ordinary translators refuse what is left."""
    pytest.importorskip("onnx")
    import time
    n = _node
    chain = [n("Add", ["r" if k == 0 else f"a{k - 1}", "one"], f"a{k}") for k in range(3000)]
    deep = _spelled(chain + [n("Erf", ["a2999"], "e"), n("Sigmoid", ["e"], "s"), n("Mul", ["e", "s"], "y")],
                    {"one": 1.0})
    wide = _spelled([n("Sigmoid", ["r"], f"s{k}") for k in range(2000)]
                    + [n("Sum", [f"s{k}" for k in range(2000)], "y")], {})
    for model, message in ((deep, "operator Erf is not supported"), (wide, None)):
        start = time.perf_counter()
        if message is None:
            net = codegen.import_onnx(model)
            assert sum(type(layer).__name__ == "SigmoidLayer" for layer in net.layers) == 2000
        else:
            with pytest.raises(codegen.onnx.OnnxImportError, match=message):
                codegen.import_onnx(model)
        assert time.perf_counter() - start < 20
