"""What every build returns: a :class:`Library`, whatever the target.

``lib.predict(x)`` runs the generated code on ``x`` of shape (H, W, C) or (N, H, W, C) and
returns float32 outputs (a tuple of them for a network with several outputs, which the generated
code writes back to back into one buffer); ``lib.describe()``, ``lib.build_report(verbose)`` and
``lib.run_report()`` say what was built and what running it showed; ``lib.verifiable(echo)``
gives a library that can run here (a CUDA build on a machine without a GPU verifies the same
kernels in the CPU execution mode). The command line and the verifier see only this interface.

Every target checks its input with :func:`check_input` (dtype, shape, NaN/Inf) before any
pointer reaches generated code. ``predict`` is safe to call from several threads at once:
each target either keeps no state between calls or serializes it (documented per target).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .batch import feature_batch, present
from .errors import InputError, UnsupportedError
from .ir import Plan


def check_input(x, in_shape: tuple, finite: bool = True, observation: tuple | None = None
                ) -> tuple[np.ndarray, bool, bool]:
    """``x`` as a contiguous float32 (N, H, W, C) array, whether it was a single observation, and
    whether it was given as feature vectors (``observation`` (numFeatures,): see :mod:`codegen.batch`);
    InputError for anything else (and for NaN or Inf with ``finite``)."""
    try:
        x = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"predict: input is not an array of numbers ({exc})") from None
    if x.dtype.kind not in "fiu":
        raise InputError(f"predict: input has dtype {x.dtype}; expected float32 (or a real type to convert)")
    try:
        given = feature_batch(x, in_shape, observation or tuple(in_shape))
    except ValueError as exc:
        raise InputError(f"predict: {exc}") from None
    features = given is not None
    x, single = given if features else (x, x.ndim == 3)
    if single and not features:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(in_shape):
        raise InputError(f"predict: input has shape {tuple(np.shape(x if not single else x[0]))}; expected "
                         f"(H, W, C) = {tuple(in_shape)} or (N, H, W, C) with that H, W, C")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if finite and not np.all(np.isfinite(x)):
        raise InputError("predict: input contains NaN or Inf")
    return x, single, features


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    """A uint8 array of ``nbytes`` whose data pointer is ``align``-byte aligned."""
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start: start + nbytes]


@dataclass(eq=False)
class Library:
    """A network built for a target: the generated files, where they were written, and how to run them."""
    net: object
    plan: Plan
    files: dict[str, str]
    out_dir: Path | None
    prefix: str

    target = "?"                      # 'c' or 'cuda': which generated code it runs
    tensor_core_ops = 0               # ops computed with rounded inputs (CUDA on the tensor cores): the tolerance grows
    precision = "fp32"                # ... rounded to this ('tf32', 'fp16', 'bf16')

    @property
    def in_shape(self) -> tuple:
        return tuple(self.plan.input.shape)

    @property
    def out_shape(self) -> tuple:
        """The output shape of a network with one output."""
        return tuple(self.plan.output.shape)

    @property
    def out_shapes(self) -> list[tuple]:
        return [tuple(t.shape) for t in self.plan.outputs]

    @property
    def out_floats(self) -> int:
        """Floats per image of the output buffer (every output, back to back)."""
        return self.plan.output_floats

    def split_outputs(self, flat: np.ndarray):
        """(N, out_floats) -> the outputs: one (N, H, W, C) array, or a tuple of them."""
        ys = [flat[:, t.buffer.offset: t.buffer.offset + t.size].reshape(flat.shape[0], *t.shape)
              for t in self.plan.outputs]
        return ys[0] if len(ys) == 1 else tuple(ys)

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    @property
    def weight_bytes(self) -> int:
        """The bytes of weights the generated code holds (``<NAME>_WEIGHT_BYTES`` in its header: as
        packed for the C kernels; the device block for CUDA)."""
        header = self.files.get(f"{self.prefix}.h", "")
        m = re.search(r"#define \w+_WEIGHT_BYTES (\d+)", header) if isinstance(header, str) else None
        return int(m.group(1)) if m else self.plan.weight_bytes

    @property
    def library(self) -> Path:
        """The built file that runs (a shared library, or the device's harness)."""
        raise NotImplementedError

    @property
    def cached(self) -> bool:
        """Whether the build came from the build cache."""
        raise NotImplementedError

    def predict(self, x):
        """Run the network on ``x``, (H, W, C) or (N, H, W, C); float32 outputs of the same rank (a tuple
        of them for several outputs). A feature-input network also takes (numFeatures,) or
        (N, numFeatures) and returns its 1 x 1 x K outputs as (K,) or (N, K) (:mod:`codegen.batch`)."""
        x, single, features = check_input(x, self.in_shape, observation=self.net.observation_shape)
        return present(self.split_outputs(self._run(x)), single, features)

    def _run(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W, C) float32 -> (N, out_floats) float32: every output, back to back."""
        raise NotImplementedError

    def run_single_with_workspace(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(the output buffer, a copy of the workspace after the run) for one image (per-layer debugging)."""
        raise UnsupportedError(f"{self.describe()}: per-layer checks read the workspace back, which this target "
                               "cannot (run them on the host or with --emulate)")

    def describe(self) -> str:
        return f"{self.prefix} ({self.target}) from {self.library}"

    def build_line(self, seconds: float) -> str:
        """What was built and whether it came from the cache."""
        return f"library {self.library}" + (" (cache hit)" if self.cached else f" (built in {seconds:.1f} s)")

    def build_report(self, verbose: bool = False) -> list[str]:
        """Lines on what the build made (compiler commands with ``verbose``)."""
        return []

    def run_report(self) -> list[str]:
        """Lines on what running it showed (e.g. a device's footprint and checks)."""
        return []

    def report_facts(self) -> dict:
        """What the build report (:mod:`codegen.report`) shows of the target, as plain data: ``target``,
        ``compiler`` (the command), and where known ``footprint``, ``instructions``, ``per_op`` (instructions),
        ``op_seconds`` (time per op), ``checks``."""
        return dict(target=self.target, description=self.describe(), device=None, compiler=None, cached=self.cached,
                    footprint=None, instructions=None, per_op=None, op_seconds=None, checks=[],
                    notes=self.build_report(False))

    @property
    def checks_passed(self) -> bool:
        """Whether the build's own checks (e.g. a device's link checks) passed."""
        return True

    def check_budget(self, max_ram: int | None = None, max_flash: int | None = None) -> str | None:
        """A line comparing the footprint with the budgets (BudgetError when over); None without budgets."""
        if max_ram is None and max_flash is None:
            return None
        raise UnsupportedError("flash and RAM budgets need a device build (--device)")

    def verifiable(self, echo) -> tuple["Library", bool]:
        """(a library that runs here, whether it is the CUDA CPU execution mode)."""
        return self, False
