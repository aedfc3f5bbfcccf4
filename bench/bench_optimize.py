"""`optimize="auto"` against the peer paths torch offers for torchvision's own modules.

    .venv/bin/python bench/bench_optimize.py [--nets alexnet,resnet18] [--batches 1,16] [--threads N]
        [--rounds 7] [--compile]

Per net in nets/torchvision/ and batch, with torchvision's weights in both: netdsl's
`optimize="auto"` (its choice, made first and left out of the timing) against
  - torch fuse + channels_last: `torch.fx.experimental.optimization.fuse` and channels_last input;
  - jit freeze + optimize_for_inference (traced);
  - fx optimize_for_inference (oneDNN layouts);
  - torchvision + torch.compile (with --compile; its warm-up left out).
Interleaved rounds (the order rotates), medians; the ratio is auto's median over the best peer's,
goal at most 0.95; outputs within 1e-5 of their largest magnitude. Prints the range of the ratio
within rounds too: on a loaded machine read several runs.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torchvision import models  # noqa: E402

import netdsl  # noqa: E402
from netdsl.backend.autotune import choose  # noqa: E402

NETS = ("alexnet", "vgg16", "googlenet", "resnet18")
GOAL = 0.95
warnings.simplefilter("ignore", FutureWarning)


def torchvision_model(name):
    if name == "googlenet":
        return models.googlenet(aux_logits=True, transform_input=False, init_weights=False).eval()
    return getattr(models, name)().eval()


def peers(model, x, with_compile):
    from torch.fx.experimental.optimization import fuse, optimize_for_inference
    out = {}
    fused = fuse(copy.deepcopy(model)).to(memory_format=torch.channels_last)
    out["torch fuse+cl"] = lambda: fused(x.contiguous(memory_format=torch.channels_last))
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(copy.deepcopy(model), x)))
    out["jit freeze+ofi"] = lambda: frozen(x)
    try:
        mkl = optimize_for_inference(copy.deepcopy(model))
        out["fx ofi"] = lambda: mkl(x)
    except Exception as e:  # fx cannot trace GoogLeNet's Python control flow
        print(f"  fx optimize_for_inference: {type(e).__name__}", flush=True)
    if with_compile:
        compiled = torch.compile(copy.deepcopy(model))
        out["torch.compile"] = lambda: compiled(x)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--compile", action="store_true", help="also torchvision + torch.compile (slow warm-up)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds")
    for name in args.nets.split(","):
        model = torchvision_model(name)
        network = netdsl.load(ROOT / "nets" / "torchvision" / f"{name}.net")
        module = network.compile(weights=model.state_dict(), init="meta").eval()
        for batch in map(int, args.batches.split(",")):
            x = torch.randn(batch, *network.input_shape, generator=torch.Generator().manual_seed(0))
            fast, report = choose(module, network, x, use_cache=False)
            contenders = {"netdsl auto": lambda: fast(x), **peers(model, x, args.compile)}
            with torch.inference_mode():
                want = model(x)
                got = fast(x)
                error = ((got - want).abs().max() / want.abs().max()).item()
                for fn in contenders.values():  # warm-up (torch.compile compiles here)
                    fn(), fn()
                times = {k: [] for k in contenders}
                keys = list(contenders)
                for r in range(args.rounds):
                    for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                        start = time.perf_counter()
                        contenders[k]()
                        times[k].append(time.perf_counter() - start)
            med = {k: statistics.median(v) for k, v in times.items()}
            best = min((k for k in med if k != "netdsl auto"), key=med.get)
            ratios = [a / b for a, b in zip(times["netdsl auto"], times[best])]
            ratio = med["netdsl auto"] / med[best]
            shown = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in med.items())
            print(f"{name:9s} b{batch:<3d} auto={report['path']:6s} ms: {shown} | auto/best peer ({best}) "
                  f"{ratio:.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f}), error {error:.1e}; "
                  f"goal <= {GOAL}: {'PASS' if ratio <= GOAL and error <= 1e-5 else 'MISS'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
