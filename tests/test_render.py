"""Diagrams (netdsl/render.py): every bundled net through the real Graphviz `dot`, the boxes a
depth gives, golden DOT files, failing nets drawn up to their errors, and `netdsl render`.

The golden files in tests/golden/ are the exact DOT text of a few diagrams. After a deliberate
change to the drawing, regenerate them and look at the difference before committing:

    NETDSL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render.py -k golden
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import netdsl
from conftest import ROOT, net_files
from test_language import chains
from netdsl.render import GraphvizMissing, failure_diagram, fmt_count, save

GOLDEN = Path(__file__).parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"


def svg_groups(svg: bytes | str) -> dict[str, list[ET.Element]]:
    """The SVG's node and cluster groups (dot writes one <g class="node|cluster"> each)."""
    root = ET.fromstring(svg)
    groups: dict[str, list[ET.Element]] = {"node": [], "cluster": []}
    for g in root.iter(SVG + "g"):
        if g.get("class") in groups:
            groups[g.get("class")].append(g)
    return groups


def svg_node(svg: bytes | str, title: str) -> ET.Element:
    return next(g for g in svg_groups(svg)["node"] if g.findtext(SVG + "title") == title)


def node_text(g: ET.Element) -> str:
    return " ".join(t.text or "" for t in g.iter(SVG + "text"))


def failure(text: str) -> netdsl.NetDSLError:
    with pytest.raises(netdsl.NetDSLError) as info:
        netdsl.loads(text, "bad.net")
    return info.value


# --- every net, every depth --------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 2, None], ids=["depth1", "depth2", "expand"])
@pytest.mark.parametrize("path", net_files(), ids=lambda p: p.name)
def test_every_net_renders_one_box_per_summary_row(path, depth):
    """Unfolded, the boxes are the summary's rows at that depth (a split's parts one mark: see
    `boxed`), plus the input and an arrow end per output; each scope holding a box is a cluster."""
    net = netdsl.load(path)
    svg = net.to_dot(depth, fold_activations=False).pipe(format="svg")
    groups = svg_groups(svg)
    rows = [row[0] for row in net.summary().rows(depth)]
    assert len(groups["node"]) == len(boxed(net, rows)) + 1 + len(net.outputs)
    open_scopes = {".".join(r.split(".")[:i]) for r in rows for i in range(1, r.count("."))} | \
        {r.rsplit(".", 1)[0] for r in rows if "." in r}
    assert len(groups["cluster"]) == len(open_scopes & set(net.scopes))
    titles = {g.findtext(SVG + "title") for g in groups["node"]}
    assert set(boxed(net, rows)) <= titles


def boxed(net: netdsl.Network, rows: list[str]) -> list[str]:
    """The summary rows that have a box of their own: all but the second and later parts of a
    split. A `split` join puts its parts (the `chunk` layers, one per branch) before its
    branches, as rows of their own; a diagram draws them as one `split` mark at the fork, under
    the first part's name, each branch's edge leaving it (README: "one `split` mark at the
    fork"). The parts of one split are the chunk rows with the same input and the same span."""
    forks, out = set(), []
    for name in rows:
        layer = net.layer(name) if name in net.layers else None
        if layer is not None and layer.op_name == "chunk":
            fork = (tuple(i.name for i in layer.inputs), layer.span)
            if fork in forks:
                continue
            forks.add(fork)
        out.append(name)
    return out


def dot_boxes(dot: str) -> list[str]:
    """The ids of the boxes in DOT text (not the output arrows' ends)."""
    ids = re.findall(r'^\t+("(?:[^"\\]|\\.)*"|[\w.]+) \[label=', dot, re.M)
    return [i.strip('"') for i in ids if not i.startswith(('"output ', '"space '))]  # not arrow ends, title spacers


