"""Instructions per multiply-accumulate on the emulated Cortex-M boards (issue 16).

Builds single-layer networks (HWC, batch 1, each convolution followed by ReLU; float32, and int8
calibrated on 16 standard normal images) and the examples for each device, runs them under QEMU with ``-icount shift=0`` (one guest instruction per
nanosecond of virtual time; SysTick counts the instructions ``predict`` executed, see
codegen/embedded/counting.py) in a profiling build, and divides the convolution op's count by
its multiply-accumulates (for the examples: the whole inference by all of its MACs). Every
output is also checked against the NumPy reference. Counts are deterministic: the same binary
gives the same figure on every run and machine. Writes bench/results/devices.md.

    python bench/devices.py [--devices cortex-m4,cortex-m55] [--rows 3x3,1x1] [--zoo] [--no-write]

``--zoo`` adds whole-model rows for the MLPerf Tiny reference architectures of the zoo
(tests/zoo/models.py: ResNet-8, DS-CNN, VWW MobileNetV1-0.25 with random weights, exported by
PyTorch and imported from ONNX), float32 and int8: instructions per inference, per MAC, flash and
arena; next to published figures of other engines (cycles on hardware, see ``PUBLISHED``).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import codegen  # noqa: E402
from codegen import (Network, convolution2dLayer, groupedConvolution2dLayer, imageInputLayer,  # noqa: E402
                     reluLayer)
from codegen.errors import BuildError  # noqa: E402
from codegen.netfile import load  # noqa: E402
from codegen.quant.reference import predict_int8  # noqa: E402
from codegen.verify import random_inputs, rel_error  # noqa: E402

# (key, description, input shape, conv layer factory, MACs); the "before" figures are the
# portable C tier at commit 8ff226a (shared/notes/mcu-instruction-counts.md).
ROWS = [
    ("lenet", "LeNet conv 28x28x1 -> 20, 5x5 valid", [28, 28, 1],
     lambda: convolution2dLayer(5, 20), 288_000),
    ("3x3", "16x16x16 -> 16, 3x3 pad 1", [16, 16, 16],
     lambda: convolution2dLayer(3, 16, "Padding", 1), 589_824),
    ("stem", "32x32x3 -> 16, 3x3 pad 1", [32, 32, 3],
     lambda: convolution2dLayer(3, 16, "Padding", 1), 442_368),
    ("1x1", "1x1 16x16x64 -> 64", [16, 16, 64],
     lambda: convolution2dLayer(1, 64), 1_048_576),
    ("dw", "depthwise 3x3 pad 1, 24x24x64", [24, 24, 64],
     lambda: groupedConvolution2dLayer(3, 1, "channel-wise", "Padding", 1), 331_776),
    ("dscnn", "DS-CNN stem 49x10x1 -> 64, 10x4 stride 2, pads 4 5 1 1", [49, 10, 1],
     lambda: convolution2dLayer([10, 4], 64, "Stride", 2, "Padding", [4, 5, 1, 1]), 320_000),
]
BEFORE = {"cortex-m4": {"lenet": 7.78, "3x3": 4.42, "stem": 5.00, "1x1": 4.68, "dw": 6.83, "dscnn": 5.40,
                        "ex:lenet": 7.95, "ex:mobilenetv2": 5.50, "ex:resnet_like": 4.52},
          "cortex-m55": {"lenet": 3.74, "3x3": 2.14, "stem": 2.56, "1x1": 2.16, "dw": 3.14, "dscnn": 2.23,
                         "ex:lenet": 3.84, "ex:mobilenetv2": 2.45, "ex:resnet_like": 2.10}}
# int8 (calibrated min/max on 16 standard normal images): the portable int8 code before (measured
# with this script on the main checkout, commit 8ff226a's int8 kernels), and CMSIS-NN s8 (commit
# 99f736a, shared/notes/mcu-instruction-counts.md).
BEFORE_INT8 = {"cortex-m4": {"lenet": 8.78, "3x3": 6.35, "stem": 8.68, "1x1": 6.94, "dw": 20.80, "dscnn": 6.58},
               "cortex-m55": {}}
CMSIS_NN_INT8 = {"cortex-m4": {"lenet": 5.84, "3x3": 2.33, "stem": 4.77, "1x1": 2.07, "dw": 8.04, "dscnn": 3.49},
                 "cortex-m55": {"lenet": 2.06, "3x3": 0.40, "stem": 1.42, "1x1": 0.39, "dw": 2.33, "dscnn": 0.96}}
EXAMPLES = ["lenet", "mobilenetv2", "resnet_like"]
ZOO = ["mlperf_resnet8", "mlperf_ds_cnn", "mlperf_mobilenet_v1_025"]
# Published int8 figures of other engines on hardware for the same architectures (MLPerf Tiny; the
# trained models, ours have random weights: the same layers and MACs). Cortex-M4F at 120 MHz on the
# NUCLEO-L4R5ZI; median throughput (inferences per second) from the MLPerf Tiny results
# repositories, performance/results.txt of each benchmark: cycles per inference = 120e6 / throughput.
PUBLISHED_MHZ = 120
PUBLISHED = {
    "mlperf_resnet8": [("TFLM v2.3.1, MLPerf Tiny v0.5 reference", 1.420), ("microTVM + CMSIS-NN, MLPerf Tiny v1.0 (OctoML)", 2.567)],
    "mlperf_ds_cnn": [("TFLM v2.3.1, MLPerf Tiny v0.5 reference", 5.497), ("microTVM + CMSIS-NN, MLPerf Tiny v1.0 (OctoML)", 10.019)],
    "mlperf_mobilenet_v1_025": [("TFLM v2.3.1, MLPerf Tiny v0.5 reference", 1.665),
                                ("microTVM + CMSIS-NN, MLPerf Tiny v1.0 (OctoML)", 3.320)],
}
PUBLISHED_SOURCES = ("github.com/mlcommons/tiny_results_v0.5, closed/reference/results/Nucleo-L4R5ZI/{ic,kws,vww}/"
                     "performance/results.txt (system: closed/reference/systems/Nucleo_L4R5ZI_System_Description.json: "
                     "Cortex-M4 with FPU at 120 MHz, TensorFlow Lite for Microcontrollers v2.3.1, GCC-ARM 6-2017-q2); "
                     "github.com/mlcommons/tiny_results_v1.0, closed/OctoML/results/microtvm_cmsis_nn/NUCLEO_L4R5ZI/"
                     "{ic,kws,vww}/performance/results.txt (system: closed/OctoML/systems/"
                     "system_description_NUCLEO_L4R5ZI_microtvm_cmsis_nn.json: the same board at 120 MHz, microTVM "
                     "with CMSIS-NN)")
ZOO_MARK = "## Whole models: the MLPerf Tiny architectures"
TOL = 1e-4
# int8 rows measured at a smaller size where the full one does not fit the board with the harness's
# float input and output ('same' stride-1 layers: the per-MAC figure of the same kernel)
SHRINKS = {"dw"}


def layer_net(key, shape, make):
    return Network([imageInputLayer(shape, "Name", "in"), make(), reluLayer()], seed=7, name=f"bench_{key}")


def measure(net, device, op_macs=None):
    """(instructions per MAC, relative error against the reference): the first conv op's count over
    its MACs when ``op_macs`` is given, else the whole inference over its MACs."""
    lib = codegen.build(net, device=device, write=False, profile=op_macs is not None)
    x = random_inputs(net, 1, seed=3)
    y = lib.predict(x)
    err = rel_error(y[0], net.predict(x.astype(np.float64))[0])
    count = lib.last_run.count
    if op_macs is None:
        return count.per_mac, err
    per_op = count.per_op
    name = next(n for n in per_op if "conv" in n.lower())
    return per_op[name] / op_macs, err


def measure_int8(net, device, op_macs):
    """(instructions per MAC of the convolution op, outputs that differ from the integer reference)."""
    rng = np.random.default_rng(0)
    cal = codegen.quantize(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32))
    lib = codegen.build(net, device=device, calibration=cal, write=False, profile=True)
    x = rng.standard_normal((1, *net.input_shape)).astype(np.float32)
    got, want = lib.predict(x), predict_int8(lib.plan, x)
    got = got if isinstance(got, tuple) else (got,)
    bad = sum(int(np.sum(g != w)) for g, w in zip(got, want))
    per_op = lib.last_run.count.per_op
    name = next(n for n in per_op if "conv" in n.lower())
    return per_op[name] / op_macs, bad


def measure_zoo(name, device, int8):
    """(instructions per inference, MACs, flash, arena, check) of a zoo model's whole inference;
    check: the float relative error, or the int8 outputs differing from the integer reference."""
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "zoo")]
    from models import build as zoo_model
    from test_onnx_qdq import export
    model, shape = zoo_model(name)
    net = codegen.import_onnx(export(model, shape), name=name)
    rng = np.random.default_rng(0)
    cal = codegen.quantize(net, rng.standard_normal((16, *net.input_shape)).astype(np.float32)) if int8 else None
    lib = codegen.build(net, device=device, calibration=cal, write=False)
    x = rng.standard_normal((1, *net.input_shape)).astype(np.float32)
    y = lib.predict(x)
    if int8:
        check = int(np.sum(y != predict_int8(lib.plan, x)[0]))
    else:
        check = rel_error(y[0], net.predict(x.astype(np.float64))[0])
    count = lib.last_run.count
    return count.instructions, count.macs, lib.footprint.flash, lib.footprint.arena, check


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="cortex-m4,cortex-m55")
    ap.add_argument("--rows", default=",".join([r[0] for r in ROWS] + [f"ex:{e}" for e in EXAMPLES]
                                               + [f"int8:{r[0]}" for r in ROWS]))
    ap.add_argument("--zoo", action="store_true", help="also the MLPerf Tiny models' whole inferences (slower)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    devices = args.devices.split(",")
    keys = args.rows.split(",")
    results, zoo, smaller = {}, {}, {}
    for device in devices:
        for key, desc, shape, make, macs in ROWS:
            if key in keys:
                results[device, key] = measure(layer_net(key, shape, make), device, macs)
                print(f"{device:11s} {desc:55s} {results[device, key][0]:6.2f} (err {results[device, key][1]:.1e})",
                      flush=True)
        for key, desc, shape, make, macs in ROWS:
            if f"int8:{key}" in keys:
                h, w = shape[:2]
                while True:
                    try:
                        results[device, f"int8:{key}"] = measure_int8(layer_net(key, [h, w, *shape[2:]], make), device,
                                                                      macs * h * w // (shape[0] * shape[1]))
                        break
                    except BuildError as e:      # the harness's float buffers do not fit the board's RAM
                        print(f"{device:11s} int8 {desc:50s} {h}x{w} not built: {str(e).splitlines()[-1]}", flush=True)
                        if key not in SHRINKS or h <= 8:
                            results[device, f"int8:{key}"] = (None, 0)
                            break
                        h, w = h - 2, w - 2      # a 'same' stride-1 layer: MACs in proportion to the pixels
                if (h, w) != tuple(shape[:2]):
                    smaller[device, key] = (h, w)
                per, bad = results[device, f"int8:{key}"]
                if per is not None:
                    print(f"{device:11s} int8 {desc:50s} {per:6.2f} ({bad} outputs differ)", flush=True)
        for ex in EXAMPLES:
            if f"ex:{ex}" in keys:
                net = load(ROOT / "examples" / f"{ex}.py")
                results[device, f"ex:{ex}"] = measure(net, device)
                print(f"{device:11s} example {ex:47s} {results[device, f'ex:{ex}'][0]:6.2f} "
                      f"(err {results[device, f'ex:{ex}'][1]:.1e})", flush=True)
        for name in ZOO if args.zoo else ():
            for int8 in (False, True):
                r = measure_zoo(name, device, int8)
                zoo[device, name, int8] = r
                print(f"{device:11s} {name} {'int8' if int8 else 'f32 '} {r[0]:,} instructions, {r[0] / r[1]:.2f} per MAC, "
                      f"flash {r[2]:,}, arena {r[3]:,} ({'outputs differing' if int8 else 'err'} {r[4]:.3g})", flush=True)
    bad = {k: e for k, (_, e) in results.items() if (e != 0 if k[1].startswith("int8:") else not e < TOL)}
    bad.update({k: r[4] for k, r in zoo.items() if (r[4] != 0 if k[2] else not r[4] < TOL)})
    if not args.no_write:
        write(results, devices, zoo, smaller)
    if bad:
        print(f"outputs differ from the reference: {bad}", file=sys.stderr)
        return 1
    return 0


def zoo_section(zoo, devices, commit) -> list[str]:
    lines = [ZOO_MARK, "",
             f"Measured {datetime.date.today()}, commit {commit}, with `python bench/devices.py --zoo` (what "
             "`make bench-devices` runs). tests/zoo/models.py (ResNet-8, DS-CNN, MobileNetV1-0.25 for the visual wake "
             "words, random weights and batch-norm statistics), exported by PyTorch and imported from ONNX; the "
             "whole inference of one standard normal input (float: checked against the float reference; int8: "
             "calibrated on 16 standard normal inputs, min/max, every output equal to the integer reference). "
             "Flash: code, weights and constants, library code; arena: the activations' static buffer "
             "(codegen/embedded/footprint.py).", "",
             "| model | device | MACs | f32 instructions | per MAC | flash | arena | int8 instructions | per MAC | flash | "
             "arena |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ZOO:
        for device in devices:
            if (device, name, False) not in zoo:
                continue
            f, q = zoo[device, name, False], zoo[device, name, True]
            lines.append(f"| {name} | {device} | {f[1]:,} | {f[0]:,} | {f[0] / f[1]:.2f} | {f[2]:,} | {f[3]:,} | "
                         f"{q[0]:,} | {q[0] / q[1]:.2f} | {q[2]:,} | {q[3]:,} |")
    lines += ["", "Published figures of other engines (int8, the trained models, on hardware), as cycles: "
              f"{PUBLISHED_MHZ} MHz / the median throughput. They are **cycles on a board** (with flash wait "
              "states, the benchmark harness's per-inference overhead, and for TFLM its interpreter), ours are "
              "**instructions counted under QEMU**: not directly comparable (on a Cortex-M4 a load takes 2 "
              "cycles unless pipelined with the next, SMLAD 1, a taken branch 2 to 4). "
              "No published Cortex-M55 figure for these models was found.", "",
              "| model | engine (NUCLEO-L4R5ZI, Cortex-M4F) | inferences/s | cycles per inference | cycles per MAC | "
              "ours, cortex-m4 int8: instructions per MAC |", "|---|---|---:|---:|---:|---:|"]
    for name in ZOO:
        ours = zoo.get(("cortex-m4", name, True))
        for engine, rate in PUBLISHED[name]:
            cycles = PUBLISHED_MHZ * 1e6 / rate
            macs = ours[1] if ours else None
            lines.append(f"| {name} | {engine} | {rate:.3f} | {cycles / 1e6:.2f} M | "
                         f"{f'{cycles / macs:.2f}' if macs else '-'} | {f'{ours[0] / ours[1]:.2f}' if ours else '-'} |")
    lines += ["", f"Sources: {PUBLISHED_SOURCES}.", ""]
    return lines


def write(results, devices, zoo, smaller) -> None:
    cc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    lines = [
        "# Instructions per multiply-accumulate on the emulated Cortex-M boards",
        "",
        f"Measured {datetime.date.today()} on {platform.machine()} ({platform.node() or 'host'}), commit {commit}, "
        f"with `python bench/devices.py{' --zoo' if zoo else ''}` (`make bench-devices` runs it with `--zoo`); {cc}; {qemu}.",
        "",
        "Method: each network is cross-compiled by `codegen.build(net, device=...)` (the device's flags, -O2) and "
        "run under `qemu-system-arm -icount shift=0`, where SysTick counts executed instructions exactly "
        "(40 per tick on mps2-an386, 31.25 on mps3-an547; see codegen/embedded/counting.py). Single layers: "
        "a profiling build, the convolution op's count (ReLU fused) over its MACs. Examples: the whole "
        "inference over all of its MACs. Counts are deterministic; every output was checked against the "
        "NumPy reference (relative error below 1e-4). Instructions are not cycles (a VFMA.F32 takes 3 "
        "cycles on the M4F).",
        "",
        "Before: the portable C99 tier (commit 8ff226a, shared/notes/mcu-instruction-counts.md). int8: "
        "calibrated (min/max) on 16 standard normal images, the convolution op's count over its MACs, every "
        "output equal to the integer reference; CMSIS-NN s8 from the same notes.",
        "",
    ]
    for device in devices:
        lines += [f"## {device}", "", "| layer | MACs | before | after | rel. error |", "|---|---:|---:|---:|---:|"]
        for key, desc, _, _, macs in ROWS:
            if (device, key) in results:
                per, err = results[device, key]
                lines.append(f"| {desc} | {macs:,} | {BEFORE[device][key]:.2f} | {per:.2f} | {err:.1e} |")
        for ex in EXAMPLES:
            if (device, f"ex:{ex}") in results:
                per, err = results[device, f"ex:{ex}"]
                lines.append(f"| example {ex} (whole inference) | | {BEFORE[device][f'ex:{ex}']:.2f} | {per:.2f} "
                             f"| {err:.1e} |")
        lines.append("")
        int8 = [(key, desc, macs) for key, desc, _, _, macs in ROWS if (device, f"int8:{key}") in results]
        if int8:
            lines += [f"### {device}, int8", "", "| layer | MACs | before | after | CMSIS-NN s8 | outputs differing from the "
                      "integer reference |", "|---|---:|---:|---:|---:|---:|"]
            for key, desc, macs in int8:
                per, bad = results[device, f"int8:{key}"]
                before = BEFORE_INT8[device].get(key)
                after = f"{per:.2f}" if per is not None else "not built (the harness's float buffers exceed the RAM)"
                if (device, key) in smaller:
                    h, w = smaller[device, key]
                    after += f" (at {h}x{w}: the harness's float buffers of the full size exceed the board's RAM)"
                lines.append(f"| {desc} | {macs:,} | {f'{before:.2f}' if before else '-'} | {after} | "
                             f"{CMSIS_NN_INT8[device][key]:.2f} | {bad} |")
            lines.append("")
    out = HERE / "results" / "devices.md"
    if zoo:
        lines += zoo_section(zoo, devices, commit)
    elif out.exists() and ZOO_MARK in out.read_text():      # kept from the last run with --zoo
        lines += out.read_text()[out.read_text().index(ZOO_MARK):].splitlines()
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
