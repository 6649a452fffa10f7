"""`make gpu-check`: the CUDA backend on a real NVIDIA GPU (issues 4 and 20), in one go (~8 minutes
on an H200; one nvcc run per group of networks).

On a machine with a GPU, nvcc and the driver:

1. checks for a usable GPU first (the CUDA runtime's cudaGetDeviceCount, through ctypes) and stops
   at once with CUDA's reason when there is none (exit 2);
2. builds the examples for this GPU (``-arch=native``) twice: TF32 tensor cores (the default
   precision) and strict FP32; prints each kernel's registers, shared memory and spills;
3. verifies them on the GPU against the NumPy reference (FP32: relative error < 1e-5; TF32: the
   bound of codegen/verify.py, 2^-10 x ops on the tensor cores x float32 condition), layer by layer
   for resnet_graph, then random layer stacks (chains, DAGs, stacks larger than the tiles) in both
   precisions and the model zoo's small ONNX models (needs PyTorch to export them);
4. times every kernel and the whole network (CUDA events; the network as our CUDA graph replay) at
   batch 1 and 32 against PyTorch on the same GPU: cuDNN/cuBLAS with TF32 off and on, eager and
   replayed as a CUDA graph (torch.cuda.CUDAGraph) for fairness, when PyTorch has CUDA;
5. verifies the examples with half and bfloat16 inputs to the tensor cores (if the time budget allows);
6. writes bench/results/gpu_check_<gpu>.md (GPU, driver, date, tables, issue 20's targets: batch 32
   at >= 0.8x cuDNN-TF32 throughput, batch 1 at >= 1.0x PyTorch's per-call latency) and .json.

Without a GPU it stops at once with CUDA's reason (exit 2): the tests skip the GPU checks
there, and `codegen build --target cuda --emulate` runs the same kernels on the CPU.
``--emulate`` is a dry run of every step without a GPU (kernels in the CPU execution mode, PyTorch
on the CPU, no CUDA graphs on the PyTorch side): it checks the script, it measures nothing.

    python bench/gpu_check.py [--reps 50] [--batches 1 32] [--stacks 40] [--budget 420] [--out bench/results]

Exit status: 0 all verifications passed, 1 one failed, 2 no usable GPU (or no nvcc).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))          # the random network generators of the tests

from codegen import build_many  # noqa: E402
from codegen.targets.ptxas import resources_table  # noqa: E402
from codegen.netfile import load  # noqa: E402
from codegen.verify import default_tolerance, random_inputs, rel_error, verify, verify_per_layer  # noqa: E402

TOL = 1e-5                       # strict FP32 builds
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PRECISIONS = ("tf32", "fp32")


def say(text: str = "") -> None:
    print(text, flush=True)


def cudart():
    """The CUDA runtime library next to nvcc (or on the loader's path), or None."""
    nvcc = shutil.which("nvcc")
    candidates = []
    if nvcc:
        home = Path(nvcc).resolve().parent.parent
        candidates += [home / lib / name for lib in ("lib64", "lib") for name in ("libcudart.so",)]
        candidates += sorted(home.glob("lib*/libcudart.so.*"))
    candidates.append(Path("libcudart.so"))
    for path in candidates:
        try:
            return ctypes.CDLL(str(path))
        except OSError:
            continue
    return None


def probe_gpu() -> tuple[int | None, str, str]:
    """(CUDA devices, CUDA's reason when none, driver version): None devices when the runtime library
    cannot be loaded (the first build then tells)."""
    lib = cudart()
    if lib is None:
        return None, "libcudart not found", "unknown"
    count, version = ctypes.c_int(0), ctypes.c_int(0)
    status = lib.cudaGetDeviceCount(ctypes.byref(count))
    lib.cudaGetErrorString.restype = ctypes.c_char_p
    reason = "" if status == 0 else f"{lib.cudaGetErrorString(status).decode()} (error {status})"
    lib.cudaDriverGetVersion(ctypes.byref(version))
    driver = f"CUDA driver API {version.value // 1000}.{version.value % 1000 // 10}" if version.value else "none"
    proc = Path("/proc/driver/nvidia/version")
    if proc.exists():
        m = re.search(r"Kernel Module\s+([\d.]+)", proc.read_text())
        driver = f"NVIDIA driver {m.group(1)}, {driver}" if m else driver
    return (count.value if status == 0 else 0), reason, driver


def gpu_name() -> str:
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return "unknown NVIDIA GPU"


# ------------------------------------------------------------------ PyTorch (cuDNN) twin of a plan

class TorchPlan:
    """The plan's ops as PyTorch calls on NCHW CUDA tensors (convolutions go to cuDNN)."""

    def __init__(self, plan, torch, device: str = "cuda"):
        self.torch, self.plan, self.device = torch, plan, device
        self.F = torch.nn.functional
        self.fns = [self._lower(op) for op in plan.ops]
        self.children: dict[int, list] = {}                 # concatenation output -> its channel slices
        for op in plan.ops:
            for t in [*op.inputs, op.output]:
                while t.parent is not None:                 # nested concatenations: every level
                    kids = self.children.setdefault(id(t.parent), [])
                    if all(k is not t for k in kids):
                        kids.append(t)
                    t = t.parent

    def _t(self, a):
        return self.torch.as_tensor(np.ascontiguousarray(a), dtype=self.torch.float32, device=self.device)

    def _act(self, act):
        F = self.F
        if act is None:
            return lambda y: y
        if act.kind == "relu":
            return F.relu
        if act.kind == "leaky":
            return lambda y: F.leaky_relu(y, act.param)
        if act.kind == "clipped":
            return lambda y: y.clamp(0.0, act.param)
        if act.kind == "sigmoid":
            return self.torch.sigmoid
        if act.kind == "tanh":
            return self.torch.tanh
        raise NotImplementedError(f"the PyTorch twin has no activation {act.kind!r}")

    def _lower(self, op):
        F, a, act = self.F, op.attrs, self._act(op.act)
        if op.kind == "conv":
            g, kh, kw, cg, fg = a.groups, a.kh, a.kw, a.cg, a.fg
            w = self._t(op.weights["w"].reshape(g, kh, kw, cg, fg).transpose(0, 4, 3, 1, 2).reshape(g * fg, cg, kh, kw))
            b = self._t(op.weights["b"])
            pads = (a.pl, a.pr, a.pt, a.pb)
            sym = a.pt == a.pb and a.pl == a.pr
            conv = dict(stride=(a.sh, a.sw), dilation=(a.dh, a.dw), groups=g,
                        padding=(a.pt, a.pl) if sym else 0)
            if sym:
                return lambda x: act(F.conv2d(x[0], w, b, **conv))
            return lambda x: act(F.conv2d(F.pad(x[0], pads), w, b, **conv))
        if op.kind == "fc":
            w, b = self._t(op.weights["w"].T), self._t(op.weights["b"])
            return lambda x: act(F.linear(x[0].permute(0, 2, 3, 1).reshape(x[0].shape[0], -1), w, b))[:, :, None, None]
        if op.kind in ("maxpool", "avgpool"):
            pads, k, s = (a.pl, a.pr, a.pt, a.pb), (a.kh, a.kw), (a.sh, a.sw)
            if op.kind == "maxpool":
                return lambda x: act(F.max_pool2d(F.pad(x[0], pads, value=-float("inf")), k, s))
            if not a.exclude_pad:
                return lambda x: act(F.avg_pool2d(F.pad(x[0], pads), k, s))
            count = F.avg_pool2d(F.pad(self.torch.ones(1, 1, a.ih, a.iw, device=self.device), pads), k, s)
            return lambda x: act(F.avg_pool2d(F.pad(x[0], pads), k, s) / count)
        if op.kind == "softmax":
            return lambda x: F.softmax(x[0], dim=1)
        if op.kind == "add":
            return lambda x: act(sum(x[1:], x[0]))
        if op.kind == "act":
            return lambda x: act(x[0])
        if op.kind == "scale_shift":
            sc, sh = self._t(op.weights["scale"])[None, :, None, None], self._t(op.weights["shift"])[None, :, None, None]
            return lambda x: act(x[0] * sc + sh)
        if op.kind == "normalize":
            h, w_, c = a.h, a.w, a.c
            shape = {"element": (h, w_, c), "channel": (1, 1, c), "scalar": (1, 1, 1)}[a.per]
            sub = self._t(op.weights["sub"].reshape(shape).transpose(2, 0, 1))[None]
            mul = self._t(op.weights["mul"].reshape(shape).transpose(2, 0, 1))[None]
            return lambda x: act((x[0] - sub) * mul + a.add)
        if op.kind == "copy":
            return lambda x: x[0]
        raise ValueError(f"no PyTorch twin for op kind {op.kind}")

    def _get(self, values, t):
        if id(t) in values:
            return values[id(t)]
        kids = sorted(self.children.get(id(t), []), key=lambda k: k.parent_choff)
        return self.torch.cat([self._get(values, k) for k in kids], dim=1)

    def forward(self, x, keep: bool = False):
        """x: NCHW input; returns the output (and, with keep, every op's inputs)."""
        values = {id(self.plan.input): x}
        inputs = []
        for op, fn in zip(self.plan.ops, self.fns):
            xs = [self._get(values, t) for t in op.inputs]
            if keep:
                inputs.append(xs)
            values[id(op.output)] = fn(xs)
        out = self._get(values, self.plan.output)
        return (out, inputs) if keep else out


def cuda_time(torch, fn, reps: int, device: str = "cuda") -> float:
    """Milliseconds per call of fn (CUDA events, after a warm-up; a wall clock on the CPU)."""
    fn()
    if device == "cpu":
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) * 1e3 / reps
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / reps