SCOPED = [  # every kind of scope, labelled and not
    "net s { input 8x8x8 j: concat { conv(4, 1) | conv(4, 1) relu } k: add { identity | conv(8, 1) } "
    "r: repeat 2 { conv(8, 1) relu } g: { relu dropout } concat { relu | relu } "
    "aux: train head { flatten linear(3) } h: head from j { flatten } }",
    "block b(c) { a: add { identity | conv(c, 3, pad=1) } relu } block s(c) { repeat 2 { b(c) } maxpool(2) }\n"
    "net t { input 4x8x8 s1: s(4) l: repeat 2 { b(4) s(4) } head from s1 { flatten } }",
    # splits, labelled and not, of two and three parts, one inside a block: each one mark at the fork
    "block u { split { identity | conv(4, 1) relu }  channel_shuffle(2) }\n"
    "net p { input 8x8x8 sp: split { identity | conv(4, 1) } u  split(2, 2, 4) { relu | identity | conv(4, 1) } "
    "r: repeat 2 { u } }",
    # names that match PyTorch: seqs (numbered), inline joins (no branch scopes), quoted labels
    "block b(c) { add inline { conv1: conv(c, 1) bn1: batchnorm | if c != in_channels { d: seq { conv(c, 1) } } } "
    "relu }\nnet q { input 4x8x8 s: seq { conv(4, 1) relu 2: b(8) b(8) } "
    "x: concat inline { a: relu | e: seq { conv(4, 1) relu } } seq { relu } "
    "\"blk-0#\": seq { add inline { relu | identity } } }",
]


@pytest.mark.parametrize("text", SCOPED)
@pytest.mark.parametrize("depth", [1, 2, 3, None])
def test_boxes_are_the_summary_rows_for_every_kind_of_scope(text, depth):
    net = netdsl.loads(text)
    rows = [row[0] for row in net.summary().rows(depth)]
    assert dot_boxes(net.to_dot(depth, fold_activations=False).source) == ["input"] + boxed(net, rows)
    ET.fromstring(net.to_dot(depth, fold_repeats=True).pipe(format="svg"))  # and dot draws it


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=chains(), depth=st.sampled_from([1, 2, 3, None]))
def test_generated_nets_draw_one_box_per_summary_row(body, depth):
    net = netdsl.loads(f"net g {{ input 3x8x8 {body} }}")
    rows = [row[0] for row in net.summary().rows(depth)]
    assert dot_boxes(net.to_dot(depth, fold_activations=False).source) == ["input"] + boxed(net, rows)
    folded = dot_boxes(net.to_dot(depth, fold_repeats=True).source)
    assert folded[0] == "input" and set(folded) <= {"input"} | set(rows)


def test_googlenet_at_each_depth():
    """Depth 1: the input, 7 stem boxes (relus folded), 9 Inception blocks, pools 3 and 4, two
    auxiliary heads, avgpool (dropout folded), flatten and fc, and 3 output ends = 27 boxes, no
    clusters. Depth 2 opens the 9 blocks and 2 heads (11 clusters), each block showing its 4
    branches and its concat. Expanded, the branches are clusters too (9 x 4 more)."""
    net = netdsl.load(ROOT / "nets/googlenet.net")
    counts = {}
    for depth in (1, 2, None):
        groups = svg_groups(net.to_dot(depth).pipe(format="svg"))
        counts[depth] = (len(groups["node"]), len(groups["cluster"]))
    assert counts == {1: (27, 0), 2: (71, 11), None: (98, 47)}


def test_a_rolled_up_block_shows_name_title_shape_and_params():
    net = netdsl.load(ROOT / "nets/googlenet.net")
    svg = net.to_dot(1).pipe(format="svg")
    assert node_text(svg_node(svg, "inception3a")) == \
        "inception3a inception(64, 96, 128, 16, 32, 32) 256×28×28 · 164K params"
    assert node_text(svg_node(svg, "conv1")) == "conv1 conv 64 7×7/2 + relu 9.47K params"
    # every edge carries its tensor's shape
    edges = [g for g in ET.fromstring(svg).iter(SVG + "g") if g.get("class") == "edge"]
    pool2_in = next(e for e in edges if e.findtext(SVG + "title") == "pool2->inception3a")
    assert node_text(pool2_in).strip() == "192×28×28"


def test_training_heads_are_dashed_and_branches_side_by_side():
    net = netdsl.load(ROOT / "nets/googlenet.net")
    dot = net.to_dot(None).source
    frame = dot[dot.index("subgraph cluster_aux1 {"):].split("\n")[1]  # its graph [...] line
    assert "dashed" in frame and "auxiliary(1000)" in frame
    boxed = net.to_dot(1).source
    assert "dashed" in next(line for line in boxed.splitlines() if line.strip().startswith("aux1 ["))
    assert "dashed" not in next(line for line in boxed.splitlines() if line.strip().startswith("inception4a ["))
    svg = net.to_dot(None).pipe(format="svg")
    ys = {n: _centre(svg_node(svg, f"inception3a.branch{n}.{first}"))[1]
          for n, first in ((1, "conv1"), (2, "conv1"), (3, "conv1"), (4, "maxpool1"))}
    assert len(set(ys.values())) == 1, ys  # one rank
    xs = sorted(_centre(svg_node(svg, f"inception3a.branch{n}.conv1"))[0] for n in (1, 2, 3))
    assert xs[0] < xs[1] < xs[2]


