"""`--watch` for `render` and `summary`: run the command, then again each time the file is saved.

The file is polled (its modification time, size and identity, every `INTERVAL` seconds) with
the standard library alone: no inotify, the same on every system, and an editor that saves by
writing a new file and renaming it over the old one is seen as well as one that writes in place.
Ctrl-C ends the watch: the normal way out, so it exits 0 without a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional

INTERVAL = 0.3  # seconds between looks at the file: quick enough to feel live, a few syscalls a second
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen: a summary redrawn in place on a terminal


def stamp(path: str) -> Optional[tuple[int, int, int, int]]:
    """What tells that a file changed: (mtime in ns, size, device, inode); None if it is missing."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size, st.st_dev, st.st_ino


def watch(path: str, run_once: Callable[[], int], *, interval: float = INTERVAL, clear: bool = False,
          max_runs: Optional[int] = None) -> int:
    """Call `run_once` now and after each change of the file at `path`, until Ctrl-C (or
    `max_runs` calls, for tests). `run_once` reports its own errors and returns an exit status;
    a failing run does not end the watch. Returns 0."""
    from .files import shown

    runs = 0
    try:
        last = stamp(path)
        while True:
            if clear:
                sys.stdout.write(CLEAR)
            run_once()
            runs += 1
            sys.stdout.write(f"-- watching {shown(path)} (Ctrl-C stops) --\n")
            sys.stdout.flush()
            if max_runs is not None and runs >= max_runs:
                return 0
            while True:
                time.sleep(interval)
                now = stamp(path)
                if now != last:
                    # an editor may still be writing: wait until two looks agree
                    time.sleep(min(interval, 0.05))
                    settled = stamp(path)
                    if settled == now:
                        last = now
                        break
    except KeyboardInterrupt:
        sys.stdout.flush()
        return 0
