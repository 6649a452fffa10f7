"""The ``codegen`` command line.

    codegen summary net.py            the analyzeNetwork-style table
    codegen build net.py              generate, compile, load and verify (C by default)
    codegen verify net.py             compile and verify only, with --per-layer diagnosis
    codegen export net.py m.onnx      write the network as an ONNX model

Exit status: 0 success, 1 verification failed, 2 bad input (one line on stderr; the
traceback only with --debug).
"""

from __future__ import annotations

import sys
import time
import traceback
import click

from .errors import CodegenError

USER_ERROR = 2


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CodegenError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            click.echo(f"codegen: error: {exc}", err=True)
            sys.exit(USER_ERROR)
        except (KeyboardInterrupt, click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - an internal error: say so, keep one line
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            click.echo(f"codegen: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                       err=True)
            sys.exit(3)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.version_option(package_name="codegen")
@click.pass_context
def main(ctx, debug):
    """Turn MATLAB-style CNN layer definitions into verified, library-free C and CUDA."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _load(path: str, seed):
    from .netfile import load
    return load(path, seed=seed)


@main.command()
@click.argument("net_file", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=None, help="Seed of the weight initializers (overrides the file's).")
def summary(net_file, seed):
    """Print the layer array and a table of activations, learnables, MACs and bytes."""
    net = _load(net_file, seed)
    click.echo(repr(net))
    click.echo(net.summary())


def _common_build_options(f):
    options = [
        click.option("--target", type=click.Choice(["c", "cuda"]), default="c", show_default=True),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
                     help="Output folder (default ./codegen_out/<name>/)."),
        click.option("--seed", type=int, default=None, help="Seed of the weight initializers."),
        click.option("--tol", type=float, default=None, help="Relative error tolerance (default 1e-5)."),
        click.option("--count", type=int, default=3, show_default=True, help="Random inputs to verify with."),
        click.option("--per-layer", is_flag=True, help="Also check every layer's output; report the first that "
                                                        "diverges."),
        click.option("--verbose", "-v", is_flag=True, help="Show compiler commands and output."),
        click.option("--emulate", is_flag=True, help="CUDA: run the kernels on the CPU (no GPU needed)."),
        click.option("--arch", multiple=True, help="CUDA: GPU architecture(s), e.g. sm_80 (repeatable)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _byte_size(ctx, param, value):
    from .embedded import parse_bytes
    try:
        return parse_bytes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _device_options(f):
    """--device and the flash/RAM budgets (see codegen/devices.py and codegen/embedded.py)."""
    from .devices import DEVICE_NAMES
    options = [
        click.option("--device", type=click.Choice(DEVICE_NAMES), default=None,
                     help="Cross-compile for this device, run it (QEMU for ARM), print flash and RAM."),
        click.option("--max-ram", callback=_byte_size, default=None, metavar="BYTES",
                     help="Fail (exit 2) if the network needs more RAM (arena + stack + static data); 64K, 1M."),
        click.option("--max-flash", callback=_byte_size, default=None, metavar="BYTES",
                     help="Fail (exit 2) if the network needs more flash (code + weights + library code)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.argument("net_file", type=click.Path(dir_okay=False))
@_common_build_options
@click.option("--plan", "show_plan", is_flag=True, help="Print the lowered plan (ops, fusions, memory).")
@click.option("--no-verify", is_flag=True, help="Skip the verification against the reference.")
@click.option("--weights-section", default=None, help="Put the weights in this linker section.")
@_device_options
def build(net_file, target, out_dir, seed, tol, count, per_layer, verbose, emulate, arch, show_plan, no_verify,
          weights_section, device, max_ram, max_flash):
    """Generate code for NET_FILE, compile it, load it and verify it against the reference."""
    net = _load(net_file, seed)
    if device is not None or max_ram is not None or max_flash is not None:
        from .embedded import build_and_report
        sys.exit(build_and_report(net, net_file, device or "host", click.echo, target=target, out_dir=out_dir,
                                  tol=tol, count=count, per_layer=per_layer, verbose=verbose, show_plan=show_plan,
                                  do_verify=not no_verify, weights_section=weights_section, max_ram=max_ram,
                                  max_flash=max_flash))
    status = _build_and_report(net, net_file, target, out_dir, tol, count, per_layer, verbose, emulate, arch,
                               show_plan, not no_verify, weights_section)
    sys.exit(status)


@main.command()
@click.argument("net_file", type=click.Path(dir_okay=False))
@_common_build_options
@_device_options
def verify(net_file, target, out_dir, seed, tol, count, per_layer, verbose, emulate, arch, device, max_ram, max_flash):
    """Compile NET_FILE and compare its outputs with the NumPy reference."""
    net = _load(net_file, seed)
    if device is not None or max_ram is not None or max_flash is not None:
        from .embedded import build_and_report
        sys.exit(build_and_report(net, net_file, device or "host", click.echo, target=target, out_dir=out_dir,
                                  tol=tol, count=count, per_layer=per_layer, verbose=verbose, max_ram=max_ram,
                                  max_flash=max_flash, quiet_files=True))
    sys.exit(_build_and_report(net, net_file, target, out_dir, tol, count, per_layer, verbose, emulate, arch,
                               False, True, None, quiet_files=True))


@main.command()
@click.argument("net_file", type=click.Path(dir_okay=False))
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=None, help="Seed of the weight initializers (overrides the file's).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset to write (13 or later).")
def export(net_file, onnx_file, seed, opset):
    """Write NET_FILE as an ONNX model (NCHW), e.g. to check it with onnxruntime."""
    from .onnx import export_onnx
    net = _load(net_file, seed)
    model = export_onnx(net, onnx_file, opset=opset)
    dims = lambda v: "x".join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim)  # noqa: E731
    click.echo(f"wrote {onnx_file}: opset {opset}, {len(model.graph.node)} nodes, input "
               f"'{model.graph.input[0].name}' {dims(model.graph.input[0])}, output "
               f"'{model.graph.output[0].name}' {dims(model.graph.output[0])}")


def _build_and_report(net, net_file, target, out_dir, tol, count, per_layer, verbose, emulate, arch, show_plan,
                      do_verify, weights_section, quiet_files=False) -> int:
    from .load import build as build_lib, command_line
    from .verify import DEFAULT_TOL, verify as run_verify, verify_per_layer

    tol = DEFAULT_TOL if tol is None else tol
    t0 = time.perf_counter()
    lib = build_lib(net, target=target, out_dir=out_dir, source=str(net_file), emulate=emulate,
                    arch=list(arch) or None, weights_section=weights_section)
    elapsed = time.perf_counter() - t0
    plan = lib.plan
    if show_plan:
        click.echo(plan.describe())
    if verbose:
        click.echo(f"compile: {command_line(lib.build)}" + (" (cached)" if lib.cached else ""))
        if lib.build.log.strip():
            click.echo(lib.build.log.rstrip())
    if not quiet_files and lib.out_dir is not None:
        click.echo(f"generated {target.upper()} for '{net.name}' in {lib.out_dir}/")
        for name in sorted(lib.files):
            click.echo(f"  {name:<28} {len(lib.files[name].encode()):>10,} bytes")
    click.echo(f"arena {plan.arena_bytes:,} bytes (sum of activations {plan.activations_floats * 4:,}; "
               f"one buffer per op {plan.naive_floats * 4:,}), weights {plan.weight_bytes:,} bytes, "
               f"{plan.macs:,} MACs, {len(plan.ops)} ops")
    click.echo(f"library {lib.library}" + (" (cache hit)" if lib.cached else f" (built in {elapsed:.1f} s)"))
    if hasattr(lib, "report_build"):
        lib.report_build(click.echo, verbose)
    if not do_verify:
        return 0
    if hasattr(lib, "verifiable"):     # CUDA without a GPU here: the same kernels in the CPU execution mode
        lib, emulate = lib.verifiable(click.echo)
    result = run_verify(net, lib, count=count, tol=tol)
    click.echo(result.report())
    status = 0 if result.passed else 1
    if per_layer:
        debug = build_lib(net, target=target, out_dir=None, reuse=False, source=str(net_file), emulate=emulate,
                          arch=list(arch) or None, write=False)
        detail = verify_per_layer(net, debug, tol=tol)
        click.echo("per layer:")
        click.echo(detail.report())
        if not detail.passed:
            status = 1
    return status


def entry():  # pragma: no cover - console script
    main(obj={})


if __name__ == "__main__":  # pragma: no cover
    entry()

