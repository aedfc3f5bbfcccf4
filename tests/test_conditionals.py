"""The language of issue 11: comparisons, `and`/`or`/`not`, `a if c else b`, the built-in
functions, `if`/`else if`/`else` chains, `repeat N as i`, the `in_*` names (which need shapes
inferred while lowering), join branches `from PATH`, empty bodies as the identity, and how
`fmt` prints all of them."""

from __future__ import annotations

import itertools
import time

import pytest

import netdsl
from netdsl import ast
from netdsl.evaluate import FUNCTIONS, evaluate, make_divisible
from netdsl.parser import parse, parse_expr
from netdsl.printer import expr_text, format_source, to_text


def value(text: str, **env):
    return evaluate(parse_expr(text), env)


def error(text: str, **params) -> netdsl.NetDSLError:
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads(text, **params)
    return err.value


def codes(text: str, **params) -> list[str]:
    return [d.code for d in error(text, **params).diagnostics]


# --- expressions ---------------------------------------------------------------------------

def test_make_divisible_is_torchvisions_over_many_values():
    from torchvision.models._utils import _make_divisible

    values = [v / 4 for v in range(0, 4000)] + [16 * m for m in (0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 2.0)]
    for v, divisor in itertools.product(values, (1, 2, 3, 4, 8, 16, 32)):
        assert make_divisible(v, divisor) == _make_divisible(v, divisor), (v, divisor)
        assert value(f"make_divisible({v!r}, {divisor})") == _make_divisible(v, divisor)
    for v, divisor, least in itertools.product((1.0, 7.5, 30.0, 99.9, 250.0), (4, 8), (1, 8, 16, 64)):
        assert value(f"make_divisible({v}, {divisor}, min_value={least})") == _make_divisible(v, divisor, least)
        assert value(f"make_divisible({v}, {divisor}, {least})") == _make_divisible(v, divisor, least)


def test_make_divisible_as_mobilenet_uses_it():
    # torchvision's MobileNetV3 width multiplier: _make_divisible(c * width_mult, 8)
    net = netdsl.loads("net n(w = 0.75) { input 3x8x8 conv(make_divisible(16 * w, 8), 1)"
                       " conv(make_divisible(72 * w, 8), 1) }")
    assert [net.layer(n).shape[0] for n in net.layers] == [16, 56]


@pytest.mark.parametrize("text, expected", [
    ("min(3, 1, 2)", 1), ("max(3, 8.5)", 8.5), ("round(2.5)", 2), ("round(3.5)", 4), ("round(-0.6)", -1),
    ("floor(2.7)", 2), ("floor(-2.2)", -3), ("ceil(2.1)", 3), ("ceil(-2.7)", -2), ("int(2.9)", 2),
    ("int(-2.9)", -2), ("int(48 * 0.25)", 12), ("round(7)", 7), ("1 < 2", True), ("2 <= 2", True),
    ("3 > 4", False), ("4 >= 4.0", True), ("1 == 1.0", True), ("2 != 2", False), ("true == false", False),
    ("3x3 == (3, 3)", True), ("not 1 > 2", True), ("1 < 2 and 2 < 1", False), ("1 < 2 or 2 < 1", True),
    ("not true or true", True), ("false and false or true", True), ("1 if true else 2", 1),
    ("1 if false else 2 if false else 3", 3), ("(1 if false else 2) * 10", 20), ("1 + 2 if 3 > 2 else 0", 3),
    ("- 3 < -2", True), ("max(min(4, 9), 2) // 3", 1),
])
def test_expression_values(text, expected):
    result = value(text)
    assert result == expected and type(result) is type(expected), (text, result)


def test_only_the_taken_side_is_evaluated():
    # as in Python: the guard keeps the division by zero from being evaluated
    assert value("x > 0 and 10 // x == 2", x=0) is False
    assert value("x == 0 or 10 // x == 2", x=0) is True
    assert value("0 if x == 0 else 10 // x", x=0) == 0


