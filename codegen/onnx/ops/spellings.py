"""Activations that exporters write as several nodes, both directions:

=======================================================  ====================================
nodes (operands in any order; constants as initializers   layer
or Constant nodes, also behind a Cast)
=======================================================  ====================================
``x * Sigmoid(x)`` (PyTorch's SiLU)                       ``swishLayer``
``x * HardSigmoid(x)``, alpha 1/6, beta 1/2 (PyTorch's    ``hardSwishLayer``
Hardswish before opset 14)
``x * (1 + Erf(x / sqrt 2)) * 0.5`` (GELU before          ``geluLayer``
opset 20)
``x * (1 + Tanh(sqrt(2/pi) (x + 0.044715 x^3))) * 0.5``   ``geluLayer(Approximation='tanh')``
=======================================================  ====================================

Import: a recognizer (``@spelling``, run before the walk translates anything, see
:mod:`codegen.onnx.neighbours`) starts at the Sigmoid, HardSigmoid, Erf or Tanh node and reads
its argument and the factor applied to its result as polynomials in one tensor ``x``: from
``Add``, ``Sub``, ``Mul``, ``Div`` (by a constant) and ``Pow`` (to a constant power up to 3)
nodes whose results nothing else reads, and scalar constants. Where the polynomials are the
formula's (coefficients equal up to float32 rounding: relative 1e-6), the nodes are claimed and
become one layer. Nothing is evaluated on sample values: the match is structural, so
``0.5 * x`` computed first, ``x / sqrt 2`` written as ``x * (1 / sqrt 2)`` or ``x^3`` as
``Pow(x, 3)`` match too. What does not match is left to the other translators (which refuse a
standalone ``Erf`` and a ``Mul`` of two computed tensors). This needs no general elementwise
``Mul``: the Mul nodes of a recognized group never reach a translator.

Export: :func:`write_swish`, :func:`write_hard_swish` and :func:`write_gelu` write these
spellings (PyTorch's node order) for the opsets without ``HardSwish`` (13) or ``Gelu`` (< 20);
ONNX has no swish operator at all.
"""

from __future__ import annotations

import math

import numpy as np

from ...layers import GELULayer, geluLayer, hardSwishLayer, swishLayer
from ..errors import quote
from ..registry import spelling

RTOL = 1e-6                     # float32 constants: 1/sqrt(2), sqrt(2/pi) ... within a few 1e-8
MAX_NODES = 16                  # nodes read into one polynomial at most
MAX_DEGREE = 3
SQRT1_2 = 1.0 / math.sqrt(2.0)
BETA, KAPPA = float(GELULayer.TANH_BETA), GELULayer.TANH_KAPPA


# ============================================================================ polynomials

def _scalar(imp, name):
    """The value of ``name`` if it is a finite scalar constant, else None."""
    value = imp.peek(name)
    if value is None or np.size(value) != 1 or np.asarray(value).dtype.kind not in "fiu":
        return None
    v = float(np.asarray(value).ravel()[0])
    return v if math.isfinite(v) else None


def _times(p: dict, q: dict) -> dict:
    out: dict = {}
    for i, a in p.items():
        for j, b in q.items():
            out[i + j] = out.get(i + j, 0.0) + a * b
    return out


def _plus(p: dict, q: dict, sign: float = 1.0) -> dict:
    out = dict(p)
    for j, b in q.items():
        out[j] = out.get(j, 0.0) + sign * b
    return out


