"""dropoutLayer, flattenLayer, featureInputLayer and globalMaxPooling2dLayer end to end, against
oracles no one here wrote: PyTorch for the semantics (``nn.Dropout`` in eval mode, ``flatten``
after a permute to MATLAB's column-major order, ``amax`` over H and W, an ``nn.Sequential`` of
``Linear``/``ReLU`` for a feature-input MLP), onnxruntime for the ONNX export, PyTorch's own ONNX
export for the import; and the generated C (host, Cortex-M4 under QEMU) and CUDA (CPU execution
mode) against the reference on random networks using every new layer.

``predict`` of a feature-input network takes ``(F,)`` / ``(N, F)`` and returns ``(K,)`` / ``(N, K)``
(codegen/batch.py); the random networks are checked in the ``(N, 1, 1, F)`` form the verifier
uses, the dense autoencoder on the device and the PyTorch MLP in the feature form.

Tolerance: relative error 1e-5 (tests/checks.py); the reference against PyTorch in float64:
exact for the layers that only move or select values, 1e-12 for the MLP.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import codegen
from codegen import (InputError, LayerError, Network, NetworkError, addLayers, batchNormalizationLayer,
                     connectLayers, convolution2dLayer, depthConcatenationLayer, dropoutLayer, featureInputLayer,
                     flattenLayer, fullyConnectedLayer, globalMaxPooling2dLayer, imageInputLayer, layerGraph,
                     maxPooling2dLayer, regressionLayer, reluLayer, sigmoidLayer, softmaxLayer, tanhLayer)
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from checks import check_against_reference
from conftest import require_tool
from test_cli import invoke
from test_cuda_nvcc import gpu_or_skip, no_warnings

NORMALIZATIONS = ["none", "zerocenter", "zscore", "rescale-symmetric", "rescale-zero-one"]


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def run(layer, x):
    """The reference output of ``layer`` on x (N, H, W, C) inside a network."""
    return Network([imageInputLayer(list(x.shape[1:]), Normalization="none"), layer]).predict(x)


# =========================================================================== the reference against PyTorch

def test_reference_matches_pytorch():
    """dropout (eval) is the identity, flatten is torch's flatten of the N x C x W x H permute,
    global max pooling is amax over H and W: exactly, on 100 random shapes."""
    rng = np.random.default_rng(1)
    for _ in range(100):
        shape = tuple(int(v) for v in rng.integers(1, 9, size=3))
        x = rng.standard_normal((2, *shape)) * 10
        p = float(rng.uniform(0, 0.99))
        drop = torch.nn.Dropout(p).eval()
        np.testing.assert_array_equal(run(dropoutLayer(p), x), drop(torch.from_numpy(x)).numpy())
        flat = run(flattenLayer(), x)
        assert flat.shape == (2, 1, 1, x[0].size)
        np.testing.assert_array_equal(flat.reshape(2, -1), torch.flatten(nchw(x).permute(0, 1, 3, 2), 1).numpy())
        gmax = run(globalMaxPooling2dLayer(), x)
        np.testing.assert_array_equal(gmax.reshape(2, -1), torch.amax(nchw(x), dim=(2, 3)).numpy())
        # a fully connected layer after a flatten computes what it computes on the unflattened input
        fc = fullyConnectedLayer(3, Weights=rng.standard_normal((3, x[0].size)), Bias=rng.standard_normal((3, 1)))
        direct = Network([imageInputLayer(list(shape), Normalization="none"), fc]).predict(x)
        after = Network([imageInputLayer(list(shape), Normalization="none"), flattenLayer(), fc]).predict(x)
        np.testing.assert_array_equal(direct, after)


def test_feature_input_mlp_matches_pytorch():
    """featureInputLayer (every normalization) + Linear/ReLU layers against nn.Sequential in float64;
    the normalization is written from MATLAB's documented formulas."""
    rng = np.random.default_rng(2)
    for k in range(30):
        sizes = [int(v) for v in rng.integers(1, 40, size=int(rng.integers(2, 5)))]
        f = sizes[0]
        norm = NORMALIZATIONS[k % 5]
        mean, std = rng.normal(0, 1, f), rng.uniform(0.5, 2, f)
        lo, hi = rng.uniform(-2, -0.5, f), rng.uniform(0.5, 2, f)
        stats = {"zerocenter": dict(Mean=mean), "zscore": dict(Mean=mean, StandardDeviation=std),
                 "rescale-symmetric": dict(Min=lo, Max=hi), "rescale-zero-one": dict(Min=lo, Max=hi)}.get(norm, {})
        mods = []
        for a, b in zip(sizes, sizes[1:]):
            mods += [torch.nn.Linear(a, b).double(), torch.nn.ReLU()]
        model = torch.nn.Sequential(*mods[:-1]).eval()
        layers = [featureInputLayer(f, Normalization=norm, **stats)]
        for m in model:
            layers.append(fullyConnectedLayer(m.out_features, Weights=m.weight.detach().numpy(),
                                              Bias=m.bias.detach().numpy()) if isinstance(m, torch.nn.Linear)
                          else reluLayer())
        net = Network(layers, name=f"mlp{k}")
        x = rng.standard_normal((4, f))
        x32 = {key: np.float32(v).astype(np.float64) for key, v in stats.items()}   # statistics are single
        t = torch.from_numpy(x)
        if norm == "zerocenter":
            t = t - torch.from_numpy(x32["Mean"])
        elif norm == "zscore":
            t = (t - torch.from_numpy(x32["Mean"])) / torch.from_numpy(x32["StandardDeviation"])
        elif norm != "none":
            lo32, hi32 = torch.from_numpy(x32["Min"]), torch.from_numpy(x32["Max"])
            t = (t - lo32) / (hi32 - lo32)
            t = 2 * t - 1 if norm == "rescale-symmetric" else t
        with torch.no_grad():
            ref = model(t).numpy()
        y = net.predict(x)
        assert y.shape == ref.shape == (4, sizes[-1])
        assert np.max(np.abs(y - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref))), (k, norm)


