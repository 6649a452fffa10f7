"""Bad input from users (CLI and library), guards of the compiled library, safe output
folders under interruption and concurrency, and the build cache's key (issue 7)."""

from __future__ import annotations

import os
import shutil
import subprocess

from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import BuildError, InputError, Network
from codegen.compiler import cache_key, host_c_job
from codegen.emit import render_files
from codegen.netfile import load
from codegen.output import MARKER, write_folder
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LENET = EXAMPLES / "lenet.py"


def run_cli(*args, env=None, cwd=None):
    exe = shutil.which("codegen")
    assert exe, "the console script is installed by `pip install -e .`"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def assert_user_error(proc, *fragments):
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("codegen: error: ") and "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ----------------------------------------------------------------------------- command line

@pytest.mark.parametrize("source, fragments", [
    ("layers = [imageInputLayer([28, 28, 1])\n", ["net.py:1: syntax error"]),
    ("x = 1\n", ["defines neither 'layers'", "nor 'lgraph'"]),
    ("layers = [imageInputLayer([8, 8, 1]), reluLayer]\n", ["element 2 of the layer list is function, not a layer",
                                                            "did you forget the parentheses"]),
    ("layers = [imageInputLayer([8, 8, 1]), 'relu']\n", ["element 2 of the layer list is str"]),
    ("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4)]\nweights = 'missing.npz'\n",
     ["cannot read weights file", "missing.npz"]),
    ("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4, Strid=2)]\n",
     ["net.py: convolution2dLayer", "did you mean 'Stride'"]),
    ("import nothing_here\nlayers = []\n", ["net.py:1: ModuleNotFoundError"]),
    ("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(9, 4)]\n",
     ["convolution2dLayer 'conv_1': property 'FilterSize'", "larger than the padded input"]),
    ("layers = [convolution2dLayer(3, 4)]\n", ["no input layer"]),
])
def test_bad_net_files_give_one_line_and_exit_code_2(tmp_path, source, fragments):
    path = tmp_path / "net.py"
    path.write_text(source)
    for command in ("summary", "build"):
        assert_user_error(run_cli(command, path, cwd=tmp_path), *fragments)


def test_missing_net_file(tmp_path):
    assert_user_error(run_cli("build", tmp_path / "nope.py"), "no such file")


def test_unreadable_weights_file(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"not a zip file")
    path = tmp_path / "net.py"
    path.write_text("layers = [imageInputLayer([8, 8, 1]), convolution2dLayer(3, 4)]\nweights = 'w.npz'\n")
    assert_user_error(run_cli("build", path, cwd=tmp_path), "cannot read weights file", "w.npz")


@pytest.mark.parametrize("out", ["/proc/codegen_out", "file_not_dir/sub"])
def test_output_folder_that_cannot_be_written(tmp_path, out):
    (tmp_path / "file_not_dir").write_text("a file")
    assert_user_error(run_cli("build", LENET, "--out", out, cwd=tmp_path), "output folder")


def test_output_folder_not_made_by_codegen_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert_user_error(run_cli("build", LENET, "--out", tmp_path / "mine"), "was not made by codegen")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_missing_compiler(tmp_path):
    env = dict(os.environ, CC="/nonexistent/bin/cc", CODEGEN_CACHE=str(tmp_path / "cache"))
    assert_user_error(run_cli("build", LENET, "--out", tmp_path / "o", env=env), "compiler", "not found")


def test_debug_flag_shows_the_traceback(tmp_path):
    (tmp_path / "net.py").write_text("x = 1\n")
    proc = run_cli("--debug", "build", tmp_path / "net.py")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "codegen: error:" in proc.stderr


# ----------------------------------------------------------------------------- library guards

@pytest.fixture(scope="module")
def small_lib(tmp_path_factory):
    net = Network([codegen.imageInputLayer([6, 5, 3]), codegen.convolution2dLayer(3, 4, Padding="same"),
                   codegen.reluLayer(), codegen.fullyConnectedLayer(3)], name="guard")
    return net, codegen.build(net, out_dir=tmp_path_factory.mktemp("g") / "guard")


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros((6, 5)), "expected (H, W, C) = (6, 5, 3)"),
    (np.zeros((5, 6, 3)), "has shape (5, 6, 3)"),
    (np.zeros((2, 6, 5, 4)), "has shape (2, 6, 5, 4)"),
    (np.zeros((6, 5, 3), np.complex64), "dtype complex64"),
    (np.array([["a"]]), "dtype <U1"),
    (np.full((6, 5, 3), np.nan, np.float32), "NaN or Inf"),
    ([[1, 2]], "has shape"),
    (object(), "dtype object"),
])
def test_predict_refuses_bad_arrays_clearly(small_lib, bad, fragment):
    _, lib = small_lib
    with pytest.raises(InputError) as info:
        lib.predict(bad)
    assert fragment in str(info.value)


