"""The steps of a device build: cross-compiling the C output, running it under QEMU, and
working out what it costs. The device target (:mod:`codegen.targets.device`) runs them:

    dev = codegen.build(net, device="cortex-m4")       # cross-compile (cached), footprint, checks
    y = dev.predict(x)                                 # runs the harness under QEMU: (N, H, W, C)
    print(dev.footprint.report())                      # flash and RAM
    dev.check_budget(max_ram=64 * 1024)

For every device (see :mod:`codegen.devices`) the generated ``<name>.c`` and ``<name>_weights.c``
are compiled as they are, with the device's flags plus ``-ffunction-sections -fdata-sections``
(so that the map file names every function and array), and linked twice:

- **the harness** (runtime/embedded/harness.c): reads images from a file, calls
  ``<name>_predict`` and ``<name>_predict_ws``, writes the outputs to a file and measures the
  stack the network used. On Cortex-M it is linked with our start-up file and linker script
  (runtime/embedded/startup.c, flat.ld) and newlib's semihosting library, and runs under
  ``qemu-system-arm``; AArch64 runs under ``qemu-aarch64``, the host runs it directly.
- **a minimal firmware** (runtime/embedded/main_min.c: static buffers and one call of
  ``<name>_predict``; on Cortex-M with no C start-up code and no semihosting). Its map file
  gives the footprint of the network and of exactly the library members the network pulls in,
  and is checked: no malloc, no C library beyond ``<math.h>``/``<string.h>`` (plus the errno
  that math functions set), and no double-precision helpers.

Counting: on the Cortex-M boards QEMU runs with ``-icount shift=0`` and the harness reads
SysTick around every ``<name>_predict`` call, so ``dev.last_run.instructions`` is the
instructions per inference, deterministic (and ``dev.last_run.per_op`` each op's, for a build
with ``profile=True``): :mod:`.counting`.

Footprint: flash = code + weights and other constants + library code the network pulls in
(e.g. ``expf``) + initial values of its static data; RAM = arena + stack + static data. The
stack is measured by the harness when it ran (the deepest word of a painted region that the
network overwrote), and otherwise estimated from GCC's ``-fcallgraph-info=su`` (the network's
own frames, library calls not included).
"""

from .checks import (ALLOCATION_SYMBOLS, DOUBLE_HELPER, ERRNO_SYMBOLS, MATH_FUNCTIONS, STRING_FUNCTIONS, Check,
                     check_double, check_libc, checks_of, double_instructions)
from .footprint import BudgetError, Footprint, check_budget, footprint_of, parse_bytes
from .linkmap import InputSection, LinkMap, _archive, parse_map
from .counting import Count, parse_counts
from .qemu import RUN_TIMEOUT, RunResult, run_command, run_harness
from .stack import stack_estimate
from .toolchain import BUILD_VERSION, COMPILE_TIMEOUT, RUNTIME_FILES, Artifacts, compile_device