# =========================================================================== options, display, errors

def test_dropout_options_display_and_errors():
    d = dropoutLayer()
    assert (d.Probability, d.Name, d.CLASS, d.NumInputs, d.NumOutputs) == (0.5, "", "DropoutLayer", 1, 1)
    d = dropoutLayer(0.4, "Name", "drop1")
    assert (d.Probability, d.Name, d.describe()) == (0.4, "drop1", "40% dropout")
    assert repr(d) == "  DropoutLayer with properties:\n\n           Name: 'drop1'\n\n   Hyperparameters\n" \
                      "    Probability: 0.4000\n"
    assert dropoutLayer(0).Probability == 0.0 and dropoutLayer(Name="d").Probability == 0.5
    d.Probability = 0.25
    assert d.describe() == "25% dropout"
    for bad in (1, 1.5, -0.1, np.nan, [0.1, 0.2], "high"):
        with pytest.raises(LayerError, match=r"dropoutLayer.*'Probability' is .*; expected a nonnegative number "
                                             r"less than 1"):
            dropoutLayer(Name="x").__setattr__("Probability", bad)
    with pytest.raises(LayerError, match=r"dropoutLayer: property 'Probability' is 1; expected a nonnegative"):
        dropoutLayer(1)
    with pytest.raises(LayerError, match=r"dropoutLayer: unknown option 'Probabilty'"):
        dropoutLayer(0.3, Probabilty=0.2)


def test_flatten_and_global_max_pooling_options_display_and_errors():
    f, g = flattenLayer("Name", "flatten1"), globalMaxPooling2dLayer(Name="gmp1")
    assert repr(f) == "  FlattenLayer with properties:\n\n    Name: 'flatten1'\n"
    assert repr(g) == "  GlobalMaxPooling2DLayer with properties:\n\n    Name: 'gmp1'\n"
    net = Network([imageInputLayer([4, 3, 2]), globalMaxPooling2dLayer(), flattenLayer(), dropoutLayer(),
                   fullyConnectedLayer(2)], name="names")
    assert [layer.Name for layer in net.layers[1:4]] == ["gmpool_1", "flatten_1", "dropout_1"]
    assert net.shapes["gmpool_1"] == (1, 1, 2) and net.shapes["flatten_1"] == (1, 1, 2)
    text = repr(net)
    assert "   'gmpool_1'       2-D Global Max Pooling   2-D global max pooling" in text
    assert "   'flatten_1'      Flatten                  Flatten" in text
    assert "   'dropout_1'      Dropout                  50% dropout" in text
    with pytest.raises(LayerError, match="flattenLayer: unknown option 'Size'"):
        flattenLayer(Size=3)
    with pytest.raises(LayerError, match="globalMaxPooling2dLayer: unknown option 'PoolSize'"):
        globalMaxPooling2dLayer(PoolSize=2)