def test_words_compare_with_words_and_a_misspelt_name_is_an_error():
    assert value("mode == bilinear", mode=netdsl.ops.Symbol("bilinear")) is True
    err = error("net n(c = 8) { input 3x8x8 conv(8 if cc == 8 else 4, 1) }")
    (d,) = err.diagnostics
    assert (d.code, d.message, d.help) == ("E202", "undefined name `cc`", "did you mean `c`?")


@pytest.mark.parametrize("expr, code, message", [
    ("mx(8, 3)", "E208", "unknown function `mx`"),
    ("flor(2.5)", "E208", "unknown function `flor`"),
    ("max(8)", "E308", "`max` takes at least 2 arguments, got 1"),
    ("round(1, 2)", "E308", "`round` takes 1 argument, got 2"),
    ("make_divisible(8)", "E308", "`make_divisible` takes 2 to 3 arguments, got 1"),
    ("make_divisible(8, min_value=8)", "E308", "`make_divisible` takes 2 to 3 arguments, got 2"),
    ("round(x=2.5, y=1)", "E301", "`round` has no argument `y`"),
    ("max(4, b=2)", "E301", "`max` takes no keyword arguments"),
    ("make_divisible(8, divisor=4, divisor=2)", "E304", "argument `divisor` of `make_divisible` is given twice"),
    ("make_divisible(v=8, 4)", "E303", "positional argument after a keyword argument in `make_divisible`"),
    ("ceil(true)", "E305", "`ceil` needs numbers, got `true`"),
    ("min(3x3, 2)", "E305", "`min` needs numbers, got `3x3`"),
    ("make_divisible(8, 2.5)", "E306", "the divisor of `make_divisible` must be a positive integer, got 2.5"),
    ("int(1e999)", "E307", "`int` of inf has no integer value"),
    ("8 if 1 else 2", "E309", "the condition of `a if c else b` must be true or false, got `1`"),
    ("8 if true and 2 else 2", "E309", "`and` must be true or false, got `2`"),
    ("8 if not 0 else 2", "E309", "`not` must be true or false, got `0`"),
    ("8 if 3 < true else 2", "E305", "`<` compares numbers, got `true`"),
    ("8 if 3 == true else 2", "E305", "`==` compares `3` with `true`, values of different kinds"),
    ("8 if k > 2 else 2", "E202", "undefined name `k`"),
    ("48 * 0.25", "E305", "`out` expects an integer, got the number 12.0 (in `conv`)"),
])
def test_expression_mistakes_are_located_with_their_code(expr, code, message):
    text = f"net n {{ input 3x8x8 conv({expr}, 1) }}"
    err = error(text)
    assert [(d.code, d.message) for d in err.diagnostics] == [(code, message)]
    d = err.diagnostics[0]
    assert d.line == 1 and text.index(expr) < d.column <= text.index(expr) + len(expr)


def test_an_unknown_function_suggests_the_nearest():
    (d,) = error("net n { input 3x8x8 conv(make_divisable(9, 8), 1) }").diagnostics
    assert d.help == "did you mean `make_divisible`?"
    (d,) = error("net n { input 3x8x8 conv(zzz(9), 1) }").diagnostics
    assert d.help.startswith("the functions are `min`, `max`")
    assert set(FUNCTIONS) == {"min", "max", "round", "floor", "ceil", "int", "make_divisible"}


def test_comparisons_do_not_chain():
    with pytest.raises(netdsl.NetDSLError) as err:
        parse_expr("1 < 2 < 3")
    assert err.value.diagnostics[0].code == "E100"


def test_if_cannot_be_a_label():
    (d,) = error("net n { input 4 if: relu }").diagnostics
    assert d.help == "`if` is a keyword and cannot be a label; choose another name"


# --- if ------------------------------------------------------------------------------------

BLOCK = """
block unit(out, stride = 1) {
    if stride == 1 and in_channels == out {
        add { identity | conv(out, 3, pad=1) }
    } else if stride == 1 {
        conv(out, 1)
    } else {
        conv(out, 3, stride=stride, pad=1)
    }
}
"""


