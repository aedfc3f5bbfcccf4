"""The torch backend: every net compiles and runs with the inferred shapes and counts; the
torchvision-equivalent nets equal torchvision's modules; weights load safely and all or
nothing; the module is a plain module (modes, deepcopy, training, exports)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torchvision

import netdsl
from netdsl.backend import CompileError, NetModule, UncompilableNet, WeightsError
from netdsl.backend.runtime import RuntimeShapeError, check_run, example_input
from netdsl.backend.weights import match_state, save_weights

from conftest import NETS, SMALL, net_files

TOLERANCE = 1e-5  # max|a - b| <= TOLERANCE * max|b|, float32

TORCHVISION = {
    "alexnet": lambda: torchvision.models.alexnet(),
    "vgg16": lambda: torchvision.models.vgg16(),
    "googlenet": lambda: torchvision.models.googlenet(aux_logits=True, init_weights=True),
    "resnet18": lambda: torchvision.models.resnet18(),
}

def close(a: torch.Tensor, b: torch.Tensor, tolerance: float = TOLERANCE) -> bool:
    return (a - b).abs().max().item() <= tolerance * b.abs().max().item()


@pytest.fixture(scope="module")
def small():
    return netdsl.loads(SMALL, "small.net")


# --- every net ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", net_files(), ids=lambda p: str(p.relative_to(NETS)))
def test_every_net_compiles_runs_and_counts_as_the_summary(path):
    net = netdsl.load(path)
    module = net.compile()
    assert isinstance(module, NetModule) and isinstance(module, torch.fx.GraphModule)
    run = check_run(module, net, example_input(net, batch=2))
    assert run.layers_checked == len(net.layers)  # every layer's shape compared, heads included
    for output in net.outputs:
        assert tuple(run.outputs[output.name].shape) == (2, *net.layer(output.layer.name).shape)
    assert sum(p.numel() for p in module.parameters()) == net.total_params()
    deploy = [n for n in module._graphs[False].nodes if n.op in ("call_module", "get_attr")]  # get_attr: bare ops'
    assert sum(p.numel() for n in deploy for p in ([module.get_parameter(n.target)] if n.op == "get_attr"
                                                   else module.get_submodule(n.target).parameters())) \
        == net.total_params(train=False)


@pytest.mark.parametrize("path", net_files(), ids=lambda p: str(p.relative_to(NETS)))
def test_every_net_trains_one_step(path):
    # In-place ReLUs and sums (the backend's rewrite) must leave autograd what it needs.
    net = netdsl.load(path)
    module = net.compile().train()
    out = module(example_input(net, batch=2))
    loss = sum(t.float().square().mean() for t in ([out] if isinstance(out, torch.Tensor) else out))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


IN_PLACE = """
net shared {
    input 4x8x8
    c: conv(4, 3, pad=1)
    r1: relu                      # c is read twice (here and by the head): r1 must copy
    h: head from c { flatten }
    s: sigmoid
    r2: relu                      # sigmoid's backward reads its output: r2 must copy
    d: conv(4, 1)
    f: flatten
    r3: relu                      # flatten is a view of d, read only here: in place
    fc: linear(2)
}
"""


def test_layers_work_in_place_only_where_nothing_else_reads_their_input():
    module = netdsl.loads(IN_PLACE).compile()
    assert (module.r1.inplace, module.r2.inplace, module.r3.inplace) == (False, False, True)
    resnet = netdsl.load(NETS / "torchvision" / "resnet18.net").compile()
    assert resnet.get_submodule("layer1.0.add1").inplace  # torchvision's `out += identity`


def test_state_dict_keys_read_like_the_file():
    module = netdsl.load(NETS / "googlenet.net").compile(init="meta")
    keys = module.state_dict().keys()
    assert "inception3a.branch2.conv2.weight" in keys and "aux1.fc2.bias" in keys
    # straight-line generated forward, reaching each layer through the `_modules` dicts
    assert "self._modules['inception3a']._modules['branch2']._modules['conv2'](" in module.code


def test_generated_forward_calls_the_modules_there_now():
    """The forward reaches layers through `_modules`, not attributes (nn.Module's `__getattr__`,
    in Python, one call a level): a layer replaced or removed afterwards must still be seen, as
    with attributes, and TorchScript, which cannot read `_modules`, gets fx's own code."""
    import torch
    from torch import nn
    module = netdsl.loads("net n { input 3x8x8  b: { conv(4, 3, pad=1)  relu }  flatten  linear(2) }").compile().eval()
    x = torch.randn(2, 3, 8, 8)
    assert "self._modules['b']._modules['conv1'](" in module.code
    assert "__getattr__" not in str(module.code)
    before = module(x)
    calls = []
    module.b.relu1 = nn.Identity()  # setattr: called from now on
    module.b.relu1.register_forward_hook(lambda *args: calls.append(1))
    module(x)
    assert calls == [1]
    module.b.add_module("relu1", nn.ReLU())
    assert torch.equal(module(x), before)
    del module.b.relu1
    with pytest.raises(KeyError):
        module(x)
    module.b.relu1 = nn.ReLU()
    scripted = torch.jit.script(module)
    assert torch.equal(scripted(x), before)
    assert torch.equal(module(x), before)


