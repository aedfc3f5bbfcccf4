"""Budgets: whatever the file, checking it costs a bounded time and memory (issue "Hardening").

Each test here is a hostile input that once cost minutes, hours or gigabytes, cut down so that it
runs in well under a second once fixed; bench/adversarial.py runs the full-size corpus, each case
in a subprocess with a time and memory limit.
"""

from __future__ import annotations

import math
import re
import time

import pytest

import netdsl
from netdsl.diagnostics import NetDSLError

QUICK_S = 2.0  # each case takes milliseconds to a few tenths of a second; before the fixes, seconds to hours


def _errors(text: str, **options) -> tuple[list[tuple[str, int, int]], float]:
    """The (code, line, column) of each error and the time the check took."""
    start = time.perf_counter()
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text, **options)
    return [(d.code, d.line, d.column) for d in err.value.diagnostics], time.perf_counter() - start


def distinct_doubling(depth: int, leaf: str = "relu", twice: str = "b{i}(n * 2) b{i}(n * 2 + 1)") -> str:
    """Blocks each using the one below twice with different arguments, so no two instances share
    their arguments: 2^depth leaves."""
    lines = [f"block b0(n) {{ {leaf} }}"]
    lines += [f"block b{i + 1}(n) {{ {twice.format(i=i)} }}" for i in range(depth)]
    return "\n".join(lines) + f"\nnet n {{ input 8x8x8 b{depth}(1) }}\n"


def balanced(depth: int) -> str:
    """An expression of 2^(depth + 1) - 1 terms, nested only `depth` deep: `((1 + 1) + (1 + 1))`."""
    text = "1"
    for _ in range(depth):
        text = f"({text} + {text})"
    return text


# --- 1. exponential layer bounding ---------------------------------------------------------

@pytest.mark.parametrize("depth", [20, 30])
def test_blocks_doubling_with_distinct_arguments_are_refused_quickly(depth):
    """The layer bound remembered each block per arguments, so distinct arguments made it visit
    all 2^depth instances (depth 20: 10 s, depth 23: 81 s and 2.8 GB) before refusing."""
    errors, elapsed = _errors(distinct_doubling(depth), max_layers=1000)
    assert elapsed < QUICK_S, f"{elapsed:.1f} s"
    assert [code for code, *_ in errors] == ["E407"]


# Blocks that multiply something other than layers: scopes, or steps of expansion.
MULTIPLYING = {
    "empty leaves": distinct_doubling(30, leaf=""),
    "heads": distinct_doubling(30, twice="head {{ b{i}(n * 2) }} head {{ b{i}(n * 2 + 1) }}"),
    "heads, empty leaves": distinct_doubling(30, leaf="", twice="head {{ b{i}(n * 2) }} head {{ b{i}(n * 2 + 1) }}"),
    "groups": distinct_doubling(30, twice="g: {{ b{i}(n * 2) }} h: {{ b{i}(n * 2 + 1) }}"),
    "repeats of distinct counts": distinct_doubling(30, twice="repeat n % 3 + 1 {{ b{i}(n * 2) }} b{i}(n * 2 + 1)"),
    "joins of 10 branches": distinct_doubling(
        8, twice="concat {{ " + " | ".join(f"b{{i}}(n * 10 + {j})" for j in range(10)) + " }}"),
    "a repeat of a block of many parameters":
        "block b(" + ", ".join(f"p{i} = {i}" for i in range(500)) + ") { relu }\n"
        "net n { input 8 repeat 5000 { b } }",
    "an argument of many terms": "net n { input 8 repeat 900 { linear(" + balanced(12) + ") } }",
}


@pytest.mark.parametrize("text", MULTIPLYING.values(), ids=MULTIPLYING.keys())
def test_blocks_and_repeats_that_multiply_scopes_or_work_are_refused_quickly(text):
    errors, elapsed = _errors(text, max_layers=1000)
    assert elapsed < QUICK_S, f"{elapsed:.1f} s"
    assert "E407" in [code for code, *_ in errors]


