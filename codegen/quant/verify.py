"""Verifying an int8 build, and finding where accuracy goes.

- :func:`verify_int8`: the compiled int8 code against the integer reference (zero differing
  outputs, no tolerance) and, for information, against the float reference (signal-to-quantization-
  noise ratio, cosine similarity, agreement of the largest output).
- :func:`int8_per_layer`: a ``reuse=False`` int8 build's every op output (read back from the
  workspace of the compiled code, dequantized) against the float reference of the layer it
  implements; the first op whose SQNR falls below a threshold is named: the layer where accuracy
  goes (a calibration range far too wide, a layer int8 does not suit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..verify import random_inputs
from .reference import predict_int8

SQNR_THRESHOLD = 20.0          # dB: about 3 significant bits of agreement with the float layer


def sqnr_db(y, ref) -> float:
    """10 log10(||ref||^2 / ||y - ref||^2), inf when they agree exactly."""
    y, ref = np.asarray(y, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    noise = float(np.sum((y - ref) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(max(signal, 1e-300) / noise))


def cosine(y, ref) -> float:
    y, ref = np.asarray(y, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    den = np.linalg.norm(y) * np.linalg.norm(ref)
    return float(y @ ref / den) if den > 0 else float(np.array_equal(y, ref))


def _outputs(y) -> list[np.ndarray]:
    return list(y) if isinstance(y, tuple) else [y]


@dataclass
class Int8Verification:
    differing: int                 # outputs of the compiled code that differ from the integer reference
    outputs: int
    sqnr: float                    # dB, of the outputs against the float reference
    cosine: float
    top1: float | None             # share of images whose largest output is the float reference's
    per_layer: list[tuple[str, float, float]] = field(default_factory=list)    # (op, SQNR dB, cosine)
    first_below: str | None = None
    threshold: float = SQNR_THRESHOLD

    @property
    def passed(self) -> bool:
        return self.differing == 0

    def report(self) -> str:
        lines = [f"  {name:<40} SQNR {s:6.1f} dB  cosine {c:.4f}" + ("  <-- first below "
                 f"{self.threshold:g} dB" if name == self.first_below else "") for name, s, c in self.per_layer]
        if self.per_layer and self.first_below is None:
            lines.append(f"  every layer keeps an SQNR of at least {self.threshold:g} dB")
        top = "" if self.top1 is None else f", top-1 agreement {self.top1:.0%}"
        lines.append(f"int8 against float: output SQNR {self.sqnr:.1f} dB, cosine {self.cosine:.4f}{top}")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(f"verification: {verdict} ({self.differing} of {self.outputs} int8 outputs differ from the "
                     "integer reference; no tolerance)")
        return "\n".join(lines)

    def facts(self) -> dict:
        """The result as plain data (the build report's)."""
        worst = min(self.per_layer, key=lambda item: item[1]) if self.per_layer else None
        summary = f"output SQNR {self.sqnr:.1f} dB, cosine {self.cosine:.4f} against the float reference"
        if worst:
            summary = f"lowest SQNR {worst[1]:.1f} dB at {worst[0]} (threshold {self.threshold:g} dB); " + summary
        return dict(kind="int8", passed=self.passed, line=self.report().splitlines()[-1], summary=summary,
                    differing=self.differing, outputs=self.outputs, sqnr=self.sqnr, cosine=self.cosine,
                    tolerance=0, measure="SQNR dB", per_layer={name: s for name, s, _ in self.per_layer},
                    flagged=self.first_below)


def _inputs(net, images, count: int, seed: int) -> np.ndarray:
    if images is None:
        return random_inputs(net, count, seed)
    x = np.asarray(images, np.float32)
    return x[None] if x.ndim == len(net.input_shape) else x


def verify_int8(net, lib, count: int = 3, seed: int = 0, images=None) -> Int8Verification:
    """The compiled int8 ``lib`` against the integer reference (bit for bit) and the float reference,
    on ``images`` (e.g. calibration images: the SQNR means most on the inputs the network will see)
    or ``count`` random ones."""
    x = _inputs(net, images, count, seed)
    count = len(x)
    got = _outputs(lib.predict(x))
    want = predict_int8(lib.plan, x)
    ref = _outputs(net.predict(x.astype(np.float64)))
    differing = sum(int(np.sum(g != w)) for g, w in zip(got, want))
    total = sum(int(g.size) for g in got)
    y, r = np.concatenate([g.ravel() for g in got]), np.concatenate([a.ravel() for a in ref])
    top1 = None
    if len(got) == 1 and got[0][0].size > 1:
        top1 = float(np.mean(got[0].reshape(count, -1).argmax(1) == ref[0].reshape(count, -1).argmax(1)))
    return Int8Verification(differing, total, sqnr_db(y, r), cosine(y, r), top1)


def int8_per_layer(net, debug_lib, seed: int = 0, threshold: float = SQNR_THRESHOLD,
                   images=None) -> Int8Verification:
    """Every op of a ``reuse=False`` int8 build against the float reference, from the compiled code's
    own workspace, on the first of ``images`` (or a random input); names the first op below
    ``threshold`` dB."""
    x = _inputs(net, images, 1, seed)[:1]
    result = verify_int8(net, debug_lib, images=x)
    result.threshold = threshold
    x = x[0]
    out, ws = debug_lib.run_single_with_workspace(x)
    refs = net.predict(x.astype(np.float64), return_all=True)
    for op in debug_lib.plan.ops:
        t, b = op.output, op.output.buffer
        memory = out if b.kind == "output" else ws
        h, w, c = t.shape
        q = memory[b.offset: b.offset + b.size].reshape(h, w, t.pitch)[:, :, t.choff: t.choff + c]
        layer = op.layers[-1]
        if layer not in refs or q.shape != refs[layer].shape:
            continue
        got = op.quant.output.dequantize(q)
        label = "+".join(op.layers)
        s = sqnr_db(got, refs[layer])
        result.per_layer.append((label, s, cosine(got, refs[layer])))
        if s < threshold and result.first_below is None:
            result.first_below = label
    return result
