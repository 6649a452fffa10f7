"""Constants at import: ``Constant`` nodes, ``Shape`` of a tensor (its shape is known), and
nodes whose inputs are all constants, evaluated with ONNX's reference evaluator.

The importer walk calls these for such nodes before looking for a translator; their values go
to ``imp.consts`` (output name -> array), where translators find them (``imp.const``).
"""

from __future__ import annotations

import numpy as np

from .errors import OnnxImportError, escape, quote
from .limits import check_elements
from .tensors import decode


def constant_node(imp, node):
    """A ``Constant`` node: its value decoded with its size and data checked (:mod:`codegen.onnx.tensors`)."""
    attrs = imp.attrs(node)
    what = f"{imp.where(node)}: attribute"
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            check_elements(len(attrs[key]), f"{what} {quote(key)}")
    if "value" in attrs:
        value = decode(attrs["value"], f"{what} 'value'")
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        value = np.array(attrs["value_ints"], np.int64)
    else:
        imp.refuse(node, "attribute", sorted(attrs), "supported: value, value_float(s), value_int(s)")
    imp.consts[node.output[0]] = value


def shape_of_tensor(imp, node):
    """``Shape`` of a tensor the network computes: its ONNX shape (batch 1)."""
    attrs = imp.attrs(node)
    shape = np.array(imp.tensors[node.input[0]].onnx_shape(), np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    imp.consts[node.output[0]] = shape[start:end]


def fold(imp, node):
    """Evaluate a node whose inputs are all constants with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator
    helper = imp.helper
    names = [i for i in node.input if i]
    inputs = [helper.make_tensor_value_info(n, _elem_type(helper, imp.consts[n]), None) for n in names]
    outputs = [helper.make_tensor_value_info(o, imp.onnx.TensorProto.UNDEFINED, None) for o in node.output if o]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=list(imp.model.opset_import))
    model.ir_version = imp.model.ir_version or model.ir_version
    try:
        values = ReferenceEvaluator(model).run(None, {n: imp.consts[n] for n in names})
    except Exception as exc:  # noqa: BLE001 - report which node could not be evaluated
        raise OnnxImportError(f"{imp.where(node)}: its inputs are constants, but evaluating it at import "
                              f"failed: {escape(f'{type(exc).__name__}: {exc}', 300)}") from None
    for o, v in zip([o for o in node.output if o], values):
        imp.consts[o] = np.asarray(v)


def _elem_type(helper, arr: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(np.asarray(arr).dtype)