def test_numbered_scopes_and_optimised_modules_call_through_modules_too():
    """fx reaches a numbered layer as `getattr(self.f, "0")`, an nn.Module `__getattr__` per
    level like any attribute: the generated forward of a compile, and of `optimize`'s and
    `onednn_layers`' inference modules, read the `_modules` dicts there too."""
    import torch
    from netdsl.backend.onednn import onednn_layers
    from netdsl.backend.optimize import optimize
    module = netdsl.loads("net n { input 3x8x8  f: seq { conv(4, 3, pad=1)  batchnorm  relu  g: seq { conv(4, 1) } }"
                          "  flatten  linear(2) }").compile().eval()
    assert "self._modules['f']._modules['0'](" in module.code
    assert "self._modules['f']._modules['g']._modules['0'](" in module.code
    fused, dnn = optimize(module, "fuse"), onednn_layers(optimize(module, "fuse"))
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        want = module(x)
        for fast, call in ((fused, "("), (dnn, ".forward(")):
            assert f"self._modules['f']._modules['0']{call}" in fast.code and "getattr(" not in fast.code
            assert close(fast(x), want)
        fused.f._modules["2"] = torch.nn.Identity()  # as assigning fused.f[2]: seen by the next call
        assert not close(fused(x), want)
    # onednn's inference module calls its layers' forward (no hook lookups), but for a layer
    # that has a hook when it is made: that one keeps nn.Module's call, and its hook is called
    fused = optimize(module, "fuse")
    calls = []
    fused.flatten1.register_forward_hook(lambda *args: calls.append(1))
    dnn = onednn_layers(fused)
    assert "self._modules['f']._modules['0'].forward(" in dnn.code and "self._modules['flatten1'](" in dnn.code
    with torch.inference_mode():
        assert close(dnn(x), want) and calls == [1]


def test_generated_forward_lets_go_of_a_blocks_input_after_the_block():
    """Where eager code lets go of it (memory.release_points), not after its last reader: the
    order of frees decides how often glibc's malloc faults big blocks in again."""
    import torch
    module = netdsl.loads("net n { input 3x8x8  c0: conv(8, 3, pad=1)  b: { conv(4, 1)  relu  conv(2, 1) }"
                          "  c3: conv(1, 1) }").compile().eval()
    lines = {line.strip().split(" = ")[0]: line for line in module.code.splitlines() if " = " in line}
    assert lines["b_conv1"].endswith(")")  # b.conv1 reads c0 last, but c0 is b's input
    assert lines["b_conv2"].endswith(";  b_relu1 = c0 = None")
    x = torch.randn(2, 3, 8, 8)
    expected = module.c3(module.b.conv2(module.b.relu1(module.b.conv1(module.c0(x)))))
    assert torch.equal(module(x), expected)


def test_compile_refuses_too_many_parameters_before_allocating():
    # 10^12 parameters: 4 TB of float32. Checking and summarising allocate nothing and work.
    net = netdsl.loads("net huge { input 1000000  linear(1000000) }")
    assert net.total_params() == 1_000_000 * 1_000_001
    with pytest.raises(UncompilableNet, match=r"1,000,001,000,000 parameters \(4\.0 TB as float32\).*"
                                              r"10,000,000,000"):
        net.compile()


@pytest.mark.parametrize("label,why", [
    ("forward", "torch.nn.Module uses the name `forward` itself"),
    ("training", "torch.nn.Module uses the name `training` itself"),  # an instance attribute
    ("meta", "torch.nn.Module uses the name `meta` itself"),  # set by GraphModule on each instance
    ("_modules", "torch.nn.Module uses the name `_modules` itself"),
    ("_mine", "torch.nn.Module keeps names that start with `_` for itself"),
    ("self", "torch.nn.Module uses the name `self` itself"),  # the generated code's own name
    ("class", "`class` is a Python keyword"),
])
def test_layer_named_like_a_module_attribute_or_keyword_is_refused_with_its_place(label, why):
    net = netdsl.loads(f"net t {{\n  input 4\n  {label}: {{ linear(2) }}\n}}", "t.net")
    with pytest.raises(UncompilableNet, match=rf"t\.net:3:{len(label) + 7}: layer `{label}.linear1`: {why}"):
        net.compile()


def test_runtime_shape_check_points_into_the_source():
    net = netdsl.loads(SMALL, "small.net")
    net.layer("fc").shape = (6,)  # as if the linear rule were wrong
    module = net.compile()
    with pytest.raises(RuntimeShapeError, match=r"small\.net:10:9: layer `fc`: torch computed 5 "
                                                 r"where netdsl inferred 6"):
        check_run(module, net, example_input(net))


# --- modes ----------------------------------------------------------------------------------

