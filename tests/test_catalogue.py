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
