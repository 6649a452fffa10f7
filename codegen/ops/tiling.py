"""Register tiles of the C kernels: the instruction sets, the tile record and the cost model that
chooses a tile's pixel count. Shared by the convolution and fully connected homes.

Each instruction set (AVX-512, AVX2 with FMA, AArch64 NEON, and the portable C99 tier) gets its
own tile, chosen by a small cost model from the layer's shape; the generated code picks one at
compile time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedError


@dataclass(frozen=True)
class Isa:
    name: str
    vl: int              # floats per vector (the portable tier: its channel chunk is vectorized by the compiler)
    acc: int             # most accumulators (vector registers) a tile may use
    chunks: tuple        # channel counts per tile it may use (each a multiple of vl)
    pixels: tuple        # pixels per tile it may use


# In the order the generated code tests for them; 'portable' is the #else.
ISAS = {
    # AVX-512, 32 zmm registers of 16 floats: up to 28 accumulators, the rest for weights and the broadcast.
    "avx512": Isa("avx512", 16, 28, (16, 32, 64), tuple(range(4, 15))),
    # AVX2 with FMA, 16 ymm registers of 8 floats: 12 accumulators, 2 weight vectors, 1 broadcast.
    "avx2": Isa("avx2", 8, 12, (16,), (3, 4, 5, 6)),
    # AArch64 NEON, 32 q registers of 4 floats: 24 accumulators, 4 weight vectors, 1 broadcast.
    "neon": Isa("neon", 4, 24, (16,), (4, 5, 6)),
    # plain C: acc[P][16] floats on the stack (at most 512 bytes), a loop over 16 channels that compilers
    # vectorize (direct convolution; the depthwise kernel chooses its own).
    "portable": Isa("portable", 1, 256, (16,), (4, 5, 6, 7, 8)),
}

# What the generated code tests to take each instruction set (codegen_simd.h); 'portable' is the #else.
ISA_GUARDS = {"avx512": "defined(__AVX512F__)", "avx2": "defined(__AVX2__) && defined(__FMA__)",
              "neon": "defined(__ARM_NEON) && defined(__aarch64__)"}


# The microcontroller tiers (codegen/ops/cortexm.py): a device build takes, per kernel, the first of
# its tiers that has one, else the portable kernel; they are not chosen by compiler macros.
DEVICE_TIERS = ("mve", "cortexm")
HOST_ISAS = tuple(ISAS)           # what a host build holds, chosen when compiled


def device_tiers(isas: tuple) -> tuple:
    """The microcontroller tiers among ``isas`` (empty for a host or AArch64 build): such a build
    packs a kernel's weights for its own tiles."""
    return tuple(i for i in isas if i in DEVICE_TIERS)


TIER_ORDER = ("avx512", "avx2", "neon", *DEVICE_TIERS, "portable")


def isa_choice(spec, possible: tuple = tuple(ISAS), where: str = "--isa", default: tuple | None = None) -> tuple:
    """The instruction sets to emit, in TIER_ORDER, from ``spec``: None (``default``, else every one
    of ``possible``), 'all' (every one of ``possible``), a name, or names joined by commas (or a
    sequence of names)."""
    if spec is None and default is not None:
        return tuple(default)
    if spec is None or spec == "all":
        return tuple(possible)
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n) for n in spec]
    names = [n for n in names if n]
    bad = [n for n in names if n not in possible]
    if bad or not names:
        raise UnsupportedError(f"{where}: {', '.join(map(repr, bad)) or 'nothing'} is not an instruction set of "
                               f"this target; expected 'all' or names among {', '.join(possible)}")
    return tuple(n for n in TIER_ORDER if n in names)


TILE_OVERHEAD = 8          # cost of a reduction step beyond its FMAs (loads, loop, tile set-up), in FMA slots
OMP_MIN_MACS = 2_000_000   # layers with fewer multiply-adds run on one thread (a fork costs microseconds)


