"""`make gpu-check`: the CUDA backend on a real NVIDIA GPU (issue 4).

On a machine with a GPU, nvcc and the driver:

1. builds the examples (one nvcc run, for this GPU: ``-arch=native``) and prints each kernel's
   registers, shared memory and spills;
2. verifies them on the GPU against the NumPy reference (relative error < 1e-5, 5 inputs each),
   layer by layer for one of them, and runs random layer stacks (chains, DAGs with skip
   additions and concatenations, stacks larger than the tiles) through the same check;
3. times every kernel and the whole network (CUDA events, batch 1 and 32) against PyTorch on
   the same GPU (cuDNN convolutions, cuBLAS fully connected layers; same shapes, float32, with
   TF32 off and on), when the installed PyTorch has CUDA;
4. writes bench/results/gpu_check_<gpu>.md (tables) and .json (every number).

Without a GPU it stops at once with CUDA's reason (exit 2): the tests skip the GPU checks
there, and `codegen build --target cuda --emulate` runs the same kernels on the CPU.

    python bench/gpu_check.py [--reps 50] [--batches 1 32] [--stacks 60] [--out bench/results]

Exit status: 0 all verifications passed, 1 one failed, 2 no usable GPU (or no nvcc).
"""

from __future__ import annotations

import argparse
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
from codegen.verify import random_inputs, rel_error, verify, verify_per_layer  # noqa: E402

TOL = 1e-5
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def say(text: str = "") -> None:
    print(text, flush=True)


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


def torch_times(torch, net, plan, batch: int, reps: int, tf32: bool,
                device: str = "cuda") -> tuple[list[float], float, float]:
    """(ms per op, ms per network, relative error of the PyTorch twin against the reference)."""
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
    return per_op, total, err


