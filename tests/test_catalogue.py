"""The error catalogue: an entry for every code, each example makes exactly its code, docs/errors.md
is current, and `netdsl explain` prints entries (and never imports torch)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT
from netdsl.catalogue import CATALOGUE, example_output, explain, lookup
from netdsl.diagnostics import CODES


def test_every_code_has_an_entry():
    assert list(CATALOGUE) == sorted(CODES)


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_each_example_makes_its_code_and_only_it(code):
    output = example_output(CATALOGUE[code])
    reported = [line.split("error[", 1)[1][:4] for line in output.splitlines() if "error[E" in line]
    assert reported == [code], output


def test_errors_page_is_current():
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "errors.py")], capture_output=True, text=True,
                         check=True).stdout
    assert (ROOT / "docs" / "errors.md").read_text(encoding="utf-8") == out, \
        "run: .venv/bin/python docs/errors.py --write"


def test_lookup_accepts_spellings():
    assert lookup("E402") is lookup("e402") is lookup("402") is CATALOGUE["E402"]
    assert lookup("E999") is None


def test_explain_command(run_cli):
    p = run_cli("explain", "E402")
    assert p.returncode == 0 and p.stdout == explain(CATALOGUE["E402"])
    assert p.stdout.startswith("E402: concat inputs disagree\n")
    assert "example.net:1:23: error[E402]: concat branch 2 has spatial size 30x30, branch 1 has 32x32" in p.stdout
    p = run_cli("explain", "E1O0")
    assert p.returncode == 2 and re.search(r"no error code E1O0; did you mean `E10\d`\?", p.stderr), p.stderr
    p = run_cli("explain")
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "E100  syntax error: a token that cannot come here"


# The mistakes the language's newer constructs make possible: each has its code, an entry that
# explains it (a word of the entry names the construct) and the message and help it gets.
# (mistake, source, code, message, a part of the help or None, a word of the entry's explanation)
MISTAKES = [
    ("mul that does not broadcast", "net n { input 8x4x4 mul { identity | global_avgpool conv(3, 1) } }",
     "E403", "mul branch 2 has shape 3x1x1, which does not broadcast with 8x4x4: sizes 8 and 3",
     "or 1 where one side is repeated", "broadcast"),
    ("mul of an image by a vector", "net n { input 8x4x4 mul { identity | global_avgpool flatten } }",
     "E403", "mul branch 2 outputs a vector 8, branch 1 an image 8x4x4", "same dimensions", "ranks"),
    ("split sizes that do not add up", "net n { input 8x4x4 split(2, 3) { relu | relu } }",
     "E412", "the split sizes 2, 3 add up to 5, but the input has 8 channels (8x4x4)", "must add up", "add up"),
    ("split sizes for other branches", "net n { input 8x4x4 split(2, 3, 3) { relu | relu } }",
     "E412", "`split` gives 3 sizes (2, 3, 3) for 2 branches", None, "one size per branch"),
    ("uneven split", "net n { input 9x4x4 split { relu | relu } }",
     "E413", "9 channels do not split into 2 equal parts", "`split(5, 4)`", "divisible"),
    ("condition of if that is not a boolean", "net n { input 8x4x4 if in_channels { relu } }",
     "E309", "the condition of `if` must be true or false, got `8`", "compare it", "`if`"),
    ("condition of a conditional expression", "net n { input 8x4x4 conv(8 if 2 else 3, 1) }",
     "E309", "the condition of `a if c else b` must be true or false, got `2`", "compare it", "`a if c else b`"),
    ("operand of and that is not a boolean", "net n(k = 1) { input 8x4x4 if k and true { relu } }",
     None, None, None, "`and`"),
    ("channel count that is not an integer", "net n { input 8x4x4 conv(48 * 0.25, 1) }",
     "E305", "`out` expects an integer, got the number 12.0 (in `conv`)", None, "48 * 0.25"),
    ("unknown function", "net n { input 8x4x4 conv(mx(8, 2), 1) }",
     "E208", "unknown function `mx`", "did you mean `max`?", "nearest"),
    ("unknown function, nothing near", "net n { input 8x4x4 conv(sqrtish(8), 1) }",
     "E208", "unknown function `sqrtish`", "`min`", "built in"),
    ("too many arguments for a function", "net n { input 8x4x4 conv(round(8, 2), 1) }",
     "E308", "`round` takes 1 argument, got 2", "`round(x)`", "`round`"),
    ("too few arguments for a function", "net n { input 8x4x4 conv(make_divisible(8), 1) }",
     "E308", "`make_divisible` takes 2 to 3 arguments, got 1", "`make_divisible(v, divisor, min_value)`",
     "`make_divisible"),
    ("min of one value", "net n { input 8x4x4 conv(min(8), 1) }",
     "E308", None, None, "two or more"),
    ("per-axis size with too many axes", "net n { input 8x4x4 conv(8, (1, 3, 3)) }",
     "E411", "`kernel` gives 3 sizes (1x3x3), but the input is an image with 2 spatial axes",
     "height x width", "per axis"),
    ("per-axis size with too few axes", "net n { input 3x4x8x8 maxpool(2, stride=(1, 2)) }",
     "E411", "`stride` gives 2 sizes (1x2), but the input is a volume with 3 spatial axes",
     "depth x height x width", "volume"),
    ("conv on a vector", "net n { input 8 conv(8, 3) }",
     "E404", "`conv` expects an image (C x H x W), got 8", "its input is a vector", "conv or pool on a vector"),
    ("unknown join, near a join", "net n { input 8x4x4 cat { relu | relu } }",
     "E201", "no join named `cat`", "did you mean `concat`?", "no join"),
    ("unknown join, nothing near", "net n { input 8x4x4 zip { relu | relu } }",
     "E201", "no join named `zip`", "joins are `concat`, `add`, `mul`, `split`", "joins there are"),
    ("op written as a join", "net n { input 8x4x4 relu { relu | relu } }",
     "E201", "`relu` is an op, not a join", "joins are", "with branches"),
]


@pytest.mark.parametrize("mistake, text, code, message, help, word", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_has_its_code_message_and_entry(mistake, text, code, message, help, word):
    import netdsl

    with pytest.raises(netdsl.NetDSLError) as err:
        netdsl.loads(text)
    diagnostics = err.value.diagnostics
    code = code or "E309"
    assert [d.code for d in diagnostics] == [code], [(d.code, d.message) for d in diagnostics]
    (d,) = diagnostics
    if message is not None:
        assert d.message == message
    if help is not None:
        assert d.help is not None and help in d.help, d.help
    entry = CATALOGUE[code]
    assert word in entry.explanation, (code, word)
    assert code in example_output(entry)  # and its example makes it (as every entry's does)
