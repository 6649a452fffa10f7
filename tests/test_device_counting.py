"""Instructions counted on the emulated Cortex-M boards (issue 16): QEMU ``-icount shift=0`` makes
SysTick count executed instructions (codegen/embedded/counting.py, runtime/embedded/systick.h).

- a known loop (``subs``/``bne``, two instructions an iteration) gives its count exactly, also past
  the 24-bit counter's wrap;
- a network's count is the same on every run, the per-op counts of a profiling build add up to it,
  and ``codegen build --device ... --profile`` prints both.

A device whose tools are missing skips with the reason (fails under CI: CODEGEN_CI=1).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import codegen
from codegen.devices import get_device
from codegen.embedded import run_command
from codegen.embedded.counting import Count, parse_counts
from codegen.embedded.toolchain import _memory_script
from codegen.resources import runtime_dir
from test_cli import invoke
from test_embedded import net_of, require_device

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include "systick.h"

volatile uint32_t cg_systick_wraps;
void SysTick_Handler(void);
void SysTick_Handler(void)
{
    ++cg_systick_wraps;
}

int main(int argc, char **argv)
{
    unsigned long n = strtoul(argv[argc - 1], NULL, 10);
    cg_systick_start();
    const uint64_t t0 = cg_systick_now();
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    const uint64_t t1 = cg_systick_now();
    printf("codegen-harness: image 0 ticks %lu\n", (unsigned long)(t1 - t0));
    return 0;
}
"""


def loop_instructions(device_name: str, iterations: int, tmp_path: Path) -> int:
    """Instructions counted around a loop of ``iterations`` (2 instructions each), built with the
    harness's start-up code and SysTick header and run as the harness runs."""
    require_device(device_name)
    device = get_device(device_name)
    rt = runtime_dir() / "embedded"
    for name in ("startup.c", "flat.ld", "systick.h"):
        (tmp_path / name).write_text((rt / name).read_text())
    (tmp_path / "cg_memory.ld").write_text(_memory_script(device))
    (tmp_path / "loop.c").write_text(LOOP)
    subprocess.run([device.compiler, *device.cflags, "-std=c99", "-Wall", "-Werror", "--specs=rdimon.specs",
                    "-T", "flat.ld", "-L.", "startup.c", "loop.c", "-o", "loop.elf"], cwd=tmp_path, check=True)
    cmd = run_command(device, tmp_path / "loop.elf", iterations)
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    per_image, _ = parse_counts(proc.stdout, 1, device.instructions_per_tick)
    assert per_image is not None, proc.stdout
    return per_image[0]


@pytest.mark.parametrize("device", ["cortex-m4", "cortex-m55"])
def test_a_known_loop_gives_its_instruction_count(device, tmp_path):
    # 1,000,000 iterations of subs + bne: 50,000 ticks of 40 instructions (mps2), 64,000 of 31.25 (mps3)
    assert loop_instructions(device, 1_000_000, tmp_path) == 2_000_000


def test_a_count_longer_than_the_24_bit_timer_wraps_correctly(tmp_path):
    # 800 M instructions: 20 M ticks, past SysTick's 2^24; the reload exception counts the wrap
    assert loop_instructions("cortex-m4", 400_000_000, tmp_path) == 800_000_000


def test_counts_are_deterministic_and_the_ops_add_up():
    require_device("cortex-m4")
    net = net_of("lenet")
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    plain = codegen.build(net, device="cortex-m4", write=False)
    plain.predict(x)
    first = plain.last_run.count
    plain.predict(x)
    assert plain.last_run.count.per_image == first.per_image           # the same binary, the same count
    assert first.macs == plain.plan.macs and first.per_mac == first.instructions / first.macs
    assert 1.0 < first.per_mac < 20.0

    profiled = codegen.build(net, device="cortex-m4", write=False, profile=True)
    profiled.predict(x)
    run = profiled.last_run
    assert list(run.per_op) == ["+".join(op.layers) for op in profiled.plan.ops]
    total = sum(run.per_op.values())
    assert abs(run.instructions - total) < 0.01 * run.instructions      # the ops are (nearly) all of it
    assert abs(run.instructions - first.instructions) < 0.01 * first.instructions   # the hooks cost little
    conv = run.per_op["conv_1+relu_1+maxpool_1"]                        # convolution and pooling in one op
    assert conv > 0.5 * total                                           # LeNet's convolution dominates
    profiled.predict(x)
    assert profiled.last_run.count.per_op_image == run.count.per_op_image


def test_no_count_on_linux_devices_and_no_profile_for_cuda():
    require_device("aarch64")
    dev = codegen.build(net_of("lenet"), device="aarch64", write=False)
    dev.predict(np.zeros((1, 28, 28, 1), np.float32))
    assert dev.last_run.count is None and dev.last_run.instructions is None
    with pytest.raises(codegen.CodegenError, match="no hooks between its kernels"):
        codegen.build(net_of("lenet"), target="cuda", emulate=True, write=False, profile=True)


def test_count_report():
    count = Count([1000, 1040], [[600, 380], [600, 420]], ["conv", "fc"], [100, None], macs=200)
    assert count.instructions == 1020 and count.per_mac == 5.1
    assert count.per_op == {"conv": 600, "fc": 400}
    text = "\n".join(count.report())
    assert "1,020 (5.10 per MAC), 1,000 to 1,040 over 2 images" in text
    assert "conv" in text and "6.00" in text and "outside the ops" in text


def test_cli_prints_instructions_per_inference_and_per_op(tmp_path):
    require_device("cortex-m4")
    result = invoke("build", EXAMPLES / "lenet.py", "--device", "cortex-m4", "--profile", "--count", "1",
                    "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "instructions per inference: " in result.output and "per MAC" in result.output
    assert "conv_1+relu_1" in result.output and "outside the ops" in result.output
    assert "PASS  no malloc" in result.output           # the hook is the harness's, not the C library's
