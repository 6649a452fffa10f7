"""Emitted code runs: every function of a generated .c executes at least once per network.

The network's source is compiled with gcov instrumentation (``--coverage``, -O0 so nothing is
inlined away), run by the C harness on a few inputs, and gcov's function summary is read: a
function with no executed line is dead code (a kernel, edge tile or helper that no call needs).
Each instruction set present on this machine is checked as compiled (the others are preprocessed
out), and so is the build for a Cortex-M device (portable kernels only, compiled here).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codegen.emit import render_files
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.quant.calibrate import calibrate
from codegen.resources import runtime_dir
from codegen.targets import make_target
from codegen.verify import random_inputs
from netgen import random_chain, random_dag
from test_int8_simd import random_case

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["lenet", "lenet5", "conv_options", "grouped", "resnet_like", "resnet_graph", "mobilenetv2"]


def never_run(files: dict[str, str], prefix: str, x: np.ndarray, work: Path, flags: list[str]) -> list[str]:
    """The functions of <prefix>.c that did not run on the inputs ``x``."""
    work.mkdir(parents=True)
    for name, text in files.items():
        (work / name).write_text(text) if isinstance(text, str) else (work / name).write_bytes(text)
    cc = ["cc", "-std=c99", "-O0", "-g", *flags]
    steps = [[*cc, "--coverage", "-c", f"{prefix}.c", "-o", f"{prefix}.o"],
             [*cc, "-c", f"{prefix}_weights.c", "-o", "weights.o"],
             [*cc, f'-DCG_HEADER="{prefix}.h"', f"-DCG_PREFIX={prefix}", f"-DCG_MACRO={prefix.upper()}", "-I.",
              "-c", str(runtime_dir() / "host" / "harness.c"), "-o", "harness.o"],
             [*cc, "--coverage", "harness.o", f"{prefix}.o", "weights.o", "-o", "harness", "-lm"]]
    for step in steps:
        proc = subprocess.run(step, cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(step)}\n{proc.stderr[-3000:]}"
    np.ascontiguousarray(x, np.float32).tofile(work / "in.bin")
    for arena in ("ws", "static"):             # <prefix>_predict_ws, and <prefix>_predict on the static arena
        proc = subprocess.run(["./harness", "in.bin", "out.bin", str(len(x)), arena], cwd=work, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    report = subprocess.run(["gcov", "-f", "-n", f"{prefix}.c"], cwd=work, capture_output=True, text=True).stdout
    functions = re.findall(r"Function '([^']+)'\nLines executed:([\d.]+)% of (\d+)", report)
    assert functions, f"gcov reported no functions:\n{report[:2000]}"
    return [name for name, percent, _ in functions if float(percent) == 0.0]


def _variants():
    """(label, render options, extra compile flags) for what this machine compiles."""
    defined = subprocess.run(["cc", "-march=native", "-dM", "-E", "-"], input="", capture_output=True,
                             text=True).stdout
    out = [("host portable", {}, ["-DCODEGEN_PORTABLE"]),
           ("cortex-m4", make_target("c", device="cortex-m4").render_options(), [])]
    if "__AVX512F__" in defined:
        out.append(("host AVX-512", {}, ["-march=native"]))
    if "__AVX2__" in defined and "__FMA__" in defined:
        out.append(("host AVX2", {}, ["-march=native", "-mno-avx512f"]))
    return out


def _check(net, tmp_path: Path, label: str, int8: bool = False):
    if shutil.which("gcov") is None:
        pytest.skip("gcov is not installed (it comes with gcc)")
    x = random_inputs(net, 2, seed=0)
    plan = make_plan(net, calibration=calibrate(net, random_inputs(net, 8, seed=1)) if int8 else None)
    dead = {}
    for i, (variant, options, flags) in enumerate(_variants()):
        files = render_files(net, plan, "c", dict(options))
        prefix = next(n[:-2] for n in files if n.endswith(".c") and not n.endswith("_weights.c"))
        missed = never_run(files, prefix, x, tmp_path / f"{label}-{i}", flags)
        if missed:
            dead[variant] = missed
    assert not dead, f"{label}: emitted functions that never ran: {dead}"


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_emitted_function_of_the_examples_runs(example, tmp_path):
    _check(load(ROOT / "examples" / f"{example}.py"), tmp_path, example)


@pytest.mark.parametrize("seed", range(6))
def test_every_emitted_function_of_random_networks_runs(seed, tmp_path):
    rng = np.random.default_rng(1000 + seed)
    net = (random_chain if seed % 2 else random_dag)(rng, f"cov{seed}")
    _check(net, tmp_path, net.name)


@pytest.mark.parametrize("case", ["dag0", "dag2", "simd1", "simd2", "simd7", "simd8"])
def test_every_emitted_function_of_int8_networks_runs(case, tmp_path):
    """int8 builds: the SIMD kernels of codegen/ops/int8simd.py on the host (random DAGs with
    convolutions; test_int8_simd's cases: a tile of fewer blocks at the end, fully connected layers),
    and the Cortex-M kernels."""
    seed = int(case[-1])
    if case.startswith("dag"):
        net = random_dag(np.random.default_rng(2000 + seed), f"cov8_{seed}")
    else:
        net = random_case(seed)[0]
    _check(net, tmp_path, net.name, int8=True)


def test_every_emitted_function_of_int8_lenet_runs(tmp_path):
    _check(load(ROOT / "examples" / "lenet.py"), tmp_path, "lenet-int8", int8=True)
