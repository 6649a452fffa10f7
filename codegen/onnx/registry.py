"""The two registries that connect ONNX operators and our layer classes.

Every op family lives in one module of :mod:`codegen.onnx.ops`, which holds both directions:

- ``@translates("Relu", ...)`` registers ``fn(imp, node)``, the import of ONNX nodes of those
  op types (default domain) into layers; the importer walk calls
  ``TRANSLATORS[node.op_type](imp, node)``;
- ``@exports(ReLULayer, ...)`` registers ``fn(exp, layer) -> (ONNX tensor name, rank)``, the
  export of layers of those classes; the exporter walk calls the function registered for the
  layer's class (or, as ``isinstance`` would, for the nearest base class).

This module imports nothing from the op families; importing :mod:`codegen.onnx` imports them
all (``codegen/onnx/ops/__init__.py``), so the registries are complete before any use.
"""

from __future__ import annotations

from typing import Callable

TRANSLATORS: dict[str, Callable] = {}       # ONNX op type -> translator(imp, node)
EXPORTERS: dict[type, Callable] = {}        # layer class -> exporter(exp, layer) -> (tensor name, rank)

# Op types the importer walk handles itself (nodes whose inputs are all constants, and Shape of
# a tensor, are evaluated at import whatever their type; only Constant is listed as supported).
WALK_OPS = ("Constant",)


def translates(*op_types: str):
    """Register the decorated ``fn(imp, node)`` as the importer of ``op_types``."""
    def register(fn):
        for op in op_types:
            if op in TRANSLATORS or op in WALK_OPS:
                raise ValueError(f"ONNX operator {op} already has a translator")
            TRANSLATORS[op] = fn
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
