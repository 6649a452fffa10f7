"""A non-editable install carries templates/ and runtime/ and works from anywhere (issue 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_templates_and_runtime_and_builds_lenet(tmp_path):
    wheel_dir = tmp_path / "wheel"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(wheel_dir)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    wheel = next(wheel_dir.glob("codegen-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ROOT.glob("templates/**/*.j2"):
        assert f"codegen/templates/{template.relative_to(ROOT / 'templates')}" in names
    assert "codegen/runtime/host/harness.c" in names
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    script = ("import codegen, sys; assert codegen.__file__.startswith(sys.argv[1]), codegen.__file__\n"
              "from codegen.netfile import load\nfrom codegen.verify import verify\n"
              "net = load(sys.argv[2]); lib = codegen.build(net, out_dir='out')\n"
              "r = verify(net, lib); print(r.report()); assert r.passed\n")
    env = dict(os.environ, PYTHONPATH=str(target), CODEGEN_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", script, str(target), str(ROOT / "examples" / "lenet.py")],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "out" / "lenet.c").exists()
