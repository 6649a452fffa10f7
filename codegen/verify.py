"""Verification: compiled code against the NumPy reference.

The metric is the relative error ``||y - ref|| / ||ref||`` per input, on seeded random
inputs (standard normal, never all zeros), against the float64 reference.

The default tolerance follows from the network at that input: ``max(1e-5, 1e-6 * condition)``,
capped at 1e-2, where the condition (:func:`float32_condition`) measures how much cancellation
amplifies float32 rounding. 1e-5 is about 100 float32 ulps (2^-23 = 1.2e-7): summation order
differs between the float32 kernels and the reference, and each of the K products of a dot
product contributes rounding of order eps, so a well-conditioned layer's error grows like
sqrt(K) * eps. An output that is a small difference of large terms (a deep network with batch
normalization, a residual sum that cancels) carries rounding of the size of those terms: its
error is bounded by a few hundred ulps of them, i.e. 1e-6 times the condition. Planted errors (a
wrong bias, a pad off by one) are orders of magnitude above either bound; ``--tol`` fixes the
tolerance instead.

TF32 (CUDA's default precision: convolutions and fully connected layers on the tensor cores) rounds
both inputs of every product to 10 mantissa bits (round to nearest: unit roundoff u = 2^-11) and
sums in float32. A product x*w then carries a relative error of at most (1+u)^2 - 1 ~ 2u, whatever
the reduction length K (the sum itself is float32: K * 2^-24 at worst, as before), so an op's
output is off by at most 2u * sum |x*w| elementwise. Half inputs (fp16) have the same u (as long as
no value leaves half's range, 6e-5 to 65504), bfloat16 u = 2^-8. Carried to the output by the
later layers, L such ops give at most about 2u * L * condition (the float32 condition below) -- but
that bound is loose (often above 0.1) and not even valid after an activation that saturates or is
offset (hard sigmoid, GELU and ELU below zero), where the magnitude network shrinks |terms| more than
the slope shrinks an error (seen: an FC layer into a hard sigmoid, error 1.6e-3 over 1.4e-3).
So the tolerance comes from the arithmetic itself: :func:`rounding_deviation` runs the reference
with the inputs and weights of every layer that has weights rounded the same way, and the
tolerance is float32's plus max(5 x that deviation, 2u x L). The kernels' deviation is another
sample of the same rounding errors (batch normalization folded into the weights before rounding,
float32 sums); measured on 27 tile-crossing stacks and examples it is 0.28 to 1.23 times the
simulated one (tf32 and bf16 alike; 1.27 on an activation network), so 5x leaves room, and
2u per op covers an op whose few products make both samples small. An indexing error (a wrong tap,
a missing K step) is of the order of the output itself.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .network import Network

DEFAULT_TOL = 1e-5
CONDITION_TOL = 1e-6      # tolerance per unit of float32 condition
MAX_TOL = 1e-2            # beyond this the output is rounding noise: the report says so
UNIT_ROUNDOFF = {"tf32": 2.0 ** -11, "fp16": 2.0 ** -11, "bf16": 2.0 ** -8}   # nearest, 10 / 10 / 7 mantissa bits
SIMULATION_FACTOR = 5              # the tensor-core tolerance: this many times the simulated rounding deviation
MAX_TF32_TOL = 0.1


def rel_error(y, ref) -> float:
    y = np.asarray(y, np.float64)
    ref = np.asarray(ref, np.float64)
    denom = np.linalg.norm(ref)
    num = np.linalg.norm(y - ref)
    if denom == 0.0:
        return float(num)
    return float(num / denom)


def float32_condition(net: Network, x: np.ndarray) -> float:
    """How much cancellation amplifies float32 rounding in ``net`` at ``x`` (N, H, W, C):
    ||m|| / ||y||, where y is the reference output and m the output of the same network run on |x|
    with every weight, bias, statistic and normalization constant replaced by the magnitude it
    contributes (each sum then adds |terms|). Rounding errors are proportional to m, so an output
    that is a small difference of large terms (condition >> 1) cannot be computed in float32 to a
    relative error of 1e-5; it can to about 1e-6 times the condition (a few hundred ulps of m)."""
    x = np.asarray(x, np.float64)
    ys = _outputs(net.predict(x))
    magnitude = copy.deepcopy(net)
    first = magnitude.input_layer
    start = np.abs(first.forward([x]))          # normalizing a float32 input amplifies nothing
    first._p["Normalization"] = "none"
    for layer in magnitude.layers[1:]:
        for prop in ("Weights", "Bias", "Scale", "Offset"):
            if layer._p.get(prop) is not None:
                layer._p[prop] = np.abs(layer._p[prop])
        if layer._p.get("TrainedMean") is not None:     # subtracted: |x| - (-|mean|) = |x| + |mean|
            layer._p["TrainedMean"] = -np.abs(layer._p["TrainedMean"])
    ms = _outputs(magnitude.predict(start))
    return max(float(np.linalg.norm(m[i]) / max(np.linalg.norm(y[i]), 1e-300))
               for m, y in zip(ms, ys) for i in range(len(x)))


def _outputs(y) -> list[np.ndarray]:
    """A network's outputs as a list (one array, or the tuple of a network with several)."""
    return list(y) if isinstance(y, tuple) else [y]


