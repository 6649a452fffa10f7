"""Embedded targets (issue 6): the generated C cross-compiled for Cortex-M4F, Cortex-M7,
Cortex-M55 and AArch64, run under QEMU and compared with the NumPy reference; footprint,
budgets, link-map and disassembly checks, the generated Makefile/CMakeLists.txt toolchains.

A device whose tools are missing skips with the reason (fails under CI: CODEGEN_CI=1).
``codegen build/verify --device`` (budgets, errors) is tested in test_cli.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen import embedded
from codegen.devices import DEVICES, get_device
from codegen.embedded import (ALLOCATION_SYMBOLS, DOUBLE_HELPER, BudgetError, check_budget, compile_device,
                              parse_map)
from codegen.emit import render_files
from codegen.emit.dialect import DIALECTS
from codegen.netfile import load
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error, verify
from conftest import require_tool

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOL = 1e-5

_NETS: dict = {}
_BUILDS: dict = {}


def net_of(example: str):
    if example not in _NETS:
        _NETS[example] = load(EXAMPLES / f"{example}.py")
    return _NETS[example]


def require_device(name: str) -> None:
    require_tool(*DEVICES[name].tools)


def device_build(example: str, device: str, weights_section: str | None = None):
    """One build per (example, device, section) and test process; the build cache makes a
    repeated build cheap anyway."""
    require_device(device)
    key = (example, device, weights_section)
    if key not in _BUILDS:
        _BUILDS[key] = codegen.build(net_of(example), device=device, write=False, weights_section=weights_section)
    return _BUILDS[key]


# --- the examples on each device match the reference ---------------------------------------------

@pytest.mark.parametrize("device", ["cortex-m4", "cortex-m55", "aarch64", "cortex-m7"])
@pytest.mark.parametrize("example", ["lenet", "grouped"])
def test_example_matches_reference_on_device(example, device):
    net = net_of(example)
    dev = device_build(example, device)
    x = random_inputs(net, 3, seed=11)
    assert np.abs(x).max() > 0.5                              # seeded normal inputs, never all zeros
    y = dev.predict(x)
    ref = net.predict(x.astype(np.float64))
    assert y.shape == ref.shape and y.dtype == np.float32
    errors = [rel_error(y[i], ref[i]) for i in range(len(x))]
    print(f"\n{example} on {device}: relative errors {', '.join(f'{e:.1e}' for e in errors)}")
    print(dev.footprint.report())
    assert max(errors) < TOL, errors
    # a single image (H, W, C) gives the same bits as in a batch
    assert np.array_equal(dev.predict(x[1]), y[1])
    # the harness measured the stack the network used
    assert dev.footprint.stack_measured is not None and 0 < dev.footprint.stack_measured < 64 * 1024
    assert not dev.footprint.stack_saturated


def test_verification_report_through_codegen_verify():
    net = net_of("grouped")
    dev = device_build("grouped", "cortex-m4")
    result = verify(net, dev, count=2, seed=5)
    assert result.passed and result.max_error < TOL, result.report()


# --- footprint and budgets ------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["cortex-m4", "aarch64"])
def test_footprint_adds_up(device):
    net = net_of("lenet")
    plan = make_plan(net, **DIALECTS["c"].plan_options())      # as the device build plans it
    dev = device_build("lenet", device)
    dev.predict(random_inputs(net, 1))
    fp = dev.footprint
    print("\n" + fp.report())
    assert fp.arena == plan.arena_bytes                       # the static arena, found in the map
    assert fp.constants >= plan.weight_bytes                  # every weight is in flash
    assert 0 < fp.code < 64 * 1024
    assert fp.lib_code > 0                                    # expf (softmax) comes from libm
    assert fp.flash == fp.code + fp.constants + fp.weights_in_section + fp.lib_code + fp.data
    assert fp.ram == fp.arena + fp.stack + fp.static_data
    assert fp.stack >= fp.stack_measured > 0
    assert fp.stack_static is not None and fp.stack_static > 0
    assert fp.io_bytes == 4 * (plan.input.size + plan.output.size)
    # the arena is what the memory plan promised: smaller than the sum of the activations
    assert fp.arena < plan.activations_floats * 4


def test_footprint_matches_size_of_the_objects():
    """The map-file figures agree with arm-none-eabi-size on the network's own objects."""
    require_device("cortex-m4")
    dev = device_build("lenet", "cortex-m4")
    folder = dev.artifacts.folder
    out = subprocess.run(["arm-none-eabi-size", "-A", "lenet.o", "lenet_weights.o"], capture_output=True,
                         text=True, cwd=folder, check=True).stdout
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[0].startswith("."):
            kind = parts[0].split(".")[1]
            sizes[kind] = sizes.get(kind, 0) + int(parts[1])
    fp = dev.footprint
    assert sizes["rodata"] == fp.constants
    assert sizes["bss"] == fp.arena + fp.bss                  # the static arena (and nothing else)
    assert sizes["text"] >= fp.code                           # --gc-sections may drop unused functions


