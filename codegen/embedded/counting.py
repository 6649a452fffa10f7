"""Instructions per inference on the emulated Cortex-M boards, counted deterministically.

QEMU runs the harness with ``-icount shift=0``: the virtual clock advances one nanosecond per
executed guest instruction, and the boards' SysTick timer counts its clock in that virtual time.
The harness (runtime/embedded/harness.c, systick.h) reads SysTick before and after every
``<name>_predict`` call, so ``ticks x 1e9 / clock`` is the number of instructions the call
executed: 40 per tick on mps2-an386/an500 (25 MHz), 31.25 on mps3-an547 (32 MHz). The same
binary gives the same count on every run, whatever else the machine is doing; the resolution
is one tick.

A profiling build (``codegen.build(net, device=..., profile=True)``, ``codegen build --profile``)
generates a hook call before every op and after the last; the harness reads SysTick in each, so
every op gets its own count. The hooks cost a few dozen instructions each, which the op before
them carries.

Instructions are not cycles: on a Cortex-M4F a VFMA.F32 takes three cycles and a load two, on
the M55 a 128-bit vector instruction two beats. Compare counts with counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TICKS = re.compile(r"^codegen-harness: image (\d+) ticks (\d+)$", re.M)
_HOOKS = re.compile(r"^codegen-harness: image (\d+) hooks((?: \d+)+)$", re.M)


@dataclass
class Count:
    """What the harness counted in one run: instructions per image, and per op with profiling."""
    per_image: list[int]                         # instructions of each predict call
    per_op_image: list[list[int]] | None = None  # profiling: per image, per op
    op_names: list[str] | None = None
    op_macs: list[int | None] | None = None
    macs: int = 0                                # multiply-accumulates of one inference

    @property
    def instructions(self) -> int:
        """Instructions per inference (the mean over the images; they differ only where the code
        takes data-dependent paths, e.g. in expf)."""
        return round(sum(self.per_image) / len(self.per_image))

    @property
    def per_mac(self) -> float | None:
        return self.instructions / self.macs if self.macs else None

    @property
    def per_op(self) -> dict[str, int] | None:
        """Profiling: op name -> instructions (mean over the images), in the order the ops run."""
        if self.per_op_image is None:
            return None
        n = len(self.per_op_image)
        return {name: round(sum(img[i] for img in self.per_op_image) / n) for i, name in enumerate(self.op_names)}

    def report(self) -> list[str]:
        mac = f" ({self.per_mac:.2f} per MAC)" if self.per_mac else ""
        spread = "" if len(set(self.per_image)) == 1 else \
            f", {min(self.per_image):,} to {max(self.per_image):,} over {len(self.per_image)} images"
        lines = [f"instructions per inference: {self.instructions:,}{mac}{spread} "
                 "(counted under QEMU -icount shift=0 with SysTick)"]
        ops = self.per_op
        if ops is not None:
            total = sum(ops.values())
            width = max(len(name) for name in ops)
            lines.append(f"  {'op':<{width}}  {'instructions':>13}  {'share':>6}  {'per MAC':>8}")
            for (name, count), macs in zip(ops.items(), self.op_macs):
                per = f"{count / macs:8.2f}" if macs else f"{'':>8}"
                lines.append(f"  {name:<{width}}  {count:>13,}  {100 * count / max(total, 1):5.1f}%  {per}")
            lines.append(f"  {'outside the ops':<{width}}  {self.instructions - total:>13,}")
        return lines


def parse_counts(log: str, images: int, per_tick: float, ops: int | None = None) -> tuple[list[int] | None,
                                                                                     list[list[int]] | None]:
    """(instructions per image, per image per op) from the harness's output; None where it printed none.
    ``ops``: the ops of a profiling build (the harness prints ops + 1 hook readings per image)."""
    ticks = {int(m.group(1)): int(m.group(2)) for m in _TICKS.finditer(log)}
    if len(ticks) != images:
        return None, None
    per_image = [round(ticks[i] * per_tick) for i in range(images)]
    per_op = None
    if ops is not None:
        hooks = {int(m.group(1)): [int(t) for t in m.group(2).split()] for m in _HOOKS.finditer(log)}
        if len(hooks) == images and all(len(h) == ops + 1 for h in hooks.values()):
            per_op = [[round((hooks[k][i + 1] - hooks[k][i]) * per_tick) for i in range(ops)]
                      for k in range(images)]
    return per_image, per_op