def _centre(g: ET.Element) -> tuple[float, float]:
    """The middle of a node's outline (dot draws a rounded box as a path, a plain one as a polygon)."""
    shape = next(e for e in g.iter() if e.tag in (SVG + "path", SVG + "polygon"))
    numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", shape.get("d") or shape.get("points"))]
    xs, ys = numbers[0::2], numbers[1::2]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


def test_repeats_fold_and_collapse():
    text = """
    block basic(c) { add { identity | conv(c, 3, pad=1) relu conv(c, 3, pad=1) } relu }
    net r { input 8x16x16
        layer1: repeat 3 { basic(8) }
        repeat 2 { conv(8, 3, pad=1) relu }
        head { flatten linear(10) } }
    """
    net = netdsl.loads(text)
    collapsed = net.to_dot(1).source
    assert "<b>layer1 × 3</b><br/>basic(8)<br/>" in collapsed
    folded = net.to_dot(2, fold_repeats=True)
    svg = folded.pipe(format="svg")
    assert "passes 1–3 basic(8) × 3" in node_text(svg_node(svg, "layer1.1"))
    assert "conv 8 3×3 + relu × 2" in node_text(svg_node(svg, "conv1"))
    assert "layer1.2" not in folded.source  # drawn once
    # without folding, each pass is a box
    assert all(f'"layer1.{i}"' in net.to_dot(2).source for i in (1, 2, 3))


def test_a_repeat_that_holds_more_than_block_calls_is_not_titled_by_them():
    net = netdsl.loads("block blk(c) { conv(c, 1) }\n"
                       "net t { input 4x8x8  m: repeat 2 { blk(4) conv(8, 3, pad=1) }  n: repeat 2 { blk(8) } }")
    source = net.to_dot(1).source
    assert "<b>m × 2</b><br/><font" in source  # no title: `blk(4)` alone would hide the conv
    assert "<b>n × 2</b><br/>blk(8)<br/>" in source


def test_identical_block_instances_fold():
    net = netdsl.load(ROOT / "nets/vgg16.net")
    svg = net.to_dot(None, fold_repeats=True).pipe(format="svg")
    assert "conv 256 3×3 + relu × 3" in node_text(svg_node(svg, "stage3.conv1"))
    assert "fc6–fc7" in node_text(svg_node(svg, "fc6"))


# --- nets that fail their check ----------------------------------------------------------

def test_a_failing_net_is_drawn_up_to_the_failure():
    e = failure("net bad { input 3x32x32\n c1: conv(16, 3) relu\n c2: conv(8, 3, strid=2)\n"
                " p: maxpool(40)\n fc: linear(10) }")
    svg = failure_diagram(e, depth=None).pipe(format="svg")
    bad = svg_node(svg, "c2")
    assert "E301" in node_text(bad) and "conv(8, 3, strid=2)" in node_text(bad)
    assert any(p.get("stroke") == "#cc2222" for p in bad.iter() if p.get("stroke"))
    # the layers after it are there, unchecked, in grey
    after = svg_node(svg, "p")
    assert all(t.get("fill") == "#999999" for t in after.iter(SVG + "text"))
    ok = svg_node(svg, "c1")
    assert "448 params" in node_text(ok)


def test_a_shape_error_marks_the_layer_and_its_input_edge():
    e = failure("net bad { input 3x32x32\n c1: conv(16, 3)\n fc: linear(10) }")
    dot = failure_diagram(e, depth=None).source
    fc = next(line for line in dot.splitlines() if line.strip().startswith("fc "))
    assert "#cc2222" in fc and "E404" in fc
    edge = next(line for line in dot.splitlines() if line.strip().startswith("c1 -> fc"))
    assert "#cc2222" in edge and "16×30×30" in edge


def test_errors_about_no_layer_go_in_the_title():
    e = failure("net bad(n = 2) { input 3x8x8\n c: conv(8, 3)\n c: relu }")
    dot = failure_diagram(e).source
    assert "E203" in dot.split("node [", 1)[0]  # in the graph label


