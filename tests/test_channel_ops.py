"""The ops of issue 11 that stand for a piece of torchvision (ConvNeXt's LayerNorm2d, channel
Linear, layer scale and stochastic depth; ShuffleNetV2's split and shuffle) against torchvision
itself, as the oracle: equal values with equal weights, the same random draws, the same
parameter shapes. (tests/test_registry.py runs every op's examples through every backend path;
this file checks what the ops mean.)"""

from __future__ import annotations

import math

import pytest

import netdsl

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from conftest import randomise  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.models.convnext import CNBlock, LayerNorm2d  # noqa: E402
from torchvision.models.shufflenetv2 import InvertedResidual  # noqa: E402
from torchvision.ops import StochasticDepth  # noqa: E402


def _net(text: str, shape: str):
    return netdsl.loads(f"net t {{ input {shape}  {text} }}")


def _load_in_order(ours: nn.Module, theirs: dict) -> None:
    """Their tensors into our module, key by key in order (the shapes must agree)."""
    mine = ours.state_dict()
    assert len(mine) == len(theirs)
    ours.load_state_dict({k: v for k, v in zip(mine, theirs.values(), strict=True)})


def _relative(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_layernorm_on_images_is_torchvision_layernorm2d_exactly():
    net = _net("layernorm(eps=1e-6)", "12x5x7")
    ours = net.compile().eval()
    theirs = randomise(LayerNorm2d(12, eps=1e-6)).eval()
    _load_in_order(ours, theirs.state_dict())
    assert [tuple(p.shape) for p in ours.parameters()] == [(12,), (12,)]  # weight and bias [C], as torchvision's
    x = torch.randn(3, 12, 5, 7)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("shape", ["6x10", "3x4x5x6"])
def test_layernorm_of_any_rank_normalises_the_channels_at_each_position(shape):
    net = _net("layernorm", shape)
    ours = randomise(net.compile()).eval()
    ref = nn.LayerNorm(net.ir.input.shape[0])
    ref.load_state_dict(ours.layernorm1.state_dict())
    x = torch.randn(2, *net.ir.input.shape)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x.movedim(1, -1)).movedim(-1, 1))


def test_layernorm_of_a_vector_is_torch_layernorm():
    net = _net("layernorm(affine=false)", "9")
    x = torch.randn(4, 9)
    with torch.no_grad():
        assert torch.equal(net.compile()(x), nn.functional.layer_norm(x, (9,)))


@pytest.mark.parametrize("shape", ["8x5x5", "8x10", "8x2x3x3"])
def test_channel_linear_is_a_linear_layer_between_permutes(shape):
    net = _net("channel_linear(5)", shape)
    ours = randomise(net.compile()).eval()
    linear = nn.Linear(8, 5)
    linear.load_state_dict(ours.channel_linear1.state_dict())  # weight [out, C], as ConvNeXt's
    x = torch.randn(2, *net.ir.input.shape)
    with torch.no_grad():
        assert torch.equal(ours(x), linear(x.movedim(1, -1)).movedim(-1, 1))
    positions = math.prod(net.ir.input.shape[1:])
    assert net.total_macs() == 8 * 5 * positions and net.total_params() == 8 * 5 + 5


def test_scale_is_shaped_like_torchvision_layer_scale():
    net = _net("scale(0.5)", "6x4x4")
    (key, weight), = net.compile().named_parameters()
    assert key == "scale1"  # a bare parameter named by the layer, as torchvision's `layer_scale`
    assert tuple(weight.shape) == tuple(CNBlock(6, 1e-6, 0.0).layer_scale.shape) == (6, 1, 1)
    assert torch.equal(weight, torch.full((6, 1, 1), 0.5))
    (vector,) = _net("scale", "6").compile().parameters()
    assert tuple(vector.shape) == (6,) and vector[0].item() == pytest.approx(1e-6)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_drop_path_draws_as_torchvision_stochastic_depth(p):
    ours = _net(f"drop_path({p})", "3x4x4").compile()
    theirs = StochasticDepth(p, "row")
    x = torch.randn(64, 3, 4, 4)
    for training in (True, False):
        ours.train(training)
        theirs.train(training)
        torch.manual_seed(5)
        got = ours(x)
        torch.manual_seed(5)
        assert torch.equal(got, theirs(x))
    ours.eval()
    assert ours(x) is x  # the input itself in evaluation, as the registry's `aliases` says


def test_drop_path_drops_whole_examples():
    ours = _net("drop_path(0.5)", "2x3x3").compile().train()
    torch.manual_seed(0)
    out = ours(torch.ones(200, 2, 3, 3))
    per_example = out.flatten(1)
    assert set(per_example.unique().tolist()) == {0.0, 2.0}
    assert (per_example == per_example[:, :1]).all()  # an example is kept or dropped as a whole
    assert 50 < (per_example[:, 0] == 0).sum().item() < 150


