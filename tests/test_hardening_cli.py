"""Hardening (issue 10): the parser's tables never come from a place another user could write;
no command writes over its input; fmt formats the file, not the name; the command line never
shows a traceback; render bounds what it hands to Graphviz; paths reach the terminal escaped;
fmt keeps every comment with its code."""

from __future__ import annotations

import itertools
import re

from hypothesis import given
from lark import Lark

from netdsl.parser import grammar_path, parse
from netdsl.printer import format_source
from test_properties import TEXTS

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
