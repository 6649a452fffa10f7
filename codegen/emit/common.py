"""Rendering machinery shared by the C and CUDA emitters: the Jinja environment, filters,
and the per-op view that templates read (function and weight names, pointer expressions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2
import numpy as np

from ..version import __version__
from ..ir import Op, Plan, Tensor
from ..ops.int8simd import INT8_GUARDS
from ..ops.tiling import ISA_GUARDS, kernel_tiers, tile_kinds, tile_modes
from ..resources import templates_dir
from .dialect import Dialect
from ..names import array_lines, c_comment, c_identifier, float_literal, layer_identifiers, network_prefix

_ENV: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                 keep_trailing_newline=True, autoescape=False)
        env.filters["f"] = float_literal
        env.filters["comment"] = c_comment
        env.filters["ident"] = c_identifier
        env.filters["shape"] = lambda s: "x".join(str(int(v)) for v in s)
        env.filters["values"] = array_lines
        env.globals["isa_guard"] = ISA_GUARDS
        env.globals["int8_guard"] = INT8_GUARDS
        env.globals["tile_kinds"] = tile_kinds
        env.globals["kernel_tiers"] = kernel_tiers
        env.globals["tile_modes"] = tile_modes
        _ENV = env
    return _ENV


BLOB_BYTES = 4 * 2**20      # weights of at least this many bytes go to <name>_weights.bin (assembler .incbin)
BLOB_ALIGN = 64             # bytes; every array of the blob starts on a cache line


@dataclass
class WeightBlob:
    """The weights as one binary file that <name>_weights.c includes with the assembler's ``.incbin``:
    no megabytes of C literals to render and parse."""
    file: str                       # '<prefix>_weights.bin'
    offsets: dict[str, int]         # symbol -> byte offset in the file
    data: bytes                     # float32, little-endian


def weight_blob(prefix: str, arrays: list["WeightArray"]) -> WeightBlob:
    offsets, chunks, size = {}, [], 0
    for w in arrays:
        pad = -size % BLOB_ALIGN
        chunks.append(bytes(pad))
        size += pad
        offsets[w.symbol] = size
        raw = np.ascontiguousarray(w.values, dtype=w.values.dtype.newbyteorder("<")).tobytes()
        chunks.append(raw)
        size += len(raw)
    return WeightBlob(f"{prefix}_weights.bin", offsets, b"".join(chunks))


def c_type(values: np.ndarray) -> str:
    """The C element type of an array: float, or the int8 code's int8_t / int32_t."""
    return {"f": "float", "i": f"int{values.dtype.itemsize * 8}_t"}[values.dtype.kind]


@dataclass
class WeightArray:
    symbol: str
    values: np.ndarray
    comment: str
    align: int = 0               # bytes the array starts aligned to (0: the type's own)

    @property
    def size(self) -> int:
        return int(self.values.size)

    @property
    def ctype(self) -> str:
        """The C element type: float, or the int8 code's int8_t / int32_t."""
        return c_type(self.values)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


@dataclass
class OpView:
    """An op as a template sees it: ``op.attrs`` (its typed attributes), names and pointers."""
    op: Op
    index: int
    fn: str                       # function (or kernel) name
    title: str                    # comment line: which layers, shapes
    weights: dict[str, str]       # role -> symbol
    src: list[str]                # pointer expressions of the inputs (in predict)
    dst: str                      # pointer expression of the output
    pitch: int                    # floats per pixel of the output's buffer
    kernel: object = None         # the C kernel chosen by the op's home (None: the template needs no choice)
    dead: list = field(default_factory=list)  # (offset, floats) of arena buffers whose last reader is this op

    def where(self, element_bytes: int) -> str:
        """The call's comment in predict: the layers, and each tensor's shape and bytes."""
        ins = ", ".join(tensor_place(t, element_bytes) for t in self.op.inputs)
        rows = self.op.scratch
        scratch = f"; row windows {tensor_place(rows, element_bytes).split(' ', 1)[1]}" if rows is not None else ""
        return c_comment(f"{'+'.join(self.op.layers)}: {ins} -> {tensor_place(self.op.output, element_bytes)}{scratch}",
                         limit=300)


