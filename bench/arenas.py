"""Float32 arena bytes of every example and zoo model, as `codegen build --device` plans them (C, the
smallest arena: conv + pool fused, streams and in-place depthwise convolutions where they lower the
peak; the host streams only for a --max-ram goal), next to the arena with every tensor stored (no
fusion, no streaming): issue 17's figures.

    python bench/arenas.py            # prints a markdown table (bench/results/peak_ram.md holds one)

Zoo models (tests/zoo/models.py, random weights) go through ONNX (torch's legacy exporter) as in
tests/test_zoo.py.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "zoo"))

import codegen  # noqa: E402
from codegen.emit.dialect import DIALECTS  # noqa: E402
from codegen.netfile import load  # noqa: E402
from codegen.ops.stream import describe_streams  # noqa: E402
from codegen.plan import make_plan  # noqa: E402
from models import ZOO, build  # noqa: E402


def networks():
    for path in sorted((ROOT / "examples").glob("*.py")):
        yield f"`examples/{path.name}`", load(path)
    for name in ZOO:
        model, shape = build(name)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(1, *shape),), buf, dynamo=False, input_names=["x"])
        yield f"zoo `{name}`", codegen.import_onnx(buf.getvalue(), name=name)


def main() -> None:
    print("| network | every tensor stored | C plan | streamed ops | depthwise in place |")
    print("|---|---|---|---|---|")
    for label, net in networks():
        stored = make_plan(net).arena_bytes
        plan = make_plan(net, **DIALECTS["c"].plan_options())
        lines = describe_streams(plan)
        inplace = sum("in place" in line for line in lines)
        print(f"| {label} | {stored:,} | {plan.arena_bytes:,} | {len(lines) - inplace} | {inplace} |", flush=True)


if __name__ == "__main__":
    main()
