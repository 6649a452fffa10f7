"""The int8 SIMD kernels (codegen/ops/int8simd.py, templates/c/kernels/int8_simd.c.j2): direct
convolution and fully connected layers with AVX-512 VNNI, AVX2, portable C (on this host) and AArch64
NEON with and without the dot product extension (under qemu-aarch64) equal the integer reference
bit for bit (zero differing outputs) on random shapes: kernel sizes, strides, dilations, padding,
channel counts that are not multiples of the vector width, nonzero zero points, multipliers above
one (the saturating shift left) and fused clamps."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import codegen
from codegen import convolution2dLayer, fullyConnectedLayer, groupedConvolution2dLayer, imageInputLayer, reluLayer
from codegen.emit import render_files
from codegen.harness import run_harness
from codegen.ops.int8simd import choose_tile
from codegen.plan import make_plan
from codegen.quant.calibrate import calibrate
from codegen.quant.fixedpoint import multiply_by_quantized_multiplier
from codegen.quant.reference import predict_int8
from codegen.targets import make_target
from conftest import require_tool


def _macros(flags: list[str]) -> str:
    return subprocess.run(["cc", *flags, "-dM", "-E", "-"], input="", capture_output=True, text=True).stdout


def random_case(seed: int):
    """A network of one random convolution (depthwise for seeds 4, 9, ...; every third seed with a
    fully connected layer after it)
    with its plan, calibrated on inputs that are not centred on zero (nonzero zero points); some
    output channels get a multiplier of 2^1 .. 2^12 (the requantization's saturating shift left, even
    seeds) or shifts right of 21 .. 31 (seeds 1, 5, 9, ...: AVX-512 then adds the zero point apart)."""
    rng = np.random.default_rng(seed)
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    dh, dw = (int(v) for v in rng.integers(1, 3, 2)) if seed % 4 == 3 else (1, 1)
    h = int(rng.integers((kh - 1) * dh + 1, 16))
    w = int(rng.integers((kw - 1) * dw + 1, 16))
    c = int(rng.choice([1, 3, 4, 5, 8, 13, 16, 31, 64]))
    f = int(rng.choice([1, 5, 8, 16, 17, 24, 33, 48, 64, 70]))
    pad = [0, "same", [int(v) for v in rng.integers(0, 3, 4)]][seed % 3]
    if seed % 10 == 7:                         # a short reduction and many filters: AVX-512's 12-pixel tiles
        kh, kw, h, w, c, f = 1, int(rng.integers(1, 3)), 13, 14, int(rng.choice([5, 13, 31])), 70
    if seed % 5 == 4:                          # depthwise
        c = int(rng.choice([3, 8, 13, 16, 24, 40]))
        conv = groupedConvolution2dLayer([kh, kw], 1, c, Stride=[sh, sw], DilationFactor=[dh, dw], Padding=pad)
    else:
        conv = convolution2dLayer([kh, kw], f, Stride=[sh, sw], DilationFactor=[dh, dw], Padding=pad)
    layers = [imageInputLayer([h, w, c], Normalization="none"), conv]
    if seed % 2:
        layers.append(reluLayer())
    if seed % 3 == 2:
        layers.append(fullyConnectedLayer(int(rng.integers(1, 40))))
    net = codegen.Network(layers, seed=seed, name=f"i8simd{seed}")
    shift = rng.uniform(-1.5, 2.5)
    images = (rng.standard_normal((24, h, w, c)) + shift).astype(np.float32)
    plan = make_plan(net, calibration=calibrate(net, images))
    for op in plan.ops:
        s = op.weights.get("s")
        if op.kind in ("conv", "fc") and seed % 2 == 0:
            pick = rng.random(s.shape) < 0.3
            op.weights["s"] = np.where(pick, rng.integers(1, 13, s.shape), s).astype(np.int32)
        elif op.kind in ("conv", "fc") and seed % 4 == 1:      # shifts right beyond 20 (tiny multipliers)
            pick = rng.random(s.shape) < 0.3
            op.weights["s"] = np.where(pick, rng.integers(-31, -20, s.shape), s).astype(np.int32)
    x = (rng.standard_normal((3, h, w, c)) * 1.3 + shift).astype(np.float32)
    return net, plan, x


def differing(net, plan, x, isa: str | None, device: str | None = None, cc: str = "cc", flags=()) -> int:
    """Outputs of the C built for ``isa`` (compiled with ``flags``) that differ from the integer reference."""
    target = make_target("c", device=device, isa=isa) if device else make_target("c", isa=isa)
    files = render_files(net, plan, "c", target.render_options())
    prefix = net.name
    want = predict_int8(plan, x)[0].reshape(len(x), -1)
    runner = ["qemu-aarch64"] if device == "aarch64" else None
    got = run_harness(files, prefix, x, want.shape[1], cc=cc, runner=runner,
                      cflags=["-O2", "-Wall", "-Wextra", "-Werror", *(["-static"] if runner else []), *flags])
    return int(np.sum(got != want))


CASES = range(20)

X86 = [("avx512", ["-march=native"], ("__AVX512VNNI__", "__AVX512BW__")),
       ("avx2", ["-march=native", "-mno-avx512f"], ("__AVX2__",)),
       ("portable", ["-march=native"], ()),                         # the portable int8 templates
       (None, ["-march=native", "-mno-avx512f"], ("__AVX2__",)),       # every set, compile-time choice
       (None, ["-march=native"], ("__AVX512VNNI__",)),
       (None, ["-march=native", "-DCODEGEN_PORTABLE"], ())]       # the host build's portable kernels


@pytest.mark.parametrize("isa, flags, needs", X86,
                         ids=["avx512", "avx2", "portable", "host-avx2", "host-avx512", "host-portable"])
def test_x86_kernels_equal_the_integer_reference_bit_for_bit(isa, flags, needs):
    defined = _macros(flags)
    missing = [m for m in needs if m not in defined]
    if missing:
        pytest.skip(f"this compiler and CPU lack {', '.join(missing)} (cc {' '.join(flags)})")
    bad = {}
    for seed in CASES:
        net, plan, x = random_case(seed)
        n = differing(net, plan, x, isa, flags=flags)
        if n:
            bad[net.name] = n
    assert not bad, f"--isa {isa} {flags}: differing outputs per network {bad}"


@pytest.mark.parametrize("march", ["armv8-a", "armv8.2-a+dotprod"])
def test_neon_kernels_equal_the_integer_reference_under_qemu(march):
    require_tool("aarch64-linux-gnu-gcc", "qemu-aarch64")
    defined = subprocess.run(["aarch64-linux-gnu-gcc", f"-march={march}", "-dM", "-E", "-"], input="",
                             capture_output=True, text=True).stdout
    assert ("__ARM_FEATURE_DOTPROD" in defined) == ("dotprod" in march)
    bad = {}
    for seed in CASES:
        net, plan, x = random_case(seed)
        n = differing(net, plan, x, None, device="aarch64", cc="aarch64-linux-gnu-gcc", flags=[f"-march={march}"])
        if n:
            bad[net.name] = n
    assert not bad, f"NEON -march={march}: differing outputs per network {bad}"


def test_a_host_build_holds_the_int8_kernels_of_each_instruction_set():
    net, plan, _ = random_case(2)
    files = render_files(net, plan, "c", make_target("c").render_options())
    source, header = files[f"{net.name}.c"], files["codegen_simd_int8.h"]
    assert all(s in source for s in ("cg_i8_dpbusd", "_mm256_madd_epi16", "vdotq_s32", "vpadalq_s16"))
    assert "vpdpbusd" in header and "_mm512_dpbusd_epi32" in header
    assert "-DCODEGEN_PORTABLE" in header and "#error" not in header
    only = render_files(net, plan, "c", make_target("c", isa="avx2").render_options())
    assert "_mm512" not in only[f"{net.name}.c"] and "generated for AVX2 only" in only["codegen_simd_int8.h"]
    portable = render_files(net, plan, "c", make_target("c", isa="portable").render_options())
    assert "codegen_simd_int8.h" not in portable          # the portable int8 templates, as before
    arm = render_files(net, plan, "c", make_target("c", device="aarch64").render_options())
    assert "vdotq_s32" in arm[f"{net.name}.c"] and "_mm" not in arm[f"{net.name}.c"] + arm["codegen_simd_int8.h"]
    m4 = render_files(net, plan, "c", make_target("c", device="cortex-m4").render_options())
    assert "codegen_simd_int8.h" not in m4 or "dpbusd" not in m4["codegen_simd_int8.h"]


def test_requantization_identity_behind_the_vector_kernels():
    """The vector kernels compute the rounding doubling high multiply as (x * m0 + 2^30) >> 31 (arithmetic):
    equal to the reference's for m0 >= 0, which the kernels require."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(-2**31, 2**31, 20000), [-2**31, 2**31 - 1, 0, -1, 1, -2**30, 2**30]])
    m0 = np.concatenate([rng.integers(2**30, 2**31, 20000), [2**31 - 1, 2**30, 0, 2**30, 2**30, 2**30, 2**30]])
    for shift in (-31, -5, -1, 0):
        ref = multiply_by_quantized_multiplier(x, m0, shift)
        high = (x.astype(object) * m0.astype(object) + 2**30) >> 31
        right = -shift
        q = high >> right
        mask = (1 << right) - 1
        q = q + (((high & mask) > ((mask >> 1) + (high < 0))).astype(int))
        assert np.array_equal(np.asarray(q, np.int64), ref), shift