def test_if_takes_the_first_arm_that_holds_or_the_else():
    net = netdsl.loads(BLOCK + "net n { input 8x16x16 a: unit(8) b: unit(16) c: unit(16, stride=2) d: unit(16) }")
    assert net.layers == ["a.branch1.identity1", "a.branch2.conv1", "a.add1", "b.conv1", "c.conv1",
                          "d.branch1.identity1", "d.branch2.conv1", "d.add1"]
    assert net.layer("c.conv1").shape == (16, 8, 8)
    assert net.layer("b.conv1").describe() == "conv(16, 1)"


def test_an_if_that_does_not_hold_without_else_passes_its_input_on():
    net = netdsl.loads("net n(bn = false) { input 3x8x8 conv(4, 1) if bn { batchnorm } relu }")
    assert net.layers == ["conv1", "relu1"]
    net = netdsl.loads("net n(bn = false) { input 3x8x8 conv(4, 1) if bn { batchnorm } relu }", bn=True)
    assert net.layers == ["conv1", "batchnorm1", "relu1"]


def test_the_layers_of_an_if_join_its_scope_and_keep_their_labels():
    net = netdsl.loads("net n(deep = true) { input 4 if deep { fc: linear(8) relu } else { fc: linear(2) } fc2: linear(3) }")
    assert net.layers == ["fc", "relu1", "fc2"]
    net = netdsl.loads("net n(deep = true) { input 4 if deep { fc: linear(8) relu } else { fc: linear(2) } fc2: linear(3) }",
                       deep=False)
    assert net.layers == ["fc", "fc2"]


def test_if_conditions_must_be_booleans():
    err = error("net n { input 3x8x8 if in_channels { relu } relu }")
    assert [(d.code, d.message, d.column) for d in err.diagnostics] == [
        ("E309", "the condition of `if` must be true or false, got `3`", 24)]


def test_a_failed_condition_is_reported_once_and_the_rest_is_not_checked_against_a_guess():
    # the `add` after it would disagree with either arm's guess; only the condition is reported
    err = error("net n { input 3x8x8 if in_channels > x { conv(4, 1) } add { identity | conv(4, 1) } }")
    assert [d.code for d in err.diagnostics] == ["E202"]


def test_else_if_chains_and_empty_arms():
    text = "net n(k = 2) { input 4 if k == 1 { linear(1) } else if k == 2 { } else { linear(3) } relu }"
    assert netdsl.loads(text).layers == ["relu1"]
    assert netdsl.loads(text, k=1).layers == ["linear1", "relu1"]
    assert netdsl.loads(text, k=5).layers == ["linear1", "relu1"]
    tree = parse(text).definitions[0].body[1]
    assert isinstance(tree, ast.If) and len(tree.arms) == 2 and tree.otherwise is not None


def test_a_condition_in_an_arm_not_taken_is_not_evaluated():
    assert netdsl.loads("net n { input 4 if true { relu } else if 1 // 0 == 1 { linear(2) } }").layers == ["relu1"]


# --- repeat as -----------------------------------------------------------------------------

def test_repeat_as_counts_the_passes_from_zero():
    net = netdsl.loads("net n { input 3x8x8 repeat 3 as i { conv(8 * (i + 1), 1) } }")
    assert [net.layer(n).shape[0] for n in net.layers] == [8, 16, 24]
    net = netdsl.loads("net n { input 3x8x8 s: repeat 3 as i { conv(4, 1) if i == 2 { relu } } }")
    assert net.layers == ["s.1.conv1", "s.2.conv1", "s.3.conv1", "s.3.relu1"]


def test_repeat_as_shadows_a_parameter_and_nests():
    net = netdsl.loads("net n(i = 100) { input 4 repeat 2 as i { repeat 2 as j { linear(10 * i + j + 1) } } "
                       "linear(i) }")
    assert [net.layer(n).shape[0] for n in net.layers] == [1, 2, 11, 12, 100]


def test_a_repeat_whose_passes_differ_is_not_judged_by_its_first():
    # the first pass is large, the others make nothing: the net is small
    net = netdsl.loads("net n { input 4 repeat 30 as i { if i == 0 { repeat 50 { relu } } } }", max_layers=60)
    assert len(net.layers) == 50
    # and a pass that makes nothing does not end the repeat when the pass is counted
    net = netdsl.loads("net n { input 4 repeat 5 as i { if i == 4 { relu } } }")
    assert net.layers == ["relu1"]


