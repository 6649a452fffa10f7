"""The layer model: MATLAB's documented examples, properties, options and displays."""

from __future__ import annotations

import numpy as np
import pytest

import codegen
from codegen import (LayerArray, averagePooling2dLayer, batchNormalizationLayer, classificationLayer,
                     clippedReluLayer, convolution2dLayer, fullyConnectedLayer, globalAveragePooling2dLayer,
                     groupedConvolution2dLayer, imageInputLayer, leakyReluLayer, maxPooling2dLayer, reluLayer,
                     softmaxLayer)

CONV_PROPERTIES = ["FilterSize", "NumFilters", "Stride", "DilationFactor", "PaddingSize", "PaddingMode", "Padding",
                   "PaddingValue", "NumChannels", "WeightsInitializer", "BiasInitializer", "Weights", "Bias",
                   "WeightLearnRateFactor", "BiasLearnRateFactor", "WeightL2Factor", "BiasL2Factor", "Name",
                   "NumInputs", "InputNames", "NumOutputs", "OutputNames"]


def properties(layer, names=CONV_PROPERTIES):
    """{name: value} read through the MATLAB property names; arrays as lists so they compare."""
    out = {}
    for name in names:
        value = getattr(layer, name)
        out[name] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


def network(input_size, *layers, **kwargs):
    return codegen.Network([imageInputLayer(input_size), *layers], **kwargs)


# --------------------------------------------------------------------------- the documentation's examples

def test_doc_example_stride_4():
    layer = convolution2dLayer(11, 96, "Stride", 4)
    assert layer.FilterSize == [11, 11]
    assert layer.NumFilters == 96
    assert layer.Stride == [4, 4]
    assert layer.PaddingSize == [0, 0, 0, 0]
    assert repr(layer) == """\
  Convolution2DLayer with properties:

              Name: ''

   Hyperparameters
        FilterSize: [11 11]
       NumChannels: 'auto'
        NumFilters: 96
            Stride: [4 4]
    DilationFactor: [1 1]
       PaddingMode: 'manual'
       PaddingSize: [0 0 0 0]
      PaddingValue: 0

   Learnable Parameters
           Weights: []
              Bias: []
"""


def test_doc_example_padding_1_on_all_edges():
    layer = convolution2dLayer(11, 96, "Stride", 4, "Padding", 1)
    assert layer.PaddingSize == [1, 1, 1, 1]


def test_doc_example_rectangular_filter_with_a_b_padding_on_28x28():
    layer = convolution2dLayer([6, 4], 16, "Stride", 4, "Padding", [1, 0])
    assert layer.FilterSize == [6, 4]
    assert layer.PaddingSize == [1, 1, 0, 0]
    net = network([28, 28, 1], layer)
    # floor((28 + 2 - 6) / 4) + 1 = 7 and floor((28 - 4) / 4) + 1 = 7
    assert net.output_shape == (7, 7, 16)


def test_doc_example_32x32x3_stride_2_pad_2_gives_16x16x8_608_parameters_2048_neurons():
    net = network([32, 32, 3], convolution2dLayer(5, 8, "Stride", 2, "Padding", 2))
    conv = net.layers[1]
    assert net.output_shape == (16, 16, 8)
    assert net.learnable_count(conv) == 608                 # (5*5*3 + 1) * 8
    assert conv.Weights.shape == (5, 5, 3, 8) and conv.Bias.shape == (1, 1, 8)
    assert int(np.prod(net.shapes[conv.Name])) == 2048     # 16 * 16 * 8


LENET = """\
  7x1 Layer array with layers:

     1   ''   Image Input             28x28x1 images with 'zerocenter' normalization
     2   ''   2-D Convolution         20 5x5 convolutions with stride [1  1] and padding [0  0  0  0]
     3   ''   ReLU                    ReLU
     4   ''   2-D Max Pooling         2x2 max pooling with stride [2  2] and padding [0  0  0  0]
     5   ''   Fully Connected         10 fully connected layer
     6   ''   Softmax                 softmax
     7   ''   Classification Output   crossentropyex
"""


