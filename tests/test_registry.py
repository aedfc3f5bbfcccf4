"""Registry-wide tests: every registered op's `examples` (netdsl/ops/) through every path a layer
takes, so a new op is tested here without a new line. Each example is the net
`input SHAPE  ITEM`; the paths:

- the registry itself is well formed (docs, examples, kinds, attributes);
- MACs and parameters against an independent count on the real torch modules;
- forward and backward of the compiled net (finite gradients; the caller's input left as it
  was), and the runtime shape check;
- TorchScript, `torch.export` and ONNX (onnxruntime) round trips: equal outputs;
- `optimize="fuse"`: equal outputs, the op alone and after a conv or a linear (BatchNorm folding);
- the in-place rewrite (`in_place_layers`): outputs and gradients equal to the same module built
  without it, in contexts where it applies; the `overwritable` and `aliases` flags checked
  against what the modules do;
- the diagram: deterministic DOT, in this process and across fresh ones; every kind coloured;
  each op's box in its kind's colours (or its mark).

(tests/test_ops.py checks each example's shape rule and parameter count against torch;
tests/test_readme.py that the README's op table lists every op.)

A path that cannot work for an op for a reason outside netdsl is listed in KNOWN_FAILURES, per
op, example and path, as a strict xfail: it turns red when the cause goes away.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

import pytest
import torch
from conftest import ROOT, randomise
from graphviz.quoting import quote
from torch import nn

import netdsl
from netdsl import render
from netdsl.backend.errors import CompileError
from netdsl.backend.export import FORMATS, MAX_BATCH, export
from netdsl.backend.fx import compile_network, in_place_layers
from netdsl.backend.runtime import check_run
from netdsl.ops import KINDS, REGISTRY, REQUIRED, OpSpec

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
TOLERANCE = 1e-5  # max|a - b| <= TOLERANCE * max|b|, float32
BATCH = 2         # training-mode BatchNorm needs more than one value per channel
OTHER_BATCH = 3   # exports are checked on another batch size than their example: the batch is dynamic


# --- the cases --------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One example of one op: `input SHAPE  TEXT`."""

    op: str
    input: str
    text: str

    @property
    def spec(self) -> OpSpec:
        return REGISTRY[self.op]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input.split("x"))

    @property
    def id(self) -> str:
        return f"{self.op}: {self.input} {self.text}"

    def source(self, item: Optional[str] = None) -> str:
        return f"net t {{ input {self.input}  {self.text if item is None else item} }}"

    def producer(self) -> Optional[tuple[str, str]]:
        """A layer with weights that keeps the example's input shape, to put the op after:
        (`after conv`, `conv(C, 1)`) for images, (`after linear`, `linear(C)`) for vectors;
        None for an op that takes no input (the net's input follows nothing)."""
        if self.spec.source:
            return None
        shape = self.shape
        if len(shape) in (2, 3, 4):  # a sequence, an image or a volume
            return "after conv", f"conv({shape[0]}, 1)"
        if len(shape) == 1:
            return "after linear", f"linear({shape[0]})"
        return None


CASES = [Case(name, ex.input, ex.text) for name, spec in REGISTRY.items() for ex in spec.examples]

# The paths that KNOWN_FAILURES may name.
PATHS = ("torchscript", "exported", "onnx", "fuse", "fuse after conv", "fuse after linear")

# (op, input, example text, path) -> (the exception it raises, why). Each is a strict xfail of that
# case alone: it turns red when the path starts working, and the entry must then go.
_NO_ONNX_ADAPTIVE = "torch's ONNX exporter has no function for {} (a size of 1 on every axis, the global pool, exports)"

