"""A real trained network end to end: PyTorch -> ONNX -> codegen -> C, on handwritten digits.

    python examples/digits/run.py [--epochs 20] [--out codegen_out/digits] [--device auto|none|cortex-m4]

1. trains a small CNN with PyTorch (CPU, seeded, a few seconds) on scikit-learn's
   ``load_digits`` (1797 8x8 grayscale images, shipped with scikit-learn: no download);
2. exports it with ``torch.onnx.export`` to ``<out>/digits.onnx``;
3. imports it with ``codegen.import_onnx``, generates C into ``<out>/c/``, compiles and loads it;
4. classifies the held-out test set with PyTorch and with the generated C and prints both
   accuracies; the predicted classes must agree on every test image (exit status 1 if not);
5. with ``--device cortex-m4`` (or ``auto`` when ``codegen.embedded`` and the ARM toolchain and
   QEMU are installed), also runs the test set on the emulated Cortex-M4;
6. quantizes the network to int8 (calibrated on the training images), generates int8 C for the
   host (and the device) and prints its accuracy: it may lose at most 1 point against float
   (exit status 1 if it loses more), and the compiled int8 code must equal the integer
   reference on every test image (bit for bit).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:                 # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import codegen  # noqa: E402
from codegen.quant.reference import predict_int8  # noqa: E402

SEED = 0


def load_data():
    """Train/test split of load_digits, images scaled to [0, 1], as N x 1 x 8 x 8 float32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)


def make_model():
    import torch
    from torch import nn
    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),       # 8x8x8
        nn.MaxPool2d(2),                                                   # 4x4x8
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),     # 4x4x16
        nn.MaxPool2d(2),                                                   # 2x2x16
        nn.Flatten(),                                                      # 64, in NCHW order
        nn.Linear(64, 32), nn.ReLU(),
        nn.Linear(32, 10),
    )


def train(model, x, y, epochs: int):
    import torch
    torch.manual_seed(SEED)
    torch.set_num_threads(1)                  # bit-reproducible on CPU
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    return model


def export(model, path: Path):
    """The trained model with a softmax on top (class probabilities), as ONNX."""
    import torch
    deployed = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the TorchScript exporter's deprecation notice
        torch.onnx.export(deployed, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["probabilities"],
                          dynamic_axes={"image": {0: "N"}, "probabilities": {0: "N"}})
    with torch.no_grad():
        return deployed


def run_on_device(net, device: str, x_hwc: np.ndarray, out_dir: Path, calibration=None):
    """Class probabilities from the emulated device (and the device build), or (None, why not)."""
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        return (None, None), f"missing tool(s) {', '.join(missing)} (make toolchains installs them)"
    dev = codegen.build(net, device=device, out_dir=out_dir, calibration=calibration)
    return (dev.predict(x_hwc), dev), None


MAX_INT8_LOSS = 1.0            # accuracy points int8 may lose against float


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("codegen_out") / "digits")
    parser.add_argument("--device", default="auto", help="auto (Cortex-M4 if available), none, or a device name")
    args = parser.parse_args(argv)
    import torch

    x_train, x_test, y_train, y_test = load_data()
    t0 = time.perf_counter()
    model = train(make_model(), x_train, y_train, args.epochs)
    print(f"trained in {time.perf_counter() - t0:.1f} s ({args.epochs} epochs, {len(x_train)} training images)")

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "digits.onnx"
    deployed = export(model, onnx_path)
    with torch.no_grad():
        p_torch = deployed(torch.from_numpy(x_test)).numpy()

    net = codegen.import_onnx(onnx_path, name="digits")
    print(f"exported {onnx_path}; imported as {len(net.layers)} layers:")
    print(repr(net.Layers).rstrip())
    lib = codegen.build(net, target="c", out_dir=args.out / "c")
    print(f"generated C in {lib.out_dir}/ (arena {lib.arena_bytes:,} bytes)")
    x_hwc = net.onnx.to_input(x_test)                # N x 1 x 8 x 8 -> N x 8 x 8 x 1, once
    p_c = net.onnx.from_output(lib.predict(x_hwc))

    cal = codegen.quantize(net, net.onnx.to_input(x_train))        # int8 scales from the training images
    lib8 = codegen.build(net, target="c", out_dir=args.out / "c-int8", calibration=cal)
    print(f"generated int8 C in {lib8.out_dir}/ (arena {lib8.arena_bytes:,} bytes, weights "
          f"{lib8.plan.weight_bytes:,} bytes; float: {lib.plan.weight_bytes:,})")
    p_c8 = lib8.predict(x_hwc)
    rows = [("PyTorch (float32)", p_torch), ("generated C, host", p_c)]
    int8_rows = [("generated int8 C, host", p_c8)]
    note = None
    if args.device != "none":
        device = "cortex-m4" if args.device == "auto" else args.device
        try:
            (p_dev, _), note = run_on_device(net, device, x_hwc, args.out / device)
            (p_dev8, _), _ = run_on_device(net, device, x_hwc, args.out / f"{device}-int8", cal)
        except codegen.CodegenError as exc:
            if args.device != "auto":
                raise
            p_dev, note = None, f"the {device} build failed: {exc}"
        if p_dev is not None:
            rows.append((f"generated C, {device} (QEMU)", net.onnx.from_output(p_dev).reshape(p_torch.shape)))
            int8_rows.append((f"generated int8 C, {device} (QEMU)", p_dev8))

    ref_classes = p_torch.argmax(1)
    print(f"\ntest set: {len(y_test)} images")
    ok = True
    for label, p in rows:
        classes = p.argmax(1)
        agree = int((classes == ref_classes).sum())
        line = f"  {label:<36} accuracy {100 * np.mean(classes == y_test):5.1f}%"
        if p is not p_torch:
            line += (f"   agrees with PyTorch on {agree}/{len(classes)} images, "
                     f"max |p - p_torch| {np.abs(p - p_torch).max():.1e}")
            ok &= agree == len(classes)
        print(line)
    float_accuracy = 100 * np.mean(ref_classes == y_test)
    want = predict_int8(lib8.plan, x_hwc)[0]        # the integer reference (dequantized: equal iff the int8 are)
    for label, p in int8_rows:
        p = p.reshape(want.shape)
        accuracy = 100 * np.mean(net.onnx.from_output(p).reshape(p_torch.shape).argmax(1) == y_test)
        differing = int(np.sum(p != want))
        print(f"  {label:<36} accuracy {accuracy:5.1f}%   {accuracy - float_accuracy:+.1f} points against float; "
              f"{differing} int8 outputs differ from the integer reference")
        if float_accuracy - accuracy > MAX_INT8_LOSS or differing:
            print(f"FAIL: {label} loses more than {MAX_INT8_LOSS} point or differs from the integer reference",
                  file=sys.stderr)
            ok = False
    if note:
        print(f"  (embedded run skipped: {note})")
    if not ok:
        print("FAIL: the generated code and PyTorch disagree on some image", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
