"""`netdsl diff` and `Network.diff`: layers paired by name, then by structure; what changed,
per scope, with parameter and MAC deltas that equal the two summaries' difference."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

import netdsl
from netdsl.cli import main
from netdsl.diff import Change, diff
from netdsl.printer import format_source

from conftest import NETS, ROOT, net_files

PAPER, TORCHVISION = NETS / "googlenet.net", NETS / "torchvision" / "googlenet.net"
FILES = net_files()


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def small(body: str, head: str = "") -> netdsl.Network:
    return netdsl.loads(f"{head}\nnet n {{ input 3x32x32 {body} }}")


BASE = "c1: conv(16, 5, pad=2) r1: relu p1: maxpool(2) c2: conv(32, 3, pad=1) r2: relu flatten fc: linear(10)"


def statuses(d) -> dict[str, int]:
    return {s: d.count(s) for s in ("changed", "added", "removed", "renamed") if d.count(s)}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(NETS)))
def test_a_file_against_itself_and_its_fmt_output_is_no_difference(path, capsys, tmp_path):
    status, out, err = run(capsys, "diff", path, path)
    assert (status, err) == (0, "") and out.endswith("no difference\n"), out
    formatted = tmp_path / path.name
    formatted.write_text(format_source(path.read_text(), str(path)))
    status, out, _ = run(capsys, "diff", path, formatted, "--json")
    doc = json.loads(out)
    assert status == 0 and doc["equal"] and doc["scopes"] == [] and doc["delta"]["params"]["train"] == 0


def test_a_changed_kernel():
    d = small(BASE).diff(small(BASE.replace("conv(16, 5, pad=2)", "conv(16, 3, pad=1)")))
    assert statuses(d) == {"changed": 1}
    (c1,) = [x for x in d.layers if x.status == "changed"]
    assert c1.a.name == c1.b.name == "c1"
    assert c1.changes == (Change("kernel", "5", "3"), Change("pad", "2", "1"))
    assert c1.params == (16 * 3 * 9 + 16) - (16 * 3 * 25 + 16)
    assert "~ c1  conv: kernel 5 -> 3, pad 2 -> 1" in d.text()


def test_an_added_layer_leaves_the_next_ones_alone():
    d = small(BASE).diff(small(BASE.replace("r1: relu", "bn: batchnorm r1: relu")))
    assert statuses(d) == {"added": 1}
    (bn,) = [x for x in d.layers if x.status != "equal"]
    assert (bn.a, bn.b.name, bn.params) == (None, "bn", 32)
    assert "+ bn  batchnorm  16x32x32  +32 params" in d.text()


def test_a_removed_layer():
    d = small(BASE).diff(small(BASE.replace("p1: maxpool(2) ", "")))
    removed = [x for x in d.layers if x.status == "removed"]
    assert [x.a.name for x in removed] == ["p1"]
    # what follows sees a larger input: its shape (and fc's parameters) changed, not its name
    assert {x.a.name for x in d.layers if x.status == "changed"} >= {"c2", "fc"}


def test_a_renamed_layer_is_renamed_not_removed_and_added():
    d = small(BASE).diff(small(BASE.replace("c2:", "conv2:")))
    assert statuses(d) == {"renamed": 1}
    (x,) = [x for x in d.layers if x.status == "renamed"]
    assert (x.a.name, x.b.name, x.changes) == ("c2", "conv2", ())
    assert "= c2 -> conv2  renamed" in d.text()


def test_layers_named_differently_throughout_still_pair():
    """Nothing pairs by name: the structure alone finds the renamed layers and the one change."""
    other = re.sub(r"\b([a-z]+)(\d): ", r"layer_\1_\2: ", BASE).replace("fc: linear(10)", "logits: linear(100)")
    d = small(BASE).diff(small(other))
    assert statuses(d) == {"renamed": 5, "changed": 1}
    (fc,) = [x for x in d.layers if x.status == "changed"]
    assert (fc.a.name, fc.b.name, fc.changes[0]) == ("fc", "logits", Change("out", "10", "100"))


def test_a_changed_op_and_changed_inputs():
    res = "c: conv(8, 3, pad=1) r: relu d: conv(8, 3, pad=1) s: add { from r | identity }"
    d = small(res).diff(small(res.replace("from r", "from c")))
    (s,) = [x for x in d.layers if x.status != "equal"]
    assert s.a.name == "s" and s.changes == (Change("inputs", "r, s.branch2.identity1", "c, s.branch2.identity1"),)
    d = small(BASE).diff(small(BASE.replace("r1: relu", "r1: sigmoid")))
    (r1,) = [x for x in d.layers if x.status != "equal"]
    assert r1.changes == (Change("op", "relu", "sigmoid"),)


def test_heads_added_and_removed():
    base = BASE.replace("flatten fc", "probe: head { global_avgpool flatten linear(2) } flatten fc")
    d = small(BASE).diff(small(base))
    assert [(h.status, h.b) for h in d.heads] == [("added", "probe")]
    assert d.count("added") == 3 and "+ probe  deploy head" in d.text()
    d = small(base).diff(small(base.replace("probe: head", "probe: train head")))
    assert [(h.status, h.train_a, h.train_b) for h in d.heads] == [("changed", False, True)]
    assert not d.equal and "probe  deploy -> train" in d.text()


@pytest.mark.parametrize("pair", [(PAPER, TORCHVISION), (NETS / "vgg16.net", NETS / "vgg19.net"),
                                  (NETS / "lenet5.net", NETS / "alexnet.net")],
                         ids=["googlenet", "vgg", "lenet-alexnet"])
def test_deltas_equal_the_summaries_difference(pair, capsys):
    a, b = (netdsl.load(p).summary().totals for p in pair)
    status, out, _ = run(capsys, "diff", *pair, "--json")
    doc = json.loads(out)
    assert status == 1
    assert doc["delta"] == {"params": {"deploy": b["params_deploy"] - a["params_deploy"],
                                       "train": b["params"] - a["params"]},
                            "macs": {"deploy": b["macs_deploy"] - a["macs_deploy"], "train": b["macs"] - a["macs"]}}
    # the layers' own deltas add up to it too, scope by scope
    assert sum(s["params"] for s in doc["scopes"]) == b["params"] - a["params"]
    assert sum(s["macs"] for s in doc["scopes"]) == b["macs"] - a["macs"]
    assert all(s["params"] == sum(x["params"] for x in s["layers"]) for s in doc["scopes"])


def _googlenet_findings(d) -> dict:
    changed = [x for x in d.layers if x.status == "changed"]
    return {
        # the "5x5" branch: in each of the 9 Inception blocks, a 5x5 conv that is 3x3 in torchvision
        "5x5": sorted(x.a.name.split(".")[0] for x in changed if Change("kernel", "5", "3") in x.changes),
        # a BatchNorm after each of torchvision's convs
        "bn": sum(x.status == "added" and x.b.op_name == "batchnorm" and x.b.inputs[0].op_name == "conv"
                  for x in d.layers),
        "lrn": sorted(x.a.name for x in d.layers if x.status == "removed" and x.a.op_name == "lrn"),
        "pools": sorted({str(c) for x in changed if x.a.op_name == "maxpool" for c in x.changes}),
        "aux": sorted((s.a, x.a.op_name, str(c)) for s in d.scopes if s.a in ("aux1", "aux2")
                      for x in s.differences if x.status == "changed" for c in x.changes),
    }


def test_the_paper_googlenet_against_torchvisions_names_the_known_differences(capsys):
    d = netdsl.load(PAPER).diff(netdsl.load(TORCHVISION))
    found = _googlenet_findings(d)
    assert found["5x5"] == ["inception3a", "inception3b", "inception4a", "inception4b", "inception4c",
                            "inception4d", "inception4e", "inception5a", "inception5b"]
    assert found["bn"] == sum(x.op_name == "conv" for x in netdsl.load(TORCHVISION).ir) == 3 + 9 * 6 + 2
    assert found["lrn"] == ["lrn1", "lrn2"]
    assert found["pools"] == ["ceil_mode false -> true", "kernel 3 -> 2"]  # branch 4's pool, pool4
    assert [a for a in found["aux"] if a[1] == "avgpool"] == [
        ("aux1", "avgpool", "avgpool(5, stride=3) -> adaptive_avgpool(4)"),
        ("aux2", "avgpool", "avgpool(5, stride=3) -> adaptive_avgpool(4)")]
    # the text says the same in a few lines: the nine blocks are shown once, as are the two heads
    # (B's names left out of the patterns: another engineer may relabel torchvision's file)
    status, out, _ = run(capsys, "diff", PAPER, TORCHVISION)
    assert status == 1 and len(out.splitlines()) < 40
    for line in (r"~ branch3\.conv2 -> \S+ +conv: kernel 5 -> 3, pad 2 -> 1, bias true -> false",
                 r"~ branch4\.maxpool1(?: -> \S+)? +maxpool: ceil_mode false -> true", r"- lrn1, lrn2 \(×2\) +lrn",
                 r"inception3a\S*, inception3b\S*, … inception5b\S* \(9 inception blocks alike\)",
                 r"aux1\S*, aux2\S* \(2 auxiliary blocks alike\)",
                 r"~ pool\S* +avgpool\(5, stride=3\) -> adaptive_avgpool\(4\)", r"\+ \S+ +batchnorm\(eps=0.001\)"):
        assert re.search(line, out), line


def test_the_pairing_does_not_depend_on_the_names():
    """torchvision's file relabelled (its blocks and layers named otherwise, as a state_dict
    relabelling would): the same differences, only the names differ."""
    text = TORCHVISION.read_text()
    relabelled = re.sub(r"\binception(\d\w)\b", r"mixed_\1", text)
    relabelled = re.sub(r"\b(conv|bn|pool|fc1|fc2|dropout|maxpool\d|avgpool|fc): ", r"\1_x: ", relabelled)
    assert relabelled != text
    paper = netdsl.load(PAPER)
    d0, d1 = paper.diff(netdsl.load(TORCHVISION)), paper.diff(netdsl.loads(relabelled))
    f0, f1 = _googlenet_findings(d0), _googlenet_findings(d1)
    f1["5x5"] = [name.replace("mixed_", "inception") for name in f1["5x5"]]
    assert f0 == f1
    assert statuses(d1)["changed"] == statuses(d0)["changed"]
    assert statuses(d1)["added"] == statuses(d0)["added"] and statuses(d1)["removed"] == statuses(d0)["removed"]


def test_the_json_schema(capsys):
    status, out, _ = run(capsys, "diff", PAPER, TORCHVISION, "--json")
    doc = json.loads(out)
    assert set(doc) == {"a", "b", "equal", "counts", "delta", "heads", "scopes"}
    assert doc["a"] == {"file": str(PAPER), "net": "googlenet", "layers": 158,
                        "params": {"deploy": 6998552, "train": 13378280},
                        "macs": {"deploy": 1582671872, "train": 1591044096}}
    n_b = len(netdsl.load(TORCHVISION).layers)
    assert doc["b"]["layers"] == n_b and doc["b"]["params"]["deploy"] == 6624904 and doc["equal"] is False
    assert set(doc["counts"]) == {"equal", "renamed", "changed", "added", "removed"}
    c = doc["counts"]  # every layer once, the input too: paired, or alone on its side
    assert (c["equal"] + c["renamed"] + c["changed"] + c["removed"], c["equal"] + c["renamed"] + c["changed"]
            + c["added"]) == (158 + 1, n_b + 1)
    assert doc["heads"] == [{"status": "equal", "a": f"aux{k}", "b": f"aux{k}", "train_only": [True, True]}
                            for k in (1, 2)]
    scope = next(s for s in doc["scopes"] if s["a"] == "inception3a")
    assert set(scope) == {"a", "b", "block", "params", "macs", "layers"}
    assert scope["b"] is not None and scope["block"][0] == "inception"
    layer = next(x for x in scope["layers"] if x["a"] == "inception3a.branch3.conv2")
    assert isinstance(layer["b"], str)
    assert layer == {"status": "changed", "a": "inception3a.branch3.conv2", "b": layer["b"],
                     "op": ["conv", "conv"], "describe": ["conv(32, 5, pad=2)", "conv(32, 3, pad=1, bias=false)"],
                     "shape": [[32, 28, 28], [32, 28, 28]],
                     "changes": [{"what": "kernel", "a": "5", "b": "3"}, {"what": "pad", "a": "2", "b": "1"},
                                 {"what": "bias", "a": "true", "b": "false"}],
                     "params": 4608 - 12832, "macs": 3612672 - 10035200}
    top = doc["scopes"][0]
    assert (top["a"], top["b"], top["block"]) == ("", "", [None, None])


def test_exit_codes_and_a_file_with_errors(capsys, tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("net n { input 3x8x8 cnov(8, 3) }")
    status, out, err = run(capsys, "check", bad)
    assert status == 1
    check_err = err
    for argv in (("diff", bad, PAPER), ("diff", PAPER, bad)):
        status, out, err = run(capsys, *argv)
        assert (status, out, err) == (2, "", check_err)  # the diagnostics, as check prints them
    status, _, err = run(capsys, "diff", bad, bad)
    assert status == 2 and err == check_err * 2
    status, _, err = run(capsys, "diff", PAPER, tmp_path / "missing.net")
    assert status == 2 and err.startswith("netdsl: error: cannot read")
    assert run(capsys, "diff", PAPER, PAPER)[0] == 0
    assert run(capsys, "diff", PAPER, TORCHVISION)[0] == 1


def test_standard_input_and_no_colour_off_a_terminal():
    p = subprocess.run([sys.executable, "-m", "netdsl", "diff", "-", str(PAPER)], input=PAPER.read_text(),
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "--- <stdin>  (158 layers)"
    p = subprocess.run([sys.executable, "-m", "netdsl", "diff", str(PAPER), str(TORCHVISION)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 1 and "\x1b[" not in p.stdout
    assert "\x1b[32m+\x1b[0m" in netdsl.load(PAPER).diff(netdsl.load(TORCHVISION)).text(colour=True)


def test_diff_stays_near_linear():
    """Twice the layers take about twice the time (not four times), renamed throughout and
    with a change in every block, where nothing pairs by name."""
    def net(n: int, label: str, kernel: int) -> netdsl.Network:
        return netdsl.loads(f"block b(c) {{ conv(c, {kernel}, pad=same) relu conv(c, 1) relu }}\n"
                            f"net big {{ input 8x8x8 {label}: repeat {n} {{ b(8) }} flatten linear(10) }}",
                            max_layers=10 ** 6)

    def seconds(n: int) -> float:
        a, b = net(n, "x", 3), net(n, "y", 5)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            d = diff(a, b)
            best = min(best, time.perf_counter() - t)
        assert d.count("changed") == n and d.count("renamed") == 3 * n
        return best

    small_t, large_t = seconds(500), seconds(2000)
    assert large_t < 8 * small_t, (small_t, large_t)  # linear: 4x; quadratic: 16x



def test_every_row_says_what_changed(capsys):
    """Folded rows of layers whose shapes differ by layer say so rather than nothing."""
    status, out, _ = run(capsys, "diff", NETS / "torchvision" / "mobilenet_v3_small.net",
                         NETS / "torchvision" / "mobilenet_v3_large.net")
    rows = [line for line in out.splitlines() if line[:4] in ("  ~ ", "  + ", "  - ", "  = ")]
    assert status == 1 and len(rows) > 50
    assert not [r for r in rows if r.rstrip().endswith(":")]
    assert "batchnorm: other shapes" in out


@pytest.mark.parametrize("name", ["efficientnet_v2_s", "regnet_y_400mf", "shufflenet_v2_x1_0"])
def test_a_net_relabelled_throughout_is_only_renamed(name):
    """Every label changed (the references too): hundreds of layers, none paired by name where
    they were labelled, all found again by structure."""
    text = (NETS / "torchvision" / f"{name}.net").read_text()
    relabelled = re.sub(r"\b([a-z_]\w*)(\s*):(?!\s*[a-z_]\w*\s*=)", r"q_\1\2:", text)
    relabelled = re.sub(r"\bfrom (\w+)", r"from q_\1", relabelled)
    a, b = netdsl.loads(text), netdsl.loads(relabelled)
    d = a.diff(b)
    assert d.count("renamed") > 50
    assert d.count("renamed") + d.count("equal") == len(a.layers) + 1, statuses(d)


def test_layers_inserted_before_netdsls_own_names_shift_them():
    """Unlabelled layers are named by netdsl (`conv2`: the second conv); one inserted before
    them moves the names on, and the structure, not the name, says which layer is which."""
    a = small("conv(16, 3, pad=1) relu conv(32, 3, pad=1) relu flatten linear(10)")
    b = small("conv(16, 3, pad=1) relu conv(8, 3, pad=1) relu conv(32, 3, pad=1) relu flatten linear(10)")
    d = a.diff(b)
    assert [(x.status, x.a and x.a.name, x.b and x.b.name) for x in d.layers if x.status != "equal"] == [
        ("added", None, "conv2"), ("added", None, "relu2"), ("changed", "conv2", "conv3"),
        ("renamed", "relu2", "relu3")]
    (conv,) = [x for x in d.layers if x.status == "changed"]
    assert conv.changes == (Change("params", "4,640", "2,336"),)  # its input has 8 channels, not 16


def test_every_pair_of_nets_accounts_for_every_layer():
    """All 19 x 19 pairs of nets/: each layer of each side counted once, the scopes' deltas
    adding up to the totals', equal only against itself, and the text made."""
    nets = [netdsl.load(p) for p in FILES]
    for a in nets:
        for b in nets:
            d = a.diff(b)
            doc = d.to_dict()
            c = doc["counts"]
            assert c["equal"] + c["renamed"] + c["changed"] + c["removed"] == len(a.layers) + 1
            assert c["equal"] + c["renamed"] + c["changed"] + c["added"] == len(b.layers) + 1
            for what in ("params", "macs"):
                assert sum(s[what] for s in doc["scopes"]) == doc["delta"][what]["train"], (a.filename, b.filename)
            assert d.equal == (a is b) and d.text()