def output_error(y, ref, i: int) -> float:
    """The relative error of image ``i``: the largest over the network's outputs."""
    return max(rel_error(a[i], b[i]) for a, b in zip(_outputs(y), _outputs(ref)))


def round_to(a, precision: str) -> np.ndarray:
    """``a`` rounded as the tensor cores' inputs are (float64 result): 'tf32' as cvt.rna.tf32.f32
    (10 mantissa bits, ties away from zero), 'fp16' and 'bf16' to nearest even."""
    a32 = np.asarray(a, np.float32)
    if precision == "fp16":
        with np.errstate(over="ignore"):
            return a32.astype(np.float16).astype(np.float64)
    u = np.ascontiguousarray(a32).view(np.uint32).astype(np.uint64)
    finite = (u & 0x7F800000) != 0x7F800000
    if precision == "tf32":
        u = np.where(finite, (u + 0x1000) & 0xFFFFE000, u)
    else:
        u = np.where(finite, (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16, u)
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def rounding_deviation(net: Network, x: np.ndarray, precision: str) -> float:
    """The relative deviation of the reference when every layer with weights (those the tensor cores
    may run, and a few they do not: an over-estimate) rounds its inputs and weights to ``precision``."""
    x = np.asarray(x, np.float64)
    rounded = copy.deepcopy(net)
    for layer in rounded.layers[1:]:
        if layer._p.get("Weights") is not None:
            layer._p["Weights"] = round_to(layer._p["Weights"], precision)
            # the copy's layer rounds its inputs: an instance attribute (layers refuse unknown properties)
            object.__setattr__(layer, "forward",
                               lambda xs, forward=layer.forward: forward([round_to(v, precision) for v in xs]))
    exact, sim = _outputs(net.predict(x)), _outputs(rounded.predict(x))
    return max(rel_error(s[i], e[i]) for s, e in zip(sim, exact) for i in range(len(x)))


def default_tolerance(net: Network, x: np.ndarray, tensor_core_ops: int = 0,
                      precision: str = "tf32") -> tuple[float, float]:
    """(tolerance, float32 condition) for ``net`` at the inputs ``x`` (N, H, W, C), computed with
    ``tensor_core_ops`` ops whose inputs are rounded to ``precision`` (see the module's docstring)."""
    cond = float32_condition(net, x)
    tol = min(MAX_TOL, max(DEFAULT_TOL, CONDITION_TOL * cond))
    if tensor_core_ops:
        per_op = 2 * UNIT_ROUNDOFF[precision]
        simulated = rounding_deviation(net, x, precision)
        tol = min(MAX_TF32_TOL, tol + max(SIMULATION_FACTOR * simulated, per_op * tensor_core_ops))
    return tol, cond


def random_inputs(net: Network, count: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, *net.input_shape)).astype(np.float32)