KNOWN_FAILURES: dict[tuple[str, str, str, str], tuple[type, str]] = {
    ("adaptive_avgpool", "3x5x9x7", "adaptive_avgpool(1x3x2)", "onnx"):
        (CompileError, _NO_ONNX_ADAPTIVE.format("aten._adaptive_avg_pool3d")),
    ("adaptive_maxpool", "5x9x7", "adaptive_maxpool(3x2)", "onnx"):
        (CompileError, _NO_ONNX_ADAPTIVE.format("aten.adaptive_max_pool2d")),
    ("adaptive_maxpool", "4x20", "adaptive_maxpool(6)", "onnx"):
        (CompileError, _NO_ONNX_ADAPTIVE.format("aten.adaptive_max_pool2d (1-D pooling lowers to it)")),
    ("adaptive_maxpool", "3x5x9x7", "adaptive_maxpool(1x3x2)", "onnx"):
        (CompileError, _NO_ONNX_ADAPTIVE.format("aten.adaptive_max_pool3d")),
    # none today: `batchnorm(affine=false)` after a linear failed under fuse (torch's
    # fuse_linear_bn_weights multiplies by a None weight) until netdsl/backend/optimize.py
    # folded BatchNorm itself
}


def _param(case: Case, *values, path: str, id: Optional[str] = None):
    known = KNOWN_FAILURES.get((case.op, case.input, case.text, path))
    marks = [pytest.mark.xfail(raises=known[0], reason=known[1], strict=True)] if known else []
    return pytest.param(case, *values, id=id or case.id, marks=marks)


def _cases(path: Optional[str] = None):
    return [_param(case, path=path) if path else pytest.param(case, id=case.id) for case in CASES]


def test_known_failures_name_real_examples_and_paths():
    """A stale entry (an example renamed or removed, a path misspelt) would mark nothing."""
    examples = {(c.op, c.input, c.text) for c in CASES}
    for key in KNOWN_FAILURES:
        assert key[:3] in examples and key[3] in PATHS, key


# --- building, shared between the tests -------------------------------------------------------

class Built:
    """Nets and compiled modules by text, each made once for the module's tests. The modules'
    parameters and buffers are random but the same for the same text (and in either build).
    Tests set the mode they need, and clear gradients before a backward pass."""

    def __init__(self):
        self._nets: dict[str, netdsl.Network] = {}
        self._modules: dict[tuple[str, bool], nn.Module] = {}

    def net(self, text: str) -> netdsl.Network:
        if text not in self._nets:
            self._nets[text] = netdsl.loads(text)
        return self._nets[text]

    def module(self, text: str, in_place: bool = True) -> nn.Module:
        key = (text, in_place)
        if key not in self._modules:
            self._modules[key] = randomise(compile_network(self.net(text), in_place=in_place))
        return self._modules[key]


@pytest.fixture(scope="module")
def built() -> Built:
    return Built()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The examples' tensors are tiny: a second thread only adds synchronisation (on a busy 2-core
    machine, conv backward passes took 20 to 100 times as long with two threads as with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _input(shape: tuple[int, ...], batch: int = BATCH, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))


