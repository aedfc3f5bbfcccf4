"""The Pygments lexer (netdsl/lexer.py): every .net file of the repository and every ```netdsl
block of the README highlights without an error token, the grammar's keywords and the registry's
ops are told apart, and Pygments finds the lexer by its entry point (`pygmentize -l netdsl`)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import import_module, metadata

import pytest

pytest.importorskip("pygments", reason="Pygments is not installed: pip install pygments")

from pygments.token import Comment, Error, Keyword, Name, Number, Operator  # noqa: E402

from conftest import ROOT  # noqa: E402
from netdsl.lexer import NetdslLexer  # noqa: E402
from netdsl.ops import REGISTRY  # noqa: E402
from netdsl.parser import KEYWORDS  # noqa: E402


def errors(text: str) -> list[tuple[int, str]]:
    return [(i, value) for i, token, value in NetdslLexer().get_tokens_unprocessed(text) if token in Error]


def sample_files() -> list:
    files = []
    for path in sorted([*ROOT.glob("nets/**/*.net"), *ROOT.glob("examples/**/*.net"), *ROOT.glob("tests/**/*.net")]):
        try:
            files.append(pytest.param(path.read_bytes().decode("utf-8"), id=str(path.relative_to(ROOT))))
        except UnicodeDecodeError:  # the fuzzer's files that are not text (E103): nothing to highlight
            continue
    return files


@pytest.mark.parametrize("text", sample_files())
def test_every_net_file_highlights_without_errors(text):
    assert errors(text) == []


def test_the_nets_are_among_them():
    assert len([p for p in sample_files() if p.id.startswith("nets/")]) == len(list(ROOT.glob("nets/**/*.net"))) >= 5


def test_the_readmes_blocks_of_the_language_highlight_without_errors():
    blocks = re.findall(r"^```netdsl\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) >= 7
    for block in blocks:
        assert errors(block) == [], block


def test_what_is_not_the_language_is_an_error():
    assert [v for _, v in errors("net n { input 3x8x8 $ conv(4, 3) ; }")] == ["$", ";"]


def tokens(text: str) -> dict[str, object]:
    return {value: token for _, token, value in NetdslLexer().get_tokens_unprocessed(text) if value.strip()}


def test_keywords_ops_names_and_numbers_are_told_apart():
    # every keyword of the grammar, wherever it may stand
    for word in KEYWORDS:
        assert tokens(f"{word} ")[word] in Keyword, word
    for op in set(REGISTRY) - KEYWORDS:
        assert tokens(f"{op}(1)")[op] in Name.Builtin, op
    found = tokens("block stage(c) { s: conv(c, 3x3, pad=same) }  net n { input 3×224×224  stage(64)  "
                   "probe: head from s.1 { linear(1e-4 + .5 // 2) } }  # done")
    assert found["stage"] is Name.Function and found["s"] is Name.Label and found["pad"] is Name.Attribute
    assert found["same"] is Name and found["3x3"] is Number and found["3×224×224"] is Number
    assert found["s.1"] is Name.Variable and found["1e-4"] is Number.Float and found["2"] is Number.Integer
    assert found["//"] is Operator
    assert found["# done"] in Comment


def test_the_entry_point_names_the_lexer():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    module, _, name = project["entry-points"]["pygments.lexers"]["netdsl"].partition(":")
    assert getattr(import_module(module), name) is NetdslLexer


def test_pygmentize_finds_it():
    installed = [e for e in metadata.entry_points(group="pygments.lexers") if e.name == "netdsl"]
    if not installed:
        pytest.skip("netdsl is installed without its entry points: pip install -e . again (./dev setup does)")
    googlenet = str(ROOT / "nets" / "googlenet.net")
    r = subprocess.run([sys.executable, "-m", "pygments", "-l", "netdsl", "-f", "raw", googlenet],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Token.Keyword" in r.stdout and "Token.Error" not in r.stdout
