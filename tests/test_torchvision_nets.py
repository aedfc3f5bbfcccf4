"""nets/torchvision/*.net against torchvision.models, the oracle: each file must be torchvision's
architecture exactly, down to the order of its tensors. Every file is tested; which constructor
it is, and what input to feed it, is tests/torchvision_models.py's one line per net.

Per net: the parameter counts (deploy and training); the MACs, measured with forward hooks on
torchvision's conv and linear layers; the state_dict, tensor by tensor, in order (the backend
loads by name and, where names differ, by order); every layer's settings; and the outputs, with
torchvision's randomly initialised weights (BatchNorm's running statistics too) loaded, in
evaluation and in training mode. Everything but the outputs runs on torch's meta device: shapes,
no memory and no arithmetic.
"""

from __future__ import annotations

import functools
import math
import re

import pytest
from torchvision_models import MODELS, NETS, net_names

import netdsl

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
nn = torch.nn

TOLERANCE = 1e-5  # max|a - b| <= TOLERANCE * max|b|, float32


@functools.lru_cache(maxsize=None)
def torchvision_meta(name: str, train: bool) -> nn.Module:
    """torchvision's model on the meta device (cached: the tests only read it)."""
    with torch.device("meta"):
        return MODELS[name].make(train)


@functools.lru_cache(maxsize=None)
def load(name: str) -> netdsl.Network:
    return netdsl.load(NETS / f"{name}.net")


@functools.lru_cache(maxsize=None)
def netdsl_meta(name: str) -> nn.Module:
    return load(name).compile(init="meta")


def deploy_keys(name: str) -> set[str]:
    """The state_dict keys of the deployed net: without training-only heads' layers."""
    net = load(name)
    train_only = {n for n in net.layers if net.layer(n).train_only}
    return {k for k in netdsl_meta(name).state_dict() if k.rpartition(".")[0] not in train_only}


# Nets whose torchvision state_dict does not load by order yet, and why: their layout tests are
# expected to fail (strictly: a fix shows). None now.
ORDER_ISSUES: dict[str, str] = {}

# Nets whose torchvision state_dict loads by order only per shape (netdsl.backend.weights'
# `match_state`), and how many tensors stand out of place. None now: ConvNeXt's was (its CNBlock
# registers `layer_scale` before its children's tensors) until `scale` became a bare parameter,
# which its scope's module registers before its children's too.
PER_SHAPE: dict[str, int] = {}


@pytest.fixture(scope="module", params=net_names())
def name(request) -> str:
    return request.param


def expect_order_issue(request, name: str) -> None:
    """The running test is expected to fail (strictly) where the net has a known order issue."""
    if name in ORDER_ISSUES:
        request.applymarker(pytest.mark.xfail(reason=ORDER_ISSUES[name], strict=True))


def test_every_net_file_has_a_torchvision_model():
    assert set(net_names()) <= set(MODELS), "add the net to tests/torchvision_models.py"


@pytest.mark.parametrize("train", [True, False], ids=["train", "deploy"])
def test_params_equal_torchvision(name, train):
    expected = sum(p.numel() for p in torchvision_meta(name, train).parameters())
    assert load(name).total_params(train=train) == expected


def torchvision_macs(model: nn.Module, shape: tuple[int, ...], train: bool) -> int:
    """Multiply-accumulates of torchvision's conv, transposed conv and linear layers on one
    example of `shape`, measured with forward hooks (batch 2 in training: BatchNorm needs it)."""
    batch = 2 if train else 1
    total = 0

    def count(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Linear):
            total += out.numel() // batch * m.in_features
        elif isinstance(m, nn.modules.conv._ConvTransposeNd):
            total += inputs[0].numel() // batch * m.out_channels // m.groups * math.prod(m.kernel_size)
        else:
            total += out.numel() // batch * m.in_channels // m.groups * math.prod(m.kernel_size)

    kinds = (nn.Linear, nn.modules.conv._ConvNd)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds)]
    try:
        model.train(train)
        with torch.no_grad():
            model(torch.empty(batch, *shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total


@pytest.mark.parametrize("train", [True, False], ids=["train", "deploy"])
def test_macs_equal_torchvision(name, train):
    net = load(name)
    assert net.total_macs(train=train) == torchvision_macs(torchvision_meta(name, train), net.input_shape, train)


def state(module: nn.Module, keys=None) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(t.shape)) for k, t in module.state_dict().items() if keys is None or k in keys]


