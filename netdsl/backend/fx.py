"""The layer graph to a `torch.fx.GraphModule`.

Every layer becomes one submodule, built by its op's `build` in the registry and registered
under the layer's dotted scope path, so `state_dict` keys read like the `.net` file
(`inception3a.branch2.conv2.weight`). The graph is then handed to fx, which generates a plain
Python `forward` (`module.code`): straight-line calls, no walking of the graph at run time.

A net with training-only heads has two graphs over the same submodules: the training graph
computes the heads too and returns every output as a named tuple (GoogLeNet: main output,
aux1, aux2), the evaluation graph leaves them out. `NetModule.train(mode)` switches between
them, so each mode runs straight-line code of its own.

Compiling a net again in one process (a notebook cell run twice, a sweep that builds a net per trial)
reuses the forward generated for an equal graph, kept in memory for the last 64 graphs; only
the modules are built anew, and the graphs themselves when first asked for (`module.graph`).
"""

from __future__ import annotations

import copy
import keyword
import math
import re
from contextlib import nullcontext
from collections import OrderedDict
from typing import Callable, Mapping, NamedTuple, Optional, Union

import torch
import torch.fx
from torch import nn
from torch.fx.experimental import _config as fx_experimental_config
from torch.fx.graph import PythonCode
from torch.fx.graph_module import _forward_from_src, _WrappedCall

from ..limits import DEFAULT_MAX_PARAMS
from ..memory import in_place_layers, release_points  # torch-free, so that summary's memory model shares it
from .budget import check_memory
from .errors import CompileError, UncompilableNet
from .init import Draws, deferred, defers, skipped
from .outputs import outputs

INITS = ("default", "none", "meta")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


