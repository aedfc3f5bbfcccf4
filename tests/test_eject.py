"""`Network.eject` and `netdsl eject`: the PyTorch file it writes, run where netdsl cannot be
imported (`python -I` in a temporary folder, `netdsl` blocked in `sys.modules`), against the
compiled module, the oracle: the same state_dict keys (loaded with strict=True), equal outputs
(random weights, random BatchNorm statistics) in evaluation mode, and in training mode for nets
with training-only heads; ruff passes on it. Every net in nets/, and every op's examples (the
registry-wide way of tests/test_registry.py), each example alone and as the item of a group."""

from __future__ import annotations

import ast as pyast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import BASIC_BY_NAME, NETS, SMALL, randomise

import netdsl
from netdsl import parser
from netdsl.eject import camel
from netdsl.eject_blocks import Classes
from netdsl.ops import REGISTRY, Symbol

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


def test_a_block_class_takes_in_channels_and_the_blocks_parameters():
    source = netdsl.load(NETS / "torchvision" / "resnet18.net").eject()
    assert "class Basic(nn.Module):" in source and "class BasicDown(nn.Module):" in source
    assert source.count("def __init__(self, in_channels, planes):") == 2
    assert "nn.Conv2d(planes, planes, 3, padding=1, bias=False)" in source
    assert "self.layer2 = nn.Sequential(\n            BasicDown(64, 128),\n            Basic(128, 128),\n        )" \
        in source


def test_a_block_that_does_not_translate_gets_a_class_per_structure_with_the_numbers_that_differ():
    source = netdsl.load(NETS / "torchvision" / "shufflenet_v2_x1_0.net").eject()  # `unit` has a split
    assert "class Unit(nn.Module):" in source and "def __init__(self, out):" in source
    assert "self.branch2 = Branch(out // 2, out, 1)" in source  # its block inside: their own class
    # shapes of a class used at several sizes, in its arguments and its input's H and W
    assert "x = self.branch2(x)  # out//2 x H x W" in source


def test_a_block_of_numbered_items_in_a_chain_is_an_nn_sequential():
    source = netdsl.load(NETS / "torchvision" / "mobilenet_v3_large.net").eject()
    assert "class Cna(nn.Sequential):" in source
    assert ("        layers = [\n"
            "            nn.Conv2d(\n"
            "                in_channels, out, k, stride=stride, padding=(k - 1) // 2 * dilation, dilation=dilation,"
            " groups=groups,\n") in source
    assert ('        if nl == "HS":\n            layers.append(nn.Hardswish())\n'
            '        elif nl == "RE":\n            layers.append(nn.ReLU())\n'
            "        super().__init__(*layers)\n") in source


def test_an_if_that_changes_the_forward_is_a_flag():
    source = netdsl.load(NETS / "torchvision" / "mobilenet_v3_large.net").eject()
    assert "def __init__(self, in_channels, k, exp, out, se, nl, s, width, dilation=1):" in source
    assert "        e = make_divisible(exp * width, 8)\n        o = make_divisible(out * width, 8)\n" in source
    assert "        self.use_residual = s == 1 and in_channels == o\n        if self.use_residual:\n" in source
    assert ("        if self.use_residual:\n            out = self.block(x)  # o x H x W\n"
            "            x = out + x  # o x H x W\n"
            "        else:\n            x = self.block(x)  # o x H/s x W/s\n        return x\n") in source
    assert 'Bneck(16, 3, 64, 24, False, "RE", 2, 1.0)' in source
    assert source.count("def make_divisible(") == 1


def test_training_heads_come_back_as_the_compiled_named_tuple(tmp_path):
    net = netdsl.loads(SMALL)
    source = net.eject()
    assert "NetOutputs = namedtuple('NetOutputs', ['fc', 'aux'])" in source
    assert "if self.training:" in source
    assert not eject_and_run(tmp_path, {"small": net})


def test_joins_read_as_python():
    source = netdsl.load(NETS / "googlenet.net").eject()
    assert "x = torch.cat([branch1, branch2, branch3, branch4], 1)" in source
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
    assert "class Basic(nn.Module):" in resnet and resnet.count("class ") == 2  # one block, one net
    assert "def __init__(self, in_channels, planes, stride=1):" in resnet
    assert ("        self.use_downsample = stride != 1 or in_channels != planes\n"
            "        if self.use_downsample:\n"
            "            self.downsample = nn.Sequential(\n"
            "                nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes),\n") \
        in resnet
    assert "self.layer2 = nn.Sequential(\n            Basic(64, 128, 2),\n            Basic(128, 128),\n        )" \
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


