"""The NumPy reference (``Network.predict``) against PyTorch, the independent oracle.

Each test draws a few hundred random configurations of one layer kind from a seeded
generator (sizes, strides, dilations, asymmetric ``[t b l r]`` and ``'same'`` pads, groups,
padding values), runs the layer inside a network and compares with ``torch.nn.functional``
in float64 on the CPU. Our tensors are (N, H, W, C); torch's are (N, C, H, W).

Where torch has no equivalent argument the pads come from MATLAB's documented rules,
computed here: ``'same'`` gives ceil(in / stride) outputs with the extra row or column at
the bottom or right; max pooling pads with -Inf; average pooling with PaddingValue 0
divides by the pool area and with ``'mean'`` by the number of input elements.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import codegen
from codegen import (averagePooling2dLayer, batchNormalizationLayer, clippedReluLayer, convolution2dLayer,
                     fullyConnectedLayer, globalAveragePooling2dLayer, groupedConvolution2dLayer, imageInputLayer,
                     leakyReluLayer, maxPooling2dLayer, reluLayer, softmaxLayer)

CONFIGS = 300          # random configurations per layer kind
RTOL = 1e-12           # float64 rounding, relative to the norm of torch's result


# --------------------------------------------------------------------------- helpers

def run(layer, x):
    """The reference output of ``layer`` on x (N, H, W, C) and the network's resolved copy of it."""
    net = codegen.Network([imageInputLayer(list(x.shape[1:]), Normalization="none"), layer])
    return net.predict(x), net.layers[1]


def to_torch(x):
    """(N, H, W, C) NumPy -> (N, C, H, W) torch float64."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def from_torch(t):
    return t.numpy().transpose(0, 2, 3, 1)


def check(y, ref, config):
    """||y - ref|| <= RTOL ||ref|| (so an all-zero ref needs an exact zero)."""
    assert y.shape == ref.shape, f"{config}: shape {y.shape}, torch gives {ref.shape}"
    err = np.linalg.norm(y - ref)
    assert err <= RTOL * np.linalg.norm(ref), f"{config}: relative error {err / np.linalg.norm(ref):.3g}"


def same_pads(n, f, stride, dilation=1):
    """MATLAB's 'same': ceil(n / stride) outputs; the total pad split, the extra at the end."""
    effective = (f - 1) * dilation + 1
    total = max((math.ceil(n / stride) - 1) * stride + effective - n, 0)
    return total // 2, total - total // 2


def random_padding(rng, max_pad):
    """A random 'Padding' option in one of MATLAB's forms: scalar, [a b], [t b l r] or 'same'."""
    form = rng.integers(4)
    if form == 0:
        return int(rng.integers(0, max_pad + 1))
    if form == 1:
        return [int(v) for v in rng.integers(0, max_pad + 1, 2)]
    if form == 2:
        return [int(v) for v in rng.integers(0, max_pad + 1, 4)]
    return "same"


def explicit_pads(padding):
    """[t b l r] of a manual 'Padding' option, written out from MATLAB's documented forms."""
    if np.isscalar(padding):
        return [padding] * 4
    if len(padding) == 2:
        return [padding[0], padding[0], padding[1], padding[1]]
    return list(padding)


def resolve_pads(padding, hw, f, stride, dilation=(1, 1)):
    if padding == "same":
        return [*same_pads(hw[0], f[0], stride[0], dilation[0]), *same_pads(hw[1], f[1], stride[1], dilation[1])]
    return explicit_pads(padding)


def input_size(rng, effective, pad_before, pad_after, extra=8):
    """An input size the (dilated) window fits into once padded."""
    return int(rng.integers(max(1, effective - pad_before - pad_after), effective + extra))


def torch_pad(t, pads, value):
    """Pad (N, C, H, W) by [t b l r] the way MATLAB's PaddingValue says, using torch."""
    top, bottom, left, right = pads
    if value == "replicate":
        return F.pad(t, (left, right, top, bottom), mode="replicate")
    if value == "symmetric-exclude-edge":
        return F.pad(t, (left, right, top, bottom), mode="reflect")
    if value == "symmetric-include-edge":
        # the mirror image including the edge: torch has no such mode, so concatenate flipped slices
        h, w = t.shape[2:]
        t = torch.cat([t[:, :, :top].flip(2), t, t[:, :, h - bottom:].flip(2)], dim=2)
        return torch.cat([t[:, :, :, :left].flip(3), t, t[:, :, :, w - right:].flip(3)], dim=3)
    return F.pad(t, (left, right, top, bottom), value=float(value))


