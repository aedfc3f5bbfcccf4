"""`netdsl serve`'s HTTP side without a browser: a server on port 0 in a thread, spoken to with
http.client. The check endpoint's answer, the limits on what it accepts, and saving: only the
file it was started with, with fmt's protections, never from another site."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from conftest import NETS, ROOT
from netdsl import cli, serve
from netdsl.limits import DEFAULT_MAX_BYTES

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
LENET = (NETS / "lenet5.net").read_text(encoding="utf-8")
TYPO = LENET.replace("conv2: conv(16, 5)", "conv2: cnov(16, 5)")
assert TYPO != LENET


@pytest.fixture
def server(tmp_path):
    """A playground for a copy of lenet5.net; yields (server, path)."""
    path = tmp_path / "lenet5.net"
    path.write_text(LENET, encoding="utf-8")
    made = []

    def start(file=path, **options):
        s = serve.make_server(file, "127.0.0.1", 0, **options)
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        made.append(s)
        return s
    yield start, path
    for s in made:
        s.shutdown()
        s.server_close()


def request(s, method, url, body=None, headers=None):
    """(status, decoded JSON or text) of one request to server `s`."""
    conn = http.client.HTTPConnection(*s.server_address[:2], timeout=30)
    try:
        conn.request(method, url, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    kind = r.getheader("Content-Type", "")
    return r.status, json.loads(data) if kind.startswith("application/json") else data.decode("utf-8")


def source_of(s):
    status, answer = request(s, "GET", "/api/source")
    assert status == 200
    return answer


SAVE = {"X-Netdsl": "save", "Content-Type": "text/plain; charset=utf-8"}


# --- /api/check ----------------------------------------------------------------------------

@needs_dot
def test_check_answers_the_summary_layers_and_diagram(server):
    start, _ = server
    status, a = request(start(), "POST", "/api/check", LENET.encode())
    assert status == 200 and a["ok"] and a["net"] == "lenet5" and a["diagnostics"] == []
    names = [r[0] for r in a["summary"]["rows"]]
    assert names[:3] == ["conv1", "s1", "pool1"]
    conv1 = a["summary"]["rows"][0]
    assert conv1[3] == 6 * 1 * 5 * 5 + 6 and conv1[2] == "6×28×28"  # params as torch counts them
    assert a["summary"]["totals"]["params"] == sum(r[3] for r in a["summary"]["rows"])
    layer = next(x for x in a["layers"] if x["name"] == "conv2")
    line = LENET.splitlines().index(next(t for t in LENET.splitlines() if "conv2:" in t)) + 1
    assert layer["span"]["line"] == line and layer["params"] == 16 * 6 * 25 + 16
    assert a["svg"].lstrip().startswith("<?xml") and "<svg" in a["svg"] and "#cc2222" not in a["svg"]


@needs_dot
def test_a_mistake_is_a_located_diagnostic_and_a_red_box(server):
    start, _ = server
    status, a = request(start(), "POST", "/api/check", TYPO.encode())
    assert status == 200 and not a["ok"]
    [d] = a["diagnostics"]
    line = next(i for i, t in enumerate(TYPO.splitlines(), 1) if "cnov" in t)
    col = TYPO.splitlines()[line - 1].index("cnov") + 1
    assert (d["code"], d["line"], d["column"], d["end_column"]) == ("E201", line, col, col + 4)
    assert "cnov" in d["message"] and "conv" in d["help"]
    assert "#cc2222" in a["svg"]  # the failing layer, drawn red up to the error
    assert [r[0] for r in a["summary"]["rows"]][:3] == ["conv1", "s1", "pool1"]  # the rows before it


def test_a_syntax_error_draws_nothing_but_is_located(server):
    start, _ = server
    status, a = request(start(), "POST", "/api/check", b"net x {\n  input 3x8x8\n  conv(4, 3\n}\n")
    assert status == 200 and not a["ok"] and a["svg"] is None and a["svg_error"]
    assert a["diagnostics"][0]["code"].startswith("E1") and a["diagnostics"][0]["line"] >= 3


def test_check_source_never_raises_on_junk():
    for text in ["", "\x00\x01", "net {", "net a() { input 0x0 }", "🙂" * 100]:
        answer = serve.check_source(text, diagram=False)
        assert answer["ok"] is False and answer["diagnostics"]
        json.dumps(answer)


def test_depth_opens_the_blocks():
    text = (NETS / "googlenet.net").read_text(encoding="utf-8")
    shallow = serve.check_source(text, depth=1, diagram=False)
    deep = serve.check_source(text, depth=None, diagram=False)
    assert len(deep["summary"]["rows"]) > len(shallow["summary"]["rows"])
    blocks = [x for x in shallow["layers"] if x["kind"] == "block"]
    assert blocks and all(b["span"]["line"] > 0 for b in blocks)


def announce(s, url, length, headers=()):
    """A POST that announces a body of `length` bytes and sends none: the answer comes first."""
    conn = http.client.HTTPConnection(*s.server_address[:2], timeout=10)
    try:
        conn.putrequest("POST", url)
        conn.putheader("Content-Length", str(length))
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_oversized_bodies_are_refused_unread(server):
    start, _ = server
    s = start()
    status, a = announce(s, "/api/check", DEFAULT_MAX_BYTES + 1)
    assert status == 413 and "limit" in a["error"]
    assert announce(s, "/api/check", 10 ** 12)[0] == 413
    # the limit is the source limit: a body of exactly that size is checked
    status, a = request(s, "POST", "/api/check", b"#" * DEFAULT_MAX_BYTES)
    assert status == 200 and a["diagnostics"]


def test_bodies_that_are_not_utf8_or_lack_a_length(server):
    start, _ = server
    s = start()
    assert request(s, "POST", "/api/check", b"\xff\xfe")[0] == 400
    conn = http.client.HTTPConnection(*s.server_address[:2], timeout=10)
    conn.putrequest("POST", "/api/check")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"0\r\n\r\n")
    assert conn.getresponse().status == 411
    conn.close()


def test_page_and_script_are_served_from_the_package(server):
    start, _ = server
    s = start()
    status, page = request(s, "GET", "/")
    assert status == 200 and "/static/playground.js" in page
    status, script = request(s, "GET", "/static/playground.js")
    assert status == 200 and len(script) > 100_000  # CodeMirror, bundled
    import re

    # nothing is fetched from elsewhere: the page's only script is the package's own
    assert re.findall(r'src="([^"]*)"', page) == ["/static/playground.js"] and "http" not in page
    assert not re.search(r'(fetch|import)\(\s*["`\']https?:', script)
    assert request(s, "GET", "/../../etc/passwd")[0] == 404
    assert request(s, "GET", "/static/../serve.py")[0] == 404


def test_another_host_name_is_refused(server):
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1 sends its own Host."""
    start, _ = server
    s = start()
    for method, url in (("GET", "/api/source"), ("POST", "/api/check")):
        status, _ = request(s, method, url, b"" if method == "POST" else None, {"Host": "evil.example"})
        assert status == 421
    port = s.server_address[1]
    assert request(s, "GET", "/api/source", headers={"Host": f"localhost:{port}"})[0] == 200
    assert request(s, "GET", "/api/source", headers={"Host": f"127.0.0.1:{port + 1}"})[0] == 421