@dataclass(frozen=True)
class Tile:
    isa: str
    p: int               # output pixels per tile (depthwise and direct) or reduction split R (fully connected)
    ch: int              # channels per tile
    nv: int              # vectors per tile (ch / vector length)
    t0: int = 0          # interior tiles of a row: t0 <= t < t1 (direct and depthwise convolution)
    t1: int = 0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def interior(n_out: int, n_in: int, k: int, s: int, d: int, pad: int) -> tuple[int, int]:
    """Output positions [lo, hi) whose every tap lies inside the input."""
    lo = ceil_div(pad, s)
    hi = (n_in - 1 - (k - 1) * d + pad) // s + 1 if n_in - 1 - (k - 1) * d + pad >= 0 else 0
    hi = max(lo, min(hi, n_out))
    return min(lo, n_out), hi


@dataclass(frozen=True)
class Rows:
    """The output rows of a layer as the tiles see them: [rlo, rhi) x [qlo, qhi) is the interior."""
    rows: int
    cols: int
    rlo: int
    rhi: int
    qlo: int
    qhi: int
    cg: int = 0              # input channels a tap reads (direct convolution); 0: edge tiles cost no more
    padded: bool = False     # edge tiles choose between the input and a row of zeros per tap


def tile_cost(rows: Rows, p: int, nv: int) -> float:
    """Modelled cost (in FMA issue slots per reduction step, summed over a row-chunk's tiles) of
    P x nv tiles: every reduction step costs P*nv FMAs plus TILE_OVERHEAD; an edge tile of a direct
    convolution also computes P input pointers per tap, amortized over the tap's cg channels (more
    when it chooses each between the input and the zeros, most when P pointers no longer fit the
    general registers)."""
    tiles = ceil_div(rows.cols, p)
    t0, t1 = ceil_div(rows.qlo, p), max(ceil_div(rows.qlo, p), rows.qhi // p)
    inside = max(0, rows.rhi - rows.rlo) * max(0, t1 - t0)
    edge = rows.rows * tiles - inside
    step = p * nv + TILE_OVERHEAD
    per_pointer = (4 if p <= 8 else 12) if rows.padded else 1
    edge_step = step + (p * per_pointer / rows.cg if rows.cg else 0)
    return inside * step + edge * edge_step


def tile_kinds(tile: Tile, rlo: int, rhi: int, oh: int, ow: int) -> tuple[bool, bool]:
    """(some tile reads only inside the input, some tile does not) for a row-tiled kernel whose
    interior rows are [rlo, rhi): which of its _tile and _edge functions a layer calls."""
    tiles = ceil_div(ow, tile.p)
    t1 = min(tile.t1, tiles)
    inside = rhi > rlo and t1 > tile.t0
    return inside, not (inside and rlo == 0 and rhi == oh and tile.t0 == 0 and t1 == tiles)


def kernel_tiers(kernel, isas) -> tuple:
    """(tier, the instruction sets to emit) for a kernel with per-set ``tiles`` in a build for
    ``isas``: a microcontroller build takes the first of its tiers the kernel has a tile for, alone;
    otherwise (tier None) the vector sets and the portable C, or the portable C alone."""
    tiles = getattr(kernel, "tiles", {})
    tier = next((i for i in isas if i in DEVICE_TIERS and tiles.get(i) is not None), None)
    if tier is not None:
        return tier, (tier,)
    return None, tuple(i for i in isas if i not in DEVICE_TIERS) or ("portable",)


def tile_modes(kernel, isas) -> dict:
    """{instruction set: (has_tile, has_edge)} of a row-tiled kernel (see :func:`tile_kinds`)."""
    return {isa: tile_kinds(kernel.tiles[isa], kernel.rlo, kernel.rhi, kernel.oh, kernel.ow) for isa in isas}


def row_tile(isa: Isa, rows: Rows, ch: int) -> Tile:
    """The pixel count P for tiles of ``ch`` channels: least modelled cost, then the larger tile."""
    nv = max(1, ch // isa.vl)
    best = None
    for p in isa.pixels:
        if p * nv > isa.acc:
            continue
        key = (tile_cost(rows, p, nv), -p)
        if best is None or key < best[0]:
            best = (key, p)
    p = best[1] if best else 1
    t0 = ceil_div(rows.qlo, p)
    return Tile(isa.name, p, ch, nv, t0, max(t0, rows.qhi // p))