def test_repeat_zero_and_empty_bodies_are_the_identity():
    assert netdsl.loads("net n(k = 0) { input 4 repeat k { linear(3) } relu }").layers == ["relu1"]
    assert netdsl.loads("net n { input 4 r: repeat 0 { linear(3) } relu }").layers == ["relu1"]
    assert netdsl.loads("net n { input 4 repeat 3 { } relu }").layers == ["relu1"]
    assert codes("net n { input 4 repeat -1 { relu } }") == ["E306"]


def test_runaway_repeats_with_conditions_stay_bounded():
    start = time.perf_counter()
    assert netdsl.loads("net n { input 4 repeat 1000000000 as i { } relu }").layers == ["relu1"]
    assert codes("net n { input 4 repeat 1000000000 as i { if i < 0 { relu } } }") == ["E407"]
    assert codes("net n { input 4 repeat 1000000000 as i { relu } }") == ["E407"]
    assert codes("net n { input 4 repeat 1000000000 { if in_channels > 0 { relu } } }") == ["E407"]
    # each stops at a limit (steps, or layers: as long as checking a net of the largest size)
    assert time.perf_counter() - start < 60


# --- the input's sizes ---------------------------------------------------------------------

def test_in_names_in_the_net_body_are_the_nets_input():
    net = netdsl.loads("net n { input 3x32x24 conv(16, 3, pad=1) conv(in_channels * 2, 1) "
                       "global_avgpool flatten linear(in_height + in_width) }")
    assert net.layer("conv2").shape == (6, 32, 24)
    assert net.layer("linear1").shape == (56,)


def test_in_names_in_a_block_are_its_inputs():
    text = """
        block expand(ratio) { conv(in_channels * ratio, 1) relu }
        block same { conv(in_channels, 3, pad=1) }
        net n { input 3x8x8 expand(4) expand(2) same }
    """
    net = netdsl.loads(text)
    assert [net.layer(n).shape[0] for n in net.layers if n.endswith("conv1")] == [12, 24, 24]


def test_a_parameter_shadows_an_in_name():
    net = netdsl.loads("block b(in_channels) { conv(in_channels, 1) }\n"
                       "net n(in_width = 5) { input 3x8x8 b(7) global_avgpool flatten linear(in_width) }")
    assert net.layer("b1.conv1").shape == (7, 8, 8)
    assert net.layer("linear1").shape == (5,)


def test_a_block_parameter_default_may_use_its_input():
    net = netdsl.loads("block b(out = in_channels * 2, mid = out // 4) { conv(mid, 1) conv(out, 1) }\n"
                       "net n { input 8x4x4 b b(4) }")
    assert [net.layer(n).shape[0] for n in net.layers] == [4, 16, 1, 4]


@pytest.mark.parametrize("shape, names", [
    ((10,), {"in_channels": 10}),
    ((2, 50), {"in_channels": 2, "in_length": 50}),
    ((3, 20, 30), {"in_channels": 3, "in_height": 20, "in_width": 30}),
    ((3, 4, 20, 30), {"in_channels": 3, "in_depth": 4, "in_height": 20, "in_width": 30}),
])
def test_in_names_for_each_rank(shape, names):
    # (inputs of rank 2 and 4, sequences and volumes, are the rank-generic ops' part: the names
    # are tested here directly, and through a net for the ranks a net's input has here)
    from netdsl.evaluate import INPUT_NAMES, Unavailable, input_names

    given = input_names(shape)
    assert {n: v for n, v in given.items() if not isinstance(v, Unavailable)} == names
    assert set(given) == set(INPUT_NAMES)
    if len(shape) not in (1, 3):
        return
    text = "x".join(map(str, shape))
    block = "block probe(k) { identity }\n"
    for name in INPUT_NAMES:
        source = block + f"net n {{ input {text} p: probe({name}) }}"
        if name in names:
            assert netdsl.loads(source).scopes["p"].title == f"probe({names[name]})"
        else:
            (d,) = error(source).diagnostics
            assert d.code == "E202" and d.message.startswith(f"`{name}` is not defined here: the input, {text},")


