"""`summary --watch` and `render --watch`: a watch in a subprocess, the file edited, the output
changed, Ctrl-C, a clean exit (status 0, no traceback)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

from conftest import NETS, ROOT
from netdsl import watch

LENET = (NETS / "lenet5.net").read_text(encoding="utf-8")
WIDER = LENET.replace("fc2: linear(84)", "fc2: linear(90)")
assert WIDER != LENET
MARK = "-- watching"


class Watch:
    """`python -m netdsl ARGS` with its stdout read line by line in a thread."""

    def __init__(self, *args: str, cwd=ROOT):
        self.p = subprocess.Popen([sys.executable, "-m", "netdsl", *args], cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, timeout: float = 60) -> str:
        """The output of one run: the lines up to the next `-- watching` mark."""
        out, end = [], time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, end - time.monotonic()))
            assert line is not None, "the watch ended: " + self.p.stderr.read()
            if line.startswith(MARK):
                return "".join(out)
            out.append(line)

    def stop(self) -> tuple[int, str]:
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(timeout=20)
        finally:
            self.p.kill()
        return self.p.returncode, self.p.stderr.read()


def test_summary_watch_redraws_on_save(tmp_path):
    path = tmp_path / "lenet5.net"
    path.write_text(LENET, encoding="utf-8")
    w = Watch("summary", str(path), "--watch")
    try:
        first = w.run()
        assert "fc2" in first and "10,164" in first  # linear(84) after 120: 120·84 + 84
        path.write_text(WIDER, encoding="utf-8")
        second = w.run()
        assert "10,890" in second and "10,164" not in second  # 120·90 + 90
        # a mistake is reported, and the watch goes on
        path.write_text(LENET.replace("linear(84)", "lienar(84)"), encoding="utf-8")
        third = w.run()
        assert third.strip() == ""
        path.write_text(LENET, encoding="utf-8")
        assert "10,164" in w.run()
    finally:
        status, err = w.stop()
    assert status == 0 and "Traceback" not in err
    assert "E201" in err and "lienar" in err  # the third run's diagnostic, on stderr


def test_render_watch_rewrites_the_diagram(tmp_path):
    path = tmp_path / "lenet5.net"
    path.write_text(LENET, encoding="utf-8")
    out = tmp_path / "lenet5.gv"  # DOT text: no Graphviz needed
    w = Watch("render", str(path), "-o", str(out), "--watch")
    try:
        assert "wrote" in w.run()
        assert "linear 84" in out.read_text(encoding="utf-8")
        path.write_text(WIDER, encoding="utf-8")
        assert "wrote" in w.run()
        dot = out.read_text(encoding="utf-8")
        assert "linear 90" in dot and "linear 84" not in dot
    finally:
        status, err = w.stop()
    assert status == 0 and "Traceback" not in err


def test_watch_of_standard_input_is_refused(run_cli):
    p = run_cli("summary", "-", "--watch", input_text=LENET)
    assert p.returncode == 2 and "--watch" in p.stderr and "Traceback" not in p.stderr


def test_the_stamp_sees_a_rename_over_the_file(tmp_path):
    """An editor that saves by writing a new file and renaming it: same size, maybe the same
    mtime, another inode."""
    path = tmp_path / "a.net"
    path.write_text("x", encoding="utf-8")
    before = watch.stamp(str(path))
    other = tmp_path / "b.net"
    other.write_text("y", encoding="utf-8")
    other.replace(path)
    assert watch.stamp(str(path)) != before
    assert watch.stamp(str(tmp_path / "missing.net")) is None


def test_watch_stops_after_max_runs(tmp_path, capsys):
    path = tmp_path / "a.net"
    path.write_text("x", encoding="utf-8")
    calls = []
    assert watch.watch(str(path), lambda: calls.append(1) or 0, max_runs=1) == 0
    assert calls == [1] and MARK in capsys.readouterr().out


def test_a_change_is_seen(tmp_path):
    path = tmp_path / "a.net"
    path.write_text("x", encoding="utf-8")
    calls = []

    def run():
        calls.append(time.monotonic())
        if len(calls) == 1:
            threading.Timer(0.05, lambda: path.write_text("xy", encoding="utf-8")).start()
        return 0
    watch.watch(str(path), run, interval=0.01, max_runs=2)
    assert len(calls) == 2 and calls[1] - calls[0] < 5
