"""The targets a network is built for, each implementing :class:`~codegen.targets.base.Target`
once: the host (:class:`HostC`), CUDA with nvcc (:class:`Cuda`), CUDA in the CPU execution mode
(:class:`CudaEmulated`) and an embedded device (:class:`DeviceTarget`)."""

from __future__ import annotations

from ..errors import UnsupportedError
from .base import Target
from .cuda import Cuda, CudaEmulated, CudaLibrary, CudaUnavailable
from .device import DeviceLibrary, DeviceTarget
from .host import HostC, HostLibrary

TARGET_NAMES = ("c", "cuda")


def make_target(target: str = "c", *, device=None, emulate: bool = False, arch=None, cc: str | None = None,
                opt_flags: list[str] | None = None, extra_flags: list[str] | None = None, openmp: bool = False,
                weights_section: str | None = None, cflags=(), timeout: float | None = None,
                profile: bool = False, isa=None, precision: str | None = None) -> Target:
    """The target for ``target`` ('c' or 'cuda') and its options: ``device`` (a device name: cross-compile
    the C output for it), ``emulate`` (CUDA in the CPU execution mode), ``arch`` (nvcc architectures),
    ``cc``/``opt_flags``/``extra_flags``/``openmp`` (the host compiler), ``cflags``/``timeout`` (device),
    ``profile`` (hooks between ops: instructions per op on a Cortex-M, time per op on the host), ``isa``
    (the kernels' instruction sets: 'all', a name or names joined by commas, see
    :func:`codegen.ops.tiling.isa_choice`; a device has its own, the host every one by default),
    ``precision`` (CUDA float plans: 'tf32', the default, 'fp16', 'bf16' or 'fp32')."""
    if target not in TARGET_NAMES:
        raise UnsupportedError(f"unknown target {target!r}; expected 'c' or 'cuda'")
    if target != "cuda" and precision not in (None, "fp32"):
        raise UnsupportedError(f"precision {precision!r} is for the CUDA target; the C output computes in float32")
    if device is not None:
        if target != "c":
            raise UnsupportedError(f"--device {getattr(device, 'name', device)} needs --target c (the CUDA output "
                                   "runs on NVIDIA GPUs)")
        extra = {} if timeout is None else {"timeout": timeout}
        return DeviceTarget(device, weights_section, cflags, profile=profile, isa=isa, **extra)
    if profile and target == "cuda":
        raise UnsupportedError("profile=True (--profile) times the ops of C on the host or counts a device's "
                               "instructions per op; the CUDA target has no hooks between its kernels")
    if target == "cuda":
        if isa is not None:
            raise UnsupportedError(f"--isa {isa} chooses the C kernels' instruction sets; the CUDA output has none")
        return CudaEmulated(cc, opt_flags, precision) if emulate else Cuda(arch, cc, precision)
    return HostC(cc, opt_flags, extra_flags, openmp, isa, profile=profile)


__all__ = ["Target", "HostC", "HostLibrary", "Cuda", "CudaEmulated", "CudaLibrary", "CudaUnavailable",
           "DeviceTarget", "DeviceLibrary", "make_target", "TARGET_NAMES"]
