"""The lecture's tables beside netdsl's numbers, as Markdown for the README.

    .venv/bin/python docs/lecture_tables.py          # print the tables
    .venv/bin/python docs/lecture_tables.py --write  # replace them in README.md

The lecture's figures are transcribed below from ../shared/seed/000_4e3e6ef40ca9bfdf.txt;
netdsl's come from the nets in nets/. tests/test_readme.py fails when README.md and this
script's output differ, so the README's side-by-side tables cannot go stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netdsl  # noqa: E402

BEGIN, END = "<!-- lecture-tables:begin -->", "<!-- lecture-tables:end -->"

# GoogLeNet, the lecture's version of the paper's Table 1: name -> (output, params, ops).
GOOGLENET_TABLE = [
    ("conv1", "112×112×64", "2.7K", "34M"),
    ("conv2_reduce + conv2", "56×56×192", "112K", "360M"),
    ("inception3a", "28×28×256", "159K", "128M"),
    ("inception3b", "28×28×480", "380K", "304M"),
    ("inception4a", "14×14×512", "364K", "73M"),
    ("inception4b", "14×14×512", "437K", "88M"),
    ("inception4c", "14×14×512", "463K", "100M"),
    ("inception4d", "14×14×528", "580K", "119M"),
    ("inception4e", "14×14×832", "840K", "170M"),
    ("inception5a", "7×7×832", "1072K", "54M"),
    ("inception5b", "7×7×1024", "1388K", "71M"),
    ("fc", "1×1×1000", "1000K", "1M"),
]

ALEXNET_TABLE = [  # name, output (H W C), params
    ("conv1", "55 55 96", 34944), ("pool1", "27 27 96", 0), ("conv2", "27 27 256", 614656),
    ("pool2", "13 13 256", 0), ("conv3", "13 13 384", 885120), ("conv4", "13 13 384", 1327488),
    ("conv5", "13 13 256", 884992), ("pool5", "6 6 256", 0), ("fc6", "4096", 37752832),
    ("fc7", "4096", 16781312), ("fc8", "1000", 4097000),
]

LENET_TABLE = [  # lecture row, output, weight size; netdsl layer
    ("Conv (C_out=6, K=5, P=2, S=1)", "6 x 28 x 28", "6 x 1 x 5 x 5", "conv1"),
    ("Sigmoid", "6 x 28 x 28", "", "s1"),
    ("AvgPool (K=2, S=2)", "6 x 14 x 14", "", "pool1"),
    ("Conv (C_out=16, K=5, P=0, S=1)", "16 x 10 x 10", "16 x 6 x 5 x 5", "conv2"),
    ("Sigmoid", "16 x 10 x 10", "", "s2"),
    ("AvgPool (K=2, S=2)", "16 x 5 x 5", "", "pool2"),
    ("Flatten", "120", "", "flatten1"),
    ("(no row)", "", "", "fc1"),
    ("(no row)", "", "", "s3"),
    ("Linear (120->84)", "84", "120 x 84", "fc2"),
    ("Sigmoid", "84", "", "s4"),
    ("Linear (84->10)", "10", "84 x 10", "fc3"),
]

# GoogLeNet's stem memory table: layer, memory (KB), params (K)
GOOGLENET_STEM = [("conv1", 3136, 9), ("pool1", 784, 0), ("conv2_reduce", 784, 4), ("conv2", 2352, 111),
                  ("pool2", 588, 0)]

VGG16_CLASSIFIER = [  # layer, memory (KB), params (K), flop (M)
    ("flatten1", 98, None, None), ("fc6", 16, 102760, 103), ("fc7", 16, 16777, 17), ("fc8", 4, 4096, 4)]


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _hwc(shape) -> str:
    return "×".join(map(str, list(shape[1:]) + [shape[0]])) if len(shape) == 3 else f"1×1×{shape[0]}"


def _ki(n: int) -> str:
    return f"{n / 1024:,.1f}K"


def _m(n: int) -> str:
    return f"{n / 1e6:,.1f}M"


def _weights(net, names) -> int:
    """Weights only (no biases): what the paper's params column counts."""
    total = 0
    for name in names:
        d = net.layer(name)
        if d.op_name == "conv":
            k = d.attrs["kernel"]
            total += d.attrs["out"] * net.layer(d.input_names[0]).shape[0] * k[0] * k[1]
        elif d.op_name == "linear":
            total += d.attrs["out"] * net.layer(d.input_names[0]).shape[0]
    return total


def _scope(net, prefixes) -> list[str]:
    return [n for n in net.layers if any(n == p or n.startswith(p + ".") for p in prefixes)]