def test_an_unknown_input_shape_makes_in_names_silent():
    # the first error breaks the shapes; what uses `in_*` after it says nothing more
    err = error("block b { conv(in_channels * 2, 1) if in_height > 2 { relu } }\n"
                "net n { input 3x8x8 conv(8, 9) b b linear(in_channels) }")
    assert [d.code for d in err.diagnostics] == ["E401"]
    err = error("net n { input 3x8x0 if in_channels > 2 { relu } conv(in_width, 1) }")
    assert [d.code for d in err.diagnostics] == ["E306"]


def test_shapes_are_inferred_while_lowering_so_a_block_sees_each_use_of_its_input():
    text = BLOCK + "net n { input 3x8x8 repeat 3 { unit(8) } }"
    net = netdsl.loads(text)
    # the first use projects 3 to 8 channels; the others, seeing 8, add the residual
    assert net.layers[:2] == ["unit1.conv1", "unit2.branch1.identity1"]
    assert len(net.layers) == 1 + 3 + 3


def test_a_mistake_in_a_block_used_many_times_is_reported_once():
    err = error(BLOCK.replace("conv(out, 1)", "conv(out, 1) maxpool(99)") +
                "net n { input 3x8x8 unit(4) unit(5) unit(6) }")
    assert [d.code for d in err.diagnostics] == ["E401"]


# --- from PATH in a join branch ------------------------------------------------------------

def test_a_branch_from_an_earlier_layer():
    net = netdsl.loads("net n { input 3x16x16 low: conv(8, 1) high: conv(16, 3, stride=2, pad=1) "
                       "add { from low conv(4, 1) maxpool(2) | conv(4, 1) } }")
    assert net.layer("branch1.conv1").input_names == ["low"]
    assert net.layer("branch2.conv1").input_names == ["high"]
    assert net.layer("add1").shape == (4, 8, 8)


def test_a_branch_that_is_only_an_earlier_layer():
    net = netdsl.loads("net n { input 3x8x8 a: conv(4, 1) b: conv(4, 1) concat { from a | identity } }")
    assert net.layer("concat1").input_names == ["a", "branch2.identity1"]
    assert net.layer("concat1").shape == (8, 8, 8)


def test_a_branch_from_a_dotted_path_inside_a_block():
    net = netdsl.loads("block b { s: { conv(4, 1) relu } conv(8, 1) concat { from s.conv1 | identity } }\n"
                       "net n { input 3x8x8 b }")
    assert net.layer("b1.concat1").input_names == ["b1.s.conv1", "b1.branch2.identity1"]


def test_a_branch_from_an_unknown_layer():
    err = error("net n { input 3x8x8 lo: conv(4, 1) add { from low conv(4, 1) | conv(4, 1) } relu }")
    assert [(d.code, d.message, d.help) for d in err.diagnostics] == [
        ("E202", "no layer `low` before this point", "did you mean `lo`?")]


def test_from_is_first_in_its_branch_only():
    # the lexer takes `from` where it cannot come for a name: one error, none for the path
    for text in ("net n { input 4 x: relu add { relu from x | identity } }", "net n { input 4 x: relu from x relu }"):
        assert [(d.code, d.message) for d in error(text).diagnostics] == [
            ("E207", "`from` can only begin a join branch")]


# --- empty blocks --------------------------------------------------------------------------

EMPTY = "block nothing { }\nblock maybe(on) { if on { relu } }\n" \
        "net n { input 3x8x8 conv(4, 1) e: nothing maybe(false) r: repeat 0 { relu } g: { } relu }"


def test_an_empty_block_summarises_renders_and_compiles():
    torch = pytest.importorskip("torch")
    net = netdsl.loads(EMPTY)
    assert net.layers == ["conv1", "relu1"]
    assert net.scopes["e"].output is net.layer("conv1")
    text = str(net.summary())
    assert "relu1" in text
    assert "digraph" in str(net.to_dot(depth=None)) and "digraph" in str(net.to_dot(depth=1))
    module = net.compile()
    x = torch.randn(2, 3, 8, 8)
    assert module(x).shape == (2, 4, 8, 8)


# --- printing ------------------------------------------------------------------------------