def test_tiles_fit_the_registers():
    for isa, regs in (("avx512", 24), ("avx2", 12), ("neon", 20)):
        per = 1 if isa == "avx512" else 4
        for pixels in (1, 2, 7, 100):
            for nb in range(1, 12):
                for k4 in (4, 64, 128, 132, 2304):
                    t = choose_tile(isa, pixels, nb, k4)
                    assert t.p * t.nv * per <= regs and 1 <= t.nv <= nb and t.tail == nb % t.nv and t.p <= pixels


STRICT = ["-std=c99", "-fsyntax-only", "-Wall", "-Wextra", "-pedantic", "-Wshadow", "-Wconversion", "-Werror"]


@pytest.mark.parametrize("compiler", ["gcc", "clang", "aarch64-linux-gnu-gcc"])
def test_int8_kernels_are_warning_free_under_strict_flags(compiler, tmp_path):
    """Each instruction set's int8 kernels (and the portable fallback) of a few cases and of LeNet
    under -Wall -Wextra -pedantic -Wshadow -Wconversion."""
    require_tool(compiler)
    arm = compiler.startswith("aarch64")
    variants = ([["-march=armv8-a"], ["-march=armv8.2-a+dotprod"], ["-DCODEGEN_PORTABLE"]] if arm else
                [["-march=native"], ["-march=native", "-mno-avx512f"], ["-DCODEGEN_PORTABLE"]])
    target = make_target("c", device="aarch64") if arm else make_target("c")
    for seed in (1, 2, 6, 8):
        net, plan, _ = random_case(seed)
        folder = tmp_path / f"{net.name}"
        folder.mkdir()
        for name, text in render_files(net, plan, "c", target.render_options()).items():
            (folder / name).write_text(text)
        for flags in variants:
            proc = subprocess.run([compiler, *STRICT, *flags, f"{net.name}.c"], cwd=folder, capture_output=True,
                                  text=True)
            assert proc.returncode == 0, f"{net.name} {flags}:\n{proc.stderr[-3000:]}"


