"""Every op in the registry against torch, the oracle: the shape rule must give the shape the
real module outputs, and the parameter count must equal the module's. Parametrised over the
registry, so a new op without cases here fails `test_every_op_has_cases`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdsl import loads
from netdsl.ops import REGISTRY, ShapeError, window_out

torch = pytest.importorskip("torch")

# op -> list of (call text, input shape). The call is written in the language itself, so the
# cases also exercise argument binding and defaults.
CASES: dict[str, list[tuple[str, tuple]]] = {
    "conv": [("conv(8, 3)", (3, 17, 19)), ("conv(8, 3, stride=2, pad=1)", (3, 17, 19)),
             ("conv(6, 5x3, stride=2x1, pad=2x0)", (4, 20, 11)), ("conv(8, 3, pad=same)", (3, 9, 12)),
             ("conv(8, 4, pad=same, dilation=2)", (3, 9, 12)), ("conv(12, 3, groups=4)", (8, 10, 10)),
             ("conv(5, 1, bias=false)", (7, 6, 6)), ("conv(4, 3, pad=valid)", (2, 8, 8)),
             ("conv(16, 11, stride=4)", (3, 227, 227))],
    "maxpool": [("maxpool(2)", (3, 9, 9)), ("maxpool(3, stride=2, ceil_mode=true)", (4, 112, 112)),
                ("maxpool(3, stride=2, pad=1)", (4, 15, 16)), ("maxpool(3, stride=1, pad=1)", (2, 7, 7)),
                ("maxpool(3, stride=2, ceil_mode=true)", (1, 14, 14)), ("maxpool(2, dilation=2)", (1, 9, 9)),
                ("maxpool(3, stride=3, pad=1, ceil_mode=true)", (1, 10, 10))],
    "avgpool": [("avgpool(2)", (3, 9, 9)), ("avgpool(5, stride=3)", (8, 14, 14)),
                ("avgpool(3, stride=2, pad=1, ceil_mode=true, count_include_pad=false)", (2, 10, 11)),
                ("avgpool(7, stride=1)", (16, 7, 7))],
    "adaptive_avgpool": [("adaptive_avgpool", (5, 9, 9)), ("adaptive_avgpool(3x2)", (5, 9, 7))],
    "global_avgpool": [("global_avgpool", (5, 9, 7))],
    "linear": [("linear(10)", (20,)), ("linear(3, bias=false)", (7,))],
    "flatten": [("flatten", (3, 4, 5)), ("flatten", (6,))],
    "relu": [("relu", (3, 4, 4))],
    "sigmoid": [("sigmoid", (3, 4, 4))],
    "tanh": [("tanh", (6,))],
    "relu6": [("relu6", (3, 4, 4))],
    "gelu": [("gelu", (3, 4, 4))],
    "identity": [("identity", (3, 4, 4))],
    "leaky_relu": [("leaky_relu(0.2)", (3, 4, 4))],
    "dropout": [("dropout(0.3)", (3, 4, 4)), ("dropout", (10,))],
    "softmax": [("softmax", (10,)), ("softmax(dim=2)", (3, 4, 5))],
    "lrn": [("lrn(5)", (8, 6, 6)), ("lrn(3, alpha=0.001, beta=0.5, k=2)", (4, 5, 5))],
    "batchnorm": [("batchnorm", (8, 5, 5)), ("batchnorm(eps=0.001, affine=false)", (6, 3, 3)),
                  ("batchnorm", (12,))],
    # joins take several inputs: written as two branches on one input
    "concat": [("concat { conv(4, 1) | conv(6, 3, pad=1) }", (3, 8, 8)),
               ("concat { linear(4) | linear(5) }", (7,))],
    "add": [("add { identity | conv(3, 3, pad=1) }", (3, 8, 8))],
}


def _network(call: str, shape: tuple):
    return loads(f"net t {{ input {'x'.join(map(str, shape))}  {call} }}")


def _case_ids():
    return [(op, call, shape) for op, cases in CASES.items() for call, shape in cases]


def test_every_op_has_cases():
    assert set(CASES) == set(REGISTRY), "each registered op needs torch-oracle cases here"


@pytest.mark.parametrize("op,call,shape", _case_ids(), ids=lambda v: str(v))
def test_shape_and_params_match_torch(op, call, shape):
    net = _network(call, shape)
    graph = net.layer_graph.nodes
    # the layer under test is the last one (for joins, the join node)
    name = net.outputs[0].node
    node = graph[name]
    assert node["op"] == op
    in_shapes = [graph[i]["shape"] for i in node["inputs"]]
    module = REGISTRY[op].build(in_shapes, node["attrs"]).eval()
    xs = [torch.randn(2, *s) for s in in_shapes]
    with torch.no_grad():
        y = module(xs) if REGISTRY[op].join else module(*xs)
    assert tuple(y.shape) == (2, *node["shape"])
    assert sum(p.numel() for p in module.parameters()) == node["params"]


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
    assert net.layer_graph.nodes[net.outputs[0].node]["shape"] == tuple(y.shape[1:])


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
    assert math.prod(net.layer(net.layers[0])["shape"]) == 64 * 112 * 112