class NetModule(torch.fx.GraphModule):
    """A compiled net: a GraphModule whose generated `forward` follows the mode.

    In training mode it returns the main output, or, when the net has training-only heads, a
    named tuple of all outputs (`out.aux1`); in evaluation mode only what deployment needs.
    Each mode's forward is generated once; `train()`/`eval()` swap them.
    """

    def __init__(self, root: nn.Module, graph: Union[torch.fx.Graph, "GraphSource"],
                 class_name: str = "GraphModule", eval_graph: Union[None, torch.fx.Graph, "GraphSource"] = None):
        # fx would copy each node's module out of `root`, walking its path from the top (4 ms
        # in ShuffleNetV2's build); root is the module tree already, so it is adopted whole.
        super().__init__(nn.Module(), _empty_graph(), class_name)
        self.training = root.training
        for name, param in root._parameters.items():  # a bare op's parameter at the top (OpSpec.bare)
            self.register_parameter(name, param)
        for name, child in root._modules.items():
            self.add_module(name, child)
        self._graphs = _Graphs(graph, eval_graph)
        self._mode = True  # whose forward runs: the training graph's names every submodule
        self._forwards = {}
        self._switch(True)

    def _switch(self, mode: bool) -> None:
        """Make `mode`'s forward the one that runs: generated once per mode, and not even once
        where an equal graph's forward is known (then the graph is built only when asked for)."""
        if mode in self._forwards:
            cls = type(self)
            cls.forward, self._code, self._lineno_map, self._prologue_start = self._forwards[mode]
            self.__dict__.pop("_graph", None)  # the mode's graph, when asked for (`__getattr__`)
        else:
            known = _GENERATED.get(self._graphs.key(mode))
            if known is not None:
                self.__dict__.pop("_graph", None)
                self._install(known)
            else:
                self.graph = self._graphs.generating(mode)
            self._forwards[mode] = self._generated()
        self._mode = mode

    def __getattr__(self, name: str):
        # Only when Python's own lookup fails: `_graph` not built yet (see `_switch`), or a
        # submodule, parameter or buffer, which nn.Module's own `__getattr__` finds.
        if name == "_graph" and "_graphs" in self.__dict__:
            graph = self._graphs[self._mode]
            graph.owning_module = self
            self.__dict__["_graph"] = graph
            return graph
        return super().__getattr__(name)

    def train(self, mode: bool = True) -> "NetModule":
        super().train(mode)
        graphs = self.__dict__.get("_graphs")
        if graphs is not None and not graphs.same and bool(mode) != self._mode:
            self._switch(bool(mode))
        return self

    def recompile(self):
        """fx's recompile, then the generated forward reaching each layer's module through the
        `_modules` dicts (`self._modules['b1']._modules['conv1'](x)`) rather than attributes
        (`self.b1.conv1(x)`): nn.Module finds a submodule attribute only after Python's own lookup
        fails, in a `__getattr__` of Python, one call per level of the scope path. That was the
        generated forward's one cost beyond torchvision's (the same aten ops, in the same order):
        MobileNetV3's 206 layers, 4 to 6 scopes deep, made 1,230 such calls per forward against
        torchvision's 416, 6% of its time at batch 1 on the CPU. `_modules` is what nn.Module's
        `__setattr__`, `__delattr__` and `add_module` keep, so a module replaced afterwards is
        the one called. (TorchScript cannot read `_modules`: `torch.jit.script` is handed fx's
        own code, see `__prepare_scriptable__`.)"""
        key = self._graph.__dict__.pop(_KEY, None)  # only a graph as build_graph made it, untouched since
        if fx_experimental_config.enrich_profiler_metadata:
            return super().recompile()
        known = _GENERATED.get(key)
        if known is not None:
            return self._install(known)
        python_code = super().recompile()
        src = _release_as_eager(self.graph, python_code.src)
        src = _direct_calls(self, src) or src
        if src != python_code.src:
            self._code = src
            type(self).forward = _forward_from_src(src, python_code.globals, getattr(self._graph, "_co_fields", {}))
        if key is not None:
            _GENERATED.put(key, _Generated(python_code, type(self).forward, self._code, self._lineno_map,
                                           self._prologue_start))
        return python_code

    def _install(self, known: "_Generated"):
        """What recompile sets, from the code generated for an equal graph before: fx's own
        recompile, less generating and compiling the source (GoogLeNet: 17 of a 55 ms build)."""
        self._code, self._lineno_map, self._prologue_start = known.src, known.lineno_map, known.prologue_start
        cls = type(self)  # GraphModule makes a class per instance: the forward is set on it
        cls.forward = known.forward
        if "_wrapped_call" not in vars(cls):
            cls._wrapped_call = _WrappedCall(cls, cls.__call__ if "__call__" in vars(cls) else None)
        cls.__call__ = _call_wrapped
        return known.python_code

    def __prepare_scriptable__(self) -> torch.fx.GraphModule:
        """What `torch.jit.script` compiles: a plain GraphModule of the current graph, its code
        fx's own (attributes, which TorchScript reads), over the same submodules."""
        return torch.fx.GraphModule(self, copy.deepcopy(self.graph), type(self).__name__)

    def _generated(self) -> tuple:
        """What fx's recompile set for the current graph."""
        return type(self).forward, self._code, self._lineno_map, self._prologue_start

    def __deepcopy__(self, memo: dict) -> "NetModule":
        # GraphModule's deepcopy rebuilds the copy from the current graph only (from __dict__: built now).
        self._graph  # noqa: B018
        result = super().__deepcopy__(memo)
        result._graphs = copy.deepcopy(self._graphs, memo)
        result._mode = self._mode
        result._forwards = {self._mode: result._generated()}
        return result

    def __reduce_package__(self, exporter):
        self._graph  # noqa: B018 -- as in __reduce__
        return super().__reduce_package__(exporter)

    def __reduce__(self):
        # Pickled as fx pickles any GraphModule (its code, not its graphs): the current mode only.
        self._graph  # noqa: B018 -- fx reads the current graph from __dict__: built now if not yet
        ours = {k: self.__dict__.pop(k) for k in ("_graphs", "_forwards", "_mode") if k in self.__dict__}
        try:
            return super().__reduce__()
        finally:
            self.__dict__.update(ours)


