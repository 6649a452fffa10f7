"""The ``codegen`` command line.

    codegen summary net.py            the analyzeNetwork-style table
    codegen build net.py              generate, compile, load and verify (C by default)
    codegen verify net.py             compile and verify only, with --per-layer diagnosis
    codegen export net.py m.onnx      write the network as an ONNX model

Exit status: 0 success, 1 verification failed, 2 bad input (one line on stderr; the
traceback only with --debug).
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import click

from .compiler import data_of
from .devices import DEVICE_NAMES
from .emit.cuda import PRECISIONS
from .embedded import parse_bytes
from .errors import CodegenError, UnsupportedError
from .ops.patches import describe_patches
from .ops.stream import describe_streams
from .netfile import load as load_netfile
from .onnx import export_onnx
from .pipeline import build as build_library
from .quant.calibrate import METHODS, quantize
from .quant.verify import int8_per_layer, verify_int8
from .report import gather as gather_report, preload as preload_report, render_folder, write_report
from .targets import TARGET_NAMES
from .verify import verify as run_verify, verify_per_layer
from .weightfiles import load_images_file

USER_ERROR = 2


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"codegen: warning: {message}\n"


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
    warnings.formatwarning = _one_line_warning
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _load(path: str, seed):
    return load_netfile(path, seed=seed)


@main.command()
@click.argument("net_file", type=click.Path(dir_okay=False))
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Seed of the weight initializers (overrides the file's).")
def summary(net_file, seed):
    """Print the layer array and a table of activations, learnables, MACs and bytes."""
    net = _load(net_file, seed)
    click.echo(repr(net))
    click.echo(net.summary())


def _common_build_options(f):
    options = [
        click.option("--target", type=click.Choice(TARGET_NAMES), default="c", show_default=True),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
                     help="Output folder (default ./codegen_out/<name>/)."),
        click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
                     help="Seed of the weight initializers."),
        click.option("--tol", type=click.FloatRange(0, 1, min_open=True), default=None,
                     help="Relative error tolerance (default: 1e-5, more for networks whose float32 "
                          "results cancel; see codegen/verify.py)."),
        click.option("--count", type=click.IntRange(1, 10_000), default=3, show_default=True,
                     help="Random inputs to verify with."),
        click.option("--per-layer", is_flag=True, help="Also check every layer's output; report the first that "
                                                        "diverges."),
        click.option("--verbose", "-v", is_flag=True, help="Show compiler commands and output."),
        click.option("--emulate", is_flag=True, help="CUDA: run the kernels on the CPU (no GPU needed)."),
        click.option("--arch", multiple=True, help="CUDA: GPU architecture(s), e.g. sm_80 (repeatable)."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=None,
                     help="CUDA: tf32 (default; convolutions and fully connected layers on the tensor cores, "
                          "TF32 inputs, float32 sums), fp16 or bf16 (the same with half or bfloat16 inputs), or "
                          "fp32 (strict float32)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _byte_size(ctx, param, value):
    try:
        return parse_bytes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _int8_options(f):
    """--int8 and its calibration set (see codegen/quant/)."""
    options = [
        click.option("--int8", is_flag=True, help="Generate int8 code (TensorFlow Lite's scheme), calibrated on "
                                                  "--calibration (or with a QDQ ONNX model's own parameters)."),
        click.option("--calibration", "calibration_file", type=click.Path(dir_okay=False), default=None,
                     help="Images the network will see (.npy, or .npz with one array or 'images'), N x H x W x C."),
        click.option("--calibration-method", type=click.Choice(METHODS), default="minmax", show_default=True,
                     help="How each tensor's range is chosen from the calibration images."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _calibrate(net, int8, calibration_file, method, verbose):
    """(the calibration, its images) for --int8; (None, None) without it."""
    if not int8:
        if calibration_file is not None:
            raise UnsupportedError("--calibration is for int8 code; add --int8")
        return None, None
    binding = getattr(net, "onnx", None)
    if calibration_file is None and binding is not None and binding.int8_problem:
        raise UnsupportedError(f"--int8: the ONNX model's QDQ quantization cannot be used: {binding.int8_problem}")
    if calibration_file is None and binding is not None and binding.calibration is not None:
        click.echo("int8 parameters from the model's QuantizeLinear/DequantizeLinear nodes")
        if verbose:
            click.echo(binding.calibration.report())
        return binding.calibration, None
    if calibration_file is None:
        raise UnsupportedError("--int8 needs --calibration IMAGES: a .npy or .npz file of N x H x W x C inputs like "
                               "the ones the network will see (their ranges set every tensor's int8 scale)")
    images = load_images_file(calibration_file)
    cal = quantize(net, images, method=method)
    click.echo(f"calibrated on {cal.images} images from {calibration_file} ({method})")
    if verbose:
        click.echo(cal.report())
    return cal, images


def _device_options(f):
    """--device and the flash/RAM budgets (see codegen/devices.py and codegen/embedded/)."""
    options = [
        click.option("--device", type=click.Choice(DEVICE_NAMES), default=None,
                     help="Cross-compile for this device, run it (QEMU for ARM), print flash and RAM."),
        click.option("--max-ram", callback=_byte_size, default=None, metavar="BYTES",
                     help="Fail (exit 2) if the network needs more RAM (arena + stack + static data); 64K, 1M."),
        click.option("--max-flash", callback=_byte_size, default=None, metavar="BYTES",
                     help="Fail (exit 2) if the network needs more flash (code + weights + library code)."),
        click.option("--profile", is_flag=True,
                     help="Hooks between ops: on a Cortex-M count instructions per op (QEMU -icount); on the "
                          "host time each op."),
        click.option("--isa", default=None, metavar="NAMES",
                     help="The C kernels' instruction sets: avx512, avx2, neon, portable, comma-separated, or "
                          "all. Default: the device's own; the host build holds all, chosen when compiled."),
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
@click.option("--report", "html_report", is_flag=True,
              help="Also write report.html (summary, graph, layers, memory, flash, linked sources) and "
                   "report.json into the output folder.")
@click.option("--smallest-arena", is_flag=True,
              help="Stream convolutions by rows to the smallest arena without a --max-ram goal too (the "
                   "default with --device; the host streams only to meet a goal: it costs time).")
@click.option("--patches", type=click.IntRange(1, 64), default=None, metavar="N",
              help="Run the first ops patch by patch over N x N patches of their last output (float C): their "
                   "tensors are never stored whole; the halos are recomputed (extra MACs, printed).")
@_device_options
@_int8_options
def build(net_file, target, out_dir, seed, tol, count, per_layer, verbose, emulate, arch, precision, show_plan,
          no_verify, weights_section, html_report, smallest_arena, patches, device, max_ram, max_flash, profile, isa,
          int8, calibration_file, calibration_method):
    """Generate code for NET_FILE, compile it, load it and verify it against the reference."""
    net = _load(net_file, seed)
    int8 = _calibrate(net, int8, calibration_file, calibration_method, verbose)
    sys.exit(_build_and_report(net, net_file, target, out_dir, tol, count, per_layer, verbose, emulate, arch,
                               show_plan, not no_verify, weights_section, device, max_ram, max_flash, int8,
                               profile=profile, isa=isa, html_report=html_report, precision=precision,
                               smallest_arena=smallest_arena or None, patches=patches))


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--no-graphviz", is_flag=True, help="Lay the graph out without Graphviz's dot.")
def report(folder, no_graphviz):
    """Write FOLDER/report.html again from FOLDER/report.json (left by 'codegen build --report') and the
    generated files there; builds nothing."""
    path, seconds = render_folder(folder, use_dot=not no_graphviz)
    click.echo(f"report {path} ({path.stat().st_size:,} bytes, {seconds:.2f} s)")


@main.command()
@click.argument("net_file", type=click.Path(dir_okay=False))
@_common_build_options
@_device_options
@_int8_options
def verify(net_file, target, out_dir, seed, tol, count, per_layer, verbose, emulate, arch, precision, device, max_ram,
           max_flash, profile, isa, int8, calibration_file, calibration_method):
    """Compile NET_FILE and compare its outputs with the NumPy reference."""
    net = _load(net_file, seed)
    int8 = _calibrate(net, int8, calibration_file, calibration_method, verbose)
    sys.exit(_build_and_report(net, net_file, target, out_dir, tol, count, per_layer, verbose, emulate, arch,
                               False, True, None, device, max_ram, max_flash, int8, quiet_files=True, profile=profile,
                               isa=isa, precision=precision))


@main.command()
@click.argument("net_file", type=click.Path(dir_okay=False))
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Seed of the weight initializers (overrides the file's).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset to write (13 or later).")
def export(net_file, onnx_file, seed, opset):
    """Write NET_FILE as an ONNX model (NCHW), e.g. to check it with onnxruntime."""
    net = _load(net_file, seed)
    model = export_onnx(net, opset=opset)
    try:
        Path(onnx_file).write_bytes(model.SerializeToString())
    except OSError as exc:
        raise CodegenError(f"cannot write '{onnx_file}': {exc.strerror}") from None
    dims = lambda v: "x".join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim)  # noqa: E731
    click.echo(f"wrote {onnx_file}: opset {opset}, {len(model.graph.node)} nodes, input "
               f"'{model.graph.input[0].name}' {dims(model.graph.input[0])}, output "
               f"'{model.graph.output[0].name}' {dims(model.graph.output[0])}")


def _build_and_report(net, net_file, target, out_dir, tol, count, per_layer, verbose, emulate, arch, show_plan,
                      do_verify, weights_section, device, max_ram, max_flash, int8=(None, None),
                      quiet_files=False, profile=False, isa=None, html_report=False, precision=None,
                      smallest_arena=None, patches=None) -> int:
    """Build for any target, print what was made, verify, print what running it showed; the exit
    status (0 pass, 1 the verification or a build check failed; a budget overrun raises). ``int8``:
    (calibration, its images) for int8 code, verified bit for bit against the integer reference."""
    calibration, images = int8
    if device is None and (max_ram is not None or max_flash is not None):
        device = "host"                   # budgets need a footprint: build for this machine as a device
    if device is not None and per_layer:
        raise UnsupportedError(f"--per-layer runs on the host only (it reads the workspace back); "
                               f"drop --device {device} or --per-layer")
    if html_report:
        preload_report()                  # matplotlib and Pygments load while the build runs
    target_options = dict(emulate=emulate, arch=list(arch) or None) if target == "cuda" else {}
    if precision is not None:
        target_options["precision"] = precision
    if profile:
        target_options["profile"] = True
    if isa is not None:
        target_options["isa"] = isa
    t0 = time.perf_counter()
    lib = build_library(net, target=target, out_dir=out_dir, device=device, source=str(net_file),
                        weights_section=weights_section, calibration=calibration, max_ram=max_ram,
                        smallest_arena=smallest_arena, **({"patches": patches} if patches else {}),
                        **target_options)
    elapsed = time.perf_counter() - t0
    plan = lib.plan
    if show_plan:
        click.echo(plan.describe())
    if not quiet_files and lib.out_dir is not None:
        where = "" if device in (None, "host") else f" ({device} toolchain in Makefile and CMakeLists.txt)"
        click.echo(f"generated {target.upper()} for '{net.name}'{where} in {lib.out_dir}/")
        for name in sorted(lib.files):
            click.echo(f"  {name:<28} {len(data_of(lib.files[name])):>10,} bytes")
    click.echo(f"arena {plan.arena_bytes:,} bytes (sum of activations {plan.activation_bytes:,}; "
               f"one buffer per op {plan.naive_bytes:,}), weights {lib.weight_bytes:,} bytes, "
               f"{plan.macs:,} MACs, {len(plan.ops)} ops")
    if patches and not describe_patches(plan):
        click.echo(f"patch-based execution: no first ops over {patches}x{patches} patches lower the arena: none made")
    for line in describe_patches(plan):
        click.echo(f"patch-based execution: {line}; {100 * plan.extra_macs / max(plan.macs, 1):+.1f} % of the "
                   f"network's MACs")
    if max_ram is not None:
        streams = describe_streams(plan)
        how = [f"streamed by rows ({len(streams)} ops, 0 extra MACs)" if streams else "nothing streamed"]
        if describe_patches(plan):
            how.append(f"the first ops by patches ({plan.extra_macs:+,} MACs, above)")
        click.echo(f"RAM goal {max_ram:,} bytes (--max-ram): arena {plan.arena_bytes:,} bytes; {'; '.join(how)}"
                   + (":" if streams else ""))
        for line in streams:
            click.echo(f"  {line}")
    click.echo(lib.build_line(elapsed))
    for line in lib.build_report(verbose):
        click.echo(line)
    status = 0
    result = detail = None
    emulated = emulate
    if do_verify:
        runner, emulated = lib.verifiable(click.echo)
        result = (run_verify(net, runner, count=count, tol=tol) if calibration is None
                  else verify_int8(net, runner, count=count, images=None if images is None else images[:count]))
    for line in lib.run_report():
        click.echo(line)
    if result is not None:
        click.echo(result.report())
        status = 0 if result.passed else 1
    if not lib.checks_passed:
        status = 1
    debug_options = dict(target_options, emulate=emulated) if target == "cuda" else {}
    if per_layer and calibration is not None:
        debug = build_library(net, target=target, reuse=False, source=str(net_file), write=False,
                              calibration=calibration, **debug_options)
        detail = int8_per_layer(net, debug, images=None if images is None else images[:1])
        click.echo("per layer (int8 against the float reference):")
        click.echo(detail.report())
        if not detail.passed:
            status = 1
    elif per_layer:
        debug = build_library(net, target=target, reuse=False, source=str(net_file), write=False, **debug_options)
        detail = verify_per_layer(net, debug, tol=tol)
        click.echo("per layer:")
        click.echo(detail.report())
        if not detail.passed:
            status = 1
    if html_report and lib.out_dir is not None:
        t0 = time.perf_counter()
        facts = gather_report(net, lib, source=str(net_file), build_seconds=elapsed, verification=result,
                              per_layer=detail)
        path, _ = write_report(facts, lib.out_dir)
        click.echo(f"report {path} ({path.stat().st_size:,} bytes, written in {time.perf_counter() - t0:.2f} s)")
    budget = lib.check_budget(max_ram=max_ram, max_flash=max_flash)
    if budget:
        click.echo(budget)
    return status


def _terminate(signum, frame):
    """SIGTERM (kill) as an interrupt: running compilers are killed and work folders removed on the way out."""
    raise KeyboardInterrupt


def entry():  # pragma: no cover - console script
    signal.signal(signal.SIGTERM, _terminate)
    main(obj={})


if __name__ == "__main__":  # pragma: no cover
    entry()

