"""One instruction set per known device (and --isa): the generated C holds the kernels of the
instruction sets chosen and nothing else; each choice compiles, runs and matches the reference.
The vector macros live in one header, codegen_simd.h, written next to the network's files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import UnsupportedError
from codegen.targets import make_target
from codegen.emit import render_files
from codegen.harness import run_harness
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from conftest import require_tool

TOL = 1e-4
# what each instruction set's kernels spell and no other's do
MARKERS = {"avx512": "/* AVX-512:", "avx2": "/* AVX2:", "neon": "/* NEON:"}


def _files(net, **target):
    return render_files(net, make_plan(net), "c", make_target("c", **target).render_options())


def _nets():
    """Random shapes through every SIMD kernel: a direct convolution (padded or not), a depthwise
    one, a fully connected layer."""
    nets = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        h, w, c = (int(v) for v in rng.integers(5, 15, 3))
        f = int(rng.integers(3, 40))
        layers = [codegen.imageInputLayer([h, w, c]),
                  codegen.convolution2dLayer(int(rng.integers(1, 4)), f, Padding=["same", 0][seed % 2]),
                  codegen.reluLayer(),
                  codegen.groupedConvolution2dLayer(3, 1, "channel-wise", Padding="same"),
                  codegen.fullyConnectedLayer(int(rng.integers(2, 30)))]
        nets.append(codegen.Network(layers, seed=seed, name=f"isa{seed}"))
    return nets


def _isas_in(text: str) -> set[str]:
    return {isa for isa, marker in MARKERS.items() if marker in text}


@pytest.mark.parametrize("device, expected", [("cortex-m4", set()), ("cortex-m55", set()),
                                              ("aarch64", {"neon"}), ("host", {"avx512", "avx2", "neon"})])
def test_a_device_build_holds_its_own_instruction_sets_only(device, expected):
    for net in _nets():
        files = _files(net, device=device)
        source = files[f"{net.name}.c"] + files.get("codegen_simd.h", "")
        assert _isas_in(source) == expected, device
        if device.startswith("cortex"):
            assert not re.search(r"_mm\d*_|vld1q|immintrin|arm_neon", source)
            assert ("arm_mve.h" in source) == (device == "cortex-m55")
            assert not re.search(r"CODEGEN_SIMD_(AVX|NEON)|#elif", source)   # no choice among instruction sets


def test_isa_option_emits_the_named_sets_and_they_compute_the_network():
    defined = subprocess.run(["cc", "-march=native", "-dM", "-E", "-"], input="", capture_output=True,
                             text=True).stdout
    have = ["portable"] + [isa for isa, macros in (("avx2", ("__AVX2__", "__FMA__")), ("avx512", ("__AVX512F__",)))
                           if all(m in defined for m in macros)]
    for isa in have:
        nets = _nets()[:2]
        for net in nets:
            source = _files(net, isa=isa)[f"{net.name}.c"]
            assert _isas_in(source) == ({isa} - {"portable"})
        libs = codegen.build_many(nets, isa=isa, extra_flags=["-Werror"])
        for net, lib in zip(nets, libs):
            x = random_inputs(net, 2, seed=1)
            ref = net.predict(x.astype(np.float64)).reshape(2, -1)
            err = rel_error(lib.predict(x).reshape(2, -1), ref)
            assert err < TOL, f"--isa {isa}, {net.name}: relative error {err:.2e}"


def test_a_single_instruction_set_refuses_a_compiler_without_it(tmp_path):
    net = _nets()[0]
    files = _files(net, isa="avx512")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    proc = subprocess.run(["cc", "-std=c99", "-O1", "-mno-avx512f", "-c", f"{net.name}.c"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "generated for AVX-512 only" in proc.stderr


def test_aarch64_build_runs_neon_and_portable_under_qemu():
    require_tool("aarch64-linux-gnu-gcc", "qemu-aarch64")
    net = _nets()[1]
    files = _files(net, device="aarch64")
    x = random_inputs(net, 1, seed=3)
    ref = net.predict(x.astype(np.float64)).reshape(1, -1)
    for extra in ([], ["-DCODEGEN_PORTABLE"]):
        y = run_harness(files, net.name, x, ref.shape[1], cc="aarch64-linux-gnu-gcc",
                        cflags=["-O2", "-static", "-Wall", "-Wextra", "-Werror", "-pedantic", *extra],
                        runner=["qemu-aarch64"])
        assert rel_error(y[0], ref[0]) < TOL, extra


@pytest.mark.parametrize("target, isa, words", [
    ({}, "sse", ["'sse'", "avx512, avx2, neon, portable"]),
    ({"device": "cortex-m4"}, "avx2", ["--device cortex-m4", "'avx2'", "portable"]),
    ({"device": "aarch64"}, "avx512,neon", ["'avx512'", "neon, portable"]),
    ({}, ",", ["nothing"]),
])
def test_a_bad_isa_names_itself_and_what_is_allowed(target, isa, words):
    with pytest.raises(UnsupportedError) as exc:
        make_target("c", isa=isa, **target)
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_isa_on_the_command_line(tmp_path):
    net_file = tmp_path / "tiny.py"
    net_file.write_text("layers = [imageInputLayer([8, 8, 3]), convolution2dLayer(3, 8, Padding='same'), "
                        "reluLayer(), fullyConnectedLayer(4)]\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "codegen.cli", "build", str(net_file), "--out", str(out),
                           "--isa", "portable"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "portable C99 kernels only" in (out / "codegen_simd.h").read_text()
    bad = subprocess.run([sys.executable, "-m", "codegen.cli", "build", str(net_file), "--isa", "mmx"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "'mmx'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


STRICT = ["-std=c99", "-fsyntax-only", "-Wall", "-Wextra", "-pedantic", "-Wshadow", "-Wconversion", "-Werror"]


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_every_example_is_warning_free_under_strict_flags(compiler, tmp_path):
    """Every generated .c of every example, for each instruction set this machine compiles and for
    a Cortex-M build, under -Wall -Wextra -pedantic -Wshadow -Wconversion."""
    require_tool(compiler)
    root = Path(__file__).resolve().parents[1]
    for example in sorted(p.stem for p in (root / "examples").glob("*.py")):
        net = load(root / "examples" / f"{example}.py")
        for label, target in (("host", {}), ("cortex-m4", {"device": "cortex-m4"})):
            folder = tmp_path / f"{example}-{label}"
            folder.mkdir()
            for name, text in _files(net, **target).items():
                (folder / name).write_text(text) if isinstance(text, str) else (folder / name).write_bytes(text)
            sources = sorted(str(p) for p in folder.glob("*.c"))
            for flags in (["-march=native"], ["-march=native", "-mno-avx512f"], ["-DCODEGEN_PORTABLE"]):
                proc = subprocess.run([compiler, *STRICT, *flags, *sources], cwd=folder, capture_output=True, text=True)
                assert proc.returncode == 0, f"{example} ({label}) {flags}:\n{proc.stderr[-3000:]}"


def _same_shape_blocks(relu_second: bool) -> codegen.Network:
    layers = [codegen.imageInputLayer([9, 11, 16], "Name", "in"),
              codegen.convolution2dLayer(3, 16, "Padding", "same", "Name", "c1"),
              codegen.reluLayer("Name", "r1"),
              codegen.convolution2dLayer(3, 16, "Padding", "same", "Name", "c2")]
    if relu_second:
        layers.append(codegen.reluLayer("Name", "r2"))
    layers.append(codegen.convolution2dLayer(3, 16, "Padding", "same", "Name", "c3"))
    return codegen.Network(layers, seed=3, name="blocks")


@pytest.mark.parametrize("relu_second", [True, False])
@pytest.mark.parametrize("device", [None, "cortex-m4"])
def test_layers_of_one_shape_share_their_tile_kernels(relu_second, device):
    """c1 and c2 (both with a ReLU) have the same kernel, shapes and activation, so c2 calls c1's
    tile functions; without c2's ReLU it keeps its own. c3 (no activation) has its own either way,
    or c2's. The shared build still matches the reference."""
    net = _same_shape_blocks(relu_second)
    plan = make_plan(net)
    isas = ("cortexm",) if device else ("avx512", "avx2", "neon", "portable")
    source = render_files(net, plan, "c", {"isas": isas})["blocks.c"]
    defined = set(re.findall(r"^\w+ (blocks_c\d)_(?:tile|edge|cols\d+)\(", source, re.M))
    assert defined == ({"blocks_c1", "blocks_c3"} if relu_second else {"blocks_c1", "blocks_c2"})
    if not relu_second:
        assert "The tile kernels are blocks_c2's" in source
    if device is None:
        lib = codegen.build(net, write=False)
        x = random_inputs(net, 2, seed=1)
        assert rel_error(lib.predict(x), net.predict(x.astype(np.float64))) < TOL
