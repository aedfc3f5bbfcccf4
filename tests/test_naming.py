"""Names that match PyTorch: integer and quoted labels, `seq { ... }` scopes numbered as
nn.Sequential numbers its children, and `inline` joins whose branches make no scopes. The
oracle for the numbering is torchvision: a ResNet written with these names loads its
state_dict strictly, by name."""

from __future__ import annotations

import random

import pytest
from conftest import BASIC_BY_NAME

import netdsl
from netdsl import ast
from netdsl.diagnostics import NetDSLError
from netdsl.parser import parse
from netdsl.printer import format_source, label_text, to_text


def names(text: str) -> list[str]:
    return netdsl.loads(text).layers


def errors(text: str) -> list:
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text)
    return err.value.diagnostics


# --- labels ---------------------------------------------------------------------------

def test_integer_and_quoted_labels_are_the_local_names():
    assert names('net n { input 3x8x8 0: conv(8, 3) "block1-0": relu 7: relu }') == ["0", "block1-0", "7"]
    prog = parse('net n { input 3x8x8 007: relu "x": relu "seq": relu }')
    # an integer as PyTorch writes a child's number; a quoted name without its quotes
    assert [i.label for i in prog.definitions[0].body[1:]] == ["7", "x", "seq"]


@pytest.mark.parametrize("label, column, what", [
    ('"a.b"', 23, "`.`"), ('""', 22, "empty"), ('"a b"', 23, "U+0020"), ('"a\tb"', 23, "U+0009"),
    ('"ab\\"', 24, "`\\`")])
def test_a_quoted_label_that_cannot_be_a_name_is_an_error_at_the_character(label, column, what):
    (d,) = errors(f"net n {{ input 3x8x8 {label}: relu }}")
    assert (d.code, d.line, d.column) == ("E101", 1, column)
    assert what in d.message and d.help


def test_a_string_anywhere_else_is_still_no_part_of_the_language():
    (d,) = errors('net n { input 3x8x8 conv(8, 3, pad="same") }')
    assert (d.code, d.column) == ("E101", 36) and "no strings" in d.help


# --- numbering in a seq -----------------------------------------------------------------

def test_seq_numbers_its_unlabelled_items_and_an_integer_label_sets_the_count():
    assert names("net n { input 3x8x8 s: seq { conv(8, 3) 2: batchnorm relu conv(8, 1) } }") == \
        ["s.0", "s.2", "s.3", "s.4"]


def test_named_labels_and_heads_take_no_number():
    got = names("net n { input 3x8x8 s: seq { relu x: relu h: head { flatten } head { flatten } relu } }")
    assert got == ["s.0", "s.x", "s.h.flatten1", "s.head1.flatten1", "s.1"]


def test_unlabelled_repeats_and_ifs_number_as_if_written_out():
    text = """block b(c) { conv(c, 3, pad=1) relu }
    net n { input 3x8x8
        layer1: seq { repeat 3 { b(4) } if true { relu relu } else { relu } if false { relu } b(4) }
        r: seq { repeat 2 as i { conv(4 + i, 1) } relu } }"""
    got = names(text)
    assert got[:7] == ["layer1.0.conv1", "layer1.0.relu1", "layer1.1.conv1", "layer1.1.relu1",
                       "layer1.2.conv1", "layer1.2.relu1", "layer1.3"]
    assert got[7:] == ["layer1.4", "layer1.5.conv1", "layer1.5.relu1", "r.0", "r.1", "r.2"]


def test_a_labelled_repeat_is_one_named_item_of_a_seq():
    assert names("net n { input 3x8x8 s: seq { relu x: repeat 2 { relu } relu } }") == \
        ["s.0", "s.x.1.relu1", "s.x.2.relu1", "s.1"]


def test_nested_seqs_and_unlabelled_seqs_outside_a_seq():
    got = names("net n { input 3x8x8 seq { relu seq { relu 5: relu relu } relu } seq { relu } "
                "s: seq { d: seq { relu } relu } }")
    assert got == ["seq1.0", "seq1.1.0", "seq1.1.5", "seq1.1.6", "seq1.2", "seq2.0", "s.d.0", "s.0"]


def test_a_block_body_is_no_seq_but_a_seq_in_it_is():
    got = names("block b { relu d: seq { relu relu } 3: relu } net n { input 3x8x8 s: seq { b b } }")
    assert got == ["s.0.relu1", "s.0.d.0", "s.0.d.1", "s.0.3", "s.1.relu1", "s.1.d.0", "s.1.d.1", "s.1.3"]


def test_a_plain_join_in_a_seq_is_the_scope_of_its_number():
    got = names("net n { input 3x8x8 s: seq { relu add { identity | conv(3, 1) } relu } }")
    assert got == ["s.0", "s.1.branch1.identity1", "s.1.branch2.conv1", "s.1", "s.2"]


# --- inline joins -----------------------------------------------------------------------

def test_inline_branches_make_no_scopes():
    got = names("net n { input 3x8x8 add inline { c: conv(3, 1) bn: batchnorm | identity } relu "
                "x: concat inline { a: conv(4, 1) | b: seq { conv(4, 1) relu } } }")
    assert got == ["c", "bn", "identity1", "add1", "relu1", "x.a", "x.b.0", "x.b.1", "x"]
    net = netdsl.loads("net n { input 3x8x8 add inline { c: conv(3, 1) | identity } }")
    assert not any(s.kind == "branch" for s in net.scopes.values())


