"""Property tests on texts generated from the real grammar (Hypothesis' `from_lark`): whatever
the grammar can produce, netdsl either accepts it or reports located errors, never anything
else; and printing a parsed tree gives text that parses back to the same tree.

Profiles: `ci` (the default) runs in a few seconds; set NETDSL_HYPOTHESIS_PROFILE=long for an
occasional deeper run (bench/fuzz.py is the mutation fuzzer's long run)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

import netdsl
from netdsl import ast
from netdsl.diagnostics import NetDSLError, source_lines
from netdsl.parser import grammar_path, parse, parse_expr
from netdsl.printer import expr_text, format_source, to_text

settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("NETDSL_HYPOTHESIS_PROFILE", "ci"))

GRAMMAR = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", start=["start", "expr"])

# A fixed pool of names (ops, block-like names, parameters, an argument word) and small numbers,
# so generated nets often mean something; words get spaces around them so that neighbouring
# tokens do not run together into one name.
NAMES = ["conv", "relu", "linear", "flatten", "maxpool", "concat1", "b", "c", "k", "x", "same", "stride", "pad",
         "in_channels", "in_width", "i", "min", "make_divisible", "int"]


def _word(strategy):
    return st.tuples(st.sampled_from([" ", "\n"]), strategy, st.sampled_from([" ", "\t", "\n"])).map("".join)


KEYWORDS = {t.name: _word(st.just(t.pattern.value)) for t in GRAMMAR.terminals
            if t.pattern.type == "str" and t.pattern.value.isalpha()}
TERMINALS = {
    **KEYWORDS,
    "NAME": _word(st.sampled_from(NAMES)),
    "INT": _word(st.integers(0, 12).map(str)),
    "SHAPE": _word(st.sampled_from(["3x8x8", "8x8", "1x1", "3×3", "4x6x6", "2x2x2x2"])),
    "FLOAT": _word(st.sampled_from(["0.5", ".25", "1e-3", "2.", "1e999", "0.0"])),
    "TRAIN": _word(st.just("train")),
    "COMMENT": st.just("# note\n"),
    "WS": st.sampled_from([" ", "\n", "  ", "\t", "\r\n"]),
}
TEXTS = st.one_of(
    from_lark(GRAMMAR, start="start", explicit=TERMINALS),
    # and without the spaces: neighbouring tokens run together, as a careless file's do
    from_lark(GRAMMAR, start="start", explicit={
        "NAME": st.sampled_from(NAMES), "INT": st.integers(0, 12).map(str), "WS": TERMINALS["WS"],
        "COMMENT": TERMINALS["COMMENT"]}))


def _inside(span, lines) -> bool:
    return 1 <= span.line <= len(lines) and 1 <= span.column <= len(lines[span.line - 1]) + 1


def _assert_located(err: NetDSLError, text: str) -> None:
    lines = source_lines(text)
    for d in err.diagnostics:
        assert _inside(d.span, lines), (d, text)
        for note in d.notes:
            assert note.span is None or not note.span.line or _inside(note.span, lines), (note, text)
        assert str(err)  # renders


@given(TEXTS)
def test_generated_files_check_or_report_located_errors_and_print_back(text):
    try:
        netdsl.loads(text)
    except NetDSLError as err:
        _assert_located(err, text)
    try:
        tree = parse(text)
    except NetDSLError:
        return
    assert parse(to_text(tree)) == tree
    formatted = format_source(text)
    assert parse(formatted) == tree
    assert format_source(formatted) == formatted  # idempotent


# Expression trees drawn directly (from_lark's expressions nest too eagerly to be cheap).
LEAVES = st.one_of(st.integers(0, 10**6).map(ast.IntLit),
                   st.floats(0, 1e6, allow_nan=False).map(ast.FloatLit),
                   st.booleans().map(ast.BoolLit),
                   st.lists(st.integers(1, 64), min_size=2, max_size=4).map(lambda d: ast.ShapeLit(tuple(d))),
                   st.sampled_from(NAMES).map(ast.NameRef))


def _call(name, args):
    return ast.FuncCall(name, tuple(ast.Arg(None, a) for a in args))


def _compound(inner):
    return st.one_of(inner.map(ast.Neg),
                     st.builds(ast.BinOp, st.sampled_from(["+", "-", "*", "/", "//", "%"]), inner, inner),
                     st.lists(inner, min_size=2, max_size=3).map(lambda items: ast.TupleLit(tuple(items))),
                     st.builds(ast.Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), inner, inner),
                     st.builds(ast.BoolOp, st.sampled_from(["and", "or"]), inner, inner),
                     inner.map(ast.Not),
                     st.builds(ast.Conditional, inner, inner, inner),
                     st.builds(_call, st.sampled_from(["min", "max", "round", "make_divisible", "f"]),
                               st.lists(inner, min_size=1, max_size=3)))


EXPR_TREES = st.recursive(LEAVES, _compound, max_leaves=12)


@given(EXPR_TREES)
def test_expression_trees_print_back_to_the_same_tree(tree):
    assert parse_expr(expr_text(tree)) == tree


@given(st.text(alphabet=st.sampled_from("net{}()input3x8 relu:|#\n\t,=-+*/.0xé\0\r"), max_size=80))
def test_any_text_of_the_languages_characters(text):
    try:
        netdsl.loads(text)
    except NetDSLError as err:
        _assert_located(err, text)
