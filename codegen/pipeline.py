"""The one build pipeline: plan -> render -> write -> compile -> load, for every target.

    lib = codegen.build(net)                                   # C for this machine
    lib = codegen.build(net, target="cuda", emulate=True)      # CUDA kernels on the CPU
    lib = codegen.build(net, target="cuda", calibration=cal)   # int8 CUDA (cal = codegen.quantize(net, images))
    lib = codegen.build(net, device="cortex-m4")               # cross-compiled, run under QEMU
    libs = codegen.build_many(nets)                            # one compiler run for many networks

Every build returns a :class:`~codegen.library.Library`; the targets are in :mod:`codegen.targets`.
"""

from __future__ import annotations

import re
from pathlib import Path

from .emit import render_files
from .emit.dialect import DIALECTS
from .names import network_prefix
from .errors import CodegenError
from .library import Library
from .network import Network
from .output import write_folder
from .plan import make_plan
from .targets import Target, make_target


def default_out_dir(net: Network) -> Path:
    """./codegen_out/<name>/"""
    return Path.cwd() / "codegen_out" / network_prefix(net.name)


def _check_common(net, weights_section) -> None:
    if not isinstance(net, Network):
        raise CodegenError(f"build expects a codegen.Network, got {type(net).__name__}")
    if weights_section is not None and not re.fullmatch(r"\.?[A-Za-z_][A-Za-z0-9_.]*", weights_section):
        raise CodegenError(f"weights section {weights_section!r} is not a valid section name "
                           "(letters, digits, '_' and '.')")


def build(net: Network, target: str = "c", out_dir=None, *, device=None, reuse: bool = True,
          poison_dead: bool = False, weights_section: str | None = None, source: str = "", write: bool = True,
          calibration=None, max_ram: int | None = None, smallest_arena: bool | None = None,
          patches: int | None = None, **target_options) -> Library:
    """Generate code for ``net``, write it to ``out_dir`` (default ``./codegen_out/<name>/``; nothing
    with ``write=False``), compile it for the target and load it.

    - ``target``: 'c' or 'cuda'; ``device``: a device name (:mod:`codegen.devices`) to cross-compile
      the C output for and run under QEMU;
    - ``reuse=False``: no buffer reuse (every op's output survives: per-layer debugging);
    - ``poison_dead``: the generated code fills each dead buffer with NaN (memory-plan tests);
    - ``weights_section``: put the weights in that linker section;
    - ``calibration`` (from :func:`codegen.quantize`): generate int8 code (every target: C, devices, CUDA);
    - ``max_ram``: a goal for the arena in bytes: the planner streams (C, float) only what it needs to
      fit, and raises :class:`codegen.ramplan.RamGoalError` naming the op that sets the peak if nothing fits;
    - ``smallest_arena``: without a ``max_ram`` goal, stream to the smallest arena anyway (True) or not
      at all (False); default the target's (cross-compiled devices: yes; this machine: no, streaming
      costs time there);
    - ``patches=N``: run the first ops patch by patch over N x N patches (float C; :mod:`codegen.ops.patches`);
    - target options (see :func:`codegen.targets.make_target`): ``cc``, ``opt_flags``, ``extra_flags``,
      ``openmp`` (host); ``emulate``, ``arch`` (CUDA); ``cflags``, ``timeout``, ``profile`` (device: count
      instructions per op on the Cortex-M boards, see :mod:`codegen.embedded.counting`).
    """
    _check_common(net, weights_section)
    tgt = make_target(target, device=device, weights_section=weights_section, **target_options)
    tgt.check_tools()
    plan = make_plan(net, reuse=reuse, calibration=calibration, max_ram=max_ram,
                     smallest_arena=tgt.smallest_arena if smallest_arena is None else smallest_arena,
                     patches=patches, **DIALECTS[tgt.dialect].plan_options())
    files = render_files(net, plan, tgt.dialect, _options(tgt, poison_dead, weights_section, source))
    prefix = network_prefix(net.name)
    folder = write_folder(out_dir if out_dir is not None else default_out_dir(net), files) if write else None
    return tgt.load(net, plan, files, folder, prefix, tgt.compile(files, [prefix]))


def build_many(nets: list[Network], target: str = "c", *, reuse: bool = True, poison_dead: bool = False,
               calibrations: list | None = None, smallest_arena: bool | None = None, patches: int | None = None,
               **target_options) -> list[Library]:
    """Generate code for several networks (distinct names) and compile them in ONE compiler run into
    one library: how the tests check hundreds of random networks. Nothing is written to a folder.
    ``smallest_arena`` as in :func:`build`."""
    for net in nets:
        _check_common(net, None)
    prefixes = [network_prefix(n.name) for n in nets]
    if len(set(prefixes)) != len(prefixes):
        raise CodegenError("build_many needs networks with distinct names")
    tgt = make_target(target, **target_options)
    tgt.check_tools()
    every: dict[str, str] = {}
    parts = []
    for k, (net, prefix) in enumerate(zip(nets, prefixes)):
        plan = make_plan(net, reuse=reuse, calibration=calibrations[k] if calibrations else None,
                         smallest_arena=tgt.smallest_arena if smallest_arena is None else smallest_arena,
                         patches=patches, **DIALECTS[tgt.dialect].plan_options())
        files = render_files(net, plan, tgt.dialect, _options(tgt, poison_dead, None, ""))
        every.update(files)
        parts.append((net, plan, files, prefix))
    built = tgt.compile(every, prefixes)
    return [tgt.load(net, plan, files, None, prefix, built) for net, plan, files, prefix in parts]


def _options(tgt: Target, poison_dead: bool, weights_section: str | None, source: str) -> dict:
    return dict(poison_dead=poison_dead, weights_section=weights_section, source=source, **tgt.render_options())