def _poly(imp, name: str, group: list):
    """Tensor ``name`` as ``(x, {power: coefficient})``, a polynomial in one tensor ``x`` (None for a
    constant), read through arithmetic nodes only ``name``'s reader reads (added to ``group``);
    None where it is not one."""
    if not name:
        return None
    c = _scalar(imp, name)
    if c is not None:
        return None, {0: c}
    if imp.peek(name) is not None:           # a constant, but no scalar
        return None
    node = imp.producer(name)
    if node is None or node.op_type not in ("Add", "Sub", "Mul", "Div", "Pow") or imp.consumers.get(name, 0) != 1:
        return name, {1: 1.0}                # a tensor: the variable
    if len(node.input) != 2 or len(group) >= MAX_NODES:
        return None
    group.append(node)                       # first: the budget bounds the depth too
    a = _poly(imp, node.input[0], group)
    b = _poly(imp, node.input[1], group) if a is not None else None
    if a is None or b is None or (a[0] and b[0] and a[0] != b[0]):
        return None
    var, p, q = a[0] or b[0], a[1], b[1]
    op = node.op_type
    if op in ("Add", "Sub"):
        r = _plus(p, q, 1.0 if op == "Add" else -1.0)
    elif op == "Mul":
        r = _times(p, q)
    elif b[0] is not None or not q.get(0):   # Div and Pow: by a nonzero constant only
        return None
    elif op == "Div":
        r = {k: v / q[0] for k, v in p.items()}
    else:
        n = q[0]
        if n not in (1.0, 2.0, 3.0):
            return None
        r = {0: 1.0}
        for _ in range(int(n)):
            r = _times(r, p)
    if max(r, default=0) > MAX_DEGREE:
        return None
    return var, r


def _equal(p: dict, want: dict) -> bool:
    """The polynomials agree: the same powers, coefficients within ``RTOL`` (relative)."""
    p = {k: v for k, v in p.items() if v != 0.0}
    return p.keys() == want.keys() and all(abs(p[k] - w) <= RTOL * abs(w) for k, w in want.items())


def _sole_reader(imp, name: str):
    readers = imp.readers(name) if name else []
    return readers[0] if len(readers) == 1 and imp.consumers.get(name, 0) == 1 else None


def _scaled(imp, name: str, x: str, want: dict, group: list):
    """Follow ``name`` through the Mul nodes (and Div by constants) that alone read it, multiplying
    it by polynomials in ``x``; the node at which the product of the factors is ``want`` (the
    nodes added to ``group``), else None."""
    factor = {0: 1.0}
    for _ in range(3):
        node = _sole_reader(imp, name)
        if node is None or node.op_type not in ("Mul", "Div") or len(node.input) != 2 or not node.output:
            return None
        k = list(node.input).index(name)
        part: list = []
        other = _poly(imp, node.input[1 - k], part)
        if other is None or other[0] not in (None, x):
            return None
        if node.op_type == "Div":
            if k != 0 or other[0] is not None or not other[1].get(0):
                return None
            factor = {p: v / other[1][0] for p, v in factor.items()}
        else:
            factor = _times(factor, other[1])
        group += [*part, node]
        if _equal(factor, want):
            return node
        name = node.output[0]
    return None


# ============================================================================ import

def _argument(imp, node, want: dict, group: list):
    """``x`` where input 0 of ``node`` is the polynomial ``want`` in ``x``, else None."""
    if len(node.input) != 1 or len(node.output) != 1 or not node.output[0]:
        return None
    arg = _poly(imp, node.input[0], group)
    return arg[0] if arg is not None and arg[0] is not None and _equal(arg[1], want) else None


def _claim(imp, group: list, anchor, x: str, make, base: str):
    """Claim ``group`` as the layer ``make(Name=...)`` on tensor ``x``, named after ``anchor``."""
    def translate(imp, last):
        reader = next(n for n in group if x in n.input)
        t = imp.tensor(reader, list(reader.input).index(x))
        rank = 4 if t.kind == "nchw" else 2
        for n in group:                 # a scalar of higher rank would broadcast the result to another shape
            for i in n.input:
                if i in imp.consts and np.ndim(imp.consts[i]) > rank:
                    imp.refuse(n, f"input {quote(i)}", f"'of rank {np.ndim(imp.consts[i])}'",
                               f"the tensor it applies to has rank {rank}")
        imp.new(last, make(Name=imp.layer_name(anchor, base)), [t], t.kind)
    imp.claim(group, translate)