def test_feature_input_options_display_and_errors():
    layer = featureInputLayer(21)
    assert (layer.InputSize, layer.Normalization, layer.NormalizationDimension, layer.Mean) == (21, "none", "auto",
                                                                                                None)
    assert (layer.NumInputs, layer.InputNames, layer.NumOutputs, layer.OutputNames) == (0, [], 1, ["out"])
    assert repr(featureInputLayer(21, Name="input")) == """\
  FeatureInputLayer with properties:

                      Name: 'input'
                 InputSize: 21
        SplitComplexInputs: 0

   Hyperparameters
             Normalization: 'none'
    NormalizationDimension: 'auto'
                      Mean: []
         StandardDeviation: []
                       Min: []
                       Max: []
"""
    assert layer.describe() == "21 features"
    z = featureInputLayer(3, Normalization="zscore", Mean=[1, 2, 3], StandardDeviation=np.ones((1, 3)))
    assert z.describe() == "3 features with 'zscore' normalization"
    assert z.Mean.shape == (3, 1) and z.StandardDeviation.shape == (3, 1)
    for shape in [(3,), (3, 1), (1, 3), (1, 1, 3)]:
        assert featureInputLayer(3, Mean=np.zeros(shape)).Mean.shape == (3, 1)
    assert featureInputLayer(3, Mean=2).Mean.tolist() == [[2.0]]
    assert Network([featureInputLayer(4)]).layers[0].Name == "input_1"
    errors = [
        (lambda: featureInputLayer(0), r"featureInputLayer: property 'InputSize' is 0; numFeatures .* positive "
                                       r"integer"),
        (lambda: featureInputLayer(2.5), r"'InputSize' is 2.5; numFeatures"),
        (lambda: featureInputLayer([3, 4]), r"'InputSize' is \[3 4\]; numFeatures"),
        (lambda: featureInputLayer(5, Mean=np.zeros(4), Name="f"),
         r"featureInputLayer 'f': property 'Mean' is \[0. 0. 0. 0.\]; expected a scalar or a vector of 5 values"),
        (lambda: featureInputLayer(4, StandardDeviation=np.zeros((2, 2))), r"'StandardDeviation' .* vector of 4"),
        (lambda: featureInputLayer(2, Normalization="zscore", StandardDeviation=[1, 0]),
         r"'StandardDeviation' .* all values must be positive"),
        (lambda: featureInputLayer(2, Min=[0, 1], Max=[1, 1]), r"'Max' .* every Max must be greater"),
        (lambda: featureInputLayer(2, Normalization="minmax"), r"'Normalization' is 'minmax'; expected one of"),
        (lambda: featureInputLayer(2, NormalizationDimension="element"),
         r"'NormalizationDimension' is 'element'; expected one of 'auto', 'channel', 'all'"),
        (lambda: featureInputLayer(2, Mean=[np.nan, 1]), r"'Mean' .* contains NaN"),
    ]
    for make, pattern in errors:
        with pytest.raises(LayerError, match=pattern):
            make()
    layer = featureInputLayer(3, Name="f")
    with pytest.raises(LayerError, match=r"'Mean' .* vector of 3 values"):
        layer.Mean = np.zeros(2)
    with pytest.raises(LayerError, match=r"featureInputLayer 'f': property 'InputSize': this property is "
                                         r"read-only"):
        layer.InputSize = 4
    # statistics load like learnables (weights files), checked likewise
    net = Network([featureInputLayer(3, Normalization="zerocenter", Name="in"), fullyConnectedLayer(2)],
                  weights={"in/Mean": np.array([1.0, 2.0, 3.0])})
    assert net.layers[0].Mean.ravel().tolist() == [1, 2, 3]
    np.testing.assert_array_equal(net.layers[0].forward([np.ones((1, 1, 1, 3))]).ravel(), [0, -1, -2])
    with pytest.raises(LayerError, match=r"'Mean' .* vector of 3 values"):
        Network([featureInputLayer(3, Name="in")], weights={"in/Mean": np.zeros(4)})