def lenet_layers():
    return [imageInputLayer([28, 28, 1]), convolution2dLayer(5, 20), reluLayer(), maxPooling2dLayer(2, "Stride", 2),
            fullyConnectedLayer(10), softmaxLayer(), classificationLayer()]


def test_doc_example_lenet_layer_array_display():
    assert repr(LayerArray(lenet_layers())) == LENET
    assert str(LayerArray(lenet_layers())) == LENET


def test_lenet_network_display_names_layers_and_fills_in_channels():
    lines = repr(codegen.Network(lenet_layers())).splitlines()
    assert lines[0] == "  7x1 Layer array with layers:"
    assert lines[2] == ("     1   'imageinput_1'    Image Input             "
                        "28x28x1 images with 'zerocenter' normalization")
    assert lines[3] == ("     2   'conv_1'          2-D Convolution         "
                        "20 5x5x1 convolutions with stride [1  1] and padding [0  0  0  0]")
    assert lines[8] == ("     7   'classoutput_1'   Classification Output   "
                        "crossentropyex with '1' and 9 other classes")


# --------------------------------------------------------------------------- calling conventions

def random_conv_options(rng):
    """A random set of convolution options, as {MATLAB name: value}."""
    pool = {
        "Stride": lambda: [int(v) for v in rng.integers(1, 4, 2)],
        "DilationFactor": lambda: int(rng.integers(1, 4)),
        "Padding": lambda: ["same", int(rng.integers(0, 3)), [1, 2], [0, 1, 2, 3]][rng.integers(4)],
        "PaddingValue": lambda: ["replicate", "symmetric-include-edge", "symmetric-exclude-edge",
                                 float(rng.normal())][rng.integers(4)],
        "WeightsInitializer": lambda: ["glorot", "he", "narrow-normal", "zeros", "ones"][rng.integers(5)],
        "BiasInitializer": lambda: ["zeros", "ones", "narrow-normal"][rng.integers(3)],
        "WeightLearnRateFactor": lambda: float(rng.uniform(0, 3)),
        "BiasLearnRateFactor": lambda: float(rng.uniform(0, 3)),
        "WeightL2Factor": lambda: float(rng.uniform(0, 3)),
        "BiasL2Factor": lambda: float(rng.uniform(0, 3)),
        "NumChannels": lambda: int(rng.integers(1, 5)),
        "Name": lambda: f"conv{rng.integers(100)}",
    }
    names = rng.choice(list(pool), size=int(rng.integers(1, len(pool) + 1)), replace=False)
    return {str(n): pool[n]() for n in names}


def test_pair_form_keyword_form_and_any_case_are_equal():
    rng = np.random.default_rng(1)
    for _ in range(200):
        options = random_conv_options(rng)
        f, nf = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        pairs = [v for item in options.items() for v in item]
        shouted = [v for k, val in options.items() for v in (k.upper(), val)]
        lower = {k.lower(): v for k, v in options.items()}
        by_keyword = properties(convolution2dLayer(f, nf, **options))
        assert properties(convolution2dLayer(f, nf, *pairs)) == by_keyword, options
        assert properties(convolution2dLayer(f, nf, *shouted)) == by_keyword, options
        assert properties(convolution2dLayer(f, nf, **lower)) == by_keyword, options


def test_option_values_that_are_names_are_case_insensitive():
    layer = convolution2dLayer(3, 4, Padding="SAME", PaddingValue="Replicate", WeightsInitializer="He",
                               BiasInitializer="Narrow-Normal")
    assert (layer.PaddingMode, layer.PaddingValue) == ("same", "replicate")
    assert (layer.WeightsInitializer, layer.BiasInitializer) == ("he", "narrow-normal")
    assert averagePooling2dLayer(2, PaddingValue="MEAN").PaddingValue == "mean"
    assert imageInputLayer([4, 4, 1], Normalization="ZScore").Normalization == "zscore"