def test_eval_returns_the_main_output_and_train_every_output(small):
    module = small.compile()
    x = torch.randn(2, 3, 16, 16)
    out = module.train()(x)
    assert out._fields == ("fc", "aux") and out.aux.shape == (2, 5)
    assert "aux" in module.code
    main = module.eval()(x)
    assert isinstance(main, torch.Tensor) and main.shape == (2, 5)
    assert "aux" not in module.code  # the evaluation graph leaves the head out


def test_deepcopy_keeps_both_modes(small):
    module = small.compile().eval()
    twin = copy.deepcopy(module)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(twin(x), module(x))
    assert twin.train()(x)._fields == ("fc", "aux")
    assert set(twin.state_dict()) == set(module.state_dict())


def test_outputs_and_modules_pickle(small):
    module = small.compile().train()
    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(0)  # the same dropout draws for both calls
    out = module(x)
    again = pickle.loads(pickle.dumps(out))  # the named tuple itself, as multiprocessing sends it
    assert again._fields == ("fc", "aux") and torch.equal(again.aux, out.aux)
    twin = pickle.loads(pickle.dumps(module))  # fx pickles the code of the current mode
    torch.manual_seed(0)
    assert torch.equal(twin(x).fc, out.fc)
    assert module.train()(x)._fields == ("fc", "aux")  # pickling left the module whole


def test_switching_modes_reuses_each_generated_forward(small):
    module = small.compile()
    module.eval()
    forwards = {mode: type(module).forward for mode in (False,)}
    module.train(), module.eval()
    assert type(module).forward is forwards[False]  # generated once, swapped afterwards


LABELLED_JOIN = """
net resid {
    input 4x8x8
    res: add { identity | conv(4, 3, pad=1)  batchnorm }
    cat: concat { conv(2, 1) | conv(3, 1) }
    relu
    flatten
    fc: linear(3)
}
"""


def test_labelled_joins_hold_their_branches():
    net = netdsl.loads(LABELLED_JOIN)
    module = net.compile()
    assert "res.branch2.conv1.weight" in module.state_dict() and "cat.branch1.conv1.weight" in module.state_dict()
    assert list(module.state_dict())[0] == "res.branch2.conv1.weight"  # definition order kept
    run = check_run(module, net, example_input(net, 2))
    assert run.layers_checked == len(net.layers) and run.outputs["fc"].shape == (2, 3)
    assert sum(p.numel() for p in module.parameters()) == net.total_params()


HEADS = """
block b(c) {
    conv(c, 3, pad=1)
    h: head { global_avgpool  flatten }
    relu
}
net heads {
    input 4x8x8
    b1: b(4)
    probe: head { flatten }
    global_avgpool  flatten
    fc: linear(3)
}
"""


def test_deploy_heads_inside_blocks_and_odd_names_become_fields(tmp_path):
    from netdsl.backend.export import export

    net = netdsl.loads(HEADS)
    module = net.compile().eval()
    x = torch.randn(2, 4, 8, 8)
    out = module(x)
    assert out._fields == ("fc", "b1_h", "probe") and out.b1_h.shape == (2, 4)
    fused = net.compile(weights=module.state_dict(), optimize="fuse")
    with torch.no_grad():
        assert all(close(a, b) for a, b in zip(fused(x), out))
    path = export(module, x, "exported", tmp_path / "heads.pt2")
    got = torch.export.load(path).module()(x)
    assert all(close(a, b) for a, b in zip(got, out))


def test_a_net_without_parameters_compiles_and_reports(run_cli):
    result = run_cli("compile", "-", input_text="net nop { input 4x8x8  relu }")
    assert result.returncode == 0, result.stderr
    assert "params:   0 " in result.stdout and "float32" in result.stdout


# --- torchvision as the oracle ------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_nets_equal_torchvision(name):
    torch.manual_seed(0)
    reference = TORCHVISION[name]().eval()
    module = netdsl.load(NETS / "torchvision" / f"{name}.net").compile(weights=reference.state_dict())
    module.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert close(module(x), reference(x))
    if name == "googlenet":  # the auxiliary heads too, in training mode (same dropout draws)
        module.train(), reference.train()
        with torch.no_grad():
            torch.manual_seed(1)
            ours = module(x)
            torch.manual_seed(1)
            theirs = reference(x)
        assert ours._fields == ("fc", "aux1", "aux2")
        assert close(ours.fc, theirs.logits)
        assert close(ours.aux1, theirs.aux_logits1) and close(ours.aux2, theirs.aux_logits2)


# --- weights ----------------------------------------------------------------------------

def test_weights_round_trip_through_safetensors_and_torch_files(small, tmp_path):
    source = small.compile().eval()
    x = torch.randn(2, 3, 16, 16)
    for suffix in (".safetensors", ".pt"):
        path = save_weights(source, tmp_path / f"w{suffix}")
        for init in ("default", "none", "meta"):
            loaded = small.compile(weights=path, init=init).eval()
            with torch.no_grad():
                assert torch.equal(loaded(x), source(x)), (suffix, init)


def test_torch_files_are_read_without_running_code(small, tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"stem.conv1.weight": Exploit()}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        small.compile(weights=path)
    assert not marker.exists()


