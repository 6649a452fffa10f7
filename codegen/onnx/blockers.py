"""Before the walk: every node the importer cannot translate, reported at once, and where each came
from in the PyTorch model, so that one refusal lists everything a user has to change.

Where a node came from: PyTorch's default (torch.export-based) exporter records it in the node's
metadata (``pkg.torch.onnx.name_scopes``: the module path, ``pkg.torch.onnx.class_hierarchy``:
the modules' classes); the legacy exporter names nodes after the module path
(``/features/features.2/Conv``). Both are untrusted text: parsed as Python literals (no code),
bounded in size, escaped when shown.
"""

from __future__ import annotations

import ast

from .errors import OnnxImportError, escape, quote
from .registry import FOLDERS, TRANSLATORS, supported_ops

MAX_METADATA = 4096          # characters of a metadata value that are parsed
MAX_LISTED = 3               # nodes named per unsupported operator


def _literal_list(text: str) -> list[str]:
    if len(text) > MAX_METADATA:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def pytorch_origin(node) -> str:
    """"; PyTorch module 'features.2' (torch.nn.Conv2d)" for a node the default exporter wrote, "; PyTorch
    __main__.Net.forward" for one of the model's own forward; '' if the node says nothing."""
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = _literal_list(meta.get("pkg.torch.onnx.name_scopes", ""))
    classes = _literal_list(meta.get("pkg.torch.onnx.class_hierarchy", ""))
    if len(scopes) < 2:
        return ""
    module = scopes[-2] if len(scopes) > 2 else ""
    cls = classes[-2] if len(classes) >= 2 and len(scopes) > 2 else (classes[0] if classes else "")
    cls = cls.replace("torch.nn.modules.", "torch.nn.").split(".")
    cls = ".".join(cls[:2] + cls[-1:]) if cls[:2] == ["torch", "nn"] else ".".join(cls)
    if not module:
        return f"; PyTorch {escape(cls, 60)}.forward" if cls else ""
    return f"; PyTorch module {quote(module)}" + (f" ({escape(cls, 60)})" if cls else "")


def _constants(nodes, consts: set[str]) -> set[str]:
    """The tensors that will be constants at import: initializers, and outputs of foldable nodes
    whose inputs are constants (or which fold from shapes alone)."""
    known = set(consts)
    for node in nodes:
        inputs = [i for i in node.input if i]
        folder = FOLDERS.get(node.op_type)
        if folder is not None and (folder.of_shapes or all(i in known for i in inputs)):
            known.update(o for o in node.output if o)
    return known


def check_supported(nodes, consts: set[str], where) -> None:
    """One OnnxImportError listing every node whose operator the importer cannot translate, grouped by
    operator (count, the first nodes, their PyTorch modules where the model says)."""
    constant = _constants(nodes, consts)
    blocked: dict[str, list] = {}
    for node in nodes:
        op = node.op_type
        if op in TRANSLATORS or op in FOLDERS:
            continue
        inputs = [i for i in node.input if i]
        if inputs and all(i in constant for i in inputs):
            continue                      # evaluated at import, or refused there with its own reason
        blocked.setdefault(op, []).append(node)
    if not blocked:
        return
    parts = []
    for op, group in sorted(blocked.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = ", ".join(where(n) for n in group[:MAX_LISTED])
        more = f" and {len(group) - MAX_LISTED} more" if len(group) > MAX_LISTED else ""
        parts.append(f"{escape(op, 40)} ({len(group)} node{'s' if len(group) > 1 else ''}: {shown}{more})")
    total = sum(len(g) for g in blocked.values())
    if total == 1:
        node = next(iter(blocked.values()))[0]
        raise OnnxImportError(f"{where(node)}: operator {escape(node.op_type)} is not "
                              "supported; supported operators: " + ", ".join(supported_ops()))
    raise OnnxImportError(f"the ONNX model uses {len(blocked)} operator{'s' if len(blocked) > 1 else ''} codegen "
                          f"does not support, in {total} nodes: " + " | ".join(parts)
                          + "; supported operators: " + ", ".join(supported_ops()))
