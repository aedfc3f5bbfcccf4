"""Nothing in a .net file runs as code: the package never evaluates text, loads pickles or
imports by name (checked on its source), and Python-looking names in a file are just names."""

from __future__ import annotations

import ast as pyast

import pytest

import netdsl
from conftest import ROOT
from netdsl.diagnostics import NetDSLError

SOURCES = sorted((ROOT / "netdsl").rglob("*.py"))  # subpackages too
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__", "breakpoint"}
FORBIDDEN_ATTRS = {("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"), ("importlib", "import_module"),
                   ("yaml", "load"), ("os", "system"), ("dill", "load"), ("dill", "loads")}


def _risky_calls(path):
    tree = pyast.parse(path.read_text(encoding="utf-8"))
    for node in pyast.walk(tree):
        if not isinstance(node, pyast.Call):
            continue
        f = node.func
        if isinstance(f, pyast.Name) and f.id in FORBIDDEN_NAMES:
            yield node.lineno, f.id
        if isinstance(f, pyast.Attribute) and isinstance(f.value, pyast.Name):
            if (f.value.id, f.attr) in FORBIDDEN_ATTRS:
                yield node.lineno, f"{f.value.id}.{f.attr}"
            if (f.value.id, f.attr) == ("torch", "load") and not any(
                    k.arg == "weights_only" and isinstance(k.value, pyast.Constant) and k.value.value is True
                    for k in node.keywords):
                yield node.lineno, "torch.load without weights_only=True"


# The two places that import by name, on purpose, never from a .net file's text: `netdsl import
# SPEC` builds the user's own constructor, named on the command line (running the user's Python is
# what importing a model means), and the importer resolves the registry's `FromTorch` targets,
# strings written in netdsl/ops/*.py. One call each, no more.
IMPORTS_BY_NAME = {"netdsl/cli.py", "netdsl/backend/importer.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_package_never_runs_text_or_loads_pickles(path):
    risky = list(_risky_calls(path))
    if str(path.relative_to(ROOT)) in IMPORTS_BY_NAME:
        assert [what for _, what in risky] == ["importlib.import_module"]
    else:
        assert risky == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle, torch\neval(x)\npickle.loads(b)\ntorch.load(f)\ntorch.load(f, weights_only=True)\n")
    assert [what for _, what in _risky_calls(bad)] == ["eval", "pickle.loads", "torch.load without weights_only=True"]


@pytest.mark.parametrize("text,code", [
    ("net n { input 8 __import__ }", "E201"),
    ("net n { input 8 eval(1) }", "E201"),
    ("net n { input 3x8x8 conv(8, 3, pad=__class__) }", "E202"),
    ("net n(c = __builtins__) { input 8 linear(c) }", "E202"),
    ("net n { input 8 linear(__import__('os').system('true')) }", "E101"),  # no strings
    ("net n { input 8 linear(__import__(8)) }", "E208"),  # only the built-in functions are called
    ("net n { input 8 linear(eval(8)) }", "E208"),
    ("net n { input 8 linear(int.__class__) }", "E100"),
    ("block Linear { relu }\nnet n { input 8 nn.Linear }", "E100"),
])
def test_python_names_in_a_file_are_only_names(text, code):
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text)
    assert [d.code for d in err.value.diagnostics][:1] == [code]