def test_predict_takes_features_and_returns_them():
    """(F,) and (N, F) in, (K,) and (N, K) out; (N, 1, 1, F) in, (N, 1, 1, K) out; image networks
    unchanged. The same rule for the reference and for a built library."""
    net = Network([featureInputLayer(5), fullyConnectedLayer(3), softmaxLayer()], seed=3, name="feat")
    lib = codegen.build(net, write=False)
    x = np.random.default_rng(4).standard_normal((4, 5))
    for predict in (net.predict, lib.predict):
        y = predict(x)
        assert y.shape == (4, 3)
        assert predict(x[1]).shape == (3,)
        np.testing.assert_allclose(predict(x[1]), y[1], rtol=1e-6)
        assert predict(x.reshape(4, 1, 1, 5)).shape == (4, 1, 1, 3)
        assert predict(x[0].reshape(1, 1, 5)).shape == (1, 1, 3)
        np.testing.assert_allclose(predict(x.reshape(4, 1, 1, 5)).reshape(4, 3), y, rtol=1e-6)
    assert rel_error(lib.predict(x), net.predict(x)) < 1e-6
    with pytest.raises(NetworkError, match=r"input has shape \(4, 6\); expected \(5,\) .* or \(N, 5\)"):
        net.predict(np.zeros((4, 6)))
    with pytest.raises(InputError, match=r"predict: input has shape \(6,\); expected \(5,\)"):
        lib.predict(np.zeros(6))
    # an output with spatial extent keeps (N, H, W, C), a 1 x 1 x K one becomes (N, K)
    two = Network(layerGraph([featureInputLayer(4, Name="in"), fullyConnectedLayer(3, Name="fc")]), name="two")
    assert two.predict(np.zeros((2, 4))).shape == (2, 3)
    image = Network([imageInputLayer([1, 1, 5]), fullyConnectedLayer(3)], name="img")
    with pytest.raises(NetworkError, match=r"expected \(H, W, C\) or \(N, H, W, C\) with H x W x C = 1x1x5"):
        image.predict(np.zeros((4, 5)))
    with pytest.raises(InputError, match=r"expected \(H, W, C\) = \(1, 1, 5\)"):
        codegen.build(image, write=False).predict(np.zeros((4, 5)))


# =========================================================================== generated code

def _stats(rng, norm, f):
    per = f if rng.random() < 0.7 else 1
    if norm in ("zerocenter", "zscore"):
        out = {"Mean": rng.normal(0, 0.5, per)}
        return out | ({"StandardDeviation": rng.uniform(0.5, 2, per)} if norm == "zscore" else {})
    if norm.startswith("rescale"):
        return {"Min": rng.uniform(-2, -0.5, per), "Max": rng.uniform(0.5, 2, per)}
    return {}


def feature_net(rng, index: int) -> Network:
    """A random MLP: featureInputLayer (any normalization), fully connected layers with batch
    normalization, activations, dropouts and flattens (the identity on 1 x 1 x K) between them."""
    f = int(rng.integers(1, 48))
    norm = str(rng.choice(NORMALIZATIONS))
    layers = [featureInputLayer(f, Normalization=norm, **_stats(rng, norm, f))]
    if rng.random() < 0.3:
        layers.append(dropoutLayer(float(rng.uniform(0, 0.9))))
    for _ in range(int(rng.integers(1, 4))):
        layers.append(fullyConnectedLayer(int(rng.integers(1, 70)), Bias=None))
        for kind in rng.choice(["bn", "relu", "sigmoid", "tanh", "dropout", "flatten"], size=int(rng.integers(0, 3)),
                               replace=False):
            layers.append({"bn": batchNormalizationLayer, "relu": reluLayer, "sigmoid": sigmoidLayer, "tanh": tanhLayer,
                           "dropout": dropoutLayer, "flatten": flattenLayer}[str(kind)]())
    layers.append([regressionLayer, softmaxLayer, dropoutLayer, reluLayer][int(rng.integers(4))]())
    return _random_statistics(Network(layers, seed=index, name=f"feat{index}"), rng)


