"""Building a net: netdsl against torchvision's constructor, and meta + weights against torch's own.

    .venv/bin/python bench/bench_build.py [--nets alexnet,googlenet] [--rounds 9] [--threads N]

Per net in nets/torchvision/, interleaved rounds (the order rotates every round), each round
timing each contender once, or as many times in a row as make about 20 ms where one build is
quicker (AlexNet's meta build takes 2 ms: single timings of it are mostly the machine's noise),
after a garbage collection, so that no sample pays for the garbage of another:
  - `netdsl.load(path).compile()` against torchvision's constructor (goal: at most 1.0 x);
  - `netdsl.load(path).compile(weights=state, init="meta")` against torch's
    `with torch.device("meta"): model = constructor()` + `model.load_state_dict(state, assign=True)`
    (goal: at most 1.1 x).
Prints the median ratio within a round and the range over rounds (a loaded machine makes single
rounds noisy: read the median, and repeat).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import netdsl  # noqa: E402
from tests.torchvision_models import MODELS, net_names  # noqa: E402


SAMPLE_SECONDS = 0.02


def _repeats(fn) -> int:
    """How many calls of `fn` in a row make one sample of about SAMPLE_SECONDS (after a warm-up call)."""
    fn()
    start = time.perf_counter()
    fn()
    return max(1, round(SAMPLE_SECONDS / max(time.perf_counter() - start, 1e-6)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default=",".join(net_names()), help="default: every net in nets/torchvision/")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds")
    for name in args.nets.split(","):
        path = ROOT / "nets" / "torchvision" / f"{name}.net"
        make = MODELS[name].make  # as the .net is: GoogLeNet's aux heads, torch's default init
        state = make().state_dict()

        def torch_meta(make=make, state=state):
            with torch.device("meta"):
                model = make()
            model.load_state_dict(state, assign=True)

        contenders = {
            "netdsl": lambda path=path: netdsl.load(path).compile(),
            "torchvision": make,
            "netdsl meta": lambda path=path, state=state: netdsl.load(path).compile(weights=state, init="meta"),
            "torch meta": torch_meta,
        }
        repeats = {k: _repeats(fn) for k, fn in contenders.items()}  # with the warm-up
        times: dict[str, list[float]] = {k: [] for k in contenders}
        keys = list(contenders)
        for r in range(args.rounds):
            for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                gc.collect()
                start = time.perf_counter()
                for _ in range(repeats[k]):
                    contenders[k]()
                times[k].append((time.perf_counter() - start) / repeats[k])
        for ours, theirs, goal in (("netdsl", "torchvision", 1.0), ("netdsl meta", "torch meta", 1.1)):
            ratios = [a / b for a, b in zip(times[ours], times[theirs])]
            med = statistics.median(ratios)
            print(f"{name:10s} {ours:12s} {statistics.median(times[ours]) * 1e3:8.1f} ms  {theirs:12s} "
                  f"{statistics.median(times[theirs]) * 1e3:8.1f} ms  ratio {med:.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f})  goal <= {goal}: {'PASS' if med <= goal else 'MISS'}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