def test_inline_branches_in_a_seq_take_numbers_in_order_then_the_join():
    got = names("net n { input 3x8x8 s: seq { relu add inline { conv(3, 1) batchnorm | identity } relu } }")
    assert got == ["s.0", "s.1", "s.2", "s.3", "s.4", "s.5"]
    assert netdsl.loads("net n { input 3x8x8 s: seq { add inline { relu | identity } } }").layer("s.2").op_name == "add"


def test_an_unlabelled_name_after_an_inline_join_avoids_its_labels():
    assert names("net n { input 3x8x8 add inline { relu: relu | identity } relu }")[-1] == "relu1"


def test_a_label_in_two_inline_branches_is_a_duplicate_naming_both_sites():
    (d,) = errors("net n { input 3x8x8 add inline { a: conv(3, 1) | a: relu } }")
    assert (d.code, d.line, d.column) == ("E203", 1, 50) and "`a` is defined twice" in d.message
    assert [(n.message, n.span.column) for n in d.notes] == [("first defined here", 34)]


def test_a_number_that_meets_a_label_is_a_duplicate():
    (d,) = errors("net n { input 3x8x8 s: seq { 1: relu 0: relu relu } }")
    assert d.code == "E203" and "`s.1`" in d.message and d.notes[0].span.column == 30


# --- the printer ------------------------------------------------------------------------

ALL_FORMS = BASIC_BY_NAME + """
net n {
    input 3x32x32
    0: conv(8, 3)  "block1-0": relu  "seq": relu
    layer1: seq {
        basic(8)
        2: basic(16, 2)
    }
    seq { relu }  # an unlabelled seq
    x: concat inline { a: relu | b: seq { relu relu } }
}
"""


def test_fmt_prints_the_new_forms_and_is_a_fixed_point():
    assert format_source(ALL_FORMS) == ALL_FORMS
    messy = ALL_FORMS.replace("0: conv(8, 3)", "0 :conv(8,3)").replace("seq { relu }", "seq{relu}") \
        .replace("concat inline {", "concat   inline{")
    assert format_source(messy) == ALL_FORMS
    assert parse(to_text(parse(ALL_FORMS))) == parse(ALL_FORMS)


def test_labels_are_printed_bare_only_where_they_read_back_the_same():
    assert [label_text(x) for x in ["conv1", "0", "12", "07", "seq", "inline", "a-b", "1x1", "_"]] == \
        ["conv1", "0", "12", '"07"', '"seq"', '"inline"', '"a-b"', '"1x1"', "_"]


def test_random_labels_round_trip():
    rng = random.Random(12)
    alphabet = "abcXYZ_019-+:/[]()#|{}$&*'"  # anything but `.`, quotes, backslashes and white space
    for _ in range(120):
        # (not starting with `_`, which nn.Module keeps for itself: the backend refuses such a name)
        labels = [rng.choice("abc019-+") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
                  for _ in range(3)]
        if len(set(labels)) < 3 or labels[1] == "0":  # (`0` is the seq's unlabelled relu)
            continue
        items = (ast.InputDecl((3, 8, 8)),
                 ast.Call("relu", label=labels[0]),
                 ast.Group((ast.Call("relu"), ast.Call("relu", label=labels[1])), label=labels[2], seq=True),
                 ast.Join("add", (), ((ast.Call("relu"),), (ast.Call("identity"),)), inline=True))
        prog = ast.Program((ast.NetDef("n", (), items),))
        text = to_text(prog)
        assert parse(text) == prog, text
        assert format_source(text) == text
        netdsl.loads(text).compile()  # and the names are good names, for torch.fx too


# --- torch: the state_dict of a ResNet, by name ---------------------------------------------

RESNET18 = ALL_FORMS.split("\n\n")[0] + """

net resnet18(classes = 1000) {
    input 3x64x64
    conv1: conv(64, 7, stride=2, pad=3, bias=false)  bn1: batchnorm  relu: relu
    maxpool: maxpool(3, stride=2, pad=1)
    layer1: seq { repeat 2 { basic(64) } }
    layer2: seq { basic(128, 2)  basic(128) }
    layer3: seq { basic(256, 2)  basic(256) }
    layer4: seq { basic(512, 2)  basic(512) }
    avgpool: adaptive_avgpool(1)  flatten  fc: linear(classes)
}
"""


def test_a_resnet_written_with_these_names_loads_torchvisions_state_dict_strictly():
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    module = netdsl.loads(RESNET18, classes=10).compile().eval()
    assert list(module.state_dict()) == list(reference.state_dict())  # the same keys, in the same order
    module.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(x))


def test_the_readmes_resnet18_has_torchvisions_names():
    torchvision = pytest.importorskip("torchvision")
    from conftest import ROOT
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Names that match PyTorch")[1].split("\n### ")[0]
    text = section.split("```netdsl\n")[1].split("```")[0]
    module = netdsl.loads(text).compile()
    module.load_state_dict(torchvision.models.resnet18().state_dict(), strict=True)