def test_a_shape_mismatch_names_both_tensors_and_loads_nothing(small):
    module = small.compile()
    state = {k: v.clone() for k, v in module.state_dict().items()}
    before = {k: v.clone() for k, v in state.items()}
    # no names match (other layer names, the same last parts): by order
    renamed = {f"t{i}.{k.rpartition('.')[2]}": v for i, (k, v) in enumerate(state.items())}
    renamed["t3.bias"] = torch.zeros(7)  # stem.batchnorm1.bias is 8
    with pytest.raises(WeightsError, match=r"matching by order, tensor 4: the net's `stem.batchnorm1.bias` is 8 "
                                           r"but the weights' `t3.bias` is 7"):
        netdsl.backend.load_weights(module, renamed)
    renamed["t3.bias"] = torch.zeros(8, dtype=torch.int8)  # the right shape, but not floating point
    for assign in (False, True):
        with pytest.raises(WeightsError, match=r"`stem.batchnorm1.bias` holds floating-point numbers but the "
                                               r"weights' `t3.bias` is int8"):
            netdsl.backend.load_weights(module, renamed, assign=assign)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in before.items())


def test_meta_init_takes_a_mappings_tensors_as_they_are_and_default_init_copies(small):
    state = small.compile().state_dict()
    key = "stem.conv1.weight"
    shared = small.compile(weights=state, init="meta")  # documented: like load_state_dict(assign=True)
    assert shared.state_dict()[key].data_ptr() == state[key].data_ptr()
    copied = small.compile(weights=state)
    assert copied.state_dict()[key].data_ptr() != state[key].data_ptr()
    halves = small.compile(weights=state, init="meta", dtype="float16")  # converted, so not shared
    assert halves.state_dict()[key].dtype == torch.float16
    assert halves.state_dict()["stem.batchnorm1.num_batches_tracked"].dtype == torch.int64


def test_missing_extra_and_odd_entries_are_named(small):
    module = small.compile()
    state = dict(module.state_dict())
    last = list(state)[-1]
    with pytest.raises(WeightsError, match=f"no tensor for the net's `{last}`"):
        netdsl.backend.load_weights(module, {k: v for k, v in state.items() if k != last})
    with pytest.raises(WeightsError, match="`extra.weight` .* has no place in the net"):
        netdsl.backend.load_weights(module, {**state, "extra.weight": torch.zeros(3)})
    with pytest.raises(WeightsError, match="`epoch` is a int, not a tensor"):
        netdsl.backend.load_weights(module, {**state, "epoch": 3})
    with pytest.raises(WeightsError, match="use a .safetensors file"):
        netdsl.backend.load_weights(module, __file__)


def test_order_never_pairs_tensors_of_other_roles(small):
    # A BatchNorm's weight, bias and running statistics are all C-vectors: only their names tell
    # them apart. Registered in another order under other layer names, shapes would pair the net's
    # `weight` with the weights' `running_mean`; refused, by order and per shape.
    module = small.compile()
    state = module.state_dict()
    bn = [k for k in state if k.startswith("stem.batchnorm1.")]
    order = [bn[2], bn[0], bn[1], *bn[3:]]  # running_mean first
    others = [k for k in state if k not in bn]
    at = list(state).index(bn[0])
    keys = others[:at] + order + others[at:]
    theirs = {f"t{i}.{k.rpartition('.')[2]}": state[k] for i, k in enumerate(keys)}
    with pytest.raises(WeightsError, match=r"the net's `stem.batchnorm1.weight` would take the weights' "
                                           r"`t\d+.running_mean`, but their names disagree in their last part"):
        netdsl.backend.load_weights(small.compile(), theirs)


def test_by_name_wins_over_order(small):
    module = small.compile()
    state = module.state_dict()
    shuffled = dict(reversed(list(state.items())))  # same names, other order
    fresh = small.compile()
    netdsl.backend.load_weights(fresh, shuffled)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


def _block(prefix: str, c: int, vector_scale: bool = False) -> dict:
    """A ConvNeXt-like block's tensors with the scale after the layers (a model that registers it last)."""
    return {f"{prefix}.dw.weight": torch.randn(c, 1, 7, 7), f"{prefix}.dw.bias": torch.randn(c),
            f"{prefix}.ln.weight": torch.randn(c), f"{prefix}.pw.weight": torch.randn(4 * c, c),
            f"{prefix}.pw.bias": torch.randn(4 * c),
            f"{prefix}.layer_scale": torch.randn(c) if vector_scale else torch.randn(c, 1, 1)}


def _scale_first(block: dict, name: str) -> dict:
    """The block as torchvision registers it, other layer names (the same last parts): the
    scale before the layers."""
    items = list(block.items())
    return {f"{name}.layer_scale": items[-1][1],
            **{f"{name}.block.{i}.{k.rpartition('.')[2]}": v for i, (k, v) in enumerate(items[:-1])}}


