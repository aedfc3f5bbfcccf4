"""Figures for papers (netdsl/render.py, `netdsl render --dpi --font-size --fit --legend`): the
PNG's resolution read back from its header, a fitted diagram within its size and its text as
large as promised, the chain wrapped into columns side by side, the legend's entries, the main
line drawn straight, and the README's pictures current (docs/figures.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

import netdsl
from conftest import ROOT
from netdsl.render import BASE_FONT, figure, parse_fit, png_with_dpi, save, with_font_size

SVG = "{http://www.w3.org/2000/svg}"
GOOGLENET = ROOT / "nets" / "googlenet.net"


@pytest.fixture(scope="module")
def googlenet():
    return netdsl.load(GOOGLENET)


def _centres(svg: bytes | str) -> dict[str, tuple[float, float]]:
    """Each node's centre in the SVG's coordinates (the middle of its shape's points)."""
    out = {}
    for g in ET.fromstring(svg).iter(SVG + "g"):
        if g.get("class") != "node":
            continue
        xs, ys = [], []
        for shape in g.iter():
            if shape.tag in (SVG + "polygon", SVG + "path"):
                nums = [float(v) for v in re.findall(r"-?\d+\.?\d*", shape.get("points") or shape.get("d") or "")]
                xs += nums[0::2]
                ys += nums[1::2]
            elif shape.tag == SVG + "ellipse":
                xs.append(float(shape.get("cx")))
                ys.append(float(shape.get("cy")))
        if xs:
            out[g.findtext(SVG + "title")] = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    return out


def test_png_dpi_is_written_and_read_back(googlenet, tmp_path):
    sizes = {}
    for dpi in (None, 72, 288):
        path = save(googlenet.to_dot(1), tmp_path / f"g{dpi}.png", dpi=dpi)
        with Image.open(path) as im:
            sizes[dpi] = im.size
            assert im.info["dpi"] == pytest.approx((dpi or 144, dpi or 144), abs=0.05)
    # the pixels follow the resolution: 4 times the dpi, 4 times the width (to a pixel or two)
    assert sizes[288][0] == pytest.approx(4 * sizes[72][0], abs=4)
    assert sizes[None][0] == pytest.approx(2 * sizes[72][0], abs=4)


def test_png_with_dpi_leaves_a_png_that_has_one_alone():
    data = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + bytes(13) + bytes(4)
    once = png_with_dpi(data, 100)
    assert b"pHYs" in once and png_with_dpi(once, 300) == once
    assert png_with_dpi(b"not a png", 100) == b"not a png"


def test_font_size_scales_every_text(googlenet):
    dot = with_font_size(googlenet.to_dot(1), 22)
    assert dot.node_attr["fontsize"] == "22" and dot.edge_attr["fontsize"] == "18"
    assert dot.graph_attr["fontsize"] == "28"
    assert 'point-size="18"' in dot.source and 'point-size="9"' not in dot.source
    assert googlenet.to_dot(1).node_attr["fontsize"] == "11"  # a copy: the original is as it was
    with pytest.raises(ValueError):
        with_font_size(googlenet.to_dot(1), 0)


@pytest.mark.parametrize("text, size", [("page", (6.5, 9.0)), ("column", (3.3, 9.0)), ("6.5x9", (6.5, 9.0)),
                                        ("3.3 x 4.5in", (3.3, 4.5)), ("7×5", (7.0, 5.0))])
def test_fit_sizes(text, size):
    assert parse_fit(text) == size


@pytest.mark.parametrize("text", ["", "a4", "3x", "0x4", "-1x2", "1e9x2"])
def test_fit_refuses_what_is_no_size(text):
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_fit(text)


def test_googlenet_fitted_to_a_page_has_readable_text(googlenet):
    """The issue's goal: GoogLeNet at depth 1 on a 6.5 x 9 in page with its text at 7 pt or
    more (unfitted it is 23 in tall: 4 pt on a page). The chain wraps into 2 columns."""
    fitted = figure(lambda k: googlenet.to_dot(1, columns=k, legend=True), fit_to=parse_fit("page"))
    assert fitted.columns == 2
    assert BASE_FONT * fitted.scale >= 7.0, fitted.scale
    svg = fitted.dot.pipe(format="svg").decode()
    root = ET.fromstring(svg)
    width, height = (float(root.get(k).removesuffix("pt")) for k in ("width", "height"))
    assert width <= 6.5 * 72 + 1 and height <= 9 * 72 + 1, (width, height)
    # dot drew it at the scale fit() measured
    scale = float(re.search(r"scale\(([\d.]+)", svg).group(1))
    assert scale == pytest.approx(fitted.scale, rel=0.03)
    # the same input, the same figure
    again = figure(lambda k: googlenet.to_dot(1, columns=k, legend=True), fit_to=parse_fit("page"))
    assert again.dot.source == fitted.dot.source


def test_columns_stand_side_by_side_with_every_box(googlenet):
    one, two = googlenet.to_dot(1), googlenet.to_dot(1, columns=2)
    c1, c2 = _centres(one.pipe(format="svg")), _centres(two.pipe(format="svg"))
    assert set(c1) == set(c2)  # the same boxes
    heads = [n for n in c2 if abs(c2[n][1] - c2["input"][1]) < 1 and n != "input"]
    assert heads, "the second column's head is on the input's rank"
    head = heads[0]
    assert c2[head][0] > c2["input"][0] + 50  # to the right of the first column
    assert c2["fc"][1] > c2[head][1]  # the chain goes on down the second column
    # the edge from the foot of the first column to the head of the next does not rank them
    assert 'constraint=false' in next(line for line in two.body if f"-> {head} " in line)


def test_a_short_chain_or_a_fit_that_needs_no_shrinking_stays_one_column():
    net = netdsl.load(ROOT / "nets" / "lenet5.net")
    fitted = figure(lambda k: net.to_dot(1, columns=k), fit_to=(40.0, 40.0))
    assert fitted.columns == 1 and fitted.scale == 1.0
    single = netdsl.loads("net one { input 3x8x8 conv(4, 3) }")
    assert single.to_dot(1, columns=4).source.count("rank=same") == 0


def test_legend_lists_the_kinds_the_diagram_uses(googlenet):
    svg = googlenet.to_dot(1, legend=True).pipe(format="svg").decode()
    texts = [t.text for t in ET.fromstring(svg).iter(SVG + "text")]
    for kind in ("input", "convolution", "pooling", "normalisation", "dense", "reshape", "block"):
        assert kind in texts, kind
    assert "activation" not in texts and "join" not in texts  # folded, or inside the blocks
    expanded = googlenet.to_dot(None, legend=True).source
    assert ">join<" in expanded and ">block<" not in expanded
    assert "legend" not in googlenet.to_dot(1).source and ">pooling<" not in googlenet.to_dot(1).source


def test_the_expanded_main_line_is_straight(googlenet):
    """Expanded, the boxes between the blocks (pool2, each concat, pool3, ...) are on one
    vertical line: the diagram does not drift to the right."""
    centres = _centres(googlenet.to_dot(None).pipe(format="svg"))
    line = ["input", "pool2", "inception3a.concat1", "inception3b.concat1", "pool3", "inception4a.concat1",
            "inception4e.concat1", "pool4", "inception5b.concat1", "avgpool"]
    xs = [centres[n][0] for n in line]
    assert max(xs) - min(xs) < 2, dict(zip(line, xs))


def test_render_cli_figure_options(tmp_path):
    out = tmp_path / "g.png"
    done = subprocess.run([sys.executable, "-m", "netdsl", "render", str(GOOGLENET), "--fit", "page", "--legend",
                           "--dpi", "200", "--font-size", "10", "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fitted to 6.5x9 in: 2 columns" in done.stdout
    with Image.open(out) as im:
        assert im.info["dpi"] == pytest.approx((200, 200), abs=0.05)
        assert im.size[0] <= 6.5 * 200 + 2 and im.size[1] <= 9 * 200 + 2
    for bad in (["--fit", "huge"], ["--font-size", "0"], ["--dpi", "0"]):
        done = subprocess.run([sys.executable, "-m", "netdsl", "render", str(GOOGLENET), *bad, "-o",
                               str(tmp_path / "x.svg")], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


def test_the_readme_figures_are_current(tmp_path):
    """docs/figures.py draws the README's pictures; the committed ones are what it draws (where
    Graphviz is the version that drew them)."""
    sys.path.insert(0, str(ROOT / "docs"))
    import figures

    if figures.graphviz_version() != figures.committed_version():
        pytest.skip(f"Graphviz {figures.graphviz_version()} here; the figures were drawn by "
                    f"{figures.committed_version()}")
    assert figures.stale(tmp_path) == [], "run: .venv/bin/python docs/figures.py --write"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for fig in figures.FIGURES:
        assert f"docs/{fig.name}" in readme, fig.name
