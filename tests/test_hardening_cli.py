"""Hardening (issue 10): the parser's tables never come from a place another user could write;
no command writes over its input; fmt formats the file, not the name; the command line never
shows a traceback; render bounds what it hands to Graphviz; paths reach the terminal escaped;
fmt keeps every comment with its code."""

from __future__ import annotations

import ast as pyast
import hashlib
import itertools
import os
import re
import subprocess
import sys

import lark
import pytest
from hypothesis import given
from lark import Lark
from lark.exceptions import UnexpectedInput

from conftest import ROOT, net_files
from netdsl import tables
from netdsl.parser import _ASTBuilder, grammar_path, parse
from netdsl.printer import format_source
from test_properties import TEXTS


def _python(code: str, *, env: dict | None = None, cwd=ROOT, timeout: float = 60, **kw):
    """Run `code` in a fresh interpreter (this checkout's netdsl), as the command line would."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **kw)


# --- the parser's tables: never a pickle, never from a place others can write -------------------

def test_the_shipped_tables_equal_a_fresh_build_of_the_grammar():
    """netdsl/parser_tables.json is what the grammar builds now (else: ./dev tables)."""
    grammar = grammar_path().read_text(encoding="utf-8")
    assert tables.TABLES_PATH.read_text(encoding="utf-8") == tables.dumps(tables.build(grammar))


def test_the_tables_are_the_same_whatever_the_hash_seed():
    build = ("from netdsl import tables; from netdsl.parser import grammar_path; import hashlib\n"
             "print(hashlib.sha256(tables.dumps(tables.build(grammar_path().read_text())).encode()).hexdigest())")
    digests = {_python(build, env={"PYTHONHASHSEED": seed}).stdout for seed in ("0", "1", "12345")}
    assert len(digests) == 1 and len(digests.pop()) == 65


def _both_parsers():
    grammar = grammar_path().read_text(encoding="utf-8")
    shipped = tables.load(grammar, _ASTBuilder())
    assert shipped is not None
    return shipped, Lark(grammar, transformer=_ASTBuilder(), **tables.OPTIONS)


SOURCES = [*net_files(), ROOT / "examples" / "mistakes.net", *sorted((ROOT / "tests" / "diagnostics").glob("*.net"))]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_the_shipped_tables_parse_as_the_grammar_does(path):
    shipped, built = _both_parsers()
    text = path.read_text(encoding="utf-8")

    def outcome(parser):
        try:
            return parser.parse(text, start="start")
        except UnexpectedInput as e:
            return type(e).__name__, e.line, e.column, sorted(getattr(e, "expected", None) or ())
        except Exception as e:  # the builder's own limits (an expression too deep)
            return type(e).__name__, str(e)
    assert outcome(shipped) == outcome(built)


def test_the_command_line_uses_the_shipped_tables():
    p = _python("import netdsl.parser as p; print(p.tables_origin())")
    assert p.stdout == "tables\n", p.stderr


def test_tables_of_another_grammar_are_not_used():
    grammar = grammar_path().read_text(encoding="utf-8")
    assert tables.load(grammar + "\n// edited\n", _ASTBuilder()) is None


def test_the_tables_round_trip_through_json_exactly():
    text = tables.TABLES_PATH.read_text(encoding="utf-8")
    assert tables.dumps(tables._encode(tables.decode(text))) == text
    assert isinstance(tables.decode(text)["data"]["parser"]["parser"]["states"], dict)


def _old_cache_path(home) -> str:
    """Where netdsl 0.1 kept Lark's pickled tables (for XDG_CACHE_HOME=home)."""
    grammar = grammar_path().read_text(encoding="utf-8")
    key = hashlib.sha256(f"{grammar}{lark.__version__}{sys.version}".encode()).hexdigest()[:16]
    return os.path.join(home, "netdsl", f"grammar-{key}.lark-cache")