def test_by_order_falls_back_to_per_shape_where_tensors_of_their_own_shape_moved():
    blocks = [_block("s1.b1", 4), _block("s1.b2", 4), _block("s2.b1", 8)]
    ours = {k: v for block in blocks for k, v in block.items()}
    theirs = {k: v for i, block in enumerate(blocks) for k, v in _scale_first(block, f"f.{i}").items()}
    matched, moved = match_state({k: v.to("meta") for k, v in ours.items()}, theirs)
    assert moved == 3 and list(matched) == list(ours)
    assert all(matched[k] is v for k, v in ours.items())  # every tensor where it belongs
    in_order = {f"t{i}.{k.rpartition('.')[2]}": v for i, (k, v) in enumerate(ours.items())}
    matched, moved = match_state(ours, in_order)  # the strict sequence holds: used as it is
    assert moved == 0 and all(matched[k] is v for k, v in ours.items())


def test_per_shape_refuses_ambiguous_orders_and_other_shapes():
    # The scale a C-vector: moved among the block's other C-vectors, per shape would pair it with
    # the conv's bias (and each C-vector with the next one's values). Refused.
    ours = _block("b", 4, vector_scale=True)
    with pytest.raises(WeightsError, match=r"matching by order, tensor 1: .*; matching per shape fails too: "
                                           r"the weights' `f.layer_scale` \(4\) is out of place but their `f.block.1.bias`, "
                                           r"of the same shape, is in place: which of them moved is ambiguous"):
        match_state(ours, _scale_first(ours, "f"))
    # x y x against x x y: y moved after the second x, or the second x before y, or before the
    # first x (the two x swapped): refused.
    x1, y, x2 = torch.randn(3), torch.randn(2), torch.randn(3)
    with pytest.raises(WeightsError, match="ambiguous"):
        match_state({"a.w": x1, "b.w": x2, "c.w": y}, {"p.w": x1, "q.w": y, "r.w": x2})
    # The same shapes in another order, but not the same shapes: refused, the first difference named.
    ours = _block("b", 4)
    theirs = _scale_first(ours, "f")
    theirs["f.layer_scale"] = torch.randn(1, 4, 1)
    with pytest.raises(WeightsError, match=r"matching per shape fails too: the net has 1 4×1×1 floating-point "
                                           r"tensors, the weights 0"):
        match_state(ours, theirs)
    theirs["f.layer_scale"] = torch.zeros(4, 1, 1, dtype=torch.int64)  # the kind of number counts too
    with pytest.raises(WeightsError, match="matching per shape fails too"):
        match_state(ours, theirs)


def test_load_report_says_per_shape(small):
    module = small.compile()
    state = list(module.state_dict().items())
    # the first tensor (the stem conv's weight, a shape of its own) registered last, other names
    moved = {f"t{i}.{k.rpartition('.')[2]}": v for i, (k, v) in enumerate(state[1:] + state[:1])}
    loaded = netdsl.backend.load_weights(small.compile(), moved)
    assert (loaded["by_order"], loaded["per_shape"]) == (len(state), 1)
    assert netdsl.backend.load_weights(small.compile(), dict(state))["per_shape"] == 0


def test_meta_init_allocates_nothing_and_none_allocates(small):
    assert all(p.is_meta for p in small.compile(init="meta").parameters())
    assert not any(p.is_meta for p in small.compile(init="none").parameters())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", torch.float64])
def test_dtypes(small, dtype):
    module = small.compile(dtype=dtype).eval()
    want = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    assert {p.dtype for p in module.parameters()} == {want}
    with torch.no_grad():
        assert module(torch.randn(2, 3, 16, 16, dtype=want)).dtype == want


def test_unavailable_options_are_compile_errors(small):
    with pytest.raises(CompileError, match="unknown dtype"):
        small.compile(dtype="float8")
    with pytest.raises(CompileError, match="unknown init"):
        small.compile(init="xavier")
    for device in ("meta", "cpu:3", "tpu"):
        with pytest.raises(CompileError, match="unknown device"):
            small.compile(device=device)
    if not torch.cuda.is_available():
        with pytest.raises(CompileError, match="no CUDA GPU"):
            small.compile(device="cuda")
        assert next(small.compile(device="auto").parameters()).device.type == "cpu"


# --- bare parameters (OpSpec.bare: `scale`) -------------------------------------------------------

BARE = "net b { input 6x4x4  res: add inline { c: conv(6, 1)  layer_scale: scale(0.5) | identity }  scale relu }"


def test_bare_parameters_live_on_their_scopes_module_through_every_path(tmp_path):
    """A labelled inline join adopts the bare parameter of its scope (`res.layer_scale`, on the
    Add module, as torchvision's CNBlock holds its `layer_scale`), a net-level one sits on the net
    (`scale1`); each module's own parameters come before its children's. Every init mode, saving and
    loading, deepcopy and pickle keep them, and compile's report counts each once."""
    net = netdsl.loads(BARE)
    module = net.compile()
    assert list(module.state_dict()) == ["scale1", "res.layer_scale", "res.c.weight", "res.c.bias"]
    assert type(module.res).__name__ == "Add" and list(module.res._parameters) == ["layer_scale"]
    x = torch.randn(2, 6, 4, 4)
    with torch.no_grad():
        module.res.layer_scale.copy_(torch.randn(6, 1, 1))
        want = torch.relu(module.scale1 * (module.res.layer_scale * module.res.c(x) + x))
        assert torch.equal(module(x), want)
        path = save_weights(module, tmp_path / "b.safetensors")
        for init in ("default", "none", "meta"):
            loaded = net.compile(weights=path, init=init)
            assert loaded._netdsl_loaded["by_name"] == 4 and torch.equal(loaded(x), want), init
        assert net.compile(init="meta").res.layer_scale.is_meta
        for other in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            assert torch.equal(other(x), want)
            assert other.res.layer_scale is not module.res.layer_scale
    from netdsl.backend.command import _count
    assert _count(module, net, train=True) == net.total_params() == 6 * 6 + 6 + 6 + 6