def test_the_branch_free_input_quantization_equals_the_reference(tmp_path):
    """The float API's quantize (written without branches so that its loop vectorizes) against
    QParams.quantize on random values, exact ties, the ends of the range and far beyond them (up to
    1e15: the reference casts to int64, which is undefined past 2^63)."""
    import re

    from codegen.quant.calibrate import QParams
    net, plan, _ = random_case(1)
    source = render_files(net, plan, "c", make_target("c").render_options())[f"{net.name}.c"]
    fn = re.search(r"static inline int8_t \w+_quantize\(.*?\n}\n", source, re.S).group(0)
    name = re.search(r"int8_t (\w+_quantize)", fn).group(1)
    rng = np.random.default_rng(5)
    for scale, zp in ((0.037, -5), (0.5, 127), (1.0, -128), (0.013, 0)):
        qp = QParams(np.float32(scale), zp)
        inv = np.float32(qp.inv_scale)
        k = rng.integers(-300, 300, 4000).astype(np.float32)
        x = np.concatenate([rng.standard_normal(4000).astype(np.float32) * 200 * scale,
                            (k + np.float32(0.5)) / inv, k / inv, np.float32([255.5, 256, 256.5, -256.5, -257, -257.5, 0.5, -0.5,
                                                                              -0.0, 1e15, -1e15]) / inv])
        x = x.astype(np.float32)
        (tmp_path / "q.c").write_text(f"#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n{fn}\nint main(void)\n{{\n"
                                      "    float v;\n    while (fread(&v, sizeof v, 1, stdin) == 1)\n"
                                      f"        putchar((unsigned char){name}(v, {float(inv)!r}f, {zp}));\n    return 0;\n}}\n")
        subprocess.run(["cc", "-std=c99", "-O3", "-march=native", "-Werror=implicit-function-declaration", "q.c", "-o", "q", "-lm"], cwd=tmp_path, check=True)
        out = subprocess.run([str(tmp_path / "q")], input=x.tobytes(), capture_output=True, check=True).stdout
        got = np.frombuffer(out, np.int8)
        want = qp.quantize(x)
        assert np.array_equal(got, want), (scale, zp, x[got != want], got[got != want], want[got != want])
        # where the reference is undefined: a NaN gives the zero point, infinities the ends
        special = np.float32([np.nan, np.inf, -np.inf])
        out = subprocess.run([str(tmp_path / "q")], input=special.tobytes(), capture_output=True, check=True).stdout
        assert list(np.frombuffer(out, np.int8)) == [zp, 127, -128], (scale, zp)


def test_an_avx512_only_build_refuses_a_target_without_vnni(tmp_path):
    if "__x86_64__" not in _macros([]):
        pytest.skip("cc does not compile for x86-64 (the AVX-512 VNNI guard is x86's)")
    net, plan, _ = random_case(2)
    for name, text in render_files(net, plan, "c", make_target("c", isa="avx512").render_options()).items():
        (tmp_path / name).write_text(text)
    proc = subprocess.run(["cc", "-std=c99", "-O1", "-march=native", "-mno-avx512vnni", "-c", f"{net.name}.c"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "generated for AVX-512 VNNI only" in proc.stderr, proc.stderr[-2000:]
