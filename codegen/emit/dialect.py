"""What differs between the C and the CUDA output, as data.

The kernels themselves differ in structure (a CUDA kernel is one thread's work), so each
target has its own op templates, found as ``templates/<template_dir>/ops/<kind><source_ext>.j2``
by both network templates; around them, every token that differs (the restrict qualifier, the
qualifier of an op's function) comes from these records.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str              # 'c' or 'cuda'
    source_ext: str        # extension of the file holding the kernels (and of their templates)
    template_dir: str      # templates/<template_dir>
    restrict: str          # the restrict qualifier spelling
    op_qualifier: str      # qualifier of an op's function
    helper_qualifier: str  # qualifier of a small helper the kernels call (the int8 requantization)
    conv_pool: bool = False  # plans fuse a convolution and its pooling into one op (codegen/ops/convpool.py)
    stream_rows: bool = False  # float plans stream chains of convolutions by rows to lower the arena (ops/stream.py)

    def plan_options(self) -> dict:
        """The options of :func:`codegen.plan.make_plan` this target's plans take."""
        return dict(conv_pool=self.conv_pool, stream=self.stream_rows)


C = Dialect(name="c", source_ext=".c", template_dir="c", restrict="restrict", op_qualifier="static void",
            helper_qualifier="static inline", conv_pool=True, stream_rows=True)
CUDA = Dialect(name="cuda", source_ext=".cu", template_dir="cuda", restrict="__restrict__",
               op_qualifier="static __global__ void", helper_qualifier="static __device__ __forceinline__")

DIALECTS = {d.name: d for d in (C, CUDA)}