@pytest.mark.parametrize("train", [True, False], ids=["train", "deploy"])
def test_state_dict_layout_equals_torchvision(name, train, request):
    """The same tensors with the same shapes in the same order (buffers too): a by-order load fits;
    for the nets of PER_SHAPE, a by-order load fits per shape, with as many tensors out of place."""
    expect_order_issue(request, name)
    ours = state(netdsl_meta(name), None if train else deploy_keys(name))
    theirs = state(torchvision_meta(name, train))
    assert len(ours) == len(theirs)
    if name in PER_SHAPE:
        from netdsl.backend.weights import match_state
        keys = set(k for k, _ in ours)
        mine = {k: v for k, v in netdsl_meta(name).state_dict().items() if k in keys}
        matched, moved = match_state(mine, torchvision_meta(name, train).state_dict())
        assert list(matched) == list(mine) and moved == PER_SHAPE[name]
        return
    for i, ((our_key, our_shape), (their_key, their_shape)) in enumerate(zip(ours, theirs)):
        assert our_shape == their_shape, f"tensor {i}: {our_key} {our_shape} vs torchvision's {their_key} {their_shape}"


def test_shared_keys_name_the_same_tensor(name):
    """A key both state_dicts have must sit at the same place, so a by-name load fits too."""
    ours = [k for k, _ in state(netdsl_meta(name))]
    theirs = [k for k, _ in state(torchvision_meta(name, train=True))]
    shared = set(ours) & set(theirs)
    assert {k: ours.index(k) for k in shared} == {k: theirs.index(k) for k in shared}


def test_shared_keys_where_the_language_allows():
    """The labels give torchvision's own names where a name can match (in every net; BY_NAME's
    match in every key)."""
    ours = {k for k, _ in state(netdsl_meta("googlenet"))}
    assert {"conv1.conv.weight", "conv3.bn.running_var", "aux1.conv.bn.weight", "aux2.fc2.bias",
            "fc.weight"} <= ours
    ours = {k for k, _ in state(netdsl_meta("resnet18"))}
    assert {"conv1.weight", "bn1.num_batches_tracked", "fc.bias"} <= ours


# The torch types whose settings are compared: kernel, stride, padding, groups, bias, eps, momentum,
# ceil mode, dropout rate... as their `extra_repr` says; ReLUs and friends differ only in `inplace`.
SETTLED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
           nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Linear, nn.LayerNorm,
           nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool2d, nn.Dropout,
           nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def settings(module: nn.Module) -> str:
    """A layer's settings; `3` and `(3, 3)` read alike, `inplace` is left out."""
    text = re.sub(r",? ?inplace=(True|False)", "", module.extra_repr())
    return re.sub(r"\((\d+)(?:, \1)+\)", r"\1", text)


def leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


def test_layer_settings_equal_torchvision(name):
    """Per type of layer (subclasses included: torchvision's LayerNorm2d is a LayerNorm), in order.
    A type that torchvision uses as a function in places (GoogLeNet's auxiliary heads pool with a
    call, ShuffleNetV2 averages with `mean`) is compared where both have modules: a net that has
    as many of them as torchvision."""
    ours, theirs = leaves(netdsl_meta(name)), leaves(torchvision_meta(name, train=True))
    compared = 0
    for kind in SETTLED:
        mine, yours = ([settings(m) for m in ms if isinstance(m, kind)] for ms in (ours, theirs))
        if kind is nn.AdaptiveAvgPool2d and len(mine) > len(yours):
            continue
        assert mine == yours, kind.__name__
        compared += len(mine)
    assert compared


def randomised(name: str) -> nn.Module:
    """torchvision's model with every tensor random: weights uniform in +-1/sqrt(fan-in) (torch's
    default scale, without its cost: VGG16 initialised takes seconds), BatchNorm's running statistics
    and every other vector random too (ones and zeros would hide a swapped weight and bias)."""
    with torch.device("meta"):
        model = MODELS[name].make(train=True)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                t.zero_()
            elif key.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif t.dim() > 1:
                bound = (t[0].numel()) ** -0.5
                t.uniform_(-bound, bound)
            elif key.endswith("weight") and "bn" in key or "norm" in key:
                t.uniform_(0.5, 1.5)
            else:
                t.uniform_(-0.5, 0.5)
    return model


