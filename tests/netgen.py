"""Random valid networks for the random-stack tests: chains and DAGs.

Every option appears: random filter sizes, strides, dilations, manual [t b l r] / [a b] /
scalar / 'same' padding, grouped and channel-wise convolutions, batch normalization with
random statistics, every ReLU variant, both poolings with both padding modes, global
pooling, fully connected layers and softmax; DAGs add skip additions and concatenations.
Channel counts include 1 and primes; sizes include 1x1 inputs. Biases are random (never
zero), so every epilogue is exercised.
"""

from __future__ import annotations

import numpy as np

import codegen
from codegen import (LayerError, averagePooling2dLayer, batchNormalizationLayer, clippedReluLayer,
                     convolution2dLayer, fullyConnectedLayer, globalAveragePooling2dLayer, groupedConvolution2dLayer,
                     imageInputLayer, leakyReluLayer, maxPooling2dLayer, reluLayer, softmaxLayer)

CHANNELS = [1, 2, 3, 4, 5, 7, 8, 11, 13, 16]


def _pair(rng, lo, hi):
    a = int(rng.integers(lo, hi + 1))
    return a if rng.random() < 0.6 else [a, int(rng.integers(lo, hi + 1))]


def _padding(rng):
    r = rng.random()
    if r < 0.3:
        return "same"
    if r < 0.5:
        return int(rng.integers(0, 3))
    if r < 0.7:
        return [int(rng.integers(0, 3)), int(rng.integers(0, 3))]
    return [int(v) for v in rng.integers(0, 4, size=4)]


def input_layer(rng, h, w, c):
    norm = rng.choice(["none", "zerocenter", "zscore", "rescale-symmetric", "rescale-zero-one"])
    stats = {}
    per = (1, 1, c) if rng.random() < 0.5 else (h, w, c)
    if norm in ("zerocenter", "zscore"):
        stats["Mean"] = rng.normal(0, 0.5, per)
    if norm == "zscore":
        stats["StandardDeviation"] = rng.uniform(0.5, 2.0, per)
    if norm.startswith("rescale"):
        stats["Min"] = rng.uniform(-2, -0.5, per)
        stats["Max"] = rng.uniform(0.5, 2, per)
    return imageInputLayer([h, w, c], Normalization=str(norm), **stats)


def unary_layer(rng, shape, allow_fc=True):
    """A random single-input layer valid for ``shape``, or None if the draw does not fit."""
    h, w, c = shape
    kind = rng.choice(["conv", "conv", "conv", "grouped", "bn", "relu", "leaky", "clipped", "maxpool", "avgpool",
                       "gap", "fc"])
    if kind == "conv":
        f = int(rng.choice(CHANNELS[:8]))
        layer = convolution2dLayer(_pair(rng, 1, 4), f, Stride=_pair(rng, 1, 3),
                                   DilationFactor=_pair(rng, 1, 2) if rng.random() < 0.4 else 1,
                                   Padding=_padding(rng), Bias=rng.normal(0, 0.3, (1, 1, f)))
    elif kind == "grouped":
        divisors = [g for g in range(2, c + 1) if c % g == 0]
        if not divisors:
            return None
        if rng.random() < 0.4:
            groups, fg = "channel-wise", int(rng.integers(1, 3))
            g = c
        else:
            g = int(rng.choice(divisors))
            groups, fg = g, int(rng.integers(1, 4))
        layer = groupedConvolution2dLayer(_pair(rng, 1, 3), fg, groups, Stride=_pair(rng, 1, 2),
                                          DilationFactor=_pair(rng, 1, 2) if rng.random() < 0.3 else 1,
                                          Padding=_padding(rng), Bias=rng.normal(0, 0.3, (1, 1, fg, g)))
    elif kind == "bn":
        layer = batchNormalizationLayer(TrainedMean=rng.normal(0, 0.3, (1, 1, c)),
                                        TrainedVariance=rng.uniform(0.2, 2.0, (1, 1, c)),
                                        Scale=rng.uniform(0.5, 1.5, (1, 1, c)), Offset=rng.normal(0, 0.3, (1, 1, c)))
    elif kind == "relu":
        layer = reluLayer()
    elif kind == "leaky":
        layer = leakyReluLayer(float(rng.uniform(0.01, 0.5)))
    elif kind == "clipped":
        layer = clippedReluLayer(float(rng.uniform(0.3, 3.0)))
    elif kind in ("maxpool", "avgpool"):
        pool = _pair(rng, 1, 3)
        pad = "same" if rng.random() < 0.3 else 0
        if pad == 0 and rng.random() < 0.5:
            ph, pw = (pool, pool) if isinstance(pool, int) else pool
            pad = [int(rng.integers(0, ph)), int(rng.integers(0, ph)), int(rng.integers(0, pw)),
                   int(rng.integers(0, pw))]
        if kind == "maxpool":
            layer = maxPooling2dLayer(pool, Stride=_pair(rng, 1, 3), Padding=pad)
        else:
            layer = averagePooling2dLayer(pool, Stride=_pair(rng, 1, 3), Padding=pad,
                                          PaddingValue="mean" if rng.random() < 0.5 else 0)
    elif kind == "gap":
        layer = globalAveragePooling2dLayer()
    else:
        if not allow_fc:
            return None
        n = int(rng.choice(CHANNELS))
        layer = fullyConnectedLayer(n, Bias=rng.normal(0, 0.3, (n, 1)))
    try:
        layer.copy().resolve([shape])
    except LayerError:
        return None
    return layer