def tensor_place(t: Tensor, element_bytes: int) -> str:
    """'16x16x8 arena[2048, 10240)': a tensor's shape and where it lives, in bytes (a channel slice of
    a wider buffer says which channels)."""
    b = t.buffer
    shape = "x".join(map(str, t.shape))
    if b.kind == "input":
        return f"{shape} in"
    start, end = b.offset * element_bytes, (b.offset + b.size) * element_bytes
    base = "out" if b.kind == "output" else "arena"
    where = f"{base}[{start}, {end})"
    if t.pitch != t.shape[2]:
        where += f" channels {t.choff}..{t.choff + t.shape[2] - 1} of {t.pitch}"
    return f"{shape} {where}"


def weight_comment(layer: str, role: str, arr: np.ndarray, source: np.ndarray | None) -> str:
    """'conv_1: w[1][1][5][5][1][32], 800 values, 300 of them zero padding (38 %)': the array as the
    kernel reads it (the layout is documented above the layer's function) and what is padding."""
    text = f"{layer}: {role}{''.join(f'[{d}]' for d in arr.shape)}, {arr.size} values"
    if source is not None and 0 < source.size < arr.size:
        pad = arr.size - source.size
        text += f", {pad} of them zero padding ({100 * pad / arr.size:.0f} %)"
    return text


def pointer(t: Tensor, arena: str = "arena", inp: str = "in", out: str = "out") -> str:
    b = t.buffer
    if b.kind == "input":
        return inp
    if b.kind == "output":
        return out if b.offset + t.choff == 0 else f"{out} + {b.offset + t.choff}"
    return f"{arena} + {b.offset + t.choff}"


def op_title(op: Op, layer_types: dict[str, str]) -> str:
    layers = ", ".join(f"{n} ({layer_types.get(n, op.kind)})" for n in op.layers)
    ins = ", ".join(f"{'x'.join(map(str, t.shape))}" for t in op.inputs)
    return c_comment(f"{layers}: {ins} -> {'x'.join(map(str, op.output.shape))}", limit=200)


@dataclass
class Context:
    """Everything a network template needs."""
    plan: Plan
    dialect: Dialect
    prefix: str                  # lower-case symbol prefix, e.g. 'lenet'
    macro: str                   # upper-case macro prefix, e.g. 'LENET'
    ops: list[OpView]
    weights: list[WeightArray]
    banner: str
    source_name: str
    options: dict
    blob: WeightBlob | None = None

    @property
    def weight_bytes(self) -> int:
        """Bytes of the emitted weight arrays (as packed for the kernels)."""
        return sum(w.nbytes for w in self.weights)

    def as_dict(self) -> dict:
        return dict(plan=self.plan, d=self.dialect, prefix=self.prefix, M=self.macro, ops=self.ops,
                    weights=self.weights, weight_bytes=self.weight_bytes, banner=self.banner,
                    source_name=self.source_name, opt=self.options, version=__version__, blob=self.blob)

    def weight_files(self) -> dict[str, str | bytes]:
        """The weights' files: <name>_weights.c, and <name>_weights.bin for a blob."""
        files = {f"{self.prefix}_weights.c": render("c/weights.c.j2", self)}
        if self.blob is not None:
            files[self.blob.file] = self.blob.data
        return files


# The network-wide symbols the templates define, after the prefix ('lenet_predict', 'lenet_cuda_init', ...),
# and the suffixes they add to an op's function name (its weights '<fn>_<role>', helpers '<fn>_tile').
NETWORK_SYMBOLS = frozenset("""predict predict_ws arena zeros poison has_no_weights weights weight_table message fail
launch fill emu time_one setup op_names run cuda cuda_init cuda_predict cuda_predict_device cuda_free cuda_error
cuda_time_ops cuda_read_arena cuda_op_name cuda_fill_arena cuda_device_count""".split())
# ... and those the int8 templates add (C and CUDA)
INT8_SYMBOLS = NETWORK_SYMBOLS | frozenset("""predict_int8_ws mbqm requantize quantize dequantize run check_batch
workspace cuda_predict_int8 cuda_predict_int8_device replay""".split())
OP_HELPERS = ("tile", "edge", "chunk", "tail", "patch")