def no_dropout(model: nn.Module) -> nn.Module:
    """Dropout and stochastic depth made the identity, so that training mode is deterministic."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) or type(m).__name__ in ("StochasticDepth", "DropPath"):
            m.p = 0.0
    return model


def as_list(out) -> list:
    return [out] if isinstance(out, torch.Tensor) else list(out)


def assert_close(ours: list, theirs: list) -> None:
    assert [tuple(o.shape) for o in ours] == [tuple(t.shape) for t in theirs]
    for i, (o, t) in enumerate(zip(ours, theirs)):
        error = (o - t).abs().max().item()
        assert error <= TOLERANCE * t.abs().max().item(), f"output {i}: max|a-b| = {error:.3g}"


def test_outputs_equal_torchvision(name):
    """torchvision's randomly initialised state_dict loads (by order; PER_SHAPE's per shape); then the
    outputs agree in evaluation mode (batch 1) and in training mode (batch 2: BatchNorm normalises
    over the batch), every head included: with the same seed (dropout and stochastic depth draw
    the same numbers in the same order), and with dropout and stochastic depth off."""
    model = MODELS[name]
    torch.manual_seed(0)
    theirs = randomised(name)
    ours = load(name).compile(weights=theirs.state_dict(), init="meta")
    assert ours._netdsl_loaded["per_shape"] == PER_SHAPE.get(name, 0)
    x = torch.randn(2, *model.test_input)
    with torch.no_grad():
        assert_close(as_list(ours.eval()(x[:1])), model.outputs(theirs.eval()(x[:1])))
        ours.train(), theirs.train()
        for _ in ("dropout on", "dropout off"):
            torch.manual_seed(1)
            mine = as_list(ours(x))
            torch.manual_seed(1)
            assert_close(mine, model.outputs(theirs(x)))
            no_dropout(ours), no_dropout(theirs)


@pytest.mark.parametrize("size", [(225, 223), (97, 70)], ids=lambda s: "x".join(map(str, s)))
def test_lraspp_at_input_sizes_not_divisible_by_16(size):
    """LR-ASPP's head upsamples to the low tap's size and then to the input's, as torchvision's
    F.interpolate(size=...) calls do: the file, its input line changed, equals torchvision at sizes
    where the taps' sizes are rounded up (where a factor of 2 would miss the low tap by one)."""
    name = "lraspp_mobilenet_v3_large"
    text = (NETS / f"{name}.net").read_text()
    assert "input 3x224x224" in text
    net = netdsl.loads(text.replace("input 3x224x224", f"input 3x{size[0]}x{size[1]}"), f"{name}.net")
    torch.manual_seed(0)
    theirs = randomised(name).eval()
    ours = net.compile(weights=theirs.state_dict(), init="meta").eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert_close(as_list(ours(x)), MODELS[name].outputs(theirs(x)))


def test_output_names():
    """The main output, then the heads: torchvision returns (logits, aux2, aux1) in training."""
    net = load("googlenet")
    assert [o.name for o in net.outputs] == ["fc", "aux1", "aux2"]
    assert [o.train_only for o in net.outputs] == [False, True, True]


# Every net here is written with torchvision's own names (integer and quoted labels, `seq`, `inline`
# joins: README, "Names that match PyTorch"): torchvision's state_dict loads into it strictly, by name.

@pytest.mark.parametrize("net", net_names())
def test_state_dict_loads_strictly_by_name(net):
    """torchvision's randomly initialised state_dict loads with torch's own
    `load_state_dict(strict=True)`: every key is the compiled module's, in torchvision's order,
    none missing (compile's load matches every tensor by name, none by order); then the outputs
    agree, in evaluation mode and in training mode (dropout and stochastic depth off)."""
    model = MODELS[net]
    torch.manual_seed(0)
    theirs = randomised(net)
    ours = load(net).compile(init="none")
    assert list(ours.state_dict()) == list(theirs.state_dict())  # torchvision's keys, in its order
    ours.load_state_dict(theirs.state_dict(), strict=True)
    loaded = load(net).compile(weights=theirs.state_dict(), init="meta")._netdsl_loaded
    assert loaded["by_name"] == loaded["tensors"] == len(theirs.state_dict()) and loaded["by_order"] == 0
    x = torch.randn(2, *model.test_input)
    with torch.no_grad():
        assert_close(as_list(ours.eval()(x[:1])), model.outputs(theirs.eval()(x[:1])))
        no_dropout(ours.train()), no_dropout(theirs.train())
        assert_close(as_list(ours(x)), model.outputs(theirs(x)))
