"""How the compiled nets compare with torchvision's own modules. Prints figures, their ratios
and the goals (PASS/MISS); asserts nothing (timings belong here, not in the test suite).

    .venv/bin/python bench/bench_compile.py [--quick] [--nets vgg16,resnet18] [--threads N] [--json PATH]

The contenders are nets/torchvision/*.net, which are torchvision's architectures exactly, against
torchvision 0.16+ (alexnet, vgg16, googlenet, resnet18). Goals (issue "torch backend"):
  1. forward, eager, with torchvision's weights loaded: at most 1.03 x torchvision's time
     (evaluation mode, `torch.inference_mode()`, batch 1 and 16);
  2. building with default initialisation, `netdsl.load(path).compile()`: at most 1.1 x
     torchvision's constructor (`torchvision.models.vgg16()`); shown also without reading
     and checking the file (`network.compile()` on a loaded net);
  3. building VGG16 with `init="meta"` and `weights=` (a state_dict in memory): at least 10 x
     faster than torchvision's constructor;
  4. `optimize="fuse"` and `optimize="compile"` (torch.compile): the speed-up over torchvision
     in eager mode, with outputs within max|a - b| <= 1e-5 max|b| (torch.compile's warm-up is
     timed apart and left out of its figures).

Method: both contenders run in this one process with the same number of threads (fixed, printed),
after warm-up calls; their runs are interleaved, in an order that rotates every round, so that
drift in the machine's load falls on all alike, and each figure is the median of its runs. The
number of runs follows a time budget per comparison (`--budget`). On a shared machine other work
adds noise: read ratios within a few percent of a goal as a tie.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import warnings
from functools import partial
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision import models  # noqa: E402

import netdsl  # noqa: E402

NETS = ("alexnet", "vgg16", "googlenet", "resnet18")
FORWARD_GOAL = 1.03      # netdsl's time / torchvision's, at most
BUILD_GOAL = 1.1         # netdsl's time / torchvision's, at most
META_SPEEDUP_GOAL = 10.0  # torchvision's constructor / netdsl's meta build with weights, at least
META_GOAL_NETS = ("vgg16",)
TOLERANCE = 1e-5         # max|a - b| / max|b|


@dataclass
class Row:
    """One figure: netdsl's median seconds against the baseline's (torchvision's), the ratio or
    error that the goal judges, the goal, and whether it was met (None: no goal)."""

    section: str
    net: str
    case: str
    netdsl_s: Optional[float]
    baseline_s: Optional[float]
    ratio: Optional[float]
    goal: str = ""
    passed: Optional[bool] = None
    runs: int = 0


def torchvision_model(name: str) -> torch.nn.Module:
    """torchvision's constructor as a user calls it. GoogLeNet's auxiliary heads are built, as in
    nets/torchvision/googlenet.net, and its own truncated-normal initialisation is left out, so that
    both sides initialise alike (torch's defaults; the cheaper choice for torchvision)."""
    if name == "googlenet":
        return models.googlenet(aux_logits=True, transform_input=False, init_weights=False)
    return getattr(models, name)()


def net_path(name: str) -> Path:
    return ROOT / "nets" / "torchvision" / f"{name}.net"


def interleaved(contenders: dict[str, Callable[[], object]], budget: float, warmup: int,
                min_runs: int, max_runs: int) -> tuple[dict[str, float], int]:
    """Median seconds of each contender. Warm-up calls first (untimed, but the last one sizes
    the number of runs to `budget` seconds); then rounds in which every contender runs once, in
    an order rotated each round."""
    names = list(contenders)
    one_round = 0.0
    for _ in range(warmup):
        one_round = sum(_seconds(contenders[n]) for n in names)
        if one_round > budget / 4:
            break  # calls of seconds (VGG16 at batch 16): one warm-up call is enough
    runs = max(min_runs, min(max_runs, int(budget / max(one_round, 1e-9))))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            times[name].append(_seconds(contenders[name]))
    return {n: statistics.median(t) for n, t in times.items()}, runs


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def example_input(batch: int) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))


def bench_forward(name: str, batches: list[int], args) -> list[Row]:
    """Goal 1: eager forward with torchvision's weights, against torchvision's module."""
    theirs = torchvision_model(name).eval()
    ours = netdsl.load(net_path(name)).compile(weights=theirs.state_dict(), init="meta").eval()
    rows = []
    with torch.inference_mode():
        for batch in batches:
            x = example_input(batch)
            error = relative_error(ours(x), theirs(x))
            med, runs = interleaved({"netdsl": partial(ours, x), "torchvision": partial(theirs, x)},
                                    args.budget, args.warmup, args.min_runs, args.max_runs)
            ratio = med["netdsl"] / med["torchvision"]
            rows.append(Row("forward, eager", name, f"batch {batch}", med["netdsl"], med["torchvision"], ratio,
                            f"<= {FORWARD_GOAL}", ratio <= FORWARD_GOAL, runs))
            rows.append(Row("forward, eager", name, f"batch {batch}: max|a-b|/max|b|", None, None, error,
                            f"<= {TOLERANCE:g}", error <= TOLERANCE))
    return rows


