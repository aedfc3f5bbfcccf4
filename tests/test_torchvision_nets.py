"""nets/torchvision/*.net against torchvision.models, the oracle: each file must be torchvision's
architecture exactly, down to the order of its tensors.

The torch backend loads a torchvision state_dict into a compiled net by name and, where the names
differ, by order, so these tests check, per net: the parameter counts (deploy and training), the
list of state_dict tensor shapes in order (buffers included), every layer's settings, and every
parametrised layer's output shape. Everything runs on torch's meta device: shapes, no memory and
no arithmetic (vgg16 alone would take 1 GB twice over).
"""

from __future__ import annotations

import pytest
from conftest import NETS

import netdsl

torch = pytest.importorskip("torch")
models = pytest.importorskip("torchvision.models")
nn = torch.nn

NAMES = ["alexnet", "vgg16", "googlenet", "resnet18"]

# The ops whose modules have parameters, and the torch types they build.
PARAMETRISED = {"conv": nn.Conv2d, "linear": nn.Linear, "batchnorm": nn.BatchNorm2d}


def torchvision_model(name: str, train: bool) -> nn.Module:
    """torchvision's model on the meta device; `train=False` leaves out training-only parts."""
    with torch.device("meta"):
        if name == "googlenet":
            return models.googlenet(aux_logits=train, transform_input=False, init_weights=False)
        return getattr(models, name)()


def load(name: str) -> netdsl.Network:
    return netdsl.load(NETS / "torchvision" / f"{name}.net")


def layers(net: netdsl.Network, train: bool) -> list[str]:
    return [n for n in net.layers if train or not net.layer(n).train_only]


def build(net: netdsl.Network, name: str) -> nn.Module:
    """A layer's torch module, on the meta device, as the backend will build it."""
    layer = net.layer(name)
    with torch.device("meta"):
        return layer.op.build([i.shape for i in layer.inputs], layer.attrs)


def netdsl_state(net: netdsl.Network, train: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every tensor of the compiled net's state_dict, in its order."""
    return [(f"{name}.{key}", tuple(t.shape)) for name in layers(net, train)
            for key, t in build(net, name).state_dict().items()]


def torchvision_state(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(t.shape)) for key, t in model.state_dict().items()]


@pytest.fixture(scope="module", params=NAMES)
def name(request) -> str:
    return request.param


@pytest.mark.parametrize("train", [True, False], ids=["train", "deploy"])
def test_params_equal_torchvision(name, train):
    expected = sum(p.numel() for p in torchvision_model(name, train).parameters())
    assert load(name).total_params(train=train) == expected


@pytest.mark.parametrize("train", [True, False], ids=["train", "deploy"])
def test_state_dict_layout_equals_torchvision(name, train):
    """The same tensors with the same shapes in the same order: a by-order load fits exactly."""
    ours = netdsl_state(load(name), train)
    theirs = torchvision_state(torchvision_model(name, train))
    assert len(ours) == len(theirs)
    for i, ((our_key, our_shape), (their_key, their_shape)) in enumerate(zip(ours, theirs)):
        assert our_shape == their_shape, f"tensor {i}: {our_key} {our_shape} vs torchvision's {their_key} {their_shape}"


def test_shared_keys_name_the_same_tensor(name):
    """A key both state_dicts have must sit at the same place, so a by-name load fits too."""
    ours = [k for k, _ in netdsl_state(load(name))]
    theirs = [k for k, _ in torchvision_state(torchvision_model(name, train=True))]
    shared = set(ours) & set(theirs)
    assert {k: ours.index(k) for k in shared} == {k: theirs.index(k) for k in shared}


def test_shared_keys_where_the_language_allows():
    """The labels give torchvision's own names where a name can match (no 0-based indices)."""
    ours = {k for k, _ in netdsl_state(load("googlenet"))}
    assert {"conv1.conv.weight", "conv3.bn.running_var", "aux1.conv.bn.weight", "aux2.fc2.bias",
            "fc.weight"} <= ours
    ours = {k for k, _ in netdsl_state(load("resnet18"))}
    assert {"conv1.weight", "bn1.num_batches_tracked", "fc.bias"} <= ours