def output_shape(layer, shapes):
    return tuple(layer.copy().resolve(list(shapes)))


def random_chain(rng: np.random.Generator, name: str, max_layers: int = 6) -> codegen.Network:
    h, w = int(rng.integers(1, 17)), int(rng.integers(1, 17))
    c = int(rng.choice(CHANNELS[:7]))
    layers = [input_layer(rng, h, w, c)]
    shape = (h, w, c)
    for _ in range(int(rng.integers(1, max_layers + 1))):
        for _attempt in range(20):
            layer = unary_layer(rng, shape)
            if layer is not None:
                break
        else:
            continue
        layers.append(layer)
        shape = output_shape(layer, [shape])
    if rng.random() < 0.3:
        layers.append(softmaxLayer())
    return codegen.Network(layers, seed=int(rng.integers(1 << 30)), name=name)


def random_dag(rng: np.random.Generator, name: str, steps: int = 7) -> codegen.Network:
    """A chain with random skip additions and concatenations, built with the layerGraph API."""
    h, w = int(rng.integers(2, 13)), int(rng.integers(2, 13))
    c = int(rng.choice(CHANNELS[:7]))
    lgraph = codegen.layerGraph([input_layer(rng, h, w, c)])
    first = lgraph.names()[0]
    shapes = {first: (h, w, c)}
    used: set[str] = set()
    counter = [0]

    def add(layer, sources):
        nonlocal lgraph
        counter[0] += 1
        layer.Name = f"n{counter[0]}_{layer.BASE_NAME}"
        shape = output_shape(layer, [shapes[s] for s in sources])
        lgraph = lgraph.addLayers(layer)
        for k, s in enumerate(sources):
            port = layer.Name if len(sources) == 1 else f"{layer.Name}/in{k + 1}"
            lgraph = lgraph.connectLayers(s, port)
            used.add(s)
        shapes[layer.Name] = shape
        return layer.Name

    for _ in range(steps):
        names = list(shapes)
        r = rng.random()
        if r < 0.55:
            src = names[-1] if rng.random() < 0.6 else names[int(rng.integers(len(names)))]
            layer = unary_layer(rng, shapes[src], allow_fc=False)
            if layer is not None:
                add(layer, [src])
        elif r < 0.8:                       # skip addition: a conv to the shape of an existing tensor
            b = names[-1]
            partners = [n for n in names if n != b and shapes[n][:2] == shapes[b][:2]]
            if not partners:
                continue
            a = partners[int(rng.integers(len(partners)))]
            ca = shapes[a][2]
            if shapes[b] != shapes[a]:
                b = add(convolution2dLayer(1, ca, Bias=rng.normal(0, 0.3, (1, 1, ca))), [b])
            if a == b:
                continue
            add(codegen.additionLayer(2), [a, b])
        else:                               # concatenation of 2-3 tensors of the same size
            target = shapes[names[-1]][:2]
            same = [n for n in names if shapes[n][:2] == target]
            if len(same) < 2:
                continue
            k = min(len(same), int(rng.integers(2, 4)))
            picks = [same[int(i)] for i in rng.choice(len(same), size=k, replace=False)]
            add(codegen.depthConcatenationLayer(k), picks)
    sinks = [n for n in shapes if n not in used]
    if len(sinks) > 1:
        if len({shapes[s][:2] for s in sinks}) > 1:
            sinks = [add(globalAveragePooling2dLayer(), [s]) for s in sinks]
        add(codegen.depthConcatenationLayer(len(sinks)), sinks)
    return codegen.Network(lgraph, seed=int(rng.integers(1 << 30)), name=name)