def random_padding_value(rng, pads, hw):
    """0, a random constant, or a mirror/replicate mode torch can express for these pads."""
    choices = [0.0, float(rng.normal()), "replicate"]
    if max(pads[:2]) < hw[0] and max(pads[2:]) < hw[1]:
        choices.append("symmetric-exclude-edge")
    if max(pads[:2]) <= hw[0] and max(pads[2:]) <= hw[1]:
        choices.append("symmetric-include-edge")
    return choices[rng.integers(len(choices))]


# --------------------------------------------------------------------------- convolution

def random_pair(rng, high):
    """[a b] with 1 <= a, b <= high, [1 1] a third of the time (the common case)."""
    return [1, 1] if rng.random() < 1 / 3 else [int(v) for v in rng.integers(1, high + 1, 2)]


def conv_case(rng, grouped):
    f = [int(v) for v in rng.integers(1, 6, 2)]
    stride, dilation = random_pair(rng, 4), random_pair(rng, 3)
    padding = random_padding(rng, 3)
    eff = [(f[i] - 1) * dilation[i] + 1 for i in range(2)]
    if padding == "same":
        hw = [int(v) for v in rng.integers(1, 13, 2)]
    else:
        p = explicit_pads(padding)
        hw = [input_size(rng, eff[0], p[0], p[1]), input_size(rng, eff[1], p[2], p[3])]
    pads = resolve_pads(padding, hw, f, stride, dilation)
    options = dict(Stride=stride, DilationFactor=dilation, Padding=padding,
                   PaddingValue=random_padding_value(rng, pads, hw))
    n = int(rng.integers(1, 3))
    if not grouped:
        c, nf = (int(v) for v in rng.integers(1, 6, 2))
        groups, cg, fg, channel_wise = 1, c, nf, False
        weights = rng.standard_normal((*f, c, nf)).astype(np.float32)
        bias = rng.standard_normal((1, 1, nf)).astype(np.float32)
        layer = convolution2dLayer(f, nf, Weights=weights, Bias=bias, **options)
        # h x w x C x F -> (F, C, h, w)
        w_torch = weights.transpose(3, 2, 0, 1)
    else:
        channel_wise = bool(rng.random() < 0.3)
        groups = int(rng.integers(1, 5))
        cg = 1 if channel_wise else int(rng.integers(1, 4))
        fg = int(rng.integers(1, 4))
        c = groups * cg
        weights = rng.standard_normal((*f, cg, fg, groups)).astype(np.float32)
        bias = rng.standard_normal((1, 1, fg, groups)).astype(np.float32)
        layer = groupedConvolution2dLayer(f, fg, "channel-wise" if channel_wise else groups,
                                          Weights=weights, Bias=bias, **options)
        # h x w x C/G x F/G x G -> (G*F/G, C/G, h, w), output channel g*F/G + j (group major)
        w_torch = weights.transpose(4, 3, 2, 0, 1).reshape(groups * fg, cg, *f)
    b_torch = bias.transpose(0, 1, 3, 2).ravel() if grouped else bias.ravel()
    x = rng.standard_normal((n, *hw, c))
    config = dict(hw=hw, c=c, f=f, groups=groups, fg=fg, channel_wise=channel_wise, **options, pads=pads)
    return layer, x, w_torch, b_torch, groups, config


@pytest.mark.parametrize("grouped", [False, True], ids=["conv2d", "grouped"])
def test_convolution_matches_torch(grouped):
    rng = np.random.default_rng(20 + grouped)
    kinds = set()
    for _ in range(CONFIGS):
        layer, x, w, b, groups, config = conv_case(rng, grouped)
        y, resolved = run(layer, x)
        assert resolved.PaddingSize == config["pads"], config
        padded = torch_pad(to_torch(x), config["pads"], config["PaddingValue"])
        ref = F.conv2d(padded, torch.from_numpy(w.astype(np.float64)), torch.from_numpy(b.astype(np.float64)),
                       stride=config["Stride"], dilation=config["DilationFactor"], groups=groups)
        check(y, from_torch(ref), config)
        kinds.add((config["Padding"] == "same", max(config["Stride"]) > 1, max(config["DilationFactor"]) > 1,
                   config["channel_wise"], config["groups"] > 1))
    # every combination of 'same', stride > 1 and dilation > 1 was drawn, with several groups and channel-wise
    assert len({k[:3] for k in kinds}) == 8
    if grouped:
        assert {k[3:] for k in kinds} >= {(True, True), (False, True)}


