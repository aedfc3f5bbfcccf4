"""Hardening (issue 10): the parser's tables never come from a place another user could write;
no command writes over its input; fmt formats the file, not the name; the command line never
shows a traceback; render bounds what it hands to Graphviz; paths reach the terminal escaped;
fmt keeps every comment with its code."""

from __future__ import annotations

import ast as pyast
import hashlib
import itertools
import os
import re
import subprocess
import sys

import lark
import pytest
from hypothesis import given
from lark import Lark
from lark.exceptions import UnexpectedInput

from conftest import ROOT, net_files
from netdsl import tables
from netdsl.parser import _ASTBuilder, grammar_path, parse
from netdsl.printer import format_source
from test_properties import TEXTS


def _python(code: str, *, env: dict | None = None, cwd=ROOT, timeout: float = 60, **kw):
    """Run `code` in a fresh interpreter (this checkout's netdsl), as the command line would."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **kw)


# --- the parser's tables: never a pickle, never from a place others can write -------------------

def test_the_shipped_tables_equal_a_fresh_build_of_the_grammar():
    """netdsl/parser_tables.json is what the grammar builds now (else: ./dev tables)."""
    grammar = grammar_path().read_text(encoding="utf-8")
    assert tables.TABLES_PATH.read_text(encoding="utf-8") == tables.dumps(tables.build(grammar))


def test_the_tables_are_the_same_whatever_the_hash_seed():
    build = ("from netdsl import tables; from netdsl.parser import grammar_path; import hashlib\n"
             "print(hashlib.sha256(tables.dumps(tables.build(grammar_path().read_text())).encode()).hexdigest())")
    digests = {_python(build, env={"PYTHONHASHSEED": seed}).stdout for seed in ("0", "1", "12345")}
    assert len(digests) == 1 and len(digests.pop()) == 65


def _both_parsers():
    grammar = grammar_path().read_text(encoding="utf-8")
    shipped = tables.load(grammar, _ASTBuilder())
    assert shipped is not None
    return shipped, Lark(grammar, transformer=_ASTBuilder(), **tables.OPTIONS)


SOURCES = [*net_files(), ROOT / "examples" / "mistakes.net", *sorted((ROOT / "tests" / "diagnostics").glob("*.net"))]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_the_shipped_tables_parse_as_the_grammar_does(path):
    shipped, built = _both_parsers()
    text = path.read_text(encoding="utf-8")

    def outcome(parser):
        try:
            return parser.parse(text, start="start")
        except UnexpectedInput as e:
            return type(e).__name__, e.line, e.column, sorted(getattr(e, "expected", None) or ())
        except Exception as e:  # the builder's own limits (an expression too deep)
            return type(e).__name__, str(e)
    assert outcome(shipped) == outcome(built)


def test_the_command_line_uses_the_shipped_tables():
    p = _python("import netdsl.parser as p; print(p.tables_origin())")
    assert p.stdout == "tables\n", p.stderr


def test_tables_of_another_grammar_are_not_used():
    grammar = grammar_path().read_text(encoding="utf-8")
    assert tables.load(grammar + "\n// edited\n", _ASTBuilder()) is None


def test_the_tables_are_plain_json_and_hang_together():
    import json
    shipped = json.loads(tables.TABLES_PATH.read_text(encoding="utf-8"))  # no hook, no tags: data only
    table = tables._restore(shipped["data"])["parser"]["parser"]
    states, names = table["states"], table["tokens"]
    assert sorted(states) == list(range(len(states)))
    for actions in states.values():
        for token, (action, arg) in actions.items():
            assert token in names and (action == 1 or arg in states)
    assert set(table["start_states"]) == {"start", "expr"}


def _old_cache_path(home) -> str:
    """Where netdsl 0.1 kept Lark's pickled tables (for XDG_CACHE_HOME=home)."""
    grammar = grammar_path().read_text(encoding="utf-8")
    key = hashlib.sha256(f"{grammar}{lark.__version__}{sys.version}".encode()).hexdigest()[:16]
    return os.path.join(home, "netdsl", f"grammar-{key}.lark-cache")


