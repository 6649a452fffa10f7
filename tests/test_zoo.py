"""The model zoo (tests/zoo/models.py): each architecture, exported by both of PyTorch's ONNX
exporters (the legacy TorchScript one and the default torch.export one), imports, compiles and
matches PyTorch (relative error < 1e-4, float32 against float32). The small models also run as
CUDA (CPU execution mode) and on an emulated Cortex-M4; the large ones run with --long.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import codegen
from codegen.verify import rel_error, verify
from checks import tolerance_for
from conftest import require_tool

sys.path.insert(0, str(Path(__file__).resolve().parent / "zoo"))
from models import ZOO, build  # noqa: E402

TOL = 1e-4
EXPORTERS = ["legacy", "default"]


def marks(name: str) -> list:
    return [pytest.mark.long] if ZOO[name][2] == "large" else []


CASES = [pytest.param(name, exporter, marks=marks(name), id=f"{name}-{exporter}") for name in ZOO
         for exporter in EXPORTERS]


def export(model, shape, exporter: str) -> bytes:
    x = torch.randn(1, *shape)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
        else:
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (x,), buf, dynamo=True, input_names=["x"])
    return buf.getvalue()


def to_list(y) -> list[np.ndarray]:
    return [np.asarray(a) for a in (y if isinstance(y, tuple) else (y,))]


def compare(net, lib, model, x: torch.Tensor) -> float:
    """The worst relative error of the compiled network against PyTorch over the images of ``x``."""
    ours = to_list(net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy()))))
    with torch.no_grad():
        theirs = to_list(model(x))
    assert [a.shape for a in ours] == [b.shape for b in theirs]
    return max(rel_error(a[i], b[i]) for a, b in zip(ours, theirs) for i in range(x.shape[0]))


@pytest.mark.parametrize("name,exporter", CASES)
def test_zoo_model_matches_pytorch(name, exporter):
    model, shape = build(name)
    net = codegen.import_onnx(export(model, shape, exporter), name=f"{name}_{exporter}")
    lib = codegen.build(net, write=False)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    err = compare(net, lib, model, x)
    assert err < TOL, f"{name} ({exporter} exporter): relative error {err:.2e} against PyTorch"


SMALL = [name for name in ZOO if ZOO[name][2] == "small"]


@pytest.mark.parametrize("name", SMALL)
def test_small_zoo_models_on_cuda_emulated(name):
    model, shape = build(name)
    net = codegen.import_onnx(export(model, shape, "legacy"), name=f"{name}_cu")
    lib = codegen.build(net, target="cuda", emulate=True, write=False, opt_flags=["-O1"])
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(2))
    err = compare(net, lib, model, x)
    tol = tolerance_for(net, lib, net.onnx.to_input(x.numpy()), TOL)     # TF32 on the tensor cores
    assert err < tol, f"{name} (CUDA emulated, {lib.tensor_core_ops} TF32 ops): relative error {err:.2e}"


@pytest.mark.parametrize("name", SMALL)
def test_small_zoo_models_on_cortex_m4(name):
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    model, shape = build(name)
    net = codegen.import_onnx(export(model, shape, "legacy"), name=f"{name}_m4")
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert dev.checks_passed, dev.checks_report()
    err = compare(net, dev, model, torch.randn(1, *shape, generator=torch.Generator().manual_seed(3)))
    assert err < TOL, f"{name} (Cortex-M4): relative error {err:.2e}"


VERIFY_CASES = [pytest.param(name, seed, marks=[] if ZOO[name][2] == "small" and seed < 3 else [pytest.mark.long],
                             id=f"{name}-seed{seed}") for name in ZOO for seed in range(6)]


@pytest.mark.parametrize("name,seed", VERIFY_CASES)
def test_zoo_models_pass_verification_at_default_settings(name, seed):
    """codegen's own verification (the tolerance from the network's float32 condition, no --tol)
    passes on every zoo model for every weight seed: no false failures (the planted errors it must
    still catch are in tests/test_verify.py). Small models with 3 seeds; all with 6 under --long."""
    model, shape = build(name, seed=seed)
    net = codegen.import_onnx(export(model, shape, "legacy"), name=f"{name}_v{seed}")
    result = verify(net, codegen.build(net, write=False), seed=seed)
    assert result.passed, f"{name} seed {seed}: {result.report()}"
