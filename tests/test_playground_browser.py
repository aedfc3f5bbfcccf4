"""The playground end to end in headless Chromium, driven by Playwright: typing a mistake shows
the lint squiggle and a red box in the diagram, fixing it clears both, moving the cursor shows
a layer's numbers, and Ctrl-S writes the file.

Needs Debian's `chromium` (apt-get install chromium; ./dev setup installs it) and Playwright
(pyproject's `test` extra); skipped with a message where either is missing, and where
Graphviz's dot is (the diagram is its SVG)."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from conftest import NETS
from netdsl import serve

CHROMIUM = os.environ.get("NETDSL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"Chromium is not installed ({CHROMIUM}; apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
if shutil.which("dot") is None:
    pytest.skip("Graphviz's dot is not installed: the diagram needs it", allow_module_level=True)

LENET = (NETS / "lenet5.net").read_text(encoding="utf-8")
RED = '#diagram svg [stroke="#cc2222"]'  # render.PALETTE["error"]: the failing layer's border
SQUIGGLE = ".cm-lintRange-error"
TIMEOUT = 15_000  # ms: a check takes tens of milliseconds; this is for a slow, shared machine


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as e:  # a Chromium that cannot start here (a missing library, say)
            pytest.skip(f"Chromium does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture
def playground(tmp_path):
    path = tmp_path / "lenet5.net"
    path.write_text(LENET, encoding="utf-8")
    s = serve.make_server(path, "127.0.0.1", 0)
    threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield s, path
    s.shutdown()
    s.server_close()


def put_cursor(page, line: int, column: int) -> None:
    """The cursor at 0-based `line` and `column` (ASCII text), the editor focused: the keys
    typed next go there as a user's would."""
    page.evaluate("""([line, column]) => {
        const view = window.netdslPlayground.view;
        view.dispatch({ selection: { anchor: view.state.doc.line(line + 1).from + column } });
        view.focus();
    }""", [line, column])


def test_typing_a_mistake_fixing_it_and_saving(browser, playground):
    server, path = playground
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    requests_elsewhere = []
    page.on("request", lambda r: requests_elsewhere.append(r.url) if not r.url.startswith(server.url) else None)
    page.goto(server.url)

    # the file is loaded and checked: a diagram without red, a summary, no squiggle
    page.wait_for_selector("#diagram svg", timeout=TIMEOUT)
    page.wait_for_selector("#summary tbody tr", timeout=TIMEOUT)
    assert page.locator(RED).count() == 0 and page.locator(SQUIGGLE).count() == 0
    assert page.locator("#verdict").inner_text() == "ok: lenet5"
    assert page.locator("#summary tbody tr").first.inner_text().split("\t")[0] == "conv1"

    # type a mistake: `conv2: conv(16, 5)` becomes `conv2: cnov(16, 5)`
    line = next(i for i, t in enumerate(LENET.splitlines()) if "conv2: conv(16, 5)" in t)
    put_cursor(page, line, LENET.splitlines()[line].index("conv(") + 1)
    page.keyboard.press("Delete")
    page.keyboard.press("Delete")
    page.keyboard.type("no")
    page.wait_for_selector(SQUIGGLE, timeout=TIMEOUT)
    page.wait_for_selector(RED, timeout=TIMEOUT)
    assert page.locator(SQUIGGLE).first.inner_text() == "cnov"
    assert "error" in page.locator("#verdict").inner_text()
    # hovering the squiggle shows the code and the message
    page.hover(SQUIGGLE)
    tip = page.wait_for_selector(".cm-tooltip-lint", timeout=TIMEOUT)
    assert "E201" in tip.inner_text() and "unknown op `cnov`" in tip.inner_text()
    page.mouse.move(0, 0)
    assert "unsaved" in page.locator("#saved").inner_text()

    # fix it, by typing: both go away
    put_cursor(page, line, LENET.splitlines()[line].index("conv(") + 1)
    page.keyboard.press("Delete")
    page.keyboard.press("Delete")
    page.keyboard.type("on")
    page.wait_for_selector(SQUIGGLE, state="detached", timeout=TIMEOUT)
    expect(page.locator(RED)).to_have_count(0, timeout=TIMEOUT)
    expect(page.locator("#verdict")).to_have_text("ok: lenet5", timeout=TIMEOUT)
    assert page.locator("#diagram svg").count() == 1

    # the cursor's layer: put it on conv1's line
    first = next(i for i, t in enumerate(LENET.splitlines()) if "conv1:" in t)
    put_cursor(page, first, LENET.splitlines()[first].index("conv(") + 2)
    expect(page.locator("#layer .name")).to_have_text("conv1", timeout=TIMEOUT)
    assert "156" in page.locator("#layer").inner_text()  # 6·1·5·5 + 6 parameters
    expect(page.locator("#summary tr.current")).to_have_attribute("data-name", "conv1")
    expect(page.locator("#diagram g.node.current title")).to_have_text("conv1")
    # on the next layer's label (`pool1:`, before its span): that layer
    pool = next(i for i, t in enumerate(LENET.splitlines()) if "pool1:" in t)
    put_cursor(page, pool, LENET.splitlines()[pool].index("pool1") + 1)
    expect(page.locator("#layer .name")).to_have_text("pool1", timeout=TIMEOUT)
    put_cursor(page, first, LENET.splitlines()[first].index("conv(") + 2)

    # an edit, saved with Ctrl-S, is in the file
    page.keyboard.press("End")
    page.keyboard.type("  # edited in the playground")
    page.keyboard.press("Control+s")
    expect(page.locator("#saved")).to_have_text("saved", timeout=TIMEOUT)
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[first].endswith("  # edited in the playground")
    assert text.replace("  # edited in the playground", "") == LENET
    assert errors == [] and requests_elsewhere == []
    page.close()