def test_no_pickle_is_ever_loaded_even_one_planted_where_the_cache_was(tmp_path):
    """The race of issue 10: another user's pickle at the cache path ran as the victim."""
    cache, marker = tmp_path / "cache", tmp_path / "pwned"
    (cache / "netdsl").mkdir(parents=True, mode=0o700)
    # a protocol-0 pickle that calls os.mkdir(marker) when loaded (written by hand: no pickle here)
    payload = f"cos\nmkdir\n(S'{marker}'\ntR.".encode()
    planted = _old_cache_path(str(cache))
    with open(planted, "wb") as f:
        f.write(hashlib.sha256(b"x").hexdigest().encode() + b"\n" + payload + payload)
    before = sorted(p.name for p in cache.rglob("*"))
    code = ("import sys\n"
            "events = []\n"
            "sys.addaudithook(lambda e, a: events.append((e, a)) if e.startswith(('pickle.', 'marshal.loads')) "
            "or (e == 'open' and isinstance(a[0], str) and a[0].startswith(sys.argv[1])) else None)\n"
            "from netdsl.cli import main\n"
            "rc = main(['check', 'nets/googlenet.net'])\n"
            "print(rc, [e for e in events if not (e[0] == 'marshal.loads')])")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache),
                                        "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "0 []"  # no pickle touched, nothing opened under the cache
    assert not marker.exists()
    assert sorted(p.name for p in cache.rglob("*")) == before  # and nothing written there


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_where_the_cache_was_or_as_the_tables_never_hangs(tmp_path):
    cache = tmp_path / "cache"
    (cache / "netdsl").mkdir(parents=True)
    os.mkfifo(_old_cache_path(str(cache)))
    p = subprocess.run([sys.executable, "-m", "netdsl", "check", "nets/lenet5.net"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    fifo = tmp_path / "tables.fifo"
    os.mkfifo(fifo)
    code = (f"from pathlib import Path; from netdsl import tables, parser; tables.TABLES_PATH = Path({str(fifo)!r})\n"
            "print(parser.tables_origin(), parser.parse('net n { input 8 relu }').definitions[0].name)")
    p = _python(code, timeout=60)
    assert p.stdout == "grammar n\n", p.stderr  # built from the grammar instead, at once


def test_the_package_never_asks_lark_for_its_pickle_cache():
    for path in sorted((ROOT / "netdsl").rglob("*.py")):
        for node in pyast.walk(pyast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, pyast.Call):
                assert not any(k.arg in ("cache", "cache_grammar") for k in node.keywords), (path, node.lineno)
                assert not (isinstance(node.func, pyast.Attribute) and node.func.attr in ("save", "load")
                            and isinstance(node.func.value, pyast.Name) and node.func.value.id == "Lark"), path

# --- fmt keeps each comment with its code -----------------------------------------------------

_GRAMMAR = grammar_path().read_text(encoding="utf-8")
_COMMENTS: list = []
_TOKENS = Lark(_GRAMMAR, parser="lalr", start=["start", "expr"],
               lexer_callbacks={"COMMENT": lambda tok: _COMMENTS.append(tok) or tok})
# Tokens the formatter keeps one for one (brackets, `|` and commas it may add or drop).
_KEPT = {"LBRACE", "RBRACE", "NAME", "INT", "FLOAT", "SHAPE", "QUOTED"}  # (`"0":` is printed `0:`)


def _layout(text: str):
    """The comments as (text, trailing, number of kept tokens before it, its line, whether
    code before it on its line is only punctuation), and the line of each kept token."""
    _COMMENTS.clear()
    text = text.replace("\r\n", "\n")
    fed = list(_TOKENS.parse_interactive(text, start="start").iter_parse())
    comments, lines, last_line, kept_on_line = [], [], 0, False
    for tok in sorted(fed + _COMMENTS, key=lambda t: t.start_pos):
        if tok.type == "COMMENT":
            trailing = last_line == tok.line
            comments.append((tok.value.rstrip(), trailing, len(lines), tok.line, trailing and not kept_on_line))
            continue
        if tok.line != last_line:
            kept_on_line = False
        last_line = tok.end_line
        if tok.type in _KEPT or tok.value.isalpha():
            lines.append(tok.line)
            kept_on_line = True
    return comments, lines


def misplaced_comments(source: str, formatted: str) -> list[str]:
    """What moved: each comment must stay next to the same code. One that trailed code trails
    the output line holding that code, or sits on its own line just before it; one on a line of
    its own stays on its own line, before the output line holding the code that followed it.
    No two comments share a line, and their order is kept."""
    before, before_lines = _layout(source)
    after, after_lines = _layout(formatted)
    if [c[0] for c in before] != [c[0] for c in after]:
        return [f"comments lost, merged or reordered: {[c[0] for c in before]} -> {[c[0] for c in after]}"]
    problems = []
    for (text, trailing, k, _, punct_only), (_, trailing2, k2, line2, _) in zip(before, after):
        if trailing:
            anchor = after_lines[k - 1] if k else 0  # the output line of the code it followed
            ok = (trailing2 and after_lines[k2 - 1] == anchor == line2) or \
                 (not trailing2 and k2 <= k - 1 and after_lines[k2] == anchor) or \
                 (punct_only and not trailing2 and k2 == k)  # after a lone `|` or `.`: between the same code
        elif k == len(before_lines):
            ok = not trailing2 and k2 == k
        else:  # the code it preceded
            ok = not trailing2 and k2 <= k and after_lines[k2] == after_lines[k]
        if not ok:
            problems.append(f"{text} ({'trailing' if trailing else 'own line'}) moved")
    return problems


def _numbered(text: str) -> str:
    count = itertools.count(1)
    return re.sub(r"#[^\n]*", lambda m: f"# c{next(count)}", text)


@given(TEXTS)
def test_fmt_keeps_each_comment_with_its_code_and_never_merges_two(text):
    try:
        parse(text)
    except Exception:
        return
    text = _numbered(text)  # distinct comments, so a moved or merged one shows
    formatted = format_source(text)
    # fmt drops an empty argument list (`conv()` is `conv`): the tokens it had are gone, so a
    # comment written inside or just before one has no code left to be matched against
    if not re.search(r"#[^\n]*\n\s*\(\s*\)|\(\s*(#[^\n]*\n\s*)+\)", text):
        assert misplaced_comments(text, formatted) == [], (text, formatted)
    assert format_source(formatted) == formatted


def test_comments_in_a_header_and_a_call_over_lines_stay_with_them():
    source = ("net\n# about the name\nn(k = 2,  # the width\n  j = 3)\n{\n"
              "    input 3x8x8\n    conv(8,    # width\n         3)    # kernel\n}\n")
    # a parameter list keeps its lines (fmt continues it under the first parameter), so the
    # width's comment stays after `k = 2`
    formatted = format_source(source)
    assert formatted == (
        "# about the name\nnet n(k = 2,  # the width\n      j = 3) {\n    input 3x8x8\n"
        "    # width\n    conv(8, 3)    # kernel\n}\n")
    assert format_source(formatted) == formatted


# --- no command writes over its input ---------------------------------------------------------

LENET = (ROOT / "nets" / "lenet5.net").read_text(encoding="utf-8")


def _netdsl(*args, cwd, env=None, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "netdsl", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **kw)


def _refused(p, source, text=LENET):
    """Exit 2, one line naming the refusal, no traceback, the source as it was."""
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.startswith("netdsl: error: refusing to write ") and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert source.read_text(encoding="utf-8") == text


def _no_dot_path() -> str:
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not os.path.exists(os.path.join(d, "dot")))


@pytest.mark.parametrize("name, args", [
    ("lenet5.svg", []),                    # the default output, NET.svg, is the input
    ("x.gv", ["-o", "x.gv"]),
    ("x.gv", ["-o", "./sub/../x.gv"]),     # another spelling of the name
    ("x.gv", ["-o", "link.gv"]),           # a symlink to it
    ("x.gv", ["-o", "hard.gv"]),           # a hard link to it
    ("x.gv", ["-o", "-"]),                 # standard input is the file (read with -)
])
def test_render_never_writes_over_its_input(tmp_path, name, args):
    source = tmp_path / name
    source.write_text(LENET, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    os.symlink(name, tmp_path / "link.gv")
    os.link(source, tmp_path / "hard.gv")
    if args[1:] == ["-"]:
        with open(source, "rb") as stdin:
            p = _netdsl("render", "-", "-o", name, cwd=tmp_path, stdin=stdin)
    else:
        p = _netdsl("render", name, *args, cwd=tmp_path)
    _refused(p, source)


def test_the_dot_fallback_without_graphviz_never_writes_over_the_input(tmp_path):
    source = tmp_path / "x.gv"
    source.write_text(LENET, encoding="utf-8")
    p = _netdsl("render", "x.gv", "-o", "x.svg", cwd=tmp_path, env={"PATH": _no_dot_path()})
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert "the DOT source was not written (x.gv is the net's own file)" in p.stderr
    assert source.read_text(encoding="utf-8") == LENET and not (tmp_path / "x.svg").exists()


@pytest.mark.parametrize("name, args", [
    ("m.pt", ["--save", "m.pt"]),
    ("m.pt", ["--save", "alias.pt"]),                        # a symlink to it
    ("x.net", ["--export", "torchscript", "-o", "x.net"]),
    ("lenet5.pt", ["--export", "torchscript"]),             # the default export name, NET.pt
    ("x.net", ["--weights", "w.pt", "--save", "w.pt"]),     # over the weights being read
])
def test_compile_never_writes_over_its_inputs(tmp_path, name, args):
    source = tmp_path / name
    source.write_text(LENET, encoding="utf-8")
    os.symlink(name, tmp_path / "alias.pt")
    weights = tmp_path / "w.pt"
    weights.write_text("weights")
    p = _netdsl("compile", name, *args, cwd=tmp_path)
    _refused(p, source)
    assert weights.read_text() == "weights"


# --- fmt formats the file, not the name --------------------------------------------------------

MESSY = "net n {\ninput 3x8x8\n  conv(8,3)  relu }\n"
TIDY = "net n {\n    input 3x8x8\n    conv(8, 3)  relu\n}\n"


def test_fmt_writes_a_symlinks_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "n.net"
    target.write_text(MESSY)
    os.symlink("real/n.net", tmp_path / "link.net")
    p = _netdsl("fmt", "link.net", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "reformatted link.net\n", p.stderr
    assert os.path.islink(tmp_path / "link.net") and target.read_text() == TIDY
    assert sorted(os.listdir(tmp_path / "real")) == ["n.net"]  # no temporary file left


def test_fmt_keeps_hard_links_one_file_and_keeps_the_mode(tmp_path):
    a, b = tmp_path / "a.net", tmp_path / "b.net"
    a.write_text(MESSY)
    os.link(a, b)
    a.chmod(0o640)
    p = _netdsl("fmt", "a.net", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert b.read_text() == TIDY and os.path.samefile(a, b) and os.stat(a).st_nlink == 2
    c = tmp_path / "c.net"
    c.write_text(MESSY)
    c.chmod(0o604)
    assert _netdsl("fmt", "c.net", cwd=tmp_path).returncode == 0
    assert c.read_text() == TIDY and (os.stat(c).st_mode & 0o777) == 0o604


def test_fmt_refuses_a_read_only_file_and_formats_the_others(tmp_path):
    ro, ok = tmp_path / "ro.net", tmp_path / "ok.net"
    ro.write_text(MESSY)
    ok.write_text(MESSY)
    ro.chmod(0o444)
    p = _netdsl("fmt", "ro.net", "ok.net", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr == ("netdsl: error: ro.net is read-only; fmt leaves it as it is (make it writable to format "
                        "it, or see the changes with --diff)\nreformatted ok.net\n")
    assert ro.read_text() == MESSY and ok.read_text() == TIDY and (os.stat(ro).st_mode & 0o777) == 0o444
    assert _netdsl("fmt", "--check", "ro.net", cwd=tmp_path).returncode == 1  # reading it is fine


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fmt_refuses_fifos_and_devices_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe.net")
    os.symlink("pipe.net", tmp_path / "to-pipe.net")
    for name, kind in (("pipe.net", "a FIFO"), ("to-pipe.net", "a FIFO"), (os.devnull, "a device")):
        p = _netdsl("fmt", name, cwd=tmp_path, timeout=30)
        assert p.returncode == 2
        assert p.stderr == f"netdsl: error: cannot read {name}: it is {kind}, not a file fmt can rewrite\n"
    assert stat_is_fifo(tmp_path / "pipe.net")


def stat_is_fifo(path) -> bool:
    import stat
    return stat.S_ISFIFO(os.lstat(path).st_mode)


def test_fmt_refuses_a_file_changed_while_it_was_formatted(tmp_path, monkeypatch, capsys):
    from netdsl import printer
    from netdsl.cli import main

    path = tmp_path / "n.net"
    path.write_text(MESSY)
    real = printer.format_source

    def format_and_edit(text, filename="<string>"):
        path.write_text(MESSY + "# edited meanwhile\n")  # the user saves in the editor meanwhile
        return real(text, filename)
    monkeypatch.setattr(printer, "format_source", format_and_edit)
    assert main(["fmt", str(path)]) == 2
    assert path.read_text() == MESSY + "# edited meanwhile\n"
    assert "changed while fmt formatted it" in capsys.readouterr().err


# --- no tracebacks -------------------------------------------------------------------------------

LONG = "a" * 300  # one name over 255 bytes: ENAMETOOLONG


@pytest.mark.parametrize("args", [
    ("check", f"{LONG}.net"),
    ("summary", f"nets/{LONG}/x.net"),
    ("fmt", f"{LONG}.net"),
    ("render", "nets/lenet5.net", "-o", f"{LONG}.svg"),
    ("render", "nets/lenet5.net", "-o", f"{LONG}.gv"),
    ("compile", "nets/lenet5.net", "--save", f"{LONG}.pt"),
    ("compile", "nets/lenet5.net", "--weights", f"{LONG}.pt"),
    ("compile", "nets/lenet5.net", "--export", "torchscript", "-o", f"{LONG}.pt"),
])
def test_a_name_too_long_is_one_line(tmp_path, args):
    args = [a.replace("nets/", f"{ROOT}/nets/") for a in args]
    p = _netdsl(*args, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("netdsl: error: ") and p.stderr.count("\n") == 1
    # the OS's words, or compile's own check of the name before torch is handed it
    assert "name too long" in p.stderr or "over the 255 the file system allows" in p.stderr, p.stderr


@pytest.mark.parametrize("args", [("summary", "nets/lenet5.net"), ("check", "nets/lenet5.net"), ("--help",),
                                  ("explain",), ("fmt", "-")])
def test_standard_output_full_or_closed_is_one_line(args):
    with open(os.devnull if hasattr(os, "devnull") else "nul") as stdin:
        for redirect, reason in (("> /dev/full", "No space left on device"), (">&-", "it is closed")):
            if redirect == "> /dev/full" and not os.path.exists("/dev/full"):
                continue
            command = " ".join([f"'{sys.executable}'", "-m", "netdsl", *args]) + f" < nets/googlenet.net {redirect}"
            p = subprocess.run(["/bin/sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=stdin)
            assert p.returncode == 2, (command, p.stderr)
            assert p.stderr == f"netdsl: error: cannot write to standard output: {reason}\n", command


def test_standard_input_closed_is_one_line():
    p = subprocess.run(["/bin/sh", "-c", f"'{sys.executable}' -m netdsl check - <&-"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2 and p.stderr == "netdsl: error: cannot read standard input: it is closed\n"


def test_a_pipe_closed_early_is_quiet():
    command = f"'{sys.executable}' -m netdsl summary --expand nets/googlenet.net | head -c 10 > /dev/null"
    p = subprocess.run(["/bin/sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stderr == ""


def test_an_ascii_terminal_gets_escapes_not_a_traceback(tmp_path):
    net = tmp_path / "ü.net"
    net.write_text("net n {  # é\n  input 3x8x8 relu }\n", encoding="utf-8")
    env = {"PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    p = _netdsl("render", net, "-o", tmp_path / "ü.gv", cwd=tmp_path, env=env)
    assert p.returncode == 0 and p.stdout == f"wrote {tmp_path}/\\xfc.gv\n", p.stderr
    p = _netdsl("fmt", "--diff", net, cwd=tmp_path, env=env)
    assert p.returncode == 0 and "# é" in p.stdout and "Traceback" not in p.stderr  # the file's text, as UTF-8
    p = _netdsl("explain", "E402", cwd=tmp_path, env=env)
    assert p.returncode == 0 and "Traceback" not in p.stderr
    bad = tmp_path / "bad é.net"
    bad.write_text("net n { input 3x8x8 cnov }  # ×\n", encoding="utf-8")
    p = _netdsl("check", bad, cwd=tmp_path, env=env)
    assert p.returncode == 1 and "bad \\xe9.net:1:21: error[E201]" in p.stderr and "Traceback" not in p.stderr


def _blocked_reading_stdin(pid: int) -> bool:
    """Is the process asleep in read(0, ...)? (Linux; elsewhere: after a generous wait.)"""
    import platform
    numbers = {"x86_64": "0", "aarch64": "63"}
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    return platform.machine() in numbers and fields[:2] == [numbers[platform.machine()], "0x0"]


def test_ctrl_c_is_one_line_and_exit_130():
    import signal
    import time

    p = subprocess.Popen([sys.executable, "-m", "netdsl", "check", "-"], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while not _blocked_reading_stdin(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not os.path.exists(f"/proc/{p.pid}/syscall"):
            time.sleep(5)  # no /proc: long enough for start-up
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert (p.returncode, out, err) == (130, "", "netdsl: interrupted\n")


def test_ctrl_c_anywhere_in_a_command_is_one_line(tmp_path):
    code = ("import sys, netdsl.network as n\n"
            "def interrupted(*a, **k): raise KeyboardInterrupt\n"
            "n.load = interrupted\n"
            "from netdsl.cli import main\n"
            "sys.exit(main(['summary', 'nets/lenet5.net']))")
    p = _python(code)
    assert (p.returncode, p.stdout, p.stderr) == (130, "", "netdsl: interrupted\n")


# --- render: a bounded job for Graphviz ----------------------------------------------------------

def test_every_bundled_net_is_drawn_expanded_within_the_limits():
    import netdsl
    from netdsl.render import EDGES_PER_NODE, MAX_NODES, diagram_size
    for path in net_files():
        nodes, edges = diagram_size(netdsl.load(path).to_dot(None, fold_activations=False))
        # with room to spare: the largest, EfficientNetV2-S unfolded, is 761 nodes
        assert nodes <= MAX_NODES // 2 and edges <= MAX_NODES * EDGES_PER_NODE // 2, path


@pytest.mark.parametrize("path", ["nets/lenet5.net", "nets/googlenet.net", "nets/torchvision/resnet18.net",
                                  "examples/mistakes.net"])
def test_the_count_is_what_dot_draws(path):
    import netdsl
    from netdsl.diagnostics import NetDSLError
    from netdsl.render import diagram_size, failure_diagram, svg
    try:
        dot = netdsl.load(ROOT / path).to_dot(None)
    except NetDSLError as e:
        dot = failure_diagram(e, depth=None)
    # dot's plain output lists every node and edge it laid out, the invisible spacers too (an SVG
    # leaves those out, but dot places them all the same, and the bound is on dot's work)
    laid_out = dot.pipe(format="plain").decode().splitlines()
    assert diagram_size(dot) == (sum(line.startswith("node ") for line in laid_out),
                                 sum(line.startswith("edge ") for line in laid_out))
    drawn = svg(dot)  # and no more than that is drawn
    assert drawn.count('class="node"') <= diagram_size(dot)[0] and drawn.count('class="edge"') <= diagram_size(dot)[1]


def test_a_huge_diagram_is_refused_at_once_with_what_to_do(tmp_path):
    huge = tmp_path / "huge.net"
    huge.write_text("net h { input 3x8x8 repeat 3000 { concat { relu | relu } } }\n")  # the 100 bytes
    p = _netdsl("render", huge, "--expand", cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("netdsl: error: the diagram has 9,002 boxes and 12,001 edges, over the limit of "
                               "2,000 boxes")
    assert "smaller --depth" in p.stderr and "--max-nodes 9002 " in p.stderr
    assert list(tmp_path.iterdir()) == [huge]
    p = _netdsl("render", huge, "--expand", "-o", tmp_path / "huge.gv", cwd=tmp_path, timeout=120)
    assert p.returncode == 0  # the DOT text alone costs Graphviz nothing


def test_the_command_lines_defaults_are_renders():
    from netdsl import cli, render
    assert (cli.RENDER_MAX_NODES, cli.RENDER_EDGES_PER_NODE, cli.RENDER_DOT_TIMEOUT) == (
        render.MAX_NODES, render.EDGES_PER_NODE, render.DOT_TIMEOUT)


def test_the_limit_is_a_flag(tmp_path):
    p = _netdsl("render", ROOT / "nets/lenet5.net", "--expand", "--no-fold", "--max-nodes", "13", cwd=tmp_path)
    assert p.returncode == 2 and "the diagram has 14 boxes and 13 edges" in p.stderr and "--max-nodes 14" in p.stderr
    p = _netdsl("render", ROOT / "nets/lenet5.net", "--expand", "--no-fold", "--max-nodes", "14", cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / "lenet5.svg").exists()


def test_dot_is_stopped_after_its_time(tmp_path):
    import time

    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    start = time.monotonic()
    p = _netdsl("render", ROOT / "nets/lenet5.net", "--dot-timeout", "1", cwd=tmp_path,
                env={"PATH": f"{fake.parent}{os.pathsep}/bin{os.pathsep}/usr/bin"})
    assert time.monotonic() - start < 30
    assert p.returncode == 2 and p.stderr.startswith("netdsl: error: Graphviz's dot did not finish in 1 s"), p.stderr
    assert "--dot-timeout" in p.stderr and not (tmp_path / "lenet5.svg").exists()


# --- paths reach the terminal escaped --------------------------------------------------------------

def test_control_characters_in_file_names_are_escaped_everywhere(tmp_path):
    name = "a\x1b[2Jb\nc.net"  # clears the screen, forges a line
    shown = "a\\x1b[2Jb\\nc.net"
    bad = tmp_path / name
    bad.write_text("net n { input 3x8x8 cnov }\n")
    outputs = [_netdsl("check", name, cwd=tmp_path), _netdsl("check", "missing\x07.net", cwd=tmp_path),
               _netdsl("fmt", name, cwd=tmp_path), _netdsl("fmt", "--check", "missing\x07.net", cwd=tmp_path)]
    good = tmp_path / "good\x1b.net"
    good.write_text(MESSY)
    outputs += [_netdsl("fmt", good.name, cwd=tmp_path), _netdsl("render", good.name, "-o", "out\x1b.gv", cwd=tmp_path),
                _netdsl("render", good.name, "-o", "out\x1b.jpg", cwd=tmp_path)]
    for p in outputs:
        assert "\x1b" not in p.stdout + p.stderr and "\x07" not in p.stdout + p.stderr, (p.stdout, p.stderr)
    assert f"{shown}:1:21: error[E201]" in outputs[0].stderr and f"1 error in {shown}" in outputs[0].stderr
    assert "cannot read missing\\x07.net" in outputs[1].stderr
    assert outputs[4].stderr == "reformatted good\\x1b.net\n"
    assert outputs[5].stdout == "wrote out\\x1b.gv\n"
    assert "out\\x1b.jpg" in outputs[6].stderr
