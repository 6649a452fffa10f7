"""The layout rules of the code (docs/adding-a-layer.md relies on them), checked with ``ast``:

- one home per op: no module outside a layer family (``codegen/layers/``) or an op home
  (``codegen/ops/``, ``codegen/onnx/ops/``) tests a layer's class or compares an op kind or an
  ONNX op type with a name: they dispatch through the registries;
- no import cycles between the modules of ``codegen``;
- no function-level imports, except of optional dependencies;
- no module over 450 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import codegen
from codegen.layers import LAYER_CLASSES
from codegen.ops import KINDS

PACKAGE = Path(codegen.__file__).resolve().parent
HOMES = ("layers", "ops", "onnx/ops")
OPTIONAL = {"onnx", "onnxruntime", "torch", "matplotlib", "pygments"}   # imported where used: not everyone needs them
MAX_LINES = 450


def modules() -> dict[str, Path]:
    """{dotted name: path} of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def in_home(path: Path) -> bool:
    rel = path.relative_to(PACKAGE).as_posix()
    return any(rel.startswith(home + "/") for home in HOMES)


def onnx_op_types() -> set[str]:
    try:
        from codegen.onnx.registry import TRANSLATORS
    except ImportError:             # the ONNX package is optional: no op types to look for then
        return set()
    return set(TRANSLATORS)


def _strings(node) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _strings(elt)]
    return []


def _names(node) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [n for elt in node.elts for n in _names(elt)]
    return []


def switches(tree: ast.AST, op_types: set[str]) -> list[str]:
    """Lines that test a layer class, or compare ``.kind`` with an op kind / ``.op_type`` with an ONNX op."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance",
                                                                                              "issubclass"):
            classes = [n for n in _names(node.args[1]) if n in LAYER_CLASSES] if len(node.args) > 1 else []
            if classes:
                found.append(f"line {node.lineno}: {node.func.id}(..., {', '.join(classes)})")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            attrs = {s.attr for s in sides if isinstance(s, ast.Attribute)}
            values = {v for s in sides for v in _strings(s)}
            if "kind" in attrs and values & set(KINDS):
                found.append(f"line {node.lineno}: .kind compared with {sorted(values & set(KINDS))}")
            if "op_type" in attrs and values & op_types:
                found.append(f"line {node.lineno}: .op_type compared with {sorted(values & op_types)}")
    return found


def module_imports(name: str, path: Path, known: set[str]) -> tuple[set[str], list[str]]:
    """(the codegen modules ``name`` imports at module level, function-level imports that are not optional)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps, local = set(), []

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def targets(node) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        mod = resolve(node)
        out = []
        for a in node.names:
            sub = f"{mod}.{a.name}"
            out.append(sub if sub in known else mod)
        return out

    for node in tree.body:
        for inner in ast.walk(node):
            if not isinstance(inner, (ast.Import, ast.ImportFrom)):
                continue
            names = targets(inner)
            top_level = inner in tree.body or any(inner in getattr(n, "body", []) for n in tree.body
                                                  if isinstance(n, (ast.If, ast.Try)))
            if top_level:
                deps.update(n for n in names if n in known and n != name)
            elif not all(n.split(".")[0] in OPTIONAL for n in names):
                local.append(f"line {inner.lineno}: import of {', '.join(names)} inside a function")
    return deps, local


def test_no_module_switches_on_layer_classes_or_op_kinds_outside_their_home():
    op_types = onnx_op_types()
    bad = {}
    for name, path in modules().items():
        if in_home(path):
            continue
        found = switches(ast.parse(path.read_text()), op_types)
        if found:
            bad[name] = found
    assert not bad, f"dispatch through the registries instead: {bad}"


def test_the_check_sees_a_switch():
    """The checker itself finds the patterns it forbids (a test that cannot fail would be worthless)."""
    code = ("if isinstance(layer, Convolution2DLayer): pass\n"
            "if op.kind in ('conv', 'fc'): pass\n"
            "if node.op_type == 'Relu': pass\n")
    found = switches(ast.parse(code), {"Relu"})
    assert len(found) == 3, found


def test_no_import_cycles():
    known = modules()
    graph = {name: module_imports(name, path, set(known))[0] for name, path in known.items()}
    # a module's dependency on its own package's __init__ is how Python loads it, not a cycle
    for name in graph:
        graph[name] = {d for d in graph[name] if not name.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_imports_at_module_level():
    known = modules()
    bad = {}
    for name, path in known.items():
        local = module_imports(name, path, set(known))[1]
        if local:
            bad[name] = local
    assert not bad, f"import at module level (only optional dependencies may load lazily): {bad}"


def test_no_module_over_450_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not big, f"split these modules (one job each): {big}"