def close(a: torch.Tensor, b: torch.Tensor, tolerance: float = TOLERANCE) -> bool:
    """Equal within `tolerance` of the largest magnitude."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item() <= tolerance * max(b.abs().max().item(), 1e-30)


def _tested_layer(net: netdsl.Network, spec: OpSpec):
    """The layer of the op under test in its example's net: the net's input for a source op,
    otherwise the last layer (for a join, the join itself)."""
    layer = net.ir.input if spec.source else net.outputs[0].layer
    assert layer.op is spec
    return layer


# --- the registry is well formed ----------------------------------------------------------------

@pytest.mark.parametrize("name", list(REGISTRY))
def test_registry_entry_is_well_formed(name):
    spec = REGISTRY[name]
    assert spec.name == name and re.fullmatch(r"[a-z][a-z0-9_]*", name)
    assert spec.doc.strip() and spec.shape_doc.strip() and spec.params_doc.strip() and spec.family
    assert spec.examples and all(ex.input.strip() and ex.text.strip() for ex in spec.examples)
    assert spec.kind in KINDS
    names = [a.name for a in spec.attrs]
    assert len(names) == len(set(names)), "attribute names must be unique"
    positional = [a.positional for a in spec.attrs]
    assert positional == sorted(positional, reverse=True), "positional attributes come first"
    assert all(a.doc == a.doc.strip() for a in spec.attrs)
    for a in spec.attrs:  # a plain default is a value the attribute accepts
        if a.default is not REQUIRED and not callable(a.default):
            a.type.convert(a.default, a.name)
    assert not (spec.join and spec.source)
    assert (spec.build is None) == spec.source, "every op but the input builds a module"
    if spec.mark is not None:
        assert spec.mark.text and spec.mark.shape in render.MARK_STYLES
    if spec.bare is not None:  # one tensor from one input: a join's or the input's module is no parameter
        assert not (spec.join or spec.source or spec.in_place or spec.aliases)
        assert getattr(spec.bare, "__module__", None) in ("_operator", "operator", "torch") or \
            getattr(sys.modules.get(spec.bare.__module__), spec.bare.__qualname__, None) is spec.bare, \
            "a bare op's function is importable by name (a pickled net imports it)"


# --- bare parameters (OpSpec.bare) ----------------------------------------------------------------

BARE_CASES = [pytest.param(case, id=case.id) for case in CASES if case.spec.bare is not None]


def test_some_op_is_bare():
    assert BARE_CASES, "the bare tests below test nothing"


@pytest.mark.parametrize("case", BARE_CASES)
def test_a_bare_op_is_its_parameter_named_by_the_layer(built, case):
    """Its one tensor is the layer: state_dict key `b.s`, a parameter of the scope's module (no
    module of its own), in its module's shape, before the scope's other layers' tensors (a
    module's own parameters come first, as torchvision's CNBlock registers `layer_scale`), and
    the compiled net computes what the module built alone computes with that tensor."""
    text = case.source(f"b: {{ first: {case.producer()[1]}  s: {case.text} }}")
    net, module = built.net(text), randomise(built.module(text)).eval()
    layer = net.layer("b.s")
    assert isinstance(module.b._parameters["s"], nn.Parameter) and "b.s" not in dict(module.named_modules())
    assert list(module.state_dict()) == ["b.s", "b.first.weight", "b.first.bias"]
    alone = case.spec.build([i.shape for i in layer.inputs], layer.attrs)
    (weight,) = alone.parameters()
    assert module.b.s.shape == weight.shape and not list(alone.buffers())
    x = _input(case.shape)
    with torch.no_grad():
        weight.copy_(module.b.s)
        assert torch.equal(module(x), alone(module.b.first(x)))
    assert [n.target for n in module.graph.nodes if n.op == "get_attr"] == ["b.s"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_colours(kind):
    assert re.fullmatch(r"#[0-9a-f]{6}", kind.fill) and re.fullmatch(r"#[0-9a-f]{6}", kind.border)
    assert [k.name for k in KINDS].count(kind.name) == 1


# --- MACs and parameters --------------------------------------------------------------------

def _macs_by_hooks(module: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """MACs per example of every convolution (1-D, 2-D, 3-D, transposed) and Linear that runs,
    counted from the modules themselves: output elements times the inputs each one reads; for a
    transposed convolution, input elements times the outputs each one is scattered to."""
    counted: dict[str, int] = {}

    def hook(name):
        def count(mod, args, out):
            if isinstance(mod, CONV_TRANSPOSES):
                macs = args[0][0].numel() * mod.out_channels // mod.groups * math.prod(mod.kernel_size)
            elif isinstance(mod, CONVS):
                macs = out[0].numel() * mod.in_channels // mod.groups * math.prod(mod.kernel_size)
            else:
                macs = out[0].numel() * mod.in_features
            counted[name] = counted.get(name, 0) + macs
        return count

    handles = [m.register_forward_hook(hook(name)) for name, m in module.named_modules()
               if isinstance(m, (*CONVS, *CONV_TRANSPOSES, nn.Linear))]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return counted


def _layer_tensors(module: nn.Module, layer) -> list[torch.Tensor]:
    """The parameters of a layer of the compiled `module`: its module's, or for a bare op the
    parameter named by the layer itself."""
    if layer.op.bare is not None:
        return [module.get_parameter(layer.name)]
    return list(module.get_submodule(layer.name).parameters())


@pytest.mark.parametrize("case", _cases())
def test_macs_and_params_equal_a_count_on_the_torch_modules(built, case):
    net = built.net(case.source())
    module = built.module(case.source()).eval()
    counted = _macs_by_hooks(module, _input(case.shape))
    assert counted == {layer.name: layer.macs for layer in net.ir if layer.macs}
    assert sum(counted.values()) == net.total_macs()
    params = {layer.name: sum(p.numel() for p in _layer_tensors(module, layer)) for layer in net.ir.body()}
    assert params == {layer.name: layer.params for layer in net.ir.body()}
    assert sum(p.numel() for p in module.parameters()) == net.total_params()


# --- forward and backward ------------------------------------------------------------------

def _loss(out: torch.Tensor) -> torch.Tensor:
    """A random projection of the output (a plain sum would give softmax zero gradients)."""
    return (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(7))).sum()


@pytest.mark.parametrize("case", _cases())
def test_forward_and_backward_give_finite_gradients(built, case):
    net = built.net(case.source())
    module = built.module(case.source()).train()
    module.zero_grad(set_to_none=True)
    x = _input(case.shape).requires_grad_()
    kept = x.detach().clone()
    torch.manual_seed(0)
    out = module(x)
    assert tuple(out.shape) == (BATCH, *net.outputs[0].layer.shape)
    _loss(out).backward()
    assert torch.equal(x.detach(), kept), "a layer wrote into the caller's input"
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("case", _cases())
def test_runtime_shape_check_passes_and_equals_the_forward(built, case):
    net = built.net(case.source())
    module = built.module(case.source()).eval()
    x = _input(case.shape)
    run = check_run(module, net, x)
    assert run.layers_checked == len(list(net.ir.body()))
    with torch.no_grad():
        assert torch.equal(run.outputs[net.outputs[0].name], module(x))


# --- exports -----------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load's deprecation notice
@pytest.mark.parametrize("case,fmt", [_param(c, fmt, path=fmt, id=f"{c.id} | {fmt}")
                                      for fmt in ("torchscript", "exported") for c in CASES])
def test_torchscript_and_torch_export_give_equal_outputs(built, case, fmt, tmp_path):
    """netdsl's own export (`torch.jit.script`, `torch.export.export`), saved, loaded, run."""
    module = built.module(case.source()).eval()
    x = _input(case.shape, OTHER_BATCH, seed=2)
    with torch.no_grad():
        want = module(x)
    path = export(module, _input(case.shape), fmt, tmp_path / f"t{FORMATS[fmt]}")
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(path).module()
    with torch.no_grad():
        assert close(loaded(x), want)


