"""make bench: our generated C convolutions against PyTorch and onnxruntime on this machine (issue 5).

For each benchmark shape (batch 1, float32) it builds the generated C of a one-layer network
(imageInputLayer with Normalization 'none' + the convolution) three ways: the explicit-SIMD tier
(host flags, -O3 -march=native), the portable C99 tier (same flags, -DCODEGEN_PORTABLE) and the
SIMD tier with OpenMP (-fopenmp, 2 threads). Every output (ours, torch's, onnxruntime's) is
checked against the NumPy reference first. Then all of them are timed side by side in one run:
interleaved rounds, one sample per implementation per round (a sample averages back-to-back calls
so that it lasts at least SAMPLE_S), medians over the rounds. A round during which other
processes used more than FOREIGN_LIMIT cores (from /proc/stat) is measured again.

Peers: torch.nn.functional.conv2d, 1 and 2 threads, NCHW and channels_last (the faster is
reported); onnxruntime, one Conv node built with onnx.helper, intra_op_num_threads=1, run with
io-binding. The core's FMA peak is measured by bench/peak.c at the start and the end of the run.
Whole networks: LeNet and the ResNet-like example against onnxruntime on the same network
(exported by codegen.onnx). All buffers are 64-byte aligned.

Writes bench/results/conv.md (machine, compiler and library versions, date, load) and prints
the tables.

    python bench/run.py [--rounds N] [--shapes abc] [--no-networks] [--output PATH]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import codegen  # noqa: E402
from codegen import groupedConvolution2dLayer, convolution2dLayer, imageInputLayer  # noqa: E402
from codegen.compiler import compiler_identity, host_opt_flags  # noqa: E402
from codegen.emit.c import c_kernels  # noqa: E402
from codegen.library import aligned_empty  # noqa: E402
from codegen.netfile import load as load_netfile  # noqa: E402
from codegen.plan import make_plan  # noqa: E402
from codegen.verify import rel_error  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "conv.md"
SAMPLE_S = 0.015          # a timing sample lasts at least this long
FOREIGN_LIMIT = 0.15      # cores used by other processes above which a round is measured again
RETRIES = 3
TOL_OURS = 1e-5
TOL_PEER = 1e-4           # peers may sum in another order (or use other algorithms)


@dataclass(frozen=True)
class Shape:
    key: str
    label: str
    h: int
    w: int
    c: int
    f: int
    k: int
    s: int = 1
    p: int = 0
    d: int = 1
    g: int = 1

    def layer(self):
        if self.g > 1:
            return groupedConvolution2dLayer(self.k, self.f // self.g, self.g, Stride=self.s, Padding=self.p,
                                             DilationFactor=self.d)
        return convolution2dLayer(self.k, self.f, Stride=self.s, Padding=self.p, DilationFactor=self.d)

    @property
    def out_hw(self) -> tuple[int, int]:
        ext = (self.k - 1) * self.d + 1
        return (self.h + 2 * self.p - ext) // self.s + 1, (self.w + 2 * self.p - ext) // self.s + 1

    @property
    def flop(self) -> int:
        oh, ow = self.out_hw
        return 2 * oh * ow * self.f * (self.c // self.g) * self.k * self.k


SHAPES = [
    Shape("a", "56x56x64->64 3x3 s1 p1 (ResNet)", 56, 56, 64, 64, 3, 1, 1),
    Shape("b", "28x28x128->128 3x3 s1 p1", 28, 28, 128, 128, 3, 1, 1),
    Shape("c", "14x14x256->256 3x3 s1 p1", 14, 14, 256, 256, 3, 1, 1),
    Shape("d", "224x224x3->64 7x7 s2 p3 (stem)", 224, 224, 3, 64, 7, 2, 3),
    Shape("e", "56x56x64->256 1x1", 56, 56, 64, 256, 1),
    Shape("f", "28x28x1->20 5x5 (LeNet)", 28, 28, 1, 20, 5),
    Shape("g", "227x227x3->96 11x11 s4 (AlexNet)", 227, 227, 3, 96, 11, 4),
    Shape("h", "56x56x64->64 3x3 p2 d2", 56, 56, 64, 64, 3, 1, 2, 2),
    Shape("i", "dw 56x56x128 3x3 p1 g128", 56, 56, 128, 128, 3, 1, 1, 1, 128),
]


# =============================================================================== machine and load

def cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text()
    m = re.search(r"model name\s*:\s*(.*)", text)
    return m.group(1).strip() if m else platform.processor()


def isa_flags() -> str:
    flags = set(re.search(r"flags\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1).split())
    return "/".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags)


def busy_jiffies() -> tuple[int, int]:
    """(jiffies the whole machine was busy, jiffies this process used)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    busy = sum(values) - values[3] - values[4]          # all but idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])            # utime + stime of every thread


