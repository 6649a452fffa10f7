# TEMPORARY SHIM (removed at integration): this module moved to codegen/compiler.py because a
# submodule named `build` shadows the public function `codegen.build`. Edit codegen/compiler.py,
# and import from `codegen.compiler`.
from .compiler import *  # noqa: F401,F403
from .compiler import BuildResult, CompileJob, cache_key, cache_root, compile_cached, compiler_identity, host_c_job  # noqa: F401
