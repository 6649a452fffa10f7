"""What `--report` adds to `codegen build`: the report's own time and the whole command with and without it.

For every example (host C) and for MobileNetV2 on the Cortex-M4 (with --profile), runs
`codegen build <example> --out <tmp>` and the same with `--report`, interleaved, in fresh processes
sharing one build cache (warmed first, so both compile nothing), and takes the medians of: the
time the command prints for the report (facts, page, writing; it includes importing matplotlib and
Pygments, which only a report needs), and the wall time of each whole command. Writes
bench/results/report_time.md with the machine.

    python bench/report_time.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from build_time import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "report_time.md"
CASES = [(name, []) for name in ("lenet", "lenet5", "grouped", "conv_options", "resnet_like", "resnet_graph",
                                 "mobilenetv2")] + [("mobilenetv2", ["--device", "cortex-m4", "--profile"])]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(example: str, extra: list[str], out: Path, env: dict, report: bool) -> tuple[float, float, float | None, int]:
    """(wall seconds, CPU seconds of the command and its children, the report's own seconds, page bytes)"""
    cmd = [sys.executable, "-m", "codegen.cli", "build", str(ROOT / "examples" / f"{example}.py"), "--out", str(out),
           *extra, *(["--report"] if report else [])]
    t0, c0 = time.perf_counter(), _cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    m = re.search(r"^report .* \(([\d,]+) bytes, written in ([\d.]+) s\)$", proc.stdout, re.M)
    if report and not m:
        raise SystemExit(f"no report line in:\n{proc.stdout}")
    return wall, cpu, float(m.group(2)) if m else None, int(m.group(1).replace(",", "")) if m else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CODEGEN_CACHE": str(Path(tmp) / "cache"),
               "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        for example, extra in CASES:
            out = Path(tmp) / example
            run(example, extra, out, env, report=False)               # warm the build cache
            plain, with_report, cpu_plain, cpu_report, own, size = [], [], [], [], [], 0
            for _ in range(args.rounds):
                wall, cpu, _, _ = run(example, extra, out, env, report=False)
                plain.append(wall)
                cpu_plain.append(cpu)
                wall, cpu, seconds, size = run(example, extra, out, env, report=True)
                with_report.append(wall)
                cpu_report.append(cpu)
                own.append(seconds)
            med = statistics.median
            rows.append((" ".join([example, *extra]), med(own), max(own), med(cpu_plain), med(cpu_report),
                         med(plain), med(with_report), size))
            print(rows[-1], flush=True)
    lines = [f"# What `--report` adds to `codegen build` ({datetime.date.today().isoformat()})", "",
             f"Machine: {machine()}; shared with other jobs while measured (1-minute load average "
             f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores). Command: `codegen build "
             f"examples/<example>.py --out <tmp>` with and without `--report`, {args.rounds} rounds interleaved, "
             "fresh processes, build cache warm (no compiling in either); `python bench/report_time.py`.", "",
             "*report* is the time the command prints for the report (gathering the facts, graph, plots, "
             "highlighting, rendering, writing report.json and report.html; matplotlib and Pygments are imported "
             "in a background thread while the build runs, so their import is mostly not in it). *CPU* is the user + "
             "system time of the whole command and its child processes, without and with `--report`: what the "
             "report adds, import included, however busy the machine is; *wall* the same commands' elapsed "
             "time, which on a shared machine mostly measures the other jobs. Medians.", "",
             "| example | report (s), median / slowest | CPU without / with `--report` (s) | added CPU (s) "
             "| wall without / with (s) | report.html bytes |",
             "|---|---|---|---|---|---|"]
    for name, own, worst, cpu0, cpu1, wall0, wall1, size in rows:
        lines.append(f"| {name} | {own:.2f} / {worst:.2f} | {cpu0:.2f} / {cpu1:.2f} | {cpu1 - cpu0:+.2f} "
                     f"| {wall0:.2f} / {wall1:.2f} | {size:,} |")
    most = max(rows, key=lambda r: r[4] - r[3])
    slowest = max(rows, key=lambda r: r[2])
    lines += ["", f"Largest CPU time added: {most[4] - most[3]:.2f} s ({most[0]}); slowest report: {slowest[2]:.2f} s "
              f"({slowest[0]})."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