# --- one class per block definition --------------------------------------------------------

PER_DEFINITION = [*(f"torchvision/{name}.net" for name in ("mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
                                                           "resnet18", "resnext50_32x4d", "shufflenet_v2_x1_0",
                                                           "regnet_y_400mf")), "googlenet.net"]


@pytest.mark.parametrize("name", PER_DEFINITION)
def test_a_net_ejects_at_most_one_class_per_block_definition(name):
    """(That each still equals its compiled module is test_every_net_...'s check.)"""
    net = netdsl.load(NETS / name)
    source = net.eject()
    used = {scope.block for scope in net.ir.scopes.values() if scope.kind == "block"}
    blocks = re.findall(r'^class (\w+)\(nn\.\w+\):\n    """The block `(\w+)`', source, flags=re.M)
    assert len(blocks) <= len(used), blocks
    assert len({block for _, block in blocks}) == len(blocks), blocks


def _block_net(name: str, shape: str, call: str) -> netdsl.Network:
    """The block definitions of nets/NAME and a net of one use of a block, labelled `b`."""
    text = (NETS / name).read_text()
    return netdsl.loads(text[:text.index("\nnet ")] + f"\nnet t {{ input {shape}  b: {call} }}\n")


# (the .net, the input, a use no net in nets/ makes, and the same as a constructor of the ejected class)
OTHER_ARGUMENTS = [
    ("torchvision/mobilenet_v3_large.net", "24x9x9", "bneck(7, 96, 40, true, HS, 2, 0.75)",
     'Bneck(24, 7, 96, 40, True, "HS", 2, 0.75)'),
    ("torchvision/mobilenet_v3_large.net", "32x9x9", "bneck(3, 32, 32, false, RE, 1, 1.0, dilation=2)",
     'Bneck(32, 3, 32, 32, False, "RE", 1, 1.0, dilation=2)'),
    ("torchvision/efficientnet_b0.net", "24x9x9", "mbconv(4, 5, 2, 24, 1, 3, 1.0, 16, 0.2)",
     "Mbconv(24, 4, 5, 2, 24, 1, 3, 1.0, 16, 0.2)"),
    ("torchvision/resnext50_32x4d.net", "64x9x9", "bottleneck(32, 64, 8, 1)", "Bottleneck(64, 32, 64, 8, 1)"),
    ("torchvision/regnet_y_400mf.net", "16x9x9", "bottleneck(48, 2, 8)", "Bottleneck(16, 48, 2, 8)"),
    ("torchvision/convnext_tiny.net", "16x9x9", "cnblock(2, 5, 0.1)", "Cnblock(16, 2, 5, 0.1)"),
    ("googlenet.net", "12x9x9", "inception(4, 6, 8, 2, 3, 5)", "Inception(12, 4, 6, 8, 2, 3, 5)"),
]