def test_a_net_over_the_layer_limit_is_drawn_up_to_the_limit():
    with pytest.raises(netdsl.NetDSLError) as info:
        netdsl.load(ROOT / "nets/googlenet.net", max_layers=20)
    dot = failure_diagram(info.value).source
    assert "E407: the net has more than 20 layers" in dot.split("node [", 1)[0]
    assert dot_boxes(dot) == ["input", "conv1", "pool1", "lrn1", "conv2_reduce", "conv2", "lrn2", "pool2",
                              "inception3a"]
    # the block was cut short: its parameters so far, and no output shape
    assert "inception(64, 96, 128, 16, 32, 32)<br/><font point-size=\"9\" color=\"#555555\">158K params<" in dot


def test_nothing_to_draw_after_a_syntax_error():
    assert failure_diagram(failure("net bad { input 3x8x8 conv(8 3) }")) is None


# --- golden DOT --------------------------------------------------------------------------

def _mistakes():
    return failure_diagram(failure((ROOT / "examples/mistakes.net").read_text()), depth=None)


GOLDEN_CASES = {
    "lenet5.gv": lambda: netdsl.load(ROOT / "nets/lenet5.net").to_dot(),
    "googlenet_depth1.gv": lambda: netdsl.load(ROOT / "nets/googlenet.net").to_dot(1),
    "googlenet_expanded.gv": lambda: netdsl.load(ROOT / "nets/googlenet.net").to_dot(None),
    "vgg16_folded_lr.gv": lambda: netdsl.load(ROOT / "nets/vgg16.net").to_dot(None, "LR", fold_repeats=True),
    "mistakes_expanded.gv": _mistakes,
}


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_dot(name):
    dot = GOLDEN_CASES[name]().source
    path = GOLDEN / name
    if os.environ.get("NETDSL_UPDATE_GOLDEN"):
        path.write_text(dot, encoding="utf-8")
    assert dot == path.read_text(encoding="utf-8"), f"regenerate with NETDSL_UPDATE_GOLDEN=1 ({path})"
    assert dot == GOLDEN_CASES[name]().source  # deterministic within a process too


def test_dot_is_the_same_in_a_fresh_process():
    code = "import netdsl; print(netdsl.load('nets/googlenet.net').to_dot(None).source, end='')"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert p.stdout == (GOLDEN / "googlenet_expanded.gv").read_text(encoding="utf-8")


# --- files -------------------------------------------------------------------------------

