"""Pathological input: each kind ends in its one expected, located error (or is accepted), quickly,
and never in a traceback, a hang or unbounded memory."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import netdsl
from conftest import ROOT, net_files
from netdsl.diagnostics import MAX_DIAGNOSTICS, DiagnosticBag, NetDSLError
from netdsl.limits import DEFAULT_MAX_BYTES
from netdsl.limits import MAX_EXPR_DEPTH, MAX_NESTING
from netdsl.printer import format_source

QUICK_S = 5.0  # far above the milliseconds these take, far below the seconds or hours they once did


def _nested(depth: int, inner: str = "relu") -> str:
    """Groups `depth` deep; each `g: {` is five characters, its brace the fourth."""
    return "g: { " * depth + inner + " }" * depth


def _blocks_through(n: int) -> str:
    return "".join(f"block b{i} {{ b{(i + 1) % n} }}\n" for i in range(n))


# name, text, expected (code, line, column) of the one error
CASES = [
    ("braces 10,000 deep", "net n {\n    input 8\n    " + _nested(10_000) + "\n}",
     ("E408", 3, 8 + 5 * (MAX_NESTING - 1))),
    ("braces 1,000,000 deep", "net n { input 8 " + _nested(10**6) + " }", ("E408", 1, 20 + 5 * (MAX_NESTING - 1))),
    ("brackets 10,000 deep", "net n { input 8 linear(" + "(" * 10_000 + "1" + ")" * 10_000 + ") }",
     ("E408", 1, 23 + MAX_NESTING - 1)),
    ("sum of 100,000 terms", "net n { input 8 linear(" + " + ".join(["1"] * 100_000) + ") }", ("E408", 1, 24)),
    ("minus 1,000,000 times", "net n { input 8 linear(" + "-" * 10**6 + "1) }", ("E408", 1, 24 + MAX_EXPR_DEPTH)),
    ("10,000 runs of 100 minus signs", ("-" * MAX_EXPR_DEPTH + "x") * 10_000, ("E100", 1, 1)),
    ("a block that calls itself", "block b { relu b }\nnet n { input 8 b }", ("E204", 1, 16)),
    ("blocks calling each other in a ring", _blocks_through(50) + "net n { input 8 b0 }", ("E204", 50, 13)),
    ("blocks 10,000 deep", "".join(f"block b{i} {{ b{i + 1} }}\n" for i in range(10_000)) + "block b10000 { relu }\n"
     "net n { input 8 b0 }", ("E408", MAX_NESTING - 1, 13)),
    ("repeat 10^9", "net n {\n  input 8\n  repeat 1000000000 { relu }\n}", ("E407", 3, 10)),
    ("labelled repeat 10^9", "net n { input 8 r: repeat 1000000000 { relu } }", ("E407", 1, 27)),
    ("repeats nested to 10^9", "net n { input 8 repeat 1000 { repeat 1000 { repeat 1000 { relu } } } }",
     ("E407", 1, 24)),
    ("blocks that double 30 times", "block b0 { relu relu }\n" + "".join(f"block b{i} {{ b{i - 1} b{i - 1} }}\n"
                                                                     for i in range(1, 31)) + "net n { input 8 b30 }",
     ("E407", 32, 17)),
    ("repeat 10^9 in a head", "net n { input 8 relu h: head { repeat 1000000000 { relu } } }", ("E407", 1, 39)),
    ("repeat 10^50", "net n { input 8 repeat 10 ** 50 { relu } }", ("E100", 1, 28)),
    ("repeat of a huge product", "net n { input 8 repeat 100000 * 100000 * 100000 { relu } }", ("E407", 1, 24)),
    ("the empty file", "", ("E206", 1, 1)),
    ("only comments", "# nothing here\n", ("E206", 2, 1)),
    ("NUL bytes", "\0" * 100_000, ("E101", 1, 1)),
    ("a line of 100,000 stray brackets", ")" * 100_000, ("E100", 1, 1)),
    ("20,000 unknown layers", "net n { input 8 " + "x " * 20_000 + "}", None),
]


@pytest.mark.parametrize("name,text,expected", CASES, ids=[c[0] for c in CASES])
def test_pathological_input_gets_its_error_quickly(name, text, expected):
    start = time.perf_counter()
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text, max_bytes=10 << 20)  # past the size limit: these cases are about the rest
    elapsed = time.perf_counter() - start
    assert elapsed < QUICK_S, f"{name} took {elapsed:.1f} s"
    if expected is None:
        return
    assert [(d.code, d.line, d.column) for d in err.value.diagnostics] == [expected], str(err.value)[:2000]


def test_nesting_up_to_the_limits_is_accepted_checked_and_formatted():
    expr = " + ".join(["1"] * MAX_EXPR_DEPTH) + " + " + "-" * (MAX_EXPR_DEPTH - 1) + "1"
    text = "net n { input 8 " + _nested(MAX_NESTING - 2, f"linear({expr})") + " }"
    net = netdsl.loads(text)
    assert net.layer(net.layers[-1]).shape == (MAX_EXPR_DEPTH - 1,)
    assert format_source(format_source(text)) == format_source(text)


def test_too_many_errors_stop_the_check():
    err = pytest.raises(NetDSLError, netdsl.loads, "net n { input 8 " + "cnov " * 5000 + "}").value
    assert len(err.diagnostics) == MAX_DIAGNOSTICS and err.truncated
    assert str(err).endswith("100 errors in <string>; checking stopped there")


def test_the_layer_limit_is_configurable():
    text = "net n { input 8 repeat 20 { relu } }"
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text, max_layers=10)
    (d,) = err.value.diagnostics
    assert (d.code, d.message) == ("E407", "the net has more than 10 layers: 20 at least, by here")
    assert len(netdsl.loads(text, max_layers=20).layers) == 20


TRILLION = "net huge { input 1000000 fc: linear(1000000) }"


def test_a_trillion_parameters_are_counted_without_allocating(run_cli, tmp_path):
    start = time.perf_counter()
    net = netdsl.loads(TRILLION)
    assert net.total_params() == 10**12 + 10**6
    assert net.summary().totals["params"] == 10**12 + 10**6
    assert time.perf_counter() - start < QUICK_S
    path = tmp_path / "huge.net"
    path.write_text(TRILLION)
    p = run_cli("check", path)
    assert p.stdout == "ok: huge: 1 layer, 1,000,001,000,000 params\n"
    p = run_cli("summary", path)
    assert p.returncode == 0 and "1,000,001,000,000" in p.stdout


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, run_cli):
    path = tmp_path / "big.net"
    with path.open("wb") as f:  # sparse: a gigabyte on disk costs nothing
        f.truncate(2**30)
    start = time.perf_counter()
    with pytest.raises(NetDSLError) as err:
        netdsl.load(path)
    assert time.perf_counter() - start < QUICK_S
    (d,) = err.value.diagnostics
    assert (d.code, d.line, d.column) == ("E104", 0, 0)  # the whole file
    assert d.message == f"the file is {2**30:,} bytes, over the limit of {DEFAULT_MAX_BYTES:,}"
    assert str(err.value).startswith(f"{path}: error[E104]: the file is")
    small = tmp_path / "small.net"
    small.write_text("net n { input 8 relu }")
    assert pytest.raises(NetDSLError, netdsl.load, small, max_bytes=10).value.diagnostics[0].code == "E104"
    assert pytest.raises(NetDSLError, netdsl.loads, "net n { input 8 relu }", max_bytes=10).value.diagnostics[0].code \
        == "E104"
    p = run_cli("check", small, "--max-bytes", "10")
    assert p.returncode == 1 and "error[E104]" in p.stderr
    for command in ("check", "fmt"):  # a limit past any index size reads the file in chunks
        p = run_cli(command, small, "--max-bytes", str(10**30))
        assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr
    p = subprocess.run([sys.executable, "-m", "netdsl", "check", "-"], input=b"#" * (DEFAULT_MAX_BYTES + 1),
                       cwd=ROOT, capture_output=True)
    assert p.returncode == 1 and b"<stdin>: error[E104]: the file is larger than the limit of" in p.stderr


def test_nul_bytes_are_shown_as_pictures():
    err = pytest.raises(NetDSLError, netdsl.loads, "net n { input 8 \0 relu }").value
    lines = str(err).splitlines()
    assert lines[0] == "<string>:1:17: error[E101]: unexpected character U+0000"
    assert lines[2] == "1 | net n { input 8 \u2400 relu }" and lines[3].index("^") == lines[2].index("\u2400")
    assert "NUL bytes" in err.diagnostics[0].help


def test_an_escape_sequence_cannot_reach_the_terminal():
    err = pytest.raises(NetDSLError, netdsl.loads, "net n { input 8 # \x1b[2J\ncnov }").value
    assert "\x1b" not in str(err) or "\x1b[2J" not in str(err)


def test_invalid_utf8_is_located_in_characters_with_the_line_shown(tmp_path):
    path = tmp_path / "bad.net"
    path.write_bytes("net n {\n  input 3×8x8 \xff relu\n}".encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    err = pytest.raises(NetDSLError, netdsl.load, path).value
    (d,) = err.diagnostics
    assert (d.code, d.line, d.column) == ("E103", 2, 15)
    lines = str(err).splitlines()
    assert lines[2] == "2 |   input 3×8x8 \ufffd relu" and lines[3].index("^") == lines[2].index("\ufffd")


def test_a_byte_order_mark_is_accepted(tmp_path):
    text = "\ufeffnet n { input 8\n  cnov\n}"
    path = tmp_path / "bom.net"
    path.write_text(text, encoding="utf-8")
    for load in (lambda: netdsl.loads(text), lambda: netdsl.load(path)):
        err = pytest.raises(NetDSLError, load).value
        assert [(d.code, d.line, d.column) for d in err.diagnostics] == [("E201", 2, 3)]
    assert netdsl.loads("\ufeffnet n { input 8 relu }").layers == ["relu1"]


def test_crlf_line_endings_keep_columns():
    err = pytest.raises(NetDSLError, netdsl.loads, "net n {\r\n  input 8\r\n  relu  cnov\r\n}\r\n").value
    assert [(d.code, d.line, d.column) for d in err.diagnostics] == [("E201", 3, 9)]
    assert str(err).splitlines()[3].index("^") == str(err).splitlines()[2].index("cnov")


def test_tabs_keep_the_caret_under_the_mistake():
    err = pytest.raises(NetDSLError, netdsl.loads, "net n {\n\tinput 8\n\trelu\t\tcnov\n}").value
    lines = str(err).splitlines()
    assert lines[3].index("^") == lines[2].index("cnov") and lines[3].count("^") == 4


@pytest.mark.parametrize("separator", ["\f", "\u2028", "\x0b", "\x85"])
def test_other_line_separators_do_not_move_the_caret(separator):
    err = pytest.raises(NetDSLError, netdsl.loads, f"net n {{ # a{separator}b\n  input 8\n  cnov\n}}").value
    lines = str(err).splitlines()
    assert lines[0].startswith("<string>:3:3:") and lines[2] == "3 |   cnov"


def test_a_huge_line_is_shown_as_a_window_around_the_mistake():
    text = "net n { input 8 " + "relu " * 20_000 + "cnov " + "relu " * 20_000 + "}"
    err = pytest.raises(NetDSLError, netdsl.loads, text).value
    source, caret = str(err).splitlines()[2:4]
    assert len(source) < 140 and source.startswith("1 | ...") and source.endswith("...")
    assert source[caret.index("^"):].startswith("cnov") and caret.count("^") == 4


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_unreadable_paths_are_usage_errors(run_cli, tmp_path, command):
    loop = tmp_path / "loop.net"
    loop.symlink_to(tmp_path / "loop2.net")
    (tmp_path / "loop2.net").symlink_to(loop)
    for path in (loop, tmp_path, tmp_path / "missing.net"):
        p = run_cli(command, path)
        assert p.returncode == 2 and p.stderr.startswith(f"netdsl: error: cannot read {path}: "), p.stderr


def _depends_on_lowering(node) -> bool:
    """Whether a tree has what only lowering knows, which the bound counts at its least: a
    condition (it may read the input's shape), a shape name (`in_channels`), a pass (`as i`)."""
    from netdsl import ast as tree
    if isinstance(node, tree.If) or isinstance(node, tree.NameRef) and node.name.startswith("in_") \
            or isinstance(node, tree.Repeat) and node.var is not None:
        return True
    if isinstance(node, (list, tuple)):
        return any(_depends_on_lowering(x) for x in node)
    fields = getattr(node, "__dataclass_fields__", None)
    return bool(fields) and any(_depends_on_lowering(getattr(node, f)) for f in fields)


def test_the_layer_bound_never_exceeds_the_layers_made():
    """The bound refuses nets before lowering them, so it must never count a layer that lowering
    would not make: checked on the bundled nets and on a few hundred of their valid mutations."""
    from fuzzing import cases

    from netdsl.limits import LayerBound
    from netdsl.lower import Lowerer
    from netdsl.parser import parse

    checked = 0
    for path in net_files():
        for case in [None, *cases(path.name, path.read_bytes(), 7, 80)]:
            text = path.read_text() if case is None else case.data.decode("utf-8", errors="replace")
            try:
                net = netdsl.loads(text)
            except NetDSLError:
                continue
            program = parse(text)
            lowerer = Lowerer(program, DiagnosticBag(), {})
            lowerer.run()
            body = next(d for d in program.definitions if d.__class__.__name__ == "NetDef").body
            bound = LayerBound(lowerer.blocks, lowerer.recursive).chain(body, net.params)
            heads = any(o.name != net.outputs[0].name for o in net.outputs)
            exact = not heads and not _depends_on_lowering(program)
            assert bound <= len(net.layers) and (not exact or bound == len(net.layers)), (text, bound, len(net.layers))
            checked += 1
    assert checked > 100


def test_a_net_over_the_limit_is_lowered_only_a_little_further():
    """What lowering made before stopping stays available (a diagram can show it), but a net known
    to pass the limit is not expanded up to it."""
    from netdsl.limits import PARTIAL_LAYERS
    from netdsl.lower import lower
    from netdsl.parser import parse

    doubling = "block b0 { relu relu }\n" + "".join(f"block b{i} {{ b{i - 1} b{i - 1} }}\n" for i in range(1, 31))
    bag = DiagnosticBag()
    start = time.perf_counter()
    lowered = lower(parse(doubling + "net n { input 8 b30 }"), bag)
    assert time.perf_counter() - start < QUICK_S
    assert [d.code for d in bag.items] == ["E407"]
    assert len(lowered) - 1 == PARTIAL_LAYERS
    small = lower(parse("net n { input 8 " + "relu " * 50 + "}"), bag := DiagnosticBag(), max_layers=20)
    assert len(small) - 1 == 20 and [(d.code, d.column) for d in bag.items] == [("E407", 17 + 5 * 20)]
