"""Golden snapshots of the emitted files: every change to generated code is deliberate.

The snapshots under ``tests/golden/<case>/`` are the files codegen renders for the examples
(C for every example, CUDA for two, a ``--device cortex-m4`` build for one, int8 C and CUDA for
one, calibrated on seeded random images), compared byte for
byte by ``tests/test_golden.py``. Every file is stored as it is (a failing test shows the diff),
except weights files over ``FULL_LIMIT`` bytes (megabytes of hexadecimal literals), which are
stored as their SHA-256 and length in ``<file>.sha256``.

Update them, after checking that the change is intended, with::

    make golden          # or: python tests/golden.py --update
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codegen.targets import make_target  # noqa: E402
from codegen.emit import render_files  # noqa: E402
from codegen.emit.dialect import DIALECTS  # noqa: E402
from codegen.netfile import load  # noqa: E402
from codegen.plan import make_plan  # noqa: E402
from codegen.quant.calibrate import calibrate  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
FULL_LIMIT = 256 * 1024
EXAMPLES = ["conv_options", "grouped", "lenet", "lenet5", "mobilenetv2", "resnet_graph", "resnet_like"]
# (case name, example, target, device); a target '<target>-int8' is int8 code (see render_case)
CASES = ([(f"c/{e}", e, "c", None) for e in EXAMPLES]
         + [(f"cuda/{e}", e, "cuda", None) for e in ("lenet", "resnet_graph")]
         + [("cortex-m4/lenet", "lenet", "c", "cortex-m4")]
         + [(f"{t}-int8/lenet", "lenet", f"{t}-int8", None) for t in ("c", "cuda")])
CALIBRATION_IMAGES = 16


def render_case(example: str, target: str, device: str | None) -> dict[str, str]:
    """The files codegen writes for ``examples/<example>.py`` (as ``codegen build`` names the source);
    for a target '<target>-int8', int8 code calibrated (minmax) on 16 standard normal images of seed 0."""
    source = f"examples/{example}.py"
    net = load(ROOT / source)
    options = dict(source=source)
    if device is not None:
        options.update(make_target("c", device=device).render_options())
    target, _, dtype = target.partition("-")
    calibration = None
    if dtype == "int8":
        images = np.random.default_rng(0).standard_normal((CALIBRATION_IMAGES, *net.input_shape))
        calibration = calibrate(net, images.astype(np.float32))
    plan = make_plan(net, calibration=calibration, **DIALECTS[target].plan_options())   # as codegen build plans
    return render_files(net, plan, target, options)


def digest(content: str | bytes) -> str:
    data = content if isinstance(content, bytes) else content.encode()
    return f"sha256 {hashlib.sha256(data).hexdigest()} bytes {len(data)}\n"


def stored(files: dict[str, str]) -> dict[str, str]:
    """{snapshot file name: content}: files as they are, large weights files as a digest."""
    out = {}
    for name, text in files.items():
        if isinstance(text, str) and (not name.endswith("_weights.c") or len(text.encode()) <= FULL_LIMIT):
            out[name] = text
        else:
            out[f"{name}.sha256"] = digest(text)
    return out


def update() -> None:
    if GOLDEN.exists():
        shutil.rmtree(GOLDEN)
    for case, example, target, device in CASES:
        folder = GOLDEN / case
        folder.mkdir(parents=True)
        for name, text in stored(render_case(example, target, device)).items():
            (folder / name).write_bytes(text.encode())
        print(f"wrote {folder.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite every snapshot from the current code")
    args = parser.parse_args()
    if not args.update:
        parser.error("nothing to do: pass --update to rewrite the snapshots (tests/test_golden.py compares them)")
    update()
