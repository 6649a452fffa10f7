"""The CUDA backend with the real compiler (issue 4): nvcc builds the generated code for sm_80 and
sm_90 without warnings or register spills, the ptxas figures are reported per kernel, and, where
a GPU is present, the kernels match the reference on it (elsewhere those tests skip and say why).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import CodegenError
from codegen import build_many
from codegen.emit.common import make_context
from codegen.emit.cuda import cuda_op, weight_offsets
from codegen.emit.dialect import CUDA
from codegen.targets.cuda import CudaUnavailable, arch_flags
from codegen.targets.ptxas import parse_ptxas, resources_table
from codegen.netfile import load
from codegen.verify import random_inputs, verify
from conftest import require_tool
from netgen import random_chain, random_dag
from test_cuda_emulation import check_against_reference, tile_stack

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def no_warnings(log: str):
    bad = [line for line in log.splitlines() if "warning" in line.lower()]
    assert not bad, "\n".join(bad)


def gpu_or_skip(lib):
    """Skip (loudly, with CUDA's reason) unless this machine has a usable GPU."""
    count, reason = lib.device_count()
    if count == 0:
        pytest.skip(f"needs an NVIDIA GPU: no usable CUDA device here ({reason}); `make gpu-check` runs this on one")


def cuda_ops(lib):
    """The emitter's view of each op of a loaded library (kernel name, launch, tensor cores or not)."""
    ctx = make_context(lib.plan, lib.net, CUDA, {"precision": lib.precision})
    woff, _ = weight_offsets(ctx)
    return [cuda_op(v, lib.plan, woff, lib.precision) for v in ctx.ops]


def test_lenet_library_reports_registers_shared_memory_and_no_spills():
    require_tool("nvcc")
    net = load(str(EXAMPLES / "lenet.py"))
    lib = codegen.build(net, target="cuda", write=False)
    no_warnings(lib.build.log)
    assert lib.arch == ("sm_80", "sm_90", "compute_90")
    by_arch = {(k.kernel, k.arch): k for k in lib.kernels}
    conv = by_arch[("lenet_conv_1", "sm_90")]
    assert 0 < conv.registers <= 255 and conv.shared_bytes > 0 and conv.barriers >= 1     # tiled in shared memory
    assert by_arch[("lenet_fc_1", "sm_80")].shared_bytes > 0
    assert not lib.spill_warnings()
    lines = lib.build_report()
    assert "lenet_conv_1" in "\n".join(lines) and "spill" in lines[1]


def test_random_stacks_compile_with_nvcc_without_warnings_or_spills():
    """24 random networks (every op kind, tile edge cases) in one nvcc run for sm_80 + sm_90 + PTX."""
    require_tool("nvcc")
    rng = np.random.default_rng(7000)
    nets = [(random_chain, random_dag, tile_stack)[i % 3](rng, f"nv{i}") for i in range(24)]
    libs = build_many(nets, target="cuda")
    no_warnings(libs[0].build.log)
    for net, lib in zip(nets, libs):
        kernels = {k.kernel for k in lib.kernels if k.arch == "sm_90"}
        assert len(kernels) >= len(lib.plan.ops), (net.name, kernels)
        assert not lib.spill_warnings(), lib.spill_warnings()
        # the tensor-core kernels (blocks of 128 threads, __launch_bounds__(128, 3)) may use up to 168
        wmma = {c.fn for c in cuda_ops(lib) if c.tensor_cores}
        assert all(k.registers <= (168 if k.kernel in wmma else 128) for k in lib.kernels), resources_table(lib.kernels)
    assert sum(lib.tensor_core_ops for lib in libs) >= 5          # TF32, the default precision, is compiled too


def test_arch_selects_nvcc_targets():
    assert arch_flags(None) == ["-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
                                "-gencode", "arch=compute_90,code=compute_90"]
    assert arch_flags("sm_86") == ["-gencode", "arch=compute_86,code=sm_86"]
    assert arch_flags(["sm_90a", "compute_120"]) == ["-gencode", "arch=compute_90a,code=sm_90a", "-gencode",
                                                     "arch=compute_120,code=compute_120"]
    assert arch_flags(["native"]) == ["-arch=native"]
    with pytest.raises(CodegenError, match="sm_80"):
        arch_flags(["sm80; rm -rf /"])


def test_half_and_bfloat16_kernels_compile_for_sm80_and_sm90():
    """The tensor-core kernels with half and bfloat16 inputs (convolutions and FC layers across the
    tile edges) in one nvcc run each, for sm_80 + sm_90 + PTX: no warnings, no spills."""
    require_tool("nvcc")
    from test_cuda_tensor_cores import _single_op_nets
    nets = _single_op_nets()
    for precision in ("fp16", "bf16"):
        libs = build_many(nets, target="cuda", precision=precision)
        no_warnings(libs[0].build.log)
        assert all(lib.tensor_core_ops == 1 and not lib.spill_warnings() for lib in libs)
        assert {k.arch for k in libs[0].kernels} == {"sm_80", "sm_90"}


def test_tf32_needs_sm80_and_precision_is_checked():
    net = load(str(EXAMPLES / "lenet.py"))
    with pytest.raises(CodegenError, match="sm_80 or newer.*sm_75.*fp32"):
        codegen.build(net, target="cuda", arch=["sm_75"], write=False)
    with pytest.raises(CodegenError, match="precision 'fp64' is not valid"):
        codegen.build(net, target="cuda", emulate=True, precision="fp64", write=False)
    with pytest.raises(CodegenError, match="for the CUDA target"):
        codegen.build(net, precision="tf32", write=False)


def test_single_architecture_build():
    require_tool("nvcc")
    net = load(str(EXAMPLES / "grouped.py"))
    lib = codegen.build(net, target="cuda", arch=["sm_80"], write=False)
    assert {k.arch for k in lib.kernels} == {"sm_80"}
    no_warnings(lib.build.log)


def test_parse_ptxas_figures():
    log = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z12lenet_conv_1PKfPfS0_S0_' for 'sm_80'
ptxas info    : Function properties for _Z12lenet_conv_1PKfPfS0_S0_
    16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 62 registers, used 1 barriers, 5120 bytes smem, 384 bytes cmem[0]
ptxas info    : Compiling entry function '_Z10lenet_fillPfimf' for 'sm_90'
ptxas info    : Function properties for _Z10lenet_fillPfimf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers
"""
    conv, fill = parse_ptxas(log)
    assert (conv.kernel, conv.arch, conv.registers, conv.shared_bytes, conv.barriers) == ("lenet_conv_1", "sm_80", 62,
                                                                                          5120, 1)
    assert (conv.stack_bytes, conv.spill_stores, conv.spill_loads, conv.spills) == (16, 8, 12, True)
    assert (fill.kernel, fill.registers, fill.shared_bytes, fill.spills) == ("lenet_fill", 10, 0, False)


def test_without_a_gpu_predict_says_why():
    require_tool("nvcc")
    net = load(str(EXAMPLES / "lenet.py"))
    lib = codegen.build(net, target="cuda", write=False)
    count, reason = lib.device_count()
    if count > 0:
        pytest.skip("this machine has a GPU: the no-GPU error path cannot be shown")
    assert "CUDA" in reason or "cuda" in reason
    with pytest.raises(CudaUnavailable, match="no usable CUDA device"):
        lib.predict(random_inputs(net, 1))
    emulated, is_emulated = lib.verifiable(lambda line: None)
    assert is_emulated and verify(net, emulated).passed


@pytest.mark.gpu
def test_gpu_kernels_match_reference():
    """On a GPU: the examples and 60 random stacks, built for this GPU, against the reference."""
    require_tool("nvcc")
    lenet = load(str(EXAMPLES / "lenet.py"))
    gpu_or_skip(codegen.build(lenet, target="cuda", write=False))     # before the long build
    rng = np.random.default_rng(7100)
    nets = [load(str(p)) for p in sorted(EXAMPLES.glob("*.py"))]
    nets += [(random_chain, random_dag, tile_stack)[i % 3](rng, f"gpu{i}") for i in range(60)]
    libs = build_many(nets, target="cuda", arch=["native"])
    no_warnings(libs[0].build.log)
    check_against_reference(nets, libs, count=4)
    lib = next(lib for lib in libs if lib.prefix == "lenet")
    per_op, total = lib.time_ops(batch=8, reps=5)
    assert total > 0 and all(ms > 0 for _, ms in per_op)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_gpu_every_precision_and_graph_replay(precision):
    """On a GPU (tf32, the default, is the test above): the examples in each other precision within
    their tolerance; the graphs (one per batch size) replayed again give the same bits, and the rows
    of a batch of 3 those of single images."""
    require_tool("nvcc")
    lenet = load(str(EXAMPLES / "lenet.py"))
    gpu_or_skip(codegen.build(lenet, target="cuda", write=False))     # sm_80/sm_90: builds without a GPU too
    nets = [load(str(p)) for p in sorted(EXAMPLES.glob("*.py"))]
    libs = build_many(nets, target="cuda", arch=["native"], precision=precision)
    no_warnings(libs[0].build.log)
    check_against_reference(nets, libs, count=4)
    for net, lib in zip(nets, libs):
        x = random_inputs(net, 3, seed=1)
        first, again = lib.predict(x), lib.predict(x)
        if isinstance(first, tuple):
            continue
        assert np.array_equal(first, again), net.name
        assert np.array_equal(first[1], lib.predict(x[1])[0]), net.name
