"""make bench-int8: our int8 convolution kernels (codegen/ops/int8simd.py) against onnxruntime's
int8 execution of the same convolution, on the bench shapes a-i of bench/run.py (batch 1, one thread).

For each shape: the one-Conv ONNX model of bench/run.py (random weights, seeded) is quantized by
onnxruntime's ``quantize_static`` (per-channel int8 weights, calibrated on 16 standard normal inputs)
four ways: QDQ and QOperator (QLinearConv) formats, int8 and uint8 activations. The int8 QDQ file is
imported by codegen with its own scales and zero points and built for this machine (host flags:
-O3 -march=native: the AVX-512 VNNI kernels where the CPU has them). Outputs are checked first:
ours against the integer reference (0 differing outputs), every onnxruntime variant within one
quantization step of ours. Then, interleaved rounds (one sample per implementation per round, a
sample lasting at least 15 ms), medians of:

- ours int8: the float API (quantize the input, the int8 convolution, dequantize), as onnxruntime's
  float-in/float-out quantized models do; and the int8 API alone (int8 in, int8 out);
- onnxruntime int8: the fastest of its four quantized models for the shape (named in the table);
- ours float32 (the float kernels) and onnxruntime float32, for reference; our int8 API compiled
  with -mno-avx512f (the AVX2 kernels; its output checked equal to the AVX-512 build's).

onnxruntime: intra_op_num_threads=1, ORT_ENABLE_ALL, io-binding. Rounds during which other processes
used more than 0.15 cores are measured again (up to 3 times); the load average is recorded.
Writes bench/results/int8_x86.md.

    python bench/int8_host.py [--rounds N] [--shapes abc...] [--output PATH]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import codegen  # noqa: E402
from codegen.compiler import compiler_identity  # noqa: E402
from codegen.emit.c import c_kernels  # noqa: E402
from codegen.ops.tiling import ISAS  # noqa: E402
from codegen.library import aligned_empty  # noqa: E402
from codegen.quant.reference import predict_int8  # noqa: E402
from run import SHAPES, Impl, conv_onnx, cpu_model, isa_flags, loadavg, ort_call, ort_session, timed_rounds  # noqa: E402

RESULTS = HERE / "results" / "int8_x86.md"
TARGET = 1.2


class Ours:
    """A generated library's float API (or its int8 API) on aligned buffers, called through cffi."""

    def __init__(self, lib, x_hwc: np.ndarray, int8: bool = False):
        self.lib = lib
        api = lib._api
        self.ws = lib._workspace()
        if int8:
            api.ffi.cdef(f"int {lib.prefix}_predict_int8_ws(const int8_t *in, int8_t *out, void *workspace);",
                         override=True)
            self.x = aligned_empty(x_hwc.size).view(np.int8)
            self.x[:] = lib.plan.quant.input.quantize(x_hwc).ravel()
            self.y = aligned_empty(lib.out_floats).view(np.int8)
            self.fn = api.value(f"{lib.prefix}_predict_int8_ws")
            self.args = (api.ffi.cast("const int8_t *", self.x.ctypes.data), api.ffi.cast("int8_t *", self.y.ctypes.data),
                         api.ffi.cast("void *", self.ws.ctypes.data))
        else:
            self.x = aligned_empty(x_hwc.nbytes).view(np.float32)
            self.x[:] = x_hwc.ravel()
            self.y = aligned_empty(lib.out_floats * 4).view(np.float32)
            self.fn = lib._predict_ws
            self.args = (api.ffi.cast("const float *", self.x.ctypes.data), api.ffi.cast("float *", self.y.ctypes.data),
                         api.ffi.cast("void *", self.ws.ctypes.data))

    def __call__(self):
        if self.fn(*self.args) != 0:
            raise RuntimeError(f"{self.lib.prefix}: predict failed")

    def output(self) -> np.ndarray:
        self()
        return self.y.copy()


