"""Checks of an ONNX model's structure before the importer gives it any meaning.

ONNX files are untrusted input, and ``onnx.checker`` is not run on them (it is slow on big
models and not all exporters satisfy it), so the importer checks what it relies on:

- :func:`default_opset`: the model imports the default operator set in a version this
  ``onnx`` package knows (opset 6 up to ``onnx.defs.onnx_opset_version()``);
- :func:`check_names`: every tensor has one producer: no two nodes write the same output, and
  no node output is also a graph input or an initializer (onnxruntime and the checker refuse
  such models; the importer would silently pick one of the writers);
- :func:`check_node`, for every node before dispatch: the default domain; an operator of that
  opset, with as many inputs and outputs as its schema allows (required inputs not empty);
  every attribute known to the operator's schema in that opset, with the schema's type
  (float ``strides`` are not truncated to integers), given once; integer attributes within
  ``MAX_DIM`` and integer lists within ``2 * MAX_RANK`` values, except the attributes that hold
  data rather than sizes (:data:`DATA_ATTRIBUTES`).
"""

from __future__ import annotations

from .errors import OnnxImportError, escape, quote
from .limits import MAX_DIM, MAX_RANK

MIN_OPSET = 6

# integer attributes that hold data, not sizes: Constant's values, Slice's starts/ends before
# opset 10 (INT64_MAX means "to the end"), Dropout's seed
DATA_ATTRIBUTES = frozenset({"value_int", "value_ints", "starts", "ends", "seed"})


def default_opset(model) -> int:
    """The model's version of the default operator set, refused outside what we and onnx support."""
    from onnx.defs import onnx_opset_version
    newest = onnx_opset_version()
    version = None
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            version = imp.version
    if version is None:
        raise OnnxImportError("the ONNX model imports no version of the default operator set (ai.onnx)")
    if version < MIN_OPSET:
        raise OnnxImportError(f"the ONNX model uses opset {version}; opset {MIN_OPSET} or later is supported "
                              "(convert it with onnx.version_converter)")
    if version > newest:
        raise OnnxImportError(f"the ONNX model uses opset {version}; supported are opsets {MIN_OPSET} to {newest} "
                              "(the newest the installed onnx package knows)")
    return version


def check_names(graph, where):
    """Every tensor name has at most one definition (graph input, initializer or node output)."""
    defined: dict[str, str] = {}
    for init in graph.initializer:
        if init.name in defined:
            raise OnnxImportError(f"initializer {quote(init.name)} is defined twice")
        defined[init.name] = "an initializer"
    inputs = set()
    for inp in graph.input:
        if inp.name in inputs:
            raise OnnxImportError(f"graph input {quote(inp.name)} is listed twice")
        inputs.add(inp.name)
        defined.setdefault(inp.name, "a graph input")
    for node in graph.node:
        for out in node.output:
            if not out:
                continue
            if out in defined:
                raise OnnxImportError(f"{where(node)}: output {quote(out)} is already {defined[out]}; every tensor "
                                      "must have exactly one producer")
            defined[out] = f"the output of {where(node)}"


def check_node(node, opset: int, where):
    """The node's domain, operator and attributes (see the module doc)."""
    from onnx import AttributeProto, defs
    if node.domain not in ("", "ai.onnx"):
        raise OnnxImportError(f"{where(node)}: operator domain {quote(node.domain)} is not supported (only the "
                              "default ONNX domain)")
    try:
        schema = defs.get_schema(node.op_type, opset, "")
    except defs.SchemaError:
        raise OnnxImportError(f"{where(node)}: {quote(node.op_type)} is not an operator of ONNX opset {opset}") \
            from None
    _check_arity(node, schema, opset, where)
    known = schema.attributes
    seen = set()
    for attr in node.attribute:
        what = f"{where(node)}: attribute {quote(attr.name)}"
        if attr.name in seen:
            raise OnnxImportError(f"{what} is given twice")
        seen.add(attr.name)
        if attr.name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise OnnxImportError(f"{what} is {_value(attr)}; {escape(node.op_type)} (opset {opset}) has no such "
                                  f"attribute (its attributes: {allowed})")
        expected = int(known[attr.name].type)
        if attr.type != expected:
            raise OnnxImportError(f"{what} has type {_type_name(attr.type)}; {escape(node.op_type)} (opset {opset}) "
                                  f"expects {_type_name(expected)}")
        if attr.name in DATA_ATTRIBUTES:
            continue
        if attr.type == AttributeProto.INT:
            _check_int(what, attr.i)
        elif attr.type == AttributeProto.INTS:
            if len(attr.ints) > 2 * MAX_RANK:
                raise OnnxImportError(f"{what} has {len(attr.ints)} values; at most {2 * MAX_RANK} are supported")
            for v in attr.ints:
                _check_int(what, v, list(attr.ints))


def _check_arity(node, schema, opset: int, where):
    """As many inputs and outputs as the schema allows, and no required input left empty."""
    from onnx.defs import OpSchema
    op = escape(node.op_type)
    for kind, given, low, high in (("inputs", len(node.input), schema.min_input, schema.max_input),
                                   ("outputs", len(node.output), schema.min_output, schema.max_output)):
        if not low <= given <= high:
            allowed = f"{low} or more" if high >= 2 ** 31 - 1 else f"{low}" if low == high else f"{low} to {high}"
            raise OnnxImportError(f"{where(node)} has {given} {kind}; {op} (opset {opset}) takes {allowed}")
    for k, formal in enumerate(schema.inputs[:len(node.input)]):
        if formal.option == OpSchema.FormalParameterOption.Single and not node.input[k]:
            raise OnnxImportError(f"{where(node)}: input {k} ({escape(formal.name)}) is empty; {op} requires it")
    if not node.output[0]:
        raise OnnxImportError(f"{where(node)}: output 0 has an empty name; it must be named")


def _check_int(what: str, value: int, values=None):
    if abs(value) > MAX_DIM:
        shown = f" (in {_short(values)})" if values is not None else ""
        raise OnnxImportError(f"{what} has the value {value}{shown}; integer attributes are limited to +-{MAX_DIM} "
                              "(2^24)")


def _short(values) -> str:
    return str(values) if len(values) <= 8 else f"{values[:8]}..."


def _type_name(t: int) -> str:
    from onnx import AttributeProto
    try:
        return AttributeProto.AttributeType.Name(t)
    except ValueError:
        return f"{t} (not an attribute type)"


def _value(attr) -> str:
    """An attribute's value for a message (its type where it cannot be read)."""
    from onnx import AttributeProto, helper
    if attr.type in (AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.INTS, AttributeProto.FLOATS,
                     AttributeProto.STRING):
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            return quote(value)
        if isinstance(value, list):
            return escape(_short(value), 80)
        return escape(value, 80)
    return f"of type {_type_name(attr.type)}"
