"""What a build report shows, gathered once as plain data (``report.json`` in the output folder).

Everything here is JSON: the network's layers (type, options, shape, learnables, MACs), the plan's
ops and arena buffers (offsets and lifetimes, in bytes), the target's own facts
(:meth:`codegen.library.Library.report_facts`: compiler and flags, footprint, instructions per
op), the verification and, where the build measured them, per-layer errors or SQNR. The page
itself (:mod:`codegen.report.page`) is rendered from this and the generated files, so
``codegen report <folder>`` can render it again without building anything.
"""

from __future__ import annotations

import datetime
import math
import platform

from ..version import __version__

FORMAT = 1          # the layout of report.json; a page is rendered only from a layout it knows


def _buffers(plan) -> list[dict]:
    """The arena buffers: byte offset and size, the ops that write first and read last, the tensors in it."""
    seen: dict[int, dict] = {}
    eb = plan.element_bytes
    for op in plan.ops:
        for t in [*op.inputs, op.output]:
            b = t.buffer
            if b.kind != "arena":
                continue
            entry = seen.setdefault(id(b), dict(offset=b.offset * eb, bytes=b.size * eb, first=b.first,
                                                last=b.last, tensors=[]))
            if t.name not in entry["tensors"]:
                entry["tensors"].append(t.name)
    return sorted(seen.values(), key=lambda e: (e["first"], e["offset"]))


def _place(t, eb: int) -> dict:
    b = t.buffer
    return dict(kind=b.kind, offset=b.offset * eb, bytes=b.size * eb,
                channels=None if t.pitch == t.shape[2] else [t.choff, t.choff + t.shape[2] - 1, t.pitch])


def _ops(plan, per_op: dict | None, op_seconds: dict | None) -> list[dict]:
    eb = plan.element_bytes
    ops = []
    for i, op in enumerate(plan.ops):
        label = "+".join(op.layers)
        ops.append(dict(index=i, kind=op.kind, name=op.name, layers=list(op.layers), label=label,
                        macs=int(getattr(op.attrs, "macs", 0) or 0),
                        inputs=[dict(tensor=t.name, shape=list(t.shape), **_place(t, eb)) for t in op.inputs],
                        output=dict(tensor=op.output.name, shape=list(op.output.shape), **_place(op.output, eb)),
                        inplace=bool(op.inplace),
                        instructions=None if per_op is None else per_op.get(label),
                        seconds=None if op_seconds is None else op_seconds.get(label)))
    return ops


def _layers(net) -> list[dict]:
    rows = []
    for layer in net.layers:
        name = layer.Name
        in_shapes = [net.shapes[s] for s in net.inputs[name]]
        shape = net.shapes[name]
        rows.append(dict(name=name, type=layer.TYPE, options=layer.describe(), shape=list(shape),
                         inputs=list(net.inputs[name]), learnables=int(net.learnable_count(layer)),
                         macs=int(layer.macs(in_shapes, shape)), activation_bytes=4 * math.prod(shape)))
    return rows


def gather(net, lib, *, source: str = "", build_seconds: float | None = None, verification=None,
           per_layer=None, command: str = "") -> dict:
    """The report's data for ``lib`` (a built :class:`~codegen.library.Library`) of ``net``.
    ``verification``/``per_layer``: what the build's verification returned (their ``facts()``)."""
    plan = lib.plan
    target = lib.report_facts()
    per_op, op_seconds = target.get("per_op"), target.get("op_seconds")
    return dict(
        format=FORMAT, version=__version__, source=source, command=command,
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})",
        network=dict(name=net.name, prefix=lib.prefix, input=list(plan.input.shape),
                     outputs=[list(t.shape) for t in plan.outputs], dtype=plan.dtype, layers=len(net.layers)),
        plan=dict(ops=len(plan.ops), arena_bytes=plan.arena_bytes, activation_bytes=plan.activation_bytes,
                  naive_bytes=plan.naive_bytes, weight_bytes=lib.weight_bytes, macs=int(plan.macs),
                  element_bytes=plan.element_bytes, reuse=bool(plan.reuse)),
        target=target, build_seconds=build_seconds,
        verification=None if verification is None else verification.facts(),
        per_layer=None if per_layer is None else per_layer.facts(),
        layers=_layers(net), ops=_ops(plan, per_op, op_seconds), buffers=_buffers(plan),
        files=sorted(lib.files))
