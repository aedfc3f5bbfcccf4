"""netdsl import on every convolutional classification model of torchvision 0.29: per model, the
imported file's lines, the blocks found, the import time, whether the parameter count equals
torchvision's, whether the compiled net loads torchvision's state_dict by name with strict=True,
and the largest output difference relative to the output's largest value (evaluation mode, random
weights and BatchNorm statistics).

    python bench/bench_import.py                  # all of them (the large ones take a while)
    python bench/bench_import.py resnet efficientnet_b0 --size 64

Inputs are small (--size, default 64; Inception-v3 299, which its auxiliary head needs) to keep
it practical; a model that does not import prints the one-line error in the table."""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from torchvision_models import randomise_norms  # noqa: E402  (tests/: one definition for both)

MODELS = (["alexnet"] + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
          + [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
          + ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]
          + [f"densenet{d}" for d in (121, 161, 169, 201)] + ["googlenet", "inception_v3"]
          + ["squeezenet1_0", "squeezenet1_1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
          + [f"mnasnet{w}" for w in ("0_5", "0_75", "1_0", "1_3")]
          + [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")]
          + [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_v2_{s}" for s in "sml"]
          + [f"regnet_{k}_{w}" for k in "yx" for w in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")]
          + ["regnet_y_128gf"] + [f"convnext_{s}" for s in ("tiny", "small", "base", "large")])


def run(name: str, size: int) -> dict:
    import torch
    import torchvision

    import netdsl
    from netdsl.backend.errors import UnmappableModule

    row = {"model": name}
    torch.manual_seed(0)
    model = randomise_norms(getattr(torchvision.models, name)().eval())
    side = max(size, 299) if name == "inception_v3" else size  # its auxiliary head needs 299
    shape = (3, side, side)
    start = time.perf_counter()
    try:
        text = netdsl.from_torch(model, shape, name)
    except UnmappableModule as e:
        row["error"] = str(e)
        return row
    row["time"] = time.perf_counter() - start
    row["lines"] = len(text.splitlines())
    row["blocks"] = len(re.findall(r"^block ", text, re.M))
    net = netdsl.loads(text)
    row["params"] = net.total_params() == sum(p.numel() for p in model.parameters())
    compiled = net.compile()
    try:
        compiled.load_state_dict(model.state_dict(), strict=True)
        row["strict"] = True
    except RuntimeError:
        row["strict"] = False
    compiled.eval()
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = compiled(x), model(x)
    a = a[0] if isinstance(a, (tuple, list)) else a
    row["error_rel"] = ((a - b).abs().max() / b.abs().max()).item()
    return row


def main() -> None:
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("only", nargs="*", help="models whose name starts with one of these (default: all)")
    p.add_argument("--size", type=int, default=64, help="input height and width (default 64)")
    args = p.parse_args()
    models = [m for m in MODELS if not args.only or any(m.startswith(o) for o in args.only)]
    print("| model | lines | blocks | import s | params equal | strict load | max rel. error |")
    print("| --- | ---: | ---: | ---: | --- | --- | ---: |")
    for name in models:
        r = run(name, args.size)
        if "error" in r:
            print(f"| {name} | | | | | | {r['error']} |", flush=True)
            continue
        yes = lambda v: "yes" if v else "NO"  # noqa: E731
        print(f"| {name} | {r['lines']} | {r['blocks']} | {r['time']:.1f} | {yes(r['params'])} | {yes(r['strict'])} "
              f"| {r['error_rel']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
