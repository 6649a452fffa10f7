"""The registries that connect ONNX operators and our layer classes.

Every op family lives in one module of :mod:`codegen.onnx.ops`, which holds both directions:

- ``@translates("Relu", ...)`` registers ``fn(imp, node)``, the import of ONNX nodes of those
  op types (default domain) into layers; the importer walk calls
  ``TRANSLATORS[node.op_type](imp, node)``;
- ``@folds("Shape", ...)`` registers ``fn(imp, node, inputs)``, the evaluation at import of
  nodes whose inputs are all constants (``of_shapes=True``: whose result depends only on the
  shapes of their inputs, which may then be tensors the network computes). ``inputs`` follows
  ``node.input``: an array for a constant, an :class:`~codegen.onnx.binding.OnnxTensor` for a
  computed tensor, None for an absent optional input. ``fn`` checks the inputs and returns
  either the outputs (a list of arrays) or the number of elements the outputs will have at
  most, predicted from the inputs; the walk then checks that number against the limits of
  :mod:`codegen.onnx.limits` before evaluating the node with ONNX's reference evaluator.
  Nodes of constants whose op has no folder are refused: evaluating arbitrary operators
  (a ``Loop`` of 10^12 iterations, a 50000 x 50000 fill) from a few bytes of model is
  unbounded work;
- ``@spelling("Erf", ...)`` registers ``fn(imp, node)``, the recognition of a layer that
  exporters write as several nodes around a node of those op types (GELU as ``Div -> Erf ->
  Add -> Mul -> Mul``, swish as ``Mul(x, Sigmoid(x))``). The walk calls every such ``fn`` on its
  nodes BEFORE translating any node; ``fn`` looks at the neighbours (``imp.producer``,
  ``imp.readers``, ``imp.peek``) and, where the pattern is complete, hands the group of nodes
  to one translation (``imp.claim``), which the walk runs in place of the nodes' translators;
- ``@exports(ReLULayer, ...)`` registers ``fn(exp, layer) -> (ONNX tensor name, rank)``, the
  export of layers of those classes; the exporter walk calls the function registered for the
  layer's class (or, as ``isinstance`` would, for the nearest base class).

This module imports nothing from the op families; importing :mod:`codegen.onnx` imports them
all (``codegen/onnx/ops/__init__.py``), so the registries are complete before any use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

TRANSLATORS: dict[str, Callable] = {}       # ONNX op type -> translator(imp, node)
EXPORTERS: dict[type, Callable] = {}        # layer class -> exporter(exp, layer) -> (tensor name, rank)

# Op types the importer evaluates at import (through FOLDERS) that count as supported operators
# (the others, e.g. Shape or Gather, are supported only on constants and shapes).
WALK_OPS = ("Constant",)


@dataclass(frozen=True)
class Folder:
    """How to evaluate nodes of one op type at import (see ``@folds``)."""
    fn: Callable
    of_shapes: bool = False


FOLDERS: dict[str, Folder] = {}             # ONNX op type -> Folder
SPELLINGS: dict[str, list[Callable]] = {}   # ONNX op type -> [recognizer(imp, node)], run before the walk


def translates(*op_types: str):
    """Register the decorated ``fn(imp, node)`` as the importer of ``op_types``."""
    def register(fn):
        for op in op_types:
            if op in TRANSLATORS or op in WALK_OPS:
                raise ValueError(f"ONNX operator {op} already has a translator")
            TRANSLATORS[op] = fn
        return fn
    return register


def folds(*op_types: str, of_shapes: bool = False):
    """Register the decorated ``fn(imp, node, inputs)`` as the evaluation at import of ``op_types``."""
    def register(fn):
        for op in op_types:
            if op in FOLDERS:
                raise ValueError(f"ONNX operator {op} already has a folder")
            FOLDERS[op] = Folder(fn, of_shapes)
        return fn
    return register


def spelling(*op_types: str):
    """Register the decorated ``fn(imp, node)`` as a recognizer of a pattern around ``op_types``."""
    def register(fn):
        for op in op_types:
            SPELLINGS.setdefault(op, []).append(fn)
        return fn
    return register


def exports(*classes: type):
    """Register the decorated ``fn(exp, layer)`` as the exporter of layers of ``classes``."""
    def register(fn):
        for cls in classes:
            if cls in EXPORTERS:
                raise ValueError(f"layer class {cls.__name__} already has an exporter")
            EXPORTERS[cls] = fn
        return fn
    return register


def exporter_for(cls: type) -> Callable | None:
    """The exporter of ``cls`` or of its nearest registered base class; None if there is none."""
    for klass in cls.__mro__:
        if klass in EXPORTERS:
            return EXPORTERS[klass]
    return None


def supported_ops() -> tuple[str, ...]:
    """The op types the importer maps: the translators in registration order, then the walk's."""
    return (*TRANSLATORS, *WALK_OPS)
