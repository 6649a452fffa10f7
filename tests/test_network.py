"""Networks: shape inference, automatic names, 'auto' resolution, weights from dicts and
files, and the summary table (``codegen summary`` and its errors: test_cli.py)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.io

import codegen
from codegen import (LayerError, NetworkError, averagePooling2dLayer, batchNormalizationLayer, classificationLayer,
                     clippedReluLayer, convolution2dLayer, fullyConnectedLayer, globalAveragePooling2dLayer,
                     groupedConvolution2dLayer, imageInputLayer, leakyReluLayer, maxPooling2dLayer, reluLayer,
                     softmaxLayer)


# --------------------------------------------------------------------------- shape inference

def spatial_out(n, f, stride, dilation, padding, dim):
    """MATLAB's output size of one dimension; padding is 'same' or [t b l r]."""
    if padding == "same":
        return math.ceil(n / stride)
    effective = (f - 1) * dilation + 1
    return (n + padding[2 * dim] + padding[2 * dim + 1] - effective) // stride + 1


def random_spatial_layer(rng, shape):
    """A random convolution or pooling layer valid for ``shape``, and its expected output shape."""
    h, w, c = shape
    kind = rng.choice(["conv", "grouped", "maxpool", "avgpool"])
    stride = [int(v) for v in rng.integers(1, 3, 2)]
    dilation = [int(v) for v in rng.integers(1, 3, 2)] if kind in ("conv", "grouped") else [1, 1]
    f = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    if rng.random() < 0.4:
        padding = "same"
    else:
        limit = [f[0] - 1, f[0] - 1, f[1] - 1, f[1] - 1] if kind.endswith("pool") else [2] * 4
        padding = [int(rng.integers(0, lim + 1)) for lim in limit]
        # shrink the window until it fits the padded input
        for d, n in enumerate((h, w)):
            while (f[d] - 1) * dilation[d] + 1 > n + padding[2 * d] + padding[2 * d + 1]:
                f[d] -= 1
                padding = [min(p, f[i // 2] - 1) for i, p in enumerate(padding)] if kind.endswith("pool") else padding
    out_hw = [spatial_out(n, f[d], stride[d], dilation[d], padding, d) for d, n in enumerate((h, w))]
    if kind == "conv":
        nf = int(rng.integers(1, 6))
        return convolution2dLayer(f, nf, Stride=stride, DilationFactor=dilation, Padding=padding), (*out_hw, nf)
    if kind == "grouped":
        fg = int(rng.integers(1, 3))
        return groupedConvolution2dLayer(f, fg, "channel-wise", Stride=stride, DilationFactor=dilation,
                                         Padding=padding), (*out_hw, c * fg)
    pool = maxPooling2dLayer if kind == "maxpool" else averagePooling2dLayer
    return pool(f, Stride=stride, Padding=padding), (*out_hw, c)


def random_chain(rng):
    """A random series network and the shape expected after every layer."""
    shape = (int(rng.integers(4, 16)), int(rng.integers(4, 16)), int(rng.integers(1, 5)))
    layers, shapes = [imageInputLayer(list(shape))], [shape]
    for _ in range(int(rng.integers(1, 7))):
        if rng.random() < 0.5:
            layer, shape = random_spatial_layer(rng, shape)
        else:
            layer = [reluLayer(), leakyReluLayer(0.1), clippedReluLayer(2), batchNormalizationLayer(),
                     softmaxLayer()][rng.integers(5)]
        layers.append(layer)
        shapes.append(shape)
    tail = rng.integers(3)
    if tail == 1:
        layers.append(globalAveragePooling2dLayer())
        shapes.append((1, 1, shape[2]))
    elif tail == 2:
        out = int(rng.integers(1, 8))
        layers += [fullyConnectedLayer(out), softmaxLayer(), classificationLayer()]
        shapes += [(1, 1, out)] * 3
    return layers, shapes


def test_shapes_are_inferred_through_random_networks():
    rng = np.random.default_rng(7)
    for trial in range(150):
        layers, shapes = random_chain(rng)
        net = codegen.Network(layers, seed=trial)
        assert [net.shapes[layer.Name] for layer in net.layers] == shapes, repr(net)
        x = rng.standard_normal((2, *shapes[0]))
        every = net.predict(x, return_all=True)
        assert [every[layer.Name].shape[1:] for layer in net.layers] == shapes
        np.testing.assert_array_equal(net.predict(x), every[net.layers[-1].Name])


def test_a_batch_is_predicted_like_its_images_one_by_one():
    net = codegen.Network([imageInputLayer([9, 8, 3]), convolution2dLayer(3, 4, Padding="same"), reluLayer(),
                           maxPooling2dLayer(2, Stride=2), fullyConnectedLayer(5), softmaxLayer()], seed=3)
    x = np.random.default_rng(8).standard_normal((4, 9, 8, 3))
    batch = net.predict(x)
    assert batch.shape == (4, 1, 1, 5)
    for i in range(4):
        np.testing.assert_allclose(net.predict(x[i]), batch[i], rtol=1e-14, atol=0)


# --------------------------------------------------------------------------- names and 'auto'

def test_automatic_names():
    net = codegen.Network([imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4), reluLayer(),
                           convolution2dLayer(3, 4, Name="mine"), reluLayer(), convolution2dLayer(1, 2),
                           batchNormalizationLayer(), fullyConnectedLayer(3), softmaxLayer()])
    assert [layer.Name for layer in net.layers] == ["imageinput_1", "conv_1", "relu_1", "mine", "relu_2", "conv_2",
                                                   "batchnorm_1", "fc_1", "softmax_1"]


def test_automatic_names_skip_names_already_taken():
    net = codegen.Network([imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4), convolution2dLayer(3, 4),
                           reluLayer(Name="conv_1")])
    names = [layer.Name for layer in net.layers]
    assert names == ["imageinput_1", "conv_2", "conv_3", "conv_1"]


def test_auto_values_are_resolved_and_the_users_layers_stay_untouched():
    layers = [imageInputLayer([10, 9, 3]), convolution2dLayer(3, 6), batchNormalizationLayer(),
              groupedConvolution2dLayer(3, 2, 3), groupedConvolution2dLayer(1, 1, "channel-wise"),
              fullyConnectedLayer(4)]
    net = codegen.Network(layers)
    conv, bn, grouped, depthwise, fc = net.layers[1:]
    assert conv.NumChannels == 3 and bn.NumChannels == 6
    assert (grouped.NumGroups, grouped.NumChannelsPerGroup) == (3, 2)
    assert (depthwise.NumGroups, depthwise.NumChannelsPerGroup) == (6, 1)
    assert fc.InputSize == 6 * 5 * 6
    assert (layers[1].Name, layers[1].NumChannels, layers[1].Weights) == ("", "auto", None)
    assert (layers[4].NumGroups, layers[5].InputSize) == ("channel-wise", "auto")


# --------------------------------------------------------------------------- weights

def small_layers():
    return [imageInputLayer([6, 5, 2]), convolution2dLayer([3, 2], 4), reluLayer(), fullyConnectedLayer(3)]


def expected_learnables(rng):
    """Random learnables with the MATLAB shapes of small_layers()."""
    return {"conv_1": {"Weights": rng.standard_normal((3, 2, 2, 4)), "Bias": rng.standard_normal((1, 1, 4))},
            "fc_1": {"Weights": rng.standard_normal((3, 4 * 4 * 4)), "Bias": rng.standard_normal((3, 1))}}


def assert_loaded(net, given):
    for layer, props in given.items():
        for prop, value in props.items():
            got = getattr(net.layer(layer), prop)
            assert got.shape == value.shape, (layer, prop)
            np.testing.assert_array_equal(got, value.astype(np.float32))


def test_weights_from_a_flat_dict_with_any_separator():
    given = expected_learnables(np.random.default_rng(9))
    for sep in ("/", ".", "__"):
        flat = {f"{layer}{sep}{prop}": v for layer, props in given.items() for prop, v in props.items()}
        assert_loaded(codegen.Network(small_layers(), weights=flat), given)


def test_weights_from_a_nested_dict():
    given = expected_learnables(np.random.default_rng(10))
    assert_loaded(codegen.Network(small_layers(), weights=given), given)


def test_weights_given_partly_are_completed_by_the_initializers():
    given = expected_learnables(np.random.default_rng(11))
    del given["fc_1"]
    net = codegen.Network(small_layers(), weights=given, seed=4)
    assert_loaded(net, given)
    assert net.layer("fc_1").Weights.shape == (3, 64) and np.any(net.layer("fc_1").Weights != 0)


def test_weights_from_an_npz_file(tmp_path):
    given = expected_learnables(np.random.default_rng(12))
    path = tmp_path / "w.npz"
    np.savez(path, **{f"{layer}/{prop}": v for layer, props in given.items() for prop, v in props.items()})
    assert_loaded(codegen.Network(small_layers(), weights=path), given)
    assert_loaded(codegen.Network(small_layers(), weights=str(path)), given)


def test_weights_from_a_matlab_file_with_a_struct_per_layer(tmp_path):
    given = expected_learnables(np.random.default_rng(13))
    path = tmp_path / "w.mat"
    scipy.io.savemat(path, given)
    assert_loaded(codegen.Network(small_layers(), weights=path), given)


def test_weights_from_a_matlab_file_with_flat_names(tmp_path):
    given = expected_learnables(np.random.default_rng(14))
    path = tmp_path / "w.mat"
    scipy.io.savemat(path, {f"{layer}__{prop}": v for layer, props in given.items() for prop, v in props.items()})
    assert_loaded(codegen.Network(small_layers(), weights=path), given)


def test_matlab_singleton_dimensions_survive_a_mat_file(tmp_path):
    """A one-channel 5x5x1x20 weight and a 1x1x20 bias must not come back squeezed."""
    rng = np.random.default_rng(15)
    given = {"conv_1": {"Weights": rng.standard_normal((5, 5, 1, 20)), "Bias": rng.standard_normal((1, 1, 20))}}
    path = tmp_path / "lenet.mat"
    scipy.io.savemat(path, given)
    net = codegen.Network([imageInputLayer([28, 28, 1]), convolution2dLayer(5, 20)], weights=path)
    assert_loaded(net, given)


def test_weights_of_the_wrong_shape_from_a_file(tmp_path):
    given = expected_learnables(np.random.default_rng(16))
    given["fc_1"]["Weights"] = given["fc_1"]["Weights"][:, :-1]
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, given)
    with pytest.raises(LayerError, match=r"fullyConnectedLayer 'fc_1'.*'Weights'.*expected size 3x64, got 3x63"):
        codegen.Network(small_layers(), weights=path)


