"""Going on after syntax errors: the other syntax errors of the file and the mistakes of the
parts that parsed are reported with them, and nothing that only the cut parts would settle."""

from __future__ import annotations

import time

import pytest

import netdsl
from netdsl.parser import REPAIR_MAX_CHARS, parse_recovering


def reported(text: str) -> list[tuple[str, int]]:
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads(text)
    return [(d.code, d.line) for d in err.value.diagnostics]


def test_a_syntax_error_and_a_mistake_elsewhere_are_reported_together():
    text = """\
net n(classes = 10) {
    input 3x32x32
    conv(16, 3 pad=1)
    cnov(16, 3)
    global_avgpool flatten
    linear(clases)
}
"""
    assert reported(text) == [("E100", 3), ("E201", 4), ("E202", 6)]


def test_nothing_after_a_cut_layer_is_checked_against_a_shape_it_may_not_have_had():
    # the cut conv may have made 8 channels: the add after it says nothing
    text = "net n {\n  input 3x8x8\n  conv(8 1)\n  add { identity | conv(8, 1) }\n  maxpool(99)\n}\n"
    assert reported(text) == [("E100", 3)]


def test_an_error_in_a_block_header_cuts_the_block_and_its_uses_say_nothing():
    text = "block b(c d) {\n  conv(c, 1)\n}\nnet n {\n  input 3x8x8\n  b(8)\n  b(9)\n  cnov\n}\n"
    assert reported(text) == [("E100", 1), ("E201", 8)]


def test_an_error_in_a_block_body_and_the_blocks_other_mistakes():
    text = "block b(c) {\n  conv(c 1)\n  relu(2)\n}\nnet n {\n  input 3x8x8\n  b(8)\n}\n"
    assert reported(text) == [("E100", 2), ("E303", 3)]


def test_an_unclosed_bracket_is_blamed_where_it_opened():
    text = "net n {\n  input 3x8x8\n  conv(8, 1\n  relu\n  cnov\n}\n"
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads(text)
    first, second = err.value.diagnostics
    assert (first.code, second.code, second.line) == ("E100", "E201", 5)
    assert first.notes[-1].message == "the `(` here is never closed" and first.notes[-1].span.line == 3


def test_a_missing_closing_brace_and_the_nets_mistakes():
    assert reported("net n {\n  input 3x8x8\n  conv(0, 1)\n") == [("E306", 3), ("E102", 4)]


def test_an_if_with_a_broken_header_is_cut_whole():
    text = """\
net n(k = 1) {
    input 3x8x8
    if k == {
        conv(8, 1)
    } else {
        relu
    }
    conv(4, 1) cnov
}
"""
    assert reported(text) == [("E100", 3), ("E201", 8)]


def test_labels_and_the_input_of_cut_lines_are_not_reported_missing():
    text = "net n {\n  input 3x8x8 (\n  c1: conv(8 1)\n  head from c1 { relu }\n  head from c9 { relu }\n}\n"
    assert reported(text) == [("E100", 2), ("E100", 3), ("E202", 5)]


def test_a_broken_branch_stays_a_branch():
    text = "net n {\n  input 3x8x8\n  concat {\n    conv(4, 1)\n    | conv(4 1)\n  }\n}\n"
    assert reported(text) == [("E100", 5)]


def test_a_stray_closing_bracket():
    text = 'net n {\n input 3x8x8\n conv(64 3)\n relu)\n conv(8, 3, pad="same")\n cnov\n}'
    assert reported(text) == [("E100", 3), ("E100", 4), ("E101", 5), ("E201", 6)]


def test_the_targeted_messages_stay():
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads("net n { input 3x8x8 { relu } }")
    assert err.value.diagnostics[0].help.startswith("a group needs a label")
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads("net n {\n input 3x8x8\n conact { relu | relu }\n conv(8 3)\n}")
    assert [(d.code, d.message, d.help) for d in err.value.diagnostics][0] == (
        "E201", "no join named `conact`", "did you mean `concat`?")


def test_a_large_file_still_reports_its_syntax_errors():
    body = "\n".join("    relu" for _ in range(REPAIR_MAX_CHARS // 8))
    text = "net n {\n    input 3x8x8\n    conv(8 1)\n" + body + "\n    cnov\n}\n"
    program, found, damage = parse_recovering(text)
    assert program is None and [(d.code, d.line) for d in found] == [("E100", 3)]


def test_many_syntax_errors_cost_a_parse_each_at_most():
    lines = [f"    c{i}: conv(8 1)" for i in range(200)]
    text = "net n {\n    input 3x8x8\n" + "\n".join(lines) + "\n}\n"
    start = time.perf_counter()
    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads(text)
    assert time.perf_counter() - start < 10
    assert len(err.value.diagnostics) == 20  # MAX_SYNTAX_ERRORS


def test_a_file_without_errors_parses_once():
    program, found, damage = parse_recovering("net n { input 4 relu }")
    assert program is not None and found == [] and damage is None


def test_quoted_labels_a_bad_one_and_brackets_inside_them():
    # a bad quoted label is cut as its line is; a bracket inside a good one matches nothing
    text = ('net n {\n    input 3x8x8\n    "a.b": conv(8, 1)\n    "x{(": seq { conv(8 1) }\n'
            '    "y}": relu\n    cnov(4, 1)\n}\n')
    assert reported(text) == [("E101", 3), ("E100", 4), ("E201", 6)]
