"""ConvNeXt's block written in netdsl against torchvision's eager `CNBlock`, on the CPU.

    dwconv 7x7, layernorm, channel_linear(4C), gelu, channel_linear(C), scale, drop_path, + input

netdsl's `layernorm` and `channel_linear` each move the channels last, compute, and move them
back (netdsl/ops/modules.py), where torchvision permutes once before its LayerNorm and once
after its second Linear. Moving the channels is a view, and each op hands the next one a view
whose memory is already channels-last, so the extra permutes copy nothing; this measures what
they cost. Also measured: the same block with `channel_linear` as a 1x1 convolution (the
alternative formulation), and netdsl's `optimize="fuse"` (which keeps convolution weights
channels-last).

Both modules get the same weights; the table gives the median CPU time of a forward pass
(evaluation, no grad) and of a forward and backward pass (training), the ratio netdsl /
torchvision, and the largest difference of the outputs relative to the largest output.

    .venv/bin/python bench/bench_convnext_block.py                 # stage 1 and stage 3 shapes
    .venv/bin/python bench/bench_convnext_block.py --threads 2 --batch 8

Measured (torch 2.14.1, one thread, batch 4, on a shared 2-core machine, so each number moves by
several per cent from run to run): netdsl / torchvision, forward in evaluation 1.02-1.04 on
96x56x56 (the same comparison of torchvision with a copy of itself gave 1.00-1.01) and 0.96-1.00
on 384x14x14; forward and backward 0.88-1.00. The outputs are equal (`gelu` runs torch's
contiguous kernel on the channels-last view, as torchvision's GELU on its permuted tensor; see
netdsl/ops/modules.py). The 1x1 convolution is no faster, and `fuse` within the noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.models.convnext import CNBlock  # noqa: E402

import netdsl  # noqa: E402
from netdsl.ops.modules import ChannelLinear  # noqa: E402

BRANCH = ("conv({c}, 7, pad=3, groups={c}) layernorm(eps=1e-6) channel_linear({c4}) gelu channel_linear({c}) "
          "scale drop_path(0.1)")
BLOCK = "net block {{ input {c}x{h}x{h}  add {{ identity | " + BRANCH + " }} }}"
# The branch first: `add` may then sum into the branch's result in place, as torchvision's
# `result += input` does (the in-place rewrite writes over a join's first input only).
BRANCH_FIRST = "net block {{ input {c}x{h}x{h}  add {{ " + BRANCH + " | identity }} }}"


class ConvLinear(ChannelLinear):
    """`channel_linear` as a 1x1 convolution over images (the formulation not taken)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


def pair(c: int, h: int, text: str = BLOCK):
    ours = netdsl.loads(text.format(c=c, c4=4 * c, h=h)).compile()
    theirs = CNBlock(c, 1e-6, 0.1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    # in the same order: the bare `scale` comes first, as torchvision's `layer_scale`
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values(), strict=True)))
    return ours, theirs


def as_conv(module):
    for name in ("channel_linear1", "channel_linear2"):
        old = module.branch2.get_submodule(name)
        new = ConvLinear(old.in_features, old.out_features)
        new.load_state_dict(old.state_dict())
        setattr(module.branch2, name, new)
    return module


def median_time(fn, runs: int) -> float:
    """Median CPU time of this process per call: the development machine is shared, and CPU
    time leaves out the time the neighbours hold the cores (with one thread it is the wall
    time of an idle machine)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def measure(module, x, training: bool, runs: int) -> float:
    module.train(training)
    if training:
        xg = x.clone().requires_grad_()
        return median_time(lambda: module(xg).sum().backward(), runs)

    def forward():
        with torch.no_grad():
            module(x)
    return median_time(forward, runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the variants (the best round counts)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, median of {args.runs}, "
          f"best of {args.rounds} rounds")
    print(f"{'shape':>10} {'mode':>6} {'variant':>12} {'ms':>8} {'ratio':>6} {'rel diff':>9}")
    for c, h in ((96, 56), (384, 14)):
        ours, theirs = pair(c, h)
        variants = {"netdsl": ours, "branch first": pair(c, h, BRANCH_FIRST)[0], "1x1 conv": as_conv(pair(c, h)[0])}
        x = torch.randn(args.batch, c, h, h)
        for training in (False, True):
            for m in (theirs, *variants.values()):
                m.train(training)
            if not training:
                variants["fuse"] = ours.eval() and netdsl.backend.optimize.optimize(ours, "fuse")
            else:
                variants.pop("fuse", None)
            best: dict[str, float] = {}
            for _ in range(args.rounds):  # alternate, so that the neighbours' load falls on all alike
                for name, m in (("torchvision", theirs), *variants.items()):
                    t = measure(m, x, training and name != "fuse", args.runs)
                    best[name] = min(best.get(name, t), t)
            theirs.eval()
            with torch.no_grad():
                want = theirs(x)
            for name in ("torchvision", *variants):
                m = theirs if name == "torchvision" else variants[name]
                m.eval()
                with torch.no_grad():
                    diff = ((m(x) - want).abs().max() / want.abs().max()).item()
                mode = "train" if training else "eval"
                print(f"{c}x{h}x{h:<3} {mode:>6} {name:>12} {best[name] * 1e3:8.2f} "
                      f"{best[name] / best['torchvision']:6.3f} {diff:9.1e}")


if __name__ == "__main__":
    main()