def _call_wrapped(self, *args, **kwargs):
    return self._wrapped_call(self, *args, **kwargs)  # as fx's recompile sets `__call__`


_KEY = "_netdsl_key"  # on a graph from build_graph: what its generated code depends on


class _Generated(NamedTuple):
    """A NetModule's forward for one graph, as recompile generated it."""
    python_code: PythonCode
    forward: Callable
    src: str
    lineno_map: Optional[dict]
    prologue_start: int


class _Cache:
    """The most recently used generated forwards by graph key: compiling a net again (the same
    file, or another file that gives the same layer graph) reuses its code, and a long-running
    process that compiles many nets keeps only the last `size`."""

    def __init__(self, size: int):
        self.size, self._items = size, OrderedDict()

    def get(self, key):
        try:
            self._items.move_to_end(key)
            return self._items[key]
        except KeyError:  # not kept, or let go of by a compile in another thread just now
            return None

    def put(self, key, value) -> None:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)


_GENERATED = _Cache(64)


class _Value:
    """An fx node as `release_points` reads a layer: its dotted name and its inputs."""

    __slots__ = ("name", "inputs")

    def __init__(self, name: str, inputs: list):
        self.name, self.inputs = name, inputs


_RELEASE = ";  "  # fx ends a line with `;  a = b = None` where a and b are last read


def _release_as_eager(graph: torch.fx.Graph, src: str) -> str:
    """`src`, fx's generated forward of `graph`, with each `name = None` that lets go of a
    tensor moved to the line where eager code would let go of it (`memory.release_points`:
    a block's input at the end of the block); line for line, so fx's line map still holds."""
    values: dict[torch.fx.Node, _Value] = {}
    order: list[torch.fx.Node] = []
    for node in graph.nodes:
        if node.op in ("output", "get_attr"):  # a bare parameter (OpSpec.bare) is no tensor to let go of
            continue
        name = node.meta.get("netdsl", {}).get("layer", node.name)
        values[node] = _Value(name, [values[n] for n in node.all_input_nodes if n in values])
        order.append(node)
    release = release_points([values[n] for n in order])
    by_var = {n.name: n for n in order}
    moved: dict[str, list[str]] = {}  # variable -> the variables let go after its line
    lines = src.split("\n")
    for i, line in enumerate(lines):
        head, sep, tail = line.partition(_RELEASE)
        if not sep or not tail.endswith(" = None"):
            continue
        keep = []
        for var in tail[:-len(" = None")].split(" = "):
            node = by_var.get(var)
            at = order[release[values[node].name]].name if node is not None else None
            if at is None or at == head.strip().split(" = ")[0]:
                keep.append(var)
            else:
                moved.setdefault(at, []).append(var)
        lines[i] = head + (_RELEASE + " = ".join(keep) + " = None" if keep else "")
    if not moved:
        return src
    for i, line in enumerate(lines):
        var = line.strip().split(" = ")[0]
        if var in moved:
            head, sep, tail = line.partition(_RELEASE)
            kept = tail[:-len(" = None")].split(" = ") if sep else []
            lines[i] = head + _RELEASE + " = ".join(kept + moved.pop(var)) + " = None"
    assert not moved, moved  # every release point is a line of the forward
    return "\n".join(lines)


