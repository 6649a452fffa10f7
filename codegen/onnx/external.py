"""External data of an ONNX model (tensors whose bytes live in another file), read safely.

Models are loaded with ``load_external_data=False``; :func:`read_external_data` then reads
each tensor's external bytes itself, after these checks:

- external data is allowed only for a model given as a path, and only relative to the
  model's folder (for bytes or an ``onnx.ModelProto`` there is no folder to trust: refused);
- the location is a relative path without ``..``; resolved (symbolic links followed), it
  must be a regular file inside the model's folder;
- offset and length are nonnegative integers, the length (when given) equals what the
  tensor's dimensions and element type need, and offset + length lies within the file.

Every refusal is an :class:`OnnxImportError` naming the tensor (initializer or the node whose
attribute holds it) and the problem.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import OnnxImportError, quote
from .limits import element_count
from .tensors import itemsize

_ABSOLUTE = re.compile(r"^([A-Za-z]:|[\\/])")


def read_external_data(model, folder: Path | None, source: str):
    """Replace the external data of every tensor of ``model`` by the checked bytes from
    ``folder`` (the model file's folder; None for a model given as bytes or a ModelProto,
    described by ``source``)."""
    for tensor, what in _tensors(model.graph):
        if not _is_external(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if folder is None:
            raise OnnxImportError(f"{what} keeps its data in an external file ({quote(location)}); external data is "
                                  f"read only for a model given as a path (from its folder), not for {source}")
        _read(tensor, what, folder, info)


def _is_external(tensor) -> bool:
    from onnx import TensorProto
    return tensor.data_location == TensorProto.EXTERNAL


def _tensors(graph, prefix: str = ""):
    """(tensor, how messages name it) for every tensor of ``graph`` and of its subgraphs."""
    from onnx import AttributeProto
    for t in graph.initializer:
        yield t, f"{prefix}initializer {quote(t.name)}"
    for node in graph.node:
        where = f"{prefix}attribute of ONNX node {quote(node.name or (node.output[0] if node.output else '?'))}"
        for a in node.attribute:
            if a.type == AttributeProto.TENSOR:
                yield a.t, f"{where} ({quote(a.name)})"
            elif a.type == AttributeProto.TENSORS:
                for t in a.tensors:
                    yield t, f"{where} ({quote(a.name)})"
            elif a.type == AttributeProto.GRAPH:
                yield from _tensors(a.g, f"{prefix}subgraph {quote(a.name)}: ")
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _tensors(g, f"{prefix}subgraph {quote(a.name)}: ")


def _number(info: dict, key: str, what: str) -> int | None:
    if key not in info:
        return None
    text = info[key]
    if not re.fullmatch(r"[0-9]{1,19}", text):
        raise OnnxImportError(f"{what}: external data {key} is {quote(text)}; expected a nonnegative integer")
    return int(text)


def _read(tensor, what: str, folder: Path, info: dict):
    from onnx import TensorProto
    location = info.get("location", "")
    shown = quote(location)
    if not location:
        raise OnnxImportError(f"{what} keeps its data in an external file but names none (no 'location')")
    if "\x00" in location or _ABSOLUTE.match(location):
        raise OnnxImportError(f"{what}: external data location {shown} is an absolute path; only paths relative to "
                              "the model's folder are allowed")
    if ".." in re.split(r"[\\/]", location):
        raise OnnxImportError(f"{what}: external data location {shown} contains '..'; only files inside the model's "
                              "folder are allowed")
    base = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, target]) != base or target == base:
        raise OnnxImportError(f"{what}: external data location {shown} leads outside the model's folder "
                              "(through a symbolic link); only files inside it are allowed")
    if not os.path.isfile(target):
        raise OnnxImportError(f"{what}: external data file {shown} does not exist in the model's folder (or is not a "
                              "regular file)")
    offset = _number(info, "offset", what) or 0
    length = _number(info, "length", what)
    needed = element_count(tensor.dims, what) * itemsize(tensor.data_type, what)
    if length is not None and length != needed:
        raise OnnxImportError(f"{what}: external data length is {length} bytes; its shape {list(tensor.dims)} and "
                              f"type need {needed}")
    size = os.path.getsize(target)
    if offset + needed > size:
        raise OnnxImportError(f"{what}: external data at offset {offset} with {needed} bytes runs past the end of "
                              f"{shown} ({size} bytes)")
    try:
        with open(target, "rb") as fh:
            fh.seek(offset)
            data = fh.read(needed)
    except OSError as exc:
        raise OnnxImportError(f"{what}: cannot read external data file {shown}: {exc.strerror}") from None
    if len(data) != needed:
        raise OnnxImportError(f"{what}: external data file {shown} changed while reading it")
    tensor.raw_data = data
    tensor.data_location = TensorProto.DEFAULT
    del tensor.external_data[:]