# --- a plain module: training, optimisation, exports ------------------------------------------

def test_training_lowers_the_loss(small):
    torch.manual_seed(0)
    module = small.compile().train()
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 5, (16,))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        out = module(x)
        loss = torch.nn.functional.cross_entropy(out.fc, y) + 0.3 * torch.nn.functional.cross_entropy(out.aux, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", ["googlenet", "resnet18"])
def test_optimize_fuse_keeps_outputs(name):
    torch.manual_seed(0)
    reference = TORCHVISION[name]().eval()
    net = netdsl.load(NETS / "torchvision" / f"{name}.net")
    fused = net.compile(weights=reference.state_dict(), optimize="fuse")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())  # folded away
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert close(fused(x), reference(x))


VOLUME_NET = """net video {
    input 3x4x10x10
    conv(8, 3x7x7, stride=1x2x2, pad=1x3x3, bias=false) batchnorm relu
    conv(8, 1) conv(8, 3, pad=1) batchnorm relu
    conv_transpose(4, (1, 2, 2), stride=(1, 2, 2)) batchnorm
    global_avgpool flatten linear(5)
}"""

SEQUENCE_NET = "net audio { input 2x50  conv(6, 5, stride=2) batchnorm relu  conv(6, 3) batchnorm  global_maxpool }"


@pytest.mark.parametrize("text,shape", [(VOLUME_NET, (2, 3, 4, 10, 10)), (SEQUENCE_NET, (2, 2, 50))],
                         ids=["volume", "sequence"])
def test_optimize_fuse_on_volumes_and_sequences_folds_batchnorm_and_keeps_memory_order(text, shape):
    """channels_last is a layout of 4-D tensors (batches of images): the weights of 1-D and 3-D
    convolutions keep their order, while every BatchNorm after a conv of any rank is folded."""
    torch.manual_seed(0)
    net = netdsl.loads(text)
    reference = net.compile().eval()
    with torch.no_grad():  # statistics and affine parameters away from 0 and 1, so folding shows
        for m in reference.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
    fused = net.compile(weights=reference.state_dict(), optimize="fuse")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert all(p.is_contiguous() for p in fused.parameters())
    x = torch.randn(*shape)
    with torch.no_grad():
        assert close(fused(x), reference(x))


LINEAR_NET = """net mlp {
    input 8x6x6
    conv(16, 3, pad=1)
    channel_linear(32)  gelu  channel_linear(16)  gelu(approximate=tanh)
    a: add { channel_linear(16)  relu | identity }
    global_avgpool  flatten
    shared: linear(24)  concat { relu | identity }
    linear(10)  gelu  fc: linear(5)
}"""


def test_onednn_linears_compute_the_activation_they_fuse_and_keep_outputs():
    """Each linear layer (and channel_linear) runs as one oneDNN call, with the ReLU or GELU that
    alone reads it computed there too; an output read twice keeps its activation apart."""
    from netdsl.backend import onednn
    from netdsl.backend.optimize import optimize
    if not onednn.available():
        pytest.skip("this torch has no oneDNN fused calls")
    torch.manual_seed(0)
    module = netdsl.loads(LINEAR_NET).compile().eval()
    fast = onednn.onednn_layers(optimize(module, "fuse"))
    found = sorted((m.activation, m.algorithm, m.channels) for m in fast.modules() if isinstance(m, onednn.OneDNNLinear))
    assert found == sorted([("gelu", "none", True), ("gelu", "tanh", True), ("relu", "", True),
                            ("none", "", False), ("gelu", "none", False), ("none", "", False)])
    assert not any(type(m) in (torch.nn.Linear, torch.nn.GELU) for m in fast.modules())
    assert sum(isinstance(m, torch.nn.ReLU) for m in fast.modules()) == 1  # the one in `concat`
    x = torch.randn(3, 8, 6, 6)
    with torch.inference_mode():
        assert close(fast(x), module(x))
        assert close(fast(x.contiguous(memory_format=torch.channels_last)), module(x))


CONV_NET = """net convs {
    input 8x12x12
    conv(16, 3, pad=1)  batchnorm  relu
    conv(16, 3, pad=1)  hardswish
    add { conv(16, 3, pad=1)  batchnorm | identity }
    relu
    add { identity | conv(16, 1, bias=false) }
    conv(16, 3, pad=1, groups=16)  silu  dropout(0.2)
    conv(16, 3, stride=2, pad=1)  leaky_relu(0.1)
    concat { relu6 | hardsigmoid }
    conv(1, 1)  conv(8, 3, pad=1)  tanh
    global_avgpool  flatten  linear(10)
}"""


