"""The memory model (netdsl/memory.py): hand-counted cases, the registry's in-place flag true
to torch's modules, and the model against torch's own measurement (netdsl/backend/measure.py)
within 10 %: on the CPU for three nets here (bench/bench_memory.py does every net in nets/),
and on CUDA with max_memory_allocated where a GPU is present."""

from __future__ import annotations

import subprocess
import sys

import pytest

import netdsl
from conftest import ROOT
from netdsl.memory import in_place_layers, memory, peak_bytes, release_points, saved_bytes, works_in_place
from netdsl.ops import REGISTRY

TOLERANCE = 0.10
MEASURED = ["lenet5.net", "torchvision/resnet18.net", "googlenet.net"]  # views, residual adds, LRN and concats


def test_hand_counted_chain():
    # conv 8x8x8 (512 values) -> relu in place -> conv 4x8x8 (256): at conv2 both live
    net = netdsl.loads("net n { input 3x8x8  c1: conv(8, 3, pad=1)  r1: relu  c2: conv(4, 3, pad=1) }")
    assert works_in_place(net) == {"r1"}
    assert peak_bytes(net, 1, 4) == (512 + 256) * 4
    # backward keeps the input (192), c1's output as relu's result (512, c2's input too): once each
    assert saved_bytes(net, 1, 4) == (192 + 512) * 4
    m = memory(net, batch=2, dtype="float16")
    params = 8 * 3 * 9 + 8 + 4 * 8 * 9 + 4
    assert (m.params, m.gradients, m.sgd_momentum, m.adam) == (2 * params, 2 * params, 2 * params, 4 * params)
    assert m.peak == 2 * 2 * (512 + 256) and m.input == 2 * 2 * 192
    assert m.training("sgd") == m.params + m.buffers + m.gradients + m.sgd_momentum + m.input + m.saved


def test_a_blocks_input_lives_until_the_block_ends():
    # As eager PyTorch, whose caller holds a module's input until the module returns: c0's
    # 512 values outlive b's first conv, so at b.conv2 c0 (512), b.conv1 (256) and b.conv2 (128)
    # are alive at once (releasing c0 after its last reader, the peak would be 512 + 256).
    net = netdsl.loads("net n { input 3x8x8  c0: conv(8, 3, pad=1)  b: { conv(4, 1)  conv(2, 1) }  c3: conv(1, 1) }")
    layers = list(net.ir.body())
    names = [layer.name for layer in layers]
    release = release_points(layers)
    assert release["c0"] == names.index("b.conv2")
    assert release["b.conv1"] == names.index("b.conv2")  # read inside its own scope: its last reader
    assert release["b.conv2"] == names.index("c3")
    assert peak_bytes(net, 1, 1) == 512 + 256 + 128


def test_a_concat_holds_its_branches():
    net = netdsl.loads("net n { input 4x8x8  concat { conv(2, 1) | conv(3, 1) | conv(5, 1) } }")
    # the three branch outputs (2+3+5 channels) and the joined result (10) at once
    assert peak_bytes(net, 1, 1) == 2 * 10 * 64


def test_training_heads_are_left_out_of_inference():
    text = "net n { input 16  a: linear(64)  b: train head { linear(1000) }  c: linear(8) }"
    net = netdsl.loads(text)
    assert peak_bytes(net, 1, 1) == 64 + 8  # the head's 1000 values never exist in evaluation mode
    assert memory(net).params_deploy < memory(net).params


def test_in_place_flag_is_true_to_torch():
    """`OpSpec.in_place` says whether the module has torch's `inplace` switch, which the backend
    turns on: the memory model reads the flag instead of building the module."""
    pytest.importorskip("torch")
    for name, spec in REGISTRY.items():
        if spec.build is None:
            continue
        for example in spec.examples:
            net = netdsl.loads(f"net n {{ input {example.input}  {example.text} }}")
            for layer in net.ir.body():
                if layer.op is spec and not spec.join:
                    module = spec.build([i.shape for i in layer.inputs], layer.attrs)
                    assert spec.in_place == hasattr(module, "inplace"), name
    from netdsl.ops.modules import Add
    assert REGISTRY["add"].in_place and hasattr(Add(), "inplace")


def test_the_backend_uses_the_same_decision():
    from netdsl.backend import fx
    assert fx.in_place_layers is in_place_layers


def test_summary_does_not_import_torch():
    code = ("import sys, netdsl; s = netdsl.load('nets/googlenet.net').summary(); s.memory('bfloat16'); "
            "s.to_markdown(); s.to_csv(); s.to_latex(); s._repr_html_(); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize("name", MEASURED)
def test_model_agrees_with_torch_on_the_cpu(name):
    torch = pytest.importorskip("torch")
    from netdsl.backend.measure import inference_peak, saved_for_backward

    net = netdsl.load(ROOT / "nets" / name)
    model = memory(net, batch=2)
    torch.manual_seed(0)
    module = net.compile()
    x = torch.randn(2, *net.input_shape)
    peak = inference_peak(module, x).tensors
    saved = saved_for_backward(module, x)
    assert abs(model.peak / peak - 1) <= TOLERANCE, (model.peak, peak)
    assert abs(model.saved / saved - 1) <= TOLERANCE, (model.saved, saved)


@pytest.mark.parametrize("name", MEASURED)
def test_model_agrees_with_torch_on_cuda(name):
    """The profiler's CUDA allocations, workspaces apart, within 10 %; max_memory_allocated,
    which counts cuDNN's workspaces and max pooling's indices too, at least the model less 10 %."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the peak is checked against max_memory_allocated where one is")
    from netdsl.backend.measure import cuda_peak, inference_peak

    net = netdsl.load(ROOT / "nets" / name)
    model = memory(net, batch=2).peak
    module = net.compile(device="cuda")
    x = torch.randn(2, *net.input_shape, device="cuda")
    tensors = inference_peak(module, x).tensors
    assert abs(model / tensors - 1) <= TOLERANCE, (model, tensors)
    assert cuda_peak(module, x) >= (1 - TOLERANCE) * model


def _registry_cases():
    for name, spec in REGISTRY.items():
        if spec.build is None or spec.source:
            continue
        for i, example in enumerate(spec.examples):
            yield pytest.param(example.input, example.text, id=f"{name}-{i}")
            if not spec.join:  # after a conv or linear, whose output the op may overwrite, then a ReLU
                first = "conv(4, 1)" if "x" in example.input else "linear(6)"
                yield pytest.param(example.input, f"{first} {example.text} relu", id=f"{name}-{i}-in-place")


@pytest.mark.parametrize("shape, text", list(_registry_cases()))
def test_every_op_agrees_with_torch(shape, text):
    """Each registry entry's `saves`, `scratch` and in-place flags, against torch on a small net."""
    torch = pytest.importorskip("torch")
    from netdsl.backend.measure import inference_peak, saved_for_backward

    try:
        net = netdsl.loads(f"net n {{ input {shape}  {text} }}")
    except netdsl.NetDSLError:
        pytest.skip("the op does not follow a conv or linear here")
    torch.manual_seed(0)
    module = net.compile()
    x = torch.randn(2, *net.input_shape)
    model = memory(net, batch=2)
    # exact, but for a 0-dimensional tensor LRN's formula makes of a Python number (8 bytes)
    peak, saved = inference_peak(module, x).tensors, saved_for_backward(module, x)
    assert abs(model.peak - peak) <= 8, (model.peak, peak)
    assert model.saved == saved
