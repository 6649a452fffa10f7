"""Large weights as a binary file included by the assembler (.incbin) instead of C literals: bit-exact,
on every target, and buildable from the output folder with its Makefile and CMakeLists.txt."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import codegen
import codegen.emit.common as common
from codegen import Network, convolution2dLayer, fullyConnectedLayer, imageInputLayer, reluLayer
from codegen.verify import random_inputs, rel_error
from checks import tolerance_for
from conftest import require_tool


def big_net() -> Network:
    """5.2 MB of weights: above the blob threshold."""
    return Network([imageInputLayer([8, 8, 20], Normalization="none"), convolution2dLayer(3, 30, Padding="same"),
                    reluLayer(), fullyConnectedLayer(680)], seed=4, name="bigw")


def small_net() -> Network:
    return Network([imageInputLayer([6, 6, 2]), convolution2dLayer(3, 5), reluLayer(), fullyConnectedLayer(7)],
                   seed=2, name="smallw")


def check(net, lib):
    x = random_inputs(net, 2)
    tol = tolerance_for(net, lib, x)          # CUDA: the TF32 bound (its conv and FC run on the tensor cores)
    assert max(rel_error(a, b) for a, b in zip(lib.predict(x), net.predict(x.astype(np.float64)))) < tol


def test_large_weights_go_to_a_blob_bit_exact(tmp_path):
    net = big_net()
    lib = codegen.build(net, out_dir=tmp_path / "out", extra_flags=["-Werror"])
    blob = lib.files["bigw_weights.bin"]
    assert isinstance(blob, bytes) and len(lib.files["bigw_weights.c"]) < 10_000
    assert (tmp_path / "out" / "bigw_weights.bin").read_bytes() == blob
    check(net, lib)
    # every array is in the blob exactly, at its 64-byte aligned offset
    text = lib.files["bigw_weights.c"]
    for sym in ("bigw_fc_1_w", "bigw_fc_1_b", "bigw_conv_1_w"):
        assert f".global {sym}" in text
    fc = next(op for op in lib.plan.ops if op.kind == "fc")
    values = np.frombuffer(blob, "<f4")
    assert np.count_nonzero(values) >= np.count_nonzero(fc.weights["w"])


def test_small_weights_stay_c_literals():
    lib = codegen.build(small_net(), write=False)
    assert "smallw_weights.bin" not in lib.files and "0x1." in lib.files["smallw_weights.c"]


def test_weights_section_keeps_c_arrays(tmp_path):
    lib = codegen.build(big_net(), write=False, weights_section=".extflash")
    assert "bigw_weights.bin" not in lib.files
    assert '__attribute__((section(".extflash")))' in lib.files["bigw_weights.c"]


def test_blob_on_cuda_emulated():
    net = big_net()
    lib = codegen.build(net, target="cuda", emulate=True, write=False)
    assert "bigw_weights.bin" in lib.files
    check(net, lib)


def test_blob_on_cortex_m4(monkeypatch):
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.setattr(common, "BLOB_BYTES", 0)          # a small network, so that it fits the board
    net = small_net()
    dev = codegen.build(net, device="cortex-m4", write=False)
    assert "smallw_weights.bin" in dev.files and dev.checks_passed, dev.checks_report()
    assert dev.footprint.constants >= net.layers[1].Weights.size * 4
    check(net, dev)


def test_output_folder_builds_with_make_and_cmake(tmp_path):
    out = tmp_path / "out"
    codegen.build(big_net(), out_dir=out, write=True)
    subprocess.run(["make", "-s"], cwd=out, check=True, capture_output=True)
    assert (out / "libbigw.a").stat().st_size > 5_000_000
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed: the Makefile was checked")
    build = tmp_path / "cmake-build"
    subprocess.run(["cmake", "-S", str(out), "-B", str(build)], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True)
    assert (build / "libbigw.a").stat().st_size > 5_000_000
