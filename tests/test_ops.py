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
    ("conv(8, 3x5x5, stride=1x2x2)", (4, 6, 9, 9), 8 * 4 * 3 * 3 * 4 * 3 * 5 * 5),
    ("conv(6, 4, groups=2)", (4, 10), 6 * 7 * 2 * 4),
    ("conv_transpose(6, 4, stride=2, groups=2)", (4, 5, 5), 4 * 5 * 5 * 3 * 4 * 4),
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


# --- sequences and volumes: sizes per axis, and the rank-generic shape rules ----------------------

def _layer(text: str):
    return loads(f"net t {{ {text} }}").outputs[0].layer


def test_one_size_means_every_axis_and_per_axis_sizes_are_written_either_way():
    assert _layer("input 3x8x9x9  conv(4, 3)").attrs["kernel"] == (3, 3, 3)
    assert _layer("input 3x20  conv(4, 3)").attrs["kernel"] == (3,)
    a, b = _layer("input 3x8x9x9  conv(4, 3x1x1)"), _layer("input 3x8x9x9  conv(4, (3, 1, 1))")
    assert a.attrs == b.attrs and a.attrs["kernel"] == (3, 1, 1) and a.shape == (4, 6, 9, 9)
    # defaults left out and a cubic window as one size, as for images
    assert a.describe() == "conv(4, 3x1x1)"
    assert _layer("input 3x8x9x9  conv(4, 3x3x3, stride=1x1x1, pad=(1, 1, 1))").describe() == "conv(4, 3, pad=1)"
    assert _layer("input 3x8x9x9  maxpool(2x2x2)").describe() == "maxpool(2)"


@pytest.mark.parametrize("text,code,words", [
    ("input 3x8x9x9  conv(4, 3x3)", "E411", "`kernel` gives 2 sizes (3x3), but the input is a volume"),
    ("input 3x20  maxpool(2, stride=2x2)", "E411", "`stride` gives 2 sizes (2x2), but the input is a sequence"),
    ("input 3x8x9  avgpool((2, 2, 2))", "E411", "but the input is an image with 2 spatial axes"),
    ("input 2x3x4x5x6  conv(1, 1)", "E404", "the input is 2x3x4x5x6; write it as one size (a vector), C x L"),
    ("input 2x28  conv(8, 3x3)", "E411", "`kernel` gives 2 sizes (3x3), but the input is a sequence"),
    ("input 6x4x4  pixel_shuffle(2)", "E405", "needs channels divisible by 2² = 4, got 6"),
    ("input 3x10  upsample(mode=trilinear)", "E404", "`mode=trilinear` interpolates a volume, but the input is a"),
    ("input 3x10  upsample(factor=0.05)", "E306", "leaves no output along the length"),
    ("input 3x4x6  pad(4, mode=reflect)", "E306", "reflect padding 4 must be less than the input height 4"),
    ("input 3x4x6  conv_transpose(2, 3, stride=2, output_pad=2)", "E306", "`output_pad` must be smaller"),
    ("input 3x8x8  conv(8, 3x3x3)", "E411", "`kernel` gives 3 sizes (3x3x3), but the input is an image"),
    ("input 3x8x8  conv(8, (1, 2, 3, 4))", "E305", "expects an integer or a pair like 3x3"),
])
def test_spatial_mistakes_are_located_errors_with_codes(text, code, words):
    with pytest.raises(Exception) as err:
        loads(f"net t {{ {text} }}")
    (d,) = err.value.diagnostics
    assert d.code == code and words in d.message, d.message


@settings(max_examples=150, deadline=None)
@given(rank=st.sampled_from([1, 3]), sizes=st.lists(st.integers(1, 9), min_size=3, max_size=3),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2))
def test_conv_and_pool_shape_rules_on_sequences_and_volumes_match_torch(rank, sizes, k, s, p, d):
    sizes = sizes[:rank]
    shape = "x".join(map(str, (2, *sizes)))
    x = torch.zeros(1, 2, *sizes)
    conv = getattr(torch.nn, f"Conv{rank}d")(2, 3, k, s, p, d)
    try:
        want = tuple(conv(x).shape[1:])
    except RuntimeError:
        want = None
    try:
        item = f"conv(3, {k}, stride={s}, pad={p}, dilation={d})"
        got = loads(f"net t {{ input {shape}  {item} }}").outputs[0].layer.shape
    except Exception as e:  # noqa: BLE001
        assert want is None and "E401" in str(e)
        return
    assert got == want
    if 2 * p > k:  # torch refuses, and so does netdsl (E306)
        return
    for pool, item in ((getattr(torch.nn, f"AvgPool{rank}d")(k, s, p, ceil_mode=True),
                        f"avgpool({k}, stride={s}, pad={p}, ceil_mode=true)"),
                       (getattr(torch.nn, f"MaxPool{rank}d")(k, s, p, d, ceil_mode=True),
                        f"maxpool({k}, stride={s}, pad={p}, dilation={d}, ceil_mode=true)")):
        try:
            want = tuple(pool(x).shape[1:])
        except RuntimeError:
            want = None
        try:
            got = loads(f"net t {{ input {shape}  {item} }}").outputs[0].layer.shape
        except Exception as e:  # noqa: BLE001  (E409: torch runs it, but on a window of padding only)
            assert (want is None and "E401" in str(e)) or "E409" in str(e), (item, e)
            continue
        assert got == want, item


@settings(max_examples=150, deadline=None)
@given(rank=st.sampled_from([1, 2, 3]), size=st.integers(1, 6), k=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 3), op=st.integers(0, 2), d=st.integers(1, 2))
def test_conv_transpose_shape_rule_matches_torch(rank, size, k, s, p, op, d):
    sizes = (size,) * rank
    text = f"net t {{ input {'x'.join(map(str, (2, *sizes)))}  conv_transpose(3, {k}, stride={s}, pad={p}, " \
           f"output_pad={op}, dilation={d}) }}"
    try:
        module = getattr(torch.nn, f"ConvTranspose{rank}d")(2, 3, k, s, p, op, dilation=d)
        want = tuple(module(torch.zeros(1, 2, *sizes)).shape[1:])
    except (RuntimeError, ValueError):
        want = None
    if want is not None and 0 in want:
        want = None  # torch makes an empty tensor (a 1x1 input, k 4, pad 2); netdsl refuses it (E401)
    try:
        got = loads(text).outputs[0].layer.shape
    except Exception as e:  # noqa: BLE001
        assert want is None and ("E306" in str(e) or "E401" in str(e)), e
        return
    assert got == want


@settings(max_examples=100, deadline=None)
@given(rank=st.sampled_from([1, 2, 3]), size=st.integers(1, 12),
       factor=st.one_of(st.integers(1, 4), st.sampled_from([0.5, 1.5, 1.7, 2.25, 0.3, 3.1])))
def test_upsample_factor_gives_torchs_sizes(rank, size, factor):
    sizes = (size,) * rank
    try:
        want = tuple(torch.nn.Upsample(scale_factor=factor)(torch.zeros(1, 2, *sizes)).shape[1:])
    except RuntimeError:
        want = None
    try:
        shape = "x".join(map(str, (2, *sizes)))
        got = loads(f"net t {{ input {shape}  upsample(factor={factor}) }}").outputs[0].layer.shape
    except Exception as e:  # noqa: BLE001
        assert want is None or 0 in want, e
        return
    assert got == want