def onednn_version(torch) -> str:
    m = re.search(r"MKL-DNN (v[\d.]+)", torch.__config__.show())
    return f"oneDNN {m.group(1)}" if m else "oneDNN ?"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Foreign:
    """Cores used by other processes while a block of measurements ran."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.j0 = busy_jiffies()
        return self

    def __exit__(self, *exc):
        busy, own = busy_jiffies()
        wall = time.perf_counter() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        self.cores = max(0.0, ((busy - self.j0[0]) - (own - self.j0[1])) / hz / wall)
        return False


# =============================================================================== peak

def measure_peak(tmp: Path) -> dict:
    """Best FMA throughput (GFLOP/s) per variant and thread count, from bench/peak.c."""
    out: dict = {}
    for threads in (1, 2):
        exe = tmp / f"peak{threads}"
        cmd = ["cc", "-O3", "-march=native", str(ROOT / "bench" / "peak.c"), "-o", str(exe)]
        if threads > 1:
            cmd.insert(1, "-fopenmp")
        subprocess.run(cmd, check=True, capture_output=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="true")
        text = subprocess.run([str(exe)], capture_output=True, text=True, env=env, check=True).stdout
        for line in text.splitlines():
            isa, acc, gflops = line.split()
            key = (isa, int(acc), threads)
            out[key] = max(out.get(key, 0.0), float(gflops))
    return out


def peak_of(peaks: dict, threads: int) -> float:
    return max(v for (isa, acc, t), v in peaks.items() if t == threads)


# =============================================================================== implementations

@dataclass
class Impl:
    name: str
    call: object                 # one call
    threads: int = 1
    times: list = field(default_factory=list)
    error: float = float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def set_threads(n: int):
    import torch
    torch.set_num_threads(n)     # also the OpenMP runtime our -fopenmp build shares with torch


def sample(impl: Impl) -> float:
    set_threads(impl.threads)
    impl.call()
    k, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(k):
            impl.call()
        t = time.perf_counter() - t0
        if t >= SAMPLE_S:
            return t / k
        k = max(k * 2, int(k * SAMPLE_S / max(t, 1e-7)) + 1)


def timed_rounds(impls: list[Impl], rounds: int) -> tuple[float, int]:
    """Interleaved rounds; returns (most foreign cores in a kept round, rounds measured again)."""
    worst, again = 0.0, 0
    for _ in range(rounds):
        for attempt in range(RETRIES):
            with Foreign() as fg:
                values = [sample(impl) for impl in impls]
            if fg.cores <= FOREIGN_LIMIT or attempt == RETRIES - 1:
                break
            again += 1
        worst = max(worst, fg.cores)
        for impl, v in zip(impls, values):
            impl.times.append(v)
    return worst, again


class Ours:
    """A generated network loaded for timing: aligned input/output/workspace, a direct cffi call."""

    def __init__(self, lib, x_hwc: np.ndarray):
        self.lib = lib
        self.x = aligned_empty(x_hwc.nbytes).view(np.float32)
        self.x[:] = x_hwc.ravel()
        self.y = aligned_empty(int(np.prod(lib.out_shape)) * 4).view(np.float32)
        self.ws = lib._workspace()          # 64-byte aligned, the library's arena size
        ffi = lib._api.ffi
        self.args = (ffi.cast("const float *", self.x.ctypes.data), ffi.cast("float *", self.y.ctypes.data),
                     ffi.cast("void *", self.ws.ctypes.data))
        self.fn = lib._predict_ws

    def __call__(self):
        self.fn(*self.args)

    def output(self) -> np.ndarray:
        self()
        return self.y.reshape(self.lib.out_shape).copy()


def build_ours(net, tier: str):
    extra = {"simd": [], "portable": ["-DCODEGEN_PORTABLE"], "simd-omp": []}[tier]
    return codegen.build(net, write=False, extra_flags=extra, openmp=tier == "simd-omp")


def ort_session(model_bytes: bytes):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def ort_call(sess, x_nchw: np.ndarray):
    """A zero-copy io-bound call and a function returning its output."""
    import onnxruntime as ort
    xin = aligned_empty(x_nchw.nbytes).view(np.float32).reshape(x_nchw.shape)
    xin[:] = x_nchw
    y = sess.run(None, {sess.get_inputs()[0].name: xin})[0]
    yout = aligned_empty(y.nbytes).view(np.float32).reshape(y.shape)
    binding = sess.io_binding()
    binding.bind_input(sess.get_inputs()[0].name, "cpu", 0, np.float32, list(xin.shape), xin.ctypes.data)
    binding.bind_output(sess.get_outputs()[0].name, "cpu", 0, np.float32, list(yout.shape), yout.ctypes.data)
    del ort

    def call(keep=(xin, yout)):            # the bound buffers live as long as the call
        sess.run_with_iobinding(binding)

    def output():
        call()
        return yout.copy()
    return call, output


def conv_onnx(shape: Shape, w_oihw: np.ndarray, bias: np.ndarray) -> bytes:
    from onnx import TensorProto, helper
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[shape.k, shape.k], strides=[shape.s] * 2,
                            pads=[shape.p] * 4, dilations=[shape.d] * 2, group=shape.g)
    oh, ow = shape.out_hw
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, shape.c, shape.h, shape.w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, shape.f, oh, ow])],
        [helper.make_tensor("w", TensorProto.FLOAT, w_oihw.shape, w_oihw.ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


# =============================================================================== single convolutions

@dataclass
class ShapeResult:
    shape: Shape
    impls: dict
    foreign: float
    again: int
    tiles: str


def kernel_summary(net) -> str:
    """The AVX-512 / portable tiles of the layer and the share of edge tiles (padding, short tiles)."""
    k, _ = c_kernels(make_plan(net))[0]
    parts = []
    for isa in ("avx512", "portable"):
        t = k.tiles[isa]
        rows, cols = k.oh, k.ow
        tiles = -(-cols // t.p)
        interior = (k.rhi - k.rlo) * max(0, t.t1 - t.t0)
        edge = 1 - interior / (rows * tiles)
        lanes = (tiles * t.p) / cols
        parts.append(f"{isa} {t.p}x{t.ch}, edge {edge:.0%}, pixel pad {lanes - 1:.0%}")
    return "; ".join(parts)


def bench_shape(shape: Shape, rounds: int) -> ShapeResult:
    import torch
    import torch.nn.functional as F
    net = codegen.Network([imageInputLayer([shape.h, shape.w, shape.c], Normalization="none"), shape.layer()],
                          seed=0, name=f"conv_{shape.key}")
    x = np.random.default_rng(1).standard_normal((shape.h, shape.w, shape.c)).astype(np.float32)
    ref = net.predict(x.astype(np.float64))
    layer = net.layers[1]
    wts = np.asarray(layer.Weights, np.float32)           # h x w x C/G x F (x G for grouped)
    if shape.g > 1:
        wts = wts.reshape(shape.k, shape.k, shape.c // shape.g, shape.f // shape.g, shape.g)
        w_oihw = np.ascontiguousarray(wts.transpose(4, 3, 2, 0, 1).reshape(shape.f, shape.c // shape.g, shape.k,
                                                                              shape.k))
    else:
        w_oihw = np.ascontiguousarray(wts.transpose(3, 2, 0, 1))
    bias = np.asarray(layer.Bias, np.float32).ravel()
    impls: dict[str, Impl] = {}
    for tier in ("simd", "portable", "simd-omp"):
        ours = Ours(build_ours(net, tier), x)
        impls[tier] = Impl(f"ours {tier}", ours, threads=2 if tier == "simd-omp" else 1)
        set_threads(impls[tier].threads)
        impls[tier].error = rel_error(ours.output(), ref)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))[None].copy())
    wt, bt = torch.from_numpy(w_oihw.copy()), torch.from_numpy(bias.copy())
    for fmt in ("nchw", "cl"):
        mf = torch.channels_last if fmt == "cl" else torch.contiguous_format
        xf, wf = xt.contiguous(memory_format=mf), wt.contiguous(memory_format=mf)

        def call(xf=xf, wf=wf):
            with torch.inference_mode():
                return F.conv2d(xf, wf, bt, shape.s, shape.p, shape.d, shape.g)
        for threads in (1, 2):
            impl = Impl(f"torch {threads}T {fmt}", call, threads=threads)
            set_threads(threads)
            impl.error = rel_error(call()[0].permute(1, 2, 0).numpy(), ref)
            impls[f"torch{threads}-{fmt}"] = impl
    sess = ort_session(conv_onnx(shape, w_oihw, bias))
    call, output = ort_call(sess, np.ascontiguousarray(x.transpose(2, 0, 1))[None])
    impls["ort"] = Impl("onnxruntime 1T", call)
    impls["ort"].error = rel_error(output()[0].transpose(1, 2, 0), ref)
    for key, impl in impls.items():
        tol = TOL_OURS if key in ("simd", "portable", "simd-omp") else TOL_PEER
        if not impl.error < tol:
            raise SystemExit(f"shape {shape.key}: {impl.name} is wrong (relative error {impl.error:.2e}); "
                             "no timing")
    foreign, again = timed_rounds(list(impls.values()), rounds)
    return ShapeResult(shape, impls, foreign, again, kernel_summary(net))


# =============================================================================== whole networks

@dataclass
class NetResult:
    name: str
    macs: int
    impls: dict
    foreign: float
    again: int


def bench_network(path: Path, rounds: int) -> NetResult:
    from codegen.onnx import export_onnx, to_onnx_layout
    net = load_netfile(path)
    x = np.random.default_rng(2).standard_normal(net.input_shape).astype(np.float32)
    ref = net.predict(x.astype(np.float64))
    impls: dict[str, Impl] = {}
    for tier in ("simd", "portable", "simd-omp"):
        ours = Ours(build_ours(net, tier), x)
        impls[tier] = Impl(f"ours {tier}", ours, threads=2 if tier == "simd-omp" else 1)
        set_threads(impls[tier].threads)
        impls[tier].error = rel_error(ours.output(), ref)
    model = export_onnx(net)
    sess = ort_session(model.SerializeToString())
    call, output = ort_call(sess, np.ascontiguousarray(x.transpose(2, 0, 1))[None])
    impls["ort"] = Impl("onnxruntime 1T", call)
    impls["ort"].error = rel_error(output(), to_onnx_layout(ref[None], len(output().shape)))
    for key, impl in impls.items():
        if not impl.error < (TOL_OURS if key != "ort" else TOL_PEER):
            raise SystemExit(f"{net.name}: {impl.name} is wrong (relative error {impl.error:.2e}); no timing")
    foreign, again = timed_rounds(list(impls.values()), rounds)
    return NetResult(net.name, make_plan(net).macs, impls, foreign, again)


# =============================================================================== report

def gflops(shape: Shape, t: float) -> float:
    return shape.flop / t / 1e9


def yes(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(results: list[ShapeResult], nets: list[NetResult], peaks0: dict, peaks1: dict, info: dict) -> str:
    peaks = {k: max(peaks0.get(k, 0), peaks1.get(k, 0)) for k in {*peaks0, *peaks1}}
    p1, p2 = peak_of(peaks, 1), peak_of(peaks, 2)
    lines = ["# CPU convolutions: generated C vs PyTorch and onnxruntime (`make bench`)", ""]
    lines += [f"- Date: {info['date']}; run time {info['elapsed']:.0f} s",
              f"- Machine: {info['cpu']}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
              f"ISA flags: {info['isa']}",
              f"- Compiler: {info['cc']}; host flags `{' '.join(host_opt_flags())}` (SIMD tier; the portable tier "
              "adds `-DCODEGEN_PORTABLE`, the threaded one `-fopenmp`)",
              f"- Libraries: {info['libs']}",
              f"- Load average at start / end: {info['load0']} / {info['load1']}; other processes' CPU use per "
              f"measured round (/proc/stat): at most {info['foreign']:.2f} cores, {info['again']} rounds measured "
              f"again (limit {FOREIGN_LIMIT} cores)" + ("" if info["quiet"] else
                                                         " -- **the machine was not quiet; figures are noisy**"),
              "- Peak (bench/peak.c, best of the runs at start and end): "
              + ", ".join(f"{isa} {acc} acc {t}T {v:.1f}" for (isa, acc, t), v in sorted(peaks.items()))
              + f" GFLOP/s. **1 core: {p1:.1f} GFLOP/s, 2 cores: {p2:.1f}**",
              f"- Timing: median per-call time of {info['rounds']} interleaved rounds (one sample per implementation "
              f"per round, a sample lasts >= {SAMPLE_S * 1e3:.0f} ms); ours called through cffi with 64-byte aligned "
              "buffers; torch F.conv2d in inference_mode (NCHW and channels_last, the faster shown); onnxruntime "
              "run_with_iobinding (NCHW, intra_op_num_threads=1, ORT_ENABLE_ALL).",
              "- Every output was checked against the NumPy reference before timing (ours < 1e-5, peers < 1e-4 "
              "relative error).",
              "- GFLOP/s = 2*Hout*Wout*Cout*(Cin/groups)*Kh*Kw / time (bias not counted).", ""]
    lines += ["## One thread", "",
              "| shape | MFLOP | ours SIMD GFLOP/s | % of peak | ours portable | % of peak | torch 1T | ort 1T | "
              "best peer | SIMD / best peer | portable / best peer |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    goals = []
    for r in results:
        s, im = r.shape, r.impls
        ours, port = gflops(s, im["simd"].median), gflops(s, im["portable"].median)
        t1 = min(("nchw", "cl"), key=lambda f: im[f"torch1-{f}"].median)
        torch1, ort1 = gflops(s, im[f"torch1-{t1}"].median), gflops(s, im["ort"].median)
        best = max(torch1, ort1)
        lines.append(f"| {s.key}: {s.label} | {s.flop / 1e6:.1f} | {ours:.1f} | {ours / p1:.0%} | {port:.1f} | "
                     f"{port / p1:.0%} | {torch1:.1f} ({t1}) | {ort1:.1f} | {best:.1f} | **{ours / best:.2f}** | "
                     f"{port / best:.2f} |")
        goals.append((f"SIMD 1T ours/best-peer >= 1.0 on {s.key}", ours / best >= 1.0, f"{ours / best:.2f}"))
        if s.key in "abch":
            goals.append((f"SIMD 1T >= 80% of peak on {s.key}", ours / p1 >= 0.8, f"{ours / p1:.0%}"))
        if s.key in "abc":
            goals.append((f"portable 1T >= 50% of peak on {s.key}", port / p1 >= 0.5, f"{port / p1:.0%}"))
    if any(gflops(r.shape, r.impls["simd"].median) > p1 for r in results):
        lines += ["", "(A figure a little above 100% of peak: the peak is measured too, at the start and the end of "
                  "the run, and the core's clock varies by about 1% between measurements.)"]
    lines += ["", "## Two threads (OpenMP over output tiles)", "",
              "| shape | ours SIMD 2T GFLOP/s | % of 2-core peak | torch 2T | ours / torch 2T |", "|---|---|---|---|---|"]
    for r in results:
        s, im = r.shape, r.impls
        ours2 = gflops(s, im["simd-omp"].median)
        t2 = min(("nchw", "cl"), key=lambda f: im[f"torch2-{f}"].median)
        torch2 = gflops(s, im[f"torch2-{t2}"].median)
        lines.append(f"| {s.key} | {ours2:.1f} | {ours2 / p2:.0%} | {torch2:.1f} ({t2}) | **{ours2 / torch2:.2f}** |")
        if s.key in "abcd":
            goals.append((f"2T ours/torch-2T >= 1.0 on {s.key}", ours2 / torch2 >= 1.0, f"{ours2 / torch2:.2f}"))
    lines += ["", "## Per-call median times (ms)", "",
              "| shape | ours SIMD | ours portable | ours 2T | torch1 NCHW | torch1 CL | torch2 NCHW | torch2 CL | ort1 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        im = r.impls
        cells = [im[k].median * 1e3 for k in ("simd", "portable", "simd-omp", "torch1-nchw", "torch1-cl",
                                              "torch2-nchw", "torch2-cl", "ort")]
        lines.append(f"| {r.shape.key} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    lines += ["", "## Kernels (generation-time choice per shape)", "",
              "Tiles are pixels x channels; edge = share of tiles that read padding or are a row's short last "
              "tile (they take the slower _edge path); pixel pad = lanes computed past the row's end.", "",
              "| shape | tiles |", "|---|---|"]
    lines += [f"| {r.shape.key} | {r.tiles} |" for r in results]
    if nets:
        lines += ["", "## Whole networks (batch 1, per call)", "",
                  "| network | MACs | ours SIMD 1T (us) | ours portable 1T (us) | ours SIMD 2T (us) | onnxruntime 1T "
                  "(us) | ort / ours SIMD (speed-up) |", "|---|---|---|---|---|---|---|"]
        for n in nets:
            im = n.impls
            lines.append(f"| {n.name} | {n.macs:,} | {im['simd'].median * 1e6:.1f} | {im['portable'].median * 1e6:.1f} | "
                         f"{im['simd-omp'].median * 1e6:.1f} | {im['ort'].median * 1e6:.1f} | "
                         f"**{im['ort'].median / im['simd'].median:.2f}x** |")
            if n.name == "lenet":
                goals.append(("LeNet whole network faster than onnxruntime per call",
                              im["simd"].median < im["ort"].median,
                              f"{im['ort'].median / im['simd'].median:.2f}x"))
    lines += ["", "## Goals (issue 5)", "", "| goal | status | value |", "|---|---|---|"]
    lines += [f"| {g} | {yes(ok)} | {v} |" for g, ok, v in goals]
    met = sum(ok for _, ok, _ in goals)
    lines += ["", f"{met} of {len(goals)} goals met.", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--shapes", default="".join(s.key for s in SHAPES))
    ap.add_argument("--no-networks", action="store_true")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    os.environ.setdefault("CODEGEN_CACHE", tempfile.mkdtemp(prefix="codegen-bench-"))
    import onnx
    import onnxruntime
    import torch
    info = dict(date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), cpu=cpu_model(), isa=isa_flags(),
                cc=compiler_identity(os.environ.get("CC") or "cc").split(": ", 1)[-1],
                libs=f"torch {torch.__version__} ({onednn_version(torch)}), onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, "
                     f"Python {platform.python_version()}",
                load0=loadavg(), rounds=args.rounds)
    tmp = Path(tempfile.mkdtemp(prefix="codegen-peak-"))
    print(f"load average {info['load0']}; measuring the FMA peak ...", flush=True)
    peaks0 = measure_peak(tmp)
    print(f"  1 core {peak_of(peaks0, 1):.1f} GFLOP/s, 2 cores {peak_of(peaks0, 2):.1f}", flush=True)
    results = []
    for s in SHAPES:
        if s.key not in args.shapes:
            continue
        r = bench_shape(s, args.rounds)
        im = r.impls
        print(f"  {s.key}: ours SIMD {gflops(s, im['simd'].median):6.1f}  portable {gflops(s, im['portable'].median):6.1f}"
              f"  2T {gflops(s, im['simd-omp'].median):6.1f}  torch1 "
              f"{gflops(s, min(im['torch1-nchw'].median, im['torch1-cl'].median)):6.1f}  torch2 "
              f"{gflops(s, min(im['torch2-nchw'].median, im['torch2-cl'].median)):6.1f}  ort1 "
              f"{gflops(s, im['ort'].median):6.1f} GFLOP/s  (foreign load {r.foreign:.2f})", flush=True)
        results.append(r)
    nets = []
    if not args.no_networks:
        for path in (ROOT / "examples" / "lenet.py", ROOT / "examples" / "resnet_like.py"):
            n = bench_network(path, args.rounds)
            print(f"  {n.name}: ours {n.impls['simd'].median * 1e6:.1f} us, ort {n.impls['ort'].median * 1e6:.1f} us",
                  flush=True)
            nets.append(n)
    peaks1 = measure_peak(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    everything = [*results, *nets]
    info.update(load1=loadavg(), elapsed=time.perf_counter() - start,
                foreign=max((r.foreign for r in everything), default=0.0),
                again=sum(r.again for r in everything))
    info["quiet"] = info["foreign"] <= FOREIGN_LIMIT and float(info["load0"].split()[0]) < 0.5
    text = report(results, nets, peaks0, peaks1, info)
    print()
    print(text)
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"written to {args.output}")


if __name__ == "__main__":
    main()
