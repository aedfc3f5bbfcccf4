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
