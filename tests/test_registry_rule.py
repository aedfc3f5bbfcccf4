"""The registry is the one place an op lives: no module outside netdsl/ops/ names a particular
op. A quoted op name anywhere else is a table of ops that a new op would have to join by hand
(the diagram's colours, folding, a backend special case), which is what the registry replaces."""

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
