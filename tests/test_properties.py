"""Property-based tests (hypothesis): random valid stacks compile and match the reference;
random invalid options raise our error type naming the layer and the property (issue 7).

The default run draws tens of examples; ``--long`` raises it to thousands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import codegen
from codegen import CodegenError, LayerError, Network
from codegen.harness import SANITIZE, run_harness
from codegen.emit import render_files
from codegen import build_many
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from conftest import long_run


def examples(short: int, long: int):
    return long if long_run() else short


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                derandomize=True)
CHANNELS = st.sampled_from([1, 2, 3, 5, 7, 11, 13])
SMALL = st.integers(1, 4)


@st.composite
def padding(draw):
    kind = draw(st.sampled_from(["same", "scalar", "pair", "tblr"]))
    if kind == "same":
        return "same"
    if kind == "scalar":
        return draw(st.integers(0, 3))
    if kind == "pair":
        return [draw(st.integers(0, 3)), draw(st.integers(0, 3))]
    return [draw(st.integers(0, 3)) for _ in range(4)]


@st.composite
def conv_layer(draw, shape):
    h, w, c = shape
    if draw(st.booleans()):            # a filter exactly as large as the padded input (one output pixel)
        pads = [draw(st.integers(0, 2)) for _ in range(4)]
        fsize = [h + pads[0] + pads[1], w + pads[2] + pads[3]]
        assume(max(fsize) <= 9)
        pad, stride, dil = pads, draw(SMALL), 1
    else:
        fsize = [draw(SMALL), draw(SMALL)]
        pad = draw(padding())
        stride = [draw(st.integers(1, 5)), draw(st.integers(1, 5))]     # may exceed the filter
        dil = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    groups = draw(st.sampled_from([1, 1, "channel-wise"] + [g for g in range(2, c + 1) if c % g == 0]))
    bias_scale = draw(st.floats(0.1, 1.0))
    if groups == 1:
        f = draw(CHANNELS)
        return codegen.convolution2dLayer(fsize, f, Stride=stride, DilationFactor=dil, Padding=pad,
                                          BiasInitializer=lambda sz: np.full(sz, bias_scale))
    fg = draw(st.integers(1, 3))
    return codegen.groupedConvolution2dLayer(fsize, fg, groups, Stride=stride, DilationFactor=dil, Padding=pad,
                                             BiasInitializer=lambda sz: np.full(sz, bias_scale))


@st.composite
def stack(draw):
    h = draw(st.sampled_from([1, 1, 2, 3, 5, 7, 8, 13]))
    w = draw(st.sampled_from([1, 2, 3, 5, 7, 8, 13]))
    c = draw(CHANNELS)
    layers = [codegen.imageInputLayer([h, w, c], Normalization=draw(st.sampled_from(["none", "zerocenter"])),
                                      Mean=draw(st.floats(-1, 1)))]
    shape = (h, w, c)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "bn", "fc"]))
        if kind == "conv":
            layer = draw(conv_layer(shape))
        elif kind == "pool":
            pool = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
            pad = draw(st.sampled_from(["same", 0, [0, 1, 1, 0], 1]))
            stride = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
            layer = (codegen.maxPooling2dLayer(pool, Stride=stride, Padding=pad) if draw(st.booleans()) else
                     codegen.averagePooling2dLayer(pool, Stride=stride, Padding=pad,
                                                   PaddingValue=draw(st.sampled_from([0, "mean"]))))
        elif kind == "act":
            layer = draw(st.sampled_from([codegen.reluLayer(), codegen.leakyReluLayer(0.2),
                                          codegen.clippedReluLayer(0.7)]))
        elif kind == "bn":
            layer = codegen.batchNormalizationLayer(TrainedMean=np.full((1, 1, shape[2]), draw(st.floats(-1, 1))),
                                                    TrainedVariance=np.full((1, 1, shape[2]), draw(st.floats(0.1, 2))))
        else:
            layer = codegen.fullyConnectedLayer(draw(CHANNELS), BiasInitializer="narrow-normal")
        try:
            shape = tuple(layer.copy().resolve([shape]))
        except LayerError:
            continue              # the draw does not fit this input: skip the layer
        layers.append(layer)
    assume(len(layers) > 1)
    return layers


@settings(max_examples=examples(25, 2000), **SETTINGS)
@given(layers=stack(), seed=st.integers(0, 2 ** 16))
def test_random_valid_stacks_compile_and_match(layers, seed):
    net = Network(layers, seed=seed, name="prop")
    lib = build_many([net])[0]
    lib.poison = np.nan
    x = random_inputs(net, 1, seed)
    ref = net.predict(x[0].astype(np.float64))
    assume(np.linalg.norm(ref) > 0)
    assert rel_error(lib.predict(x)[0], ref) < 1e-5, lib.plan.describe()


@settings(max_examples=examples(6, 200), **SETTINGS)
@given(layers=stack(), seed=st.integers(0, 2 ** 16))
def test_random_valid_stacks_are_clean_under_sanitizers(layers, seed):
    net = Network(layers, seed=seed, name="san")
    plan = make_plan(net)
    x = random_inputs(net, 1, seed)
    y = run_harness(render_files(net, plan), "san", x, plan.output.size, cflags=["-O1", *SANITIZE])
    ref = net.predict(x[0].astype(np.float64)).ravel()
    assume(np.linalg.norm(ref) > 0)
    assert rel_error(y[0], ref) < 1e-5


# ----------------------------------------------------------------------------- invalid options

BAD_NUMBERS = [0, -1, 2.5, math.nan, math.inf, "3", None, [1, 2, 3], True, [[1, 2], [3, 4]], {"a": 1}]

CASES = {
    # constructor: (positional arguments, {property: bad values})
    "convolution2dLayer": ((3, 4), {"Stride": BAD_NUMBERS, "DilationFactor": BAD_NUMBERS,
                                    "Padding": [-1, 1.5, "valid", [1, 2, 3], "sam"],
                                    "PaddingValue": ["mirror", math.nan, [1, 2]],
                                    "WeightsInitializer": ["xavier", 3], "BiasInitializer": ["glorot", None],
                                    "NumChannels": BAD_NUMBERS, "Weights": ["abc", np.full((3, 3), np.nan)],
                                    "Name": [3, None], "WeightL2Factor": [-1, "x"]}),
    "groupedConvolution2dLayer": ((3, 2, 2), {"Stride": BAD_NUMBERS, "Padding": [-2, "full"],
                                              "NumChannelsPerGroup": BAD_NUMBERS}),
    "maxPooling2dLayer": ((2,), {"Stride": BAD_NUMBERS, "Padding": [-1, "valid"], "HasUnpoolingOutputs": [True]}),
    "averagePooling2dLayer": ((2,), {"Stride": BAD_NUMBERS, "PaddingValue": [1, "max"]}),
    "batchNormalizationLayer": ((), {"Epsilon": [0, -1, 1e-9, "x"], "TrainedVariance": [np.array([-1.0])],
                                     "MeanDecay": [2, -0.5]}),
    "fullyConnectedLayer": ((10,), {"WeightsInitializer": ["uniform"], "Bias": [np.array([np.inf])]}),
    "imageInputLayer": (([8, 8, 3],), {"Normalization": ["minmax", 3], "StandardDeviation": [np.zeros(3)],
                                       "Mean": [np.zeros(5)], "SplitComplexInputs": [True]}),
    "leakyReluLayer": ((), {"Name": [1.5]}),
    "clippedReluLayer": ((6,), {"Name": [[1]]}),
}
FIRST_ARGS = {
    "convolution2dLayer": [[0], [-3], [2.5], ["3"], [None], [[1, 2, 3]], [math.nan]],
    "clippedReluLayer": [[0], [-1], [math.inf], ["x"]],
    "fullyConnectedLayer": [[0], [1.5], [-2]],
    "imageInputLayer": [[[8, 8, 0]], [[8]], [[8, 8, 3, 1]], ["img"]],
    "additionLayer": [[1], [0], [2.5]],
}


def _expect_clear_error(func, args, kwargs, prop):
    name = func.__name__
    with pytest.raises(CodegenError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert name in message, message
    assert prop in message, message


@settings(max_examples=examples(60, 3000), **SETTINGS)
@given(data=st.data())
def test_invalid_options_raise_our_error_naming_layer_and_property(data):
    ctor = data.draw(st.sampled_from(sorted(CASES)))
    args, props = CASES[ctor]
    prop = data.draw(st.sampled_from(sorted(props)))
    bad = data.draw(st.sampled_from(props[prop]))
    func = getattr(codegen, ctor)
    pair_form = data.draw(st.booleans())
    if pair_form:
        _expect_clear_error(func, (*args, prop, bad), {}, prop)
    else:
        _expect_clear_error(func, args, {prop: bad}, prop)


@settings(max_examples=examples(30, 1000), **SETTINGS)
@given(data=st.data())
def test_invalid_positional_arguments(data):
    ctor = data.draw(st.sampled_from(sorted(FIRST_ARGS)))
    first = data.draw(st.sampled_from(FIRST_ARGS[ctor]))
    rest = {"convolution2dLayer": [4]}.get(ctor, [])
    prop = {"convolution2dLayer": "FilterSize", "clippedReluLayer": "Ceiling", "fullyConnectedLayer": "OutputSize",
            "imageInputLayer": "InputSize", "additionLayer": "NumInputs"}[ctor]
    _expect_clear_error(getattr(codegen, ctor), (*first, *rest), {}, prop)


@settings(max_examples=examples(30, 1000), **SETTINGS)
@given(h=st.integers(1, 6), w=st.integers(1, 6), f=st.integers(1, 9), pad=st.integers(0, 2),
       dil=st.integers(1, 3))
def test_filters_larger_than_the_padded_input_are_refused(h, w, f, pad, dil):
    effective = (f - 1) * dil + 1
    layers = [codegen.imageInputLayer([h, w, 1]), codegen.convolution2dLayer(f, 2, Padding=pad, DilationFactor=dil)]
    if effective <= min(h, w) + 2 * pad:
        assert Network(layers).output_shape[2] == 2
    else:
        with pytest.raises(LayerError, match=r"convolution2dLayer 'conv_1': property 'FilterSize'.*larger than "
                                             r"the padded input"):
            Network(layers)


@settings(max_examples=examples(20, 500), **SETTINGS)
@given(c_in=st.integers(1, 6), c_given=st.integers(1, 6), shape=st.sampled_from(["drop", "extra", "swap"]))
def test_wrong_weight_shapes_and_channel_mismatches(c_in, c_given, shape):
    w = np.ones((3, 3, c_given, 4))
    w = {"drop": w[..., 0], "extra": w[..., None, None].repeat(2, -1), "swap": np.ones((4, c_given, 3, 3))}[shape]
    layers = [codegen.imageInputLayer([5, 5, c_in]), codegen.convolution2dLayer(3, 4, Weights=w)]
    with pytest.raises(LayerError, match=r"convolution2dLayer 'conv_1': property 'Weights'.*expected size 3x3x"):
        Network(layers)
    if c_given != c_in:
        with pytest.raises(LayerError, match=rf"property 'NumChannels' is {c_given}; the input has {c_in} channels"):
            Network([codegen.imageInputLayer([5, 5, c_in]), codegen.convolution2dLayer(3, 4, NumChannels=c_given)])