def test_budget_errors_name_the_figures():
    dev = device_build("lenet", "cortex-m4")
    fp = dev.footprint
    check_budget(fp, max_ram=fp.ram, max_flash=fp.flash)       # exactly at the budget passes
    with pytest.raises(BudgetError) as err:
        check_budget(fp, max_ram=fp.ram - 1)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"RAM {fp.ram:,} bytes exceeds the budget of {fp.ram - 1:,} bytes (--max-ram)" in msg
    assert f"arena {fp.arena:,}" in msg and "stack" in msg and "cortex-m4" in msg
    with pytest.raises(BudgetError, match=rf"flash {fp.flash:,} bytes exceeds the budget of 100,000 bytes"):
        check_budget(fp, max_flash=100_000)


# --- link map: no malloc, no libc beyond math/string ------------------------------------------------

@pytest.mark.parametrize("device", ["cortex-m4", "cortex-m55", "aarch64"])
@pytest.mark.parametrize("example", ["lenet", "grouped"])
def test_link_map_has_no_malloc_and_no_libc_beyond_math_and_string(example, device):
    dev = device_build(example, device)
    link = parse_map(dev.artifacts.read("footprint.map"))
    net_files = [f"{dev.prefix}.o", f"{dev.prefix}_weights.o"]
    members = link.closure(net_files)
    defined = link.defined(members)
    assert any("exp" in m for m in members)                  # the map was read: softmax's expf is there
    assert not set(defined) & ALLOCATION_SYMBOLS
    for member in members:
        archive = embedded._archive(member)
        assert archive.startswith(("libm", "libc", "libgcc")), member
    check = dev.checks[0]
    assert check.passed, check.detail
    if DEVICES[device].kind == "baremetal":
        # the minimal firmware holds nothing but start-up code, main, the network and its members
        files = {s.file for s in link.sections if s.size}
        assert files <= {"rt/startup_min.o", "rt/main_min.o", *net_files, *members, "linker stubs"}, files


def test_the_map_check_sees_malloc_when_it_is_there():
    """Positive controls: the harness (stdio) links malloc and the parser finds it; a network
    that calls malloc fails the check."""
    dev = device_build("grouped", "cortex-m4")
    harness = parse_map(dev.artifacts.read("harness.map"))
    assert {"malloc", "_malloc_r"} & set(harness.defined({s.file for s in harness.sections}))
    files = dict(dev.files)
    files["grouped.c"] += ("\n#include <stdlib.h>\nvoid *grouped_bad_alloc(int n);\n"
                           "void *grouped_bad_alloc(int n) { return malloc((size_t)n); }\n")
    art = compile_device(files, "grouped", "cortex-m4")
    check = embedded.checks_of(art, DEVICES["cortex-m4"], "grouped")[0]
    assert not check.passed
    assert "malloc" in check.detail


# --- no double precision on the single-precision FPU ----------------------------------------------

@pytest.mark.parametrize("example", ["lenet", "grouped"])
def test_no_double_precision_soft_float_on_cortex_m4(example):
    dev = device_build(example, "cortex-m4")
    folder = dev.artifacts.folder
    # the network's object, and the minimal firmware with the library members it pulls in
    for target in (f"{dev.prefix}.o", "footprint.elf"):
        dis = subprocess.run(["arm-none-eabi-objdump", "-dr", target], capture_output=True, text=True, cwd=folder,
                             check=True).stdout
        assert "vfma" in dis or "vmla" in dis or "vmul.f32" in dis     # it is hardware single-precision code
        calls = sorted(set(DOUBLE_HELPER.findall(dis)))
        assert not calls, f"{target} calls double-precision helpers: {calls}"
        assert ".f64" not in dis
    assert dev.checks[1].passed, dev.checks[1].detail