def test_every_convolution_property_is_readable_with_its_matlab_name_and_defaults():
    assert properties(convolution2dLayer(3, 16)) == {
        "FilterSize": [3, 3], "NumFilters": 16, "Stride": [1, 1], "DilationFactor": [1, 1],
        "PaddingSize": [0, 0, 0, 0], "PaddingMode": "manual", "Padding": [0, 0], "PaddingValue": 0,
        "NumChannels": "auto", "WeightsInitializer": "glorot", "BiasInitializer": "zeros", "Weights": None,
        "Bias": None, "WeightLearnRateFactor": 1, "BiasLearnRateFactor": 1, "WeightL2Factor": 1, "BiasL2Factor": 0,
        "Name": "", "NumInputs": 1, "InputNames": ["in"], "NumOutputs": 1, "OutputNames": ["out"]}


def test_given_options_are_read_back():
    rng = np.random.default_rng(2)
    weights = rng.standard_normal((3, 2, 4, 5))
    bias = rng.standard_normal((1, 1, 5))
    layer = convolution2dLayer([3, 2], 5, Stride=[2, 1], DilationFactor=[1, 3], Padding=[1, 2, 3, 0],
                               PaddingValue=-1.5, NumChannels=4, Weights=weights, Bias=bias, WeightLearnRateFactor=2,
                               BiasLearnRateFactor=0.5, WeightL2Factor=0, BiasL2Factor=3, Name="c1")
    got = properties(layer)
    assert got["PaddingSize"] == [1, 2, 3, 0] and got["Padding"] == [1, 2, 3, 0]
    assert (got["Stride"], got["DilationFactor"], got["PaddingValue"], got["NumChannels"]) == ([2, 1], [1, 3], -1.5, 4)
    assert (got["WeightLearnRateFactor"], got["BiasLearnRateFactor"], got["WeightL2Factor"], got["BiasL2Factor"]) \
        == (2, 0.5, 0, 3)
    assert got["Name"] == "c1"
    # learnables are stored in single precision, as MATLAB does
    np.testing.assert_array_equal(layer.Weights, weights.astype(np.float32))
    np.testing.assert_array_equal(layer.Bias, bias.astype(np.float32))


def test_settable_properties_after_construction():
    layer = convolution2dLayer(3, 2)
    layer.Name = "renamed"
    layer.WeightsInitializer = "he"
    layer.BiasL2Factor = 2
    assert (layer.Name, layer.WeightsInitializer, layer.BiasL2Factor) == ("renamed", "he", 2)


@pytest.mark.parametrize("make, prop", [
    (lambda v: convolution2dLayer(v, 1), "FilterSize"),
    (lambda v: convolution2dLayer(3, 1, Stride=v), "Stride"),
    (lambda v: convolution2dLayer(3, 1, DilationFactor=v), "DilationFactor"),
    (lambda v: maxPooling2dLayer(v), "PoolSize"),
    (lambda v: maxPooling2dLayer(2, Stride=v), "Stride"),
    (lambda v: averagePooling2dLayer(v), "PoolSize"),
    (lambda v: groupedConvolution2dLayer(v, 1, 2), "FilterSize"),
])
def test_scalars_expand_to_pairs(make, prop):
    for v in range(1, 6):
        assert getattr(make(v), prop) == [v, v]
        assert getattr(make(np.float64(v)), prop) == [v, v]     # an integer-valued double, as MATLAB passes
        assert getattr(make([v, v + 1]), prop) == [v, v + 1]


@pytest.mark.parametrize("padding, size", [
    (0, [0, 0, 0, 0]), (2, [2, 2, 2, 2]),
    ([1, 3], [1, 1, 3, 3]), ((0, 2), [0, 0, 2, 2]), (np.array([2, 1]), [2, 2, 1, 1]),
    ([1, 2, 3, 4], [1, 2, 3, 4]), (np.array([[4, 3, 2, 1]]), [4, 3, 2, 1]),
])
def test_padding_forms(padding, size):
    for layer in (convolution2dLayer(5, 1, Padding=padding), maxPooling2dLayer(5, Padding=padding),
                  averagePooling2dLayer(5, Padding=padding), groupedConvolution2dLayer(5, 1, 1, Padding=padding)):
        assert (layer.PaddingMode, layer.PaddingSize) == ("manual", size)


