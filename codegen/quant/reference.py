"""The integer reference: an int8 plan executed in NumPy with the same integer arithmetic the
generated code uses (int64 intermediates, TFLite's roundings), so that the C can be held to zero
differing outputs. Each op kind's arithmetic is in its home (:meth:`codegen.ops.OpKind.int8_reference`)."""

from __future__ import annotations

import numpy as np

from ..ir import Plan, Tensor
from ..ops import KINDS


def _root(t: Tensor) -> tuple[Tensor, int]:
    off = 0
    while t.parent is not None:
        off += t.parent_choff
        t = t.parent
    return t, off


def run_int8(plan: Plan, x: np.ndarray) -> list[np.ndarray]:
    """int8 input (N, H, W, C) -> the int8 outputs, each (N, H, W, C)."""
    results = []
    for image in np.asarray(x, np.int8):
        memory: dict[int, np.ndarray] = {id(plan.input): image}

        def read(t: Tensor) -> np.ndarray:
            r, off = _root(t)
            return memory[id(r)][:, :, off: off + t.shape[2]]

        def write(t: Tensor, value: np.ndarray) -> None:
            r, off = _root(t)
            if id(r) not in memory:
                memory[id(r)] = np.zeros(r.shape, np.int8)
            memory[id(r)][:, :, off: off + t.shape[2]] = value

        for op in plan.ops:
            write(op.output, KINDS[op.kind].int8_reference(op, [read(t) for t in op.inputs]))
        results.append([read(t).copy() for t in plan.outputs])
    return [np.stack([r[k] for r in results]) for k in range(len(plan.outputs))]


def predict_int8(plan: Plan, x) -> list[np.ndarray]:
    """The float API of an int8 plan: float input -> quantized -> run -> dequantized float32 outputs."""
    q = plan.quant.input.quantize(np.asarray(x, np.float32))
    return [p.dequantize(y) for p, y in zip(plan.quant.outputs, run_int8(plan, q))]
