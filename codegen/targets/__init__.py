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
                profile: bool = False, precision: str | None = None) -> Target:
    """The target for ``target`` ('c' or 'cuda') and its options: ``device`` (a device name: cross-compile
    the C output for it), ``emulate`` (CUDA in the CPU execution mode), ``arch`` (nvcc architectures),
    ``cc``/``opt_flags``/``extra_flags``/``openmp`` (the host compiler), ``cflags``/``timeout``/``profile``
    (device), ``precision`` (CUDA float plans: 'tf32', the default, or 'fp32')."""
    if target not in TARGET_NAMES:
        raise UnsupportedError(f"unknown target {target!r}; expected 'c' or 'cuda'")
    if target != "cuda" and precision not in (None, "fp32"):
        raise UnsupportedError(f"precision {precision!r} is for the CUDA target; the C output computes in float32")
    if device is not None:
        if target != "c":
            raise UnsupportedError(f"--device {getattr(device, 'name', device)} needs --target c (the CUDA output "
                                   "runs on NVIDIA GPUs)")
        extra = {} if timeout is None else {"timeout": timeout}
        return DeviceTarget(device, weights_section, cflags, profile=profile, **extra)
    if profile:
        raise UnsupportedError("profile=True (--profile) counts instructions per op on a device; add a device "
                               "(--device cortex-m4, cortex-m7 or cortex-m55)")
    if target == "cuda":
        return CudaEmulated(cc, opt_flags, precision) if emulate else Cuda(arch, cc, precision)
    return HostC(cc, opt_flags, extra_flags, openmp)


__all__ = ["Target", "HostC", "HostLibrary", "Cuda", "CudaEmulated", "CudaLibrary", "CudaUnavailable",
           "DeviceTarget", "DeviceLibrary", "make_target", "TARGET_NAMES"]