class _Bundle(nn.Module):
    """Compiled nets side by side, an input and an output each, so that one ONNX export covers
    every example: an export costs more than a second whatever the net, and one of all the
    examples together about five."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(modules)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [net(x) for net, x in zip(self.nets, xs)]


def _onnx_run(path, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [torch.from_numpy(y) for y in session.run(None, {n: x.numpy() for n, x in zip(names, xs)})]


@pytest.fixture(scope="module")
def onnx_bundle(built, tmp_path_factory) -> dict:
    """Every example's ONNX output beside torch's, from one export of them all, made as netdsl's
    exporter makes one (netdsl.backend.export: the dynamo exporter, the batch dynamic, so run on
    another batch size than the export's). Examples listed in KNOWN_FAILURES are left out; if the
    export fails, the dict is empty and each example is exported alone through netdsl's exporter."""
    for extra in ("onnx", "onnxscript", "onnxruntime"):  # the `test` extra
        pytest.importorskip(extra)
    cases = [c for c in CASES if (c.op, c.input, c.text, "onnx") not in KNOWN_FAILURES]
    modules = [built.module(c.source()).eval() for c in cases]
    path = tmp_path_factory.mktemp("onnx") / "bundle.onnx"
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' deprecation notices, as export() does
            torch.onnx.export(_Bundle(modules), ([_input(c.shape) for c in cases],), path,
                              dynamic_shapes=([{0: batch}] * len(cases),), dynamo=True, verbose=False)
    except Exception:  # noqa: BLE001  (each example alone then says which op fails)
        return {}
    xs = [_input(c.shape, OTHER_BATCH, seed=2) for c in cases]
    with torch.no_grad():
        wants = [module(x) for module, x in zip(modules, xs)]
    return dict(zip(cases, zip(_onnx_run(path, xs), wants)))


@pytest.mark.parametrize("case", _cases("onnx"))
def test_onnx_round_trip_gives_equal_outputs(built, onnx_bundle, case, tmp_path):
    if case in onnx_bundle:
        got, want = onnx_bundle[case]
    else:  # a known failure, or the bundle did not export: this example alone names the op
        module = built.module(case.source()).eval()
        x = _input(case.shape, OTHER_BATCH, seed=2)
        with torch.no_grad():
            want = module(x)
        (got,) = _onnx_run(export(module, _input(case.shape), "onnx", tmp_path / "t.onnx"), [x])
    assert close(got, want)


# --- optimize="fuse" ------------------------------------------------------------------------

def _fuse_cases():
    params = []
    for case in CASES:
        params.append(_param(case, None, path="fuse", id=f"{case.id} | alone"))
        producer = case.producer()
        if producer is not None:
            params.append(_param(case, producer, path=f"fuse {producer[0]}", id=f"{case.id} | {producer[0]}"))
    return params


@pytest.mark.parametrize("case,producer", _fuse_cases())
def test_optimize_fuse_gives_equal_outputs(built, case, producer):
    """The op alone and after a conv or a linear, where BatchNorm is folded into it."""
    text = case.source() if producer is None else case.source(f"{producer[1]}  {case.text}")
    net = built.net(text)
    reference = built.module(text).eval()
    fused = net.compile(weights=reference.state_dict(), optimize="fuse")
    x = _input(case.shape, seed=3)
    with torch.no_grad():
        assert close(fused(x), reference(x))
    layer = net.outputs[0].layer
    if producer is not None and layer.op.bare is None and isinstance(reference.get_submodule(layer.name), BATCHNORMS):
        assert layer.name not in dict(fused.named_modules()), "BatchNorm after a conv or linear is folded into it"


# --- the in-place rewrite -----------------------------------------------------------------------

def _in_place_modules(module: nn.Module) -> set[str]:
    return {name for name, m in module.named_modules() if getattr(m, "inplace", False) is True}


def _rewritten(net: netdsl.Network) -> set[str]:
    """The layers the rewrite changes: those `in_place_layers` picks whose module can work in place."""
    built_alone = {name: net.layer(name).op.build([i.shape for i in net.layer(name).inputs], net.layer(name).attrs)
                   for name in in_place_layers(net)}
    return {name for name, module in built_alone.items() if hasattr(module, "inplace")}


def _in_place_contexts(case: Case):
    """The example alone, followed by a ReLU (which may overwrite the op's output), and after a
    conv or linear (whose output the op may overwrite) and followed by a ReLU."""
    yield "alone", case.text
    if case.spec.source:  # after the input, `identity relu` would test identity
        return
    yield "then relu", f"{case.text}  relu"
    producer = case.producer()
    if producer is not None:
        yield f"{producer[0]}, then relu", f"{producer[1]}  {case.text}  relu"


@dataclass(frozen=True)
class InPlace:
    case: Case
    context: str
    text: str
    rewritten: Optional[frozenset]  # None: the net does not load (the test then fails, saying why)

    def tested_layer(self, net: netdsl.Network):
        """The op under test's layer: the last, or the one before the ReLU."""
        last = net.outputs[0].layer
        return last.inputs[0] if self.context.endswith("then relu") else last


def _in_place_cases() -> list[InPlace]:
    """Every context in which the rewrite changes at least one layer (where it changes none,
    both builds are the same module)."""
    found = []
    for case in CASES:
        for context, item in _in_place_contexts(case):
            text = case.source(item)
            try:
                rewritten = frozenset(_rewritten(netdsl.loads(text)))
            except netdsl.NetDSLError:
                rewritten = None
            if rewritten != frozenset():
                found.append(InPlace(case, context, text, rewritten))
    return found


IN_PLACE = _in_place_cases()


def _run_backward(module: nn.Module, shape: tuple[int, ...]):
    """Output, input gradient and parameter gradients of one seeded forward and backward pass."""
    module.zero_grad(set_to_none=True)
    x = _input(shape, seed=4).requires_grad_()
    kept = x.detach().clone()
    torch.manual_seed(0)  # the same dropout masks in every build
    out = module(x)
    _loss(out).backward()
    assert torch.equal(x.detach(), kept), "a layer wrote into the caller's input"
    return out.detach(), x.grad, {name: p.grad for name, p in module.named_parameters()}


@pytest.mark.parametrize("item", IN_PLACE, ids=lambda i: f"{i.case.id} | {i.context}")
def test_in_place_rewrite_keeps_outputs_and_gradients(built, item):
    fast, slow = built.module(item.text), built.module(item.text, in_place=False)
    slow.load_state_dict(fast.state_dict())
    assert _in_place_modules(fast) == item.rewritten
    assert _in_place_modules(slow) == set()
    for training in (True, False):
        (out, grad_x, grads), (want_out, want_x, want_grads) = (
            _run_backward(m.train(training), item.case.shape) for m in (fast, slow))
        mode = "training" if training else "evaluation"
        assert torch.equal(out, want_out), mode
        assert torch.equal(grad_x, want_x), mode
        assert grads.keys() == want_grads.keys()
        for name in grads:
            assert torch.equal(grads[name], want_grads[name]), f"{name}, {mode}"


def test_every_in_place_flag_is_checked_by_a_rewrite():
    """An op marked `overwritable` or `aliases` has a case above where the layer after it is
    rewritten (writing over its output, or through it over its input's), so its backward pass is
    shown not to read what was overwritten; an op whose module can work in place has a case where
    it is rewritten itself."""
    users_rewritten, itself_rewritten = set(), set()
    for item in IN_PLACE:
        if item.rewritten is None:
            continue
        net = netdsl.loads(item.text)
        layer = item.tested_layer(net)
        assert layer.op is item.case.spec
        if layer.name in item.rewritten:
            itself_rewritten.add(layer.op.name)
        if any(user.name in item.rewritten and user.inputs[0] is layer for user in layer.users):
            users_rewritten.add(layer.op.name)
    missing = []
    for name, spec in REGISTRY.items():
        if (spec.overwritable or spec.aliases) and name not in users_rewritten:
            missing.append(f"{name}: no case writes over its output")
        if not spec.source:
            net = netdsl.loads(Case(name, spec.examples[0].input, spec.examples[0].text).source())
            layer = _tested_layer(net, spec)
            if hasattr(spec.build([i.shape for i in layer.inputs], layer.attrs), "inplace") \
                    and name not in itself_rewritten:
                missing.append(f"{name}: its module can work in place, but no case makes it")
    assert missing == [], "add an example (netdsl/ops/) in which the rewrite applies"


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@pytest.mark.parametrize("case", _cases())
def test_only_ops_marked_aliases_hand_back_their_input_memory(built, case):
    """The rewrite counts a layer that may pass its input's memory on (`aliases`) as no reader of
    it: a module that returned its input's memory without the flag could be overwritten behind
    its readers' backs."""
    net = built.net(case.source())
    module = built.module(case.source())
    last = net.outputs[0].layer
    for training in (True, False):
        module.train(training)
        x = _input(case.shape)
        with torch.no_grad():
            out = module(x)
        if _shares_memory(out, x):
            assert last.op.aliases and all(i.op.aliases or i.is_source for i in last.inputs)


@pytest.mark.parametrize("name", [name for name, spec in REGISTRY.items() if spec.aliases])
def test_ops_marked_aliases_do_pass_their_input_on_in_some_example(built, name):
    """Not a stale flag: in evaluation mode, some example returns its input's memory."""
    shares = []
    for example in REGISTRY[name].examples:
        case = Case(name, example.input, example.text)
        x = _input(case.shape)
        with torch.no_grad():
            shares.append(_shares_memory(built.module(case.source()).eval()(x), x))
    assert any(shares)


# --- the diagram -----------------------------------------------------------------------------------

_DOT_SCRIPT = """
import json, sys
import netdsl
texts = json.load(sys.stdin)
dots = {}
for text in texts:
    net = netdsl.loads(text)
    dots[text] = [net.to_dot().source, net.to_dot(depth=None).source]
print(json.dumps(dots))
"""


def _dots(text: str) -> list[str]:
    net = netdsl.loads(text)
    return [net.to_dot().source, net.to_dot(depth=None).source]


@pytest.fixture(scope="module")
def fresh_dots() -> list[dict[str, list[str]]]:
    """Every example's DOT, at depth 1 and expanded, from two fresh processes with different
    hash seeds (so that set and dict orders depending on hashing would differ)."""
    texts = json.dumps([case.source() for case in CASES])
    runs = []
    for seed in ("1", "2"):
        result = subprocess.run([sys.executable, "-c", _DOT_SCRIPT], input=texts, capture_output=True, text=True,
                                cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout))
    return runs


