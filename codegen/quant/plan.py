"""An int8 plan: the float plan's ops (fused and placed for one-byte elements), each made int8 by
its op home (:meth:`codegen.ops.OpKind.int8`) from the calibration's parameters.

Every tensor's quantization is the calibrated one of the layer producing it, with two rules:
a channel slice of a concatenation takes the concatenation's (its producer writes it directly in
the concatenation's scale), and an op kind may fix its output's (softmax: 1/256, -128). The
network input is quantized by the API with the raw input's parameters; an input normalization
is then an int8 op like the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedError
from ..ir import Plan, Tensor
from ..ops import KINDS
from .calibrate import Calibration, QParams


@dataclass
class QuantContext:
    """What an op home's ``int8`` may read besides the op: the network (its layers' float
    references) and the calibration."""
    net: object
    calibration: Calibration

    def weight_scale(self, op):
        """The per-output-channel weight scales the calibration fixes for ``op``'s first layer (an
        imported int8 model's), or None: the scheme chooses them."""
        return self.calibration.weight_scales.get(op.layers[0])


@dataclass
class PlanQuant:
    """How the API converts: float input -> int8 (``input``), int8 outputs -> float (``outputs``)."""
    input: QParams
    outputs: list[QParams]


def _root(t: Tensor) -> Tensor:
    while t.parent is not None:
        t = t.parent
    return t


def quantize_plan(plan: Plan, net, calibration: Calibration) -> Plan:
    """Make every op of ``plan`` (placed for int8) an int8 op; returns the plan, now int8."""
    fixed: dict[int, QParams] = {id(plan.input): calibration.input}

    def params(t: Tensor) -> QParams:
        r = _root(t)
        if id(r) in fixed:
            return fixed[id(r)]
        if r.name not in calibration.params:
            raise UnsupportedError(f"the calibration has no range for '{r.name}': calibrate this network")
        return calibration.params[r.name]

    ctx = QuantContext(net, calibration)
    for op in plan.ops:
        kind = KINDS[op.kind]
        qin = [params(t) for t in op.inputs]
        qout = params(op.output) if calibration.given else kind.int8_output(op, qin, params(op.output))
        fixed.setdefault(id(_root(op.output)), qout)
        kind.int8(op, qin, fixed[id(_root(op.output))], ctx)
    plan.dtype = "int8"
    plan.quant = PlanQuant(params(plan.input), [params(t) for t in plan.outputs])
    return plan
