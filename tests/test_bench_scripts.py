"""The benchmark scripts still run (`make bench`, `make bench-int8`): one small shape, one round,
results written to a temporary file. Nothing here judges speed (the scripts' tables do); a script
that no longer matches the library's API fails here instead of on the day someone benchmarks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script,args", [
    ("bench/run.py", ["--shapes", "f", "--rounds", "1", "--no-networks"]),
    ("bench/int8_host.py", ["--shapes", "f", "--rounds", "1"]),
])
def test_bench_script_runs_and_writes_its_table(script, args, tmp_path):
    out = tmp_path / "result.md"
    r = subprocess.run([sys.executable, str(ROOT / script), *args, "--output", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    text = out.read_text()
    assert "| f: 28x28x1->20 5x5 (LeNet) |" in text, text[:2000]