@dataclass
class Verification:
    errors: list[float]
    tol: float
    condition: float | None = None     # the float32 condition the tolerance came from (None: given)
    tensor_core_ops: int = 0           # ... and the ops computed with TF32 inputs
    per_layer: list[tuple[str, float]] = field(default_factory=list)   # (op layers, error)
    first_divergence: str | None = None

    @property
    def max_error(self) -> float:
        return max(self.errors) if self.errors else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.errors) and self.max_error <= self.tol and self.first_divergence is None

    def report(self) -> str:
        lines = [f"  input {i}: relative error {e:.2e}" for i, e in enumerate(self.errors)]
        for name, e in self.per_layer:
            mark = "  <-- first divergence" if name == self.first_divergence else ""
            lines.append(f"  {name:<40} relative error {e:.2e}{mark}")
        verdict = "PASS" if self.passed else "FAIL"
        how = "" if self.condition is None else f" from float32 condition {self.condition:.1f}"
        if self.condition is not None and self.tensor_core_ops:
            how += f" and {self.tensor_core_ops} tensor-core op{'s' if self.tensor_core_ops > 1 else ''}"
        if self.condition is not None and self.tol >= MAX_TOL and not self.tensor_core_ops:
            how += ", capped: the output is mostly float32 rounding"
        lines.append(f"verification: {verdict} (max relative error {self.max_error:.2e}, tolerance {self.tol:.1e}{how})")
        return "\n".join(lines)

    def facts(self) -> dict:
        """The result as plain data (the build report's)."""
        worst = max(self.per_layer, key=lambda item: item[1]) if self.per_layer else None
        summary = (f"largest relative error {worst[1]:.2e} at {worst[0]} (tolerance {self.tol:.1e})" if worst
                   else f"max relative error {self.max_error:.2e}")
        return dict(kind="float", passed=self.passed, line=self.report().splitlines()[-1], summary=summary,
                    max_error=self.max_error, tolerance=self.tol, errors=list(self.errors),
                    measure="relative error", per_layer={name: e for name, e in self.per_layer},
                    flagged=self.first_divergence)


def _tolerance(net: Network, x: np.ndarray, tol: float | None, lib) -> tuple[float, float | None]:
    return (tol, None) if tol is not None else default_tolerance(net, x, lib.tensor_core_ops, lib.precision)


def verify(net: Network, lib, count: int = 3, seed: int = 0, tol: float | None = None) -> Verification:
    """Compare ``lib.predict`` with ``net.predict`` on ``count`` seeded random inputs; ``tol`` None: the
    network's own tolerance (see the module's docstring)."""
    x = random_inputs(net, count, seed)
    y = lib.predict(x)
    ref = net.predict(x.astype(np.float64))
    tol, cond = _tolerance(net, x, tol, lib)
    return Verification([output_error(y, ref, i) for i in range(count)], tol, cond, lib.tensor_core_ops)


def verify_per_layer(net: Network, debug_lib, seed: int = 0, tol: float | None = None) -> Verification:
    """Compare every planned op's output of a ``reuse=False`` build with the reference output of
    the last layer it implements; report the first op that diverges."""
    x = random_inputs(net, 1, seed)[0]
    out, ws = debug_lib.run_single_with_workspace(x)
    refs = net.predict(x.astype(np.float64), return_all=True)
    tol, cond = _tolerance(net, x[None], tol, debug_lib)
    outputs = debug_lib.split_outputs(out[None])
    result = Verification([output_error(outputs, tuple(refs[n][None] for n in net.output_names), 0)], tol, cond,
                          debug_lib.tensor_core_ops)
    for op in debug_lib.plan.ops:
        t = op.output
        b = t.buffer
        h, w, c = t.shape
        memory = out if b.kind == "output" else ws
        region = memory[b.offset: b.offset + b.size].reshape(h, w, t.pitch)
        got = region[:, :, t.choff: t.choff + c]
        layer = op.layers[-1]
        if layer not in refs or got.shape != refs[layer].shape:
            continue            # a copy into a slice of a concatenation: its layer's output is the whole
        ref = refs[layer]
        e = rel_error(got, ref)
        label = "+".join(op.layers)
        result.per_layer.append((label, e))
        if e > tol and result.first_divergence is None:
            result.first_divergence = label
    return result