def test_a_repeat_of_passes_that_make_no_layer_stops_after_two():
    start = time.perf_counter()
    net = netdsl.loads("block e { }\nnet n { input 8 r: repeat 1000000000 { e g: { } } relu }", max_layers=1000)
    assert time.perf_counter() - start < QUICK_S and net.layers == ["relu1"]


def test_lowering_stays_within_its_limits():
    """Whatever the bound decides, lowering itself never makes more layers or scopes, nor takes
    more steps, than the limits allow (and the bound gives up rather than spend more)."""
    from netdsl.diagnostics import DiagnosticBag
    from netdsl.limits import SCOPES_PER_LAYER, STEPS_PER_LAYER
    from netdsl.lower import Lowerer
    from netdsl.parser import parse

    for text in [distinct_doubling(30), *MULTIPLYING.values()]:
        lowerer = Lowerer(parse(text), DiagnosticBag(), {}, max_layers=1000)
        net = lowerer.run()
        assert len(net) <= 1001 and len(net.scopes) <= SCOPES_PER_LAYER * 1000
        assert lowerer.steps <= STEPS_PER_LAYER * 1000 + 10_000  # the last chain or expression may pass it


# --- 2. hints, and errors repeated by repeats and blocks -------------------------------------

def test_an_error_repeated_by_a_repeat_is_cheap():
    """Each pass of the repeat met the same error; each once made its hint (a search among all
    the layers so far) before the bag found it a duplicate: hours for 99,999 passes."""
    errors, elapsed = _errors("net n { input 3 repeat 3000 { relu head from nowhere { relu } } }")
    assert elapsed < QUICK_S, f"{elapsed:.1f} s"
    assert errors == [("E202", 1, 46)]


def test_the_error_limit_counts_distinct_reports():
    from netdsl.diagnostics import MAX_DIAGNOSTICS, DiagnosticBag

    bag = DiagnosticBag()
    calls = []
    for _ in range(3):  # three passes over the same 150 mistakes
        for i in range(150):
            bag.error("E201", f"unknown op `x{i}`", help=lambda i=i: calls.append(i) or f"hint {i}")
    assert len(bag.items) == MAX_DIAGNOSTICS and bag.truncated
    assert calls == list(range(MAX_DIAGNOSTICS)), "a hint is made once, for a report that is kept"


def test_hints_are_bounded():
    from netdsl.diagnostics import did_you_mean

    many = [f"layer{i}" for i in range(200_000)]
    start = time.perf_counter()
    assert did_you_mean("layre1", many) == "did you mean `layer1`?"
    assert did_you_mean("x" * 100_000, many + ["x" * 100_000]) is None  # a name of 100 KB is no typo
    assert did_you_mean("conv", ["c" * 100_000] * 100_000 + ["conv1"]) == "did you mean `conv1`?"
    assert time.perf_counter() - start < QUICK_S


@pytest.mark.parametrize("text", [
    # the same undefined name in every instance of a block with many parameters (main: 6 s)
    "block b(" + ", ".join(f"param_{i} = {i}" for i in range(1000)) + ") { linear(param_x + 1) }\n"
    "net n { input 8 repeat 300 { b } }",
    # an unknown argument of a block with many parameters, in a repeat (main: 53 s)
    "block b(" + ", ".join(f"param_{i} = {i}" for i in range(3000)) + ") { relu }\n"
    "net n { input 8 repeat 1000 { b(param_x=1) } }",
    # an unknown op repeated, among thousands of blocks (main: 29 s)
    "".join(f"block blk{i} {{ relu }}\n" for i in range(5000)) + "net n { input 8 repeat 2000 { cnov } }",
], ids=["undefined name", "unknown argument", "unknown op"])
def test_repeated_errors_among_many_names_are_cheap(text):
    errors, elapsed = _errors(text)
    assert elapsed < QUICK_S, f"{elapsed:.1f} s"
    assert len(errors) == 1


# --- 3. pooling windows that read padding only ------------------------------------------------

CRASH = "net crash { input 20x2x3 maxpool(2, stride=1, pad=1, dilation=3) }"