def bench_build(name: str, batches: list[int], args) -> list[Row]:
    """Goals 2 and 3: building, with default initialisation and with `init="meta"` + weights."""
    path = net_path(name)
    network = netdsl.load(path)
    state = torchvision_model(name).state_dict()
    contenders = {
        "torchvision": lambda: torchvision_model(name),
        "load+compile": lambda: netdsl.load(path).compile(),
        "compile": lambda: network.compile(),
        "load+meta": lambda: netdsl.load(path).compile(weights=state, init="meta"),
        "meta": lambda: network.compile(weights=state, init="meta"),
    }
    med, runs = interleaved(contenders, args.budget * 2, 1, max(3, args.min_runs // 2), args.max_runs)
    base = med["torchvision"]
    rows = []
    for case, key in (("load(path).compile()", "load+compile"),
                      ("network.compile() (file already checked)", "compile")):
        ratio = med[key] / base
        rows.append(Row("build, default init", name, case, med[key], base, ratio, f"<= {BUILD_GOAL}",
                        ratio <= BUILD_GOAL, runs))
    for case, key in (("load(path).compile(weights=, init='meta')", "load+meta"),
                      ("network.compile(weights=, init='meta')", "meta")):
        speedup = base / med[key]
        goal = name in META_GOAL_NETS
        rows.append(Row("build, meta + weights (speed-up)", name, case, med[key], base, speedup,
                        f">= {META_SPEEDUP_GOAL:g}" if goal else "", speedup >= META_SPEEDUP_GOAL if goal else None,
                        runs))
    return rows


def bench_optimize(name: str, batches: list[int], args) -> list[Row]:
    """Goal 4: the optimised modules against torchvision in eager mode."""
    theirs = torchvision_model(name).eval()
    state = theirs.state_dict()
    network = netdsl.load(path := net_path(name))
    fused = network.compile(weights=state, init="meta", optimize="fuse")
    compiled = netdsl.load(path).compile(weights=state, init="meta", optimize="compile")
    rows = []
    with torch.inference_mode():
        for batch in batches:
            x = example_input(batch)
            expected = theirs(x)
            warmup = _seconds(partial(compiled, x))  # torch.compile traces and generates code here
            med, runs = interleaved({"torchvision": partial(theirs, x), "fuse": partial(fused, x),
                                     "compile": partial(compiled, x)},
                                    args.budget * 1.5, args.warmup, args.min_runs, args.max_runs)
            for level, module in (("fuse", fused), ("compile", compiled)):
                speedup = med["torchvision"] / med[level]
                rows.append(Row("optimize (speed-up over torchvision eager)", name,
                                f"{level}, batch {batch}", med[level], med["torchvision"], speedup, runs=runs))
                error = relative_error(module(x), expected)
                rows.append(Row("optimize (speed-up over torchvision eager)", name,
                                f"{level}, batch {batch}: max|a-b|/max|b|", None, None, error, f"<= {TOLERANCE:g}",
                                error <= TOLERANCE))
            rows.append(Row("optimize (speed-up over torchvision eager)", name,
                            f"compile, batch {batch}: warm-up (first call)", warmup, None, None))
    return rows


SECTIONS = {"forward": bench_forward, "build": bench_build, "optimize": bench_optimize}


def print_table(rows: list[Row]) -> None:
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            print(f"\n{section}")
            print(f"  {'net':<10} {'case':<44} {'netdsl ms':>10} {'torchvision ms':>15} {'ratio':>9}  "
                  f"{'goal':<9} {'':4} runs")
        times = " ".join(f"{'' if t is None else f'{t * 1000:.2f}':>{w}}" for t, w in
                         ((row.netdsl_s, 10), (row.baseline_s, 15)))
        ratio = "" if row.ratio is None else f"{row.ratio:.2e}" if "max|a-b|" in row.case else f"{row.ratio:.3f}"
        verdict = "" if row.passed is None else ("PASS" if row.passed else "MISS")
        print(f"  {row.net:<10} {row.case:<44} {times} {ratio:>9}  {row.goal:<9} {verdict:4} {row.runs or ''}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 1 only, a smaller time budget")
    ap.add_argument("--nets", default=",".join(NETS), help=f"comma-separated, from {', '.join(NETS)}")
    ap.add_argument("--batches", help="comma-separated batch sizes (default 1,16; quick 1)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch's CPU threads for every contender (default: torch's own choice here)")
    ap.add_argument("--budget", type=float, help="seconds of timed runs per comparison (default 12, quick 3)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="which comparisons to run")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    nets = [n for n in args.nets.split(",") if n]
    unknown = sorted(set(nets) - set(NETS))
    if unknown:
        ap.error(f"unknown net(s) {', '.join(unknown)}; choose from {', '.join(NETS)}")
    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS):
        ap.error(f"unknown section(s) {', '.join(sorted(sections - set(SECTIONS)))}; choose from {', '.join(SECTIONS)}")
    args.budget = args.budget or (3.0 if args.quick else 12.0)
    args.warmup, args.min_runs, args.max_runs = (2, 5, 200) if args.quick else (3, 5, 400)
    batches = [int(b) for b in args.batches.split(",")] if args.batches else [1] if args.quick else [1, 16]

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # torch.compile's notes about CPU capability
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} thread(s), "
          f"batches {batches}, budget {args.budget:g} s per comparison, CPU")

    rows: list[Row] = []
    for name in nets:
        for section, bench in SECTIONS.items():
            if section in sections:
                new = bench(name, batches, args)
                rows += new
                for row in new:  # as they come, for long runs; the table follows at the end
                    figure = row.ratio if row.ratio is not None else row.netdsl_s
                    print(f"  {row.net} {section}: {row.case}: {figure:.4g}", file=sys.stderr, flush=True)
            gc.collect()
    order = ["forward, eager", "build, default init", "build, meta + weights (speed-up)",
             "optimize (speed-up over torchvision eager)"]
    rows.sort(key=lambda r: order.index(r.section))  # stable: nets keep their order within a section
    print_table(rows)
    judged = [r for r in rows if r.passed is not None]
    print(f"\n{sum(r.passed for r in judged)} of {len(judged)} goals met")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__,
                                               "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
