"""Weight and bias initializers: documented distributions, fan-in/fan-out and seeding.

MATLAB documents ``'glorot'`` as uniform with variance 2/(numIn + numOut) (bounds
±sqrt(6/(numIn + numOut))), ``'he'`` as normal with variance 2/numIn and ``'narrow-normal'``
as normal with standard deviation 0.01; numIn and numOut are h*w*C and h*w*F for a
convolution, per group h*w*C/G and h*w*F/G for a grouped one, and InputSize and
OutputSize for a fully connected layer. Statistics are checked within 5 standard errors
estimated from the sample itself, on tens of thousands of values per layer.
"""

from __future__ import annotations

import numpy as np
import pytest

import codegen
from codegen import (batchNormalizationLayer, convolution2dLayer, fullyConnectedLayer, groupedConvolution2dLayer,
                     imageInputLayer)

SIGMAS = 5


def initialized(layer, input_size, seed=0):
    """The network's initialized copy of ``layer`` placed after an input of ``input_size``."""
    return codegen.Network([imageInputLayer(input_size), layer], seed=seed).layers[1]


def random_layer(rng, kind, **options):
    """(layer, input size, numIn, numOut) with tens of thousands of weights and numIn != numOut."""
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    if kind == "conv":
        c, f = int(rng.integers(8, 40)), int(rng.integers(60, 120))
        c, f = (c, f) if rng.random() < 0.5 else (f, c)
        f = max(f, 40000 // (kh * kw * c) + 1)
        return convolution2dLayer([kh, kw], f, **options), [kh + 2, kw + 1, c], kh * kw * c, kh * kw * f
    if kind == "grouped":
        groups, cg, fg = int(rng.integers(2, 6)), int(rng.integers(4, 20)), int(rng.integers(24, 48))
        cg, fg = (cg, fg) if rng.random() < 0.5 else (fg, cg)
        groups = max(groups, 40000 // (kh * kw * cg * fg) + 1)
        layer = groupedConvolution2dLayer([kh, kw], fg, groups, **options)
        return layer, [kh, kw, groups * cg], kh * kw * cg, kh * kw * fg
    h, w, c = (int(v) for v in rng.integers(2, 8, 3))
    out = 40000 // (h * w * c) + int(rng.integers(1, 50))
    return fullyConnectedLayer(out, **options), [h, w, c], h * w * c, out


def assert_moments(values, mean, var, context):
    """Sample mean and variance (about the known mean) within SIGMAS standard errors."""
    x = values.astype(np.float64).ravel() - mean
    n = x.size
    se_mean = np.sqrt(var / n)
    assert abs(x.mean()) < SIGMAS * se_mean, f"{context}: mean {x.mean() + mean:.4g}, expected {mean:.4g}"
    sq = x ** 2
    se_var = sq.std() / np.sqrt(n)
    assert abs(sq.mean() - var) < SIGMAS * se_var, f"{context}: variance {sq.mean():.4g}, expected {var:.4g}"


def kurtosis(values):
    x = values.astype(np.float64).ravel()
    return np.mean(x ** 4) / np.mean(x ** 2) ** 2


KINDS = ["conv", "grouped", "fc"]


@pytest.mark.parametrize("kind", KINDS)
def test_glorot_is_uniform_with_variance_2_over_fan_in_plus_fan_out(kind):
    rng = np.random.default_rng(10)
    for trial in range(4):
        layer, size, num_in, num_out = random_layer(rng, kind)
        assert layer.WeightsInitializer == "glorot"            # the default
        w = initialized(layer, size, seed=trial).Weights
        context = f"{kind} {w.shape}, numIn {num_in}, numOut {num_out}"
        assert_moments(w, 0.0, 2 / (num_in + num_out), context)
        bound = np.sqrt(6 / (num_in + num_out))
        assert np.abs(w).max() <= bound * (1 + 1e-6), context
        assert np.abs(w).max() > 0.99 * bound, context               # the whole interval is used
        assert abs(kurtosis(w) - 1.8) < 0.05, context                # uniform: E[x^4] / E[x^2]^2 = 9/5


@pytest.mark.parametrize("kind", KINDS)
def test_he_is_normal_with_variance_2_over_fan_in(kind):
    rng = np.random.default_rng(11)
    for trial in range(4):
        layer, size, num_in, num_out = random_layer(rng, kind, WeightsInitializer="he")
        w = initialized(layer, size, seed=trial).Weights
        context = f"{kind} {w.shape}, numIn {num_in}"
        assert_moments(w, 0.0, 2 / num_in, context)
        assert abs(kurtosis(w) - 3) < 0.15, context                  # normal


@pytest.mark.parametrize("kind", KINDS)
def test_narrow_normal_has_standard_deviation_0_01(kind):
    rng = np.random.default_rng(12)
    layer, size, _, _ = random_layer(rng, kind, WeightsInitializer="narrow-normal", BiasInitializer="narrow-normal")
    resolved = initialized(layer, size)
    assert_moments(resolved.Weights, 0.0, 1e-4, kind)
    assert abs(kurtosis(resolved.Weights) - 3) < 0.15, kind
    bias = resolved.Bias.ravel()
    assert bias.std() > 0 and np.abs(bias).max() < 0.01 * SIGMAS + 0.01


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name, value", [("zeros", 0.0), ("ones", 1.0)])
def test_constant_initializers(kind, name, value):
    layer, size, _, _ = random_layer(np.random.default_rng(13), kind, WeightsInitializer=name, BiasInitializer=name)
    resolved = initialized(layer, size)
    assert np.all(resolved.Weights == value) and np.all(resolved.Bias == value)


def test_bias_defaults_to_zeros():
    for kind in KINDS:
        layer, size, _, _ = random_layer(np.random.default_rng(14), kind)
        assert layer.BiasInitializer == "zeros"
        assert np.all(initialized(layer, size).Bias == 0)


@pytest.mark.parametrize("make, size, weights_shape, bias_shape", [
    (lambda **o: convolution2dLayer([3, 2], 5, **o), [6, 6, 4], (3, 2, 4, 5), (1, 1, 5)),
    (lambda **o: groupedConvolution2dLayer([2, 3], 4, 3, **o), [6, 6, 6], (2, 3, 2, 4, 3), (1, 1, 4, 3)),
    (lambda **o: groupedConvolution2dLayer(3, 2, "channel-wise", **o), [6, 6, 5], (3, 3, 1, 2, 5), (1, 1, 2, 5)),
    (lambda **o: fullyConnectedLayer(7, **o), [2, 3, 4], (7, 24), (7, 1)),
])
def test_function_handle_gets_the_matlab_shape(make, size, weights_shape, bias_shape):
    seen = []

    def ramp(sz):
        seen.append(tuple(sz))
        return np.arange(np.prod(sz), dtype=float).reshape(sz) - 3.5

    resolved = initialized(make(WeightsInitializer=ramp, BiasInitializer=ramp), size)
    assert seen == [weights_shape, bias_shape]
    np.testing.assert_array_equal(resolved.Weights, np.arange(np.prod(weights_shape)).reshape(weights_shape) - 3.5)
    np.testing.assert_array_equal(resolved.Bias, np.arange(np.prod(bias_shape)).reshape(bias_shape) - 3.5)


def test_batch_normalization_initializers():
    resolved = initialized(batchNormalizationLayer(ScaleInitializer="narrow-normal", OffsetInitializer="ones"),
                           [2, 2, 50000])
    assert_moments(resolved.Scale, 0.0, 1e-4, "Scale")
    assert np.all(resolved.Offset == 1)


def test_same_seed_same_weights_different_seed_different_weights():
    def weights(seed, init):
        layers = [imageInputLayer([8, 8, 3]), convolution2dLayer(3, 8, WeightsInitializer=init,
                                                                 BiasInitializer="narrow-normal"),
                  convolution2dLayer(3, 8, WeightsInitializer=init), fullyConnectedLayer(5, WeightsInitializer=init)]
        net = codegen.Network(layers, seed=seed)
        return [net.layers[1].Bias.ravel(), *(net.layers[i].Weights.ravel() for i in (1, 2, 3))]

    for init in ("glorot", "he", "narrow-normal"):
        a, b, c = weights(7, init), weights(7, init), weights(8, init)
        for x, y, z in zip(a, b, c):
            np.testing.assert_array_equal(x, y)
            assert not np.any(x == z)
        assert not np.any(a[1] == a[2][: a[1].size])    # two similar layers get different draws