@spelling("Sigmoid")
def _swish(imp, node):
    group = [node]
    x = _argument(imp, node, {1: 1.0}, group)
    if x is not None and _scaled(imp, node.output[0], x, {1: 1.0}, group) is not None:
        _claim(imp, group, node, x, swishLayer, "swish")


@spelling("HardSigmoid")
def _hard_swish(imp, node):
    attrs = {a.name: a for a in node.attribute}         # not checked yet: read as FLOATs only
    if set(attrs) - {"alpha", "beta"} or any(a.type != a.FLOAT for a in attrs.values()):
        return
    alpha = attrs["alpha"].f if "alpha" in attrs else 0.2
    beta = attrs["beta"].f if "beta" in attrs else 0.5
    if not (_equal({0: alpha}, {0: 1 / 6}) and _equal({0: beta}, {0: 0.5})):
        return
    group = [node]
    x = _argument(imp, node, {1: 1.0}, group)
    if x is not None and _scaled(imp, node.output[0], x, {1: 1.0}, group) is not None:
        _claim(imp, group, node, x, hardSwishLayer, "hardswish")


@spelling("Erf")
def _gelu_erf(imp, node):
    _gelu(imp, node, {1: SQRT1_2}, "none")


@spelling("Tanh")
def _gelu_tanh(imp, node):
    _gelu(imp, node, {1: BETA, 3: BETA * KAPPA}, "tanh")


def _gelu(imp, node, inner: dict, approximation: str):
    """``x * (1 + f(inner(x))) * 0.5`` with f the node's op (Erf or Tanh)."""
    group = [node]
    x = _argument(imp, node, inner, group)
    add = _sole_reader(imp, node.output[0]) if x is not None else None
    if add is None or add.op_type != "Add" or len(add.input) != 2 or not add.output:
        return
    one = add.input[1 - list(add.input).index(node.output[0])]
    if _scalar(imp, one) != 1.0:
        return
    group.append(add)
    if _scaled(imp, add.output[0], x, {1: 0.5}, group) is not None:
        _claim(imp, group, node, x, lambda **kw: geluLayer(Approximation=approximation, **kw), "gelu")


# ============================================================================ export

def write_swish(exp, x: str, name: str) -> str:
    """``x * Sigmoid(x)``; the output's name."""
    return exp.node("Mul", [x, exp.node("Sigmoid", [x], f"{name}_sigmoid")], name)


def write_hard_swish(exp, x: str, name: str) -> str:
    """``x * HardSigmoid(x)`` (alpha 1/6, beta 1/2): HardSwish before opset 14."""
    h = exp.node("HardSigmoid", [x], f"{name}_hardsigmoid", alpha=1.0 / 6.0, beta=0.5)
    return exp.node("Mul", [x, h], name)


def write_gelu(exp, x: str, name: str, approximation: str) -> str:
    """GELU before opset 20: ``x * (1 + Erf(x / sqrt 2)) * 0.5``, or with ``Tanh(sqrt(2/pi) (x +
    0.044715 x^3))`` for the tanh approximation (the nodes PyTorch writes)."""
    if approximation == "none":
        u = exp.node("Div", [x, exp.const(f"{name}_sqrt2", math.sqrt(2.0))], f"{name}_scaled")
        f = exp.node("Erf", [u], f"{name}_erf")
    else:
        cube = exp.node("Mul", [x, exp.node("Mul", [x, x], f"{name}_square")], f"{name}_cube")
        cubic = exp.node("Mul", [exp.const(f"{name}_kappa", KAPPA), cube], f"{name}_cubic")
        u = exp.node("Mul", [exp.const(f"{name}_beta", BETA), exp.node("Add", [x, cubic], f"{name}_inner")],
                     f"{name}_scaled")
        f = exp.node("Tanh", [u], f"{name}_tanh")
    s = exp.node("Add", [exp.const(f"{name}_one", 1.0), f], f"{name}_plus1")
    h = exp.node("Mul", [x, s], f"{name}_times_x")
    return exp.node("Mul", [h, exp.const(f"{name}_half", 0.5)], name)