def quantize(float_path: Path, dst: Path, shape, fmt: str, act: str) -> Path:
    from onnxruntime import quantization as q
    rng = np.random.default_rng(3)
    batches = iter([{"x": rng.standard_normal((1, shape.c, shape.h, shape.w)).astype(np.float32)} for _ in range(16)])

    class Reader(q.CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q.quantize_static(str(float_path), str(dst), Reader(),
                          quant_format=q.QuantFormat.QDQ if fmt == "QDQ" else q.QuantFormat.QOperator,
                          per_channel=True, weight_type=q.QuantType.QInt8,
                          activation_type=q.QuantType.QInt8 if act == "s8" else q.QuantType.QUInt8)
    return dst


def int8_io(path: Path, dst: Path) -> tuple[Path, tuple, tuple]:
    """The quantized model with int8 (or uint8) input and output: its first QuantizeLinear and last
    DequantizeLinear removed (onnxruntime then runs QLinearConv from int8 to int8). Returns the file
    and the removed nodes' (scale, zero point) of the input and the output."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    qin = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == g.input[0].name)
    dqout = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] == g.output[0].name)
    pin = (inits[qin.input[1]], inits[qin.input[2]])
    pout = (inits[dqout.input[1]], inits[dqout.input[2]])
    in_shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    out_shape = [d.dim_value for d in g.output[0].type.tensor_type.shape.dim]
    dtype = onnx.helper.np_dtype_to_tensor_dtype(pin[1].dtype)
    new_in = onnx.helper.make_tensor_value_info(qin.output[0], dtype, in_shape)
    new_out = onnx.helper.make_tensor_value_info(dqout.input[0], onnx.helper.np_dtype_to_tensor_dtype(pout[1].dtype),
                                                 out_shape)
    g.node.remove(qin)
    g.node.remove(dqout)
    del g.input[:]
    del g.output[:]
    g.input.append(new_in)
    g.output.append(new_out)
    onnx.save(model, str(dst))
    return dst, pin, pout


def ort_call_int8(sess, x: np.ndarray):
    """As run.ort_call for an int8 (or uint8) input and output."""
    xin = aligned_empty(x.nbytes).view(x.dtype).reshape(x.shape)
    xin[:] = x
    y = sess.run(None, {sess.get_inputs()[0].name: xin})[0]
    yout = aligned_empty(y.nbytes).view(y.dtype).reshape(y.shape)
    binding = sess.io_binding()
    binding.bind_input(sess.get_inputs()[0].name, "cpu", 0, x.dtype, list(xin.shape), xin.ctypes.data)
    binding.bind_output(sess.get_outputs()[0].name, "cpu", 0, y.dtype, list(yout.shape), yout.ctypes.data)

    def call(keep=(xin, yout)):
        sess.run_with_iobinding(binding)

    def output():
        call()
        return yout.copy()
    return call, output


PEAK_C = """#define _POSIX_C_SOURCE 200112L
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#define DP(a) __asm__("vpdpbusd %2, %1, %0" : "+v"(a) : "v"(x), "v"(w))
int main(void)
{
    const __m512i x = _mm512_set1_epi32(0x01010101), w = _mm512_set1_epi32(0x02020202);
    __m512i a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, a8 = x, a9 = x, a10 = x, a11 = x;
    __m512i a12 = w, a13 = w, a14 = w, a15 = w, a16 = w, a17 = w, a18 = w, a19 = w, a20 = w, a21 = w, a22 = w, a23 = w;
    struct timespec t0, t1;
    const long n = 20000000;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; ++k) {
        DP(a0); DP(a1); DP(a2); DP(a3); DP(a4); DP(a5); DP(a6); DP(a7); DP(a8); DP(a9); DP(a10); DP(a11);
        DP(a12); DP(a13); DP(a14); DP(a15); DP(a16); DP(a17); DP(a18); DP(a19); DP(a20); DP(a21); DP(a22); DP(a23);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    a0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)), _mm512_add_epi32(a4, a5));
    a6 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a6, a7), _mm512_add_epi32(a8, a9)), _mm512_add_epi32(a10, a11));
    a12 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a12, a13), _mm512_add_epi32(a14, a15)), _mm512_add_epi32(a16, a17));
    a18 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a18, a19), _mm512_add_epi32(a20, a21)), _mm512_add_epi32(a22, a23));
    printf("%.3f %d\\n", n * 24.0 * 64 / ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9) * 1e-9,
           _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a6), _mm512_add_epi32(a12, a18))));
    return 0;
}
"""


def vnni_peak(tmp: Path) -> float | None:
    """One core's VPDPBUSD (zmm) throughput in GMAC/s: 24 independent chains, best of 3 runs; None
    without AVX-512 VNNI."""
    import subprocess
    (tmp / "peak.c").write_text(PEAK_C)
    proc = subprocess.run(["cc", "-O2", "-march=native", "peak.c", "-o", "peak"], cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return max(float(subprocess.run([str(tmp / "peak")], capture_output=True, text=True, check=True).stdout.split()[0])
               for _ in range(3))


def kernel_of(lib) -> str:
    k = c_kernels(lib.plan, tuple(ISAS))[0]
    if k is None:
        return "portable C (no SIMD int8 kernel for this layer)"
    if k[0].kind == "int8_dw_simd":
        return f"AVX-512 VNNI depthwise, {k[0].nvd} x 16 channels per step"
    t = k[0].tiles["avx512"]
    return f"AVX-512 VNNI {t.p} px x {16 * t.nv} filters, K = {k[0].k}"


def bench_shape(shape, rounds: int, tmp: Path) -> dict:
    rng = np.random.default_rng(0)
    cg = shape.c // shape.g
    w = (rng.standard_normal((shape.f, cg, shape.k, shape.k)) * np.sqrt(2.0 / (cg * shape.k * shape.k))).astype(np.float32)
    b = (rng.standard_normal(shape.f) * 0.1).astype(np.float32)
    float_path = tmp / f"{shape.key}_float.onnx"
    float_path.write_bytes(conv_onnx(shape, w, b))
    models = {f"{fmt} {act}": quantize(float_path, tmp / f"{shape.key}_{fmt}_{act}.onnx", shape, fmt, act)
              for fmt in ("QDQ", "QOperator") for act in ("s8", "u8")}

    # ours: the int8 QDQ model imported with its own parameters; the float model for the float kernels
    net8 = codegen.import_onnx(models["QDQ s8"], name=f"i8_{shape.key}")
    lib8 = codegen.build(net8, calibration=net8.onnx.calibration, write=False)
    lib8_avx2 = codegen.build(net8, calibration=net8.onnx.calibration, write=False, extra_flags=["-mno-avx512f"])
    net32 = codegen.import_onnx(float_path, name=f"f32_{shape.key}")
    lib32 = codegen.build(net32, write=False)
    x_nchw = np.random.default_rng(1).standard_normal((1, shape.c, shape.h, shape.w)).astype(np.float32)
    x_hwc = net8.onnx.to_input(x_nchw)[0]

    ours8, ours8_raw, ours32 = Ours(lib8, x_hwc), Ours(lib8, x_hwc, int8=True), Ours(lib32, x_hwc)
    ours8_avx2 = Ours(lib8_avx2, x_hwc, int8=True)
    got = ours8.output()
    assert np.array_equal(ours8_avx2.output(), ours8_raw.output()), f"{shape.key}: the AVX2 build differs"
    differing = int(np.sum(got != predict_int8(lib8.plan, x_hwc[None])[0].ravel()))
    raw_same = bool(np.array_equal(ours8_raw.output(), lib8.plan.quant.outputs[0].quantize(got)))
    assert differing == 0, f"{shape.key}: {differing} outputs differ from the integer reference"
    assert raw_same, f"{shape.key}: the int8 API's output is not the float API's"
    hwc = (1, *lib8.plan.outputs[0].shape)
    ref = net8.onnx.from_output(lib8.plan.quant.outputs[0].dequantize(
        lib8.plan.quant.outputs[0].quantize(got)).reshape(hwc)).reshape(-1)
    step = lib8.plan.quant.outputs[0].scale
    want32 = net32.predict(x_hwc[None].astype(np.float64)).reshape(-1)
    float_err = float(np.max(np.abs(ours32.output() - want32)) / max(np.max(np.abs(want32)), 1e-30))
    assert float_err < 1e-4, f"{shape.key}: our float kernel is {float_err:.1e} from the reference"

    impls = {"ours int8": Impl("ours int8", ours8), "ours int8 API": Impl("ours int8 API", ours8_raw),
             "ours int8 API AVX2": Impl("ours int8 API AVX2", ours8_avx2),
             "ours f32": Impl("ours f32", ours32)}
    steps = {}
    for name, path in models.items():
        call, output = ort_call(ort_session(path.read_bytes()), x_nchw)
        steps[name] = float(np.max(np.abs(output().reshape(-1) - ref)) / step)
        assert steps[name] <= 1.0 + 1e-4, f"{shape.key}: onnxruntime {name} is {steps[name]:.2f} steps from ours"
        impls[f"ort {name}"] = Impl(f"ort {name}", call)
        io_path, (sin, zin), (sout, zout) = int8_io(path, tmp / f"{path.stem}_io.onnx")
        info = np.iinfo(zin.dtype)
        xq = np.clip(np.round(x_nchw / sin) + zin.astype(np.int64), info.min, info.max).astype(zin.dtype)
        call, output = ort_call_int8(ort_session(io_path.read_bytes()), xq)
        yq = (output().astype(np.int64).reshape(-1) - int(zout)) * float(sout)
        steps[f"{name} io"] = float(np.max(np.abs(yq - ref)) / step)
        assert steps[f"{name} io"] <= 1.0 + 1e-4, f"{shape.key}: onnxruntime {name}, int8 I/O, is {steps[f'{name} io']:.2f} steps from ours"
        impls[f"ort {name} io"] = Impl(f"ort {name} io", call)
    call, output = ort_call(ort_session(float_path.read_bytes()), x_nchw)
    ort32 = output().reshape(-1)
    assert np.max(np.abs(net32.onnx.from_output(want32.reshape(hwc)).reshape(-1) - ort32)) <= 1e-4 * np.max(np.abs(ort32))
    impls["ort f32"] = Impl("ort f32", call)

    worst, again = timed_rounds(list(impls.values()), rounds)
    med = {k: v.median for k, v in impls.items()}
    best_ort = min(models, key=lambda n: med[f"ort {n}"])
    best_io = min(models, key=lambda n: med[f"ort {n} io"])
    return dict(shape=shape, med=med, best_ort=best_ort, best_io=best_io, steps=steps, foreign=worst, again=again,
                kernel=kernel_of(lib8), float_err=float_err)


def share(s, ours: float, ort: float, peak: float | None) -> str:
    """The multiply-accumulates per second of ours and onnxruntime's as shares of the VPDPBUSD peak
    (direct convolutions; a depthwise one is not made of VPDPBUSD)."""
    if peak is None or s.g > 1:
        return "-"
    macs = s.flop / 2
    return f"{macs / ours * 1e-9 / peak:.0%} / {macs / ort * 1e-9 / peak:.0%}"


def table(results: list[dict], peak: float | None) -> list[str]:
    lines = ["| shape | ours int8, float I/O (us) | ORT int8, float I/O (us) | **ORT / ours** | ours int8 API (us) | "
             "ORT int8 I/O (us) | **ORT / ours** | ours f32 (us) | ORT f32 (us) | ours int8 API, AVX2 build (us) | "
             "ORT steps from ours (max) | ours / ORT int8 API, share of the VPDPBUSD peak | our kernel |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        s, m = r["shape"], r["med"]
        ort8, io8 = m[f"ort {r['best_ort']}"], m[f"ort {r['best_io']} io"]
        lines.append(f"| {s.key}: {s.label} | {m['ours int8'] * 1e6:,.1f} | {ort8 * 1e6:,.1f} ({r['best_ort']}) | "
                     f"**{ort8 / m['ours int8']:.2f}** | {m['ours int8 API'] * 1e6:,.1f} | {io8 * 1e6:,.1f} ({r['best_io']}) | "
                     f"**{io8 / m['ours int8 API']:.2f}** | {m['ours f32'] * 1e6:,.1f} | {m['ort f32'] * 1e6:,.1f} | "
                     f"{m['ours int8 API AVX2'] * 1e6:,.1f} | "
                     f"{max(r['steps'].values()):.2f} | {share(s, m['ours int8 API'], io8, peak)} | {r['kernel']} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--shapes", default="".join(s.key for s in SHAPES))
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("CODEGEN_CACHE", tempfile.mkdtemp(prefix="codegen-bench-int8-"))
    import onnxruntime
    tmp = Path(tempfile.mkdtemp(prefix="codegen-int8-"))
    info = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), cpu=cpu_model(),
                isa=isa_flags(), cc=compiler_identity(os.environ.get("CC") or "cc").split(": ", 1)[-1],
                ort=onnxruntime.__version__, load0=loadavg(), cores=os.cpu_count())
    print(f"load average {info['load0']}", flush=True)
    peaks = [vnni_peak(tmp)]
    if peaks[0]:
        print(f"VPDPBUSD peak {peaks[0]:.1f} GMAC/s", flush=True)
    results = []
    for s in SHAPES:
        if s.key not in args.shapes:
            continue
        r = bench_shape(s, args.rounds, tmp)
        m = r["med"]
        ort8, io8 = m["ort " + r["best_ort"]], m[f"ort {r['best_io']} io"]
        print(f"  {s.key}: ours int8 {m['ours int8'] * 1e6:9.1f} us, ORT int8 ({r['best_ort']}) {ort8 * 1e6:9.1f} us, "
              f"ratio {ort8 / m['ours int8']:.2f}; int8 I/O ours {m['ours int8 API'] * 1e6:9.1f}, ORT ({r['best_io']}) "
              f"{io8 * 1e6:9.1f}, ratio {io8 / m['ours int8 API']:.2f}; f32 ours {m['ours f32'] * 1e6:9.1f}, ORT {m['ort f32'] * 1e6:9.1f}; "
              f"foreign {r['foreign']:.2f} cores",
              flush=True)
        results.append(r)
    info["load1"] = loadavg()
    peaks.append(vnni_peak(tmp))
    peak = max(peaks) if all(peaks) else None
    lines = table(results, peak)
    print("\n".join(lines))
    miss = [r["shape"].key for r in results if r["med"][f"ort {r['best_ort']}"] / r["med"]["ours int8"] < TARGET
            or r["med"][f"ort {r['best_io']} io"] / r["med"]["ours int8 API"] < TARGET]
    doc = [
        "# int8 convolutions on the host: ours against onnxruntime",
        "",
        "Generated by `python bench/int8_host.py` (`make bench-int8`); see the script's docstring for the method.",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cpu']} ({info['isa']}), {info['cores']} cores shared with other users; "
        f"load average at the start {info['load0']}, at the end {info['load1']}",
        f"- compiler: {info['cc']}, host flags -O3 -march=native -mprefer-vector-width=512",
        f"- onnxruntime {info['ort']} (CPUExecutionProvider, intra_op_num_threads=1, ORT_ENABLE_ALL, io-binding), "
        f"Python {platform.python_version()}",
        f"- batch 1, one thread, {args.rounds} interleaved rounds, medians; most cores other processes used "
        f"during a kept round: {max(r['foreign'] for r in results):.2f}; rounds measured again: "
        f"{sum(r['again'] for r in results)}",
        "- one core's VPDPBUSD (zmm) peak, 24 independent chains (bench/int8_host.py PEAK_C), at the start and the end: "
        + (" and ".join(f"{p:.1f}" for p in peaks) + " GMAC/s" if peak else "not measured (no AVX-512 VNNI)"),
        "",
        "Checked before timing: our int8 output equals the integer reference (0 differing outputs); every "
        "onnxruntime int8 model is within one quantization step of ours (largest difference in the table).",
        "'ours int8' is the float API (quantize, int8 convolution, dequantize), as onnxruntime's quantized "
        "models (float in and out) are; 'ours int8 API' the int8 convolution alone. 'ORT / ours' > 1: ours is faster "
        f"(target >= {TARGET}).",
        "",
        *lines,
        "",
        f"Shapes below the target of {TARGET}x: {', '.join(miss) if miss else 'none'}.",
        "",
        "Why a shape can miss it: where onnxruntime runs VPDPBUSD near the core's peak (the share column: the "
        "3x3 ResNet shapes), an implementation of the same multiply-accumulates is at most 1 / share times "
        "faster (share 0.91: 1.10x). A 1x1 convolution of few input channels (e) spends as much on the "
        "requantization as on the products: 16 VPDPBUSD per 16 outputs against about 15 instructions of the "
        "exact integer requantization (TFLite's two roundings; onnxruntime requantizes in float, fewer "
        "instructions and another rounding, hence its one-step differences). With float input and output, "
        "quantizing the input and dequantizing the output cost about as much as a depthwise convolution (i).",
        "",
    ]
    if not args.output.parent.exists():
        args.output.parent.mkdir(parents=True)
    args.output.write_text("\n".join(doc))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
