"""What makes builds fast must not change what they build: meta builds do no initialisation
work at all, default builds draw every parameter from torch's own distributions (and
reproducibly under `torch.manual_seed`), the evaluation graph is built when asked for."""

from __future__ import annotations

import copy
import json
import math
import pickle

import pytest
import torch
from torch.overrides import TorchFunctionMode

import netdsl
from netdsl.backend.init import STREAMS, Draws, deferred

from conftest import NETS, SMALL

TORCHVISION_NETS = NETS / "torchvision"


class _Seen(TorchFunctionMode):
    """Records every torch function that reaches Python overrides (nn.init's draws and fills do)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(func)
        return func(*args, **(kwargs or {}))


INIT_WORK = {torch.nn.init.kaiming_uniform_, torch.nn.init.uniform_, torch.nn.init.normal_,
             torch.nn.init.constant_, torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.zero_,
             torch.Tensor.fill_}


def test_meta_init_does_no_initialisation_work():
    net = netdsl.load(TORCHVISION_NETS / "resnet18.net")
    state = net.compile().state_dict()
    for weights in (None, state):
        with _Seen() as seen:  # outermost: sees what the build lets through
            net.compile(weights=weights, init="meta")
        assert not INIT_WORK & set(seen.calls), "an init function ran under init='meta'"
    with _Seen() as seen:  # the oracle: the same build without the skip does this work
        net.compile()
    assert torch.Tensor.fill_ in seen.calls  # BatchNorm's ones (the draws come after, in threads)


def test_meta_build_with_weights_equals_the_weights():
    net = netdsl.load(TORCHVISION_NETS / "resnet18.net")
    state = net.compile().state_dict()
    module = net.compile(weights=state, init="meta")
    assert all(torch.equal(module.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_default_init_follows_torchs_distributions(name):
    """Each parameter lies within the bounds that torch's own init (the modules built by their
    constructors, nothing deferred) gives it, with a uniform's mean and spread; fills (BatchNorm's
    ones and zeros) are equal."""
    from netdsl.backend.fx import _build_modules
    net = netdsl.load(TORCHVISION_NETS / f"{name}.net")
    ours_state, their_state = net.compile().state_dict(), _build_modules(net).state_dict()
    assert list(ours_state) == list(their_state)
    for key, ours in ours_state.items():
        theirs = their_state[key]
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        low, high = theirs.min().item(), theirs.max().item()
        if not ours.is_floating_point() or low == high:  # a fill: equal
            assert torch.equal(ours, theirs), key
            continue
        n = ours.numel()
        # torch's sample's extremes lie just inside the true bound b: below b·(1 − t) with chance
        # about e^(−n·t), so t = 20/n leaves a false alarm at e^(−20) per tensor
        bound = max(abs(low), abs(high)) * (1 + 20 / n)
        assert ours.abs().max().item() <= bound, key
        # a uniform on [-b, b]: mean 0 and standard deviation b/√3, within 6 standard errors
        assert abs(ours.mean().item()) <= 6 * bound / math.sqrt(3 * n), key
        assert abs(ours.std().item() - bound / math.sqrt(3)) <= 6 * bound / math.sqrt(n), key


def test_small_builds_draw_exactly_torchs_values():
    from netdsl.backend.fx import _build_modules
    net = netdsl.loads(SMALL)
    torch.manual_seed(5)
    ours = net.compile().state_dict()
    torch.manual_seed(5)
    theirs = _build_modules(net).state_dict()
    assert all(torch.equal(ours[k], v) for k, v in theirs.items())


def test_only_large_builds_are_deferred():
    """Below DEFER_FROM parameters a build is torch's own, value for value; above, its draws are
    made afterwards in parallel streams (other values, the same distributions)."""
    from netdsl.backend.fx import _build_modules
    from netdsl.backend.init import DEFER_FROM
    for name, deferred_build in (("mobilenet_v3_small", False), ("resnet18", True)):
        net = netdsl.load(TORCHVISION_NETS / f"{name}.net")
        assert (net.total_params() >= DEFER_FROM) == deferred_build
        torch.manual_seed(5)
        ours = net.compile().state_dict()
        torch.manual_seed(5)
        theirs = _build_modules(net).state_dict()
        same = all(torch.equal(ours[k], v) for k, v in theirs.items())
        assert same != deferred_build, name


def test_default_init_is_reproducible_under_manual_seed_whatever_the_threads():
    net = netdsl.load(TORCHVISION_NETS / "resnet18.net")
    threads = torch.get_num_threads()
    states = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(3)
            states.append(net.compile().state_dict())
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(states[0].values(), states[1].values()))
    torch.manual_seed(4)
    other = net.compile().state_dict()
    assert not torch.equal(other["conv1.weight"], states[0]["conv1.weight"])


def test_deferred_draws_keep_their_own_generators_and_other_inits():
    draws = Draws()
    generator = torch.Generator().manual_seed(0)
    with deferred(draws):
        a = torch.nn.init.uniform_(torch.empty(10), -2, 2, generator=generator)  # its own stream: now
        b = torch.nn.init.normal_(torch.empty(10))  # not deferred
        c = torch.nn.init.kaiming_uniform_(torch.empty(5, 4), a=math.sqrt(5))
    assert len(draws.pending) == 1 and draws.pending[0][0] is c
    assert draws.pending[0][2] == pytest.approx(1 / math.sqrt(4))
    assert a.abs().max() <= 2 and b.std() > 0
    draws.run()
    assert c.abs().max() <= 0.5 and c.std() > 0 and not draws.pending and STREAMS >= 1


def test_eval_graph_is_built_when_first_asked_for():
    module = netdsl.load(TORCHVISION_NETS / "googlenet.net").compile(init="meta")
    assert False not in dict.keys(module._graphs)  # not built by compile
    module.eval()
    deploy = [n.target for n in module._graphs[False].nodes if n.op == "call_module"]
    assert not any(t.startswith("aux") for t in deploy)


def test_a_compile_whose_forwards_are_known_builds_each_graph_only_when_asked_for(monkeypatch):
    from netdsl.backend import fx
    path = TORCHVISION_NETS / "googlenet.net"
    reference = netdsl.load(path).compile(init="meta")
    reference.eval()  # both modes' forwards are known now
    code, names = reference.train().code, [n.target for n in reference.graph.nodes if n.op == "call_module"]
    built = []
    real = fx.build_graph
    monkeypatch.setattr(fx, "build_graph", lambda network, training: built.append(training) or real(network, training))
    module = netdsl.load(path).compile()
    module.eval()
    module.train()
    assert built == [] and module.code == code
    assert [n.target for n in module.graph.nodes if n.op == "call_module"] == names  # built now, for its mode
    assert built == [True] and module.graph.owning_module is module and module.graph is module.graph
    # the copies fx makes read the graph: built where it was not
    module.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want = module(x)
        torch.testing.assert_close(copy.deepcopy(module)(x), want)
        torch.testing.assert_close(pickle.loads(pickle.dumps(module))(x), want)
    assert built == [True, False]


def test_a_second_compile_of_the_same_net_reuses_its_generated_forward():
    path = TORCHVISION_NETS / "googlenet.net"
    first, second = (netdsl.load(path).compile(init="meta") for _ in range(2))
    assert type(first).forward is type(second).forward and first.code == second.code
    for a, b in ((first, second), (first.eval(), second.eval())):  # either mode's graph
        assert type(a).forward is type(b).forward
    # each module has graphs and modules of its own, each graph owned by its module
    assert first.graph is not second.graph and first.graph.owning_module is first
    assert first.get_submodule("conv1.conv") is not second.get_submodule("conv1.conv")
    # a graph edited afterwards is generated anew: only build_graph's own graph is looked up
    node = next(n for n in second.graph.nodes if n.op == "output")
    with second.graph.inserting_before(node):
        node.args = (second.graph.call_function(torch.neg, node.args),)
    second.recompile()
    assert "torch.neg" in second.code and "torch.neg" not in first.code
    x = torch.randn(1, 3, 224, 224)
    module = netdsl.load(path).compile().eval()
    edited = netdsl.load(path).compile(weights=module.state_dict())
    edited.eval()
    node = next(n for n in edited.graph.nodes if n.op == "output")
    with edited.graph.inserting_before(node):
        node.args = (edited.graph.call_function(torch.neg, node.args),)
    edited.recompile()
    with torch.no_grad():
        torch.testing.assert_close(edited(x), -module(x))


def test_a_file_loaded_again_reuses_its_checked_net_and_nothing_else():
    text = (NETS / "lenet5.net").read_text()
    a, b = netdsl.loads(text, "lenet5.net"), netdsl.loads(text, "lenet5.net")
    assert a is not b and a.ir is b.ir  # a Network of its own over the IR, which nothing changes
    assert netdsl.loads(text, "other.net").ir is not a.ir  # the file's name is in its spans' reports
    ten = netdsl.loads(text, "lenet5.net", classes=10)
    assert ten.ir is not a.ir and ten.layer(ten.layers[-1]).shape[-1] == 10
    huge = "net huge { input 8 " + "relu " * 6000 + "}"  # larger than any real net: not kept
    assert netdsl.loads(huge).ir is not netdsl.loads(huge).ir
    bad = text.replace("input", "inptu", 1)
    for _ in range(2):  # a failing file is checked, and reported, every time
        with pytest.raises(netdsl.NetDSLError):
            netdsl.loads(bad, "lenet5.net")


def test_check_without_mistakes_imports_neither_difflib_nor_torch(tmp_path):
    """Start-up: `netdsl check` of a good net imports only what it needs (difflib comes with a
    mistake's "did you mean"; torch, networkx and graphviz with compile, summary's graph,
    render); hashlib only if lark itself imports it."""
    import json
    import subprocess
    import sys
    code = ("import sys, json, netdsl.cli\n"
            "try:\n    netdsl.cli.main(['check', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "import lark.lark\nprint(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(NETS / "googlenet.net")], capture_output=True, text=True,
                         check=True, cwd=str(NETS.parent)).stdout.splitlines()
    assert out[0].startswith("ok: googlenet")
    modules = set(json.loads(out[-1]))
    lark_alone = set(json.loads(subprocess.run([sys.executable, "-c", "import sys, json, lark\n"
                                                "print(json.dumps(sorted(sys.modules)))"],
                                               capture_output=True, text=True, check=True).stdout))
    for name in ("difflib", "torch", "networkx", "graphviz", "numpy"):
        assert name not in modules, f"check imported {name}"
    assert "hashlib" not in modules or "hashlib" in lark_alone


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NETDSL_CACHE_DIR", str(folder))
    return folder


def _auto(network, batch=2):
    from netdsl.backend.autotune import choose
    from netdsl.backend.runtime import example_input
    module = network.compile()
    x = example_input(network, batch)
    return module, x, *choose(module, network, x, budget=0.5)


def test_auto_picks_a_path_whose_outputs_equal_eager(cache_dir):
    from netdsl.backend.autotune import CANDIDATES, TOLERANCE
    network = netdsl.loads(SMALL)
    module, x, fast, report = _auto(network)
    assert report["path"] in CANDIDATES and not report["cached"]
    assert report["candidates"]["eager"] > 0 and report["speedup"] > 0
    assert report["candidates"][report["path"]] == min(t for t in report["candidates"].values() if t is not None)
    with torch.inference_mode():
        want, got = module.eval()(x), fast(x)
    assert (got - want).abs().max() <= TOLERANCE * want.abs().max()
    # remembered: the second choice comes from the cache, a JSON file (data, not code)
    data = json.loads((cache_dir / "optimize-choices.json").read_text())
    assert data["format"] == 1 and [v["path"] for v in data["choices"].values()] == [report["path"]]
    assert _auto(network)[3]["cached"] is True
    assert _auto(network, batch=3)[3]["cached"] is False  # another batch: chosen anew


def test_auto_remembers_the_layers_that_take_onednn_calls(cache_dir, monkeypatch):
    """Where `onednn` wins, the report and the cache hold the names of the layers whose oneDNN
    call timed faster; the remembered choice rebuilds those layers, timing none."""
    from netdsl.backend import autotune, onednn
    if not onednn.available():
        pytest.skip("this torch has no oneDNN fused calls")
    calls = []
    monkeypatch.setattr(onednn, "_faster", lambda *a: calls.append(1) or len(calls) % 2 == 1)
    # make onednn the fastest candidate: what is timed here is the choice's bookkeeping
    monkeypatch.setattr(autotune, "_run", lambda fn, x: lambda: 0.5 if onednn.onednn_names(fn) else 1.0)
    network = netdsl.loads(SMALL)
    module, x, fast, report = _auto(network)
    assert report["path"] == "onednn" and calls
    assert report["layers"] == onednn.onednn_names(fast) and 0 < len(report["layers"]) < len(calls)
    entry, = json.loads((cache_dir / "optimize-choices.json").read_text())["choices"].values()
    assert entry["layers"] == report["layers"]
    monkeypatch.setattr(onednn, "_faster", lambda *a: pytest.fail("a remembered choice times nothing"))
    module, x, again, cached = _auto(network)  # a new compile: other weights
    assert cached["cached"] and onednn.onednn_names(again) == report["layers"]
    with torch.inference_mode():
        assert torch.allclose(again(x), module.eval()(x), rtol=1e-4, atol=1e-5)
    entry["layers"] = ["conv", 3]  # not a list of names: the entry is ignored, the choice made again
    (cache_dir / "optimize-choices.json").write_text(json.dumps({"format": 1, "choices": {"k": entry}}))
    assert autotune._read_cache(cache_dir / "optimize-choices.json") == {}


def test_auto_cache_is_ignored_when_corrupt_or_not_ours(cache_dir):
    import os
    network = netdsl.loads(SMALL)
    _auto(network)
    path = cache_dir / "optimize-choices.json"
    good = path.read_text()
    for corrupt in ("{not json", json.dumps({"format": 1, "choices": {k: {"path": "os.system"}
                                                                       for k in json.loads(good)["choices"]}}),
                    "[]", "\xff"):
        path.write_text(corrupt, encoding="latin-1")
        assert _auto(network)[3]["cached"] is False  # ignored, chosen again (and written again)
    path.write_text(good)
    os.chmod(path, 0o666)  # writable by others: anyone could have planted it
    assert _auto(network)[3]["cached"] is False
    path.write_text(good)
    os.chmod(path, 0o644)
    os.chmod(cache_dir, 0o777)
    try:
        assert _auto(network)[3]["cached"] is False  # a folder others can write: not trusted, not written
    finally:
        os.chmod(cache_dir, 0o700)


def test_auto_cache_of_another_user_is_ignored(cache_dir, monkeypatch):
    import os
    from netdsl.backend import autotune
    network = netdsl.loads(SMALL)
    _auto(network)
    real = os.geteuid()
    monkeypatch.setattr(autotune.os, "geteuid", lambda: real + 1)  # as seen by another user
    assert autotune._read_cache(cache_dir / "optimize-choices.json") == {}


def test_network_compile_optimize_auto_and_cli(cache_dir, run_cli, tmp_path):
    network = netdsl.loads(SMALL)
    fast = network.compile(optimize="auto")
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        want = network.compile().eval()  # other weights: only the output's shape is comparable
        assert fast(x).shape == want(x).shape
    path = tmp_path / "small.net"
    path.write_text(SMALL)
    r = run_cli("compile", str(path), "--optimize", "auto")
    assert r.returncode == 0, r.stderr
    assert "optimize: auto chose " in r.stdout and "outputs within tolerance" in r.stdout