# --- /api/source and /api/save ---------------------------------------------------------------

def test_source_is_the_file(server):
    start, path = server
    a = source_of(start())
    assert a == {"file": "lenet5.net", "source": LENET, "saved": True, "can_save": True, "depth": 1}


def test_save_writes_the_file_it_was_given_and_nothing_else(server, tmp_path):
    start, path = server
    s = start()
    source_of(s)
    new = LENET.replace("linear(84)", "linear(85)")
    # no path in the request can redirect the write
    status, a = request(s, "POST", "/api/save?path=/tmp/elsewhere.net&file=x.net", new.encode(), SAVE)
    assert status == 200 and a["saved"]
    assert path.read_text(encoding="utf-8") == new
    assert sorted(os.listdir(tmp_path)) == ["lenet5.net"]


def test_save_needs_the_pages_header_and_origin(server):
    start, path = server
    s = start()
    source_of(s)
    new = LENET + "# changed\n"
    assert request(s, "POST", "/api/save", new.encode())[0] == 403
    port = s.server_address[1]
    evil = {**SAVE, "Origin": "http://evil.example"}
    assert request(s, "POST", "/api/save", new.encode(), evil)[0] == 403
    assert path.read_text(encoding="utf-8") == LENET
    ours = {**SAVE, "Origin": f"http://127.0.0.1:{port}"}
    assert request(s, "POST", "/api/save", new.encode(), ours)[0] == 200
    assert path.read_text(encoding="utf-8") == new


def test_save_refuses_a_file_changed_on_disk_unless_forced(server):
    start, path = server
    s = start()
    source_of(s)
    path.write_text(LENET + "# edited elsewhere\n", encoding="utf-8")
    status, a = request(s, "POST", "/api/save", b"net x {}\n", SAVE)
    assert status == 409 and a["conflict"]
    assert path.read_text(encoding="utf-8").endswith("# edited elsewhere\n")
    status, a = request(s, "POST", "/api/save?force=1", LENET.encode(), SAVE)
    assert status == 200 and path.read_text(encoding="utf-8") == LENET
    # and after a save, the next save is no conflict
    assert request(s, "POST", "/api/save", (LENET + "\n").encode(), SAVE)[0] == 200