CONVNEXT_BLOCK = """
net block {{ input {c}x{h}x{h}
  add {{ identity | conv({c}, 7, pad=3, groups={c}) layernorm(eps=1e-6) channel_linear({c4}) gelu
                   channel_linear({c}) scale drop_path({p}) }} }}"""


def _convnext_pair(c: int = 16, h: int = 7, p: float = 0.25):
    ours = netdsl.loads(CONVNEXT_BLOCK.format(c=c, c4=4 * c, h=h, p=p)).compile()
    theirs = randomise(CNBlock(c, 1e-6, p))
    # the bare `scale` is a parameter of the branch's module, so it comes first, as torchvision's
    # CNBlock registers `layer_scale` before its block
    _load_in_order(ours, theirs.state_dict())
    return ours, theirs


def test_convnext_block_equals_torchvision_cnblock():
    """Evaluation and training (the same stochastic-depth draws): equal values (`gelu` computes
    on the channels-last view as torchvision's GELU on its permuted tensor); the gradients
    within float rounding (the backward passes sum in different orders)."""
    ours, theirs = _convnext_pair()
    x = torch.randn(4, 16, 7, 7)
    for training in (False, True):
        ours.train(training)
        theirs.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.manual_seed(3)
        a = ours(xa)
        torch.manual_seed(3)
        b = theirs(xb)
        assert torch.equal(a, b)
        a.square().sum().backward()
        b.square().sum().backward()
        assert _relative(xa.grad, xb.grad) < 1e-5


def test_shufflenet_v2_unit_equals_torchvision():
    """ShuffleNetV2's stride-1 unit: half the channels passed on, half through the branch, then
    the channels shuffled; `split` and `channel_shuffle` as torchvision's chunk, cat and shuffle."""
    text = """net unit { input 24x8x8
      split { identity | conv(12, 1, bias=false) batchnorm relu conv(12, 3, pad=1, groups=12, bias=false) batchnorm
                         conv(12, 1, bias=false) batchnorm relu }
      channel_shuffle(2) }"""
    ours = netdsl.loads(text).compile()
    theirs = randomise(InvertedResidual(24, 24, 1))
    _load_in_order(ours, theirs.state_dict())
    x = torch.randn(2, 24, 8, 8)
    for training in (False, True):
        ours.train(training)
        theirs.train(training)
        with torch.no_grad():
            assert torch.equal(ours(x), theirs(x))


def test_split_with_sizes_hands_each_branch_its_channels():
    net = netdsl.loads("net t { input 6x2x2  split(1, 2, 3) { identity | identity | relu } }")
    x = torch.randn(2, 6, 2, 2)
    with torch.no_grad():
        out = net.compile()(x)
    assert torch.equal(out[:, :3], x[:, :3]) and torch.equal(out[:, 3:], x[:, 3:].relu())
    assert [layer.shape for layer in net.ir if layer.op_name == "chunk"] == [(1, 2, 2), (2, 2, 2), (3, 2, 2)]


@pytest.mark.parametrize("shape,groups", [("12x3x3", 3), ("6x7", 2), ("8x2x2x2", 4)])
def test_channel_shuffle_is_torch_channel_shuffle(shape, groups):
    net = _net(f"channel_shuffle({groups})", shape)
    x = torch.randn(2, *net.ir.input.shape)
    with torch.no_grad():
        assert torch.equal(net.compile()(x), nn.ChannelShuffle(groups)(x))


@pytest.mark.parametrize("text,module", [
    ("gelu(approximate=tanh)", nn.GELU(approximate="tanh")), ("gelu", nn.GELU()), ("hardswish", nn.Hardswish()),
    ("hardsigmoid", nn.Hardsigmoid()), ("mish", nn.Mish()), ("elu(0.5)", nn.ELU(0.5)),
    ("softplus(beta=2, threshold=1)", nn.Softplus(2, 1)),
])
def test_activations_are_torchs(text, module):
    x = torch.randn(2, 5, 4, 4) * 4
    with torch.no_grad():
        assert torch.equal(_net(text, "5x4x4").compile()(x), module(x))


def test_prelu_learns_one_slope_or_one_per_channel():
    assert _net("prelu", "5x4x4").total_params() == 1
    (weight,) = _net("prelu(per_channel=true)", "5x4x4").compile().parameters()
    assert tuple(weight.shape) == (5,) and torch.equal(weight, torch.full((5,), 0.25))


@pytest.mark.parametrize("shape,cls", [("4x10", nn.InstanceNorm1d), ("4x5x5", nn.InstanceNorm2d),
                                       ("4x2x3x3", nn.InstanceNorm3d)])
def test_instancenorm_of_each_rank_is_torchs(shape, cls):
    net = _net("instancenorm(affine=true, track=true)", shape)
    ours = randomise(net.compile())
    ref = cls(4, affine=True, track_running_stats=True)
    ref.load_state_dict(ours.instancenorm1.state_dict())
    x = torch.randn(2, *net.ir.input.shape)
    for training in (True, False):
        ours.train(training)
        ref.train(training)
        with torch.no_grad():
            assert torch.equal(ours(x), ref(x))
