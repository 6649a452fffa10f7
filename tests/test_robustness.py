"""Bad input from library users, guards of the compiled library, safe output folders under
interruption, and the build cache's key (issue 7). Bad input on the command line, and
concurrent builds of one output folder: test_cli.py."""

from __future__ import annotations

import shutil

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
    real_write = Path.write_bytes

    def failing(self, data, *args, **kwargs):
        if self.name == "b.c":
            raise OSError(28, "No space left on device")
        return real_write(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_bytes", failing)
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



