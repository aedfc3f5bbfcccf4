"""Every error code, from bad input to a located diagnostic, and the rendering of them.

The files in tests/diagnostics/ mark each line that must be reported with `# error: CODE`
(mypy's trick); one check of a file must report exactly those, all together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import netdsl
from netdsl.diagnostics import CODES, NetDSLError

HERE = Path(__file__).parent / "diagnostics"
MARK = re.compile(r"#\s*error:\s*(E\d{3})")

# Errors that need no file of their own: syntax errors stop the parse, so one per text.
SYNTAX_CASES = [
    ("E100", "net n { input 3x8x8 conv(64 3) }", (1, 29), "separate arguments with `,`"),
    ("E100", "net n { input 3x8x8 a: : relu }", (1, 24), "a label comes right before its layer"),
    ("E100", "net n { input 3x8x8 conv(8, 3)) }", (1, 31), None),
    ("E100", "net n { input 3x8x8 relu ) }", (1, 26), None),
    ("E101", 'net n { input 3x8x8 conv(8, 3, pad="same") }', (1, 36), "netdsl has no strings"),
    ("E101", "net n { input 3x8x8 relu; relu }", (1, 25), "need no separator"),
    ("E102", "net n { input 3x8x8 conv(8, 3)", (1, 31), "is not closed"),
    ("E102", "net n { input 3x8x8 concat { relu | relu ", (1, 42), "is not closed"),
]


def _marked(path: Path) -> set[tuple[int, str]]:
    return {(i, m.group(1)) for i, line in enumerate(path.read_text().splitlines(), 1)
            for m in [MARK.search(line)] if m}


def _reported(path: Path) -> set[tuple[int, str]]:
    with pytest.raises(NetDSLError) as err:
        netdsl.load(path)
    return {(d.line, d.code) for d in err.value.diagnostics}


@pytest.mark.parametrize("path", sorted(HERE.glob("*.net")), ids=lambda p: p.name)
def test_marked_errors_are_reported_together(path):
    assert _reported(path) == _marked(path)


@pytest.mark.parametrize("code,text,where,help", SYNTAX_CASES)
def test_syntax_errors(code, text, where, help):
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text)
    (d,) = err.value.diagnostics
    assert (d.code, (d.line, d.column)) == (code, where)
    if help:
        assert help in (d.help or "")


def test_invalid_utf8(tmp_path):
    path = tmp_path / "bad.net"
    path.write_bytes(b"net n {\n  input 3x8x8 \xff\n}")
    with pytest.raises(NetDSLError) as err:
        netdsl.load(path)
    (d,) = err.value.diagnostics
    assert (d.code, d.line, d.column) == ("E103", 2, 15)


def test_too_many_layers():
    with pytest.raises(NetDSLError) as err:
        netdsl.loads("net n { input 8 repeat 1000000000 { relu } }", max_layers=1000)
    (d,) = err.value.diagnostics
    assert d.code == "E407" and "1,000 layers" in d.message


def test_unknown_net_parameter():
    with pytest.raises(NetDSLError) as err:
        netdsl.loads("net n(classes = 10) { input 8 linear(classes) }", clases=3)
    (d,) = err.value.diagnostics
    assert d.code == "E205" and d.help == "did you mean `classes`?"


def test_every_code_is_produced_by_a_test():
    produced = {code for p in HERE.glob("*.net") for _, code in _marked(p)}
    produced |= {c for c, *_ in SYNTAX_CASES} | {"E103", "E104", "E407", "E205"}
    assert produced == set(CODES)


# --- what a diagnostic says and how it looks ---------------------------------------------

def _error(text: str) -> NetDSLError:
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text, filename="t.net")
    return err.value


def test_rendering_has_location_code_source_line_and_caret():
    err = _error("net n {\n    input 3x8x8\n    c1: cnov(8, 3)\n}\n")
    assert str(err).splitlines()[:5] == [
        "t.net:3:9: error[E201]: unknown op `cnov`",
        "  |",
        "3 |     c1: cnov(8, 3)",
        "  |         ^^^^",
        "  = help: did you mean `conv`?",
    ]
    assert str(err).endswith("1 error in t.net")
    d = err.diagnostics[0]
    assert (d.code, d.message, d.line, d.column) == ("E201", "unknown op `cnov`", 3, 9)


def test_caret_lines_up_under_tabs():
    err = _error("net n {\n\tinput 3x8x8\n\t\tconv(8, 3, strid=1)\n}\n")
    lines = str(err).splitlines()
    source, caret = lines[2], lines[3]
    assert source.index("strid") == caret.index("^")
    assert caret.count("^") == len("strid=1")


def test_crlf_line_endings_report_the_same_place():
    err = _error("net n {\r\n    input 3x8x8\r\n    cnov\r\n}\r\n")
    assert (err.diagnostics[0].line, err.diagnostics[0].column) == (3, 5)


def test_shape_error_points_at_the_producers():
    err = _error("net n {\n  input 3x8x8\n  concat {\n    conv(4, 1)\n  | conv(4, 3)\n  }\n}\n")
    text = str(err)
    d = err.diagnostics[0]
    assert d.code == "E402" and d.line == 3
    assert "branch 2 ends with `branch2.conv1`, which outputs 4x6x6" in text
    assert "t.net:5:5" in text  # the secondary span: the layer that made the odd shape


def test_an_error_is_reported_once_however_often_its_block_is_used():
    err = _error("block b { conv(8, 9) }\nnet n { input 3x4x4 x: b y: b z: b }")
    assert [d.code for d in err.diagnostics] == ["E401"]


def test_errors_do_not_cascade_down_the_chain():
    err = _error("net n { input 3x8x8 cnov(3) conv(8, 3) linear(10) }")
    assert [d.code for d in err.diagnostics] == ["E201"]


def test_diagnostics_are_sorted_by_position():
    err = _error("net n { input 3x8x8 head { cnov } head { conv(0, 1) } head { relu(2) } }")
    positions = [(d.line, d.column) for d in err.diagnostics]
    assert positions == sorted(positions) and len(positions) == 3


def test_syntax_errors_of_several_lines_are_reported_together():
    err = _error('net n {\n input 3x8x8\n conv(64 3)\n relu)\n conv(8, 3, pad="same")\n}')
    assert [(d.code, d.line) for d in err.diagnostics] == [("E100", 3), ("E100", 4), ("E101", 5)]
    assert "expected `)`, `,` or an operator" in err.diagnostics[0].message


@pytest.mark.parametrize("layer,code", [
    ("conv(1" + "0" * 5000 + ", 3)", "E306"),                  # Python cannot even print such an int
    ("conv(" + " * ".join(["99999999999999999999"] * 20) + ", 1)", "E307"),
    ("conv(1" + "0" * 50 + " / 3, 3)", "E305"),                # a float where an integer is needed
    ("conv(8 % 0, 3)", "E307"),
    ("lrn(5, alpha=1e999)", "E306"),
    ("lrn(5, alpha=1" + "0" * 400 + ")", "E306"),
    ("dropout(1e300 * 1e300 * 0)", "E306"),                   # nan
])
def test_extreme_numbers_are_diagnosed(layer, code):
    err = _error(f"net n {{ input 3x8x8 {layer} }}")
    assert [d.code for d in err.diagnostics] == [code]


def test_a_deploy_head_cannot_read_a_training_only_layer():
    text = "net n { input 4 relu h: train head { linear(2) } h2: head from h { linear(3) } }"
    err = _error(text)
    assert [(d.code, d.column) for d in err.diagnostics] == [("E207", text.index("from h") + 6)]
    assert "`h.linear1`, which exists in training only" in err.diagnostics[0].message


def test_errors_inside_a_block_name_the_use_that_found_them():
    err = _error("block a(c) {\n  conv(c, 3)\n}\nnet n {\n  input 3x8x8\n  a(8)\n  a(0)\n}\n")
    (d,) = err.diagnostics
    assert (d.code, d.line) == ("E306", 2)
    assert d.notes[-1].message == "in `a2`, the use of the block here" and d.notes[-1].span.line == 7


def test_a_failed_parameter_is_reported_once():
    err = _error("net n(c = 1/0) { input 4 linear(c) linear(c * 2) }")
    assert [d.code for d in err.diagnostics] == ["E307"]


def test_a_default_that_uses_a_later_parameter_is_reported_where_it_is_written():
    err = _error("block b(y = x, x = 3) { conv(y, 1) }\nnet n { input 3x8x8 b }")
    assert [(d.code, d.line, d.column) for d in err.diagnostics] == [("E202", 1, 13)]


def test_blocks_are_checked_even_when_unused():
    err = _error("block a { cnov(3) }\nblock b { b }\nnet n { input 4 relu }")
    assert [(d.code, d.line) for d in err.diagnostics] == [("E201", 1), ("E204", 2)]
    assert err.diagnostics[1].message == "block `b` calls itself (b -> b)"


def test_concat_of_an_image_and_a_vector():
    err = _error("net n { input 3x8x8 concat { relu | flatten } }")
    assert err.diagnostics[0].message == "concat branch 2 outputs a vector 192, branch 1 an image 3x8x8"


def test_an_empty_head_is_an_error():
    err = _error("net n { input 4 relu h: head { } }")
    assert [d.code for d in err.diagnostics] == ["E207"]


def test_a_malformed_input_is_reported_once():
    for text in ("net n { input 3x8x8x8x8 relu }", "net n { input 8x0 relu }", "net n { input 3x0x8 relu }",
                 "net n { input 0 linear(3) }"):
        assert len(_error(text).diagnostics) == 1, text


def test_input_inside_a_block():
    err = _error("block b { input 3x8x8 relu }\nnet n { input 3 relu }")
    assert [(d.code, d.message) for d in err.diagnostics] == [
        ("E406", "the input belongs in the net's body, not in a block")]


def test_a_keyword_as_a_label():
    err = _error("net n { input 4 train: relu }")
    assert err.diagnostics[0].help == "`train` is a keyword and cannot be a label; choose another name"


def test_vector_into_an_image_op_explains_where_the_vector_comes_from():
    err = _error("net n { input 8 conv(3, 1) }")
    assert "its input is a vector" in err.diagnostics[0].help


def test_tuples_print_as_written():
    err = _error("net n { input 3x8x8 conv(8, (true, 1)) conv(8, -3) }")
    messages = [d.message for d in err.diagnostics]
    assert "got the tuple (true, 1)" in messages[0]
    assert messages[1].startswith("`kernel` must be at least 1, got -3 ")
