"""`netdsl import` and `netdsl.from_torch` (netdsl/backend/importer.py) against torchvision, the
oracle. Per model of a representative subset, at small inputs to keep the suite fast: the imported
file checks and is a `netdsl fmt` fixed point, its parameter count is the model's, its compiled
module has exactly the model's state_dict keys (torchvision's state_dict loads with strict=True,
by name) and computes the same outputs (random weights, random BatchNorm statistics, evaluation
mode). Where a hand-written file of the net exists (nets/torchvision/), the import at its input
has its MACs and parameters. A module no op maps is one clear error; a hand-written net's compiled
module imports back to a file whose summary is the original's."""

from __future__ import annotations

import functools

import pytest
from conftest import NETS, net_files
from torchvision_models import randomise_norms

import netdsl
from netdsl.printer import format_source

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

from netdsl.backend.errors import UnmappableModule  # noqa: E402  (imports torch)
from netdsl.backend.importer import from_torch, mappings  # noqa: E402

TOLERANCE = 1e-5  # max|a - b| <= TOLERANCE * max|b|, float32
SMALL = (3, 64, 64)
MODELS = ["resnet18", "mobilenet_v2", "squeezenet1_0", "densenet121", "efficientnet_b0", "googlenet"]


@functools.cache
def imported(name: str, shape=SMALL):
    torch.manual_seed(0)
    model = randomise_norms(getattr(torchvision.models, name)().eval())
    return model, from_torch(model, shape, name)


def outputs_equal(compiled, model, shape):
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    compiled.eval()
    with torch.no_grad():
        a, b = compiled(x), model(x)
    a = a[0] if isinstance(a, (tuple, list)) else a
    return (a - b).abs().max().item() <= TOLERANCE * b.abs().max().item()


@pytest.mark.parametrize("name", MODELS)
def test_an_imported_model_is_torchvisions(name):
    model, text = imported(name)
    net = netdsl.loads(text)  # raises on any diagnostic
    assert format_source(text) == text
    assert net.total_params() == sum(p.numel() for p in model.parameters())
    compiled = net.compile()
    assert sorted(compiled.state_dict()) == sorted(model.state_dict())
    compiled.load_state_dict(model.state_dict(), strict=True)
    assert outputs_equal(compiled, model, SMALL)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "googlenet"])
def test_the_import_has_the_hand_written_nets_counts(name):
    """At the hand-written file's input (224x224), MACs and parameters, deployed and trained."""
    _, text = imported(name, (3, 224, 224))
    ours, theirs = netdsl.loads(text), netdsl.load(NETS / "torchvision" / f"{name}.net")
    for train in (False, True):
        assert ours.total_macs(train=train) == theirs.total_macs(train=train)
        assert ours.total_params(train=train) == theirs.total_params(train=train)


def test_resnet18_reads_as_a_person_would_write_it():
    _, text = imported("resnet18")
    assert "block basic_block {" in text and "block basic_block_2(out) {" in text  # the projecting variant
    assert "layer1: seq {\n        repeat 2 { basic_block }" in text
    assert "downsample: seq {" in text and "add inline {" in text
    assert "net resnet18(classes = 1000)" in text and "fc: linear(classes)" in text
    assert "conv1: conv(in_channels, 3, pad=1, bias=false)" in text  # the block's input's channels


def test_googlenets_auxiliary_classifiers_are_train_heads():
    model, text = imported("googlenet")
    assert "aux1: train head from inception4a inception_aux" in text
    net = netdsl.loads(text)
    assert net.total_params(train=False) == 6_624_904  # torchvision's, without the heads


def test_shufflenets_chunk_is_a_split():
    model, text = imported("shufflenet_v2_x0_5")
    assert "split inline {" in text and "channel_shuffle(2)" in text
    compiled = netdsl.loads(text).compile()
    compiled.load_state_dict(model.state_dict(), strict=True)
    assert outputs_equal(compiled, model, SMALL)


def test_convnext_keeps_torchvisions_sequential_indices():
    """CNBlock's permutes hold indices 1 and 6 of its Sequential; layer_scale is a bare parameter."""
    model, text = imported("convnext_tiny")
    assert "2: layernorm(eps=1e-06)" in text and "layer_scale: scale" in text
    compiled = netdsl.loads(text).compile()
    compiled.load_state_dict(model.state_dict(), strict=True)
    assert outputs_equal(compiled, model, SMALL)


class _Unmapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Softsign())

    def forward(self, x):
        return self.body(x)


