"""Every op in the registry against torch, the oracle: the shape rule must give the shape the
real module outputs, and the parameter count must equal the module's. Parametrised over the
registry's own examples, so a new op is tested without a line here (tests/test_registry.py runs
the same examples through every backend path)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdsl import loads
from netdsl.ops import REGISTRY, ShapeError, window_out

torch = pytest.importorskip("torch")

def _network(call: str, shape: tuple):
    return loads(f"net t {{ input {'x'.join(map(str, shape))}  {call} }}")


def _examples():
    """Every registered op's examples (netdsl/ops/): the item as the language writes it, so the
    cases also exercise argument binding and defaults."""
    return [pytest.param(spec, ex, id=f"{name}: {ex.input} {ex.text}")
            for name, spec in REGISTRY.items() for ex in spec.examples]


@pytest.mark.parametrize("spec,example", _examples())
def test_shape_and_params_match_torch(spec, example):
    net = loads(f"net t {{ input {example.input}  {example.text} }}")
    # the layer under test is the last one (for joins, the join node; for the input, the input)
    layer = net.outputs[0].layer if not spec.source else net.ir.input
    assert layer.op is spec
    if spec.source:
        assert layer.shape == tuple(int(d) for d in example.input.split("x"))
        return
    in_shapes = [i.shape for i in layer.inputs]
    module = spec.build(in_shapes, layer.attrs).eval()
    xs = [torch.randn(2, *s) for s in in_shapes]
    with torch.no_grad():
        y = module(xs) if spec.join else module(*xs)
    assert tuple(y.shape) == (2, *layer.shape)
    assert sum(p.numel() for p in module.parameters()) == layer.params


@pytest.mark.parametrize("call,shape,macs", [
    ("conv(96, 11, stride=4)", (3, 227, 227), 96 * 55 * 55 * 3 * 11 * 11),
    ("conv(12, 3, groups=4)", (8, 10, 10), 12 * 8 * 8 * 2 * 3 * 3),
    ("linear(10)", (20,), 200),
    ("maxpool(2)", (3, 8, 8), 0),
    ("batchnorm", (3, 8, 8), 0),
])
def test_macs_count_conv_and_linear_multiply_accumulates(call, shape, macs):
    net = _network(call, shape)
    assert net.total_macs() == macs


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3), ceil=st.booleans())
def test_window_rule_matches_torch_maxpool(size, k, s, p, d, ceil):
    """The one window helper behind conv and every pool, ceil mode included."""
    if 2 * p > k:  # torch rejects padding over half the kernel; so does netdsl (E306)
        return
    out = window_out(size, k, s, p, d, ceil)
    pool = torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    try:
        y = pool(torch.zeros(1, 1, size, 1 + 2 * p + d * (k - 1)))
    except RuntimeError:
        assert out is None or out < 1
        return
    assert out == y.shape[2]


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 30), k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 4),
       d=st.integers(1, 3))
def test_conv_shape_rule_matches_torch(size, k, s, p, d):
    text = f"net t {{ input 2x{size}x{size + 3}  conv(3, {k}, stride={s}, pad={p}, dilation={d}) }}"
    reach = size + 2 * p - d * (k - 1) - 1
    conv = torch.nn.Conv2d(2, 3, k, s, p, d)
    if reach < 0:
        with pytest.raises(Exception) as err:
            loads(text)
        assert "E401" in str(err.value)
        return
    net = loads(text)
    y = conv(torch.zeros(1, 2, size, size + 3))
    assert net.outputs[0].layer.shape == tuple(y.shape[1:])


def test_shape_error_carries_code():
    with pytest.raises(ShapeError) as err:
        REGISTRY["linear"].infer([(3, 4, 4)], {"out": 2, "bias": True})
    assert err.value.code == "E404"


def test_registry_rejects_duplicates():
    from netdsl.ops import register
    with pytest.raises(ValueError):
        register(REGISTRY["relu"])


def test_describe_leaves_defaults_out():
    net = _network("conv(64, 7, stride=2, pad=3) maxpool(3, stride=2) dropout(0.5)", (3, 224, 224))
    calls = [net.describe(n) for n in net.layers]
    assert calls == ["conv(64, 7, stride=2, pad=3)", "maxpool(3, stride=2)", "dropout"]
    assert math.prod(net.layer(net.layers[0]).shape) == 64 * 112 * 112