def test_onednn_convolutions_compute_their_activation_and_residual_sum_and_keep_outputs():
    """Each image convolution that oneDNN runs safely in channels_last order becomes one oneDNN
    call with its weights laid out once, computing the activation that alone reads it, or the
    residual sum it alone feeds and the ReLU after that; dropout and identities leave the graph.
    The outputs equal eager's at the batch laid out for, at another, and after copy and pickle."""
    from netdsl.backend import onednn
    from netdsl.backend.optimize import optimize
    if not onednn.available():
        pytest.skip("this torch has no oneDNN fused calls")
    torch.manual_seed(0)
    module = netdsl.loads(CONV_NET).compile().eval()
    fast = onednn.onednn_layers(optimize(module, "fuse"), batch=2)
    convs = [(m.activation, m.scalars, m.binary) for m in fast.modules() if isinstance(m, onednn.OneDNNConv)]
    assert convs == [("relu", [], None), ("hardswish", [], None), ("relu", [], "add"), ("none", [], "add"),
                     ("swish", [], None), ("leaky_relu", [0.1], None),
                     ("none", [], None)]  # read twice (by the concat's branches): its activations stay apart
    left = [type(m).__name__ for m in fast.modules() if not list(m.children())]
    # conv(8, 3) reads one channel: channels_last_safe keeps it in torch's own order and module
    assert sorted(left) == sorted(["OneDNNConv"] * 7 + ["ReLU6", "Hardsigmoid", "Concat", "Conv2d", "Tanh",
                                                          "GlobalAvgPool2d", "Flatten", "OneDNNLinear"])
    for batch in (2, 5):
        x = torch.randn(batch, 8, 12, 12)
        with torch.inference_mode():
            want = module(x)
            assert close(fast(x), want)
            assert close(copy.deepcopy(fast)(x), want)
            assert close(pickle.loads(pickle.dumps(fast))(x), want)


def test_onednn_layers_per_layer_choice_times_what_each_call_replaces_and_names_rebuild_it(monkeypatch):
    """With `timed`, each layer is offered oneDNN's call with a timing of it against the torch
    modules it would replace, on the same random inputs (which must compute the same values:
    the chain is called as the graph calls it); the layers that kept it are `onednn_names`,
    and `names=` rebuilds exactly those, timing nothing. Outputs equal eager's either way."""
    from netdsl.backend import onednn
    from netdsl.backend.optimize import optimize
    if not onednn.available():
        pytest.skip("this torch has no oneDNN fused calls")
    torch.manual_seed(0)
    module = netdsl.loads(CONV_NET).compile().eval()
    offered = onednn.onednn_names(onednn.onednn_layers(optimize(module, "fuse"), batch=2))
    verdicts = []

    def verdict(candidate, original, rounds, seconds):  # every other layer keeps oneDNN's call
        with torch.inference_mode():
            assert close(candidate(), original())
        verdicts.append(len(verdicts) % 2 == 0)
        return verdicts[-1]

    monkeypatch.setattr(onednn, "_faster", verdict)
    timed = onednn.onednn_layers(optimize(module, "fuse"), batch=2, timed=True)
    assert len(verdicts) == len(offered) == 8  # seven convolutions and the linear layer
    kept = [name for name, keep in zip(offered, verdicts) if keep]
    assert onednn.onednn_names(timed) == kept
    # the layers that did not keep it are torch's modules, with their activations and sums
    assert sum(type(m) is torch.nn.Conv2d for m in timed.modules()) == 1 + len(offered) - 1 - len(kept)

    monkeypatch.setattr(onednn, "_faster", lambda *a: pytest.fail("names= times nothing"))
    rebuilt = onednn.onednn_layers(optimize(module, "fuse"), batch=2, names=kept)
    assert onednn.onednn_names(rebuilt) == kept
    x = torch.randn(2, 8, 12, 12)
    with torch.inference_mode():
        want = module(x)
        assert close(timed(x), want) and close(rebuilt(x), want)


def test_onednn_timing_prefers_the_faster_call():
    import time
    from netdsl.backend.onednn import _faster
    slow, fast = (lambda: time.sleep(0.002)), (lambda: None)
    assert _faster(fast, slow, 5, 0.03) and not _faster(slow, fast, 5, 0.03)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["torchscript", "exported", "onnx"])
def test_exports_round_trip(small, fmt, tmp_path):
    from netdsl.backend.export import FORMATS, export

    module = small.compile().eval()
    x = torch.randn(3, 3, 16, 16)  # another batch than the export's example: the batch is dynamic
    with torch.no_grad():
        want = module(x)
    path = export(module, torch.randn(1, 3, 16, 16), fmt, tmp_path / f"small{FORMATS[fmt]}")
    if fmt == "torchscript":
        got = torch.jit.load(str(path))(x)
    elif fmt == "exported":
        got = torch.export.load(path).module()(x)
    else:
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    assert close(got, want)