def test_a_maxpool_window_in_the_padding_is_refused_where_it_is():
    """torch gives such a window -inf and an index outside the input; the backward pass then
    writes there ("double free or corruption")."""
    errors, _ = _errors(CRASH)
    assert errors == [("E409", 1, 26)]
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(CRASH)
    assert err.value.diagnostics[0].message == (
        "a window of `maxpool` lies entirely in the padding: output row 0 reads input rows -1 and 2, "
        "outside rows 0 to 1 of the input height 2")


def _brute_padding_window(size, k, s, p, d, ceil):
    from netdsl.ops.window import window_out

    out = window_out(size, k, s, p, d, ceil)
    for o in range(out or 0):
        if all(not 0 <= o * s - p + j * d < size for j in range(k)):
            return o
    return None


def test_the_padding_rule_is_the_brute_force_one():
    """Every window of every small case, tap by tap, including padding beyond pools' rule."""
    from netdsl.ops.window import padding_window

    checked = 0
    for size in range(1, 13):
        for k in range(1, 6):
            for s in range(1, 5):
                for d in range(1, 6):
                    for p in range(0, (k - 1) * d + 3):
                        for ceil in (False, True):
                            assert padding_window(size, k, s, p, d, ceil) == _brute_padding_window(
                                size, k, s, p, d, ceil), (size, k, s, p, d, ceil)
                            checked += 1
    assert checked > 20_000


