"""The verifier's default tolerance: no false failures on networks whose float32 results cancel,
and every planted error still caught (see codegen/verify.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import Network, additionLayer, fullyConnectedLayer, imageInputLayer, layerGraph, connectLayers
from codegen.compiler import compile_cached, host_c_job
from codegen.emit import render_files
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.targets import HostLibrary
from codegen.verify import DEFAULT_TOL, MAX_TOL, verify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def cancelling_network(eps: float, seed: int = 0) -> Network:
    """y = W x + (-W + eps V) x: two large terms whose sum is eps V x. float32 rounds each term at
    its own size, so the computed y is off by about 1e-7 / eps relative to itself."""
    rng = np.random.default_rng(seed)
    k, n = 256, 8
    w = rng.standard_normal((n, k))
    v = rng.standard_normal((n, k))
    layers = [imageInputLayer([1, 1, k], Normalization="none", Name="x"),
              fullyConnectedLayer(n, Name="big", Weights=w, Bias=np.zeros((n, 1))),
              additionLayer(2, Name="sum"),
              fullyConnectedLayer(n, Name="nearly_minus_big", Weights=-w + eps * v, Bias=np.zeros((n, 1)))]
    g = layerGraph(layers[:3])
    g = g.addLayers(layers[3])
    g = connectLayers(g, "x", "nearly_minus_big")
    g = connectLayers(g, "nearly_minus_big", "sum/in2")
    return Network(g, name=f"cancel{seed}")


@pytest.mark.parametrize("seed", range(4))
def test_a_cancelling_network_passes_at_default_settings(seed):
    net = cancelling_network(1e-3, seed)
    lib = codegen.build(net, write=False)
    result = verify(net, lib)
    assert result.passed, result.report()
    assert result.condition > 100 and result.tol > DEFAULT_TOL
    strict = verify(net, lib, tol=DEFAULT_TOL)
    assert not strict.passed, "the fixed 1e-5 tolerance should fail here: this test would prove nothing"


def _build(net, plan) -> HostLibrary:
    files = render_files(net, plan)
    prefix = net.name
    return HostLibrary(net, plan, files, None, prefix, build=compile_cached(files, host_c_job(prefix)))


def _planted(net, kind: str):
    plan = make_plan(net)
    conv = next(op for op in plan.ops if op.kind == "conv")
    if kind == "bias":
        conv.weights["b"] = conv.weights["b"] + np.float32(0.5)
    elif kind == "pad":        # one row of padding moved from the bottom to the top: same shape, shifted rows
        a = conv.attrs
        assert a.pb > 0 or a.pt > 0
        conv.attrs = dataclasses.replace(a, pt=a.pt + 1, pb=a.pb - 1) if a.pb > 0 else \
            dataclasses.replace(a, pt=a.pt - 1, pb=a.pb + 1)
    else:
        fc = next(op for op in plan.ops if op.kind == "fc")
        fc.weights["w"] = fc.weights["w"] * np.float32(1.001)    # 0.1 % too large
    return plan


@pytest.mark.parametrize("example", ["resnet_like", "conv_options", "mobilenetv2"])
@pytest.mark.parametrize("kind", ["bias", "pad", "scale"])
def test_planted_errors_are_caught_at_default_settings(example, kind):
    net = load(EXAMPLES / f"{example}.py")
    plan = _planted(net, kind)
    result = verify(net, _build(net, plan))
    assert not result.passed, f"{kind} error in {example} passed: {result.report()}"
    assert result.tol < MAX_TOL


def test_the_report_names_the_condition():
    net = cancelling_network(1e-3)
    text = verify(net, codegen.build(net, write=False)).report()
    assert "from float32 condition" in text and "PASS" in text
    fixed = verify(net, codegen.build(net, write=False), tol=1e-1).report()
    assert "condition" not in fixed