# --- CUDA (skipped without a GPU) --------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_cuda_equals_cpu(name):
    torch.manual_seed(0)
    reference = TORCHVISION[name]().eval()
    net = netdsl.load(NETS / "torchvision" / f"{name}.net")
    module = net.compile(device="cuda", weights=reference.state_dict(), init="meta").eval()
    assert {p.device.type for p in module.parameters()} == {"cuda"}
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        want = reference(x)
        # TF32 convolutions differ from the CPU's float32 in the fourth digit
        assert close(module(x.cuda()).cpu(), want, 1e-2)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_half_precision(dtype):
    net = netdsl.load(NETS / "googlenet.net")
    module = net.compile(device="auto", dtype=dtype).eval()
    run = check_run(module, net, example_input(net, 8, torch.device("cuda"), getattr(torch, dtype)))
    assert run.outputs["fc"].dtype == getattr(torch, dtype) and torch.isfinite(run.outputs["fc"]).all()


@pytest.mark.cuda
@cuda
def test_cli_compile_on_cuda(run_cli):
    result = run_cli("compile", NETS / "googlenet.net", "--device", "cuda", "--batch", "8")
    assert result.returncode == 0, result.stderr
    assert "compiled for cuda" in result.stdout


# --- netdsl compile --------------------------------------------------------------------------

def test_cli_compile_reports_outputs_params_device_and_timings(run_cli):
    result = run_cli("compile", NETS / "googlenet.net", "--batch", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "googlenet: compiled for cpu" in out
    assert "params:   6,998,552 deploy, 13,378,280 with training heads (equal to the summary's)" in out
    assert "every shape as inferred" in out
    # shapes per example, as summary writes them, the batch said; MACs per example, the batch's beside
    assert "output:   fc 1000 per example, batch 2" in out
    assert "output:   aux1 (training head) 1000 per example, batch 2" in out
    assert "MACs:     per example 1,582,671,872 deploy, 1,591,044,096 with training heads; " \
           "the batch of 2: 3,165,343,744" in out
    assert "median of" in out and "e+" not in out and "e-0" not in out


def test_cli_compile_json_save_weights_and_export(run_cli, tmp_path):
    import json

    weights, exported = tmp_path / "lenet.safetensors", tmp_path / "lenet.pt2"
    result = run_cli("compile", NETS / "lenet5.net", "--json", "--save", weights, "--export", "exported",
                     "-o", exported, "--optimize")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["params"] == {"train": 61_706, "deploy": 61_706}
    assert report["layers_checked"] == 12 and report["outputs"][0]["shape"] == [1, 10]
    assert report["optimize"]["within_tolerance"] and report["saved"] == str(weights)
    assert exported.stat().st_size > 61_706 * 4
    again = run_cli("compile", NETS / "lenet5.net", "--weights", weights, "--init", "meta")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("args,code,message", [
    (["--weights", "missing.safetensors"], 2, "cannot read weights from missing.safetensors: no such file"),
    (["--save", "/nonexistent/w.pt"], 2, "cannot write /nonexistent/w.pt: there is no folder /nonexistent"),
    (["--export", "onnx", "-o", "/nonexistent/m.onnx"], 2, "cannot write /nonexistent/m.onnx: there is no folder"),
    (["--export", "torchscript", "-o", "nets"], 2, "cannot write nets: it is a folder"),
    (["--save", "m.pt", "--export", "torchscript", "-o", "m.pt"], 2, "--save and --export would both write m.pt"),
    (["-o", "m.onnx"], 2, "-o names where --export writes; give --export too"),
    (["--init", "meta"], 2, "--init meta builds a module without memory; it can run only with --weights"),
    (["--max-params", "1000"], 1, "lenet5 has 61,706 parameters (246.8 KB as float32); compile refuses nets "
                                  "over 1,000 parameters"),
    (["--device", "tpu"], 2, "unknown device 'tpu'"),
])
def test_cli_compile_errors_are_one_line_without_traceback(run_cli, args, code, message):
    result = run_cli("compile", NETS / "lenet5.net", *args)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_compile_on_cuda_without_cuda_is_a_usage_error(run_cli):
    result = run_cli("compile", NETS / "lenet5.net", "--device", "cuda")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("netdsl: error: CUDA was asked for but this machine has no CUDA GPU")


def test_cli_choices_are_the_backends():
    from netdsl import cli
    from netdsl.backend import export, fx, optimize

    assert set(cli.COMPILE_DTYPES) == set(fx.DTYPES) and set(cli.COMPILE_INITS) == set(fx.INITS)
    assert set(cli.COMPILE_OPTIMIZE) == set(optimize.LEVELS) | {"auto"} and set(cli.COMPILE_EXPORTS) == set(export.FORMATS)


def test_cli_compile_of_a_bad_net_prints_diagnostics(run_cli):
    result = run_cli("compile", "-", input_text="net t { input 3x8x8  conv(4, 9) }")
    assert result.returncode == 1 and "E401" in result.stderr