def googlenet() -> str:
    net = netdsl.load(ROOT / "nets" / "googlenet.net")
    out = ["| layer | output: lecture | netdsl | params: lecture | netdsl weights (biases) "
           "| ops: lecture | netdsl MACs | |",
           "|---|---|---|---|---|---|---|---|"]
    for name, lec_out, lec_params, lec_ops in GOOGLENET_TABLE:
        names = ["conv2_reduce", "conv2"] if "+" in name else _scope(net, [name])
        last = net.layer(names[-1]).shape
        weights = _weights(net, names)
        params = sum(net.layer(n).params for n in names)
        macs = sum(net.layer(n).macs for n in names)
        ok_params = abs(weights / 1024 - float(lec_params[:-1])) <= 1.5
        ok_ops = abs(macs / 1e6 - float(lec_ops[:-1])) <= 0.9
        mark = "✓" if ok_params and ok_ops else "✗ " + " and ".join(
            w for w, ok in (("params", ok_params), ("ops", ok_ops)) if not ok)
        out.append(f"| {name} | {lec_out} | {_hwc(last)} | {lec_params} | {_ki(weights)} ({params - weights:,}) "
                   f"| {lec_ops} | {_m(macs)} | {mark} |")
    t = net.summary().totals
    out.append(f"| **total** | | | | {t['params_deploy']:,} deploy, {t['params']:,} with aux heads "
               f"| | {_m(t['macs_deploy'])} deploy, {_m(t['macs'])} | |")
    out += ["", "GoogLeNet's stem, from the lecture's memory table (memory in KB = 1024 bytes, params in K = 1000):",
            "", "| layer | memory: lecture | netdsl | params: lecture | netdsl |", "|---|---|---|---|---|"]
    for name, mem, k in GOOGLENET_STEM:
        d = net.layer(name)
        mark = "" if (d.params / 1000 - k) < 0.5 and 4 * _prod(d.shape) == mem * 1024 else " ✗"
        out.append(f"| {name} | {mem:,} | {4 * _prod(d.shape) // 1024:,} | {k} | {d.params / 1000:,.1f}{mark} |")
    stem = ["conv1", "pool1", "conv2_reduce", "conv2", "pool2"]
    mem = sum(4 * _prod(net.layer(n).shape) for n in stem)
    params = sum(net.layer(n).params for n in stem)
    out.append(f"| **total 224 to 28** | 7.5 MB | {mem / 2**20:.2f} MiB | 124K | {params / 1000:,.1f}K |")
    return "\n".join(out)


def _prod(shape) -> int:
    n = 1
    for x in shape:
        n *= x
    return n


def alexnet() -> str:
    net = netdsl.load(ROOT / "nets" / "alexnet.net")
    out = ["| layer | output: lecture | netdsl | params: lecture | netdsl | MACs (netdsl) |",
           "|---|---|---|---|---|---|"]
    for name, lec_out, lec_params in ALEXNET_TABLE:
        d = net.layer(name)
        shape = d.shape
        ours = " ".join(map(str, [*shape[1:], shape[0]])) if len(shape) == 3 else str(shape[0])
        mark = "" if (ours, d.params) == (lec_out, lec_params) else " ✗"
        out.append(f"| {name} | {lec_out} | {ours} | {lec_params:,} | {d.params:,}{mark} | {d.macs:,} |")
    t = net.summary().totals
    out.append(f"| **total** | | | 62.378.344 | {t['params']:,} | {t['macs']:,} |")
    return "\n".join(out)


def lenet() -> str:
    net = netdsl.load(ROOT / "nets" / "lenet5.net")
    out = ["| lecture row | output: lecture | weights: lecture | netdsl layer | output | weights | params |",
           "|---|---|---|---|---|---|---|"]
    for row, lec_out, lec_w, name in LENET_TABLE:
        d = net.layer(name)
        w = ""
        if d.op_name in ("conv", "linear"):
            cin = net.layer(d.input_names[0]).shape[0]
            k = d.attrs.get("kernel", (None,))
            w = f"{d.attrs['out']} x {cin}" + (f" x {k[0]} x {k[1]}" if d.op_name == "conv" else "")
        out.append(f"| {row} | {lec_out} | {lec_w} | `{name}: {net.describe(name)}` "
                   f"| {' x '.join(map(str, d.shape))} "
                   f"| {w} | {d.params:,} |")
    out.append(f"| **total** | | | | | | {net.total_params():,} |")
    return "\n".join(out)


def vgg() -> str:
    out = ["| net | params: lecture | netdsl | MACs (netdsl) |", "|---|---|---|---|"]
    for name, lec in (("vgg16", "138 million"), ("vgg19", "(not given)")):
        t = netdsl.load(ROOT / "nets" / f"{name}.net").summary().totals
        out.append(f"| {name} | {lec} | {t['params']:,} | {t['macs']:,} |")
    net = netdsl.load(ROOT / "nets" / "vgg16.net")
    out += ["", "VGG16's classifier, from the lecture's comparison table (memory in KB, params in K, flop in M):", "",
            "| layer | memory: lecture | netdsl | params: lecture | netdsl weights | flop: lecture | netdsl MACs |",
            "|---|---|---|---|---|---|---|"]
    for name, mem, k, flop in VGG16_CLASSIFIER:
        d = net.layer(name)
        weights = _weights(net, [name])
        out.append(f"| {name} | {mem} | {4 * _prod(d.shape) / 1024:,.0f} | {'' if k is None else f'{k:,}'} "
                   f"| {weights / 1000:,.0f} | {'' if flop is None else flop} | {d.macs / 1e6:,.1f} |")
    stem = [n for n in net.layers[: net.layers.index("stage3.maxpool1") + 1] if net.layer(n).op_name != "relu"]
    mem = sum(4 * _prod(net.layer(n).shape) for n in stem)
    params = sum(net.layer(n).params for n in stem)
    out.append(f"| **224 to 28** (conv and pool rows) | 42.9 MB | {mem / 2**20:.1f} MiB | 1.1M | {params:,} | | |")
    return "\n".join(out)


def tables() -> str:
    return "\n\n".join([
        "#### LeNet-5\n\n" + lenet(),
        "#### AlexNet\n\n" + alexnet(),
        "#### VGG16 and VGG19\n\n" + vgg(),
        "#### GoogLeNet\n\n" + googlenet(),
    ])


def main() -> None:
    text = tables()
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        doc = readme.read_text()
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        readme.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])
    else:
        print(text)


if __name__ == "__main__":
    main()