def torch_graph_time(torch, twin, xt, reps: int) -> float | None:
    """Milliseconds per replay of the twin's forward pass captured as a CUDA graph (None if capture fails)."""
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):                          # warm-up on a side stream, as capture needs
                twin.forward(xt)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            twin.forward(xt)
        return cuda_time(torch, graph.replay, reps)
    except Exception as exc:                            # noqa: BLE001 - report, do not stop the check
        say(f"  (PyTorch CUDA graph capture failed: {type(exc).__name__}: {exc})")
        return None


def torch_times(torch, net, plan, batch: int, reps: int, tf32: bool, device: str = "cuda") -> dict:
    """{'ops': ms per op, 'eager': ms per network, 'graph': ms per graph replay (or None), 'error':
    relative error of the PyTorch twin against the reference}."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    twin = TorchPlan(plan, torch, device)
    x = random_inputs(net, batch, seed=11)
    xt = torch.as_tensor(x.transpose(0, 3, 1, 2).copy(), device=device)
    with torch.no_grad():
        out, inputs = twin.forward(xt, keep=True)
        got = out.permute(0, 2, 3, 1).cpu().numpy()
        ref = net.predict(x[:2].astype(np.float64))
        err = max(rel_error(got[i], ref[i]) for i in range(min(2, batch)))
        per_op = [cuda_time(torch, lambda fn=fn, xs=xs: fn(xs), reps, device) for fn, xs in zip(twin.fns, inputs)]
        total = cuda_time(torch, lambda: twin.forward(xt), reps, device)
        graph = torch_graph_time(torch, twin, xt, reps) if device == "cuda" else None
    return dict(ops=per_op, eager=total, graph=graph, error=err)


# ------------------------------------------------------------------ the steps

def check_examples(nets, libs, precision: str, failures: list, report: dict) -> None:
    for net, lib in zip(nets, libs):
        if precision == "tf32":
            say(f"\n{net.name}: kernels (ptxas -v)")
            say(resources_table(lib.kernels))
            for line in lib.spill_warnings():
                say(line)
            report["kernels"][net.name] = [vars(k) for k in lib.kernels]
        result = verify(net, lib, count=5, tol=TOL if precision == "fp32" else None)
        say(f"{net.name} ({precision}, {lib.tensor_core_ops} ops on tensor cores):\n{result.report()}")
        report["verification"][f"{net.name} {precision}"] = dict(max_error=result.max_error, tol=result.tol)
        if not result.passed:
            failures.append(f"{net.name} ({precision})")


def check_stacks(count: int, build: dict, where: str, failures: list, report: dict) -> None:
    from netgen import random_chain, random_dag
    from test_cuda_emulation import tile_stack
    rng = np.random.default_rng(2026)
    stacks = [(random_chain, random_dag, tile_stack)[i % 3](rng, f"gpu_stack{i}") for i in range(count)]
    for precision in PRECISIONS:
        worst = 0.0
        for net, lib in zip(stacks, build_many(stacks, **build, target="cuda", precision=precision)):
            x = random_inputs(net, 3, seed=5)
            y, ref = lib.predict(x), net.predict(x.astype(np.float64))
            err = max(rel_error(y[i], ref[i]) for i in range(3))
            tol = TOL if not lib.tensor_core_ops else max(TOL, default_tolerance(net, x, lib.tensor_core_ops)[0])
            worst = max(worst, err / tol)
            if not err < tol:
                failures.append(f"{net.name} ({precision})")
                say(f"FAIL {net.name} ({precision}): relative error {err:.2e}, tolerance {tol:.1e}\n"
                    f"{lib.plan.describe()}")
        report["verification"][f"random_stacks {precision}"] = dict(count=len(stacks), worst_error_over_tol=worst)
        say(f"{len(stacks)} random stacks ({precision}) {where}: worst error / tolerance {worst:.3f}")


def check_zoo(build: dict, failures: list, report: dict) -> None:
    """The zoo's small ONNX models (exported by PyTorch) against PyTorch on the CPU, TF32 build."""
    try:
        import torch
        sys.path.insert(0, str(ROOT / "tests" / "zoo"))
        from models import ZOO, build as build_model
        from test_zoo import export
        import codegen
    except ImportError as exc:
        say(f"\nzoo skipped: {exc}")
        report["verification"]["zoo"] = f"skipped: {exc}"
        return
    names = [name for name in ZOO if ZOO[name][2] == "small"]
    nets, models = [], []
    for name in names:
        model, shape = build_model(name)
        nets.append(codegen.import_onnx(export(model, shape, "legacy"), name=f"zoo_{name}"))
        models.append((model, shape))
    for net, lib, (model, shape) in zip(nets, build_many(nets, **build, target="cuda"), models):
        x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(2))
        xin = net.onnx.to_input(x.numpy())
        ours = net.onnx.from_output(lib.predict(xin))
        with torch.no_grad():
            theirs = model(x)
        ours, theirs = (ours if isinstance(ours, tuple) else (ours,)), (theirs if isinstance(theirs, tuple) else (theirs,))
        err = max(rel_error(np.asarray(a)[i], b.numpy()[i]) for a, b in zip(ours, theirs) for i in range(2))
        tol = 1e-4 + (default_tolerance(net, xin, lib.tensor_core_ops)[0] if lib.tensor_core_ops else 0.0)
        report["verification"][net.name] = dict(max_error=err, tol=tol)
        say(f"{net.name}: relative error {err:.2e} against PyTorch (tolerance {tol:.1e})")
        if not err < tol:
            failures.append(net.name)


def fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "-"


def time_examples(args, nets, libs, fp32_libs, torch, device: str, deadline: float, report: dict) -> list[str]:
    lines, targets = [], []
    for net, lib, strict in zip(nets, libs, fp32_libs):
        for batch in args.batches:
            if time.perf_counter() > deadline:
                lines += [f"(time budget spent: {net.name} batch {batch} and later not timed)", ""]
                say(f"time budget spent: skipping {net.name} batch {batch} and later")
                return lines + targets
            x = random_inputs(net, batch, seed=11)
            lib.predict(x)                                       # sizes the context, fills its input
            ours, ours_total = lib.time_ops(batch=batch, reps=args.reps)
            strict.predict(x)
            _, strict_total = strict.time_ops(batch=batch, reps=args.reps)
            fp32 = tf32 = None
            if torch is not None:
                fp32 = torch_times(torch, net, lib.plan, batch, args.reps, tf32=False, device=device)
                tf32 = torch_times(torch, net, lib.plan, batch, args.reps, tf32=True, device=device)
            lines += [f"## {net.name}, batch {batch}", "",
                      "| op | ours TF32 ms | PyTorch fp32 ms | PyTorch TF32 ms |", "|---|---|---|---|"]
            for i, (name, ms) in enumerate(ours):
                lines.append(f"| {lib.plan.ops[i].kind} {name} | {ms:.4f} | {fmt(fp32 and fp32['ops'][i])} | "
                             f"{fmt(tf32 and tf32['ops'][i])} |")
                report["timings"].append(dict(network=net.name, batch=batch, op=name, kind=lib.plan.ops[i].kind,
                                              ours_ms=ms, torch_fp32_ms=fp32["ops"][i] if fp32 else None,
                                              torch_tf32_ms=tf32["ops"][i] if tf32 else None))
            lines += [f"| **whole network** (ours: CUDA graph; PyTorch: eager) | **{ours_total:.4f}** | "
                      f"**{fmt(fp32 and fp32['eager'])}** | **{fmt(tf32 and tf32['eager'])}** |",
                      f"| whole network, PyTorch as a CUDA graph | | {fmt(fp32 and fp32['graph'])} | "
                      f"{fmt(tf32 and tf32['graph'])} |",
                      f"| whole network, ours in strict FP32 | {strict_total:.4f} | | |", ""]
            if fp32:
                lines += [f"PyTorch twin's relative error: fp32 {fp32['error']:.1e}, TF32 {tf32['error']:.1e}.", ""]
            report["timings"].append(dict(network=net.name, batch=batch, op="(network)", kind="network",
                                          ours_ms=ours_total, ours_fp32_ms=strict_total,
                                          torch_fp32_ms=fp32["eager"] if fp32 else None,
                                          torch_tf32_ms=tf32["eager"] if tf32 else None,
                                          torch_fp32_graph_ms=fp32["graph"] if fp32 else None,
                                          torch_tf32_graph_ms=tf32["graph"] if tf32 else None))
            if tf32:
                best = min(v for v in (tf32["eager"], tf32["graph"], fp32["eager"], fp32["graph"]) if v)
                best_tf32 = min(v for v in (tf32["eager"], tf32["graph"]) if v)
                ratio, goal = (best_tf32 / ours_total, 0.8) if batch >= 32 else (best / ours_total, 1.0)
                what = "throughput vs cuDNN TF32" if batch >= 32 else "latency vs PyTorch's best"
                targets.append(f"| {net.name} | {batch} | {what} | {ratio:.2f}x | {goal}x | "
                               f"{'met' if ratio >= goal else 'MISSED'} |")
            say(f"{net.name} batch {batch}: ours {ours_total:.4f} ms (strict FP32 {strict_total:.4f})" +
                (f", PyTorch fp32 {fp32['eager']:.4f} ms (graph {fmt(fp32['graph'])}), TF32 {tf32['eager']:.4f} ms "
                 f"(graph {fmt(tf32['graph'])})" if fp32 else ""))
    if targets:
        lines += ["## Issue 20's targets", "", "| network | batch | measure | ours / theirs | goal | |",
                  "|---|---|---|---|---|---|", *targets, ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=50, help="timed launches per measurement")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes to time")
    ap.add_argument("--stacks", type=int, default=40, help="random layer stacks to verify (each precision)")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds after which no further network is timed (the results so far are written)")
    ap.add_argument("--no-zoo", action="store_true", help="skip the model zoo's small models")
    ap.add_argument("--arch", default="native", help="nvcc target (default: the GPU of this machine)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--emulate", action="store_true",
                    help="dry run of this script without a GPU: the kernels in the CPU execution mode and PyTorch "
                         "on the CPU (checks the script, measures nothing about GPUs)")
    args = ap.parse_args()
    start = time.perf_counter()

    driver = "none (CPU execution mode)"
    if not args.emulate:
        if shutil.which("nvcc") is None:
            say("gpu-check: nvcc not found: install the CUDA toolkit")
            return 2
        count, reason, driver = probe_gpu()
        if count == 0:
            say(f"gpu-check: no usable CUDA device here ({reason}).\n"
                "Run this on a machine with an NVIDIA GPU; without one, `codegen build NET --target cuda --emulate` "
                "runs the same kernels on the CPU (and `python bench/gpu_check.py --emulate` dry-runs this script).")
            return 2
    nets = [load(str(p)) for p in EXAMPLES]
    build = dict(emulate=True) if args.emulate else dict(emulate=False, arch=[args.arch])
    libs = build_many(nets, **build, target="cuda", precision="tf32")
    count, reason = libs[0].device_count()
    if count == 0:
        say(f"gpu-check: no usable CUDA device here ({reason}).")
        return 2
    fp32_libs = build_many(nets, **build, target="cuda", precision="fp32")
    build_s = time.perf_counter() - start
    gpu = "CPU execution mode (dry run)" if args.emulate else gpu_name()
    device = "cpu" if args.emulate else "cuda"
    where = "in the CPU execution mode" if args.emulate else "on the GPU"
    say(f"gpu-check on {gpu} ({count} device(s), {driver}); builds of {len(nets)} examples (TF32 and FP32) "
        f"in {build_s:.1f} s")
    failures: list[str] = []
    report: dict = dict(gpu=gpu, driver=driver, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
                            timespec="seconds"), host=platform.node(), arch=args.arch,
                        nvcc=subprocess.run(["nvcc", "--version"], capture_output=True,
                                            text=True).stdout.strip().splitlines()[-1] if shutil.which("nvcc") else "",
                        verification={}, kernels={}, timings=[], seconds={})

    # verification: examples in both precisions, one layer by layer, random stacks, the zoo
    check_examples(nets, libs, "tf32", failures, report)
    check_examples(nets, fp32_libs, "fp32", failures, report)
    debug_net = next((n for n in nets if n.name == "resnet_graph"), nets[-1])
    (debug,) = build_many([debug_net], reuse=False, **build, target="cuda")
    detail = verify_per_layer(debug_net, debug)
    say(f"\n{debug_net.name}, layer by layer {where} (tf32):\n{detail.report()}")
    if not detail.passed:
        failures.append(f"{debug_net.name} (per layer)")
    check_stacks(args.stacks, build, where, failures, report)
    if not args.no_zoo:
        check_zoo(build, failures, report)
    report["seconds"]["verification"] = round(time.perf_counter() - start, 1)

    # timings against PyTorch / cuDNN
    try:
        import torch
        has_torch = args.emulate or torch.cuda.is_available()
        why = "" if has_torch else f"PyTorch {torch.__version__} has no CUDA"
    except ImportError:
        torch, has_torch, why = None, False, "PyTorch is not installed"
    if not has_torch:
        say(f"\ncuDNN comparison skipped: {why} (install a CUDA build of torch to compare)")
    versions = f"PyTorch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}" if has_torch else why
    clock = "a wall clock: a dry run on the CPU, nothing here measures a GPU" if args.emulate else "CUDA events"
    lines = [f"# gpu-check: {gpu}", "", f"{report['date']}, driver: {driver}, {report['nvcc']}, arch {args.arch}, "
             f"{args.reps} launches per measurement ({clock}). {versions}: cuDNN/cuBLAS, float32 with TF32 off and "
             "on, eager and as a CUDA graph." if has_torch else f"{report['date']}, driver: {driver}. {why}.", "",
             "## Verification (relative error against the float64 NumPy reference; zoo: against PyTorch)", "",
             "| check | result |", "|---|---|"]
    lines += [f"| {k} | {json.dumps(v)} |" for k, v in report["verification"].items()]
    lines += [""]
    lines += time_examples(args, nets, libs, fp32_libs, torch if has_torch else None, device,
                           start + args.budget, report)

    # half and bfloat16 inputs to the tensor cores: verification only, if the budget allows
    for precision in ("fp16", "bf16"):
        if time.perf_counter() > start + args.budget:
            say(f"time budget spent: {precision} examples not verified")
            lines += [f"({precision} examples not verified: time budget spent)", ""]
            continue
        half = build_many(nets, **build, target="cuda", precision=precision)
        check_examples(nets, half, precision, failures, report)
        lines += [f"{precision}: " + ", ".join(f"{net.name} {report['verification'][f'{net.name} {precision}']['max_error']:.1e}"
                                              for net in nets) + " (max relative error of each example)", ""]
    report["seconds"]["total"] = round(time.perf_counter() - start, 1)
    lines += [f"{report['seconds']['total']:.0f} s in all ({report['seconds']['verification']:.0f} s building and "
              "verifying)."]

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_check_" + re.sub(r"[^A-Za-z0-9]+", "_", gpu.split(",")[0]).strip("_").lower()
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    say(f"\nresults: {args.out / (stem + '.md')} and .json")
    if failures:
        say(f"gpu-check: FAILED: {', '.join(failures)}")
        return 1
    say("gpu-check: every verification passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
