"""What differs between the C and the CUDA output, as data.

The kernels themselves differ in structure (a CUDA kernel is one thread's work), so each
target has its own op templates under ``templates/<target>/ops``; everything around them
(file names, qualifiers, the weights file, names and literals) is driven by these records.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str              # 'c' or 'cuda'
    source_ext: str        # extension of the file holding the kernels
    template_dir: str      # templates/<template_dir>
    restrict: str          # the restrict qualifier spelling
    op_qualifier: str      # qualifier of an op's function
    weights_qualifier: str = "const"


C = Dialect(name="c", source_ext=".c", template_dir="c", restrict="restrict", op_qualifier="static void")
CUDA = Dialect(name="cuda", source_ext=".cu", template_dir="cuda", restrict="__restrict__",
               op_qualifier="static __global__ void")

DIALECTS = {"c": C, "cuda": CUDA}
