"""Instructions per multiply-accumulate on the emulated Cortex-M boards (issue 16).

Builds single-layer networks (HWC, batch 1, each convolution followed by ReLU; float32, and int8
calibrated on 16 standard normal images) and the examples for each device, runs them under QEMU with ``-icount shift=0`` (one guest instruction per
nanosecond of virtual time; SysTick counts the instructions ``predict`` executed, see
codegen/embedded/counting.py) in a profiling build, and divides the convolution op's count by
its multiply-accumulates (for the examples: the whole inference by all of its MACs). Every
output is also checked against the NumPy reference. Counts are deterministic: the same binary
gives the same figure on every run and machine. Writes bench/results/devices.md.

    python bench/devices.py [--devices cortex-m4,cortex-m55] [--rows 3x3,1x1] [--no-write]
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
TOL = 1e-4


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="cortex-m4,cortex-m55")
    ap.add_argument("--rows", default=",".join([r[0] for r in ROWS] + [f"ex:{e}" for e in EXAMPLES]
                                               + [f"int8:{r[0]}" for r in ROWS]))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    devices = args.devices.split(",")
    keys = args.rows.split(",")
    results = {}
    for device in devices:
        for key, desc, shape, make, macs in ROWS:
            if key in keys:
                results[device, key] = measure(layer_net(key, shape, make), device, macs)
                print(f"{device:11s} {desc:55s} {results[device, key][0]:6.2f} (err {results[device, key][1]:.1e})",
                      flush=True)
        for key, desc, shape, make, macs in ROWS:
            if f"int8:{key}" in keys:
                try:
                    results[device, f"int8:{key}"] = measure_int8(layer_net(key, shape, make), device, macs)
                except BuildError as e:          # the harness's float buffers do not fit the board's RAM
                    print(f"{device:11s} int8 {desc:50s} not built: {str(e).splitlines()[-1]}", flush=True)
                    results[device, f"int8:{key}"] = (None, 0)
                    continue
                per, bad = results[device, f"int8:{key}"]
                print(f"{device:11s} int8 {desc:50s} {per:6.2f} ({bad} outputs differ)", flush=True)
        for ex in EXAMPLES:
            if f"ex:{ex}" in keys:
                net = load(ROOT / "examples" / f"{ex}.py")
                results[device, f"ex:{ex}"] = measure(net, device)
                print(f"{device:11s} example {ex:47s} {results[device, f'ex:{ex}'][0]:6.2f} "
                      f"(err {results[device, f'ex:{ex}'][1]:.1e})", flush=True)
    bad = {k: e for k, (_, e) in results.items() if (e != 0 if k[1].startswith("int8:") else not e < TOL)}
    if not args.no_write:
        write(results, devices)
    if bad:
        print(f"outputs differ from the reference: {bad}", file=sys.stderr)
        return 1
    return 0


def write(results, devices) -> None:
    cc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    lines = [
        "# Instructions per multiply-accumulate on the emulated Cortex-M boards",
        "",
        f"Measured {datetime.date.today()} on {platform.machine()} ({platform.node() or 'host'}), commit {commit}, "
        f"with `python bench/devices.py` (`make bench-devices`); {cc}; {qemu}.",
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
                lines.append(f"| {desc} | {macs:,} | {f'{before:.2f}' if before else '-'} | {after} | "
                             f"{CMSIS_NN_INT8[device][key]:.2f} | {bad} |")
            lines.append("")
    (HERE / "results" / "devices.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'results' / 'devices.md'}")


if __name__ == "__main__":
    sys.exit(main())
