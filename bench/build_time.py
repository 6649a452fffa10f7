"""How long `codegen build` takes on a large model: ResNet-18 (224x224x3, 46.7 MB of weights).

Runs the whole command (load, plan, render, write, compile, load, verify) in a fresh build cache,
once with the weights as a binary file included by the assembler (the default above 4 MiB) and
once with the weights written as C literals (the form below that size), three times each,
interleaved, and writes bench/results/build_time.md with the medians and the machine.

    python bench/build_time.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NET = HERE / "nets" / "resnet18.py"
RESULTS = HERE / "results" / "build_time.md"

# the same command, with the C-literal form forced (codegen.emit.common.BLOB_BYTES raised)
LITERALS = ("import sys, codegen.emit.common as c; c.BLOB_BYTES = float('inf'); "
            "from codegen.cli import main; sys.argv = ['codegen', *sys.argv[1:]]; main(obj={})")


def run(form: str, out: Path, cache: Path) -> tuple[float, str]:
    cmd = ([sys.executable, "-m", "codegen.cli"] if form == "blob" else [sys.executable, "-c", LITERALS])
    cmd += ["build", str(NET), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CODEGEN_CACHE": str(cache)})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{form}: codegen build failed:\n{proc.stdout}\n{proc.stderr}")
    verdict = next(line for line in proc.stdout.splitlines() if line.startswith("verification:"))
    return seconds, verdict


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {cc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"blob": [], "literals": []}
    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for form in times:
                seconds, verdicts[form] = run(form, Path(tmp) / f"{form}{r}", Path(tmp) / f"cache-{form}{r}")
                times[form].append(seconds)
                print(f"{form:<9} round {r + 1}: {seconds:.1f} s  {verdicts[form]}", flush=True)
    lines = [f"# `codegen build` of ResNet-18 ({datetime.date.today()})", "",
             f"Machine: {machine()}. Command: `codegen build bench/nets/resnet18.py --out <tmp>` in a fresh build "
             f"cache (load, plan, render, write, compile with `-O3 -march=native`, load, verify on 3 inputs); "
             f"{args.rounds} rounds, interleaved; `python bench/build_time.py`.", "",
             "| weights as | median (s) | runs (s) | verification |", "|---|---|---|---|"]
    for form, label in (("blob", "binary file + `.incbin` (default above 4 MiB)"), ("literals", "C hexadecimal literals")):
        lines.append(f"| {label} | {statistics.median(times[form]):.1f} | "
                     f"{', '.join(f'{t:.1f}' for t in times[form])} | {verdicts[form]} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
