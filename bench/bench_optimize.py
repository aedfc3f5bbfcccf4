"""`optimize="auto"` against the peer paths torch offers for torchvision's own modules.

    .venv/bin/python bench/bench_optimize.py [--nets alexnet,resnet18] [--batches 1,16] [--threads 2]
        [--rounds 5] [--repeats 3] [--compile]

Per net in nets/torchvision/ and batch, with torchvision's weights in both: netdsl's
`optimize="auto"` (its choice, made first and left out of the timing) against
  - torch fuse + channels_last: `torch.fx.experimental.optimization.fuse` and channels_last input;
  - jit freeze + optimize_for_inference (traced);
  - fx optimize_for_inference (oneDNN layouts);
  - torchvision + torch.compile (with --compile; its warm-up left out).
Interleaved rounds (the order rotates), medians; the ratio is auto's median over the best peer's,
goal at most 0.95; outputs within 1e-5 of their largest magnitude. Three repeats: the ratio shown
is their median, with their range; a Markdown table of it all at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import netdsl  # noqa: E402
from netdsl.backend.autotune import choose  # noqa: E402
from tests.torchvision_models import MODELS, net_names  # noqa: E402

GOAL = 0.95
warnings.simplefilter("ignore", FutureWarning)


def peers(model, x, with_compile):
    """The peer paths that torch can build for this model, each a thunk; the others say why not."""
    from torch.fx.experimental.optimization import fuse, optimize_for_inference
    layout = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    out = {}

    def fuse_cl():
        fused = fuse(copy.deepcopy(model)).to(memory_format=layout)
        xl = x.contiguous(memory_format=layout)
        return lambda: fused(xl)

    def jit():
        with torch.no_grad():
            traced = torch.jit.trace(copy.deepcopy(model), x, strict=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        return lambda: frozen(x)

    def fx_ofi():
        mkl = optimize_for_inference(copy.deepcopy(model))
        return lambda: mkl(x)

    def compiled():
        fn = torch.compile(copy.deepcopy(model))
        return lambda: fn(x)

    makers = {"torch fuse+cl": fuse_cl, "jit freeze+ofi": jit, "fx ofi": fx_ofi}
    if with_compile:
        makers["torch.compile"] = compiled
    for name, make in makers.items():
        try:
            out[name] = make()
            # fx prints its own traceback of a failing call to stderr: the one line below says it
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                out[name]()
        except Exception as e:  # fx cannot trace GoogLeNet's Python control flow, say
            out.pop(name, None)
            print(f"  {name}: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}", flush=True)
    return out


def interleaved(contenders: dict, rounds: int) -> dict[str, float]:
    """Each contender's median seconds over `rounds` rounds, the order rotating every round."""
    times: dict[str, list[float]] = {k: [] for k in contenders}
    keys = list(contenders)
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            start = time.perf_counter()
            contenders[k]()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default=",".join(net_names()), help="default: every net in nets/torchvision/")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also torchvision + torch.compile (slow warm-up)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} repeats of {args.rounds} rounds")
    table = []
    for name in args.nets.split(","):
        spec = MODELS[name]
        state = spec.make().state_dict()  # the .net's tensors: GoogLeNet's training heads too
        model = spec.make(train=False).eval()  # the peers' model: inference, without them
        model.load_state_dict(state, strict=False)
        network = netdsl.load(ROOT / "nets" / "torchvision" / f"{name}.net")
        module = network.compile(weights=state, init="meta").eval()
        for batch in map(int, args.batches.split(",")):
            x = torch.randn(batch, *network.input_shape, generator=torch.Generator().manual_seed(0))
            fast, report = choose(module, network, x, use_cache=False, allow_compile=args.compile)
            contenders = {"netdsl auto": lambda fast=fast, x=x: fast(x), **peers(model, x, args.compile)}
            with torch.inference_mode():
                want = spec.outputs(model(x))[0]
                got = fast(x)
                got = got[0] if isinstance(got, (tuple, list)) else got
                error = ((got - want).abs().max() / want.abs().max()).item()
                for fn in contenders.values():  # warm-up (torch.compile compiles here)
                    fn(), fn()
                repeats = [interleaved(contenders, args.rounds) for _ in range(args.repeats)]
            ratios, bests = [], []
            for med in repeats:
                best = min((k for k in med if k != "netdsl auto"), key=med.get)
                ratios.append(med["netdsl auto"] / med[best])
                bests.append(best)
            ratio = statistics.median(ratios)
            best = max(set(bests), key=bests.count)
            ms = {k: statistics.median(m[k] for m in repeats) * 1e3 for k in contenders}
            passed = ratio <= GOAL and error <= 1e-5
            table.append((name, batch, report["path"], ms["netdsl auto"], best, ms[best], ratio,
                          min(ratios), max(ratios), error, passed))
            shown = ", ".join(f"{k} {v:.1f}" for k, v in ms.items())
            print(f"{name:9s} b{batch:<3d} auto={report['path']:6s} ms: {shown} | auto/best peer ({best}) "
                  f"{ratio:.2f} (repeats {min(ratios):.2f}-{max(ratios):.2f}), error {error:.1e}; "
                  f"goal <= {GOAL}: {'PASS' if passed else 'MISS'}", flush=True)
            # each contender holds a copy of the net and its caches (VGG16 at batch 16: 24 GB
            # in all when the next batch's were built beside them)
            del fast, contenders
            gc.collect()
    print("\n| net | batch | auto chose | auto ms | best peer | its ms | ratio (range) | error | goal |")
    print("|---|---:|---|---:|---|---:|---|---:|---|")
    for name, batch, path, ours, best, theirs, ratio, low, high, error, passed in table:
        print(f"| {name} | {batch} | {path} | {ours:.1f} | {best} | {theirs:.1f} | {ratio:.2f} ({low:.2f}-{high:.2f}) "
              f"| {error:.0e} | {'pass' if passed else 'miss'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
