"""The target protocol: what the build pipeline (:mod:`codegen.pipeline`) asks of each target.

A target renders with one of the two template trees (``dialect``: 'c' or 'cuda'), may add
template options (a device's toolchain section), compiles the rendered files of one or more
networks in one run (``compile``, cached by content), and loads each network's part of the
result as a :class:`~codegen.library.Library` (``load``). Implementations: :mod:`.host`
(a shared library for this machine), :mod:`.cuda` (nvcc, or the CPU execution mode) and
:mod:`.device` (a cross-compiled harness run under QEMU).
"""

from __future__ import annotations

from pathlib import Path

from ..ir import Plan
from ..library import Library


class Target:
    name = "?"
    dialect = "c"                  # the template tree: 'c' or 'cuda'
    # plans stream convolutions by rows (and run depthwise convolutions in place) to the smallest
    # arena even without a RAM goal (max_ram): the cross-compiled devices (Cortex-M, AArch64), where
    # RAM is the constraint; on this machine only to meet a goal, since it costs time there
    # (bench/results/peak_ram.md)
    smallest_arena = False

    def render_options(self) -> dict:
        """Template options this target adds (see codegen/emit)."""
        return {}

    def check_tools(self) -> None:
        """BuildError naming what is missing, before any work."""

    def compile(self, files: dict[str, str], prefixes: list[str]):
        """Compile the generated files of the networks ``prefixes`` (all in ``files``) in one run."""
        raise NotImplementedError

    def load(self, net, plan: Plan, files: dict[str, str], out_dir: Path | None, prefix: str, built) -> Library:
        """The library of network ``prefix`` from what :meth:`compile` returned."""
        raise NotImplementedError
