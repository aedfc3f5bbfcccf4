"""How long the playground's server takes per keystroke: each request is what the page sends
after a keystroke (the whole source of nets/googlenet.net, one character different from the
one before), posted to /api/check of a server on 127.0.0.1, and timed from the request to the
last byte of the answer (diagnostics, summary rows, layer spans and the SVG). Prints the
median and 95th percentile of that round trip, and of the server's CPU time for the request
(its thread's and Graphviz's, from the answer's Server-Timing header: on a machine shared
with other work, wall-clock time also counts the waits for a core); asserts nothing.

    .venv/bin/python bench/bench_serve.py [--runs N] [--net FILE]

Goal (issue 13): under 50 ms per keystroke for googlenet.net. Three kinds of keystroke:
- typing in a comment: the net and its diagram are unchanged (the SVG of that DOT is reused);
- changing a number: `classes = 1000` to 1001, 1002, ...: a new diagram each time (Graphviz runs);
- typing a mistake: a layer's op misspelt each time at another layer: the diagram up to the error.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netdsl import serve  # noqa: E402

GOAL_MS = 50.0


def keystrokes(text: str, kind: str, runs: int) -> list[str]:
    """`runs` versions of `text`, each one keystroke from the one before."""
    if kind == "comment":
        comment, out = "# ", []
        for i in range(runs):
            comment += "abcdefghij klmnopqrstuvwxyz"[i % 27]
            out.append(text + "\n" + comment + "\n")
        return out
    if kind == "number":
        assert "classes = 1000" in text
        return [text.replace("classes = 1000", f"classes = {1001 + i}") for i in range(runs)]
    if kind == "mistake":
        lines = text.splitlines(keepends=True)
        convs = [i for i, line in enumerate(lines) if ": conv(" in line]
        out = []
        for i in range(runs):
            k = convs[i % len(convs)]
            out.append("".join(lines[:k] + [lines[k].replace(": conv(", ": cnov(", 1)] + lines[k + 1:]))
        return out
    raise ValueError(kind)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=60, help="requests per kind of keystroke (default 60)")
    ap.add_argument("--net", default=str(ROOT / "nets" / "googlenet.net"))
    args = ap.parse_args()
    text = Path(args.net).read_text(encoding="utf-8")

    server = serve.make_server(None, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=60)

    def post(body: str) -> tuple[float, dict[str, float]]:
        t = time.perf_counter()
        conn.request("POST", "/api/check", body=body.encode("utf-8"), headers={"Content-Type": "text/plain"})
        r = conn.getresponse()
        r.read()
        wall = time.perf_counter() - t
        assert r.status == 200, r.status
        parts = dict(item.strip().split(";dur=") for item in r.getheader("Server-Timing").split(","))
        return wall * 1000, {k: float(v) for k, v in parts.items()}

    for _ in range(3):  # imports, Graphviz's first run, the caches of a warm server
        post(text)
    print(f"{Path(args.net).name}: {len(text):,} characters, {args.runs} requests per kind; goal < {GOAL_MS:g} ms")
    import subprocess

    def bare_dot() -> float:  # Graphviz's start-up alone, the floor of a keystroke that changes the diagram
        t = time.perf_counter()
        subprocess.run(["dot", "-Tsvg"], input=b"digraph { a }", capture_output=True, check=True)
        return (time.perf_counter() - t) * 1000
    bare = [bare_dot() for _ in range(10)]
    print(f"  (a bare `dot -Tsvg` of one node on this machine: median {statistics.median(bare):.1f} ms)")
    worst = 0.0
    print(f"  {'':8s} {'round trip (wall)':>27s}   {'server CPU':>24s}   server wall: check / tables / svg")
    for kind in ("comment", "number", "mistake"):
        results = [post(body) for body in keystrokes(text, kind, args.runs)]
        walls = [w for w, _ in results]
        cpus = [t["cpu"] for _, t in results]
        med, p95 = statistics.median(walls), percentile(walls, 95)
        worst = max(worst, med)
        parts = " / ".join(f"{statistics.median(t.get(k, 0.0) for _, t in results):.1f}"
                           for k in ("check", "tables", "svg"))
        print(f"  {kind:8s} median {med:6.1f} ms  p95 {p95:6.1f} ms   "
              f"median {statistics.median(cpus):6.1f} ms  p95 {percentile(cpus, 95):6.1f} ms   {parts} ms")
    conn.close()
    server.shutdown()
    print(f"worst median round trip {worst:.1f} ms: {'within' if worst < GOAL_MS else 'OVER'} the {GOAL_MS:g} ms goal")


if __name__ == "__main__":
    main()
