"""Sliding windows: the ``strides``, ``dilations``, ``pads`` and ``auto_pad`` attributes that
``Conv`` (:mod:`codegen.onnx.ops.conv`) and the pooling ops (:mod:`codegen.onnx.ops.pooling`)
share. No op lives here.

``pads`` turns ONNX's ``[t l b r]`` into our ``[t b l r]``; ``auto_pad`` SAME_UPPER/SAME_LOWER
are resolved with ONNX's rule (output ceil(in / stride), the dilated kernel, the odd pad after
resp. before). The sizes were bounded by the walk (:mod:`codegen.onnx.validate`).

A zero ``Pad`` before a window op (:mod:`codegen.onnx.ops.padding`) leaves its padding in the
input's ``OnnxTensor.pad``: :func:`absorb` adds it to the op's own, :func:`average_pool_padding`
says whether an average pooling still counts the padding (or refuses).
"""

from __future__ import annotations

from ..binding import OnnxTensor
from ..errors import quote


def auto_pad(attrs: dict) -> str:
    """The ``auto_pad`` attribute as text (bytes that are not UTF-8 escaped, never an exception)."""
    auto = attrs.get("auto_pad", b"NOTSET")
    return auto.decode("utf-8", errors="backslashreplace") if isinstance(auto, bytes) else auto


def pair(imp, node, attrs: dict, key: str) -> list[int]:
    """A 2-D attribute of positive integers (``strides``, ``dilations``), default [1, 1]."""
    v = list(attrs.get(key, [1, 1]))
    if len(v) != 2 or min(v) < 1:
        imp.refuse(node, f"attribute '{key}'", v, "expected two positive integers (2-D)")
    return [int(a) for a in v]


def pads(imp, node, attrs, in_hw, kernel, strides) -> list[int]:
    """[t b l r] from auto_pad / pads (ONNX order [t l b r]); SAME_* with ONNX's rule."""
    auto = auto_pad(attrs)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if "pads" in attrs and any(attrs["pads"]):
            imp.refuse(node, "attribute 'pads'", attrs["pads"], f"pads cannot be given with auto_pad={auto}")
        out = []
        for n, k, s in zip(in_hw, kernel, strides):
            o = -(-n // s)
            total = max(0, (o - 1) * s + k - n)
            small = total // 2
            out += [total - small, small] if auto == "SAME_LOWER" else [small, total - small]
        return out
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto != "NOTSET":
        imp.refuse(node, "attribute 'auto_pad'", quote(auto), "expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    values = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(values) != 4 or min(values) < 0:
        imp.refuse(node, "attribute 'pads'", values, "expected 4 nonnegative values [top left bottom right]")
    t, left, bottom, r = values
    return [t, bottom, left, r]


def absorb(x: OnnxTensor, pads: list[int]) -> list[int]:
    """A window op's padding [t b l r] with that of the Pad whose result ``x`` is added."""
    return [p + q for p, q in zip(pads, x.pad)] if x.pad else list(pads)


def average_pool_padding(imp, node, x: OnnxTensor, attrs: dict, pads: list[int], extra: list[int]) -> bool:
    """Whether an AveragePool that reads ``x`` (a Pad's result, else nothing changes) counts the padding
    (count_include_pad), after refusing what averagePooling2dLayer cannot express."""
    include = bool(attrs.get("count_include_pad", 0))
    if not x.pad:
        return include
    if any(extra):
        imp.refuse(node, "attribute 'ceil_mode'", attrs["ceil_mode"],
                   "after a Pad, the last window extends past the padded input and averages over fewer elements "
                   "than the pool size; averagePooling2dLayer cannot express that")
    if not include and any(pads):
        imp.refuse(node, "attribute 'count_include_pad'", 0,
                   f"with padding of its own ({pads}) after a Pad, the Pad's zeros count and its own padding does "
                   "not; averagePooling2dLayer counts all or none of the padding")
    return True             # the Pad's zeros are inside every window: they count