def test_same_padding_output_size_is_ceil_of_input_over_stride():
    rng = np.random.default_rng(3)
    for _ in range(CONFIGS):
        hw = [int(v) for v in rng.integers(1, 30, 2)]
        f, stride, dilation = rng.integers(1, 8, 2), rng.integers(1, 6, 2), rng.integers(1, 4, 2)
        layer = convolution2dLayer(f, 2, Stride=stride, DilationFactor=dilation, Padding="same")
        net = codegen.Network([imageInputLayer([*hw, 1]), layer])
        assert net.output_shape == (math.ceil(hw[0] / stride[0]), math.ceil(hw[1] / stride[1]), 2)
        t, b, l, r = net.layers[1].PaddingSize
        assert 0 <= b - t <= 1 and 0 <= r - l <= 1     # the extra row/column at the bottom/right


# --------------------------------------------------------------------------- pooling

def pool_case(rng):
    f = [int(v) for v in rng.integers(1, 5, 2)]
    stride = random_pair(rng, 4)
    padding = random_padding(rng, 3)
    if padding != "same":
        # MATLAB: each pad smaller than the pool size (a window never holds padding only)
        padding = [min(p, f[i // 2] - 1) for i, p in enumerate(explicit_pads(padding))]
        hw = [input_size(rng, f[0], *padding[:2]), input_size(rng, f[1], *padding[2:])]
    else:
        hw = [int(v) for v in rng.integers(1, 13, 2)]
    pads = resolve_pads(padding, hw, f, stride)
    x = rng.standard_normal((int(rng.integers(1, 3)), *hw, int(rng.integers(1, 5))))
    return f, stride, padding, pads, x


def test_max_pooling_matches_torch():
    rng = np.random.default_rng(30)
    for _ in range(CONFIGS):
        f, stride, padding, pads, x = pool_case(rng)
        y, _ = run(maxPooling2dLayer(f, Stride=stride, Padding=padding), x)
        padded = F.pad(to_torch(x), (pads[2], pads[3], pads[0], pads[1]), value=-math.inf)
        check(y, from_torch(F.max_pool2d(padded, f, stride)), dict(f=f, stride=stride, padding=padding, x=x.shape))


def test_average_pooling_with_zero_padding_value_matches_torch():
    rng = np.random.default_rng(31)
    for _ in range(CONFIGS):
        f, stride, padding, pads, x = pool_case(rng)
        y, _ = run(averagePooling2dLayer(f, Stride=stride, Padding=padding), x)
        # the padded zeros count: every window divides by the pool area
        padded = F.pad(to_torch(x), (pads[2], pads[3], pads[0], pads[1]))
        check(y, from_torch(F.avg_pool2d(padded, f, stride)), dict(f=f, stride=stride, padding=padding, x=x.shape))


def test_average_pooling_with_mean_padding_value_matches_torch():
    rng = np.random.default_rng(32)
    for _ in range(CONFIGS):
        f, stride, padding, pads, x = pool_case(rng)
        y, _ = run(averagePooling2dLayer(f, Stride=stride, Padding=padding, PaddingValue="mean"), x)
        t = to_torch(x)
        top, bottom, left, right = pads
        if top == bottom and left == right and 2 * top <= f[0] and 2 * left <= f[1]:
            ref = F.avg_pool2d(t, f, stride, padding=(top, left), count_include_pad=False)
        else:
            # torch pads symmetrically only: pad by hand and divide by the count of input elements
            sums = F.avg_pool2d(F.pad(t, (left, right, top, bottom)), f, stride)
            counts = F.avg_pool2d(F.pad(torch.ones_like(t[:1, :1]), (left, right, top, bottom)), f, stride)
            ref = sums / counts
        check(y, from_torch(ref), dict(f=f, stride=stride, padding=padding, x=x.shape))


def test_global_average_pooling_matches_torch():
    rng = np.random.default_rng(33)
    for _ in range(CONFIGS):
        x = rng.standard_normal((int(rng.integers(1, 4)), *rng.integers(1, 16, 2), int(rng.integers(1, 8))))
        y, _ = run(globalAveragePooling2dLayer(), x)
        check(y, from_torch(F.adaptive_avg_pool2d(to_torch(x), 1)), x.shape)


# --------------------------------------------------------------------------- fully connected, batch norm

def test_fully_connected_matches_torch_with_matlab_column_major_flatten():
    rng = np.random.default_rng(40)
    for _ in range(CONFIGS):
        h, w, c, out = (int(v) for v in rng.integers(1, 7, 4))
        x = rng.standard_normal((int(rng.integers(1, 4)), h, w, c))
        weights = rng.standard_normal((out, h * w * c)).astype(np.float32)
        bias = rng.standard_normal((out, 1)).astype(np.float32)
        y, _ = run(fullyConnectedLayer(out, Weights=weights, Bias=bias), x)
        # MATLAB flattens h x w x c column-major: element (i, j, k) is at i + h*j + h*w*k,
        # which is torch's (N, C, W, H) in row-major order
        flat = to_torch(x).transpose(2, 3).flatten(1)
        ref = F.linear(flat, torch.from_numpy(weights.astype(np.float64)), torch.from_numpy(bias.ravel().astype(float)))
        check(y, ref.numpy().reshape(-1, 1, 1, out), dict(h=h, w=w, c=c, out=out))


def test_batch_normalization_matches_torch_in_eval_mode():
    rng = np.random.default_rng(41)
    for _ in range(CONFIGS):
        c = int(rng.integers(1, 9))
        stats = {"TrainedMean": rng.normal(size=(1, 1, c)), "TrainedVariance": rng.uniform(0.01, 3, (1, 1, c)),
                 "Scale": rng.normal(size=(1, 1, c)), "Offset": rng.normal(size=(1, 1, c))}
        stats = {k: v.astype(np.float32) for k, v in stats.items()}
        eps = float(10 ** rng.uniform(-5, -1))
        x = rng.standard_normal((int(rng.integers(1, 4)), *rng.integers(1, 8, 2), c))
        y, _ = run(batchNormalizationLayer(Epsilon=eps, **stats), x)
        as_t = {k: torch.from_numpy(v.ravel().astype(np.float64)) for k, v in stats.items()}
        ref = F.batch_norm(to_torch(x), as_t["TrainedMean"], as_t["TrainedVariance"], as_t["Scale"], as_t["Offset"],
                           training=False, eps=eps)
        check(y, from_torch(ref), dict(c=c, eps=eps))


# --------------------------------------------------------------------------- elementwise, softmax

def elementwise_cases(rng):
    for _ in range(CONFIGS):
        shape = (int(rng.integers(1, 4)), *rng.integers(1, 9, 2), int(rng.integers(1, 9)))
        yield rng.standard_normal(shape) * rng.uniform(0.1, 10)


def test_relu_matches_torch():
    for x in elementwise_cases(np.random.default_rng(50)):
        check(run(reluLayer(), x)[0], from_torch(F.relu(to_torch(x))), x.shape)


def test_leaky_relu_matches_torch():
    rng = np.random.default_rng(51)
    for x in elementwise_cases(rng):
        scale = float(rng.uniform(0, 1))
        check(run(leakyReluLayer(scale), x)[0], from_torch(F.leaky_relu(to_torch(x), scale)), (x.shape, scale))


def test_clipped_relu_matches_torch():
    rng = np.random.default_rng(52)
    for x in elementwise_cases(rng):
        ceiling = float(rng.uniform(0.05, 10))
        ref = F.hardtanh(to_torch(x), 0.0, ceiling)
        check(run(clippedReluLayer(ceiling), x)[0], from_torch(ref), (x.shape, ceiling))


def test_softmax_over_channels_matches_torch():
    for x in elementwise_cases(np.random.default_rng(53)):
        check(run(softmaxLayer(), x)[0], from_torch(F.softmax(to_torch(x), dim=1)), x.shape)


# --------------------------------------------------------------------------- PaddingValue on the documented example

MAGIC3 = np.array([[8.0, 1, 6], [3, 5, 7], [4, 9, 2]])


@pytest.mark.parametrize("value, np_mode", [
    (0, dict(mode="constant", constant_values=0)),
    (-2.5, dict(mode="constant", constant_values=-2.5)),
    ("replicate", dict(mode="edge")),
    ("symmetric-include-edge", dict(mode="symmetric")),
    ("symmetric-exclude-edge", dict(mode="reflect")),
])
def test_padding_value_modes_match_np_pad_on_the_documented_3x3_example(value, np_mode):
    """The padded image a convolution sees: a 5x5 filter whose only 1 is at (r, c) outputs
    padded[y + r, x + c], so 25 such filters show every pixel of the 7x7 padded image."""
    weights = np.zeros((5, 5, 1, 25), np.float32)
    for k in range(25):
        weights[k // 5, k % 5, 0, k] = 1
    layer = convolution2dLayer(5, 25, Padding=2, PaddingValue=value, Weights=weights, Bias=np.zeros((1, 1, 25)))
    y, _ = run(layer, MAGIC3[None, :, :, None])          # 1x3x3x25
    expected = np.pad(MAGIC3, 2, **np_mode)
    for k in range(25):
        r, c = divmod(k, 5)
        np.testing.assert_array_equal(y[0, :, :, k], expected[r: r + 3, c: c + 3], err_msg=f"offset {(r, c)}")