def test_for_pools_only_the_first_window_can_miss_the_input():
    """What the rule comes to under the pools' own padding rule (pad <= kernel / 2): the first
    window misses when its first tap at or right of 0, at (-pad) mod dilation, is past the end;
    without ceil mode, only with kernel 2, pad 1 and a size one less than the dilation."""
    from netdsl.ops.window import padding_window, window_out

    for size in range(1, 30):
        for k in range(1, 8):
            for s in range(1, 5):
                for d in range(1, 12):
                    for p in range(0, k // 2 + 1):
                        for ceil in (False, True):
                            if window_out(size, k, s, p, d, ceil) is None:
                                continue
                            expected = 0 if p > 0 and (-p) % d >= size else None
                            assert padding_window(size, k, s, p, d, ceil) == expected, (size, k, s, p, d, ceil)
                            if not ceil:
                                assert (expected is not None) == ((k, p) == (2, 1) and size == d - 1)


def test_huge_windows_are_judged_at_once():
    from netdsl.ops.window import padding_window

    big = 10 ** 60
    assert padding_window(big, 2 * big, 1, big, 1) is None
    assert padding_window(big - 1, 2, 1, 1, big) == 0
    assert padding_window(3, 2, 1, 1, 2) is None


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _pools(draw):
    """A 2-D pool that torch accepts: its padding at most half the kernel, and a window that fits."""
    from netdsl.ops.window import window_out

    axes = []
    for _ in range(2):
        k = draw(st.integers(1, 5))
        p = draw(st.integers(0, k // 2))
        d = draw(st.integers(1, 5))
        s = draw(st.integers(1, 4))
        # sizes near the window's extent are where windows can miss the input
        size = draw(st.integers(max(1, (k - 1) * d + 1 - 2 * p), (k - 1) * d + 4))
        axes.append((size, k, s, p, d))
    ceil = draw(st.booleans())
    for size, k, s, p, d in axes:
        if window_out(size, k, s, p, d, ceil) is None:
            hypothesis.assume(False)
    return axes, ceil


@settings(max_examples=400, deadline=None)
@given(_pools())
def test_the_padding_rule_is_torchs(pool):
    """Torch's own answer: a max-pool window that reads no input gives -inf and an index of no
    input position (checked in the forward pass, which is safe; the backward pass writes there);
    an average pool without padding in its count gives NaN or inf where it divides by zero."""
    torch = pytest.importorskip("torch")
    from netdsl.ops.window import padding_window, window_out

    (h, w), ceil = pool
    x = torch.randn(1, 1, h[0], w[0])
    kernel, stride, pad, dilation = ((h[i], w[i]) for i in range(1, 5))
    y, index = torch.nn.functional.max_pool2d(x, kernel, stride, pad, dilation, ceil_mode=ceil,
                                             return_indices=True)
    assert tuple(y.shape[2:]) == (window_out(*h, ceil), window_out(*w, ceil))
    rows = padding_window(*h, ceil) is not None
    columns = padding_window(*w, ceil) is not None
    assert bool(torch.isinf(y).any()) == (rows or columns)
    if not (rows or columns):  # (an index of a window in the padding may alias another place of the input)
        assert bool(((index >= 0) & (index < h[0] * w[0])).all())
    # average pools have no dilation: every window reads some input, even without padding counted
    if dilation == (1, 1):
        avg = torch.nn.functional.avg_pool2d(x, kernel, stride, pad, ceil_mode=ceil, count_include_pad=False)
        assert bool(torch.isfinite(avg).all()) and not (rows or columns)


# --- 4. names, and the rest of the adversarial corpus ------------------------------------------

def test_a_dotted_name_past_the_limit_stops_the_check_there():
    """Labels of 2,000 characters nested 40 deep and repeated 1,000 times once took 1.8 GB: every
    layer and scope kept its 80 KB name. Labels of 100 characters nested 40 deep pass the limit
    at the tenth."""
    from netdsl.limits import MAX_NAME_LENGTH

    labels = "".join(f"{chr(97 + i) * 99}{i}: {{ " for i in range(20))
    text = "block b { " + labels + "relu" + " }" * 20 + " }\nnet n { input 8 r: repeat 1000 { b } }"
    errors, elapsed = _errors(text)
    assert elapsed < QUICK_S
    assert [code for code, *_ in errors] == ["E410"]
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text)
    assert err.value.partial is not None and all(len(n) <= MAX_NAME_LENGTH for n in err.value.partial.scopes)


def _corpus():
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    import adversarial

    return adversarial


CORPUS = _corpus()
SMALL = 0.02  # files of 20 KB instead of 1 MiB, and limits of 2,000 layers instead of 100,000


@pytest.mark.parametrize("case", CORPUS.CASES, ids=[c.name for c in CORPUS.CASES])
def test_the_adversarial_corpus_in_small(case):
    """bench/adversarial.py's cases, each made small: located errors or a net, quickly."""
    text = case.make(SMALL)
    start = time.perf_counter()
    try:
        net = netdsl.loads(text, max_layers=2000)
    except NetDSLError as err:
        assert err.diagnostics and all(d.span.line >= 1 for d in err.diagnostics), str(err)[:2000]
        str(err)  # renders
    else:
        assert len(net.layers) <= 2000
        net.summary().table(depth=None)
    assert time.perf_counter() - start < QUICK_S, f"{case.name}: {time.perf_counter() - start:.1f} s"


def test_the_adversarial_corpus_files_are_within_the_size_limit():
    from netdsl.limits import DEFAULT_MAX_BYTES

    for name, text in CORPUS.texts(1.0).items():
        assert len(text.encode("utf-8")) <= DEFAULT_MAX_BYTES, name


# --- 5. the worst cases of check, summary and render, made small -------------------------------

def test_the_file_size_limit_bounds_the_parse():
    """The densest text (long sums) parses at about 150 KB a second on the development machine:
    1 MiB took 7 to 9 s, past the 5 s budget, so the limit is 512 KiB (README, "Limits and safety")."""
    from netdsl.limits import DEFAULT_MAX_BYTES

    assert DEFAULT_MAX_BYTES == 512 * 1024
    text = "net n { input 8 " + "relu " * (DEFAULT_MAX_BYTES // 5) + "}"
    assert len(text) > DEFAULT_MAX_BYTES
    errors, elapsed = _errors(text)
    assert errors == [("E104", 0, 0)] and elapsed < QUICK_S  # refused before it is parsed (of the whole file)


def test_a_join_of_many_mismatched_branches_is_one_error():
    """Every other branch of another shape: one error at the join, naming the first two branches
    that disagree, however many do."""
    text = "net n { input 8x2x2 add {" + " conv(1, 1) | conv(2, 1) |" * 2000 + " relu } }"
    with pytest.raises(NetDSLError) as err:
        netdsl.loads(text)
    [diag] = err.value.diagnostics
    assert (diag.code, diag.line, diag.column) == ("E403", 1, 21)
    assert [n.message for n in diag.notes] == ["branch 1 ends with `branch1.conv1`, which outputs 1x2x2",
                                               "branch 2 ends with `branch2.conv1`, which outputs 2x2x2"]


def _nested(depth: int, layers: int, train: bool = False) -> str:
    """`layers` layers inside `depth` block instances (a head among them, training-only if `train`)."""
    blocks = "".join(f"block b{i}(c) {{ b{i + 1}(c) }}\n" for i in range(depth - 1))
    head = f"{'train ' if train else ''}head {{ flatten linear(3) }}"
    return (blocks + f"block b{depth - 1}(c) {{ repeat {layers} {{ conv(c, 1) relu }} {head} }}\n"
            "net n { input 4x2x2 b0(4) conv(2, 1) }")


def _rollups_by_brute_force(net):
    """Each block instance's params, MACs and bytes: every layer added to every scope around it."""
    from netdsl.ir import scopes_of
    from netdsl.summary import BYTES_PER_VALUE

    acc = {}
    for layer in net.ir.body():
        for scope in scopes_of(layer):
            if scope.kind == "block":
                a = acc.setdefault(scope.name, [0, 0, 0])
                a[0] += layer.params
                a[1] += layer.macs
                a[2] += BYTES_PER_VALUE * math.prod(layer.shape)
    return acc


@pytest.mark.parametrize("train", [False, True])
def test_summary_rolls_blocks_up_in_one_pass(train):
    """Each layer adds itself to its own scope and each scope to its parent, once: summarising
    100,000 layers 97 blocks deep once added every layer to every scope around it (10 million
    additions). The numbers are the brute force's, and the time does not grow with the depth."""
    net = netdsl.loads(_nested(40, 50, train))
    summary = net.summary()
    assert {b.name: [b.params, b.macs, b.activation_bytes] for b in summary.blocks} == _rollups_by_brute_force(net)
    assert summary.blocks[0].output_shape == [4, 2, 2]
    for depth in (None, 1, 5, 39, 41):
        assert len(summary.rows(depth)) >= 1

    def cpu_seconds(depth: int) -> float:  # CPU time: the machine running the suite may be shared
        net = netdsl.loads(_nested(depth, 30_000, train), max_layers=70_000)
        start = time.process_time()
        net.summary().table(depth=None)
        net.summary().table(depth=depth // 2)
        return time.process_time() - start

    # as quick 97 blocks deep as 1 deep (each layer added to every scope around it: 3 s to 0.6 s)
    shallow, deep = cpu_seconds(1), cpu_seconds(97)
    assert deep < 1.5 * shallow + 0.2, (shallow, deep)


def test_summary_rows_at_every_depth_are_the_scans():
    """`rollup` finds the scope by index and the training-only cut by bisection; the answers are
    those of the scans it replaced."""
    from netdsl.ir import scopes_of
    from netdsl.summary import rollup

    def scanned(around, train_only, depth):
        levels = len(around) + 1
        cut = levels if depth is None else max(depth, 1)  # 0 reads as 1 (it failed on a top-level layer)
        if train_only:
            cut = max(cut, next((s.level for s in around if s.train_only), levels))
        return None if levels <= cut else next((s for s in around if s.level == cut), around[-1])

    text = ("block inner { conv(4, 1) train head { flatten linear(2) } relu }\nblock outer { inner g: { inner } }\n"
            "net n { input 4x2x2 outer train head { outer } head { g: { outer } } }")
    net = netdsl.loads(text)
    for layer in net.ir.body():
        for depth in (None, 0, 1, 2, 3, 4, 5, 9):
            around = scopes_of(layer)
            assert rollup(around, layer.train_only, depth) is scanned(around, layer.train_only, depth)


def test_summary_json_is_jsons_own_text_byte_for_byte():
    import json

    from conftest import ROOT

    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "nets").glob("*.net"))]
    texts.append(_nested(5, 3, train=True))
    for text in texts:
        net = netdsl.loads(text)
        for batch in (1, 3):
            summary = net.summary(batch)
            assert summary.to_json() == json.dumps(summary.to_dict(), indent=1)

    from netdsl.summary import _encode

    odd = {"a": [], "b": {}, "c": [1, [2, {}], (3, 4)], "d": 'é"\n\u2028\x00', "e": True, "f": None,
           "g": 1.5, "h": float("inf"), "i": [True, 1, None, "x"], 7: -2}
    out: list[str] = []
    _encode(odd, "\n", out)
    assert "".join(out) == json.dumps(odd, indent=1)


def _labels(dot) -> list[str]:
    """The text of each line of each label in a diagram's DOT source, tags removed."""
    import re

    lines = []
    for label in re.findall(r'label=<(.*?)>\s*(?:\w+=|\])', dot.source):
        lines += [re.sub(r"<[^>]*>", "", part) for part in re.split(r"<br[^>]*>", label)]
    return lines


def test_a_long_folded_run_is_written_run_by_run():
    """`linear 8 + relu + relu + ...` of 99,999 ops made a label `dot` refused (exit 2)."""
    import html

    from netdsl.render import MAX_LABEL, diagram

    net = netdsl.loads("net n { input 8 linear(8) " + "relu " * 5000 + "sigmoid }")
    lines = _labels(diagram(net))
    assert "linear 8 + relu ×5,000 + sigmoid" in lines
    assert max(len(html.unescape(line)) for line in lines) <= MAX_LABEL
    short = netdsl.loads("net n { input 8 linear(8) relu relu }")
    assert "linear 8 + relu + relu" in _labels(diagram(short))  # short runs as they were


def test_block_titles_and_names_in_diagrams_are_shortened():
    """A block call of 40,000 arguments was one label of 300 KB, which `dot` refused."""
    import html

    from netdsl.render import MAX_LABEL, diagram, save

    n = 3000
    text = ("block b(" + ", ".join(f"p{i}" for i in range(n)) + ") { relu }\nnet n { input 8 b("
            + ", ".join(map(str, range(n))) + ") " + "x" * 900 + ": relu }")
    net = netdsl.loads(text)
    for depth in (1, None):
        dot = diagram(net, depth=depth)
        lines = [html.unescape(line) for line in _labels(dot)]
        assert max(len(line) for line in lines) <= 2 * MAX_LABEL + 2  # a frame's: its name, then its title
        assert all(len(line) <= 4 * MAX_LABEL for line in re.findall(r'tooltip="(.*?)"', dot.source))
    assert any(line.startswith("b(0, 1, 2, 3") and line.endswith("…") for line in
               (html.unescape(x) for x in _labels(diagram(net))))
    import shutil
    import tempfile
    from pathlib import Path

    if shutil.which("dot"):
        with tempfile.TemporaryDirectory() as tmp:
            save(diagram(net), Path(tmp) / "n.svg")  # dot draws it


def test_a_diagram_of_many_frames_is_refused_before_dot():
    """100,000 layers 97 blocks deep, expanded, were 99 boxes in 9,603 nested frames: 7 s, past
    the budget. Frames are bounded as boxes are."""
    from netdsl.render import DiagramTooLarge, diagram

    text = ("".join(f"block b{i} {{ b{i + 1} }}\n" for i in range(49)) + "block b49 { relu }\n"
            "net n { input 8 repeat 50 { b0 } }")
    net = netdsl.loads(text)
    with pytest.raises(DiagramTooLarge) as err:
        diagram(net, depth=None, max_nodes=2000)
    assert err.value.frames == 2500 and str(err.value).startswith(
        "the diagram has 52 boxes in 2,500 frames, over the limit of 2,000 frames")
    assert "--max-nodes 2500 " in str(err.value)
    assert diagram(net, depth=None, max_nodes=2500).source  # within the limit: drawn
    assert diagram(net, depth=1, max_nodes=2000).source  # folded: no frame
