"""Mutation fuzzing, the long run: mutated copies of every net in nets/ (tests/fuzzing.py says
how), each checked and formatted under a one-second budget. Prints how many cases ran, the
outcomes, the slowest case and every failure; failing inputs are written to
tests/fuzz_regressions/ (named by their hash, with their outcome in expected.json), where
tests/test_fuzz.py replays them: they fail there until fixed. Then run with
--update-expected to record the outcomes they have now.

    .venv/bin/python bench/fuzz.py --cases 2000          # per net file
    .venv/bin/python bench/fuzz.py --seconds 600 --seed 7
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzzing import cases, run  # noqa: E402

REGRESSIONS = ROOT / "tests" / "fuzz_regressions"
EXPECTED = REGRESSIONS / "expected.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=1000, help="cases per net file (default 1000)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long, whatever --cases says")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--update-expected", action="store_true",
                   help="record the current outcome of every regression file in expected.json and stop")
    args = p.parse_args()
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    if args.update_expected:
        for path in sorted(REGRESSIONS.glob("*.net")):
            expected[path.name] = run(path.read_bytes()).result
        EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(expected)} outcomes in {EXPECTED.relative_to(ROOT)}")
        return 0

    start = time.perf_counter()
    results: collections.Counter = collections.Counter()
    failures, slowest, ran = [], (0.0, ""), 0
    files = sorted((ROOT / "nets").glob("*.net"))
    streams = [cases(f.name, f.read_bytes(), args.seed, args.cases) for f in files]
    while streams:  # round robin over the files, so a time limit samples them all
        for stream in list(streams):
            case = next(stream, None)
            if case is None:
                streams.remove(stream)
                continue
            outcome = run(case.data)
            ran += 1
            results["ok" if outcome.result == "ok" else outcome.result.split()[0]] += 1
            if outcome.seconds > slowest[0]:
                slowest = (outcome.seconds, case.name)
            if outcome.failure is not None:
                failures.append((case, outcome))
                name = f"fuzz_{hashlib.sha256(case.data).hexdigest()[:12]}.net"
                (REGRESSIONS / name).write_bytes(case.data)
                expected[name] = f"FAILED: {outcome.failure.strip().splitlines()[-1]}"
            if args.seconds is not None and time.perf_counter() - start > args.seconds:
                streams = []
                break
    if failures:
        EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    elapsed = time.perf_counter() - start
    print(f"{ran:,} cases in {elapsed:.1f} s (seed {args.seed}), {len(failures)} failure(s)")
    print(f"slowest case: {slowest[1]}, {slowest[0] * 1000:.1f} ms")
    print("outcomes (first error code of each case): " + ", ".join(f"{k} {v}" for k, v in sorted(results.items())))
    for case, outcome in failures:
        print(f"\nFAILED {case.name} ({', '.join(case.mutations)}): {outcome.result}\n{outcome.failure}")
    if failures:
        print(f"\nthe failing inputs are in {REGRESSIONS.relative_to(ROOT)}/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
