"""The README states facts that the code can check: keep them true."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT
from netdsl.diagnostics import CODES
from netdsl.ops import REGISTRY

README = (ROOT / "README.md").read_text()


def test_lecture_tables_are_current():
    """README's side-by-side tables equal docs/lecture_tables.py's output."""
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "lecture_tables.py")], capture_output=True,
                         text=True, check=True).stdout
    begin, end = "<!-- lecture-tables:begin -->", "<!-- lecture-tables:end -->"
    assert README[README.index(begin) + len(begin):README.index(end)].strip() == out.strip(), \
        "run: .venv/bin/python docs/lecture_tables.py --write"


def test_generated_tables_are_current():
    """The op table (from the registry) and the error-code table (from netdsl/codes.py)."""
    sys.path.insert(0, str(ROOT / "docs"))
    import readme_tables

    for name, make in readme_tables.TABLES.items():
        assert readme_tables.current(README, name) == make(), "run: .venv/bin/python docs/readme_tables.py --write"


def test_every_op_and_error_code_is_in_the_tables():
    table = README[README.index("<!-- ops:begin -->"):README.index("<!-- ops:end -->")]
    rows = [line.replace("\\|", "") for line in table.splitlines() if line.startswith("| `")]
    for name, spec in REGISTRY.items():
        row = next((r for r in rows if r.split("|")[1].strip().strip("`").split()[0] == name), None)
        assert row is not None, f"op {name} missing from the README's op table"
        for attr in spec.attrs if not spec.source else ():
            assert f"`{attr.name}" in row, f"{name}.{attr.name} undocumented"
    documented = set(re.findall(r"^\| \[(E\d{3})\]", README, re.M))
    assert documented == set(CODES)


def test_quick_start_commands_are_the_ci_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev demo" in README.split("##")[0] and "./dev test" in README.split("##")[0]
    assert "exec ./dev test\n" in ci


def test_the_mistakes_example_shows_what_netdsl_prints(run_cli):
    shown = README.split("$ netdsl check examples/mistakes.net\n", 1)[1].split("```", 1)[0]
    p = run_cli("check", "examples/mistakes.net")
    assert p.returncode == 1
    assert p.stderr == shown


def test_the_first_look_shows_what_netdsl_prints(run_cli):
    check = README.split("$ netdsl check nets/googlenet.net\n", 1)[1].split("\n", 1)[0]
    assert run_cli("check", "nets/googlenet.net").stdout == check + "\n"
    shown = README.split("$ netdsl summary nets/googlenet.net\n", 1)[1].split("```", 1)[0]
    actual = run_cli("summary", "nets/googlenet.net").stdout.splitlines()
    lines = [line for line in shown.splitlines() if line != "..."]
    assert lines and all(line in actual for line in lines), [x for x in lines if x not in actual]