def direct_calls(module: torch.fx.GraphModule, hooks: bool = True) -> torch.fx.GraphModule:
    """`module` (a plain GraphModule: the inference modules of `optimize` and `onednn_layers`)
    with its forward generated anew from its graph, reaching each layer through the `_modules`
    dicts as a NetModule's does (`NetModule.recompile`), in place. At batch 1 that is 8 % of
    MobileNetV3-Small's forward (6.2 against 5.7 ms), whose layers sit four or five numbered
    scopes deep. Without `hooks`, each layer's `forward` is called, not the module: nn.Module's
    call, which looks for hooks, is two more Python calls a layer (5.7 against 5.4 ms); a layer
    that has hooks now, or any global hook, keeps its call, and hooks registered afterwards on
    a layer are not called (as in a frozen TorchScript module). `recompile()` brings back fx's
    own code."""
    python_code = module.recompile()
    src = _direct_calls(module, python_code.src, hooks or _global_hooks())
    if src is not None:
        module._code = src
        type(module).forward = _forward_from_src(src, python_code.globals, getattr(module.graph, "_co_fields", {}))
    return module


def _fx_target(target: str) -> str:
    """How fx's generated code reaches `target` from `self` (`torch.fx.graph._format_target`):
    attributes, and `getattr(..., "0")` for the parts that are not identifiers (a Sequential's
    numbers), which is where most of a numbered net's attribute calls are."""
    text = "self"
    for part in target.split("."):
        text = f"{text}.{part}" if part.isidentifier() else f'getattr({text}, "{part}")'
    return text