def test_no_pickle_is_ever_loaded_even_one_planted_where_the_cache_was(tmp_path):
    """The race of issue 10: another user's pickle at the cache path ran as the victim."""
    cache, marker = tmp_path / "cache", tmp_path / "pwned"
    (cache / "netdsl").mkdir(parents=True, mode=0o700)
    # a protocol-0 pickle that calls os.mkdir(marker) when loaded (written by hand: no pickle here)
    payload = f"cos\nmkdir\n(S'{marker}'\ntR.".encode()
    planted = _old_cache_path(str(cache))
    with open(planted, "wb") as f:
        f.write(hashlib.sha256(b"x").hexdigest().encode() + b"\n" + payload + payload)
    before = sorted(p.name for p in cache.rglob("*"))
    code = ("import sys\n"
            "events = []\n"
            "sys.addaudithook(lambda e, a: events.append((e, a)) if e.startswith(('pickle.', 'marshal.loads')) "
            "or (e == 'open' and isinstance(a[0], str) and a[0].startswith(sys.argv[1])) else None)\n"
            "from netdsl.cli import main\n"
            "rc = main(['check', 'nets/googlenet.net'])\n"
            "print(rc, [e for e in events if not (e[0] == 'marshal.loads')])")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache),
                                        "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "0 []"  # no pickle touched, nothing opened under the cache
    assert not marker.exists()
    assert sorted(p.name for p in cache.rglob("*")) == before  # and nothing written there


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_where_the_cache_was_or_as_the_tables_never_hangs(tmp_path):
    cache = tmp_path / "cache"
    (cache / "netdsl").mkdir(parents=True)
    os.mkfifo(_old_cache_path(str(cache)))
    p = subprocess.run([sys.executable, "-m", "netdsl", "check", "nets/lenet5.net"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    fifo = tmp_path / "tables.fifo"
    os.mkfifo(fifo)
    code = (f"from pathlib import Path; from netdsl import tables, parser; tables.TABLES_PATH = Path({str(fifo)!r})\n"
            "print(parser.tables_origin(), parser.parse('net n { input 8 relu }').definitions[0].name)")
    p = _python(code, timeout=60)
    assert p.stdout == "grammar n\n", p.stderr  # built from the grammar instead, at once


def test_the_package_never_asks_lark_for_its_pickle_cache():
    for path in sorted((ROOT / "netdsl").rglob("*.py")):
        for node in pyast.walk(pyast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, pyast.Call):
                assert not any(k.arg in ("cache", "cache_grammar") for k in node.keywords), (path, node.lineno)
                assert not (isinstance(node.func, pyast.Attribute) and node.func.attr in ("save", "load")
                            and isinstance(node.func.value, pyast.Name) and node.func.value.id == "Lark"), path

# --- fmt keeps each comment with its code -----------------------------------------------------

_GRAMMAR = grammar_path().read_text(encoding="utf-8")
_COMMENTS: list = []
_TOKENS = Lark(_GRAMMAR, parser="lalr", start=["start", "expr"],
               lexer_callbacks={"COMMENT": lambda tok: _COMMENTS.append(tok) or tok})
# Tokens the formatter keeps one for one (brackets, `|` and commas it may add or drop).
_KEPT = {"LBRACE", "RBRACE", "NAME", "INT", "FLOAT", "SHAPE"}


def _layout(text: str):
    """The comments as (text, trailing, number of kept tokens before it, its line, whether
    code before it on its line is only punctuation), and the line of each kept token."""
    _COMMENTS.clear()
    text = text.replace("\r\n", "\n")
    fed = list(_TOKENS.parse_interactive(text, start="start").iter_parse())
    comments, lines, last_line, kept_on_line = [], [], 0, False
    for tok in sorted(fed + _COMMENTS, key=lambda t: t.start_pos):
        if tok.type == "COMMENT":
            trailing = last_line == tok.line
            comments.append((tok.value.rstrip(), trailing, len(lines), tok.line, trailing and not kept_on_line))
            continue
        if tok.line != last_line:
            kept_on_line = False
        last_line = tok.end_line
        if tok.type in _KEPT or tok.value.isalpha():
            lines.append(tok.line)
            kept_on_line = True
    return comments, lines


def misplaced_comments(source: str, formatted: str) -> list[str]:
    """What moved: each comment must stay next to the same code. One that trailed code trails
    the output line holding that code, or sits on its own line just before it; one on a line of
    its own stays on its own line, before the output line holding the code that followed it.
    No two comments share a line, and their order is kept."""
    before, before_lines = _layout(source)
    after, after_lines = _layout(formatted)
    if [c[0] for c in before] != [c[0] for c in after]:
        return [f"comments lost, merged or reordered: {[c[0] for c in before]} -> {[c[0] for c in after]}"]
    problems = []
    for (text, trailing, k, _, punct_only), (_, trailing2, k2, line2, _) in zip(before, after):
        if trailing:
            anchor = after_lines[k - 1] if k else 0  # the output line of the code it followed
            ok = (trailing2 and after_lines[k2 - 1] == anchor == line2) or \
                 (not trailing2 and k2 <= k - 1 and after_lines[k2] == anchor) or \
                 (punct_only and not trailing2 and k2 == k)  # after a lone `|` or `.`: between the same code
        elif k == len(before_lines):
            ok = not trailing2 and k2 == k
        else:  # the code it preceded
            ok = not trailing2 and k2 <= k and after_lines[k2] == after_lines[k]
        if not ok:
            problems.append(f"{text} ({'trailing' if trailing else 'own line'}) moved")
    return problems


def _numbered(text: str) -> str:
    count = itertools.count(1)
    return re.sub(r"#[^\n]*", lambda m: f"# c{next(count)}", text)


@given(TEXTS)
def test_fmt_keeps_each_comment_with_its_code_and_never_merges_two(text):
    try:
        parse(text)
    except Exception:
        return
    text = _numbered(text)  # distinct comments, so a moved or merged one shows
    formatted = format_source(text)
    assert misplaced_comments(text, formatted) == [], (text, formatted)
    assert format_source(formatted) == formatted


def test_comments_in_a_header_and_a_call_over_lines_stay_with_them():
    source = ("net\n# about the name\nn(k = 2,  # the width\n  j = 3)\n{\n"
              "    input 3x8x8\n    conv(8,    # width\n         3)    # kernel\n}\n")
    assert format_source(source) == (
        "# about the name\nnet n(k = 2, j = 3) {  # the width\n    input 3x8x8\n"
        "    # width\n    conv(8, 3)    # kernel\n}\n")