def image_net(rng, index: int) -> Network:
    """Convolutions, then a global max pooling or a flatten (read by a fully connected layer, by an
    activation, or the output), dropouts anywhere; one in four a DAG concatenating a flatten and a
    global max pooling (the flatten writes a channel slice)."""
    h, w, c = (int(v) for v in rng.integers(1, 9, size=3))
    inp = imageInputLayer([h, w, c], Normalization="zscore", Mean=rng.normal(0, 1, (1, 1, c)))
    conv = convolution2dLayer(int(rng.integers(1, 4)), int(rng.integers(1, 9)), Padding="same", Name="conv")
    if index % 4 == 2:
        lg = layerGraph([inp, conv, reluLayer(Name="r"), flattenLayer(Name="flat"),
                         depthConcatenationLayer(2, Name="cat"), dropoutLayer(Name="drop"), fullyConnectedLayer(5)])
        lg = addLayers(lg, globalMaxPooling2dLayer(Name="gmp"))
        lg = connectLayers(lg, "r", "gmp")
        lg = connectLayers(lg, "gmp", "cat/in2")
        return Network(lg, seed=index, name=f"img{index}")
    layers = [inp, conv]
    if rng.random() < 0.5:
        layers.append(dropoutLayer(0.1))
    if rng.random() < 0.4:
        layers += [maxPooling2dLayer(2, Padding="same"), reluLayer()]
    tail = (index // 4) % 5
    if tail == 0:
        layers += [globalMaxPooling2dLayer(), fullyConnectedLayer(int(rng.integers(1, 9)))]
    elif tail == 1:
        layers += [globalMaxPooling2dLayer(), dropoutLayer(), tanhLayer()]
    elif tail == 2:
        layers += [flattenLayer(), fullyConnectedLayer(int(rng.integers(1, 9))), reluLayer()]
    elif tail == 3:
        layers += [flattenLayer(), sigmoidLayer(), fullyConnectedLayer(int(rng.integers(1, 9)))]
    else:
        layers += [flattenLayer()]
    return Network(layers, seed=index, name=f"img{index}")


def _random_statistics(net, rng):
    for layer in net.layers:                      # non-trivial batch-norm statistics
        if layer.FUNCTION == "batchNormalizationLayer":
            n = layer.NumChannels
            layer._p.update(TrainedMean=rng.normal(0, 1, (1, 1, n)), TrainedVariance=rng.uniform(0.2, 3, (1, 1, n)),
                            Scale=rng.uniform(0.5, 2, (1, 1, n)), Offset=rng.normal(0, 1, (1, 1, n)))
        if layer.FUNCTION == "fullyConnectedLayer":
            layer._p["Bias"] = rng.normal(0, 0.5, layer.Bias.shape).astype(np.float32)
    return net


def nets(count: int, seed: int) -> list[Network]:
    rng = np.random.default_rng(seed)
    return [(feature_net if i % 2 else image_net)(rng, seed * 1000 + i) for i in range(count)]


def _coverage(batch) -> dict:
    """What the plans of ``batch`` exercise: flatten ops (alone, writing a concatenation's slice,
    absorbed by a fully connected layer), whole-input max poolings, dropouts (never an op)."""
    seen = {"flatten op": 0, "flatten into a slice": 0, "flatten absorbed": 0, "global max pool": 0, "dropout": 0}
    for net in batch:
        plan = make_plan(net)
        types = {layer.Name: layer.FUNCTION for layer in net.layers}
        for op in plan.ops:
            funcs = [types.get(n) for n in op.layers]
            seen["flatten op"] += op.kind == "flatten"
            seen["flatten into a slice"] += op.kind == "flatten" and not op.output.dense
            seen["flatten absorbed"] += op.kind != "flatten" and "flattenLayer" in funcs
            seen["global max pool"] += "globalMaxPooling2dLayer" in funcs and op.attrs.kh == op.attrs.ih
            assert "dropoutLayer" not in funcs, op.describe()
        seen["dropout"] += "dropoutLayer" in types.values()
    return seen


def test_c_matches_reference_on_random_networks():
    batch = nets(40, 1)
    assert all(_coverage(batch).values()), _coverage(batch)
    check_against_reference(batch, codegen.build_many(batch, extra_flags=["-Werror"]))


def test_cuda_emulated_matches_reference_on_random_networks():
    batch = nets(24, 2)
    assert all(_coverage(batch).values()), _coverage(batch)
    check_against_reference(batch, codegen.build_many(batch, target="cuda", emulate=True, opt_flags=["-O1"]))


def test_nvcc_builds_without_warnings_or_spills_and_matches_on_a_gpu():
    """The CUDA kernels with the real compiler (sm_80, sm_90, PTX); where a GPU is present, on it."""
    require_tool("nvcc")
    batch = nets(8, 3)
    libs = codegen.build_many(batch, target="cuda")
    no_warnings(libs[0].build.log)
    kernels = {k.kernel for lib in libs for k in lib.kernels}
    assert any(k.endswith("_flatten") or "flat" in k for k in kernels), sorted(kernels)
    assert not any(lib.spill_warnings() for lib in libs)
    gpu_or_skip(libs[0])
    check_against_reference(batch, libs)


def dense_autoencoder() -> Network:
    """MLPerf Tiny's anomaly-detection autoencoder: 640 -> 4 x (128, batch norm, ReLU) -> 8 (batch
    norm, ReLU) -> 4 x (128, batch norm, ReLU) -> 640."""
    layers = [featureInputLayer(640, Name="input")]
    for n in [128] * 4 + [8] + [128] * 4:
        layers += [fullyConnectedLayer(n), batchNormalizationLayer(), reluLayer()]
    layers += [fullyConnectedLayer(640), regressionLayer()]
    return _random_statistics(Network(layers, seed=5, name="dense_ae"), np.random.default_rng(5))


def test_dense_autoencoder_on_cortex_m4():
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    net = dense_autoencoder()
    assert net.learnable_count(net.layers[1]) == 640 * 128 + 128
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()
    assert [op.kind for op in dev.plan.ops] == ["fc"] * 10            # batch norms folded, ReLUs fused
    x = np.random.default_rng(6).standard_normal((2, 640)).astype(np.float32)
    y, ref = dev.predict(x), net.predict(x.astype(np.float64))
    assert y.shape == ref.shape == (2, 640)
    assert max(rel_error(y[i], ref[i]) for i in range(2)) < 1e-5


def test_cli_builds_and_verifies_a_feature_input_network(tmp_path):
    (tmp_path / "mlp.py").write_text("layers = [featureInputLayer(12, Normalization='zscore', Mean=0.5, "
                                     "StandardDeviation=2), fullyConnectedLayer(6), reluLayer(), dropoutLayer(0.2), "
                                     "fullyConnectedLayer(3), softmaxLayer()]\n")
    result = invoke("build", tmp_path / "mlp.py", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "verification: PASS" in result.output
    result = invoke("verify", tmp_path / "mlp.py", "--per-layer")
    assert result.exit_code == 0 and result.output.count("verification: PASS") == 2, result.output


# =========================================================================== ONNX in and out

def test_export_matches_onnxruntime_and_imports_back():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from codegen.onnx import export_onnx, input_rank, output_rank, to_onnx_input, to_onnx_layout
    ops_seen = set()
    for net in nets(16, 4):
        model = export_onnx(net)
        onnx.checker.check_model(model, full_check=True)
        ops_seen |= {n.op_type for n in model.graph.node}
        features = net.layers[0].FUNCTION == "featureInputLayer"
        assert input_rank(model) == (2 if features else 4)
        x = random_inputs(net, 2, seed=1)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"input": to_onnx_input(x, input_rank(model))})[0]
        ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
        assert rel_error(y, ref) < 1e-5, net.name
        back = codegen.import_onnx(model)
        y_back = back.onnx.from_output(back.predict(back.onnx.to_input(to_onnx_input(x, input_rank(model)))
                                                    .astype(np.float64)))
        assert rel_error(y_back, ref) < 1e-6, net.name
        # dropouts export as nothing, and so does a flatten of an already flat (N x K) tensor
        kept = [type(a).__name__ for a in net.layers if a.FUNCTION != "dropoutLayer"
                and not (a.FUNCTION == "flattenLayer" and net.shapes[net.inputs[a.Name][0]][:2] == (1, 1))]
        got = [type(a).__name__ for a in back.layers if a.FUNCTION != "regressionLayer"]
        assert got == [k for k in kept if k not in ("RegressionOutputLayer", "ClassificationOutputLayer")], net.name
    assert {"GlobalMaxPool", "Transpose", "Flatten", "Gemm"} <= ops_seen, ops_seen