SOURCE = """\
block unit(out, stride = 1) {
    if stride == 1 and in_channels == out {  # the residual
        add { identity | conv(out, 3, pad=1) }
    } else if not (stride > 2 or out < 3) {
        conv(out, 3, stride=stride, pad=1)
    } else {
        # a projection
        conv(out, 1)
    }
    if true { relu } else { identity }
}

net n(w = 1.0) {
    input 3x32x32
    conv(make_divisible(32 * w, 8, min_value=16), 3, pad=1)
    unit(32)
    repeat 3 as i { conv(in_channels * (i + 1), 1) }
    r: repeat 2 as j {
        if j == 1 { relu }
    }
    concat { identity | from r conv(8, 1) | from r.1 }
    conv(-(1 - 9) if 1 + 2 * 3 > 4 else 5 if x or not y and z else 6, 1)
    global_avgpool flatten
    linear(10 if in_height > 8 else max(round(2.5), floor(in_width / 3)))
}
"""


def test_fmt_keeps_the_new_constructs_as_written():
    assert format_source(SOURCE) == SOURCE
    tree = parse(SOURCE)
    assert parse(to_text(tree)) == tree


def test_fmt_brackets_only_where_needed():
    for text, printed in [
        ("(a if b else c) if d else e", "(a if b else c) if d else e"),
        ("a if b else (c if d else e)", "a if b else c if d else e"),
        ("a if (b if c else d) else e", "a if (b if c else d) else e"),
        ("not (a and b)", "not (a and b)"), ("(not a) and b", "not a and b"),
        ("(a or b) and c", "(a or b) and c"), ("a or (b and c)", "a or b and c"),
        ("(a < b) == c", "(a < b) == c"), ("(1 + 2) * 3 < 4", "(1 + 2) * 3 < 4"),
        ("-(a if b else c)", "-(a if b else c)"), ("(a < b) + 1", "(a < b) + 1"),
        ("min(a, b if c else d)", "min(a, b if c else d)"), ("(a or b) or c", "a or b or c"),
        ("a or (b or c)", "a or (b or c)"), ("not not a", "not not a"),
    ]:
        assert expr_text(parse_expr(text)) == printed, text
        assert parse_expr(printed) == parse_expr(text)


def test_fmt_of_an_if_written_over_lines_without_a_source():
    tree = parse("net n { input 4 if a == 1 { linear(8) relu linear(8) relu linear(8) relu } else { relu } }")
    text = to_text(tree)
    assert parse(text) == tree


