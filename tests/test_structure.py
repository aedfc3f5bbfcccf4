"""The package's structure, kept by tests:
- the registry is the one place an op lives: no module outside netdsl/ops/ names a particular
  op (a quoted op name anywhere else is a table of ops that a new op would have to join by hand:
  the diagram's colours, folding, a backend special case; the registry replaces those);
- the modules import one another without cycles (module-level imports; a function that imports
  lazily, as `Network.compile` imports the backend, is not a cycle at import time)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT
from netdsl.ops import REGISTRY

PACKAGE = ROOT / "netdsl"


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def quoted_op_names(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and node.value in REGISTRY]


def test_no_module_outside_the_registry_names_an_op():
    found = {str(p.relative_to(ROOT)): hits for p in sorted(PACKAGE.rglob("*.py"))
             if PACKAGE / "ops" not in p.parents and (hits := quoted_op_names(p))}
    assert found == {}, "move what these modules know about an op into its registry entry"


def test_the_check_finds_a_quoted_op_name(tmp_path):
    """The rule above can fail: a module with an op table is caught, its docstring is not."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""Mentions "conv" in prose."""\nKIND = {"conv": "blue"}\n', encoding="utf-8")
    assert quoted_op_names(sample) == [(2, "conv")]


def module_imports(path: Path) -> set[str]:
    """The netdsl modules a module imports at its top level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = base + (node.module.split(".") if node.module else [])
            if node.level == 0 and target[:1] != ["netdsl"]:
                continue
            if target != parts[: len(target)]:  # an ancestor package runs first anyway: Python's edge
                found.add(".".join(target))
            for alias in node.names:  # `from . import codes` imports a module
                candidate = ".".join(target + [alias.name])
                if (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists() or \
                        (ROOT / Path(*candidate.split(".")) / "__init__.py").exists():
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "netdsl")
    found.discard(".".join(parts))
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, each as the modules along it (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycles():
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in module_imports(path) if m in modules} for name, path in modules.items()}
    assert len(graph) > 30 and sum(map(len, graph.values())) > 50  # the scan sees the package
    assert find_cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_diff_imports_no_torch():
    """`netdsl diff` stays torch-free (as check and summary are; test_cli runs the command and
    looks at sys.modules): neither netdsl/diff.py, in any function, nor a netdsl module it
    imports at its top level, imports torch or the backend."""
    path = PACKAGE / "diff.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    assert names and not {n for n in names if n.split(".")[0] == "torch" or "backend" in n}
    seen, todo = set(), ["netdsl.diff"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        file = (ROOT / Path(*module.split("."))).with_suffix(".py")
        file = file if file.exists() else ROOT / Path(*module.split(".")) / "__init__.py"
        todo += sorted(module_imports(file))
    assert "netdsl.ir" in seen and not {m for m in seen if m.startswith("netdsl.backend")}
