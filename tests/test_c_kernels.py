"""The fast C kernels (issue 5): register-tiled direct, 1x1 (matrix product), depthwise, grouped
and fully connected kernels, each tier against the NumPy reference.

Tiers: AVX-512 and AVX2 (host builds with and without -mno-avx512f), the portable C99 kernels
(-DCODEGEN_PORTABLE), AArch64 NEON under qemu-aarch64, and OpenMP threads. Shapes are random
(seeded) and border-heavy: padding on every side up to the filter size, strides and dilations up
to 3, channel counts around the vector widths (1, 15, 16, 17, 33, 63, 65, 130), outputs written as
channel slices of a concatenation (a pixel pitch larger than the channel count), activations and
folded batch normalization in the epilogue. Metric: ||y - ref|| / ||ref|| < 1e-5 per input, the
workspace poisoned with NaN before each call.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

import numpy as np
import pytest

import codegen
from codegen import (batchNormalizationLayer, clippedReluLayer, convolution2dLayer, fullyConnectedLayer,
                     groupedConvolution2dLayer, imageInputLayer, leakyReluLayer, reluLayer)
from codegen.emit import render_files
from codegen.emit.c import c_kernels
from codegen.harness import run_harness
from codegen import build_many
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from conftest import require_tool

TOL = 1e-5
CHANNELS = [1, 3, 15, 16, 17, 20, 31, 33, 48, 63, 64, 65]
FILTERS = [1, 5, 16, 17, 20, 33, 48, 63, 64, 65, 100, 130]


@lru_cache(maxsize=None)
def host_defines(flags: tuple[str, ...] = ()) -> str:
    cc = shutil.which("cc") or "cc"
    out = subprocess.run([cc, "-march=native", *flags, "-dM", "-E", "-"], input="", capture_output=True, text=True)
    return out.stdout


def _pad(rng, kh, kw):
    """Border-heavy padding: each side up to the filter extent, or 'same'."""
    if rng.random() < 0.25:
        return "same"
    return [int(rng.integers(0, kh + 1)), int(rng.integers(0, kh + 1)), int(rng.integers(0, kw + 1)),
            int(rng.integers(0, kw + 1))]


def _act(rng):
    r = rng.random()
    if r < 0.3:
        return [reluLayer()]
    if r < 0.45:
        return [leakyReluLayer(float(rng.uniform(0.05, 0.5)))]
    if r < 0.6:
        return [clippedReluLayer(float(rng.uniform(0.5, 2.0)))]
    return []


def _bn(rng, c):
    return [batchNormalizationLayer(TrainedMean=rng.normal(0, 0.3, (1, 1, c)),
                                    TrainedVariance=rng.uniform(0.3, 2.0, (1, 1, c)),
                                    Scale=rng.uniform(0.5, 1.5, (1, 1, c)), Offset=rng.normal(0, 0.3, (1, 1, c)))]


def _conv_layer(rng, shape):
    """A random direct, 1x1, grouped or depthwise convolution valid for ``shape`` (or None)."""
    h, w, c = shape
    kind = rng.choice(["direct", "direct", "pointwise", "depthwise", "grouped"])
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    dil = [int(rng.integers(1, 4)), int(rng.integers(1, 4))] if rng.random() < 0.4 else 1
    if kind == "pointwise":
        f = int(rng.choice(FILTERS))
        return convolution2dLayer(1, f, Bias=rng.normal(0, 0.3, (1, 1, f)))
    if kind == "depthwise":
        return groupedConvolution2dLayer([kh, kw], 1, "channel-wise", Stride=[int(rng.integers(1, 3))] * 2,
                                         DilationFactor=dil, Padding=_pad(rng, kh, kw),
                                         Bias=rng.normal(0, 0.3, (1, 1, 1, c)))
    if kind == "grouped":
        groups = [g for g in range(2, c + 1) if c % g == 0]
        if not groups:
            return None
        g = int(rng.choice(groups))
        fg = int(rng.integers(1, 21))
        return groupedConvolution2dLayer([kh, kw], fg, g, Stride=stride, DilationFactor=dil, Padding=_pad(rng, kh, kw),
                                         Bias=rng.normal(0, 0.3, (1, 1, fg, g)))
    f = int(rng.choice(FILTERS))
    return convolution2dLayer([kh, kw], f, Stride=stride, DilationFactor=dil, Padding=_pad(rng, kh, kw),
                              Bias=rng.normal(0, 0.3, (1, 1, f)))


def kernel_stack(rng, name: str, layers: int = 3) -> codegen.Network:
    """Input, ``layers`` random convolutions (each maybe with batch norm and an activation), maybe a
    fully connected layer."""
    h, w, c = int(rng.integers(4, 30)), int(rng.integers(4, 30)), int(rng.choice(CHANNELS))
    net_layers = [imageInputLayer([h, w, c], Normalization="none")]
    shape = (h, w, c)
    for _ in range(layers):
        for _attempt in range(30):
            layer = _conv_layer(rng, shape)
            if layer is None:
                continue
            try:
                out = tuple(layer.copy().resolve([shape]))
            except codegen.LayerError:
                continue
            groups = getattr(layer, "NumGroups", 1)
            groups = shape[2] if groups == "channel-wise" else groups
            weights = int(np.prod(layer.FilterSize)) * shape[2] // groups * out[2]
            if weights > 20000 or weights * out[0] * out[1] > 2e6:        # quick to render and to check
                continue
            break
        else:
            continue
        net_layers.append(layer)
        shape = out
        if rng.random() < 0.4:
            net_layers += _bn(rng, shape[2])
        net_layers += _act(rng)
    n = int(rng.choice([1, 10, 16, 17, 33, 100]))
    if rng.random() < 0.6 and n * int(np.prod(shape)) <= 60000:
        net_layers += [fullyConnectedLayer(n, Bias=rng.normal(0, 0.3, (n, 1))), *_act(rng)]
    return codegen.Network(net_layers, seed=int(rng.integers(1 << 30)), name=name)


def concat_graph(name: str = "slices") -> codegen.Network:
    """Every kernel writing a channel slice of a concatenation (a pixel pitch of 100 floats)."""
    lgraph = codegen.layerGraph([imageInputLayer([4, 5, 19], Normalization="none", Name="in")])
    branches = [
        convolution2dLayer(3, 37, Padding=[2, 0, 0, 2], Name="direct"),
        convolution2dLayer([1, 3], 20, Padding=[0, 0, 1, 1], Name="row"),
        groupedConvolution2dLayer(3, 1, "channel-wise", Padding="same", Name="dw"),
        groupedConvolution2dLayer([2, 3], 8, 1, Padding="same", DilationFactor=2, Name="grouped"),
        convolution2dLayer(1, 16, Name="pointwise"),
    ]
    for b in branches:
        lgraph = lgraph.addLayers(b).connectLayers("in", b.Name)
    lgraph = lgraph.addLayers([codegen.depthConcatenationLayer(len(branches), Name="cat"), reluLayer(Name="r")])
    for k, b in enumerate(branches):
        lgraph = lgraph.connectLayers(b.Name, f"cat/in{k + 1}")
    fc = [fullyConnectedLayer(7, Name="fc1"), fullyConnectedLayer(33, Name="fc2")]
    lgraph = lgraph.addLayers([fc[0]]).connectLayers("r", "fc1")
    lgraph = lgraph.addLayers([fc[1]]).connectLayers("r", "fc2")
    lgraph = lgraph.addLayers([codegen.depthConcatenationLayer(2, Name="fcat")])
    lgraph = lgraph.connectLayers("fc1", "fcat/in1").connectLayers("fc2", "fcat/in2")
    return codegen.Network(lgraph, seed=5, name=name)


def fixed_networks() -> list[codegen.Network]:
    """Shapes that pin each kernel path: interior and edge tiles, short chunks, masked loads."""
    return [
        codegen.Network([imageInputLayer([30, 31, 17], Normalization="none"),
                         convolution2dLayer(3, 65, Padding=1), reluLayer(),                   # several chunks, short last
                         convolution2dLayer(1, 33),                                            # matrix product
                         groupedConvolution2dLayer(5, 1, "channel-wise", Padding=[3, 1, 2, 4], Stride=2),
                         leakyReluLayer(0.2),
                         convolution2dLayer([3, 2], 20, DilationFactor=[2, 3], Padding="same", Stride=[1, 2]),
                         clippedReluLayer(1.5),
                         fullyConnectedLayer(17)], seed=1, name="paths"),
        codegen.Network([imageInputLayer([40, 45, 3], Normalization="none"),
                         convolution2dLayer(7, 16, Stride=2, Padding=3),                       # stem: small CG
                         *_bn(np.random.default_rng(0), 16), reluLayer(),
                         groupedConvolution2dLayer(3, 1, "channel-wise", Padding=1, Stride=2),  # 16 channels
                         convolution2dLayer(1, 130), reluLayer(),
                         convolution2dLayer(3, 20, Stride=3),
                         fullyConnectedLayer(100)], seed=2, name="stem"),
        concat_graph(),
    ]


def all_networks() -> list[codegen.Network]:
    rng = np.random.default_rng(2024)
    return fixed_networks() + [kernel_stack(rng, f"stack{i}") for i in range(30)]


def check(nets, libs):
    worst = 0.0
    for net, lib in zip(nets, libs):
        lib.poison = np.nan
        x = random_inputs(net, 2, seed=7)
        y = lib.predict(x)
        ref = net.predict(x.astype(np.float64))
        err = max(rel_error(y[i], ref[i]) for i in range(len(x)))
        assert np.all(np.isfinite(y)), f"{net.name}: non-finite output\n{lib.plan.describe()}"
        assert err < TOL, f"{net.name}: relative error {err:.2e}\n{net!r}\n{lib.plan.describe()}"
        worst = max(worst, err)
    return worst


@lru_cache(maxsize=None)
def networks():
    return all_networks()


@pytest.mark.parametrize("tier", ["avx512", "avx2", "portable"])
def test_tier_matches_reference(tier):
    flags = {"avx512": [], "avx2": ["-mno-avx512f"], "portable": ["-DCODEGEN_PORTABLE"]}[tier]
    defined = host_defines(tuple(flags))
    if tier == "avx512" and "__AVX512F__" not in defined:
        pytest.skip("the host has no AVX-512")
    if tier == "avx2" and not ("__AVX2__" in defined and "__FMA__" in defined):
        pytest.skip("the host has no AVX2 with FMA")
    nets = networks()
    check(nets, build_many(nets, extra_flags=["-Werror", *flags]))


def test_portable_tier_without_vector_extensions():
    """Plain -O2 (no -march): the kernels compilers meet on an unknown device."""
    nets = networks()[:3]
    check(nets, build_many(nets, opt_flags=["-O2"], extra_flags=["-Werror"]))


def test_openmp_threads_match_reference(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    nets = networks()[:3]
    libs = build_many(nets, openmp=True, extra_flags=["-Werror"])
    check(nets, libs)


def test_every_tier_is_warning_free_under_clang(tmp_path):
    require_tool("clang")
    names = []
    for net in networks():
        for name, text in render_files(net, make_plan(net)).items():
            (tmp_path / name).write_text(text)
        names.append(str(tmp_path / f"{net.name.lower()}.c"))
    for flags in (["-march=native"], ["-march=native", "-mno-avx512f"], ["-DCODEGEN_PORTABLE"]):
        proc = subprocess.run(["clang", "-std=c99", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic",
                               *flags, *names], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, f"{flags}:\n{proc.stderr[-3000:]}"


def test_neon_tier_under_qemu():
    require_tool("aarch64-linux-gnu-gcc", "qemu-aarch64")
    for net in networks()[:4]:
        prefix = net.name.lower()
        files = render_files(net, make_plan(net))
        x = random_inputs(net, 1, seed=3)
        ref = net.predict(x.astype(np.float64)).reshape(1, -1)
        for extra in ([], ["-DCODEGEN_PORTABLE"]):
            y = run_harness(files, prefix, x, ref.shape[1], cc="aarch64-linux-gnu-gcc",
                            cflags=["-O2", "-static", "-Wall", "-Wextra", "-Werror", "-pedantic", *extra],
                            runner=["qemu-aarch64"])
            err = rel_error(y[0], ref[0])
            assert err < TOL, f"{net.name} {extra or 'NEON'}: relative error {err:.2e}"


def test_portable_tier_is_plain_c99_for_cortex_m(tmp_path):
    """No intrinsics, no malloc, small stack frames: the Cortex-M build of the same output."""
    require_tool("arm-none-eabi-gcc")
    net = networks()[1]
    files = render_files(net, make_plan(net))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    src = tmp_path / "stem.c"
    proc = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16",
                           "-mfloat-abi=hard", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fstack-usage", "-c",
                           str(src), "-o", str(tmp_path / "stem.o")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "malloc" not in files["stem.c"]
    frames = [int(m) for m in re.findall(r"\t(\d+)\t", (tmp_path / "stem.su").read_text())]
    assert max(frames) <= 2048, f"largest stack frame {max(frames)} bytes"


def test_weights_are_repacked_exactly():
    """The re-packed arrays hold exactly the plan's weights (bit for bit), zeros elsewhere."""
    net = networks()[0]
    plan = make_plan(net)
    for op, chosen in zip(plan.ops, c_kernels(plan)):
        if chosen is None:
            continue
        k, weights = chosen
        w, a = weights["w"], op.attrs
        if k.kind == "fc":
            back = w.reshape(k.nb, a.n_in, k.vb).transpose(1, 0, 2).reshape(a.n_in, -1)[:, :a.n_out]
        elif k.kind in ("fc_dot", "grouped"):      # unpadded: [out][in], or the plan's own layout
            back = w.reshape(a.n_out, a.n_in).T if k.kind == "fc_dot" else w
        elif k.kind == "depthwise":
            back = w.reshape(a.kh, a.kw, -1)[:, :, :a.groups].transpose(2, 0, 1).reshape(op.weights["w"].shape)
        else:
            back = w.reshape(a.groups, k.nb, a.kh, a.kw, a.cg, k.vb).transpose(0, 2, 3, 4, 1, 5)
            back = back.reshape(a.groups, a.kh, a.kw, a.cg, -1)[..., :a.fg]
        assert back.tobytes() == op.weights["w"].tobytes(), op.name
        assert np.count_nonzero(w) == np.count_nonzero(op.weights["w"]), op.name