@pytest.mark.parametrize("case", _cases())
def test_dot_is_deterministic(fresh_dots, case):
    text = case.source()
    here = _dots(text)
    assert _dots(text) == here
    assert [run[text] for run in fresh_dots] == [here, here]


def _node_line(dot: str, name: str) -> str:
    start = f"{quote(name)} ["
    lines = [line.strip() for line in dot.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, f"no box of its own for {name}"
    return lines[0]


def _label_and_attributes(line: str) -> tuple[str, str]:
    """A node statement's HTML label (`<...>`, tags nested inside) and the attributes after it."""
    start = line.index("[label=<") + len("[label=")
    depth = 0
    for end, char in enumerate(line[start:], start):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if depth == 0:
            return line[start + 1:end], line[end + 1:]
    raise AssertionError(f"unclosed label in {line}")


def _attribute(attributes: str, key: str) -> Optional[str]:
    found = re.search(rf'(?<![a-z]){key}=("[^"]*"|[^ \]]+)', attributes)
    return None if found is None else found.group(1).strip('"')


@pytest.mark.parametrize("case", _cases())
def test_box_has_its_kinds_colours_or_its_mark(built, case):
    net = built.net(case.source())
    spec = case.spec
    layer = _tested_layer(net, spec)
    for options in ({}, {"depth": None, "fold_activations": False}):
        label, attributes = _label_and_attributes(_node_line(net.to_dot(**options).source, layer.name))
        colours = _attribute(attributes, "fillcolor"), _attribute(attributes, "color")
        assert colours == (spec.kind.fill, spec.kind.border), options
        if spec.mark is not None:
            assert label == render._escape(spec.mark.text)
            assert _attribute(attributes, "shape") == render.MARK_STYLES[spec.mark.shape]["shape"]


# --- CUDA (skipped without a GPU) ------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_every_example_on_cuda_equals_the_cpu():
    """Forward and backward of every example on the GPU: outputs within TF32's reach of the CPU's,
    finite gradients (one test: the examples are tiny)."""
    failed = {}
    for case in CASES:
        net = netdsl.loads(case.source())
        cpu = randomise(net.compile()).eval()
        gpu = net.compile(device="cuda", weights=cpu.state_dict()).eval()
        x = _input(case.shape)
        with torch.no_grad():
            want = cpu(x)
        xg = x.cuda().requires_grad_()
        out = gpu(xg)
        _loss(out.cpu()).backward()
        finite = torch.isfinite(xg.grad).all() and all(torch.isfinite(p.grad).all() for p in gpu.parameters())
        if not (close(out.detach().cpu(), want, 1e-2) and finite):
            failed[case.id] = (out.detach().cpu() - want).abs().max().item()
    assert failed == {}
