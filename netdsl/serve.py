"""`netdsl serve`: the live playground, a page with a code editor, the diagram and the summary.

One file, one user, one machine. The server reads and writes only the file it was started
with (no request names a path), listens on 127.0.0.1 unless another host is asked for, and
refuses any request body over the source limit (`limits.DEFAULT_MAX_BYTES`) before reading it.

Endpoints (every answer JSON but the page and its script):

- `GET /`: the page; `GET /static/playground.js`: CodeMirror 6 and the page's script, bundled
  at build time (editors/playground/); nothing is fetched from anywhere else.
- `GET /api/source`: `{"file", "source", "saved"}`, the file as it is now (`source` is the
  built-in example when there is no file yet).
- `POST /api/check?depth=N`: the body is a net's source (UTF-8 text); the answer is `check`'s
  result: `ok`, `net`, `diagnostics` (code, message, help, line, column, end_line,
  end_column), `summary` (`columns`, `rows`, `totals`), `layers` (each layer and block
  instance with its span in the source and its numbers: what the page shows for the layer
  under the cursor), `svg` (the diagram, a failing net drawn up to its errors, the failing
  layer in red) or `svg_error` when Graphviz is missing or the diagram is too large.
  Other tools may use it: `curl --data-binary @x.net http://127.0.0.1:8765/api/check`.
- `POST /api/save`: the body is the new source, written over the file with `fmt`'s
  protections (`files.rewrite`: a symlink's target, hard links kept, read-only refused). A
  file changed on disk since the page loaded or last saved it is refused (409) unless the
  request says `?force=1`. Saving needs the header `X-Netdsl: save`, which a page from
  another site cannot send without the server's consent (never given), and a Host and Origin
  that are this server's, so neither another site nor DNS rebinding can write the file.

Each check runs the same pipeline as `netdsl check` (no torch), one at a time. Diagrams are
laid out by one `dot` process kept running (`DotWorker`: starting `dot` costs ten times a
layout), and the SVG of a DOT text already drawn is reused, so a keystroke in a comment costs no
Graphviz run at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from .limits import DEFAULT_MAX_BYTES

STATIC = Path(__file__).with_name("static")
DEFAULT_PORT = 8765
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_DEPTH = 20  # deeper than any net nests; the page offers 1 to 4 and "all"
SVG_CACHE_SIZE = 32  # diagrams kept by DOT text: undo, redo, typing in comments
REQUEST_TIMEOUT = 30.0  # seconds a connection may take to send its request (a stalled client holds a thread)

EXAMPLE = """\
# A small net to start from: edit it, and the diagram and the table follow.
net example(classes = 10) {
    input 1x28x28

    conv1: conv(8, 3, pad=1)
    relu
    pool1: maxpool(2)
    conv2: conv(16, 3, pad=1)
    relu
    pool2: maxpool(2)

    flatten
    fc: linear(classes)
}
"""

SUMMARY_COLUMNS = ("Layer", "Op", "Output", "Params", "MACs", "Memory")


# --- checking: what /api/check answers ------------------------------------------------------

class DotWorker:
    """One `dot -Tsvg` process kept running, given one diagram after another on its standard
    input: it writes each SVG (ending `</svg>`) as soon as it has laid it out. Starting `dot`
    costs more than laying out GoogLeNet (40 ms against 3 on a busy machine), and a keystroke
    that changes a number changes the diagram. Trouble (no `dot`, a crash) stops the process
    and returns None: the caller then runs `dot` once as `render.svg` does, which says what
    went wrong; a layout over `timeout` seconds stops it and raises `render.GraphvizFailed`."""

    END = b"</svg>\n"

    def __init__(self, timeout: Optional[float] = None):
        from .render import DOT_TIMEOUT

        self.timeout = DOT_TIMEOUT if timeout is None else timeout
        self._proc = None
        self._lock = threading.Lock()
        self.started = 0  # processes started, for the tests

    def svg(self, source: str) -> Optional[str]:
        import re
        import select
        import subprocess
        import time

        with self._lock:
            try:
                if self._proc is None or self._proc.poll() is not None:
                    self._proc = subprocess.Popen(["dot", "-Kdot", "-Tsvg"], stdin=subprocess.PIPE,
                                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                    self.started += 1
                proc = self._proc
                proc.stdin.write(source.encode("utf-8") + b"\n")
                proc.stdin.flush()
                out, deadline, fd = bytearray(), time.monotonic() + self.timeout, proc.stdout.fileno()
                while not out.endswith(self.END):
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([fd], [], [], left)[0]:
                        raise TimeoutError
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        raise EOFError
                    out += chunk
            except TimeoutError:
                from .render import GraphvizFailed

                self._stop()
                raise GraphvizFailed(f"Graphviz's dot did not finish in {self.timeout:g} s and was stopped: "
                                     "choose a smaller depth") from None
            except (OSError, EOFError, ValueError):
                self._stop()
                return None
        text = out.decode("utf-8")
        # the one difference from a fresh `dot`: the graph's id names the page of a multi-graph run
        return re.sub(r'<g id="page[^"]*_graph0"', '<g id="graph0"', text, count=1)

    def cpu(self) -> float:
        """The CPU seconds the running `dot` has used (0 where /proc cannot tell)."""
        proc = self._proc
        try:
            with open(f"/proc/{proc.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (AttributeError, OSError, ValueError, IndexError):
            return 0.0

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            self._stop()


class SvgCache:
    """The SVG of recent DOT texts (an LRU of `SVG_CACHE_SIZE`), shared by the server's threads,
    drawn by a `DotWorker` when given one."""

    def __init__(self, size: int = SVG_CACHE_SIZE, worker: Optional[DotWorker] = None):
        self.size, self.worker = size, worker
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def svg(self, dot) -> str:
        from .render import MAX_NODES, svg

        key = dot.source
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        text = self.worker.svg(key) if self.worker is not None else None
        if text is None:
            text = svg(dot, max_nodes=MAX_NODES)
        with self._lock:
            self._items[key] = text
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return text


_DEFAULT_CACHE = SvgCache()


def check_source(source: str, filename: str = "<playground>", *, depth: Optional[int] = 1,
                 max_bytes: int = DEFAULT_MAX_BYTES, diagram: bool = True,
                 svgs: Optional[SvgCache] = None, timing: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """Check `source` as `netdsl check` does and return what the playground shows, as plain
    data (the document `POST /api/check` answers; see the module docstring). Never raises for
    a mistake in the source: every one is a diagnostic. `timing`, if given, gets the seconds
    each part took: `check`, `tables` (summary and layers), `svg`."""
    import time

    from .diagnostics import NetDSLError
    from .network import loads

    timing = {} if timing is None else timing
    t0 = time.perf_counter()
    net = failure = None
    try:
        net = loads(source, filename, max_bytes=max_bytes)
    except NetDSLError as e:
        failure = e
    t1 = time.perf_counter()
    timing["check"] = t1 - t0
    ir_net = net.ir if net is not None else failure.partial
    out: dict[str, Any] = {
        "ok": net is not None,
        "net": ir_net.name if ir_net is not None else None,
        "diagnostics": [] if failure is None else [_diagnostic(d) for d in failure.diagnostics],
        "truncated": bool(failure is not None and failure.truncated),
        "summary": None,
        "layers": [],
        "svg": None,
        "svg_error": None,
    }
    if ir_net is None:
        out["svg_error"] = "nothing to draw: the file does not parse, or defines no net"
        return out
    summary = net.summary() if net is not None else None
    out["summary"] = _summary(summary, ir_net, depth)
    out["layers"] = _layers(summary, ir_net)
    t2 = time.perf_counter()
    timing["tables"] = t2 - t1
    if diagram:
        out["svg"], out["svg_error"] = _svg(net, failure, depth, svgs or _DEFAULT_CACHE)
        timing["svg"] = time.perf_counter() - t2
    return out


def _span(span) -> dict[str, int]:
    return {"line": span.line, "column": span.column, "end_line": span.end_line, "end_column": span.end_column}


def _diagnostic(d) -> dict[str, Any]:
    return {"code": d.code, "message": d.message, "help": d.help, **_span(d.span),
            "notes": [{"message": n.message, **(_span(n.span) if n.span is not None else {})} for n in d.notes]}


def _summary(s, ir_net, depth: Optional[int]) -> dict[str, Any]:
    """The summary table's rows: `netdsl summary`'s for a checked net; for a failing one, the
    layers whose shapes were inferred before the errors, one row each."""
    from .render import fmt_dims
    from .summary import BYTES_PER_VALUE

    if s is not None:
        rows = [[name + (" [train]" if train else ""), what, fmt_dims(shape), p, m, b]
                for name, what, shape, p, m, b, train in s.rows(depth)]
        return {"columns": list(SUMMARY_COLUMNS), "rows": rows, "totals": s.totals, "complete": True}
    rows = []
    for layer in ir_net.body():
        if not layer.ok:
            continue
        size = BYTES_PER_VALUE
        for n in layer.shape:
            size *= n
        rows.append([layer.name + (" [train]" if layer.train_only else ""), layer.describe(), fmt_dims(layer.shape),
                     layer.params, layer.macs, size])
    return {"columns": list(SUMMARY_COLUMNS), "rows": rows, "totals": None, "complete": False}


def _layers(summary, ir_net) -> list[dict[str, Any]]:
    """Each layer and each block instance with the span it was written at, for the numbers of
    the layer under the cursor. A layer inside a block has the span of its line in the block's
    definition (shared by every instance) and `site`, the span of the call that made it."""
    from .render import fmt_dims

    out = []
    for layer in ir_net.body():
        if layer.op is None:
            continue
        out.append({"name": layer.name, "kind": "layer", "op": layer.op.name,
                    "call": layer.describe() if layer.attrs is not None else layer.op.name,
                    "shape": fmt_dims(layer.shape), "params": layer.params, "macs": layer.macs,
                    "train_only": layer.train_only, "ok": layer.ok, "span": _span(layer.span),
                    "site": _span(layer.site[1]) if layer.site is not None else None})
    if summary is not None:
        for block in summary.blocks:
            scope = ir_net.scopes[block.name]
            out.append({"name": block.name, "kind": "block", "op": block.block, "call": block.call,
                        "shape": fmt_dims(block.output_shape), "params": block.params, "macs": block.macs,
                        "train_only": block.train_only, "ok": True, "span": _span(scope.span), "site": None})
    return out


def _svg(net, failure, depth: Optional[int], cache: SvgCache) -> tuple[Optional[str], Optional[str]]:
    from .render import MAX_NODES, GraphvizFailed, GraphvizMissing, failure_diagram

    try:
        dot = net.to_dot(depth=depth, max_nodes=MAX_NODES) if net is not None else \
            failure_diagram(failure, depth=depth, max_nodes=MAX_NODES)
        if dot is None:
            return None, "nothing to draw"
        return cache.svg(dot), None
    except GraphvizMissing:
        return None, "Graphviz's dot is not installed: the diagram needs it (apt-get install graphviz)"
    except GraphvizFailed as e:  # too large, or dot failed
        return None, str(e)


# --- the file -------------------------------------------------------------------------------

class Conflict(Exception):
    """The file changed on disk since the playground last read or wrote it."""


class SaveRefused(Exception):
    """The file cannot be written as it is (read-only, not a regular file, a name taken)."""


def _digest(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else hashlib.sha256(data).hexdigest()


class PlaygroundFile:
    """The one file a playground reads and writes (or none). `known` is its bytes as the
    playground last read or wrote them: a save over anything else is a conflict."""

    def __init__(self, path: Optional[os.PathLike | str], max_bytes: int = DEFAULT_MAX_BYTES):
        self.path = None if path is None else os.fspath(path)
        self.max_bytes = max_bytes
        self.known: Optional[bytes] = None
        self._lock = threading.Lock()

    def read(self) -> tuple[str, bool]:
        """(the source, whether it is the file's): the file's text, or the example when there is
        no file (yet). OSError, `files.Refused` or `NetDSLError` (not UTF-8, too large)."""
        from .files import read_for_rewrite
        from .network import decode

        if self.path is None:
            return EXAMPLE, False
        with self._lock:
            try:
                original = read_for_rewrite(self.path, self.max_bytes)
            except FileNotFoundError:
                self.known = None
                return EXAMPLE, False
            if len(original.data) > self.max_bytes:
                raise SaveRefused(f"the file is over the limit of {self.max_bytes:,} bytes")
            self.known = original.data
            return decode(original.data, self.path), True

    def save(self, source: str, force: bool = False) -> None:
        """Write `source` over the file as `fmt` writes (files.rewrite), or create it when it
        does not exist; `Conflict` if it is not what was last read or written, unless `force`."""
        from .files import Refused, read_for_rewrite, rewrite, shown

        if self.path is None:
            raise SaveRefused("the playground was started without a file: nothing to save to "
                              "(start it with `netdsl serve FILE`)")
        data = source.encode("utf-8")
        if len(data) > self.max_bytes:
            raise SaveRefused(f"the source is {len(data):,} bytes, over the limit of {self.max_bytes:,}")
        with self._lock:
            try:
                original = read_for_rewrite(self.path, self.max_bytes)
            except FileNotFoundError:
                if self.known is not None and not force:
                    raise Conflict(f"{shown(self.path)} was deleted since the playground read it") from None
                self._create(data)
                self.known = data
                return
            except Refused as e:
                raise SaveRefused(str(e)) from None
            if original.data != self.known and not force:
                raise Conflict(f"{shown(self.path)} changed on disk since the playground read it")
            if original.data != data:
                try:
                    rewrite(original, data, shown(self.path))
                except Refused as e:
                    raise SaveRefused(str(e).replace("fmt", "the playground")) from None
            self.known = data

    def _create(self, data: bytes) -> None:
        # O_EXCL: a file that appeared meanwhile (or a dangling symlink) is never written through
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


# --- the server -----------------------------------------------------------------------------

class PlaygroundServer(ThreadingHTTPServer):
    """The playground's HTTP server: `ThreadingHTTPServer` with the file it serves."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], file: PlaygroundFile, *, depth: Optional[int] = 1,
                 quiet: bool = True):
        self.file, self.depth, self.quiet = file, depth, quiet
        self.cache = SvgCache(worker=DotWorker())
        # one check at a time: checking is pure Python (threads would only share the GIL), and
        # the checks' pauses of the cyclic collector (ir.without_gc) then never overlap
        self.check_lock = threading.Lock()
        if ":" in address[0]:  # ::1 and other IPv6 addresses
            import socket

            self.address_family = socket.AF_INET6
        super().__init__(address, PlaygroundHandler)

    def server_close(self) -> None:
        super().server_close()
        if self.cache.worker is not None:
            self.cache.worker.close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