def test_png_and_pdf_are_valid_files(tmp_path):
    net = netdsl.load(ROOT / "nets/googlenet.net")
    png = net.render(tmp_path / "g.png")
    with Image.open(png) as im:
        im.verify()
        assert im.format == "PNG" and im.size[1] > 1000
    pdf = net.render(tmp_path / "g.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and b"/Type /Page" in pdf
    gv = net.render(tmp_path / "g.gv").read_text()
    assert gv == net.to_dot().source
    with pytest.raises(ValueError, match="name it .svg"):
        net.render(tmp_path / "g.jpeg")


def test_repr_svg_for_notebooks():
    net = netdsl.load(ROOT / "nets/lenet5.net")
    svg = net._repr_svg_()
    assert svg is not None and "conv 6 5×5 + sigmoid" in svg
    ET.fromstring(svg)


def test_save_without_dot_writes_the_dot_text(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot there
    net = netdsl.load(ROOT / "nets/lenet5.net")
    with pytest.raises(GraphvizMissing) as info:
        save(net.to_dot(), tmp_path / "x.svg")
    assert info.value.dot_path == tmp_path / "x.gv"
    assert (tmp_path / "x.gv").read_text() == net.to_dot().source
    assert net._repr_svg_() is None


@pytest.mark.parametrize("n, text", [(0, "0"), (156, "156"), (999, "999"), (9472, "9.47K"), (61706, "61.7K"),
                                     (163696, "164K"), (999_499, "999K"), (999_500, "1.00M"),
                                     (6998552, "7.00M"), (138357544, "138M")])
def test_counts_in_three_figures(n, text):
    assert fmt_count(n) == text


# --- the command -------------------------------------------------------------------------

def test_render_writes_net_svg_in_the_current_folder(run_cli, tmp_path):
    p = run_cli("render", ROOT / "nets/googlenet.net", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "wrote googlenet.svg\n"
    groups = svg_groups((tmp_path / "googlenet.svg").read_bytes())
    assert len(groups["node"]) == 27


@pytest.mark.parametrize("ext, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("gv", b"digraph")])
def test_render_format_follows_the_extension(run_cli, tmp_path, ext, magic):
    out = tmp_path / f"out.{ext}"
    p = run_cli("render", "nets/lenet5.net", "-o", out, "--rankdir", "LR", "--expand")
    assert p.returncode == 0, p.stderr
    assert out.read_bytes().startswith(magic)


def test_render_of_a_failing_net_exits_1_and_still_writes(run_cli, tmp_path):
    out = tmp_path / "m.svg"
    p = run_cli("render", "examples/mistakes.net", "-o", out, "--expand")
    assert p.returncode == 1
    assert "error[E402]" in p.stderr and "3 errors in examples/mistakes.net" in p.stderr
    assert p.stdout == f"wrote {out} (drawn up to the errors)\n"
    assert "E402" in node_text(svg_node(out.read_bytes(), "aux.mixed1.concat1"))


def test_render_after_a_syntax_error_writes_nothing(run_cli, tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("net bad { input 3x8x8 conv(8 3) }")
    p = run_cli("render", bad, cwd=tmp_path)
    assert p.returncode == 1 and "error[E100]" in p.stderr and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize("args", [("-o", "x.jpg"), ("--rankdir", "BT"), ("--depth", "0"), ("--set", "clases=3"),
                                  ("--depth", "2", "--expand")])
def test_render_usage_errors_exit_2(run_cli, tmp_path, args):
    p = run_cli("render", ROOT / "nets/lenet5.net", *args, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_render_without_graphviz_says_how_to_install_it(tmp_path):
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not (Path(d) / "dot").exists())
    p = subprocess.run([sys.executable, "-m", "netdsl", "render", str(ROOT / "nets/lenet5.net"), "-o", "l.png"],
                       cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PATH": path})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("netdsl: error: Graphviz's dot program is not installed; the DOT source is in l.gv "
                        "(install Graphviz: apt-get install graphviz / brew install graphviz)\n")
    assert (tmp_path / "l.gv").read_text().startswith("digraph lenet5 {")


@pytest.mark.parametrize("svg, make", [
    ("googlenet.svg", lambda: netdsl.load(ROOT / "nets/googlenet.net").to_dot(1)),
    ("googlenet-expanded.svg", lambda: netdsl.load(ROOT / "nets/googlenet.net").to_dot(None)),
    ("mistakes.svg", _mistakes),
])
def test_the_readme_pictures_are_current(svg, make):
    """docs/*.svg show what render draws now: the same boxes (the SVG itself depends on the
    Graphviz version, so only its node ids are compared). Regenerate: see README, Diagrams."""
    shown = {g.findtext(SVG + "title") for g in svg_groups((ROOT / "docs" / svg).read_bytes())["node"]}
    drawn = {g.findtext(SVG + "title") for g in svg_groups(make().pipe(format="svg"))["node"]}
    assert shown == drawn


def test_render_when_dot_fails_says_why(tmp_path):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'dot: out of memory' >&2\nexit 3\n")
    fake.chmod(0o755)
    p = subprocess.run([sys.executable, "-m", "netdsl", "render", str(ROOT / "nets/lenet5.net")], cwd=tmp_path,
                       capture_output=True, text=True, env={**os.environ, "PATH": f"{fake.parent}{os.pathsep}/bin"})
    assert p.returncode == 2
    assert p.stderr == "netdsl: error: Graphviz's dot failed (exit 3): dot: out of memory\n"


def test_a_huge_diagram_is_refused_before_its_dot_is_written(run_cli, tmp_path):
    """9,000 boxes: writing their DOT alone took 9 s; the refusal comes once the boxes are counted."""
    from netdsl.render import DiagramTooLarge

    path = tmp_path / "big.net"
    path.write_text("net big { input 3x8x8 r: repeat 3000 { concat { relu | relu } } }\n")
    start = time.perf_counter()
    p = run_cli("render", path, "--expand", "-o", tmp_path / "big.svg")
    assert p.returncode == 2 and "9,002 boxes" in p.stderr and "--max-nodes 9002 " in p.stderr, p.stderr
    assert time.perf_counter() - start < 5 and not (tmp_path / "big.svg").exists()
    net = netdsl.load(path)
    with pytest.raises(DiagramTooLarge):
        net.render(tmp_path / "big.png", depth=None)
    assert net.to_dot(depth=1, max_nodes=10).source  # at depth 1 the repeat is one box