def settings(module: nn.Module) -> tuple:
    """What defines a layer, beyond its tensors' shapes; pools' int sizes read as pairs."""
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    if isinstance(module, nn.Conv2d):
        return (module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                module.dilation, module.groups, module.bias is not None, module.padding_mode)
    if isinstance(module, nn.BatchNorm2d):
        return (module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
    if isinstance(module, nn.Linear):
        return (module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, nn.MaxPool2d):
        return (pair(module.kernel_size), pair(module.stride), pair(module.padding), pair(module.dilation),
                module.ceil_mode)
    if isinstance(module, nn.Dropout):
        return (module.p,)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return (pair(module.output_size),)
    raise AssertionError(f"no settings for {type(module).__name__}")


SETTLED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.MaxPool2d, nn.Dropout, nn.AdaptiveAvgPool2d)


@pytest.mark.parametrize("train", [True, False], ids=["train", "deploy"])
def test_layer_settings_equal_torchvision(name, train):
    """Kernel, stride, padding, bias, eps, ceil mode, dropout rate...: per type of layer, in order.
    torchvision's auxiliary heads pool with a function call, not a module, so in training the
    adaptive pools are compared only where torchvision has modules: the deploy part."""
    net = load(name)
    ours = [build(net, n) for n in layers(net, train)]
    theirs = [m for m in torchvision_model(name, train).modules() if not list(m.children())]
    for kind in SETTLED:
        if train and kind is nn.AdaptiveAvgPool2d and name == "googlenet":
            continue
        assert ([settings(m) for m in ours if type(m) is kind]
                == [settings(m) for m in theirs if type(m) is kind]), kind.__name__


def record_outputs(model: nn.Module, batch: int) -> list[tuple[str, tuple[int, ...]]]:
    """Run the model on a random batch; (module name, output shape per example) of every
    parametrised module, in the order they ran."""
    ran = []
    for module_name, m in model.named_modules():
        if isinstance(m, tuple(PARAMETRISED.values())):
            m.register_forward_hook(lambda m, i, out, n=module_name: ran.append((n, tuple(out.shape[1:]))))
    with torch.no_grad():
        model(torch.randn(batch, 3, 224, 224, device="meta"))
    return ran


def test_output_shapes_in_forward_order(name):
    """Deployed (eval mode): conv, BN and linear outputs, in the order torchvision runs them."""
    net = load(name)
    model = torchvision_model(name, train=True).eval()
    ours = [net.layer(n).shape for n in layers(net, train=False) if net.layer(n).op_name in PARAMETRISED]
    assert ours == [shape for _, shape in record_outputs(model, batch=1)]


def test_output_shapes_in_registration_order(name):
    """In training (aux heads run too): every parametrised module's output, in state_dict order."""
    net = load(name)
    model = torchvision_model(name, train=True).train()
    outputs = dict(record_outputs(model, batch=2))  # 2: BatchNorm trains on more than one value
    theirs = [outputs[n] for n, m in model.named_modules() if isinstance(m, tuple(PARAMETRISED.values()))]
    assert len(outputs) == len(theirs)  # every one ran, once
    ours = [net.layer(n).shape for n in net.layers if net.layer(n).op_name in PARAMETRISED]
    assert ours == theirs


def test_outputs_equal_torchvision(name):
    """The main output, then the heads: torchvision returns (logits, aux2, aux1) in training."""
    net = load(name)
    assert [o.name for o in net.outputs] == (["fc", "aux1", "aux2"] if name == "googlenet" else [net.layers[-1]])
    assert all(net.layer(o.layer.name).shape == (1000,) for o in net.outputs)
    assert [o.train_only for o in net.outputs[1:]] == [True] * (len(net.outputs) - 1)