def test_save_keeps_links_and_refuses_read_only(server, tmp_path):
    start, path = server
    link = tmp_path / "link.net"
    link.symlink_to(path.name)
    s = start(link)
    source_of(s)
    assert request(s, "POST", "/api/save", (LENET + "# via link\n").encode(), SAVE)[0] == 200
    assert link.is_symlink() and path.read_text(encoding="utf-8").endswith("# via link\n")
    path.chmod(0o444)
    try:
        source_of(s)
        status, a = request(s, "POST", "/api/save", b"net x {}\n", SAVE)
        assert status == 403 and "read-only" in a["error"]
        assert path.read_text(encoding="utf-8").endswith("# via link\n")
    finally:
        path.chmod(0o644)


def test_a_missing_file_starts_from_the_example_and_is_created(server, tmp_path):
    start, _ = server
    new = tmp_path / "new.net"
    s = start(new)
    a = source_of(s)
    assert a["source"] == serve.EXAMPLE and not a["saved"] and a["can_save"]
    assert request(s, "POST", "/api/save", a["source"].encode(), SAVE)[0] == 200
    assert new.read_text(encoding="utf-8") == serve.EXAMPLE
    assert serve.check_source(serve.EXAMPLE, diagram=False)["ok"]


def test_without_a_file_nothing_is_saved(server):
    start, _ = server
    s = start(None)
    a = source_of(s)
    assert a["file"] is None and not a["can_save"]
    status, a = request(s, "POST", "/api/save", b"net x {}\n", SAVE)
    assert status == 403


def test_oversized_saves_are_refused(server):
    start, path = server
    s = start()
    source_of(s)
    assert announce(s, "/api/save", DEFAULT_MAX_BYTES + 1, SAVE.items())[0] == 413
    assert path.read_text(encoding="utf-8") == LENET


# --- the command ---------------------------------------------------------------------------

def test_the_cli_port_is_the_servers():
    assert cli.SERVE_PORT == serve.DEFAULT_PORT


def test_serve_warns_for_another_host_and_stops_cleanly_on_ctrl_c(tmp_path):
    import signal

    path = tmp_path / "n.net"
    path.write_text(LENET, encoding="utf-8")
    p = subprocess.Popen([sys.executable, "-m", "netdsl", "serve", str(path), "--port", "0", "--host", "0.0.0.0"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert "http://0.0.0.0:" in line
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 0
    assert "warning" in err and "Traceback" not in err


def test_serve_binds_this_machine_alone_by_default(tmp_path):
    import signal

    p = subprocess.Popen([sys.executable, "-m", "netdsl", "serve", "--port", "0"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert line.startswith("netdsl playground for the example") and "at http://127.0.0.1:" in line
    assert p.returncode == 0 and err == ""


@pytest.mark.parametrize("argv, said", [
    (["serve", "-"], "not standard input"),
    (["serve", "--port", "70000"], "port"),
])
def test_serve_usage_errors(run_cli, argv, said):
    p = run_cli(*argv)
    assert p.returncode == 2 and said in p.stderr and "Traceback" not in p.stderr


def test_serve_on_a_taken_port_is_one_line(run_cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        p = run_cli("serve", "--port", str(taken.getsockname()[1]))
    assert p.returncode == 2 and "cannot serve" in p.stderr and "Traceback" not in p.stderr


def test_serve_imports_no_torch():
    code = ("import sys; from netdsl import serve; serve.check_source(open('nets/googlenet.net').read()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'networkx')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_bundle_is_built_from_the_sources():
    """netdsl/static/playground.js is committed: it must be the build of editors/playground/
    as committed (run `npm ci && npm run build` there after editing src/main.js)."""
    import hashlib

    here = ROOT / "editors" / "playground"
    first = (ROOT / "netdsl" / "static" / "playground.js").read_text(encoding="utf-8").split("\n", 1)[0]
    for name in ("src/main.js", "package-lock.json"):
        digest = hashlib.sha256((here / name).read_bytes()).hexdigest()
        assert f"{name} {digest}" in first, f"rebuild the playground: {name} changed since the bundle was built"
    assert "https://" not in (here / "src" / "main.js").read_text(encoding="utf-8")


@needs_dot
def test_the_kept_dot_process_draws_what_dot_draws():
    """The server's `dot` runs on from one diagram to the next; its SVG is a fresh run's."""
    from netdsl.network import loads
    from netdsl.render import svg

    worker = serve.DotWorker()
    try:
        for name in ("lenet5", "googlenet", "lenet5"):
            dot = loads((NETS / f"{name}.net").read_text(encoding="utf-8")).to_dot()
            assert worker.svg(dot.source) == svg(dot)
        assert worker.started == 1
        worker._proc.kill()  # a dot that died is started again
        worker._proc.wait()
        assert worker.svg(dot.source) == svg(dot) and worker.started == 2
    finally:
        worker.close()
    assert worker._proc is None


def test_without_dot_the_worker_steps_aside(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    worker = serve.DotWorker()
    assert worker.svg("digraph { a }") is None
    answer = serve.check_source(LENET, svgs=serve.SvgCache(worker=worker))
    assert answer["ok"] and answer["svg"] is None and "Graphviz" in answer["svg_error"]
