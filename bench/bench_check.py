"""How fast netdsl checks a net. Prints figures and their ratio to the goals; asserts nothing
(timings belong here, not in the test suite).

    .venv/bin/python bench/bench_check.py [--runs N]

Goals (issue "netdsl core"):
  1. `netdsl check nets/googlenet.net` as a whole process: under 0.3 s;
  2. parsing and checking a generated net of 10,000 layers in-process: under 1 s;
  3. 20,000 layers: at most 2.2 x the 10,000-layer time (linear).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netdsl  # noqa: E402


def generated_net(layers: int) -> str:
    """A net written out layer by layer (no repeat, so the parser sees every layer), with an
    Inception-style concat of 4 branches (9 layers) after every 21 plain layers."""
    lines = ["net generated {", "    input 16x32x32"]
    count, i = 0, 0
    while count < layers:
        if i % 4 == 3:
            lines.append("    concat { conv(4, 1) relu | conv(4, 1) relu | conv(4, 3, pad=1) relu "
                         "| maxpool(3, stride=1, pad=1) conv(4, 1) }")
            count += 9
        else:
            for _ in range(7):
                lines.append(f"    l{count}: conv(16, 3, pad=1)")
                lines.append("    relu")
                lines.append("    batchnorm")
                count += 3
        i += 1
    lines.append("}")
    return "\n".join(lines)


def timings(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def median_of(fn, runs: int) -> float:
    return statistics.median(timings(fn, runs))


def best_of(fn, runs: int) -> float:
    """The fastest run: on a shared machine other work only ever adds time, so the minimum
    is the steadiest estimate of the code's own cost (the one to judge linearity by)."""
    return min(timings(fn, runs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args()

    exe = Path(sys.executable).with_name("netdsl")
    cmd = [str(exe), "check", str(ROOT / "nets" / "googlenet.net")]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the grammar cache and .pyc files
    t_proc = median_of(lambda: subprocess.run(cmd, check=True, capture_output=True), args.runs)
    print(f"netdsl check nets/googlenet.net (whole process, median of {args.runs}): "
          f"{t_proc * 1000:.0f} ms   goal < 300 ms   ratio {t_proc / 0.3:.2f}")

    results = {}
    for n in (10_000, 20_000):
        text = generated_net(n)
        layers = len(netdsl.loads(text).layers)
        results[n] = best_of(lambda text=text: netdsl.loads(text), max(3, args.runs // 3))
        print(f"loads(): {layers:,} layers, {len(text):,} characters (best of runs): {results[n] * 1000:.0f} ms"
              + ("   goal < 1000 ms   ratio %.2f" % results[n] if n == 10_000 else ""))
    ratio = results[20_000] / results[10_000]
    print(f"20k / 10k layers: {ratio:.2f}x   goal <= 2.2x")

    text = generated_net(10_000)
    from netdsl import parser
    t_parse = best_of(lambda: parser.parse(text), 3)
    print(f"  of which parsing: {t_parse * 1000:.0f} ms")


if __name__ == "__main__":
    main()
