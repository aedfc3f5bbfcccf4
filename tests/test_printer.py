"""The printer and `netdsl fmt`: canonical text, comments and alignment kept, idempotent, the
bundled nets already in the canonical style, and the command's modes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, net_files
from netdsl.diagnostics import NetDSLError
from netdsl.parser import parse
from netdsl.printer import format_source, to_text

MESSY = """# header comment


block b( x,y = 2 ){ conv( x*y ,3x1 ) # trailing
  relu }
net  n(k=4){
input 3×32×32   # the input
        c : conv(8,3,pad = same,bias=false)


  concat {  relu | b(k) |  conv(4,
      1)    # inside
      relu }
  s: repeat 2 {relu}
  aux: train head from c { linear(-(k // 2) + 5 - (1 - 2)) dropout(1e-4) }
  g: {
    identity
    # last in group
  }
}
# the end
"""

TIDY = """# header comment

block b(x, y = 2) {
    conv(x * y, 3x1)  # trailing
    relu
}

net n(k = 4) {
    input 3x32x32   # the input
    c: conv(8, 3, pad=same, bias=false)

    concat {
        relu
      | b(k)
      | conv(4, 1)    # inside
        relu
    }
    s: repeat 2 { relu }
    aux: train head from c { linear(-(k // 2) + 5 - (1 - 2)) dropout(1e-4) }
    g: {
        identity
        # last in group
    }
}

# the end
"""


@pytest.mark.parametrize("path", net_files() + [ROOT / "examples" / "mistakes.net"], ids=lambda p: p.name)
def test_bundled_nets_are_in_the_canonical_style(path):
    text = path.read_text(encoding="utf-8")
    assert format_source(text) == text


def test_format_keeps_comments_lines_and_alignment():
    assert format_source(MESSY) == TIDY
    assert format_source(TIDY) == TIDY
    assert parse(TIDY) == parse(MESSY)


def test_canonical_text_from_a_tree_alone():
    assert to_text(parse(MESSY)) == (
        "block b(x, y = 2) {\n    conv(x * y, 3x1)\n    relu\n}\n\n"
        "net n(k = 4) {\n    input 3x32x32\n    c: conv(8, 3, pad=same, bias=false)\n"
        "    concat { relu | b(k) | conv(4, 1) relu }\n    s: repeat 2 { relu }\n"
        "    aux: train head from c {\n        linear(-(k // 2) + 5 - (1 - 2))\n        dropout(0.0001)\n    }\n"
        "    g: { identity }\n}\n")


def test_precedence_brackets_only_where_needed():
    text = "net n { input 8 linear((a - (b - c)) * -(d + e) // (f * g) + ((h))) }"
    assert "linear((a - (b - c)) * -(d + e) // (f * g) + h)" in to_text(parse(text))


def test_a_parameter_list_keeps_its_line_breaks():
    """A long header (EfficientNet's multipliers and the depths they give) stays over the lines
    the source gives it, each line's parameters together, continued under the first parameter;
    one written on one line, or from a tree alone, is one line."""
    text = ("net n(a = 1, b = 2,  # sizes\n      c = a + b,\n\n      # the last\n      d = 4) {\n"
            "    input 3x8x8\n    conv(d, 3)\n}\n")
    messy = "net n(a=1,b=2, # sizes\n c=a+b,\n\n   # the last\n d=4\n ) {\n input 3x8x8\n conv(d, 3) }\n"
    assert format_source(messy) == text and format_source(text) == text
    assert parse(messy) == parse(text)
    assert format_source("block b(x,\n  y) { conv(x, y) }\nnet n { input 3x8x8 b(2, 3) }\n").startswith(
        "block b(x,\n        y) {\n")
    assert to_text(parse(text)).startswith("net n(a = 1, b = 2, c = a + b, d = 4) {\n")


def test_line_endings_follow_the_input():
    assert format_source("net n {\r\n  input 8\r\n}\r\n") == "net n {\r\n    input 8\r\n}\r\n"


def test_fmt_drops_a_files_byte_order_mark_and_refuses_a_second_as_check_does(run_cli, tmp_path):
    one, two = tmp_path / "one.net", tmp_path / "two.net"
    one.write_bytes(b"\xef\xbb\xbfnet n { input 8 }\n")
    two.write_bytes(b"\xef\xbb\xbf\xef\xbb\xbfnet n { input 8 }\n")
    assert run_cli("fmt", one).returncode == 0 and one.read_bytes() == b"net n {\n    input 8\n}\n"
    result = run_cli("fmt", two)
    assert result.returncode == 1 and "E101" in result.stderr and "U+FEFF" in result.stderr
    assert two.read_bytes().startswith(b"\xef\xbb\xbf\xef\xbb\xbf")  # left as it was


def test_a_syntax_error_is_reported():
    with pytest.raises(NetDSLError):
        format_source("net n { conv(3 4) }")


def _fmt(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "netdsl", "fmt", *map(str, args)], cwd=ROOT, input=stdin,
                          capture_output=True, text=True)


def test_fmt_command_writes_checks_and_diffs(tmp_path):
    messy, tidy = tmp_path / "messy.net", tmp_path / "tidy.net"
    messy.write_text(MESSY)
    tidy.write_text(TIDY)
    p = _fmt("--check", messy, tidy)
    assert p.returncode == 1 and p.stderr == f"would reformat {messy}\n" and messy.read_text() == MESSY
    p = _fmt("--diff", messy)
    assert p.returncode == 0 and "+    c: conv(8, 3, pad=same, bias=false)" in p.stdout and messy.read_text() == MESSY
    p = _fmt(messy, tidy)
    assert p.returncode == 0 and p.stderr == f"reformatted {messy}\n"
    assert messy.read_text() == TIDY and tidy.read_text() == TIDY
    assert _fmt("--check", messy, tidy).returncode == 0


def test_fmt_reads_standard_input():
    p = _fmt("-", stdin=MESSY)
    assert p.returncode == 0 and p.stdout == TIDY


def test_fmt_leaves_a_file_with_syntax_errors_untouched(tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("net n {\n  conv(3 4)\n}\n")
    p = _fmt(bad)
    assert p.returncode == 1 and f"{bad}:2:10: error[E100]" in p.stderr
    assert bad.read_text() == "net n {\n  conv(3 4)\n}\n"
    assert _fmt(tmp_path / "missing.net").returncode == 2


def test_fmt_never_writes_text_that_means_something_else(monkeypatch, tmp_path, capsys):
    from netdsl import printer
    from netdsl.cli import main

    monkeypatch.setattr(printer._Printer, "program", lambda self, program: "net other {\n}\n")  # a broken printer
    path = tmp_path / "n.net"
    path.write_text(MESSY)
    with pytest.raises(printer.FormatError):
        format_source(MESSY)
    assert main(["fmt", str(path)]) == 1
    assert path.read_text() == MESSY and "would change its meaning" in capsys.readouterr().err


def test_diff_marks_a_last_line_without_its_newline(run_cli):
    result = run_cli("fmt", "-", "--diff", input_text="net a { input 3  relu }")
    assert "-net a { input 3  relu }\n\\ No newline at end of file\n+net a {\n" in result.stdout


# --- every bundled file, and every construct of the language, round-trips -----------------

def _meaning(text: str):
    """What a file means: its summary, or the mistakes it reports (without their positions)."""
    import netdsl

    try:
        return str(netdsl.loads(text).summary())
    except NetDSLError as err:
        return [(d.code, d.message) for d in err.diagnostics]


BUNDLED = net_files() + sorted((ROOT / "examples").rglob("*.net"))


def test_every_bundled_file_is_found():
    names = {p.relative_to(ROOT).as_posix() for p in BUNDLED}
    assert "nets/torchvision/resnet18.net" in names and "examples/mistakes.net" in names


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bundled_files_format_to_a_fixed_point_that_is_the_same_net(path):
    text = path.read_text(encoding="utf-8")
    tree, meaning = parse(text), _meaning(text)
    formatted = format_source(text)
    assert format_source(formatted) == formatted
    assert parse(formatted) == tree and _meaning(formatted) == meaning
    # and the canonical text made from the tree alone, without the source's layout
    canonical = to_text(tree)
    assert parse(canonical) == tree and format_source(canonical) == canonical
    assert _meaning(canonical) == meaning


# Every construct, in one layout and another: comparisons, and/or/not, `a if c else b`, the
# built-in functions, if / else if / else, `repeat N as i`, `repeat 0`, empty bodies, the `in_*`
# names, `from PATH` at a branch's start, `split` with and without sizes, every rank of input,
# sizes per axis and the attributes of upsample, pad and conv_transpose.
CONSTRUCTS = [
    """\
block unit(out, stride = 1, se = false) {
    if stride == 1 and in_channels == out { add { identity | conv(out, 3, pad=1) } }
    else if not (stride > 2 or out < 3) { conv(out, 3, stride=stride, pad=1) }
    else { conv(out, 1) }
    if se { mul { identity | global_avgpool conv(max(8, out // 4), 1) sigmoid } }
}
block vol(c) { conv(c, (1, 3, 3), stride=(1, 2, 2), pad=(0, 1, 1)) relu conv_transpose(c, 2, stride=2) }
block empty { }
net n(w = 1.0, k = 0, big = true) {
    input 3x16x112x112
    vol(int(16 * w))
    conv(make_divisible(32 * w, 8, min_value=16), 1)
    repeat 0 { relu }
    repeat k { relu }
    repeat 3 as i { conv(in_channels + round(i * 2.5) + floor(1.5) + ceil(0.5), 1) }
    r: repeat 2 as j {
        if j == 1 { relu }
    }
    e: { }
    g: {
    }
    empty
    split(4, in_channels + 3) { conv(8, 1) | conv(4, 1) }
    s2: split { identity | conv(in_channels // 2, 1) }
    concat { identity | from r conv(8, 1) | from r.1 }
    add {
        relu
        relu
      | if big { relu } else if k != 0 { identity } else { identity }
    }
    x: conv(8 if in_depth > 8 or in_width <= 1 else 4, 1)
    upsample(factor=2, mode=trilinear)
    pad((1, 1, 1), mode=reflect)
    conv(in_height // in_width, 1, dilation=(1, 2, 2))
    h: head from x { global_avgpool flatten linear(10 if in_channels > 1 else min(2, 3)) }
}
""",
    """\
net s(c = 2) { input 3x100 conv(8, 3) upsample(size=200, mode=linear) conv_transpose(4, 3, stride=2, output_pad=1)
pad(2) maxpool(2) if not c > 3 or c == 2 and true { relu } global_avgpool flatten linear(in_length) }
""",
    """\
net v { input 100
  linear(64) # a
  if in_channels > 3 { relu
  # c
  } else if false {
  } else { linear(3) }
}
""",
    """\
net i(k = 1) {
    input 3x32x32
    upsample(size=(48, 64), mode=bilinear)
    conv_transpose(8, 4x3, stride=(2, 1), pad=1, groups=1, bias=false)
    pad((1, 2), mode=replicate)
    repeat k as i { conv(8, 3, pad=same) }
    split(2, 6) { repeat 0 { relu } | if k > 5 { relu } }
}
""",
]


def _squeezed(text: str) -> str:
    """The same file with its comments dropped and all on one line, spaces as few as can be."""
    import re

    text = re.sub(r"#[^\n]*", "", text)
    return re.sub(r"\s*([{}()|,=:+*/%<>!-])\s*", r"\1", " ".join(text.split()))


@pytest.mark.parametrize("text", CONSTRUCTS, ids=["image-volume", "sequence", "vector", "attributes"])
def test_every_construct_formats_to_a_fixed_point_that_is_the_same_net(text):
    tree, meaning = parse(text), _meaning(text)
    assert isinstance(meaning, str), meaning  # each checks
    for layout in (text, _squeezed(text), to_text(tree)):
        assert parse(layout) == tree, layout
        formatted = format_source(layout)
        assert format_source(formatted) == formatted, layout
        assert parse(formatted) == tree and _meaning(formatted) == meaning, layout


def test_a_hash_or_bracket_in_a_quoted_label_is_no_comment_and_no_bracket():
    text = 'net n {\n    input 3x8x8\n    "a#{(": relu  # a comment\n    "}#": seq { relu }\n}\n'
    assert format_source(text) == text
    assert format_source(text.replace("  # a", " # a").replace("seq { relu }", "seq{relu}")) == text


@pytest.mark.parametrize("text", [
    "net n { input 3x8x8 0: relu 1: seq { relu 3: relu } }",
    'net n { input 3x8x8 "0-1": relu "seq": seq { } x: add inline { relu | identity } }',
    "block b { add inline { c: conv(3, 1) | from c identity } } net n { input 3x8x8 b }",
])
def test_new_forms_print_canonically_and_read_back(text):
    tree = parse(text)
    assert parse(to_text(tree)) == tree
    once = format_source(text)
    assert format_source(once) == once and parse(once) == tree


def test_an_if_whose_last_arm_is_empty_closes_on_its_own_brace_line():
    # found by hypothesis: an empty `{}` has no span of its own, so the `if`'s span ended at the last
    # condition and a comment after the closing brace moved on every run of fmt
    text = " block  conv {  conv : if  0 # n1\n{} else  if  0 # n2\n{}# n3\n}"
    once = format_source(text)
    assert format_source(once) == once
    assert parse(once) == parse(text)
    assert sorted(line.split("#")[1].strip() for line in once.splitlines() if "#" in line) == ["n1", "n2", "n3"]
