"""Every bad input gets one of our own errors whose message names the layer, the property,
the bad value and what is allowed, so that one line is enough to fix the input."""

from __future__ import annotations

import re

import numpy as np
import pytest

import codegen
from codegen import (LayerError, LayerTypeError, NetworkError, averagePooling2dLayer, batchNormalizationLayer,
                     classificationLayer, clippedReluLayer, convolution2dLayer, fullyConnectedLayer,
                     groupedConvolution2dLayer, imageInputLayer, leakyReluLayer, maxPooling2dLayer, reluLayer,
                     softmaxLayer)


def net(*layers, input_size=(6, 6, 3), **kwargs):
    return codegen.Network([imageInputLayer(list(input_size)), *layers], **kwargs)


def raises(error, make, *fragments):
    """``make()`` raises ``error`` and the message contains every fragment, in order."""
    with pytest.raises(error) as info:
        make()
    message = str(info.value)
    pattern = ".*".join(re.escape(f) for f in fragments)
    assert re.search(pattern, message), f"{message!r} lacks, in order: {fragments}"
    assert "\n" not in message
    return message


# Each case: the call, the error type, then fragments the message holds in order:
# the layer, the property, the value as typed, what is allowed.
CASES = {
    "zero filter size": (lambda: convolution2dLayer(0, 8), LayerError,
                         "convolution2dLayer", "'FilterSize'", "is 0", "positive integers"),
    "negative filter count": (lambda: convolution2dLayer(3, -2), LayerError,
                              "convolution2dLayer", "'NumFilters'", "is -2", "positive integers"),
    "zero in a filter pair": (lambda: convolution2dLayer([3, 0], 8), LayerError,
                              "'FilterSize'", "is [3 0]", "positive integers"),
    "non-integer filter size": (lambda: convolution2dLayer(2.5, 8), LayerError,
                                "'FilterSize'", "is 2.5", "positive integers"),
    "text filter size": (lambda: convolution2dLayer("a", 8), LayerError, "'FilterSize'", "is 'a'", "integers"),
    "zero stride": (lambda: convolution2dLayer(3, 8, Stride=0), LayerError,
                    "convolution2dLayer", "'Stride'", "is 0", "positive integers given as a scalar or 2 elements"),
    "three strides": (lambda: convolution2dLayer(3, 8, "Stride", [1, 2, 3]), LayerError,
                      "'Stride'", "is [1 2 3]", "a scalar or 2 elements"),
    "boolean stride": (lambda: convolution2dLayer(3, 8, "Stride", True), LayerError, "'Stride'", "is True", "integers"),
    "non-integer dilation": (lambda: convolution2dLayer(3, 8, DilationFactor=1.5), LayerError,
                             "'DilationFactor'", "is 1.5", "positive integers"),
    "zero channels": (lambda: convolution2dLayer(3, 8, NumChannels=0), LayerError,
                      "'NumChannels'", "is 0", "positive integer"),
    "negative pad": (lambda: convolution2dLayer(3, 8, Padding=-1), LayerError,
                     "convolution2dLayer", "'Padding'", "is -1", "'same', a nonnegative integer, [a b] or [t b l r]"),
    "three pads": (lambda: convolution2dLayer(3, 8, Padding=[1, 2, 3]), LayerError,
                   "'Padding'", "is [1 2 3]", "[a b] or [t b l r]"),
    "padding 'valid'": (lambda: convolution2dLayer(3, 8, "Padding", "valid"), LayerError,
                        "'Padding'", "is 'valid'", "'same'"),
    "pool padding 'full'": (lambda: maxPooling2dLayer(2, "Padding", "full"), LayerError,
                            "maxPooling2dLayer", "'Padding'", "is 'full'", "'same'"),
    "padding value name": (lambda: convolution2dLayer(3, 8, PaddingValue="mirror"), LayerError,
                           "'PaddingValue'", "is 'mirror'",
                           "'symmetric-include-edge', 'symmetric-exclude-edge', 'replicate'"),
    "average pool padding value 1": (lambda: averagePooling2dLayer(2, PaddingValue=1), LayerError,
                                     "averagePooling2dLayer", "'PaddingValue'", "is 1", "0 or 'mean'"),
    "average pool padding value name": (lambda: averagePooling2dLayer(2, PaddingValue="median"), LayerError,
                                        "'PaddingValue'", "is 'median'", "0 or 'mean'"),
    "weights initializer name": (lambda: convolution2dLayer(3, 8, WeightsInitializer="xavier"), LayerError,
                                 "'WeightsInitializer'", "is 'xavier'",
                                 "'glorot', 'he', 'narrow-normal', 'zeros', 'ones' or a function handle"),
    "bias initializer name": (lambda: fullyConnectedLayer(3, BiasInitializer="he"), LayerError,
                              "fullyConnectedLayer", "'BiasInitializer'", "is 'he'",
                              "'zeros', 'ones', 'narrow-normal' or a function handle"),
    "negative L2 factor": (lambda: convolution2dLayer(3, 8, WeightL2Factor=-1), LayerError,
                           "'WeightL2Factor'", "is -1", "nonnegative"),
    "NaN in weights": (lambda: convolution2dLayer(3, 8, Weights=np.full((3, 3, 1, 8), np.nan)), LayerError,
                       "convolution2dLayer", "'Weights'", "NaN", "finite"),
    "Inf in bias": (lambda: fullyConnectedLayer(2, Bias=[[1.0], [np.inf]]), LayerError,
                    "fullyConnectedLayer", "'Bias'", "[[1.0] [inf]]", "Inf", "finite"),
    "text weights": (lambda: convolution2dLayer(3, 8, Weights="abc"), LayerTypeError,
                     "'Weights'", "is 'abc'", "numeric array"),
    "numeric name": (lambda: reluLayer(Name=5), LayerTypeError, "reluLayer", "'Name'", "is 5", "string"),
    "option given twice": (lambda: convolution2dLayer(3, 8, "Stride", 2, "stride", 3), LayerError,
                           "'Stride'", "is 3", "given twice"),
    "zero output size": (lambda: fullyConnectedLayer(0), LayerError,
                         "fullyConnectedLayer", "'OutputSize'", "is 0", "positive integer"),
    "non-integer output size": (lambda: fullyConnectedLayer(10.5), LayerError, "'OutputSize'", "is 10.5", "integer"),
    "zero pool size": (lambda: maxPooling2dLayer(0), LayerError, "maxPooling2dLayer", "'PoolSize'", "is 0", "positive"),
    "input size with a zero": (lambda: imageInputLayer([28, 28, 0]), LayerError,
                               "imageInputLayer", "'InputSize'", "is [28 28 0]", "2 elements or 3 elements"),
    "one-element input size": (lambda: imageInputLayer([28]), LayerError, "'InputSize'", "is [28]", "2 elements"),
    "normalization name": (lambda: imageInputLayer([4, 4, 1], Normalization="minmax"), LayerError,
                           "'Normalization'", "is 'minmax'", "'zerocenter', 'zscore', 'rescale-symmetric'"),
    "mean of the wrong size": (lambda: imageInputLayer([28, 28, 3], Mean=np.zeros(5)), LayerError,
                               "imageInputLayer", "'Mean'", "[0. 0. 0. 0. 0.]", "1x1x3 or 28x28x3"),
    "zero standard deviation": (lambda: imageInputLayer([2, 2, 1], StandardDeviation=0), LayerError,
                                "'StandardDeviation'", "positive"),
    "zero ceiling": (lambda: clippedReluLayer(0), LayerError, "clippedReluLayer", "'Ceiling'", "is 0", "positive"),
    "small epsilon": (lambda: batchNormalizationLayer(Epsilon=1e-7), LayerError,
                      "batchNormalizationLayer", "'Epsilon'", "1e-07", ">= 1e-5"),
    "negative variance": (lambda: batchNormalizationLayer(TrainedVariance=-np.ones((1, 1, 2))), LayerError,
                          "'TrainedVariance'", "[-1. -1.]", "nonnegative"),
    "zero groups": (lambda: groupedConvolution2dLayer(3, 2, 0), LayerError,
                    "groupedConvolution2dLayer", "'NumGroups'", "is 0", "positive integer"),
    "groups name": (lambda: groupedConvolution2dLayer(3, 2, "depthwise"), LayerError,
                    "'NumGroups'", "is 'depthwise'", "a positive integer or 'channel-wise'"),
    "unpooling outputs": (lambda: maxPooling2dLayer(2, HasUnpoolingOutputs=True), LayerError,
                          "'HasUnpoolingOutputs'", "True", "false"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_layer_option(case):
    make, error, *fragments = CASES[case]
    raises(error, make, *fragments)


def test_our_errors_are_value_and_type_errors():
    assert issubclass(LayerError, ValueError) and issubclass(NetworkError, ValueError)
    assert issubclass(LayerTypeError, TypeError) and issubclass(LayerTypeError, LayerError)
    with pytest.raises(ValueError):
        convolution2dLayer(0, 1)
    with pytest.raises(TypeError):
        reluLayer(Name=1)


# --------------------------------------------------------------------------- option names

def test_unknown_option_suggests_the_closest_name():
    message = raises(LayerError, lambda: convolution2dLayer(3, 8, "Strid", 2),
                     "convolution2dLayer", "unknown option 'Strid'", "did you mean 'Stride'?", "allowed:",
                     "DilationFactor", "Padding", "Stride")
    assert "is 'Strid'" not in message          # the layer is not the bad value
    raises(LayerError, lambda: convolution2dLayer(3, 8, PadingValue=1), "did you mean 'PaddingValue'?")
    raises(LayerError, lambda: maxPooling2dLayer(2, "stirde", 2), "maxPooling2dLayer", "did you mean 'Stride'?")
    raises(LayerError, lambda: reluLayer("Nme", "x"), "reluLayer", "unknown option 'Nme'", "did you mean 'Name'?")
    raises(LayerError, lambda: fullyConnectedLayer(3, "WeightInitializer", "he"),
           "did you mean 'WeightsInitializer'?")
    message = raises(LayerError, lambda: convolution2dLayer(3, 8, Colour=2), "unknown option 'Colour'", "allowed:")
    assert "did you mean" not in message            # nothing is close


def test_odd_number_of_pair_arguments():
    raises(LayerError, lambda: convolution2dLayer(3, 8, "Stride"),
           "convolution2dLayer", "name-value pairs", "'Stride' has no value")
    raises(LayerError, lambda: convolution2dLayer(3, 8, "Stride", 2, "Padding"), "'Padding' has no value")
    raises(LayerError, lambda: softmaxLayer(3), "softmaxLayer", "name-value pairs", "3 has no value")
    raises(LayerError, lambda: leakyReluLayer("abc"), "leakyReluLayer", "'abc' has no value")


def test_option_name_that_is_not_text():
    raises(LayerTypeError, lambda: convolution2dLayer(3, 8, 4, 2), "convolution2dLayer", "option names", "got 4")


def test_read_only_and_unknown_properties():
    layer = convolution2dLayer(3, 8)
    with pytest.raises(LayerError, match="'Stride'.*read-only"):
        layer.Stride = 2
    with pytest.raises(LayerError, match="no property 'Strde'"):
        layer.Strde = 2
    with pytest.raises(LayerError, match="'Weights' is nan; contains NaN; all values must be finite"):
        layer.Weights = np.nan


# --------------------------------------------------------------------------- errors that need the network

def test_filter_larger_than_padded_input():
    raises(LayerError, lambda: net(convolution2dLayer(5, 2), input_size=(4, 4, 1)),
           "convolution2dLayer 'conv_1'", "'FilterSize'", "[5 5]", "filter height 5 is larger than the padded input "
           "height 4", "add padding")
    raises(LayerError, lambda: net(convolution2dLayer([3, 7], 2, Padding=[0, 1]), input_size=(4, 4, 1)),
           "'FilterSize'", "[3 7]", "width 7", "padded input width 6", "padding 1+1")
    raises(LayerError, lambda: net(convolution2dLayer(3, 2, DilationFactor=3, Name="dil"), input_size=(6, 6, 1)),
           "convolution2dLayer 'dil'", "(dilated) filter height 7", "height 6")
    raises(LayerError, lambda: net(maxPooling2dLayer(5), input_size=(4, 4, 1)),
           "maxPooling2dLayer 'maxpool_1'", "'PoolSize'", "[5 5]", "pool height 5 is larger")


def test_pool_padding_must_be_smaller_than_the_pool():
    raises(LayerError, lambda: net(maxPooling2dLayer(2, Padding=[0, 2])),
           "maxPooling2dLayer 'maxpool_1'", "'PaddingSize'", "[0 0 2 2]", "smaller than the pool size")


def test_weights_of_the_wrong_shape():
    raises(LayerError, lambda: net(convolution2dLayer(3, 2, Weights=np.ones((3, 3, 2, 2)))),
           "convolution2dLayer 'conv_1'", "'Weights'", "expected size 3x3x3x2, got 3x3x2x2")
    raises(LayerError, lambda: net(convolution2dLayer(3, 2, Bias=np.ones((1, 1, 3)))),
           "'Bias'", "expected size 1x1x2, got 1x1x3")
    raises(LayerError, lambda: net(fullyConnectedLayer(3, Weights=np.ones((3, 107)))),
           "fullyConnectedLayer 'fc_1'", "'Weights'", "expected size 3x108, got 3x107")
    raises(LayerError, lambda: net(groupedConvolution2dLayer(3, 2, 3, Weights=np.ones((3, 3, 1, 2, 2)))),
           "groupedConvolution2dLayer 'groupedconv_1'", "'Weights'", "expected size 3x3x1x2x3, got 3x3x1x2x2")
    raises(LayerError, lambda: net(batchNormalizationLayer(Scale=np.ones((1, 1, 4)))),
           "batchNormalizationLayer 'batchnorm_1'", "'Scale'", "expected size 1x1x3, got 1x1x4")


def test_channel_mismatch_between_layers():
    raises(LayerError, lambda: net(convolution2dLayer(3, 4, NumChannels=4)),
           "convolution2dLayer 'conv_1'", "'NumChannels'", "is 4", "the input has 3 channels",
           "set NumChannels to 3 or 'auto'")
    raises(LayerError, lambda: net(convolution2dLayer(1, 5), batchNormalizationLayer(NumChannels=4)),
           "batchNormalizationLayer 'batchnorm_1'", "'NumChannels'", "is 4", "the input has 5 channels")
    raises(LayerError, lambda: net(groupedConvolution2dLayer(3, 2, 2)),
           "groupedConvolution2dLayer 'groupedconv_1'", "'NumGroups'", "is 2", "3 channels",
           "not a multiple of NumGroups=2")
    raises(LayerError, lambda: net(groupedConvolution2dLayer(3, 2, 3, NumChannelsPerGroup=2)),
           "'NumChannelsPerGroup'", "is 2", "1 per group")
    raises(LayerError, lambda: net(fullyConnectedLayer(2), classificationLayer(Classes=["a", "b", "c"])),
           "classificationLayer 'classoutput_1'", "'Classes'", "['a' 'b' 'c']", "3 classes given",
           "the input has 2 channels")


def test_initializer_function_failures():
    raises(LayerError, lambda: net(convolution2dLayer(3, 2, WeightsInitializer=lambda sz: 1 / 0)),
           "convolution2dLayer 'conv_1'", "'WeightsInitializer'", "<lambda>", "raised ZeroDivisionError")
    raises(LayerError, lambda: net(convolution2dLayer(3, 2, WeightsInitializer=lambda sz: np.ones(3))),
           "'WeightsInitializer'", "returned 3 values", "size 3x3x3x2")
    raises(LayerError, lambda: net(fullyConnectedLayer(2, BiasInitializer=lambda sz: np.full(sz, np.nan))),
           "fullyConnectedLayer 'fc_1'", "'BiasInitializer'", "NaN or Inf")


# --------------------------------------------------------------------------- network structure

def test_duplicate_layer_names():
    raises(NetworkError, lambda: net(reluLayer(Name="a"), reluLayer(Name="a")),
           "two layers are named 'a'", "unique")


def test_a_function_instead_of_a_layer():
    raises(NetworkError, lambda: net(reluLayer), "element 2", "not a layer", "parentheses", "reluLayer()")
    raises(NetworkError, lambda: net("relu"), "element 2", "str, not a layer")


def test_network_without_an_input_layer():
    raises(NetworkError, lambda: codegen.Network([convolution2dLayer(3, 2), reluLayer()]),
           "no input layer", "imageInputLayer")
    raises(NetworkError, lambda: codegen.Network([]), "no layers", "imageInputLayer")


def test_weights_for_unknown_layers_and_properties():
    raises(NetworkError, lambda: net(convolution2dLayer(3, 2), weights={"conv_9/Weights": np.ones(3)}),
           "'conv_9'", "no layer of that name", "imageinput_1, conv_1")
    raises(LayerError, lambda: net(convolution2dLayer(3, 2), weights={"conv_1/Stride": 2}),
           "convolution2dLayer 'conv_1'", "'Stride'", "cannot be loaded", "loadable: Bias, Weights")
    raises(LayerError, lambda: net(reluLayer(), weights={"relu_1/Weights": np.ones(3)}),
           "reluLayer 'relu_1'", "'Weights'", "nothing to load")
    raises(NetworkError, lambda: net(convolution2dLayer(3, 2), weights={"conv_1Weights": 1}),
           "'conv_1Weights'", "must name a layer and a property", "'conv_1/Weights'")
    raises(LayerError, lambda: net(convolution2dLayer(3, 2), weights={"conv_1": {"Weights": np.full((3, 3, 3, 2),
                                                                                                    np.nan)}}),
           "convolution2dLayer 'conv_1'", "'Weights'", "NaN")


def test_predict_with_an_input_of_the_wrong_shape():
    raises(NetworkError, lambda: net(reluLayer()).predict(np.ones((6, 6, 2))), "(1, 6, 6, 2)", "6x6x3")