def _global_hooks() -> bool:
    from torch.nn.modules import module as nn_module
    return any(getattr(nn_module, name, None) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks", "_global_forward_hooks_always_called"))


def _has_hooks(layer: nn.Module) -> bool:
    return any(getattr(layer, name, None) for name in (
        "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def _direct_calls(module: torch.fx.GraphModule, src: str, hooks: bool = True) -> Optional[str]:
    """`src`, fx's generated forward of `module`, with each `call_module` of a dotted target
    (`self.a.b(`, `getattr(self.features, "0")(`) calling through the `_modules` dicts instead,
    where every level of the path is there now; without `hooks`, calling the `forward` of each
    layer that has no hooks. None where nothing changes. Line for line, so fx's map from lines
    to nodes (its tracebacks) still holds."""
    replacements = {}
    for node in module.graph.nodes:
        # Parameters (a bare op's, OpSpec.bare) stay attribute reads: a tracer (fx's, the
        # importer's) sees a parameter read from a `_parameters` dict as a plain tensor, and
        # `param * x` then as a tensor method, not the op it applies (ConvNeXt's layer_scale).
        if node.op != "call_module" or not isinstance(node.target, str):
            continue
        parts = node.target.split(".")
        if not all(parts) or any("'" in p or '"' in p or "\\" in p for p in parts):
            continue  # nothing netdsl names; kept out of the quoted keys below
        holder = module
        for part in parts[:-1]:
            holder = holder.__dict__.get("_modules", {}).get(part)
            if holder is None:
                break
        else:
            if parts[-1] not in holder.__dict__.get("_modules", {}):
                continue
            direct = "self" + "".join(f"._modules[{p!r}]" for p in parts)
            if not hooks and not _has_hooks(holder._modules[parts[-1]]):
                direct += ".forward"
            replacements[f" = {_fx_target(node.target)}("] = f" = {direct}("
    if not replacements:
        return None
    lines = src.split("\n")
    for i, line in enumerate(lines):
        start = line.find(" = ")
        found = _FX_TARGET.match(line, start) if start >= 0 else None
        if found is None:
            continue
        end = found.end()
        if not line.startswith("(", end):  # not a call
            continue
        end += 1
        direct = replacements.get(line[start:end])
        if direct is not None:
            lines[i] = line[:start] + direct + line[end:]
    return "\n".join(lines)


# What `_fx_target` writes, after the ` = ` of an assignment: read in one pass, whatever the target.
_FX_TARGET = re.compile(r' = (?:getattr\()*self(?:\.[A-Za-z_][A-Za-z_0-9]*|, "[^"\\]*"\))*')


class _Graphs(dict):
    """A NetModule's graphs by mode ({True: training, False: evaluation}), each built when first
    asked for where it comes as a `GraphSource`: a compile whose forwards are known builds none
    (ShuffleNetV2: 4 of a 24 ms build), and the evaluation graph of a net with training-only
    heads waits for `eval()`. Without an evaluation graph both modes share the training one."""

    def __init__(self, graph, eval_graph=None):
        super().__init__()
        self.same = eval_graph is None
        self._sources = {True: graph, False: graph if eval_graph is None else eval_graph}
        for mode, source in self._sources.items():
            if isinstance(source, torch.fx.Graph):
                self[mode] = source

    def key(self, mode: bool):
        """The key of the generated forward of `mode`'s graph, where it is not built yet (None if built)."""
        source = self._sources[mode]
        return source.key if mode not in self and isinstance(source, GraphSource) else None

    def generating(self, mode: bool) -> torch.fx.Graph:
        """`mode`'s graph, about to have its forward generated: as build_graph made it, with its
        key, where not built yet (recompile looks the key up, then drops it)."""
        if mode not in self:
            self[mode] = graph = self._sources[mode].build()
            if self.same:
                self[not mode] = graph
        return self[mode]

    def __missing__(self, mode: bool) -> torch.fx.Graph:
        if mode not in (True, False):
            raise KeyError(mode)
        graph = self._sources[mode].build()
        graph.__dict__.pop(_KEY, None)  # not for recompile to look up: its forward is installed already
        self[mode] = graph
        if self.same:
            self[not mode] = graph
        return graph

    def __deepcopy__(self, memo: dict) -> "_Graphs":
        train = copy.deepcopy(self[True], memo)
        return _Graphs(train, None if self.same else copy.deepcopy(self[False], memo))


class GraphSource:
    """Builds the training or evaluation graph of `network` when called for; its `key` (what
    the graph's generated forward depends on) is known at once, without building it."""

    def __init__(self, network, training: bool):
        self.network, self.training = network, training
        self.key = graph_key(network, training)

    def build(self) -> torch.fx.Graph:
        return build_graph(self.network, self.training)


def _has_heads(network) -> bool:
    return any(layer.train_only for layer in network.ir)


def resolve_device(device: Union[str, torch.device]) -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for CUDA without it is a CompileError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    asked = device
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index):
        raise CompileError(f"unknown device {str(asked)!r} (use cpu, cuda, cuda:N or auto)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CompileError("CUDA was asked for but this machine has no CUDA GPU that torch can use "
                           f"(torch {torch.__version__}); use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CompileError(f"there is no {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_dtype(dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    """A torch dtype from its name (`"bfloat16"`); None stays None (torch's default, float32)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise CompileError(f"unknown dtype {dtype!r} (use one of {', '.join(DTYPES)})")
    return DTYPES[dtype]


def compile_network(network, device: Union[str, torch.device] = "cpu", dtype=None, weights=None,
                    init: str = "default", max_params: int = DEFAULT_MAX_PARAMS, *,
                    in_place: bool = True) -> NetModule:
    """Build `network` as a `NetModule`; see `Network.compile` for the arguments. `in_place=False`
    leaves every layer out of place (no `in_place_layers` rewrite): the reference that tests compare
    the rewrite against."""
    from .weights import load_weights

    if init not in INITS:
        raise CompileError(f"unknown init {init!r} (use one of {', '.join(INITS)})")
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    _check_size(network, dtype, max_params)
    check_memory(network, device, dtype, init=init, weights=weights)
    _check_names(network)
    lazy = init in ("none", "meta")
    # Modules are made where they will live: on the device itself (no copy afterwards), or on
    # the meta device, which records shapes and allocates nothing, when weights will replace
    # the initial values anyway.
    # (On the CPU, torch's default, no device context: it would route every call that builds
    # a layer through Python.)
    # Under meta no init function runs at all (nothing would keep its values); otherwise, in a
    # large net, the uniform draws are made after the build, in one pass over parallel streams
    # (see .init).
    draws = Draws()
    with torch.device(device) if not lazy and device.type != "cpu" else nullcontext(), \
            skipped("meta") if lazy else deferred(draws) if defers(network.total_params()) else nullcontext():
        modules = _build_modules(network, in_place)
    draws.run()
    module = NetModule(modules, GraphSource(network, training=True), network.name,
                       eval_graph=GraphSource(network, training=False) if _has_heads(network) else None)
    if weights is not None:
        # what was loaded, for compile's report (a `_` name: no layer can take it)
        module._netdsl_loaded = load_weights(module, weights, assign=lazy)
    elif init == "none":
        module.to_empty(device=device)  # memory without values: for weights loaded later
    if dtype is not None:
        module.to(dtype=dtype)
    if lazy and weights is not None and _elsewhere(weights, device):
        module.to(device=device)  # the loaded tensors live where the file or mapping had them
    return module


def _elsewhere(weights, device: torch.device) -> bool:
    """May tensors assigned from `weights` lie elsewhere than on `device`? A file is read onto
    the CPU; a mapping's tensors are where the caller keeps them."""
    if isinstance(weights, Mapping):
        return any(t.device != device for t in weights.values() if isinstance(t, torch.Tensor))
    return device.type != "cpu"


def _check_size(network, dtype: Optional[torch.dtype], max_params: int) -> None:
    total = network.total_params()
    if total > max_params:
        dtype = dtype or torch.get_default_dtype()
        raise UncompilableNet(
            f"{network.name} has {total:,} parameters ({_bytes(total * dtype.itemsize)} as "
            f"{str(dtype).removeprefix('torch.')}); compile refuses nets over "
            f"{max_params:,} parameters (raise the limit with max_params= or --max-params if the memory is there)")


def _bytes(n: int) -> str:
    units = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
    k = min(int(math.log(max(n, 1), 1000)), len(units) - 1)
    return f"{n / 1000 ** k:.1f} {units[k]}"


def _reserved_names() -> frozenset[str]:
    """Attribute names of a NetModule, of its class and of every instance (`training`,
    `meta`), and `self`, which the generated code uses."""
    instance = NetModule(nn.Module(), _empty_graph())
    return frozenset(dir(NetModule)) | frozenset(vars(instance)) | {"self"}


def _empty_graph() -> torch.fx.Graph:
    graph = torch.fx.Graph()
    graph.output(graph.placeholder("x"))
    setattr(graph, _KEY, ("empty",))
    return graph


_RESERVED = _reserved_names()


def _check_names(network) -> None:
    """Submodules are attributes: a layer named like a Module attribute (`forward`, `to`)
    would shadow it, and one named like a Python keyword (`class`) cannot appear in the
    generated code. Checked once per net (`ir.Net.derived`)."""
    network.ir.derived("names compile", lambda: _names_compile(network))


def _names_compile(network) -> bool:
    for name in network.layers:
        for part in name.split("."):
            if part in _RESERVED:
                why = f"torch.nn.Module uses the name `{part}` itself"
            elif part.startswith("_"):
                why = "torch.nn.Module keeps names that start with `_` for itself"
            elif keyword.iskeyword(part):
                why = f"`{part}` is a Python keyword, which generated torch code cannot use as a name"
            else:
                continue
            span = network.layer(name).span
            raise UncompilableNet(f"{network.filename}:{span.line}:{span.column}: layer `{name}`: {why}; "
                                  "rename the layer to compile the net")
    return True


def _build_modules(network, in_place: bool = True) -> nn.Module:
    """Every layer's module, in a tree of containers following the scope paths, built in
    definition order: that order is the state_dict's, which loading weights by order relies on.
    (Given a dict instead, GraphModule would register shallow names before deep ones.) A
    labelled join (`res: add { ... }`) is both a layer and the scope of its branches: its
    module holds the branches' modules. A bare op's layer (OpSpec.bare) is a parameter of its
    scope's module, which torch lists before that module's children (as torchvision's CNBlock
    lists `layer_scale` before its `block`)."""
    in_place = in_place_layers(network) if in_place else set()
    root = nn.Module()
    for layer in network.ir.body():
        name = layer.name
        *path, leaf = name.split(".")  # submodules nest as the scope path reads
        parent = root
        for part in path:
            child = parent._modules.get(part)
            if child is None:
                child = nn.Module()
                parent.add_module(part, child)
            parent = child
        module = layer.op.build([i.shape for i in layer.inputs], layer.attrs)
        if layer.op.bare is not None:  # its one tensor, on the scope's module, named by the layer
            parent.register_parameter(leaf, _bare_parameter(layer, module))
            continue
        if name in in_place and hasattr(module, "inplace"):
            module.inplace = True
        scope = parent._modules.get(leaf)
        if scope is not None:  # the branches came first: adopt them (bare parameters too), keeping their order
            for param_name, param in scope._parameters.items():
                module.register_parameter(param_name, param)
            for child_name, child in scope.named_children():
                module.add_module(child_name, child)
        parent.add_module(leaf, module)
    return root


def _bare_parameter(layer, module: nn.Module) -> nn.Parameter:
    """The one parameter of a `bare` op's module (OpSpec.bare), which the net keeps alone."""
    params, buffers = list(module.parameters()), list(module.buffers())
    if len(params) != 1 or buffers:
        raise CompileError(f"op `{layer.op.name}` is bare but its module holds {len(params)} parameters and "
                           f"{len(buffers)} buffers, not one parameter (a bug in its registry entry)")
    return params[0]


def graph_key(network, training: bool) -> tuple:
    """What the generated forward of `build_graph(network, training)` depends on: its nodes, their
    order and inputs, and its outputs; not shapes or spans. Equal keys, equal code."""
    return network.ir.derived(("graph_key", training), lambda: _graph_key(network, training))


def _graph_key(network, training: bool) -> tuple:
    key: list = [training]
    for layer in network.ir:
        if not layer.train_only or training:
            key.append((layer.name, layer.op.join, layer.op.bare, *(i.name for i in layer.inputs)))
    key.append(tuple((o.name, o.layer.name) for o in _results(network, training)))
    return tuple(key)


def _results(network, training: bool) -> list:
    return [o for o in network.outputs if training or not o.train_only]


def build_graph(network, training: bool) -> torch.fx.Graph:
    """The fx graph of the net: one `call_module` per layer, in definition order (a bare op's:
    a `get_attr` of its parameter and a `call_function` of `OpSpec.bare`). Without
    `training`, layers of training-only heads are left out. Each node's `meta["netdsl"]` holds
    the layer's name, static shape and span, for runtime checks that point into the source."""
    graph = torch.fx.Graph()
    values: dict[str, torch.fx.Node] = {}
    for layer in network.ir:
        if layer.train_only and not training:
            continue
        if layer.is_source:
            node = graph.placeholder("x")
        else:
            args = [values[i.name] for i in layer.inputs]
            if layer.op.bare is not None:  # the parameter named by the layer, then the op's function of it
                weight = graph.create_node("get_attr", layer.name, name=f"{layer.name}_param")
                node = graph.create_node("call_function", layer.op.bare, (weight, *args), name=layer.name)
            else:
                node = graph.call_module(layer.name, (args,) if layer.op.join else tuple(args))
        node.meta["netdsl"] = {"layer": layer.name, "shape": layer.shape, "span": layer.span}
        values[layer.name] = node
    results = _results(network, training)
    if len(results) == 1:
        graph.output(values[results[0].layer.name])
    else:
        names = tuple(o.name for o in results)
        graph.output(graph.call_function(outputs, (names, *(values[o.layer.name] for o in results))))
    graph.lint()
    setattr(graph, _KEY, graph_key(network, training))
    return graph
