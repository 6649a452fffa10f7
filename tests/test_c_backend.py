"""The C backend: generated code against the NumPy reference, compiler hygiene, memory
safety, safe text, determinism and the build cache (issue 3)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import (Network, UnsupportedError, convolution2dLayer, fullyConnectedLayer, imageInputLayer,
                     maxPooling2dLayer, reluLayer, softmaxLayer)
from codegen.emit import render_files
from codegen.emit.c import c_kernels
from codegen.harness import SANITIZE, run_harness
from codegen import build_many
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from conftest import require_tool
from checks import TOL, check_against_reference
from netgen import random_chain

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.py"))
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


@pytest.mark.parametrize("batch", range(4))
def test_random_chains_match_reference(batch):
    """200 random layer stacks (50 per batch, one compiler run each), workspace poisoned with NaN."""
    rng = np.random.default_rng(1000 + batch)
    nets = [random_chain(rng, f"chain{batch}_{i}") for i in range(50)]
    check_against_reference(nets, build_many(nets))


@pytest.mark.long
def test_random_chains_long():
    rng = np.random.default_rng(77)
    for batch in range(20):
        nets = [random_chain(rng, f"long{batch}_{i}", max_layers=10) for i in range(100)]
        check_against_reference(nets, build_many(nets))


def test_workspace_poison_value_also_large_finite():
    """NaN never wins a max(); a huge finite poison catches reads of unwritten memory there."""
    rng = np.random.default_rng(3)
    nets = [random_chain(rng, f"big{i}") for i in range(30)]
    check_against_reference(nets, build_many(nets), poison=3.0e38)


def test_nonzero_bias_and_batchnorm_are_exercised():
    """The generator must really produce random biases and folded batch normalization."""
    rng = np.random.default_rng(1000)
    nets = [random_chain(rng, f"cov{i}") for i in range(50)]
    fused = [op for n in nets for op in make_plan(n).ops if "batchnorm" in "+".join(op.layers) and op.kind == "conv"]
    biases = [op.weights["b"] for n in nets for op in make_plan(n).ops if op.kind == "conv"]
    assert fused and all(np.any(b != 0) for b in biases)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_examples_compile_warning_free(path, cc, tmp_path):
    require_tool(cc)
    net = load(path)
    files = render_files(net, make_plan(net))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    prefix = net.name
    for src in (f"{prefix}.c", f"{prefix}_weights.c"):
        proc = subprocess.run([cc, *STRICT, "-O2", "-c", str(tmp_path / src), "-o", str(tmp_path / (src + ".o"))],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_examples_clean_under_sanitizers(path):
    """Heap buffers of exactly the documented sizes, NaN-filled workspace, ASan + UBSan."""
    net = load(path)
    plan = make_plan(net)
    x = random_inputs(net, 2, seed=5)
    y = run_harness(render_files(net, plan), net.name, x, plan.output.size, cflags=["-O1", *SANITIZE])
    ref = net.predict(x.astype(np.float64)).reshape(2, -1)
    assert max(rel_error(y[i], ref[i]) for i in range(2)) < TOL


@pytest.mark.parametrize("path", [EXAMPLES / "lenet.py", EXAMPLES / "grouped.py"], ids=lambda p: p.stem)
def test_static_arena_clean_under_valgrind(path):
    require_tool("valgrind")
    net = load(path)
    plan = make_plan(net)
    x = random_inputs(net, 1, seed=6)
    y = run_harness(render_files(net, plan), net.name, x, plan.output.size, cflags=["-O1", "-g"],
                    runner=["valgrind", "--error-exitcode=9", "--leak-check=full", "-q"], static_arena=True)
    assert rel_error(y[0], net.predict(x[0].astype(np.float64)).ravel()) < TOL


def test_sanitizer_harness_catches_an_overflow():
    """The memory-safety check can fail: a planted out-of-bounds write is reported."""
    net = load(EXAMPLES / "lenet.py")
    files = render_files(net, make_plan(net))
    broken = files["lenet.c"].replace("return LENET_OK;", "out[LENET_OUT_SIZE] = 0.0f;\n    return LENET_OK;")
    assert broken != files["lenet.c"]
    files["lenet.c"] = broken
    with pytest.raises(codegen.BuildError, match="heap-buffer-overflow"):
        run_harness(files, "lenet", random_inputs(net, 1), 10, cflags=["-O1", *SANITIZE])


def test_output_folder_and_its_build_files(tmp_path):
    net = load(EXAMPLES / "lenet.py")
    lib = codegen.build(net, out_dir=tmp_path / "lenet")
    names = {p.name for p in (tmp_path / "lenet").iterdir()}
    assert {"lenet.h", "lenet.c", "lenet_weights.c", "Makefile", "CMakeLists.txt", "README.md"} <= names
    header = (tmp_path / "lenet" / "lenet.h").read_text()
    for macro, value in [("LENET_IN_SIZE", 784), ("LENET_OUT_SIZE", 10), ("LENET_ARENA_BYTES", lib.plan.arena_bytes)]:
        assert re.search(rf"#define {macro} {value}\b", header)
    assert "int lenet_predict_ws(const float *in, float *out, void *workspace);" in header
    source = (tmp_path / "lenet" / "lenet.c").read_text()
    assert "malloc" not in source and "static float lenet_arena" in source
    proc = subprocess.run(["make", "-s"], cwd=tmp_path / "lenet", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "lenet" / "liblenet.a").exists()


def test_cmake_builds_the_static_library(tmp_path):
    require_tool("cmake")
    net = load(EXAMPLES / "lenet.py")
    codegen.build(net, out_dir=tmp_path / "src")
    build = tmp_path / "b"
    for cmd in (["cmake", "-S", str(tmp_path / "src"), "-B", str(build)], ["cmake", "--build", str(build)]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (build / "liblenet.a").exists()


def test_weights_are_bit_exact(tmp_path):
    net = load(EXAMPLES / "lenet.py")
    files = render_files(net, make_plan(net))
    text = files["lenet_weights.c"]
    body = re.search(r"lenet_conv_1_w\[\d+\] LENET_WEIGHTS_PLACEMENT = \{(.*?)\};", text, re.S).group(1)
    values = np.array([float.fromhex(v.strip().rstrip("f")) if "0x" in v else float(v.strip().rstrip("f"))
                       for v in body.split(",")], np.float32)
    # the C kernels read the filters re-packed in blocks of vb output channels (codegen/ops/conv.py):
    # w[g][blk][ky][kx][c][vb], zeros past the 20th filter
    vb = c_kernels(make_plan(net))[0][0].vb
    values = values.reshape(1, -1, 5, 5, 1, vb).transpose(0, 2, 3, 4, 1, 5).reshape(1, 5, 5, 1, -1)[..., :20]
    expected = np.transpose(net.layer("conv_1").Weights[..., None], (4, 0, 1, 2, 3)).ravel()
    assert values.ravel().view(np.uint32).tolist() == expected.view(np.uint32).tolist()


def test_user_strings_become_safe_identifiers_and_comments(tmp_path):
    evil = 'x; system("rm -rf /") /* */ ??/ \\'
    net = Network([imageInputLayer([6, 6, 2], Name="in */ #include <evil>"),
                   convolution2dLayer(3, 4, Name=evil), reluLayer(Name="r\n#define int void"),
                   fullyConnectedLayer(3, Name="fc*/")], name='net"; /*')
    lib = codegen.build(net, out_dir=tmp_path / "evil", extra_flags=["-Werror"])
    for name, text in lib.files.items():
        if name.endswith((".c", ".h")):
            code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)      # user text may appear in comments only
            assert "system" not in code.replace("x_system_rm_rf", "") and "evil" not in code, name
            assert "#define int" not in code and "??/" not in text, name
    assert rel_error(lib.predict(random_inputs(net, 1))[0],
                     net.predict(random_inputs(net, 1)[0].astype(np.float64))) < TOL


def test_sanitized_name_clash_is_an_error():
    net = Network([imageInputLayer([4, 4, 1]), reluLayer(Name="a-b"), reluLayer(Name="a_b")])
    with pytest.raises(codegen.NetworkError, match="'a-b' and 'a_b' both become"):
        render_files(net, make_plan(net))


def test_same_network_and_seed_give_identical_files():
    first = render_files(load(EXAMPLES / "conv_options.py"), make_plan(load(EXAMPLES / "conv_options.py")))
    second = render_files(load(EXAMPLES / "conv_options.py"), make_plan(load(EXAMPLES / "conv_options.py")))
    assert first == second
    other = load(EXAMPLES / "conv_options.py", seed=8)
    assert render_files(other, make_plan(other))["conv_options_weights.c"] != first["conv_options_weights.c"]


def test_rebuilding_an_unchanged_network_is_a_cache_hit(tmp_path):
    net = load(EXAMPLES / "lenet.py", seed=424242)          # weights no other test builds
    first = codegen.build(net, out_dir=tmp_path / "a")
    again = codegen.build(load(EXAMPLES / "lenet.py", seed=424242), out_dir=tmp_path / "a")
    assert not first.cached and again.cached and again.library == first.library


@pytest.mark.parametrize("value", [1.5, "replicate", "symmetric-include-edge", "symmetric-exclude-edge"])
def test_padding_value_other_than_zero_is_refused_for_code_generation(value):
    net = Network([imageInputLayer([8, 8, 1]), convolution2dLayer(3, 2, Padding=1, PaddingValue=value)])
    assert net.predict(np.ones((8, 8, 1))).shape == (8, 8, 2)      # the reference runs it
    with pytest.raises(UnsupportedError, match="PaddingValue.*code generation supports only PaddingValue 0"):
        make_plan(net)


def test_network_of_only_an_input_layer_copies(tmp_path):
    net = Network([imageInputLayer([3, 4, 2], Normalization="none")], name="ident")
    lib = codegen.build(net, out_dir=tmp_path / "ident")
    x = random_inputs(net, 2)
    assert np.array_equal(lib.predict(x), x)


def test_predict_accepts_single_and_batched_inputs(tmp_path):
    net = Network([imageInputLayer([5, 5, 3]), convolution2dLayer(3, 4), maxPooling2dLayer(2),
                   fullyConnectedLayer(4), softmaxLayer()], name="small")
    lib = codegen.build(net, out_dir=tmp_path / "small")
    x = random_inputs(net, 3)
    batched = lib.predict(x)
    assert batched.shape == (3, 1, 1, 4) and batched.dtype == np.float32
    assert np.array_equal(lib.predict(x[1]), batched[1])
    assert np.array_equal(lib.predict(x.astype(np.float64)), batched)


def test_per_layer_reports_the_first_divergence():
    """A debug build whose fourth op has a wrong bias is caught at that op, not later."""
    from codegen.compiler import compile_cached, host_c_job
    from codegen.targets import HostLibrary
    from codegen.verify import verify_per_layer
    net = load(EXAMPLES / "resnet_like.py")
    plan = make_plan(net, reuse=False)
    target = plan.ops[3]
    assert target.kind == "conv"
    target.weights["b"] = target.weights["b"] + np.float32(0.5)
    files = render_files(net, plan)
    lib = HostLibrary(net, plan, files, None, "resnet_like", build=compile_cached(files, host_c_job("resnet_like")))
    result = verify_per_layer(net, lib)
    assert not result.passed and result.first_divergence == "+".join(target.layers)