def _torch_export(model, x, dynamic: dict | None = None) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buf, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes=dynamic or {"x": {0: "n"}, "y": {0: "n"}})
    return buf.getvalue()


def test_pytorch_mlp_imports_as_a_feature_input_network():
    """nn.Linear/ReLU/Dropout on an N x K input: a featureInputLayer network; the compiled C takes
    and returns PyTorch's (N, K) arrays as they are."""
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(5, 20)
    net = codegen.import_onnx(_torch_export(model, x), name="torch_mlp")
    assert [type(a).__name__ for a in net.layers] == ["FeatureInputLayer", "FullyConnectedLayer", "ReLULayer",
                                                      "FullyConnectedLayer", "ReLULayer", "FullyConnectedLayer"]
    lib = codegen.build(net, write=False)
    with torch.no_grad():
        ref = model(x).numpy()
    y = lib.predict(x.numpy())
    assert y.shape == ref.shape == (5, 4)
    assert rel_error(y, ref) < 1e-5
    assert rel_error(lib.predict(x.numpy()[2]), ref[2]) < 1e-5


def test_pytorch_cnn_with_adaptive_max_pool_and_dropout_imports():
    """nn.AdaptiveMaxPool2d(1) and nn.Dropout in a CNN. With fixed H and W PyTorch writes a MaxPool
    of the whole image (a maxPooling2dLayer); with symbolic H and W it writes GlobalMaxPool, which
    imports as globalMaxPooling2dLayer once the input's H and W are fixed (onnx's own
    update_model_dims). A permute to N x C x W x H before the flatten is MATLAB's flatten."""
    onnx = pytest.importorskip("onnx")
    from onnx.tools import update_model_dims
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Dropout(0.4),
                                torch.nn.Conv2d(8, 6, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(),
                                torch.nn.Dropout(0.2), torch.nn.Linear(6, 5)).eval()
    x = torch.randn(3, 3, 9, 7)
    with torch.no_grad():
        ref = model(x).numpy()
    fixed = codegen.import_onnx(_torch_export(model, x), name="torch_fixed")
    dynamic = onnx.load_from_string(_torch_export(model, x, {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}}))
    assert "GlobalMaxPool" in [n.op_type for n in dynamic.graph.node]
    dynamic = update_model_dims.update_inputs_outputs_dims(dynamic, {"x": ["n", 3, 9, 7]}, {"y": ["n", 5]})
    glob = codegen.import_onnx(dynamic, name="torch_global")
    assert "MaxPooling2DLayer" in [type(a).__name__ for a in fixed.layers]
    assert [type(a).__name__ for a in glob.layers] == ["ImageInputLayer", "Convolution2DLayer", "ReLULayer",
                                                       "Convolution2DLayer", "GlobalMaxPooling2DLayer",
                                                       "FullyConnectedLayer"]
    for net in (fixed, glob):
        lib = codegen.build(net, write=False)
        assert rel_error(net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy()))), ref) < 1e-5

    class Permuted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 7 * 5, 3)

        def forward(self, t):
            return self.fc(torch.flatten(self.conv(t).permute(0, 1, 3, 2), 1))

    permuted = Permuted().eval()
    net = codegen.import_onnx(_torch_export(permuted, x), name="torch_permuted")
    assert [type(a).__name__ for a in net.layers] == ["ImageInputLayer", "Convolution2DLayer", "FlattenLayer",
                                                      "FullyConnectedLayer"]
    with torch.no_grad():
        ref = permuted(x).numpy()
    lib = codegen.build(net, write=False)
    assert rel_error(net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy()))), ref) < 1e-5