def test_same_padding_is_resolved_by_the_network():
    layer = convolution2dLayer([4, 3], 2, Padding="same", Stride=[3, 2])
    assert (layer.PaddingMode, layer.PaddingSize, layer.Padding) == ("same", [0, 0, 0, 0], "same")
    net = network([10, 7, 1], layer)
    # out 4 x 4: total pad (4-1)*3 + 4 - 10 = 3 rows (1 top, 2 bottom), (4-1)*2 + 3 - 7 = 2 columns
    assert net.layers[1].PaddingSize == [1, 2, 1, 1]
    assert net.output_shape == (4, 4, 2)
    assert layer.PaddingSize == [0, 0, 0, 0]            # the user's object is untouched


def test_padding_value_forms():
    for value in ("symmetric-include-edge", "symmetric-exclude-edge", "replicate"):
        assert convolution2dLayer(3, 1, PaddingValue=value).PaddingValue == value
    assert convolution2dLayer(3, 1, PaddingValue=-2).PaddingValue == -2
    assert averagePooling2dLayer(3, PaddingValue=0).PaddingValue == 0


# --------------------------------------------------------------------------- grouped convolution

def test_grouped_convolution_learnable_shapes():
    rng = np.random.default_rng(4)
    for _ in range(50):
        groups, cg, fg = (int(v) for v in rng.integers(1, 5, 3))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        net = network([6, 6, groups * cg], groupedConvolution2dLayer([kh, kw], fg, groups))
        layer = net.layers[1]
        assert (layer.NumGroups, layer.NumChannelsPerGroup, layer.NumFiltersPerGroup) == (groups, cg, fg)
        assert layer.Weights.shape == (kh, kw, cg, fg, groups)
        assert layer.Bias.shape == (1, 1, fg, groups)
        assert net.output_shape == (7 - kh, 7 - kw, groups * fg)
        assert net.learnable_count(layer) == (kh * kw * cg + 1) * fg * groups


def test_channel_wise_convolution_has_one_group_per_channel():
    layer = groupedConvolution2dLayer(3, 2, "channel-wise", Padding="same")
    assert layer.NumGroups == "channel-wise"
    net = network([5, 5, 6], layer)
    resolved = net.layers[1]
    assert (resolved.NumGroups, resolved.NumChannelsPerGroup) == (6, 1)
    assert resolved.Weights.shape == (3, 3, 1, 2, 6) and resolved.Bias.shape == (1, 1, 2, 6)
    assert net.output_shape == (5, 5, 12)


def test_grouped_convolution_display():
    assert repr(groupedConvolution2dLayer(3, 10, 2)) == """\
  GroupedConvolution2DLayer with properties:

                   Name: ''

   Hyperparameters
             FilterSize: [3 3]
              NumGroups: 2
    NumChannelsPerGroup: 'auto'
     NumFiltersPerGroup: 10
                 Stride: [1 1]
         DilationFactor: [1 1]
            PaddingMode: 'manual'
            PaddingSize: [0 0 0 0]
           PaddingValue: 0

   Learnable Parameters
                Weights: []
                   Bias: []
"""


def test_display_of_learned_properties_shows_their_size():
    text = repr(network([8, 8, 3], convolution2dLayer(5, 20)).layers[1])
    assert "           Weights: [5x5x3x20 single]" in text
    assert "              Bias: [1x1x20 single]" in text
    assert "       NumChannels: 3" in text


# --------------------------------------------------------------------------- the other layers

