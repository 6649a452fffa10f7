"""How long generating and compiling large weight arrays takes (issue 7).

Builds fully connected networks with 4, 16 and 40 MB of float32 weights and reports the
time to plan + render the sources, to compile them with the host compiler, and the size of
the weights file. Writes bench/results/huge_weights.md.

    python bench/huge_weights.py
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import codegen
from codegen.compiler import compile_cached, compiler_identity, host_c_job
from codegen.emit import render_files
from codegen.targets import HostLibrary
from codegen.plan import make_plan
from codegen.verify import verify

RESULTS = Path(__file__).resolve().parent / "results" / "huge_weights.md"


def measure(inputs: int, outputs: int) -> dict:
    side = int(inputs ** 0.5)
    net = codegen.Network([codegen.imageInputLayer([side, side, 1], Normalization="none"),
                           codegen.fullyConnectedLayer(outputs)], name="huge")
    t0 = time.perf_counter()
    plan = make_plan(net)
    files = render_files(net, plan)
    t1 = time.perf_counter()
    result = compile_cached(files, host_c_job("huge"))
    t2 = time.perf_counter()
    lib = HostLibrary(net, plan, files, None, "huge", build=result)
    check = verify(net, lib, count=1)
    return dict(mb=plan.weight_bytes / 1e6, render=t1 - t0, compile=t2 - t1,
                text_mb=len(files["huge_weights.c"]) / 1e6, error=check.max_error)


def main():
    os.environ["CODEGEN_CACHE"] = tempfile.mkdtemp(prefix="codegen-huge-")
    rows = [measure(side * side, outputs) for side, outputs in [(32, 1000), (64, 1000), (100, 1000)]]
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    lines = [f"# Large weights: generation and compile time ({datetime.date.today()})", "",
             f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"compiler {compiler_identity('cc')}; flags `{' '.join(host_c_job('huge').flags)}`.", "",
             "| weights (MB) | plan + render (s) | compile (s) | weights file (MB of text) | relative error |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['mb']:.1f} | {r['render']:.1f} | {r['compile']:.1f} | {r['text_mb']:.0f} | {r['error']:.1e} |"
              for r in rows]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
