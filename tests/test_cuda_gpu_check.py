"""bench/gpu_check.py (`make gpu-check`), checked without a GPU: its PyTorch twin of a plan (what
the CUDA kernels are timed against) computes the reference, and a dry run of the whole script in
the CPU execution mode goes through every step and writes its results files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codegen.netfile import load
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from netgen import random_chain, random_dag
from test_cuda_emulation import tile_stack

ROOT = Path(__file__).resolve().parent.parent
torch = pytest.importorskip("torch", reason="bench/gpu_check.py compares with PyTorch")
sys.path.insert(0, str(ROOT / "bench"))
from gpu_check import TorchPlan  # noqa: E402


def test_pytorch_twin_of_the_plan_matches_the_reference():
    """Examples and 90 random stacks (nested concatenations, in-place ops, asymmetric padding,
    'mean' average pooling, grouped convolutions) through the twin, on the CPU."""
    rng = np.random.default_rng(8000)
    nets = [load(str(p)) for p in sorted((ROOT / "examples").glob("*.py"))]
    nets += [(random_chain, random_dag, tile_stack)[i % 3](rng, f"tw{i}") for i in range(90)]
    for net in nets:
        twin = TorchPlan(make_plan(net), torch, "cpu")
        x = random_inputs(net, 2)
        with torch.no_grad():
            y = twin.forward(torch.as_tensor(x.transpose(0, 3, 1, 2).copy())).permute(0, 2, 3, 1).numpy()
        ref = net.predict(x.astype(np.float64))
        assert y.shape == ref.shape, net.name
        assert max(rel_error(y[i], ref[i]) for i in range(2)) < 1e-5, f"{net.name}\n{make_plan(net).describe()}"


def test_without_a_gpu_it_stops_at_once_with_the_reason():
    """No GPU here: exit 2 before any build, naming CUDA's reason and the way to run without one."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py")], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode == 0 or "gpu-check on " in proc.stdout:
        pytest.skip("a GPU is present: bench/gpu_check.py runs for real there")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no usable CUDA device" in proc.stdout or "nvcc not found" in proc.stdout, proc.stdout
    assert "--emulate" in proc.stdout or "nvcc not found" in proc.stdout


def test_gpu_session_script_stops_cleanly_without_a_gpu(tmp_path):
    """bench/gpu_session.sh, the one prepared run for a session lent a GPU: here it stops with
    gpu_check's exit 2 and reason, its log in $OUT."""
    env = {**os.environ, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh")], capture_output=True, text=True, env=env,
                          timeout=300)
    if proc.returncode == 0 or "gpu-check on " in proc.stdout:
        pytest.skip("a GPU is present: the session script runs for real there")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no usable CUDA device" in proc.stdout or "nvcc not found" in proc.stdout
    assert (tmp_path / "gpu_session.log").is_file()


def test_gpu_check_dry_run_writes_results(tmp_path):
    """Every step of `make gpu-check` in the CPU execution mode (both precisions, the layer-by-layer
    check, random stacks, the zoo's small models, timings): about 2 minutes."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--emulate", "--stacks", "3",
                           "--reps", "1", "--batches", "1", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every verification passed" in proc.stdout
    (md,) = tmp_path.glob("*.md")
    report = json.loads(md.with_suffix(".json").read_text())
    assert set(report["verification"]) >= {"lenet tf32", "lenet fp32", "resnet_graph tf32", "random_stacks tf32",
                                           "random_stacks fp32", "zoo_lenet5"}
    assert report["driver"] and report["date"].endswith("+00:00")
    ops = [t for t in report["timings"] if t["network"] == "lenet" and t["kind"] != "network"]
    assert [t["kind"] for t in ops] == ["conv", "maxpool", "fc", "softmax"]
    assert all(t["ours_ms"] > 0 and t["torch_fp32_ms"] > 0 and t["torch_tf32_ms"] > 0 for t in ops)
    text = md.read_text()
    assert "| **whole network** (ours: CUDA graph; PyTorch: eager) |" in text and "ours in strict FP32" in text
    assert "fp16: " in text and "bf16: " in text