def test_unreadable_weights_files(tmp_path):
    with pytest.raises(NetworkError, match="cannot read weights file .*missing.npz"):
        codegen.Network(small_layers(), weights=tmp_path / "missing.npz")
    (tmp_path / "w.txt").write_text("1 2 3")
    with pytest.raises(NetworkError, match="expected a .npz or .mat file"):
        codegen.Network(small_layers(), weights=tmp_path / "w.txt")


def test_same_seed_same_network_different_seed_different_network():
    x = np.random.default_rng(17).standard_normal((6, 5, 2))
    a, b, c = (codegen.Network(small_layers(), seed=s).predict(x) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# --------------------------------------------------------------------------- summary

def summary_rows(text):
    """{name: [type, activations, learnables, MACs, weight bytes, activation bytes]} from net.summary()."""
    rows = {}
    for line in text.splitlines()[3:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 7 and not line.startswith("-"):
            rows[cells[0]] = cells[1:]
    return rows


def test_summary_of_lenet():
    net = codegen.Network([imageInputLayer([28, 28, 1]), convolution2dLayer(5, 20), reluLayer(),
                           maxPooling2dLayer(2, "Stride", 2), fullyConnectedLayer(10), softmaxLayer(),
                           classificationLayer()], name="lenet")
    text = net.summary()
    lines = text.splitlines()
    assert lines[0] == "Network 'lenet': 7 layers, input 28x28x1, output 1x1x10"
    assert re.split(r"\s{2,}", lines[1].strip()) == ["Name", "Type", "Activations", "Learnables", "MACs",
                                                    "Weight bytes", "Activation bytes"]
    rows = summary_rows(text)
    conv_macs = 24 * 24 * 20 * 5 * 5 * 1
    pool_macs = 12 * 12 * 20 * 2 * 2
    fc_learn, fc_macs = 12 * 12 * 20 * 10 + 10, 12 * 12 * 20 * 10
    assert rows["imageinput_1"] == ["Image Input", "28x28x1", "0", "0", "0", f"{28 * 28 * 4:,}"]
    assert rows["conv_1"] == ["2-D Convolution", "24x24x20", "520", f"{conv_macs:,}", f"{520 * 4:,}",
                              f"{24 * 24 * 20 * 4:,}"]
    assert rows["relu_1"][:3] == ["ReLU", "24x24x20", "0"]
    assert rows["maxpool_1"] == ["2-D Max Pooling", "12x12x20", "0", f"{pool_macs:,}", "0", f"{12 * 12 * 20 * 4:,}"]
    assert rows["fc_1"] == ["Fully Connected", "1x1x10", f"{fc_learn:,}", f"{fc_macs:,}", f"{fc_learn * 4:,}", "40"]
    assert rows["softmax_1"][:2] == ["Softmax", "1x1x10"]
    assert rows["classoutput_1"][:2] == ["Classification Output", "1x1x10"]
    total = re.split(r"\s{2,}", lines[-1].strip())
    assert total[0] == "Total" and total[1] == f"{520 + fc_learn:,}"
    assert total[2] == f"{conv_macs + pool_macs + fc_macs:,}"


def test_summary_of_grouped_and_batch_norm_layers():
    net = codegen.Network([imageInputLayer([8, 8, 6]), groupedConvolution2dLayer(3, 4, 2, Padding="same"),
                           batchNormalizationLayer()])
    rows = summary_rows(net.summary())
    # weights 3x3x3x4x2 plus bias 1x1x4x2; each output sums 3*3*3 products
    assert rows["groupedconv_1"] == ["2-D Grouped Convolution", "8x8x8", "224", f"{8 * 8 * 8 * 27:,}", "896",
                                     f"{8 * 8 * 8 * 4:,}"]
    assert rows["batchnorm_1"][:3] == ["Batch Normalization", "8x8x8", "16"]   # Scale and Offset
