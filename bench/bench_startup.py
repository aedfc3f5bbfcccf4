"""Start-up: `netdsl check nets/googlenet.net`, the whole process, against `python -c "import lark"`.

    python bench/bench_startup.py --venv VENV [--rounds 21] [--net nets/googlenet.net]

Measure as users run it: VENV is a plain virtual environment (not --system-site-packages: torch
would be on the path) with the netdsl wheel and lark installed, byte-compiled, e.g.

    python -m pip wheel --no-deps --no-build-isolation . -w /tmp/wheel
    python -m venv /tmp/v && /tmp/v/bin/pip install --no-deps /tmp/wheel/netdsl-*.whl lark
    /tmp/v/bin/python -m compileall -q /tmp/v/lib

Runs alternate (the order rotates each round) and each is a fresh process; prints medians, the
median ratio within a round and its range. Goal: at most 1.3 x.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", required=True, type=Path)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--net", default=str(ROOT / "nets" / "googlenet.net"))
    args = ap.parse_args(argv)
    python = args.venv / "bin" / "python"
    script = args.venv / "bin" / "netdsl"
    commands = {"import lark": [str(python), "-c", "import lark"],
                "netdsl check": [str(script), "check", args.net] if script.exists()
                else [str(python), "-m", "netdsl", "check", args.net]}
    for command in commands.values():  # warm the file cache; fail early
        subprocess.run(command, check=True, capture_output=True, cwd="/")
    times: dict[str, list[float]] = {k: [] for k in commands}
    keys = list(commands)
    for r in range(args.rounds):
        for k in keys[r % 2:] + keys[:r % 2]:
            start = time.perf_counter()
            subprocess.run(commands[k], check=True, capture_output=True, cwd="/")
            times[k].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times["netdsl check"], times["import lark"])]
    for k, v in times.items():
        print(f"{k:14s} median {statistics.median(v) * 1e3:7.1f} ms (min {min(v) * 1e3:.1f})")
    med = statistics.median(ratios)
    q = sorted(ratios)
    print(f"ratio median {med:.2f}, quartiles {q[len(q) // 4]:.2f}-{q[3 * len(q) // 4]:.2f}, "
          f"range {q[0]:.2f}-{q[-1]:.2f}; goal <= 1.3: {'PASS' if med <= 1.3 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