def test_predict_converts_dtype_and_contiguity(small_lib):
    net, lib = small_lib
    x = random_inputs(net, 2)
    expected = lib.predict(x)
    wide = np.zeros((2, 6, 10, 3), np.float64)
    wide[:, :, ::2, :] = x                                   # a strided, float64 view
    assert np.array_equal(lib.predict(wide[:, :, ::2, :]), expected)
    assert np.array_equal(lib.predict(np.asfortranarray(x[0])), expected[0])
    assert np.array_equal(lib.predict(x[0].tolist()), expected[0])


# ----------------------------------------------------------------------------- safe output

def test_interrupted_write_leaves_the_old_folder_intact(tmp_path, monkeypatch):
    out = tmp_path / "net"
    write_folder(out, {"a.c": "old a", "b.c": "old b"})
    real_write = Path.write_text

    def failing(self, text, *args, **kwargs):
        if self.name == "b.c":
            raise OSError(28, "No space left on device")
        return real_write(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(BuildError, match="No space left on device"):
        write_folder(out, {"a.c": "new a", "b.c": "new b"})
    monkeypatch.undo()
    assert (out / "a.c").read_text() == "old a" and (out / "b.c").read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["net"]


def test_unchanged_files_are_not_rewritten(tmp_path):
    out = write_folder(tmp_path / "n", {"a.c": "same"})
    before = (out / "a.c").stat().st_mtime_ns
    write_folder(tmp_path / "n", {"a.c": "same"})
    assert (out / "a.c").stat().st_mtime_ns == before and (out / MARKER).exists()


def test_two_concurrent_builds_of_the_same_output_end_complete_and_correct(tmp_path):
    out = tmp_path / "shared"
    env = dict(os.environ, CODEGEN_CACHE=str(tmp_path / "cache"))
    exe = shutil.which("codegen")
    procs = [subprocess.Popen([exe, "build", str(EXAMPLES / name), "--out", str(out), "--no-verify"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("lenet.py", "lenet.py", "grouped.py")]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    present = {p.name for p in out.iterdir()} - {MARKER}
    for candidate in ("lenet", "grouped"):
        net = load(EXAMPLES / f"{candidate}.py")
        files = render_files(net, make_plan(net), options={"source": str(EXAMPLES / f"{candidate}.py")})
        if present == set(files):
            assert all((out / n).read_text() == t for n, t in files.items())
            break
    else:
        pytest.fail(f"the folder holds a mix: {sorted(present)}")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# ----------------------------------------------------------------------------- the cache key

def test_cache_key_changes_with_network_weights_options_and_compiler():
    net = load(LENET)
    files = render_files(net, make_plan(net))
    job = host_c_job("lenet", cc="gcc")
    base = cache_key(files, job)
    assert cache_key(dict(files), host_c_job("lenet", cc="gcc")) == base
    other_weights = load(LENET, seed=1)
    assert cache_key(render_files(other_weights, make_plan(other_weights)), job) != base
    assert cache_key(render_files(net, make_plan(net), options={"weights_section": ".ext"}), job) != base
    assert cache_key(files, host_c_job("lenet", cc="gcc", opt_flags=["-O1"])) != base
    if shutil.which("clang"):
        assert cache_key(files, host_c_job("lenet", cc="clang")) != base


def test_a_changed_option_rebuilds(tmp_path):
    net = load(LENET, seed=99)
    first = codegen.build(net, out_dir=tmp_path / "a")
    again = codegen.build(net, out_dir=tmp_path / "a", opt_flags=["-O1"])
    assert not again.cached and again.library != first.library
    x = random_inputs(net, 1)
    assert rel_error(again.predict(x), first.predict(x)) < 1e-6


# ----------------------------------------------------------------------------- large weights

def test_large_weights_generate_and_compile(tmp_path):
    """4 MB of weights; bench/huge_weights.py measures 40 MB (see README)."""
    net = Network([codegen.imageInputLayer([32, 32, 1], Normalization="none"), codegen.fullyConnectedLayer(1000)],
                  name="large")
    lib = codegen.build(net, out_dir=tmp_path / "large")
    assert lib.plan.weight_bytes > 4_000_000
    x = random_inputs(net, 1)
    assert rel_error(lib.predict(x)[0], net.predict(x[0].astype(np.float64))) < 1e-5



