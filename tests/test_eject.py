"""`Network.eject` and `netdsl eject`: the PyTorch file it writes, run where netdsl cannot be
imported (`python -I` in a temporary folder, `netdsl` blocked in `sys.modules`), against the
compiled module, the oracle: the same state_dict keys (loaded with strict=True), equal outputs
(random weights, random BatchNorm statistics) in evaluation mode, and in training mode for nets
with training-only heads; ruff passes on it. Every net in nets/, and every op's examples (the
registry-wide way of tests/test_registry.py), each example alone and as the item of a group."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import BASIC_BY_NAME, NETS, SMALL, randomise

import netdsl
from netdsl.eject import camel
from netdsl.ops import REGISTRY

TOLERANCE = 1e-6  # max|a - b| <= TOLERANCE * max|b|
RUFF = Path(sys.executable).parent / "ruff"
# the largest nets: minutes on a busy machine together, so that `-m "not slow"` leaves them out
SLOW = {"efficientnet_v2_s", "efficientnet_b0", "mobilenet_v3_large", "lraspp_mobilenet_v3_large", "convnext_tiny"}

# Run in the ejected file's folder, with netdsl unimportable: for each case, the class built,
# its state_dict loaded strictly, the outputs of each mode saved (the same seed before each
# forward as the oracle's, for dropout), and the state_dict's keys in order.
RUNNER = r'''
import importlib.util, json, sys
sys.modules["netdsl"] = None  # `import netdsl` now fails, installed or not
import torch
torch.set_num_threads(1)
results = {}
for case in json.load(open("cases.json")):
    spec = importlib.util.spec_from_file_location(case["module"], case["module"] + ".py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, case["cls"])()
    net.load_state_dict(torch.load(case["module"] + ".state.pt"), strict=True)
    x = torch.load(case["module"] + ".x.pt")
    outputs = {}
    for mode in case["modes"]:
        net.train(mode == "train")
        torch.manual_seed(0)
        with torch.no_grad():
            y = net(x)
        outputs[mode] = (list(getattr(y, "_fields", ())), list(y) if isinstance(y, tuple) else [y])
    torch.save(outputs, case["module"] + ".out.pt")
    results[case["module"]] = list(net.state_dict())
json.dump(results, open("results.json", "w"))
'''


def _reference(module: torch.nn.Module, x: torch.Tensor, modes: list[str]) -> dict:
    outputs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the runner: another thread count may sum in another order
    try:
        for mode in modes:
            module.train(mode == "train")
            torch.manual_seed(0)
            with torch.no_grad():
                y = module(x)
            outputs[mode] = (list(getattr(y, "_fields", ())), list(y) if isinstance(y, tuple) else [y])
    finally:
        torch.set_num_threads(threads)
    return outputs


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item() <= TOLERANCE * max(b.abs().max().item(), 1e-30)


def eject_and_run(folder: Path, nets: dict[str, netdsl.Network], batch: int = 2) -> dict[str, str]:
    """Eject each net into `folder`, run them all in one isolated subprocess, and compare with
    the compiled modules. Returns the failures by name (empty: all equal); each file is
    `folder/NAME.py`."""
    cases, references, keys = [], {}, {}
    for name, net in nets.items():
        (folder / f"{name}.py").write_text(net.eject())
        module = randomise(net.compile())
        torch.save(module.state_dict(), folder / f"{name}.state.pt")
        x = torch.randn(batch, *net.input_shape, generator=torch.Generator().manual_seed(1))
        torch.save(x, folder / f"{name}.x.pt")
        modes = ["eval"] + (["train"] if any(o.train_only for o in net.outputs) else [])
        references[name] = _reference(module, x, modes)
        keys[name] = list(module.state_dict())
        cases.append({"module": name, "cls": camel(net.name), "modes": modes})
    (folder / "cases.json").write_text(json.dumps(cases))
    (folder / "runner.py").write_text(RUNNER)
    run = subprocess.run([sys.executable, "-I", "runner.py"], cwd=folder, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text())
    failures = {}
    for name in nets:
        if results[name] != keys[name]:
            failures[name] = f"state_dict keys differ: {sorted(set(results[name]) ^ set(keys[name]))[:5]}"
            continue
        got = torch.load(folder / f"{name}.out.pt")
        for mode, (fields, values) in references[name].items():
            their_fields, theirs = got[mode]
            if their_fields != fields or len(theirs) != len(values):
                failures[name] = f"{mode}: outputs {their_fields or len(theirs)}, compiled {fields or len(values)}"
            elif not all(_close(a, b) for a, b in zip(theirs, values)):
                worst = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(theirs, values))
                failures[name] = f"{mode}: outputs differ by {worst:.3g} of the largest"
    return failures


def ruff(path: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), "check", "--isolated", "--no-cache", *options, str(path)],
                          capture_output=True, text=True)


def _assert_ruff_clean(path: Path) -> None:
    # ruff's defaults, and the project's own rules (pyproject.toml: E, F, W, B at 120) with isort's
    for options in ((), ("--select", "E,F,W,B,I", "--line-length", "120")):
        result = ruff(path, *options)
        assert result.returncode == 0, result.stdout


# --- every net -------------------------------------------------------------------------------

NET_FILES = sorted(NETS.rglob("*.net"))


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(NETS)),
                                               marks=[pytest.mark.slow] if p.stem in SLOW else [])
                                  for p in NET_FILES])
def test_every_net_ejects_to_standalone_torch_with_equal_outputs(path, tmp_path):
    net = netdsl.load(path)
    failures = eject_and_run(tmp_path, {"model": net}, batch=1)
    assert not failures, failures
    source = (tmp_path / "model.py").read_text()
    assert "netdsl" not in re.sub(r'""".*?"""', "", source, flags=re.S)  # not even a comment's import
    _assert_ruff_clean(tmp_path / "model.py")


# --- every op ------------------------------------------------------------------------------

CASES = [(name, ex.input, ex.text) for name, spec in REGISTRY.items() if spec.build for ex in spec.examples]


def _sources(op: str, shape: str, text: str) -> list[str]:
    """The example alone, and as an item of a group (an `nn.Sequential` where it makes a module;
    the `relu` after it makes one where the op itself is written as a call)."""
    alone = f"net t {{ input {shape}  {text} }}"
    if REGISTRY[op].join:
        return [alone]
    return [alone, f"net t {{ input {shape}  g: {{ {text}  relu }} }}"]


@pytest.fixture(scope="module")
def every_op(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ops")
    nets = {f"case{i}_{k}": netdsl.loads(text) for i, case in enumerate(CASES)
            for k, text in enumerate(_sources(*case))}
    return folder, eject_and_run(folder, nets)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c[0]}: {c[1]} {c[2]}" for c in CASES])
def test_every_op_ejects_with_the_compiled_keys_and_outputs(every_op, index):
    folder, failures = every_op
    mine = {name: why for name, why in failures.items() if name.startswith(f"case{index}_")}
    assert not mine, mine
    for path in folder.glob(f"case{index}_*.py"):
        source = path.read_text()
        assert "netdsl" not in re.sub(r'""".*?"""', "", source, flags=re.S)
        _assert_ruff_clean(path)


def test_every_op_with_a_module_says_how_to_write_it():
    missing = [name for name, spec in REGISTRY.items() if spec.build is not None and spec.eject is None]
    assert not missing


# --- focused ---------------------------------------------------------------------------------

def test_shape_comments_give_each_line_its_shape():
    source = netdsl.load(NETS / "lenet5.net").eject()
    forward = source[source.index("def forward"):].splitlines()[1:-1]
    shapes = [line.rsplit("# ", 1)[1] for line in forward]
    assert shapes == ["6x28x28", "6x28x28", "6x14x14", "16x10x10", "16x10x10", "16x5x5", "400", "120", "120",
                      "84", "84", "10"]
    assert forward[0].strip() == "x = self.conv1(x)  # 6x28x28"
    assert forward[6].strip() == "x = torch.flatten(x, 1)  # 400"


def test_a_block_class_takes_the_numbers_that_differ_named_after_its_parameters():
    source = netdsl.load(NETS / "torchvision" / "resnet18.net").eject()
    assert "class Basic(nn.Module):" in source and "class BasicDown(nn.Module):" in source
    assert "def __init__(self, planes):" in source
    assert "nn.Conv2d(planes, planes, 3, padding=1, bias=False)" in source
    assert "def __init__(self, planes, in_channels):" in source  # BasicDown: 64 in, 128 out
    assert "self.layer2 = nn.Sequential(\n            BasicDown(128, 64),\n            Basic(128),\n        )" in source
    # shapes of a class used at several sizes, in its arguments and its input's H and W
    assert "x = out + x  # planes x H/2 x W/2" in source


def test_a_block_of_numbered_items_in_a_chain_is_an_nn_sequential():
    source = netdsl.load(NETS / "torchvision" / "mobilenet_v3_large.net").eject()
    assert "class Cna(nn.Sequential):" in source
    assert ("        super().__init__(\n"
            "            nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),  # 16x112x112\n") in source


def test_training_heads_come_back_as_the_compiled_named_tuple(tmp_path):
    net = netdsl.loads(SMALL)
    source = net.eject()
    assert "NetOutputs = namedtuple('NetOutputs', ['fc', 'aux'])" in source
    assert "if self.training:" in source
    assert not eject_and_run(tmp_path, {"small": net})


def test_joins_read_as_python():
    source = netdsl.load(NETS / "googlenet.net").eject()
    assert "x = torch.cat([branch1, branch2, branch3, branch4], 1)  # c1+c3+c5+proj x H x W" in source
    source = netdsl.loads("net n { input 4x6x6  mul { identity | global_avgpool conv(4, 1) sigmoid } }").eject()
    assert "x = x * branch2" in source


def test_cli_writes_the_file(run_cli, tmp_path):
    out = tmp_path / "model.py"
    result = run_cli("eject", NETS / "lenet5.net", "--set", "classes=3", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "nn.Linear(84, 3)" in out.read_text()
    printed = run_cli("eject", NETS / "lenet5.net", "--set", "classes=3")
    assert printed.returncode == 0 and printed.stdout == out.read_text()
    refused = run_cli("eject", NETS / "lenet5.net", "-o", NETS / "lenet5.net")
    assert refused.returncode != 0 and "refusing to write" in refused.stderr


def test_the_readme_shows_what_eject_writes():
    readme = (NETS.parent / "README.md").read_text()
    section = readme[readme.index("## Ejecting PyTorch code"):]
    section = section[:section.index("\n## ", 3)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks[0] == netdsl.load(NETS / "lenet5.net").eject()
    resnet = netdsl.load(NETS / "torchvision" / "resnet18.net").eject()
    assert blocks[1].strip() in resnet


# --- the naming forms: integer and quoted labels, seq, inline joins ---------------------------

BASIC = "\n" + BASIC_BY_NAME
RESNET18 = BASIC + """
net resnet18(classes = 1000) {
    input 3x64x64
    conv1: conv(64, 7, stride=2, pad=3, bias=false)  bn1: batchnorm  relu: relu
    maxpool: maxpool(3, stride=2, pad=1)
    layer1: seq { repeat 2 { basic(64) } }
    layer2: seq { basic(128, 2)  basic(128) }
    layer3: seq { basic(256, 2)  basic(256) }
    layer4: seq { basic(512, 2)  basic(512) }
    avgpool: adaptive_avgpool(1)  flatten  fc: linear(classes)
}
"""
LABELS = """
net t {
    input 3x8x8
    0: conv(4, 3, pad=1)  "block1-0": { conv(4, 1) relu }
    s: seq { conv(4, 1)  2: batchnorm  relu  add { identity | conv(4, 1) } }
    concat inline { a: conv(2, 1) | b: seq { conv(2, 1) relu } }
    flatten
}
"""


def test_the_naming_forms_eject_as_torchvision_writes_them(tmp_path):
    nets = {"resnet": netdsl.loads(RESNET18, classes=10), "labels": netdsl.loads(LABELS)}
    assert not eject_and_run(tmp_path, nets)
    resnet = (tmp_path / "resnet.py").read_text()
    assert "class Basic(nn.Module):" in resnet and "class BasicDownsample(nn.Module):" in resnet
    assert "self.downsample = nn.Sequential(\n            nn.Conv2d(in_channels, planes, 1, stride=2, bias=False)," \
        in resnet
    assert "self.layer2 = nn.Sequential(\n            BasicDownsample(128, 64),\n            Basic(128),\n        )" \
        in resnet
    labels = (tmp_path / "labels.py").read_text()
    assert "self.add_module('block1-0', nn.Sequential(" in labels and "getattr(self, '0')(x)" in labels
    for path in (tmp_path / "resnet.py", tmp_path / "labels.py"):
        _assert_ruff_clean(path)


def test_an_ejected_resnet_loads_torchvisions_weights(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet18(num_classes=10)
    assert list(netdsl.loads(RESNET18, classes=10).compile().state_dict()) == list(reference.state_dict())
    (tmp_path / "model.py").write_text(netdsl.loads(RESNET18, classes=10).eject())
    torch.save(randomise(reference).state_dict(), tmp_path / "weights.pt")
    x = torch.randn(2, 3, 64, 64)
    torch.save(x, tmp_path / "x.pt")
    script = ("import sys; sys.modules['netdsl'] = None; sys.path.insert(0, '.')\n"
              "import torch\nfrom model import Resnet18\n"
              "net = Resnet18().eval()\nnet.load_state_dict(torch.load('weights.pt'), strict=True)\n"
              "with torch.no_grad():\n    torch.save(net(torch.load('x.pt')), 'y.pt')\n")
    (tmp_path / "run.py").write_text(script)
    run = subprocess.run([sys.executable, "-I", "run.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    with torch.no_grad():
        assert _close(torch.load(tmp_path / "y.pt"), reference.eval()(x))


def test_a_name_compile_refuses_is_refused_with_the_same_reason(run_cli, tmp_path):
    from netdsl.backend import UncompilableNet

    text = "net n { input 3x8x8  forward: conv(3, 1) }"
    with pytest.raises(UncompilableNet, match="torch.nn.Module uses the name `forward`"):
        netdsl.loads(text).eject()
    (tmp_path / "n.net").write_text(text)
    result = run_cli("eject", tmp_path / "n.net")
    assert result.returncode == 1 and "layer `forward`" in result.stderr and not result.stdout


def test_a_split_names_the_part_it_keeps_while_the_input_is_read():
    source = netdsl.loads("net n { input 8x6x6  split { identity | conv(4, 1) } }").eject()
    assert "chunk1 = x.narrow(1, 0, 4)  # 4x6x6" in source
    assert "x = torch.cat([chunk1, branch2], 1)  # 8x6x6" in source
