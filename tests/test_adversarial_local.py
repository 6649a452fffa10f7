"""Adversarial and careless use of the build side (merged into tests/test_adversarial.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import codegen
import codegen.weightfiles as weightfiles
from codegen import (CodegenError, Network, UnsupportedError, additionLayer, connectLayers, convolution2dLayer,
                     fullyConnectedLayer, imageInputLayer, layerGraph, reluLayer)
from codegen.netfile import load
from codegen.output import MARKER
from codegen.verify import random_inputs, rel_error

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LENET = str(EXAMPLES / "lenet.py")


def run_cli(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "codegen.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and "internal error" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# ------------------------------------------------------------------ 1. sizes the generated code cannot index

def test_padding_of_two_to_the_thirty_is_refused_before_any_code_runs():
    net = Network([imageInputLayer([1, 1, 1]), convolution2dLayer(1, 1, Padding=[0, 2**30, 0, 0])], name="pad")
    with pytest.raises(UnsupportedError, match=r"conv_1.*2,147,483,6\d\d values.*32-bit int"):
        codegen.build(net, write=False)


def test_tensor_of_two_to_the_thirty_one_values_is_refused():
    net = Network([imageInputLayer([1, 1, 1]), convolution2dLayer(1, 2, Padding=[0, 2**30, 0, 0])], name="wide")
    with pytest.raises(UnsupportedError, match=r"convolution2dLayer 'conv_1': its output 1073741825x1x2"):
        codegen.build(net, write=False)


def test_weights_too_large_for_c_source_are_refused_before_rendering():
    """A 411 MB layer used to render for 23 s and die of MemoryError."""
    net = Network([imageInputLayer([1, 1, 10_000], Normalization="none"), fullyConnectedLayer(10_300)], name="huge")
    t0 = time.perf_counter()
    with pytest.raises(UnsupportedError, match=r"412,041,200 bytes of learnables"):
        codegen.build(net, write=False)
    assert time.perf_counter() - t0 < 5


# ------------------------------------------------------------------ 2. concurrent predict

@pytest.mark.parametrize("target", ["c", "cuda"])
def test_predict_from_four_threads_is_correct(target):
    """4 threads x 600 single images on one library: every result equals the single-threaded one."""
    net = load(EXAMPLES / "resnet_like.py")
    options = dict(target="cuda", emulate=True) if target == "cuda" else {}
    lib = codegen.build(net, write=False, **options)
    images = 600 if target == "c" else 60
    x = random_inputs(net, 4 * images, seed=7)
    want = np.stack([lib.predict(xi) for xi in x])
    got = np.empty_like(want)

    def work(t):
        for i in range(t * images, (t + 1) * images):
            got[i] = lib.predict(x[i])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wrong = int(np.sum(np.any(got != want, axis=(1, 2, 3))))
    assert wrong == 0, f"{wrong} of {4 * images} results differ"
    assert max(rel_error(want[i], r) for i, r in enumerate(net.predict(x[:4].astype(np.float64)))) < 1e-5


# ------------------------------------------------------------------ 4. output folders

def test_out_on_a_folder_with_a_foreign_codegen_entry_is_refused(tmp_path):
    """Another tool's ~/.codegen/ directory does not make a home folder codegen's."""
    home = tmp_path / "home"
    (home / ".codegen").mkdir(parents=True)
    (home / "thesis.tex").write_text("years of work")
    assert_one_line_error(run_cli("build", LENET, "--out", home, "--no-verify", cwd=tmp_path), "not made by codegen")
    assert (home / "thesis.tex").read_text() == "years of work"
    (home / ".codegen").rmdir()
    (home / MARKER).write_text("some other tool's marker\n")
    assert_one_line_error(run_cli("build", LENET, "--out", home, "--no-verify", cwd=tmp_path), "not made by codegen")
    assert (home / "thesis.tex").exists()


def test_a_file_added_to_a_generated_folder_is_never_deleted(tmp_path):
    out = tmp_path / "gen"
    assert run_cli("build", LENET, "--out", out, "--no-verify", cwd=tmp_path).returncode == 0
    (out / "notes.txt").write_text("mine")
    proc = run_cli("build", LENET, "--out", out, "--no-verify", "--seed", "3", cwd=tmp_path)
    assert_one_line_error(proc, "notes.txt", "did not write")
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    assert run_cli("build", LENET, "--out", out, "--no-verify", "--seed", "3", cwd=tmp_path).returncode == 0


def test_concurrent_builds_of_one_folder_all_succeed(tmp_path):
    """The marker checks run under the folder's lock: no writer sees another's half-made state."""
    out = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-m", "codegen.cli", "build", LENET, "--out", str(out), "--no-verify",
                               "--seed", str(k % 2)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in range(6)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "CMakeLists.txt", "Makefile", "README.md",
                                                            "lenet.c", "lenet.h", "lenet_weights.c"])


# ------------------------------------------------------------------ 5. bounded resources

def test_graph_editing_takes_linear_time():
    """connectLayers used to deep-copy the graph with its weights: a 1,000-block residual chain took 19 s."""
    def residual_chain(blocks: int) -> float:
        layers = [imageInputLayer([8, 8, 16], Normalization="none")]
        for b in range(blocks):
            layers += [convolution2dLayer(3, 16, Padding="same", Name=f"c{b}", Weights=np.ones((3, 3, 16, 16)),
                                          Bias=np.zeros((1, 1, 16))),
                       additionLayer(2, Name=f"a{b}")]
        g = layerGraph(layers)
        t0 = time.perf_counter()
        prev = "imageinput_1"
        for b in range(blocks):
            g = connectLayers(g, prev, f"a{b}/in2")
            prev = f"a{b}"
        return time.perf_counter() - t0

    small, large = residual_chain(500), residual_chain(2000)
    assert large < 3.0, f"2,000 connections took {large:.1f} s"
    assert large < 16 * max(small, 0.01) + 0.5, (small, large)       # linear edits: ~4x, not 16x


def test_weights_file_is_checked_before_decompression(tmp_path, monkeypatch):
    """A small .npz whose arrays inflate past the limit is refused before np.load reads it."""
    path = tmp_path / "w.npz"
    np.savez_compressed(path, **{"fc_1/Weights": np.zeros((10, 300_000), np.float32)})
    assert path.stat().st_size < 20_000
    monkeypatch.setattr(weightfiles, "MAX_BYTES", 1_000_000)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load ran before the size check"))
    with pytest.raises(CodegenError, match=r"holds 12,000,128 bytes of arrays once decompressed; at most 1,000,000"):
        Network([imageInputLayer([1, 1, 300_000]), fullyConnectedLayer(10)], weights=str(path))


def test_a_truncated_library_in_the_cache_is_rebuilt(tmp_path):
    env = {"CODEGEN_CACHE": str(tmp_path / "cache")}
    code = ("import codegen, numpy as np\nfrom codegen.netfile import load\n"
            f"net = load({LENET!r}); lib = codegen.build(net, write=False)\n"
            "x = np.random.default_rng(0).random((2, 28, 28, 1))\n"
            "assert abs(lib.predict(x) - net.predict(x)).max() < 1e-5\nprint(lib.library, lib.cached)\n")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert first.returncode == 0, first.stderr
    library, cached = first.stdout.split()
    assert cached == "False"
    os.truncate(library, 1000)
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [library, "False"]                  # rebuilt, not loaded


def test_sigterm_kills_the_compiler_and_removes_its_work_folder(tmp_path):
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "codegen.cli", "build", str(EXAMPLES / "mobilenetv2.py"), "--out",
                             str(tmp_path / "m"), "--no-verify"], cwd=tmp_path, env={**os.environ,
                                                                                     "CODEGEN_CACHE": str(cache)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.is_dir() and "." in p.name for p in cache.glob("*/*")):
        time.sleep(0.05)
    assert any(p.is_dir() and "." in p.name for p in cache.glob("*/*")), "the compiler never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    time.sleep(0.5)
    leftovers = [p for p in cache.glob("*/*") if "." in p.name]
    assert not leftovers, leftovers
    running = subprocess.run(["pgrep", "-f", str(cache)], capture_output=True, text=True).stdout.split()
    assert not running, f"compiler still running: {running}"


# ------------------------------------------------------------------ 6. symbols

def test_layer_names_equal_to_generated_symbols_compile_and_run():
    names = ["conv", "conv_w", "conv_b", "predict", "predict_ws", "arena", "zeros", "cuda_init", "weights", "conv_tile",
             "message", "fill"]
    layers = [imageInputLayer([5, 5, 2], Normalization="none")]
    layers += [convolution2dLayer(1, 2, Name=n) for n in names]
    net = Network(layers, name="clash")
    x = random_inputs(net, 2)
    ref = net.predict(x.astype(np.float64))
    for options in ({}, dict(target="cuda", emulate=True)):
        lib = codegen.build(net, write=False, extra_flags=["-Werror"] if not options else None, **options)
        assert max(rel_error(a, b) for a, b in zip(lib.predict(x), ref)) < 1e-5


# ------------------------------------------------------------------ 7. our errors, not raw exceptions

@pytest.mark.parametrize("args,fragment", [
    (["--count", "0"], "--count"), (["--count", "-5"], "--count"), (["--seed", "-1"], "--seed"),
    (["--tol", "-1"], "--tol"),
])
def test_bad_numbers_on_the_command_line_are_usage_errors(tmp_path, args, fragment):
    proc = run_cli("verify", LENET, *args, cwd=tmp_path)
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_export_to_a_missing_folder_is_one_line(tmp_path):
    pytest.importorskip("onnx")
    assert_one_line_error(run_cli("export", LENET, tmp_path / "missing" / "x.onnx", cwd=tmp_path), "cannot write")


def test_a_ten_thousand_character_network_name_is_refused(tmp_path):
    path = tmp_path / "net.py"
    path.write_text("layers = [imageInputLayer([4, 4, 1]), reluLayer()]\nname = 'n' * 10_000\n")
    assert_one_line_error(run_cli("build", path, cwd=tmp_path), "network name is 10,000 characters", "at most 63")
    with pytest.raises(CodegenError, match="seed is -1"):
        Network([imageInputLayer([4, 4, 1]), reluLayer()], seed=-1)