def test_the_double_check_sees_double_arithmetic():
    dev = device_build("grouped", "cortex-m4")
    files = dict(dev.files)
    files["grouped.c"] += ("\nfloat grouped_bad_double(float x);\n"
                           "float grouped_bad_double(float x) { return (float)((double)x * 1.000001); }\n")
    art = compile_device(files, "grouped", "cortex-m4")
    check = embedded.checks_of(art, DEVICES["cortex-m4"], "grouped")[1]
    assert not check.passed
    assert "__aeabi_dmul" in check.detail or "__aeabi_f2d" in check.detail


def test_generated_code_compiles_warning_free_for_the_devices():
    for device in ("cortex-m4", "cortex-m55", "aarch64"):
        dev = device_build("grouped", device)
        assert dev.checks[2].passed, dev.checks[2].detail


# --- weights in a named linker section ----------------------------------------------------------------

def test_weights_section_shows_in_the_map_and_runs():
    net = net_of("lenet")
    dev = device_build("lenet", "cortex-m4", weights_section=".extflash")
    assert '__attribute__((section(".extflash")))' in dev.files["lenet_weights.c"]
    link = parse_map(dev.artifacts.read("footprint.map"))
    in_section = [s for s in link.sections if s.output == ".extflash"]
    assert in_section and all(s.file == "lenet_weights.o" for s in in_section)
    symbols = {sym for s in in_section for sym in s.symbols}
    assert {"lenet_conv_1_w", "lenet_fc_1_w"} <= symbols
    assert sum(s.size for s in in_section) >= make_plan(net).weight_bytes
    assert dev.footprint.weights_in_section == sum(s.size for s in in_section)
    assert dev.footprint.constants == 0
    print("\n" + dev.footprint.report())
    x = random_inputs(net, 2, seed=3)
    y = dev.predict(x)
    ref = net.predict(x.astype(np.float64))
    assert max(rel_error(y[i], ref[i]) for i in range(2)) < TOL


# --- the generated build files cross-compile ----------------------------------------------------------

def test_generated_makefile_and_cmake_cross_compile(tmp_path):
    require_device("cortex-m4")
    net = net_of("grouped")
    files = render_files(net, make_plan(net), "c", dict(toolchain=get_device("cortex-m4").toolchain_option()))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "CFLAGS", "AR")}
    subprocess.run(["make", "-s"], cwd=tmp_path, check=True, capture_output=True, env=env)
    header = subprocess.run(["arm-none-eabi-readelf", "-h", "grouped.o"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout
    assert "ARM" in header
    attrs = subprocess.run(["arm-none-eabi-readelf", "-A", "grouped.o"], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout
    assert "VFPv4-D16" in attrs and "VFP registers" in attrs
    assert (tmp_path / "libgrouped.a").exists()
    require_tool("cmake")
    build = tmp_path / "cmake-build"
    subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(build)], check=True, capture_output=True, env=env)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, env=env)
    objects = list(build.rglob("grouped.c.o*"))
    assert objects
    header = subprocess.run(["arm-none-eabi-readelf", "-h", str(objects[0])], capture_output=True, text=True,
                            check=True).stdout
    assert "ARM" in header


# --- fast paths against the portable path ---------------------------------------------------------------

@pytest.mark.parametrize("device", ["aarch64", "cortex-m55"])
@pytest.mark.parametrize("example", ["lenet", "grouped"])
def test_device_fast_paths_match_the_portable_kernels(example, device):
    """Whatever vector code the kernels pick from the compiler's feature macros (NEON on
    AArch64; the Cortex-M tiers on the M55) gives what the portable C99 kernels give (-DCODEGEN_PORTABLE
    where the build holds both, --isa portable on a microcontroller)."""
    net = net_of(example)
    fast = device_build(example, device)
    portable = (codegen.build(net, device=device, write=False, isa="portable") if device.startswith("cortex")
                else codegen.build(net, device=device, write=False, cflags=("-DCODEGEN_PORTABLE",)))
    x = random_inputs(net, 2, seed=21)
    ref = net.predict(x.astype(np.float64))
    y_portable = portable.predict(x)
    y_fast = fast.predict(x)
    e_portable = max(rel_error(y_portable[i], ref[i]) for i in range(2))
    e_fast = max(rel_error(y_fast[i], y_portable[i]) for i in range(2))
    assert e_portable < TOL, f"portable kernels on {device}: relative error {e_portable:.2e}"
    assert e_fast < TOL, f"{device} fast path vs the portable kernels: relative difference {e_fast:.2e}"