def test_mutations_of_the_new_constructs_end_in_a_verdict_within_budget():
    # as tests/test_fuzz.py does for nets/, on a file using every construct of this module
    from fuzzing import BUDGET_S, cases, run

    outcomes = [run(case.data) for case in cases("conditionals", SOURCE.encode(), 20261202, 60)]
    failures = [o.failure for o in outcomes if o.failure is not None and not o.failure.startswith("took")]
    assert failures == []
    assert sorted(o.seconds for o in outcomes)[len(outcomes) // 2] < BUDGET_S
    assert any(o.result == "ok" for o in outcomes) and any(o.result != "ok" for o in outcomes)


def test_fmt_keeps_the_comments_of_every_arm():
    text = """\
net n(k = 1) {
    input 4
    # before the if
    if k == 1 {  # one
        relu  # r
    } else if k == 2 {  # two
        # inside two
        linear(3)
    } else {  # other
        linear(4)
    }  # end
    relu
}
"""
    assert format_source(text) == text
    squeezed = "net n(k = 1) {\n    input 4\n    if k == 1 {   relu }   else{linear(3)}\n}\n"
    assert format_source(squeezed) == "net n(k = 1) {\n    input 4\n    if k == 1 { relu } else { linear(3) }\n}\n"


def test_unknown_functions_and_ops_are_reported_where_they_may_never_be_evaluated():
    text = ("block b(c = mx(1, 2)) { conv(c, 1) }\n"
            "net n(k = 1) {\n input 3x8x8\n if k == 2 { cnov(8, 1) } else { conv(flor(2.5), 1) }\n"
            " conv(8 if k == 1 else ciel(2), 1)\n}\n")
    err = error(text)
    assert [(d.code, d.message, d.line) for d in err.diagnostics] == [
        ("E208", "unknown function `mx`", 1), ("E201", "unknown op `cnov`", 4), ("E208", "unknown function `flor`", 4),
        ("E208", "unknown function `ciel`", 5)]


# --- a chain that makes no layer is the identity, wherever a chain is written -----------------

# (place, text with `c` for the condition, layers and (output shape, params) when c holds and when not)
IDENTITY_PLACES = [
    ("add branch", "add { if c { conv(8, 1) } | identity }",
     ["branch1.conv1", "branch2.identity1", "add1"], ((8, 4, 4), 72),
     ["branch2.identity1", "add1"], ((8, 4, 4), 0)),
    ("concat branch", "concat { if c { conv(4, 1) } | identity }",
     ["branch1.conv1", "branch2.identity1", "concat1"], ((12, 4, 4), 36),
     ["branch2.identity1", "concat1"], ((16, 4, 4), 0)),
    ("mul branch", "mul { if c { conv(8, 1) sigmoid } | identity }",
     ["branch1.conv1", "branch1.sigmoid1", "branch2.identity1", "mul1"], ((8, 4, 4), 72),
     ["branch2.identity1", "mul1"], ((8, 4, 4), 0)),
    ("split branch", "split { if c { conv(6, 1) } | identity }",
     ["chunk1", "chunk2", "branch1.conv1", "branch2.identity1", "split1"], ((10, 4, 4), 30),
     ["chunk1", "chunk2", "branch2.identity1", "split1"], ((8, 4, 4), 0)),
    ("sized split branch", "split(2, 6) { identity | if c { conv(3, 1) } }",
     ["chunk1", "chunk2", "branch1.identity1", "branch2.conv1", "split1"], ((5, 4, 4), 21),
     ["chunk1", "chunk2", "branch1.identity1", "split1"], ((8, 4, 4), 0)),
    ("both branches", "add { if c { conv(8, 1) } | if not c { relu } }",
     ["branch1.conv1", "add1"], ((8, 4, 4), 72),
     ["branch2.relu1", "add1"], ((8, 4, 4), 0)),
    ("group", "g: { if c { conv(4, 1) } } relu",
     ["g.conv1", "relu1"], ((4, 4, 4), 36),
     ["relu1"], ((8, 4, 4), 0)),
    ("block body", "x: b(c) relu",
     ["x.conv1", "relu1"], ((4, 4, 4), 36),
     ["relu1"], ((8, 4, 4), 0)),
    ("repeat body", "repeat 2 { if c { conv(4, 1) } } relu",
     ["conv1", "conv2", "relu1"], ((4, 4, 4), 56),
     ["relu1"], ((8, 4, 4), 0)),
    ("labelled repeat body", "r: repeat 2 { if c { conv(4, 1) } } relu",
     ["r.1.conv1", "r.2.conv1", "relu1"], ((4, 4, 4), 56),
     ["relu1"], ((8, 4, 4), 0)),
    ("if arm", "if true { if c { conv(4, 1) } } else { relu } relu",
     ["conv1", "relu1"], ((4, 4, 4), 36),
     ["relu1"], ((8, 4, 4), 0)),
    ("branch in a block", "y: b2(c)",
     ["y.branch1.conv1", "y.branch2.identity1", "y.add1"], ((8, 4, 4), 72),
     ["y.branch2.identity1", "y.add1"], ((8, 4, 4), 0)),
]
IDENTITY_BLOCKS = "block b(on) { if on { conv(4, 1) } }\nblock b2(on) { add { if on { conv(8, 1) } | identity } }\n"


@pytest.mark.parametrize("place, body, layers_true, result_true, layers_false, result_false", IDENTITY_PLACES,
                         ids=[p[0] for p in IDENTITY_PLACES])
def test_an_if_that_does_not_hold_is_the_identity_wherever_a_chain_is_written(
        place, body, layers_true, result_true, layers_false, result_false):
    text = IDENTITY_BLOCKS + "net n(c = true) { input 8x4x4 " + body + " }"
    for c, layers, (shape, params) in ((True, layers_true, result_true), (False, layers_false, result_false)):
        net = netdsl.loads(text, c=c)
        assert net.layers == layers, (place, c)
        assert net.layer(layers[-1]).shape == shape, (place, c)
        assert net.total_params() == params, (place, c)


def test_an_empty_branch_reads_the_joins_input():
    net = netdsl.loads("net n(c = false) { input 8x4x4 conv(8, 1) r: add { if c { conv(8, 1) } | relu } }")
    assert net.layer("r").input_names == ["conv1", "r.branch2.relu1"]
    assert net.scopes["r.branch1"].output is net.layer("conv1")
    net = netdsl.loads("net n { input 8x4x4 s: split(2, 6) { repeat 0 { relu } | identity } }")
    assert net.layer("s").input_names == ["s.chunk1", "s.branch2.identity1"]
    assert net.layer("s").shape == (8, 4, 4)


@pytest.mark.parametrize("branch", ["repeat 0 { conv(8, 1) }", "repeat 3 { }", "r: repeat 0 { conv(8, 1) }",
                                    "g: { }", "if false { conv(8, 1) }", "if false { relu } else if false { relu }",
                                    "repeat 2 { if false { relu } }", "e: empty", "from x"])
def test_every_kind_of_empty_branch_is_the_identity_as_repeat_0_is(branch):
    net = netdsl.loads("block empty { }\nnet n { input 8x4x4 x: conv(8, 1) add { " + branch + " | identity } }")
    assert net.layer("add1").input_names == ["x", "branch2.identity1"]
    assert net.layer("add1").shape == (8, 4, 4) and net.total_params() == 72


def test_a_head_must_still_make_a_layer():
    # a head is an output of its own: one that would be its source is reported
    for body in ("{ }", "{ if c { flatten } }", "{ repeat 0 { flatten } }"):
        text = "net n(c = false) { input 8x4x4 relu h: head " + body + " relu }"
        assert [(d.code, d.message) for d in error(text).diagnostics] == [
            ("E207", "a head needs at least one layer")], body
        if "c" in body:
            assert netdsl.loads(text, c=True).layers == ["relu1", "h.flatten1", "relu2"]


def test_empty_branches_summarise_render_and_compile():
    torch = pytest.importorskip("torch")
    net = netdsl.loads("net n(c = false) { input 8x4x4 r: add { if c { conv(8, 1) } | sigmoid } "
                       "concat { repeat 0 { relu } | if c { relu } } s: split { if c { relu } | identity } }")
    assert net.layers == ["r.branch2.sigmoid1", "r", "concat1", "s.chunk1", "s.chunk2", "s.branch2.identity1", "s"]
    assert "concat1" in str(net.summary())
    for depth in (None, 1, 2):
        assert "digraph" in str(net.to_dot(depth=depth))
    x = torch.randn(2, 8, 4, 4)
    y = net.compile()(x)
    expected = x + torch.sigmoid(x)
    assert torch.allclose(y, torch.cat([expected, expected], 1))


def test_a_labelled_if_is_a_group_around_it():
    """`proj: if c { ... }` (in a branch, or in a chain) names the scope of the arm taken; it was
    a syntax error, then E201 `if` and a branch miscounted."""
    text = ("net n(s = 2) { input 8x8x8 add { proj: if s != 1 { conv(8, 1, stride=s) } | conv(8, 3, stride=s, pad=1) }"
            " skip: if s == 1 { relu } else { relu6 } }")
    program = parse(text)
    join, skip = program.definitions[0].body[1:]
    assert isinstance(join.branches[0][0], ast.Group) and join.branches[0][0].label == "proj"
    assert isinstance(skip, ast.Group) and isinstance(skip.body[0], ast.If)
    net = netdsl.loads(text)
    assert net.layers == ["branch1.proj.conv1", "branch2.conv1", "add1", "skip.relu61"]
    one = netdsl.loads(text, s=1)  # the `if` not taken: the branch passes its input on
    assert one.layers == ["branch2.conv1", "add1", "skip.relu1"] and one.outputs[0].layer.shape == (8, 8, 8)
    assert parse(format_source(text)) == program  # fmt writes it as a group, the same tree