class PlaygroundHandler(BaseHTTPRequestHandler):
    server: PlaygroundServer
    server_version = "netdsl-playground"
    protocol_version = "HTTP/1.1"  # keep-alive: a keystroke costs no new connection (every answer has a length)
    timeout = REQUEST_TIMEOUT
    disable_nagle_algorithm = True  # headers and body are two writes: without it, delayed ACKs add 40 ms

    # -- plumbing ----------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # the page runs only its own script, and may be framed by no one
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                                    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json; charset=utf-8")

    def _fail(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _host_ok(self) -> bool:
        """Is the Host header this server's? A page from elsewhere whose name was made to point at
        127.0.0.1 (DNS rebinding) sends its own name, and is refused."""
        host = (self.headers.get("Host") or "").strip().lower()
        bound = self.server.server_address[0]
        port = str(self.server.server_address[1])
        allowed = {bound.lower(), *LOCAL_HOSTS} if bound in LOCAL_HOSTS else {bound.lower()}
        allowed |= {f"[{h}]" for h in allowed if ":" in h}
        if host.startswith("["):  # [::1]:8765
            name, _, rest = host.partition("]")
            name, p = name + "]", rest[1:]
        else:
            name, _, p = host.partition(":")
        if name == "" or (p and p != port):
            return False
        return name in allowed or (bound in ("0.0.0.0", "::"))  # explicitly served to the network

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is None:
            return True  # not a browser, or a same-origin request of an older one
        parts = urlsplit(origin)
        return parts.scheme == "http" and parts.netloc.lower() == (self.headers.get("Host") or "").lower()

    def _body(self) -> Optional[str]:
        """The request's body as text, or None once an error has been answered."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") is not None or length is None:
            self._fail(HTTPStatus.LENGTH_REQUIRED, "send the source with a Content-Length")
            return None
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n < 0:
            self._fail(HTTPStatus.BAD_REQUEST, "a bad Content-Length")
            return None
        limit = self.server.file.max_bytes
        if n > limit:  # refused unread: the connection is closed with what remains
            self.close_connection = True
            self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                       f"the source is {n:,} bytes, over the limit of {limit:,} (netdsl.limits)")
            return None
        data = self.rfile.read(n)
        if len(data) < n:
            self.close_connection = True
            return None
        try:
            return data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            self._fail(HTTPStatus.BAD_REQUEST, "the source is not UTF-8")
            return None

    def _query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def _depth(self) -> Optional[int]:
        value = self._query().get("depth", [None])[-1]
        if value is None:
            return self.server.depth
        if value in ("all", "0"):
            return None
        try:
            return max(1, min(MAX_DEPTH, int(value)))
        except ValueError:
            return self.server.depth

    # -- requests ----------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            return self._fail(HTTPStatus.MISDIRECTED_REQUEST, "this server answers only to its own address")
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._static("playground.html", "text/html; charset=utf-8")
        if path == "/static/playground.js":
            return self._static("playground.js", "text/javascript; charset=utf-8")
        if path == "/api/source":
            return self._source()
        if path == "/favicon.ico":  # asked for by every browser: none, rather than a 404 in its console
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if path == "/api/health":
            return self._json(HTTPStatus.OK, {"ok": True})
        self._fail(HTTPStatus.NOT_FOUND, "no such page")

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._fail(HTTPStatus.MISDIRECTED_REQUEST, "this server answers only to its own address")
        path = urlsplit(self.path).path
        if path == "/api/check":
            source = self._body()
            if source is not None:
                self._check(source)
            return
        if path == "/api/save":
            if self.headers.get("X-Netdsl") != "save" or not self._origin_ok():
                return self._fail(HTTPStatus.FORBIDDEN, "saving is for the playground's own page")
            source = self._body()
            if source is not None:
                self._save(source, self._query().get("force", ["0"])[-1] == "1")
            return
        self._fail(HTTPStatus.NOT_FOUND, "no such endpoint")

    def _check(self, source: str) -> None:
        import resource
        import time

        worker = self.server.cache.worker
        cpu, dot = time.thread_time() + worker.cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
        timing: dict[str, float] = {}
        with self.server.check_lock:
            answer = check_source(source, self._filename(), depth=self._depth(), max_bytes=self.server.file.max_bytes,
                                  svgs=self.server.cache, timing=timing)
        body = json.dumps(answer).encode("utf-8")
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds: this thread's, and Graphviz's (the kept dot's, and any that ran and ended: exact
        # while requests come one at a time); wall-clock time on a busy machine says more about the
        # machine than about the server
        children = (now.ru_utime + now.ru_stime) - (dot.ru_utime + dot.ru_stime)
        timing["cpu"] = max(0.0, time.thread_time() + worker.cpu() - cpu + children)  # a dot restarted: its new count
        server_timing = ", ".join(f"{k};dur={v * 1000:.2f}" for k, v in timing.items())
        self._send(HTTPStatus.OK, body, "application/json; charset=utf-8", {"Server-Timing": server_timing})

    def _filename(self) -> str:
        path = self.server.file.path
        return "<playground>" if path is None else os.path.basename(path)

    def _static(self, name: str, content_type: str) -> None:
        try:
            body = (STATIC / name).read_bytes()
        except OSError:
            return self._fail(HTTPStatus.NOT_FOUND, f"{name} is missing from the installed package")
        self._send(HTTPStatus.OK, body, content_type)

    def _source(self) -> None:
        from .diagnostics import NetDSLError
        from .files import Refused

        f = self.server.file
        try:
            source, saved = f.read()
        except (OSError, Refused, SaveRefused) as e:
            return self._fail(HTTPStatus.CONFLICT, f"cannot read the file: {getattr(e, 'strerror', None) or e}")
        except NetDSLError as e:
            return self._fail(HTTPStatus.CONFLICT, e.diagnostics[0].message)
        self._json(HTTPStatus.OK, {"file": self._filename() if f.path else None, "source": source,
                                   "saved": saved, "can_save": f.path is not None,
                                   "depth": "all" if self.server.depth is None else self.server.depth})

    def _save(self, source: str, force: bool) -> None:
        try:
            self.server.file.save(source, force)
        except Conflict as e:
            return self._json(HTTPStatus.CONFLICT, {"error": str(e), "conflict": True})
        except SaveRefused as e:
            return self._fail(HTTPStatus.FORBIDDEN, str(e))
        except OSError as e:
            return self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot write the file: {e.strerror or e}")
        self._json(HTTPStatus.OK, {"saved": True, "bytes": len(source.encode("utf-8")),
                                   "sha256": _digest(source.encode("utf-8"))})


def make_server(path: Optional[os.PathLike | str], host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                depth: Optional[int] = 1, quiet: bool = True) -> PlaygroundServer:
    """A playground server for the file at `path` (None: the example, nothing to save to),
    bound but not yet serving (`serve_forever()`; port 0 picks a free port, see `.url`)."""
    return PlaygroundServer((host, port), PlaygroundFile(path), depth=depth, quiet=quiet)


def serve(path: Optional[str], host: str, port: int, depth: Optional[int] = 1, quiet: bool = True) -> None:
    """Run the playground until Ctrl-C (the command `netdsl serve`)."""
    from .files import shown

    if host not in LOCAL_HOSTS:
        sys.stderr.write(f"netdsl: warning: serving on {shown(host)}, not this machine alone: anyone who can reach "
                         "it can read and write the file\n")
    server = make_server(path, host, port, depth=depth, quiet=quiet)
    with server:
        what = shown(path) if path else "the example (no file: nothing is saved)"
        print(f"netdsl playground for {what} at {server.url} (Ctrl-C stops it)", flush=True)
        server.serve_forever(poll_interval=0.2)