def test_image_input_layer():
    layer = imageInputLayer([28, 28, 3])
    assert (layer.InputSize, layer.Normalization, layer.Mean, layer.Name) == ([28, 28, 3], "zerocenter", None, "")
    assert imageInputLayer([28, 28]).InputSize == [28, 28, 1]
    for norm in ("zerocenter", "zscore", "rescale-symmetric", "rescale-zero-one", "none"):
        assert imageInputLayer([2, 2, 1], "Normalization", norm).Normalization == norm
    layer = imageInputLayer([4, 4, 2], Normalization="zscore", Mean=[1, 2], StandardDeviation=np.array([[[2, 4]]]))
    assert layer.Mean.shape == (1, 1, 2) and layer.StandardDeviation.tolist() == [[[2, 4]]]
    assert (layer.NumInputs, layer.InputNames, layer.NumOutputs, layer.OutputNames) == (0, [], 1, ["out"])
    assert repr(imageInputLayer([28, 28, 3])) == """\
  ImageInputLayer with properties:

                      Name: ''
                 InputSize: [28 28 3]
        SplitComplexInputs: 0

   Hyperparameters
             Normalization: 'zerocenter'
    NormalizationDimension: 'auto'
                      Mean: []
         StandardDeviation: []
                       Min: []
                       Max: []
"""


def test_image_input_normalizations():
    rng = np.random.default_rng(5)
    x = rng.uniform(-3, 3, (2, 3, 4, 2))
    mean, std = rng.normal(size=(1, 1, 2)), rng.uniform(0.5, 2, (1, 1, 2))
    lo, hi = -rng.uniform(1, 2, (3, 4, 2)), rng.uniform(1, 2, (3, 4, 2))
    cases = {
        "zerocenter": (dict(Mean=mean), x - mean.astype(np.float32)),
        "zscore": (dict(Mean=mean, StandardDeviation=std), (x - mean.astype(np.float32)) / std.astype(np.float32)),
        "rescale-zero-one": (dict(Min=lo, Max=hi), (x - lo.astype(np.float32)) / (hi - lo).astype(np.float32)),
        "rescale-symmetric": (dict(Min=lo, Max=hi), 2 * (x - lo.astype(np.float32)) / (hi - lo).astype(np.float32) - 1),
        "none": ({}, x),
    }
    for norm, (stats, expected) in cases.items():
        net = codegen.Network([imageInputLayer([3, 4, 2], Normalization=norm, **stats)])
        np.testing.assert_allclose(net.predict(x), expected, rtol=1e-6, err_msg=norm)


def test_batch_normalization_layer():
    layer = batchNormalizationLayer("Epsilon", 1e-3, "Name", "bn")
    assert (layer.Epsilon, layer.Name, layer.NumChannels, layer.TrainedMean, layer.Scale) == (1e-3, "bn", "auto", None,
                                                                                                None)
    net = network([3, 3, 4], layer)
    bn = net.layers[1]
    assert [bn.TrainedMean.ravel().tolist(), bn.TrainedVariance.ravel().tolist()] == [[0] * 4, [1] * 4]
    assert [bn.Scale.ravel().tolist(), bn.Offset.ravel().tolist()] == [[1] * 4, [0] * 4]
    assert bn.TrainedMean.shape == bn.Scale.shape == (1, 1, 4)
    assert net.learnable_count(bn) == 8             # Scale and Offset; the trained statistics are not learned
    assert repr(batchNormalizationLayer()) == """\
  BatchNormalizationLayer with properties:

               Name: ''
        NumChannels: 'auto'
        TrainedMean: []
    TrainedVariance: []

   Hyperparameters
          MeanDecay: 0.1000
      VarianceDecay: 0.1000
            Epsilon: 1.0000e-05

   Learnable Parameters
             Offset: []
              Scale: []
"""


def test_activation_layers():
    assert reluLayer().Name == "" and reluLayer("Name", "r").Name == "r" and reluLayer(Name="r").Name == "r"
    assert leakyReluLayer().Scale == 0.01
    assert leakyReluLayer(0.2).Scale == 0.2
    assert leakyReluLayer("Name", "lk").Name == "lk" and leakyReluLayer("Name", "lk").Scale == 0.01
    assert clippedReluLayer(6, "Name", "c").Ceiling == 6
    assert repr(reluLayer()) == "  ReLULayer with properties:\n\n    Name: ''\n"
    # MATLAB's own example: leakyReluLayer(0.1,'Name','leaky1')
    assert repr(leakyReluLayer(0.1, "Name", "leaky1")) == """\
  LeakyReLULayer with properties:

     Name: 'leaky1'

   Hyperparameters
    Scale: 0.1000
"""
    assert repr(clippedReluLayer(10)) == """\
  ClippedReLULayer with properties:

       Name: ''

   Hyperparameters
    Ceiling: 10
"""


