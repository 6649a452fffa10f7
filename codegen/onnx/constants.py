"""Constants at import: nodes evaluated when their inputs are constants (or, for ``Shape``,
tensors of known shape), through the folders registered with ``@folds``
(:mod:`codegen.onnx.registry`; the folders live in :mod:`codegen.onnx.ops.shapes`).

:func:`fold` hands the node's inputs to its folder, which checks them and returns either the
outputs or the number of elements they will have at most; in the latter case the number is
checked BEFORE anything is evaluated: no more than ``MAX_FOLD_ELEMENTS`` beyond the size of
the largest input, and never more than ``MAX_ELEMENTS`` (:mod:`codegen.onnx.limits`). Only then
does ONNX's reference evaluator compute the node. The outputs go to ``imp.consts`` (output
name -> array), where translators find them (``imp.const``).
"""

from __future__ import annotations

import numpy as np

from .errors import OnnxImportError, escape, quote
from .limits import MAX_ELEMENTS, MAX_FOLD_ELEMENTS


def fold(imp, node, folder):
    """Evaluate ``node`` at import with ``folder`` (a :class:`~codegen.onnx.registry.Folder`)."""
    inputs = []
    for k, name in enumerate(node.input):
        if name and name not in imp.consts and name not in imp.tensors:
            raise OnnxImportError(f"{imp.where(node)}: input {k} ({quote(name)}) is not available at import (an "
                                  "output the importer does not compute)")
        inputs.append(None if not name else imp.consts[name] if name in imp.consts else imp.tensors[name])
    result = folder.fn(imp, node, inputs)
    if isinstance(result, (int, np.integer)):
        result = _evaluate(imp, node, inputs, int(result))
    for name, value in zip(node.output, result):
        if name:
            imp.consts[name] = np.asarray(value)


def fold_limit(inputs) -> int:
    """The most elements a folded node may produce, given its ``inputs``."""
    biggest = max((v.size for v in inputs if isinstance(v, np.ndarray)), default=0)
    return min(MAX_ELEMENTS, max(MAX_FOLD_ELEMENTS, biggest))


def _evaluate(imp, node, inputs, predicted: int) -> list:
    """The outputs of ``node`` on constant ``inputs`` from ONNX's reference evaluator, after
    checking the ``predicted`` number of output elements."""
    limit = fold_limit(inputs)
    if predicted > limit:
        raise OnnxImportError(f"{imp.where(node)}: its inputs are constants, but its result would have {predicted} "
                              f"elements; evaluating it at import is limited to {limit}")
    from onnx.reference import ReferenceEvaluator
    helper = imp.helper
    names = [n for n in node.input if n]
    values = [v for n, v in zip(node.input, inputs) if n]
    infos = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), None)
             for n, v in zip(names, values)]
    outputs = [helper.make_tensor_value_info(o, imp.onnx.TensorProto.UNDEFINED, None) for o in node.output if o]
    graph = helper.make_graph([node], "fold", infos, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", imp.opset)])
    model.ir_version = imp.model.ir_version or model.ir_version
    try:
        with np.errstate(all="ignore"):
            results = ReferenceEvaluator(model).run(None, dict(zip(names, values)))
    except Exception as exc:  # noqa: BLE001 - report which node could not be evaluated
        raise OnnxImportError(f"{imp.where(node)}: its inputs are constants, but evaluating it at import failed: "
                              f"{escape(f'{type(exc).__name__}: {exc}', 300)}") from None
    out = []
    for k, name in enumerate(o for o in node.output if o):
        value = np.asarray(results[k])
        if value.size > limit:          # the prediction is an upper bound: this is a bug guard
            raise OnnxImportError(f"{imp.where(node)}: evaluating it at import made {value.size} elements; the "
                                  f"limit is {limit}")
        out.append(value)
    # the walk zips these with node.output, which may contain empty (unused) names
    it = iter(out)
    return [next(it) if o else None for o in node.output]
