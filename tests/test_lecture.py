"""The lecture's networks reproduce the reference numbers exactly: every layer's output shape,
params and MACs, every Inception block, and the deploy and training totals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import netdsl
from conftest import LECTURE_NETS, NETS, ROOT

REFERENCE = ROOT.parent / "shared" / "reference" / "lecture_numbers.json"

# The headline figures, kept here too so the suite means something without shared/.
TOTALS = {
    "lenet5": dict(input=(1, 28, 28), params=61_706, macs=416_520),
    "alexnet": dict(input=(3, 227, 227), params=62_378_344, macs=1_135_256_096),
    "vgg16": dict(input=(3, 224, 224), params=138_357_544, macs=15_470_264_320),
    "vgg19": dict(input=(3, 224, 224), params=143_667_240, macs=19_632_062_464),
    "googlenet": dict(input=(3, 224, 224), params=13_378_280, macs=1_591_044_096,
                      params_deploy=6_998_552, macs_deploy=1_582_671_872),
}


@pytest.fixture(scope="module")
def summaries():
    return {n: netdsl.load(NETS / f"{n}.net").summary().to_dict() for n in LECTURE_NETS}


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.skip("shared/reference/lecture_numbers.json is not beside this checkout")
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", LECTURE_NETS)
def test_totals(summaries, name):
    s, want = summaries[name], TOTALS[name]
    assert tuple(s["input"]) == want["input"]
    assert s["totals"]["params"] == want["params"]
    assert s["totals"]["macs"] == want["macs"]
    if "params_deploy" in want:
        assert s["totals"]["params_deploy"] == want["params_deploy"]
        assert s["totals"]["macs_deploy"] == want["macs_deploy"]
    else:  # no training-only heads: deploy is everything
        assert s["totals"]["params_deploy"] == want["params"]


def _by_position(rows, ref_layers):
    """Match the reference's layers to ours: same order, same shapes (its names are its own)."""
    ours = [(r["output_shape"], r["params"], r["macs"], r["activation_bytes"]) for r in rows]
    theirs = [(x["output_shape"], x["params"], x["macs"], x["activation_bytes"]) for x in ref_layers.values()]
    return ours, theirs


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg16", "vgg19"])
def test_every_layer_equals_reference(summaries, reference, name):
    ours, theirs = _by_position(summaries[name]["layers"], reference[name]["layers"])
    assert ours == theirs


def test_alexnet_named_layers(summaries, reference):
    rows = {r["name"]: r for r in summaries["alexnet"]["layers"]}
    for name, want in reference["alexnet"]["layers"].items():
        got = rows[name if name != "flatten" else "flatten1"]  # ours is unlabelled: an automatic name
        assert (got["output_shape"], got["params"], got["macs"]) == \
            (want["output_shape"], want["params"], want["macs"]), name


def test_googlenet_blocks(summaries, reference):
    blocks = {b["name"]: b for b in summaries["googlenet"]["blocks"]}
    layers = summaries["googlenet"]["layers"]
    for name, want in reference["googlenet"]["blocks"].items():
        if name in blocks:
            got = blocks[name]
        else:  # the aux heads are scopes: roll their layers up
            inside = [r for r in layers if r["name"].startswith(name + ".")]
            got = dict(params=sum(r["params"] for r in inside), macs=sum(r["macs"] for r in inside),
                       output_shape=inside[-1]["output_shape"], train_only=inside[-1]["train_only"])
        assert (got["params"], got["macs"], got["output_shape"]) == \
            (want["params"], want["macs"], want["output_shape"]), name
        assert got["train_only"] == want.get("train_only", False), name


def test_googlenet_stem_and_classifier(summaries, reference):
    rows = {r["name"]: r for r in summaries["googlenet"]["layers"]}
    for name, want in reference["googlenet"]["layers"].items():
        got = rows[name]
        assert (got["output_shape"], got["params"], got["macs"], got["activation_bytes"]) == \
            (want["output_shape"], want["params"], want["macs"], want["activation_bytes"]), name


def test_googlenet_outputs(summaries):
    outs = summaries["googlenet"]["outputs"]
    assert [(o["name"], o["shape"], o["train_only"]) for o in outs] == [
        ("fc", [1000], False), ("aux1", [1000], True), ("aux2", [1000], True)]


def test_googlenet_memory_table(summaries):
    """The lecture's stem memory table, in KB: 3136, 784, 784, 2352, 588."""
    rows = {r["name"]: r for r in summaries["googlenet"]["layers"]}
    kib = [rows[n]["activation_bytes"] / 1024 for n in ("conv1", "pool1", "conv2_reduce", "conv2", "pool2")]
    assert kib == [3136, 784, 784, 2352, 588]


def test_shared_checker_agrees(reference):
    """The project-independent checker in shared/checks, run on our CLI."""
    import subprocess
    import sys
    checker = ROOT.parent / "shared" / "checks" / "lecture_numbers.py"
    if not checker.exists():
        pytest.skip("shared/checks is not beside this checkout")
    exe = Path(sys.executable).with_name("netdsl")
    p = subprocess.run([sys.executable, str(checker), str(exe), str(ROOT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().splitlines()[-1] == "78 of 78 lecture figures reproduced"


def test_parameters_can_be_overridden():
    net = netdsl.load(NETS / "googlenet.net", classes=10)
    assert net.total_params(train=False) == 6_998_552 - 1_025_000 + (1024 * 10 + 10)
    assert [net.layer(o.layer.name).shape for o in net.outputs] == [(10,), (10,), (10,)]