def test_pooling_layers():
    mp = maxPooling2dLayer(2, "Stride", 2)
    assert (mp.PoolSize, mp.Stride, mp.PaddingSize, mp.PaddingMode, mp.HasUnpoolingOutputs) == (
        [2, 2], [2, 2], [0, 0, 0, 0], "manual", False)
    assert maxPooling2dLayer([3, 2]).Stride == [1, 1]          # MATLAB's default stride is [1 1]
    ap = averagePooling2dLayer(3, Stride=2, Padding="same")
    assert (ap.PoolSize, ap.Stride, ap.PaddingMode, ap.PaddingValue) == ([3, 3], [2, 2], "same", 0)
    assert repr(mp) == """\
  MaxPooling2DLayer with properties:

                   Name: ''

   Hyperparameters
               PoolSize: [2 2]
                 Stride: [2 2]
            PaddingMode: 'manual'
            PaddingSize: [0 0 0 0]
    HasUnpoolingOutputs: 0
"""
    assert repr(ap).splitlines()[:2] == ["  AveragePooling2DLayer with properties:", ""]
    assert "    PaddingValue: 0" in repr(ap)
    assert repr(globalAveragePooling2dLayer("Name", "gap")) == \
        "  GlobalAveragePooling2DLayer with properties:\n\n    Name: 'gap'\n"
    net = network([5, 7, 3], globalAveragePooling2dLayer())
    assert net.output_shape == (1, 1, 3)


def test_pooling_output_sizes():
    net = network([9, 8, 2], maxPooling2dLayer([3, 2], Stride=[2, 3], Padding=[1, 0, 1, 1]))
    # floor((9 + 1 - 3) / 2) + 1 = 4 and floor((8 + 2 - 2) / 3) + 1 = 3
    assert net.output_shape == (4, 3, 2)
    net = network([9, 8, 2], averagePooling2dLayer(3, Stride=2, Padding="same"))
    assert net.output_shape == (5, 4, 2)


def test_fully_connected_layer():
    fc = fullyConnectedLayer(10, "Name", "fc", "WeightsInitializer", "he")
    assert (fc.OutputSize, fc.InputSize, fc.Name, fc.WeightsInitializer, fc.BiasInitializer, fc.BiasL2Factor) == (
        10, "auto", "fc", "he", "zeros", 0)
    net = network([4, 5, 3], fc)
    resolved = net.layers[1]
    assert resolved.InputSize == 60
    assert resolved.Weights.shape == (10, 60) and resolved.Bias.shape == (10, 1)
    assert net.output_shape == (1, 1, 10)
    assert repr(fullyConnectedLayer(10)) == """\
  FullyConnectedLayer with properties:

          Name: ''

   Hyperparameters
     InputSize: 'auto'
    OutputSize: 10

   Learnable Parameters
       Weights: []
          Bias: []
"""


def test_softmax_and_classification_layers():
    assert softmaxLayer("Name", "sm").Name == "sm"
    assert repr(softmaxLayer()) == "  SoftmaxLayer with properties:\n\n    Name: ''\n"
    cl = classificationLayer("Classes", ["cat", "dog", "fish"])
    assert cl.Classes == ["cat", "dog", "fish"]
    assert classificationLayer().Classes == "auto"
    net = network([1, 1, 3], softmaxLayer(), cl)
    assert net.layers[2].OutputSize == 3
    assert repr(net).splitlines()[-1].endswith("crossentropyex with 'cat' and 2 other classes")
    assert repr(classificationLayer()).splitlines()[0] == "  ClassificationOutputLayer with properties:"
