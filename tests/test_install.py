"""An installed copy (a real wheel, outside this checkout) finds its grammar and its parser
tables, and works."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_installed_wheel_finds_its_grammar(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(wheel_dir), str(ROOT)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(build.stdout + build.stderr)
    (wheel,) = wheel_dir.glob("netdsl-*.whl")
    shipped = zipfile.ZipFile(wheel).read("netdsl/parser_tables.json")
    assert shipped == (ROOT / "netdsl" / "parser_tables.json").read_bytes()
    for name in ("playground.html", "playground.js"):  # netdsl serve's page, CodeMirror bundled in
        assert zipfile.ZipFile(wheel).read(f"netdsl/static/{name}") == (ROOT / "netdsl" / "static" / name).read_bytes()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import netdsl, netdsl.parser as p\n"
            "print(p.grammar_path())\n"
            "import netdsl.tables\n"
            "print(p.tables_origin(), netdsl.tables.TABLES_PATH)\n"
            "print(netdsl.loads('net n { input 3x8x8 conv(4, 3) }').layers)\n"
            "from netdsl.catalogue import CATALOGUE, explain\n"  # the catalogue needs no docs/ folder
            "print(explain(CATALOGUE['E402']).splitlines()[0])")
    env = dict(os.environ, PYTHONPATH=str(target))
    p = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n" + code],
                       cwd=tmp_path, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    grammar, origin, layers, explained = p.stdout.splitlines()
    assert grammar == str(target / "netdsl" / "netdsl.lark")
    # the parser came from the shipped JSON tables, not from building the grammar (nor a pickle)
    assert origin == f"tables {target / 'netdsl' / 'parser_tables.json'}"
    assert layers == "['conv1']"
    assert explained == "E402: concat inputs disagree"
