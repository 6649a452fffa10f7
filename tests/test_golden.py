"""The emitted files equal their golden snapshots byte for byte (see tests/golden.py)."""

from __future__ import annotations

import difflib

import pytest

from golden import CASES, GOLDEN, stored, render_case


@pytest.mark.parametrize("case,example,target,device", CASES, ids=[c[0] for c in CASES])
def test_emitted_files_equal_snapshot(case, example, target, device):
    folder = GOLDEN / case
    assert folder.is_dir(), f"no snapshot {folder}; run 'make golden' and review the new files"
    want = {p.name: p.read_bytes().decode() for p in sorted(folder.iterdir())}
    got = stored(render_case(example, target, device))
    assert sorted(got) == sorted(want), f"{case}: emitted files differ from the snapshot's ('make golden' updates)"
    for name in sorted(want):
        if got[name] != want[name]:
            diff = "".join(list(difflib.unified_diff(want[name].splitlines(True), got[name].splitlines(True),
                                                     f"golden/{case}/{name}", f"emitted/{name}", n=2))[:80])
            pytest.fail(f"{case}/{name} differs from its snapshot (run 'make golden' if intended):\n{diff}")