@pytest.mark.parametrize("name, shape, call, constructor", OTHER_ARGUMENTS, ids=[c[2] for c in OTHER_ARGUMENTS])
def test_a_block_class_with_other_arguments_is_the_block_netdsl_compiles(name, shape, call, constructor, tmp_path):
    (tmp_path / "model.py").write_text(netdsl.load(NETS / name).eject())
    spec = importlib.util.spec_from_file_location("ejected_model", tmp_path / "model.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    cls_name, _, args = constructor.partition("(")
    mine = _construct(getattr(model, cls_name), args[:-1])
    compiled = randomise(_block_net(name, shape, call).compile())
    theirs = {k[len("b."):]: v for k, v in compiled.state_dict().items()}
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
    mine.load_state_dict(theirs, strict=True)
    x = torch.randn(2, *map(int, shape.split("x")), generator=torch.Generator().manual_seed(1))
    mine.eval(), compiled.eval()
    with torch.no_grad():
        assert _close(mine(x), compiled(x))


def _construct(cls, args: str):
    """`cls(args)` for a constructor's arguments as text, some by keyword (literals only)."""
    call = pyast.parse(f"f({args})", mode="eval").body
    return cls(*[pyast.literal_eval(a) for a in call.args],
               **{k.arg: pyast.literal_eval(k.value) for k in call.keywords})


# blocks whose classes take every construct that translates: expressions (`/`, a conditional, a word,
# `not`, a tuple), integer labels, seqs in seqs under `if`s, a join's branches (named, under an `if`,
# inline), a labelled group and join; each instance takes other arms
MIXED = """
block unit(c, k, mode, scale = 1.0, wide = c * 2 / 4) {
    0: conv(wide if mode == WIDE else c, (k, 1), pad=(k // 2, 0), bias=false)
    1: batchnorm
    if not (mode == WIDE) or k > 3 { 2: relu } else { 2: hardswish }
}

block mix(c, k, mode, deep = false) {
    add {
        seq {
            unit(c, k, mode)
            if deep { seq { unit(c, 1, NARROW)  if k > 1 { unit(c, k - (k - 1) // 2 * 2, mode) } } }
            conv(in_channels, 1)
        }
      | if c != in_channels or deep { proj: conv(in_channels, 1) }
    }
    post: { relu  drop: dropout(0.1 * k / 3) }
    cat: concat inline { a: conv(c // 2, 1) | b: seq { conv(c - c // 2, 1) relu } }
}

net mixnet {
    input 8x12x12
    mix(8, 3, WIDE)
    mix(6, 5, NARROW, deep=true)
    mix(6, 1, WIDE, true)
    flatten
}
"""


def test_a_block_class_follows_its_ifs_and_expressions_in_every_use(tmp_path):
    net = netdsl.loads(MIXED)
    assert not eject_and_run(tmp_path, {"mixed": net})
    source = (tmp_path / "mixed.py").read_text()
    assert re.findall(r"^class (\w+)", source, flags=re.M) == ["Unit", "Mix", "Mixnet"]
    assert 'nn.Conv2d(in_channels, wide if mode == "WIDE" else c, (k, 1), padding=(k // 2, 0), bias=False)' in source
    assert "        wide = divide(c * 2, 4)\n" in source and "def divide(a, b):" in source
    assert "        self.use_proj = c != in_channels or deep\n" in source
    _assert_ruff_clean(tmp_path / "mixed.py")


# unlabelled repeats: of a count that is a parameter (`as i`), of a literal, in a seq, none at all
REPEATS = """
block stack(c, n, extra = 0) {
    repeat n as i { conv(c, 3, pad=1)  relu  dropout(0.1 * i) }
    repeat extra { identity  hardswish }
    tail: seq { repeat n { conv(c, 1)  batchnorm }  relu }
    repeat 2 { sigmoid }
}
block wrap(c) { stack(c, 2)  g: { stack(c, 1, 1) } }

net repnet {
    input 4x8x8
    stack(6, 2)
    stack(6, 3, extra=2)
    stack(5, 0)
    wrap(3)
}
"""


def test_a_repeat_in_a_block_is_a_loop(tmp_path):
    assert not eject_and_run(tmp_path, {"repeats": netdsl.loads(REPEATS)})
    source = (tmp_path / "repeats.py").read_text()
    assert re.findall(r"^class (\w+)", source, flags=re.M) == ["Stack", "Wrap", "Repnet"]
    assert ("        channels_in = in_channels\n        self.n = n\n        for i in range(n):\n"
            '            self.add_module(f"conv{i + 1}", nn.Conv2d(channels_in, c, 3, padding=1))\n') in source
    # a line in a loop stands for a layer per pass: its sizes unsaid
    assert '        for i in range(self.n):\n            x = getattr(self, f"conv{i + 1}")(x)  # c x ? x ?\n' in source
    assert "        for _ in range(n):\n            layers.append(nn.Conv2d(channels_in2, c, 1))\n" in source
    _assert_ruff_clean(tmp_path / "repeats.py")


# --- the shape comments of a block class's forward, in the class's terms ----------------------

COMMENTED = ["torchvision/mobilenet_v3_large.net", "torchvision/resnet18.net", "torchvision/efficientnet_b0.net",
             "googlenet.net"]
STRIDES = """
block down(c, s) { conv(c, 3, stride=s, pad=1)  relu }
block pool(n) { adaptive_avgpool(n)  conv(4, 1) }
block pick(c, s) { if s == 1 { add { identity | conv(c, 3, pad=1) } } else { conv(c, 3, stride=s, pad=1) } }

net strides {
    input 4x64x64
    down(4, 1)  down(6, 2)  pick(6, 1)  pick(6, 4)  pick(6, 2)  pool(4)  pool(2)  pool(1)
}
"""


def _block_classes(net: netdsl.Network):
    return Classes(parser.parse(net.source, net.filename), net.ir, Path(net.filename).name, set()).classes.values()


def _holds(comment: str, scope, shape: tuple, namespace: dict) -> bool:
    """Does `c x H/s x W/s` give `shape` in this instance: its channels with the instance's
    arguments (words as the file's strings), each size with its input's (`?`: anything)?"""
    parts = comment.split("x") if re.fullmatch(r"\d+(x\d+)*", comment) else comment.split(" x ")
    env = {**namespace, **{k: str(v) if isinstance(v, Symbol) else v for k, v in scope.arguments.items()}}
    env.update({letter: scope.arguments[f"in_{axis}"] for letter, axis in
                zip("LDHW", ("length", "depth", "height", "width")) if isinstance(scope.arguments[f"in_{axis}"], int)})
    # each part is eject's own text, read as the Python it is
    return len(parts) == len(shape) and all(part == "?" or eval(part, env) == size for part, size in zip(parts, shape))


def _check_comments(net: netdsl.Network) -> dict[str, list[str]]:
    """Every forward line of every block class ends with a shape comment that holds for every
    instance that runs it; the commented lines, by class (of those with a forward: an
    nn.Sequential subclass has none)."""
    namespace: dict = {}
    exec(compile(net.eject(), net.filename, "exec"), namespace)  # the file's make_divisible and divide
    commented = {}
    for cls in _block_classes(net):
        lines = cls.text.split("\n")
        if "    def forward(self, x):" not in lines:
            continue
        instances = {scope for scope in net.ir.scopes.values() if scope.block == cls.block.name}
        for row in range(lines.index("    def forward(self, x):") + 1, len(lines)):
            if re.match(r" +[\w, ]+ = ", lines[row]):
                assert row in cls.values, lines[row]
        for row, values in cls.values.items():
            code, comment = lines[row].split("  # ")
            if re.match(r" {8}\w", code):  # outside every `if`: every instance runs it
                assert {scope for scope, _ in values} == instances, code
            for scope, layer in values:  # a layer of the instance, or its input
                assert layer.scope is not None and scope in layer.scope.ancestors() or \
                    any(user.scope is not None and scope in user.scope.ancestors() for user in layer.users)
                assert _holds(comment, scope, layer.shape, namespace), (lines[row], scope.name, layer.shape)
        commented[cls.name] = [lines[row].strip() for row in sorted(cls.values)]
    return commented


@pytest.mark.parametrize("name", COMMENTED)
def test_each_forward_line_of_a_block_class_says_its_shape_in_the_classs_terms(name):
    commented = _check_comments(netdsl.load(NETS / name))
    assert commented and all(commented.values())


def test_a_block_classs_shape_comments_read_its_arguments_and_its_inputs_sizes():
    resnet = _check_comments(netdsl.load(NETS / "torchvision" / "resnet18.net"))
    assert resnet["BasicDown"][0] == "out = self.conv1(x)  # planes x H/2 x W/2"
    assert resnet["Basic"][-1] == "x = self.relu2(x)  # planes x H x W"
    mobilenet = _check_comments(netdsl.load(NETS / "torchvision" / "mobilenet_v3_large.net"))
    assert mobilenet["Se"][:2] == ["out2 = self.adaptive_avgpool1(x)  # in_channels x 1 x 1",
                                   "out2 = self.fc1(out2)  # make_divisible(in_channels // 4, 8) x 1 x 1"]
    assert mobilenet["Bneck"] == ["out = self.block(x)  # o x H x W", "x = out + x  # o x H x W",
                                  "x = self.block(x)  # o x H/s x W/s"]
    googlenet = _check_comments(netdsl.load(NETS / "googlenet.net"))
    assert googlenet["Inception"][-1] == "x = torch.cat([branch1, branch2, branch3, branch4], 1)  " \
        "# (c1 + c3 + c5 + proj) x H x W"
    # a stride that is an argument; in an `if`, the instances that take the arm; `?` where no
    # rule holds for every instance (an adaptive pool to the size its argument gives: 4 to 4, 2, 1)
    strides = _check_comments(netdsl.loads(STRIDES))
    assert strides["Down"] == ["x = self.conv1(x)  # c x H/s x W/s", "x = self.relu1(x)  # c x H/s x W/s"]
    assert strides["Pick"] == ["branch2 = self.branch2(x)  # c x H x W", "x = x + branch2  # in_channels x H x W",
                               "x = self.conv1(x)  # c x H/s x W/s"]
    assert strides["Pool"] == ["x = self.adaptive_avgpool1(x)  # in_channels x ? x ?", "x = self.conv1(x)  # 4 x ? x ?"]