# ------------------------------------------------------------------ the check

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=50, help="timed launches per measurement")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes to time")
    ap.add_argument("--stacks", type=int, default=60, help="random layer stacks to verify")
    ap.add_argument("--arch", default="native", help="nvcc target (default: the GPU of this machine)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--emulate", action="store_true",
                    help="dry run of this script without a GPU: the kernels in the CPU execution mode and PyTorch "
                         "on the CPU (checks the script, measures nothing about GPUs)")
    args = ap.parse_args()

    if shutil.which("nvcc") is None and not args.emulate:
        say("gpu-check: nvcc not found: install the CUDA toolkit")
        return 2
    nets = [load(str(p)) for p in EXAMPLES]
    t0 = time.perf_counter()
    build = dict(emulate=True) if args.emulate else dict(emulate=False, arch=[args.arch])
    libs = build_many(nets, **build, target="cuda")
    build_s = time.perf_counter() - t0
    count, reason = libs[0].device_count()
    if count == 0:
        say(f"gpu-check: no usable CUDA device here ({reason}).\n"
            "Run this on a machine with an NVIDIA GPU; without one, `codegen build NET --target cuda --emulate` "
            "runs the same kernels on the CPU.")
        return 2
    gpu = "CPU execution mode (dry run)" if args.emulate else gpu_name()
    device = "cpu" if args.emulate else "cuda"
    where = "in the CPU execution mode" if args.emulate else "on the GPU"
    say(f"gpu-check on {gpu} ({count} device(s)); nvcc build of {len(nets)} examples in {build_s:.1f} s")
    failures: list[str] = []
    report: dict = dict(gpu=gpu, date=datetime.datetime.now().isoformat(timespec="seconds"), host=platform.node(),
                        arch=args.arch, nvcc=subprocess.run(["nvcc", "--version"], capture_output=True,
                                                            text=True).stdout.strip().splitlines()[-1],
                        verification={}, kernels={}, timings=[])

    # 1-2: resources and verification of the examples
    for net, lib in zip(nets, libs):
        say(f"\n{net.name}: kernels (ptxas -v)")
        say(resources_table(lib.kernels))
        for line in lib.spill_warnings():
            say(line)
        report["kernels"][net.name] = [vars(k) for k in lib.kernels]
        result = verify(net, lib, count=5, tol=TOL)
        say(result.report())
        report["verification"][net.name] = result.max_error
        if not result.passed:
            failures.append(net.name)
    debug_net = next(n for n in nets if n.name == "resnet_graph") if any(n.name == "resnet_graph" for n in nets) \
        else nets[-1]
    (debug,) = build_many([debug_net], reuse=False, **build, target="cuda")
    detail = verify_per_layer(debug_net, debug, tol=TOL)
    say(f"\n{debug_net.name}, layer by layer {where}:\n{detail.report()}")
    if not detail.passed:
        failures.append(f"{debug_net.name} (per layer)")

    from netgen import random_chain, random_dag
    from test_cuda_emulation import tile_stack
    rng = np.random.default_rng(2026)
    stacks = [(random_chain, random_dag, tile_stack)[i % 3](rng, f"gpu_stack{i}") for i in range(args.stacks)]
    worst = 0.0
    for net, lib in zip(stacks, build_many(stacks, **build, target="cuda")):
        x = random_inputs(net, 3, seed=5)
        y, ref = lib.predict(x), net.predict(x.astype(np.float64))
        err = max(rel_error(y[i], ref[i]) for i in range(3))
        worst = max(worst, err)
        if not err < TOL:
            failures.append(net.name)
            say(f"FAIL {net.name}: relative error {err:.2e}\n{lib.plan.describe()}")
    report["verification"]["random_stacks"] = dict(count=len(stacks), max_error=worst)
    say(f"\n{len(stacks)} random stacks {where}: max relative error {worst:.2e}")

    # 3: timings against PyTorch / cuDNN
    try:
        import torch
        has_torch = args.emulate or torch.cuda.is_available()
        why = "" if has_torch else f"PyTorch {torch.__version__} has no CUDA"
    except ImportError:
        has_torch, why = False, "PyTorch is not installed"
    if not has_torch:
        say(f"\ncuDNN comparison skipped: {why} (install a CUDA build of torch to compare)")
    clock = "a wall clock: a dry run on the CPU, nothing here measures a GPU" if args.emulate else "CUDA events"
    lines = [f"# gpu-check: {gpu}", "", f"{report['date']}, {report['nvcc']}, arch {args.arch}, "
             f"{args.reps} launches per measurement ({clock}). PyTorch: "
             f"{'cuDNN/cuBLAS, float32, TF32 off and on' if has_torch else why}.", "",
             "## Verification (relative error against the float64 NumPy reference)", "",
             "| network | max relative error |", "|---|---|"]
    lines += [f"| {k} | {v:.2e} |" for k, v in report["verification"].items() if isinstance(v, float)]
    lines += [f"| {len(stacks)} random stacks | {worst:.2e} |", ""]
    for net, lib in zip(nets, libs):
        for batch in args.batches:
            lib.predict(random_inputs(net, batch, seed=11))       # sizes the context, fills its input
            ours, ours_total = lib.time_ops(batch=batch, reps=args.reps)
            fp32 = tf32 = None
            if has_torch:
                fp32 = torch_times(torch, net, lib.plan, batch, args.reps, tf32=False, device=device)
                tf32 = torch_times(torch, net, lib.plan, batch, args.reps, tf32=True, device=device)
            lines += [f"## {net.name}, batch {batch}", "",
                      "| op | ours ms | PyTorch fp32 ms | PyTorch TF32 ms |", "|---|---|---|---|"]
            for i, (name, ms) in enumerate(ours):
                a = f"{fp32[0][i]:.4f}" if fp32 else "-"
                b = f"{tf32[0][i]:.4f}" if tf32 else "-"
                lines.append(f"| {lib.plan.ops[i].kind} {name} | {ms:.4f} | {a} | {b} |")
                report["timings"].append(dict(network=net.name, batch=batch, op=name, kind=lib.plan.ops[i].kind,
                                              ours_ms=ms, torch_fp32_ms=fp32[0][i] if fp32 else None,
                                              torch_tf32_ms=tf32[0][i] if tf32 else None))
            a = f"{fp32[1]:.4f}" if fp32 else "-"
            b = f"{tf32[1]:.4f}" if tf32 else "-"
            lines += [f"| **whole network** | **{ours_total:.4f}** | **{a}** | **{b}** |", ""]
            if fp32:
                lines += [f"PyTorch twin's relative error: fp32 {fp32[2]:.1e}, TF32 {tf32[2]:.1e}.", ""]
            report["timings"].append(dict(network=net.name, batch=batch, op="(network)", kind="network",
                                          ours_ms=ours_total, torch_fp32_ms=fp32[1] if fp32 else None,
                                          torch_tf32_ms=tf32[1] if tf32 else None))
            say(f"{net.name} batch {batch}: ours {ours_total:.4f} ms" +
                (f", PyTorch fp32 {fp32[1]:.4f} ms, TF32 {tf32[1]:.4f} ms" if fp32 else ""))

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