class _UnmappedCall(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.sin(self.conv(x))


class _Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.spare = nn.Linear(4, 4)

    def forward(self, x):
        return self.conv(x)


class _BareBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.shift = nn.Parameter(torch.zeros(4, 1, 1))

    def forward(self, x):
        return self.conv(x) + self.shift


@pytest.mark.parametrize("module, says", [
    (_BareBias(), "cannot import `shift` (a bare parameter): it is used by add"),
    (_Unmapped(), "cannot import `body.1` (torch.nn.modules.activation.Softsign): no op of netdsl maps"),
    (_UnmappedCall(), "cannot import `forward` (the function torch.sin): no op of netdsl maps it"),
    (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")),
     "cannot import `0` (torch.nn.modules.conv.Conv2d): as `conv`: padding_mode='reflect'"),
    (_Unused(), "cannot import `spare.weight` (torch.nn.modules.linear.Linear): this tensor (4, 4) belongs to no "
                "layer"),
])
def test_an_unmappable_module_is_one_clear_error(module, says):
    with pytest.raises(UnmappableModule) as e:
        from_torch(module, (3, 8, 8))
    assert str(e.value).startswith(says), str(e.value)


def test_the_command_line_imports_a_users_constructor(tmp_path, monkeypatch, capsys):
    """In this process (a subprocess would import the installed netdsl from another folder)."""
    from netdsl.cli import main
    (tmp_path / "netdsl_import_models.py").write_text(
        "import torch\n"
        "def small(width=8):\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.ReLU(), torch.nn.Flatten(),\n"
        "                               torch.nn.Linear(width * 6 * 6, 10))\n"
        "def odd():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softsign())\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    assert main(["import", "netdsl_import_models:small", "--kwargs", '{"width": 4}', "--input", "3x8x8",
                 "-o", "small.net"]) == 0
    text = (tmp_path / "small.net").read_text(encoding="utf-8")
    assert "input 3x8x8" in text and "linear(classes)" in text and "conv(4, 3)" in text
    assert main(["check", "small.net"]) == 0
    capsys.readouterr()
    assert main(["import", "netdsl_import_models:odd", "--input", "3x8x8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "`1` (torch.nn.modules.activation.Softsign)" in err
    assert main(["import", "netdsl_import_models:nothing"]) == 2
    assert "has no attribute 'nothing'" in capsys.readouterr().err


# every hand-written net, at a smaller input where it checks there (the summaries are compared at
# the same input either way): the import's cost is the trace, not the size, but 224x224 adds up
SHRUNK = {"input 3x224x224": "input 3x64x64", "input 3x16x112x112": "input 3x8x32x32"}


def shrunk(path):
    from netdsl.diagnostics import NetDSLError
    text = path.read_text(encoding="utf-8")
    for big, small in SHRUNK.items():
        text = text.replace(big, small)
    try:
        return netdsl.loads(text)
    except NetDSLError:  # a net whose windows need the full size (the lecture's GoogLeNet)
        return netdsl.load(path)


@pytest.mark.parametrize("path", net_files(), ids=lambda p: str(p.relative_to(NETS).with_suffix("")))
def test_a_compiled_net_imports_back_to_its_summary(path):
    """netdsl's own compiled module (its joins, chunks, global pools, empty branches and `from`
    taps) imports back to the file it came from, as far as a summary tells."""
    original = shrunk(path)
    again = netdsl.loads(from_torch(original.compile(), original.input_shape, original.name))
    # row by row (the heads are written last, where the hand-written GoogLeNet has them before its classifier)
    assert sorted(again.summary().rows()) == sorted(original.summary().rows())
    assert again.total_macs() == original.total_macs() and again.total_params() == original.total_params()


def test_a_bare_parameter_imports_back_wherever_its_scope_is():
    """A bare op's parameter (`scale`, ConvNeXt's layer_scale) is read as a module attribute in
    the generated forward, which is how a tracer tells it from a constant: under a named scope
    and under a numbered one alike."""
    text = ("net n { input 8x4x4  b: { conv(8, 1)  s: scale(0.5) }  f: seq { conv(8, 1)  scale(2.0) }"
            "  global_avgpool  flatten  linear(3) }")
    original = netdsl.loads(text)
    module = original.compile()
    assert "self.b.s" in module.code and 'getattr(self.f, "1")' in module.code
    again = netdsl.loads(from_torch(module, original.input_shape, original.name))
    # the rows less the op's text: a module holds the parameter's values, not the value it was made with
    assert sorted((r[0], *r[2:]) for r in again.summary().rows()) == \
        sorted((r[0], *r[2:]) for r in original.summary().rows())


def test_every_import_target_exists():
    """The registry's class and function names (strings, so that it never imports torch) name
    what torch and torchvision have."""
    from netdsl.backend.importer import _resolve
    from netdsl.ops import REGISTRY
    missing = [f.target for spec in REGISTRY.values() for f in spec.imports
               if not f.method and _resolve(f.target) is None]
    assert missing == []
    assert mappings()[0]
