"""Lowering: a Network becomes a short list of planned operations over a static arena.

Steps (each a small function below):

1. ``lower``: one operation per layer, with concrete shapes and weights packed the way the
   kernels read them (convolution ``[g][ky][kx][c][f]``, fully connected ``[in][out]`` with
   the rows permuted from MATLAB's column-major flatten order to our HWC memory order).
   Input normalization becomes a ``normalize`` op; output layers and ``'none'`` normalization
   are identities.
2. ``fuse``: batch normalization folds into the preceding convolution or fully connected
   layer (exact in real arithmetic: w' = w * a, b' = b * a + shift); ReLU-family
   activations fuse into their producer when it has no other consumer.
3. ``place``: concatenations are written in place by their producers (each producer writes
   its channel slice with the concatenation's pixel pitch); elementwise ops reuse a buffer
   that dies at them; every other buffer gets an arena offset by liveness (greedy by size,
   64-byte aligned), so a skip connection keeps its buffer alive until its last reader.

Only writers deal with pitched views; every op reads dense tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import UnsupportedError
from .layers import (AdditionLayer, AveragePooling2DLayer, BatchNormalizationLayer, ClassificationOutputLayer,
                     ConcatenationLayer, Convolution2DLayer, FullyConnectedLayer, GlobalAveragePooling2DLayer,
                     GroupedConvolution2DLayer, ImageInputLayer, MaxPooling2DLayer, SoftmaxLayer)
from .layers.activations import _Activation
from .network import Network

ALIGN_BYTES = 64
ELEMENTWISE = {"act", "scale_shift", "add", "softmax", "normalize"}   # may write over a dying input
EPILOGUE = {"conv", "fc", "add", "scale_shift", "maxpool", "avgpool", "normalize"}   # can apply an activation


@dataclass(eq=False)
class Buffer:
    kind: str                 # 'arena', 'input' or 'output'
    size: int                 # floats
    offset: int = 0           # floats from the start of the arena
    first: int = 0            # op index of the first write
    last: int = 0             # op index of the last read


@dataclass(eq=False)
class Tensor:
    name: str                 # the layer that produces it
    shape: tuple              # (H, W, C)
    parent: "Tensor | None" = None   # the concatenation output this tensor is a channel slice of
    parent_choff: int = 0            # first channel of the slice in the parent
    # filled by place():
    buffer: Buffer | None = None
    choff: int = 0            # channel offset inside the buffer's pixel
    pitch: int = 0            # floats per pixel in the buffer

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dense(self) -> bool:
        return self.choff == 0 and self.pitch == self.shape[2]


@dataclass(eq=False)
class Activation:
    kind: str                 # 'relu', 'leaky' or 'clipped'
    param: float = 0.0        # leaky scale or clipped ceiling
    layer: str = ""


@dataclass(eq=False)
class Op:
    kind: str                 # conv, fc, maxpool, avgpool, softmax, add, act, scale_shift, normalize, copy, concat
    name: str                 # layer name it comes from (sanitized when emitted)
    layers: list[str]         # every layer it implements (after fusion)
    inputs: list[Tensor]
    output: Tensor
    attrs: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)   # role -> packed float32 array
    act: Activation | None = None
    inplace: bool = False

    def describe(self) -> str:
        """One line for ``codegen build --plan``."""
        ins = ", ".join(f"{t.name}[{'x'.join(map(str, t.shape))}]" for t in self.inputs)
        out = self.output
        a = self.attrs
        extra = ""
        if self.kind == "conv":
            extra = (f" {a['KH']}x{a['KW']} stride {a['SH']},{a['SW']} dilation {a['DH']},{a['DW']} "
                     f"pad {a['PT']},{a['PB']},{a['PL']},{a['PR']} groups {a['G']}")
        elif self.kind in ("maxpool", "avgpool"):
            extra = f" {a['KH']}x{a['KW']} stride {a['SH']},{a['SW']} pad {a['PT']},{a['PB']},{a['PL']},{a['PR']}"
        if self.act:
            extra += f" +{self.act.kind}"
        if self.inplace:
            extra += " (in place)"
        if not out.dense:
            extra += f" -> channels {out.choff}..{out.choff + out.shape[2] - 1} of {out.pitch}"
        return f"{self.kind:<11} {'+'.join(self.layers)}: {ins} -> {'x'.join(map(str, out.shape))}{extra}"


@dataclass
class Plan:
    name: str
    ops: list[Op]
    input: Tensor
    output: Tensor
    arena_floats: int
    activations_floats: int       # sum of every layer's activation (the unfused network)
    naive_floats: int             # one buffer per planned op output
    macs: int
    reuse: bool

    @property
    def arena_bytes(self) -> int:
        return self.arena_floats * 4

    @property
    def weight_bytes(self) -> int:
        return sum(w.size * 4 for op in self.ops for w in op.weights.values())

    def describe(self) -> str:
        lines = [f"plan for '{self.name}': {len(self.ops)} ops"]
        for i, op in enumerate(self.ops):
            place = "out" if op.output.buffer.kind == "output" else f"arena+{op.output.buffer.offset * 4}B"
            lines.append(f"  {i:>3}  {op.describe()}  @ {place}")
        lines.append(f"arena {self.arena_bytes:,} bytes; sum of activations {self.activations_floats * 4:,} bytes; "
                     f"one buffer per op {self.naive_floats * 4:,} bytes; weights {self.weight_bytes:,} bytes; "
                     f"MACs {self.macs:,}")
        return "\n".join(lines)


# =============================================================================== lowering

def _act_of(layer) -> Activation:
    kind, param = layer.activation()
    return Activation(kind, float(param), layer.Name)


def _conv(layer, x: Tensor, out: Tensor) -> Op:
    w = layer._weights_as_groups()                       # kh x kw x C/G x F/G x G
    kh, kw, cg, fg, g = w.shape
    packed = np.ascontiguousarray(np.transpose(w, (4, 0, 1, 2, 3)), dtype=np.float32)   # [g][ky][kx][c][f]
    pt, pb, pl, pr = layer.PaddingSize
    if layer.PaddingValue != 0:
        raise UnsupportedError(
            f"{layer.label}: property 'PaddingValue' is {layer.PaddingValue!r}; code generation supports only "
            "PaddingValue 0 (MATLAB Coder: \"Code generation does not support 'PaddingValue' equal to "
            "'replicate', 'symmetric-include-edge', 'symmetric-exclude-edge' or a nonzero scalar\"). "
            "The reference (net.predict) supports it.")
    attrs = dict(IH=x.shape[0], IW=x.shape[1], IC=x.shape[2], OH=out.shape[0], OW=out.shape[1], OC=out.shape[2],
                 KH=kh, KW=kw, SH=layer.Stride[0], SW=layer.Stride[1], DH=layer.DilationFactor[0],
                 DW=layer.DilationFactor[1], PT=pt, PB=pb, PL=pl, PR=pr, G=g, CG=cg, FG=fg)
    bias = np.asarray(layer._bias_flat(), dtype=np.float32)
    return Op("conv", layer.Name, [layer.Name], [x], out, attrs, {"w": packed, "b": bias})


def _pool(kind, layer, x: Tensor, out: Tensor) -> Op:
    if isinstance(layer, GlobalAveragePooling2DLayer):
        kh, kw, sh, sw, pads, exclude = x.shape[0], x.shape[1], 1, 1, [0, 0, 0, 0], False
    else:
        (kh, kw), (sh, sw), pads = layer.PoolSize, layer.Stride, layer.PaddingSize
        exclude = getattr(layer, "PaddingValue", 0) == "mean"
    attrs = dict(IH=x.shape[0], IW=x.shape[1], C=x.shape[2], OH=out.shape[0], OW=out.shape[1], KH=kh, KW=kw,
                 SH=sh, SW=sw, PT=pads[0], PB=pads[1], PL=pads[2], PR=pads[3], EXCLUDE_PAD=exclude)
    return Op(kind, layer.Name, [layer.Name], [x], out, attrs)


def _fc(layer, x: Tensor, out: Tensor) -> Op:
    h, w, c = x.shape
    # MATLAB flattens h x w x c column-major: index h + H*(w + W*c). Our memory is HWC: (h*W + w)*C + c.
    hh, ww, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    matlab_index = (hh + h * (ww + w * cc)).ravel()          # in HWC memory order
    weights = layer.Weights[:, matlab_index]                  # OutputSize x InputSize, columns in HWC order
    packed = np.ascontiguousarray(weights.T, dtype=np.float32)   # [in][out]
    attrs = dict(IN=h * w * c, OUT=layer.OutputSize)
    return Op("fc", layer.Name, [layer.Name], [x], out, attrs,
              {"w": packed, "b": np.asarray(layer.Bias.ravel(), np.float32)})


def _normalize(layer: ImageInputLayer, x: Tensor, out: Tensor) -> Op | None:
    if callable(layer.Normalization):
        raise UnsupportedError(f"{layer.label}: property 'Normalization' is a function handle; code generation "
                               "supports 'zerocenter', 'zscore', 'rescale-symmetric', 'rescale-zero-one' and 'none'")
    aff = layer.affine()
    if aff is None:
        return None
    sub, mul, add = aff
    h, w, c = x.shape
    full = lambda a: np.asarray(a, np.float64).reshape((1, 1, 1) if np.size(a) == 1 else np.shape(a))  # noqa: E731
    sub, mul = full(sub), full(mul)
    if not sub.any() and np.all(mul == 1.0) and add == 0.0:
        return None                     # the identity (e.g. 'zerocenter' with Mean 0)
    # the template broadcasts per element, per channel or as a scalar
    shape = np.broadcast_shapes(sub.shape, mul.shape)
    per = "element" if shape[:2] != (1, 1) else ("channel" if shape[2] != 1 else "scalar")
    target = {"element": (h, w, c), "channel": (1, 1, c), "scalar": (1, 1, 1)}[per]
    weights = {"sub": np.broadcast_to(sub, target).astype(np.float32).ravel(),
               "mul": np.broadcast_to(mul, target).astype(np.float32).ravel()}
    attrs = dict(H=h, W=w, C=c, PER=per, ADD=float(add))
    return Op("normalize", layer.Name, [layer.Name], [x], out, attrs, weights)


def lower(net: Network) -> tuple[list[Op], Tensor, Tensor, dict[str, Tensor]]:
    """One op per layer (identities removed). Returns (ops, input tensor, output tensor, tensors by layer)."""
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []
    net_in = Tensor("input", net.input_shape)
    for layer in net.layers:
        name = layer.Name
        shape = net.shapes[name]
        xs = [tensors[s] for s in net.inputs[name]]
        out = Tensor(name, shape)
        if isinstance(layer, ImageInputLayer):
            op = _normalize(layer, net_in, out)
            if op is None:
                tensors[name] = net_in
                continue
        elif isinstance(layer, (Convolution2DLayer, GroupedConvolution2DLayer)):
            op = _conv(layer, xs[0], out)
        elif isinstance(layer, BatchNormalizationLayer):
            a, b = layer.scale_shift()
            op = Op("scale_shift", name, [name], xs, out, dict(H=shape[0], W=shape[1], C=shape[2]),
                    {"scale": a.astype(np.float32), "shift": b.astype(np.float32)})
        elif isinstance(layer, _Activation):
            op = Op("act", name, [name], xs, out, dict(H=shape[0], W=shape[1], C=shape[2]), act=_act_of(layer))
        elif isinstance(layer, MaxPooling2DLayer):
            op = _pool("maxpool", layer, xs[0], out)
        elif isinstance(layer, (AveragePooling2DLayer, GlobalAveragePooling2DLayer)):
            op = _pool("avgpool", layer, xs[0], out)
        elif isinstance(layer, FullyConnectedLayer):
            op = _fc(layer, xs[0], out)
        elif isinstance(layer, SoftmaxLayer):
            op = Op("softmax", name, [name], xs, out, dict(H=shape[0], W=shape[1], C=shape[2]))
        elif isinstance(layer, ClassificationOutputLayer):
            tensors[name] = xs[0]
            continue
        elif isinstance(layer, AdditionLayer):
            op = Op("add", name, [name], xs, out, dict(H=shape[0], W=shape[1], C=shape[2], N=len(xs)))
        elif isinstance(layer, ConcatenationLayer):
            op = Op("concat", name, [name], xs, out, dict(H=shape[0], W=shape[1], C=shape[2]))
        else:
            raise UnsupportedError(f"{layer.label}: code generation does not support {layer.CLASS}")
        ops.append(op)
        tensors[name] = out
    return ops, net_in, tensors[net.output_name], tensors


# =============================================================================== fusion

def _consumers(ops: list[Op]) -> dict[int, list[Op]]:
    users: dict[int, list[Op]] = {}
    for op in ops:
        for t in op.inputs:
            users.setdefault(id(t), []).append(op)
    return users


def fuse(ops: list[Op], net_output: Tensor) -> list[Op]:
    """Fold batch normalization into convolution/FC and activations into their producer."""
    changed = True
    while changed:
        changed = False
        users = _consumers(ops)
        producer = {id(op.output): op for op in ops}
        for op in ops:
            if op.kind not in ("scale_shift", "act"):
                continue
            src = producer.get(id(op.inputs[0]))
            if src is None or len(users.get(id(src.output), [])) != 1 or src.output is net_output:
                continue
            if op.kind == "scale_shift" and src.kind in ("conv", "fc") and src.act is None:
                a, b = op.weights["scale"].astype(np.float64), op.weights["shift"].astype(np.float64)
                if src.kind == "conv":
                    g, fg = src.attrs["G"], src.attrs["FG"]
                    src.weights["w"] = (src.weights["w"].astype(np.float64)
                                        * a.reshape(g, 1, 1, 1, 1, fg)[:, 0]).astype(np.float32)
                else:
                    src.weights["w"] = (src.weights["w"].astype(np.float64) * a[None, :]).astype(np.float32)
                src.weights["b"] = (src.weights["b"].astype(np.float64) * a + b).astype(np.float32)
            elif op.kind == "act" and src.kind in EPILOGUE and src.act is None:
                src.act = op.act
            else:
                continue
            # src now produces what op produced
            src.layers += op.layers
            src.output = op.output
            ops = [o for o in ops if o is not op]
            changed = True
            break
    return ops


# =============================================================================== placement

def _expand_concats(ops: list[Op], net_in: Tensor) -> list[Op]:
    """Make each concatenation input a channel slice of the concatenation's output, written in place
    by its producer; an input that cannot be (the network input, or one read by other ops too) is
    copied into its slice by a ``copy`` op where the concatenation was."""
    users = _consumers(ops)
    produced = {id(op.output) for op in ops}
    result: list[Op] = []
    for op in reversed(ops):                 # outer concatenations first
        if op.kind != "concat":
            result.append(op)
            continue
        c0, seen, copies = 0, set(), []
        for t in op.inputs:
            if id(t) in produced and len(users[id(t)]) == 1 and id(t) not in seen:
                t.parent, t.parent_choff = op.output, c0
            else:
                view = Tensor(t.name, t.shape, parent=op.output, parent_choff=c0)
                copies.append(Op("copy", f"{op.name}_in{len(copies) + 1}", [op.name], [t], view,
                                 dict(H=t.shape[0], W=t.shape[1], C=t.shape[2])))
            seen.add(id(t))
            c0 += t.shape[2]
        result.extend(reversed(copies))
    result.reverse()
    return result


def _root(t: Tensor) -> tuple[Tensor, int]:
    """The tensor owning t's memory and t's channel offset in it."""
    off = 0
    while t.parent is not None:
        off += t.parent_choff
        t = t.parent
    return t, off


def place(ops: list[Op], net_in: Tensor, net_out: Tensor, reuse: bool = True) -> tuple[list[Op], int, int]:
    """Give every tensor a buffer, offset and pitch, and every arena buffer an arena offset.

    Returns (ops, arena floats, floats of a plan without reuse)."""
    ops = _expand_concats(ops, net_in)
    tensors = {id(t): t for op in ops for t in [*op.inputs, op.output]}
    tensors[id(net_in)] = net_in
    owners: dict[int, Buffer] = {}
    for t in tensors.values():
        r, off = _root(t)
        if id(r) not in owners:
            kind = "input" if r is net_in else "output" if r is net_out else "arena"
            owners[id(r)] = Buffer(kind, r.size)
        t.buffer, t.choff, t.pitch = owners[id(r)], off, r.shape[2]
    align = ALIGN_BYTES // 4
    rounded = lambda n: -(-n // align) * align  # noqa: E731
    naive = sum(rounded(b.size) for b in owners.values() if b.kind == "arena")

    def last_reads() -> dict[Buffer, int]:
        last = {}
        for i, op in enumerate(ops):
            for t in op.inputs:
                last[t.buffer] = i
        return last

    if reuse:   # an elementwise op writes over an input whose buffer dies at it
        for i, op in enumerate(ops):
            out = op.output
            if op.kind not in ELEMENTWISE or out.buffer.kind != "arena" or out.parent is not None:
                continue
            last = last_reads()
            for t in op.inputs:
                b = t.buffer
                if b.kind == "arena" and t.parent is None and last.get(b) == i and b.size == out.buffer.size:
                    old = out.buffer
                    for t2 in tensors.values():
                        if t2.buffer is old:
                            t2.buffer = b
                    op.inplace = True
                    break

    live: dict[Buffer, list[int]] = {}
    for i, op in enumerate(ops):
        for t in [*op.inputs, op.output]:
            if t.buffer.kind == "arena":
                span = live.setdefault(t.buffer, [i, i])
                span[0], span[1] = min(span[0], i), max(span[1], i)
    placed: list[Buffer] = []
    total = 0
    for b, (first, last) in sorted(live.items(), key=lambda kv: (-kv[0].size, kv[1][0])):
        b.first, b.last = first, last
        b.offset = 0
        if reuse:
            busy = sorted((p.offset, p.offset + rounded(p.size)) for p in placed
                          if not (p.last < first or last < p.first))
            for lo, hi in busy:
                if b.offset + rounded(b.size) <= lo:
                    break
                b.offset = max(b.offset, hi)
        else:
            b.offset = total
        placed.append(b)
        total = max(total, b.offset + rounded(b.size))
    return ops, total, naive


def make_plan(net: Network, reuse: bool = True) -> Plan:
    """Lower, fuse and place ``net``. ``reuse=False`` gives every buffer its own arena region and no
    op works in place, so every op's output survives the run (the per-layer debug build)."""
    ops, net_in, net_out, _ = lower(net)
    ops = fuse(ops, net_out)
    if not ops or net_out is net_in:
        copy = Tensor(net.output_name, net_out.shape)
        ops.append(Op("copy", net.output_name, [net.output_name], [net_out], copy,
                      dict(H=net_out.shape[0], W=net_out.shape[1], C=net_out.shape[2])))
        net_out = copy
    ops, arena, naive = place(ops, net_in, net_out, reuse=reuse)
    activations = sum(int(np.prod(s)) for s in net.shapes.values())
    macs = sum(net.layer(n).macs([net.shapes[s] for s in net.inputs[n]], net.shapes[n]) for n in net.shapes)
    return Plan(net.name, ops, net_in, net_out, arena, activations, naive, macs, reuse)
