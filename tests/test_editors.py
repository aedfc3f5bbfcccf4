"""The VS Code extension in editors/vscode: its TextMate grammar is the one editors/textmate.py
makes from netdsl's grammar and op registry, valid JSON, with regexes that compile (under Python's
re, which reads the constructs used as Oniguruma does); run over the repository's nets with
TextMate's rule (at each place, the earliest match, the first rule on a tie) it gives the grammar's
keywords a keyword scope, the registry's ops a function scope, and leaves nothing but names and
blanks without one. The manifest and the language configuration are checked too."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from netdsl.ops import REGISTRY
from netdsl.parser import KEYWORDS

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR_FILE = VSCODE / "syntaxes" / "netdsl.tmLanguage.json"


def _generator():
    spec = importlib.util.spec_from_file_location("textmate", ROOT / "editors" / "textmate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_textmate_grammar_is_current():
    assert GRAMMAR_FILE.read_text(encoding="utf-8") == _generator().text(), \
        "run: python editors/textmate.py --write"


GRAMMAR = json.loads(GRAMMAR_FILE.read_text(encoding="utf-8"))


def _rules(patterns):
    """The grammar's match rules in order, includes followed."""
    for p in patterns:
        if "include" in p:
            yield from _rules([GRAMMAR["repository"][p["include"].lstrip("#")]])
        elif "patterns" in p:
            yield from _rules(p["patterns"])
        else:
            yield p


RULES = [(re.compile(rule["match"]), rule) for rule in _rules(GRAMMAR["patterns"])]


def scopes(text: str) -> list[tuple[str, str]]:
    """(text, scope) pieces of one line as TextMate's flat match rules give them; unscoped
    text comes as (text, "")."""
    out, pos = [], 0
    while pos < len(text):
        best = None
        for regex, rule in RULES:
            m = regex.search(text, pos)
            if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                best = (m, rule)
        if best is None:
            out.append((text[pos:], ""))
            break
        m, rule = best
        if m.start() > pos:
            out.append((text[pos:m.start()], ""))
        if "captures" in rule:
            for group, capture in sorted(rule["captures"].items(), key=lambda kv: int(kv[0])):
                out.append((m.group(int(group)), capture["name"]))
        else:
            out.append((m.group(), rule["name"]))
        pos = m.end()
    return out


def test_every_regex_compiles():
    assert len(RULES) >= 12
    for regex, rule in RULES:
        assert regex.pattern == rule["match"]


def test_the_scopes_match_the_grammars_keywords():
    for word in KEYWORDS:
        [(text, scope), *_] = [piece for piece in scopes(f"{word} x") if piece[0].strip()]
        assert text == word and re.match(r"(keyword|storage\.type|constant\.language)\.", scope), (word, scope)
    # and nothing else is a keyword
    keywordish = {text for line in ("net n { input 3x8x8 conv(4, 3) relu }",) for text, scope in scopes(line)
                  if scope.startswith(("keyword.control", "storage.type", "constant.language"))}
    assert keywordish <= KEYWORDS


def test_ops_shapes_labels_and_comments():
    for op in set(REGISTRY) - KEYWORDS:
        assert scopes(f"{op}(1)")[0] == (op, f"support.function.{'join' if REGISTRY[op].join else 'builtin'}.netdsl")
    found = dict(scopes("    conv1: conv(64, 7x7, stride=2, pad=same)  # 64x112x112"))
    assert found["conv1"] == "entity.name.label.netdsl" and found["conv"] == "support.function.builtin.netdsl"
    assert found["7x7"] == "constant.numeric.shape.netdsl" and found["64"] == "constant.numeric.integer.netdsl"
    assert found["stride"] == "variable.parameter.netdsl" and found["# 64x112x112"].startswith("comment.")
    found = dict(scopes("block inception(c1) { head from inception4a.branch2 { dropout(0.5) } }"))
    assert found["inception"] == "entity.name.function.netdsl" and found["0.5"] == "constant.numeric.float.netdsl"
    assert found["inception4a.branch2"] == "variable.other.path.netdsl"


@pytest.mark.parametrize("path", sorted(ROOT.glob("nets/**/*.net")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_net_is_covered(path):
    for line in path.read_text(encoding="utf-8").split("\n"):
        for text, scope in scopes(line):
            if not scope:  # names (parameters, blocks used) and blanks only
                assert re.fullmatch(r"(\s|[A-Za-z_][A-Za-z0-9_]*)*", text), (line, text)


def test_the_manifest():
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    [language] = manifest["contributes"]["languages"]
    [grammar] = manifest["contributes"]["grammars"]
    assert language["id"] == grammar["language"] == "netdsl" and ".net" in language["extensions"]
    assert grammar["scopeName"] == GRAMMAR["scopeName"]
    for path in (language["configuration"], grammar["path"], manifest["main"]):
        assert (VSCODE / path).is_file(), path
    assert "vscode-languageclient" in manifest["dependencies"]
    assert manifest["contributes"]["configuration"]["properties"]["netdsl.server.args"]["default"] == ["lsp"]
    assert (VSCODE / "README.md").is_file()


def test_the_language_configuration():
    config = json.loads((VSCODE / "language-configuration.json").read_text(encoding="utf-8"))
    assert config["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in config["brackets"] and ["(", ")"] in config["brackets"]
    assert {"open": "{", "close": "}"} in config["autoClosingPairs"]
    start, end = (re.compile(config["folding"]["markers"][k]) for k in ("start", "end"))
    assert start.search("block inception(c1) {  # four branches") and end.search("    }")
    assert not start.search("concat { a | b }")
    word = re.compile(config["wordPattern"])
    assert word.fullmatch("3x224x224") and word.fullmatch("inception4a")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_extension_script_parses():
    r = subprocess.run(["node", "--check", str(VSCODE / "extension.js")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


ENGINE = VSCODE / "node_modules" / "vscode-textmate"


@pytest.mark.skipif(shutil.which("node") is None or not ENGINE.is_dir(),
                    reason="VS Code's TextMate engine is not installed: run npm install in editors/vscode")
def test_vscodes_own_engine_agrees():
    """The grammar run by vscode-textmate on Oniguruma, as the editor runs it, gives every net
    the scopes the tests above give it with Python's re."""
    files = sorted(str(p) for p in ROOT.glob("nets/**/*.net"))
    r = subprocess.run(["node", str(VSCODE / "scripts" / "tokenize.js"), *files], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    for file, lines in json.loads(r.stdout).items():
        text = (ROOT / file).read_text(encoding="utf-8").split("\n")
        for line, tokens in zip(text, lines):
            engine = [(piece, names[-1]) for piece, names in tokens if names]
            assert engine == [(piece, scope) for piece, scope in scopes(line) if scope], (file, line)
