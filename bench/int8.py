"""int8 against float32 on the MLPerf Tiny reference architectures of the zoo (tests/zoo/models.py,
random weights and batch-norm statistics): flash and RAM on the Cortex-M4, and agreement with
onnxruntime's int8 execution of the same model quantized by its ``quantize_static``.

For each model: export with PyTorch's ONNX exporter, import; build float32 and int8 (calibrated
on 64 standard normal inputs, min/max) for the Cortex-M4 and run 4 inputs on the emulated board
(QEMU): the float outputs against the float reference, the int8 outputs against the integer
reference (bit for bit); print flash and RAM of both. Then quantize the ONNX file with
onnxruntime (QDQ, int8, per channel), import it with its own parameters, build int8 C for the
host, and compare with onnxruntime running the file: the share of outputs within one
quantization step and the largest difference. Writes bench/results/int8.md.

    python bench/int8.py [--models mlperf_ds_cnn,...]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "zoo"))

import codegen  # noqa: E402
from build_time import machine  # noqa: E402
from codegen.quant.reference import predict_int8  # noqa: E402
from codegen.verify import rel_error  # noqa: E402
from models import build  # noqa: E402
from test_onnx_qdq import agreement, export, quantize_qdq  # noqa: E402

MODELS = ["mlperf_ds_cnn", "mlperf_resnet8", "mlperf_mobilenet_v1_025", "mlperf_autoencoder"]
RESULTS = HERE / "results" / "int8.md"


def on_device(net, cal, x):
    """(footprint, check line) of the Cortex-M4 build, float (cal None) or int8."""
    lib = codegen.build(net, device="cortex-m4", calibration=cal, write=False)
    assert lib.checks_passed, lib.checks_report()
    got = lib.predict(x)
    if cal is None:
        check = f"relative error {max(rel_error(got[i], net.predict(x[i: i + 1].astype(np.float64))[0]) for i in range(len(x))):.1e}"
    else:
        check = f"{int(np.sum(got != predict_int8(lib.plan, x)[0]))} outputs differ from the integer reference"
    return lib.footprint, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    rows, agree = [], []
    for name in args.models.split(","):
        model, shape = build(name)
        net = codegen.import_onnx(export(model, shape), name=name)
        rng = np.random.default_rng(0)
        cal = codegen.quantize(net, rng.standard_normal((64, *net.input_shape)).astype(np.float32))
        x = rng.standard_normal((4, *net.input_shape)).astype(np.float32)
        f32, f32_check = on_device(net, None, x)
        i8, i8_check = on_device(net, cal, x)
        rows.append((name, f32, i8, f32_check, i8_check))
        print(f"{name}: flash {f32.flash:,} -> {i8.flash:,} ({f32.flash / i8.flash:.2f}x), RAM {f32.ram:,} -> "
              f"{i8.ram:,} ({f32.ram / i8.ram:.2f}x); float {f32_check}; int8 {i8_check}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = quantize_qdq(export(model, shape), shape, Path(tmp))
            differing, share, largest = agreement(path, name, shape, count=32)
        agree.append((name, share, largest, differing))
        print(f"  onnxruntime QDQ: {share:.2%} within one step, largest {largest:.2f} steps, {differing} differing "
              "from the integer reference", flush=True)

    lines = [f"# int8 against float32: MLPerf Tiny architectures ({datetime.date.today()})", "",
             f"Machine: {machine()}. Command: `python bench/int8.py`. Models: tests/zoo/models.py (random "
             "weights), exported by PyTorch's TorchScript exporter; int8 calibrated on 64 standard normal inputs "
             "(min/max). Cortex-M4: arm-none-eabi-gcc -O2, run on QEMU's mps2-an386 (4 inputs).", "",
             "## Cortex-M4 footprint", "",
             "| model | flash f32 | flash int8 | ratio | RAM f32 | RAM int8 | ratio | float check | int8 check |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, f32, i8, fc, ic in rows:
        lines.append(f"| {name} | {f32.flash:,} | {i8.flash:,} | {f32.flash / i8.flash:.2f}x | {f32.ram:,} | "
                     f"{i8.ram:,} | {f32.ram / i8.ram:.2f}x | {fc} | {ic} |")
    lines += ["", "Flash = code + weights and constants + library code; RAM = arena (int8: with the quantized "
              "input and output of the float API) + measured stack + static data (codegen/embedded/footprint.py).",
              "", "## Agreement with onnxruntime (QDQ models from `quantize_static`, per channel, int8)", "",
              "| model | outputs within one step | largest difference (steps) | differing from our integer reference |",
              "|---|---:|---:|---:|"]
    for name, share, largest, differing in agree:
        lines.append(f"| {name} | {share:.2%} | {largest:.2f} | {differing} |")
    lines += ["", "32 standard normal inputs per model. onnxruntime requantizes in float (round half to even) where "
              "the TFLite scheme we follow uses a Q31 multiplier and rounds half away from zero; its input "
              "QuantizeLinear divides by the scale where we multiply by its reciprocal. Both give differences of "
              "one step now and then."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