def _reserved(symbol: str, prefix: str, int8: bool = False) -> bool:
    return symbol[len(prefix) + 1:] in (INT8_SYMBOLS if int8 else NETWORK_SYMBOLS)


def make_context(plan: Plan, net, dialect: Dialect, options: dict, kernels: list | None = None) -> Context:
    """The template context of ``plan``. ``kernels``: per op, None or (kernel choice, weights packed
    for it) from the op's home; the weights files then hold the packed weights."""
    prefix = network_prefix(plan.name)
    idents = layer_identifiers([layer.Name for layer in net.layers])
    types = {layer.Name: layer.TYPE for layer in net.layers}
    views, weights = [], []
    used: set[str] = set()
    for i, op in enumerate(plan.ops):
        kernel, packed = (None, op.weights) if kernels is None or kernels[i] is None else kernels[i]
        base = idents.get(op.name) or c_identifier(op.name, "op").lower()
        fn = f"{prefix}_{base}"
        # every symbol the op defines must be new: a copy op is named after its concatenation, a layer
        # 'conv_w' would be the weights of a layer 'conv', a layer 'predict' the API's function
        while any(sym in used or _reserved(sym, prefix, plan.dtype == "int8")
                  for sym in [fn, *(f"{fn}_{r}" for r in [*packed, *OP_HELPERS])]):
            fn = f"{fn}_{i}"
        used.update([fn, *(f"{fn}_{r}" for r in [*packed, *OP_HELPERS])])
        wsyms = {}
        for role, arr in packed.items():
            sym = f"{fn}_{role}"
            wsyms[role] = sym
            weights.append(WeightArray(sym, arr, c_comment(weight_comment(op.layers[0], role, arr, op.weights.get(role)))))
        out = op.output.buffer          # written over its input (pinned there): only the rest is dead
        dead = sorted({(t.buffer.offset + (out.size if out.pin is t.buffer else 0),
                        t.buffer.size - (out.size if out.pin is t.buffer else 0)) for t in op.inputs
                       if t.buffer.kind == "arena" and t.buffer.last == i and t.buffer is not out})
        src = [pointer(t) for t in [*op.inputs, *([op.scratch] if op.scratch is not None else [])]]
        views.append(OpView(op, i, fn, op_title(op, types), wsyms, src,
                            pointer(op.output), op.output.pitch, kernel, dead))
    banner = c_comment(f"generated by codegen {__version__} from network '{plan.name}'")
    total = sum(w.nbytes for w in weights)
    blob = weight_blob(prefix, weights) if total >= BLOB_BYTES and not options.get("weights_section") else None
    return Context(plan, dialect, prefix, prefix.upper(), views, weights, banner,
                   c_comment(options.get("source", "") or plan.name), options, blob)


class KernelOwners:
    """Ops whose tile kernels would be the same text share the first one's (resnet_graph's two
    blocks of a stage): the same kernel choice, geometry, pixel pitch, fused activation and
    instruction sets. Called by templates/c/kernels/direct.c.j2 with an op's function name, it
    returns the name whose kernels the op calls (its own when it is the first)."""

    def __init__(self):
        self._owners: dict[str, str] = {}

    def __call__(self, fn: str, kernel, op: Op, pitch: int, isas) -> str:
        act = op.act and (op.act.scalar, op.act.vector)
        return self._owners.setdefault(repr((kernel, op.attrs, act, pitch, tuple(isas))), fn)


def render(template: str, ctx: Context, **extra) -> str:
    values = ctx.as_dict()
    values.update(extra)
    return environment().get_template(template).render(**values)
