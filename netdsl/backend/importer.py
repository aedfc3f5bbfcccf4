"""`netdsl import`: a torch module as the .net file a person would write (`from_torch`).

The importer holds the tracing and the recovery of structure only; which torch module or
function is which op, and with which attributes, is each op's `imports` in the registry
(netdsl/ops/*.py, `FromTorch`). The steps:

1. trace the module with torch.fx, stopping at the modules an op maps (and at torch.nn's own
   modules, so that one no op maps is named, not traced into); containers and custom modules
   are traced through; the shapes come from one run of the traced graph (ShapeProp);
2. map every node to an op and its attributes, and number the parts of a `chunk`;
3. recover the series-parallel structure: a join's branches start at its immediate dominator
   (the node that every path from the input to it passes through last), so a fork with several
   users opens branches that meet at the join; a node two branches use is not series-parallel
   and is refused;
4. nest the chain into scopes after the module paths (so that the compiled module's state_dict
   keys are the source module's): `seq` for an nn.Sequential, integer and quoted labels,
   `inline` joins;
5. make each custom module class used more than once a `block`, its parameters the attribute
   values that differ between its instances (`in_channels` where they are the input's
   channels), consecutive equal instances a `repeat`, and the last linear's width `classes`;
6. format the text (`netdsl fmt`) and check it: its parameter count must be the module's.

Training-only heads (GoogLeNet's and Inception-v3's auxiliary classifiers) are the modules the
trace in training mode reaches and the one in evaluation mode does not: each becomes a
`train head from X`.
"""

from __future__ import annotations

import functools
import importlib
import operator
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..ops import REGISTRY
from ..ops.spec import AttrError, Call, CannotImport, FromTorch, OpSpec, TensorArg, fmt_value, is_int
from .errors import UnmappableModule


# --- the registry's reverse mapping ------------------------------------------------------------

def _resolve(target: str) -> Any:
    """The object a dotted name names (`torch.nn.Conv2d`), or None where it is not there (an
    older torch, no torchvision)."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            return None
        return obj
    return None


@functools.lru_cache(maxsize=1)
def mappings() -> tuple[dict, dict, dict]:
    """(module classes with channels_last, functions, method names), each to (OpSpec, FromTorch),
    from the registry."""
    modules: dict = {}
    functions: dict = {}
    methods: dict = {}
    for spec in REGISTRY.values():
        for f in spec.imports:
            if f.method:
                methods.setdefault(f.method, (spec, f))
                continue
            obj = _resolve(f.target)
            if obj is None:
                continue
            if isinstance(obj, type):
                modules.setdefault((obj, f.channels_last), (spec, f))
            else:
                functions.setdefault(obj, (spec, f))
    return modules, functions, methods


def _class_name(obj: Any) -> str:
    t = obj if isinstance(obj, type) else type(obj)
    return f"{t.__module__}.{t.__qualname__}"


# --- the traced graph as ops --------------------------------------------------------------------

@dataclass(eq=False)
class _Node:
    """One layer of the imported net: an op, its attributes, its inputs and where it lives."""

    name: str
    spec: Optional[OpSpec]          # None: the net's input
    attrs: dict
    inputs: list
    scope: tuple                    # the module whose layer it is (a leaf module's parent; a function's caller)
    label: Optional[str] = None     # a leaf module's name in its parent
    shape: Optional[tuple] = None   # per example
    index: int = 0                  # position in the graph's order
    idom: Any = None
    multi: bool = False             # a chunk whose parts the graph takes by index
    part: bool = False              # one of those parts
    cat: bool = False               # a torch.cat (of a list that may grow: DenseNet's)
    params: int = 0


class _Fail(Exception):
    pass


def _fail(path: str, cls: str, what: str) -> UnmappableModule:
    where = f"`{path}` ({cls})" if path else cls
    return UnmappableModule(f"cannot import {where}: {what}")


def _convert(spec: OpSpec, given: dict, path: str, cls: str) -> dict:
    """The op's attributes, each converted by its type, defaults filled in."""
    unknown = set(given) - {a.name for a in spec.attrs}
    if unknown:
        raise _fail(path, cls, f"the `{spec.name}` op has no attribute {', '.join(sorted(unknown))}")
    bound: dict = {}
    for a in spec.attrs:
        try:
            bound[a.name] = a.type.convert(given[a.name], a.name) if a.name in given else a.default_for(bound)
        except AttrError as e:
            raise _fail(path, cls, f"as `{spec.name}`: {e.message}") from None
    return bound


def _shape(fx_node) -> Optional[tuple]:
    meta = fx_node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(shape[1:]) if shape is not None else None


def _caller(fx_node) -> tuple:
    stack = fx_node.meta.get("nn_module_stack") or {}
    if not stack:
        return ()
    path = list(stack.values())[-1][0]
    return tuple(path.split(".")) if path else ()


def _trace(module, input_shape, training: bool):
    """The module traced (in training or evaluation mode) with the shapes of one run."""
    import torch
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    modules, functions, _ = mappings()
    permute = _resolve(PERMUTE)
    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)
    # functions defined outside torch (torchvision's channel_shuffle) stay calls: fx's autowrap
    wrap = tuple(f for f in functions if callable(f) and getattr(f, "__module__", "").startswith("torchvision"))

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            if (type(m), False) in modules or (type(m), True) in modules or type(m) is permute:
                return True
            # torch.nn's own modules are leaves, so that one without an op is named as a whole
            return type(m).__module__.startswith("torch.nn") and not isinstance(m, containers)

    was = module.training
    module.train(training)
    # a training run updates BatchNorm's statistics and draws dropout masks: both are put back
    kept = {k: b.clone() for k, b in module.named_buffers()} if training else {}
    try:
        tracer = Tracer(autowrap_functions=wrap)
        graph = tracer.trace(module)
        gm = torch.fx.GraphModule(module, graph)
        with torch.no_grad(), torch.random.fork_rng():
            ShapeProp(gm).propagate(torch.randn(2 if training else 1, *input_shape))
    except _Fail:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UnmappableModule(f"cannot trace {_class_name(module)} with torch.fx: "
                               f"{type(e).__name__}: {first}") from None
    finally:
        module.train(was)
        with torch.no_grad():
            for k, b in module.named_buffers():
                if k in kept:
                    b.copy_(kept[k])
    return gm


PERMUTE = "torchvision.ops.misc.Permute"
_LAST, _FIRST = (0, 2, 3, 1), (0, 3, 1, 2)  # the channels moved last, and back


def _layers(gm) -> tuple[list, list]:
    """The graph's nodes as `_Node`s in order, and the outputs (nodes)."""
    import torch
    modules, functions, methods = mappings()
    permute = _resolve(PERMUTE)
    nodes: list[_Node] = []
    of: dict = {}  # fx node -> _Node (or, for a chunk, its parts by index)
    last: set = set()  # fx nodes whose channels a permute moved last
    outputs: list = []

    def layout(fx) -> bool:
        first = next((a for a in _flat((fx.args, fx.kwargs)) if a in of), None)
        return first in last

    def shape(fx, channels_last: bool):
        s = _shape(fx)
        return (s[-1],) + s[:-1] if channels_last and s else s

    def add(n: _Node) -> _Node:
        n.index = len(nodes)
        nodes.append(n)
        return n

    for fx in gm.graph.nodes:
        if fx.op == "placeholder":
            of[fx] = add(_Node(fx.name, None, {}, [], (), shape=_shape(fx)))
            continue
        if fx.op == "output":
            outputs = [o for a in _flat(fx.args[0]) if a in of for o in (of[a] if isinstance(of[a], list) else [of[a]])]
            continue
        if fx.op == "call_function" and isinstance(fx.target, type) and issubclass(fx.target, tuple):
            of[fx] = [of[a] for a in _flat((fx.args, fx.kwargs)) if a in of]  # the outputs, as a named tuple
            continue
        if fx.op == "get_attr":
            value = gm
            for part in fx.target.split("."):
                value = getattr(value, part)
            of[fx] = _Bare(fx.target, value)  # a bare parameter: the op that applies it takes it
            continue
        is_last = layout(fx)
        if is_last:
            last.add(fx)
        if fx.op == "call_module" and permute is not None and type(gm.get_submodule(fx.target)) is permute:
            dims = tuple(gm.get_submodule(fx.target).dims)
            if dims not in ((_FIRST,) if is_last else (_LAST,)):
                raise _fail(fx.target, PERMUTE, f"a permute to {dims}: only moving the channels last (0, 2, 3, 1) "
                                                "and back (0, 3, 1, 2) is imported")
            of[fx] = of[fx.args[0]]
            if is_last:
                last.discard(fx)
            else:
                last.add(fx)
            continue
        if fx.op == "call_function" and any(isinstance(of.get(a), _Bare) for a in fx.args):
            of[fx] = add(_bare(fx, of, modules))
            continue
        if fx.op == "call_module":
            m = gm.get_submodule(fx.target)
            path, cls = fx.target, _class_name(m)
            found = modules.get((type(m), is_last))
            if found is None:
                raise _fail(path, cls, "no op of netdsl maps this module class (see the op table: each op's "
                                       "`imports` in netdsl/ops/)")
            spec, how = found
            try:
                given = how.attrs(m)
            except CannotImport as e:
                raise _fail(path, cls, f"as `{spec.name}`: {e}") from None
            parts = tuple(path.split("."))
            ins = [of[a] for a in _flat((fx.args, fx.kwargs)) if a in of]
            node = _Node(path, spec, _convert(spec, given, path, cls), ins, parts[:-1], label=parts[-1],
                         shape=shape(fx, is_last), params=sum(p.numel() for p in m.parameters()))
            of[fx] = _then(add(node), how, fx, nodes, add)
            continue
        # a function or a method
        if fx.op == "call_function" and fx.target is operator.getitem:
            src, index = fx.args
            parent = of.get(src)
            if isinstance(parent, _Node) and parent.multi and is_int(index):
                attrs = dict(parent.attrs, index=index)
                part = _Node(f"{parent.name}.{index}", parent.spec, attrs, list(parent.inputs), parent.scope,
                             shape=_shape(fx), part=True)
                of[fx] = add(part)
                continue
            raise _fail(".".join(_caller(fx)), "operator.getitem", f"an indexing `[{index}]` no op maps")
        if fx.op == "call_method":
            found, what = methods.get(fx.target), f"the method Tensor.{fx.target}"
        else:
            found = functions.get(fx.target)
            what = f"the function {getattr(fx.target, '__module__', '')}.{getattr(fx.target, '__name__', fx.target)}"
        where = ".".join(_caller(fx)) or "forward"  # a call in the top module's own forward
        if found is None:
            raise _fail(where, what, "no op of netdsl maps it (see each op's `imports` in netdsl/ops/)")
        if is_last:
            raise _fail(where, what, "it is applied with the channels moved last (between permutes), which "
                                     "only a module's import maps")
        spec, how = found

        def arg(a):
            if a in of:
                return TensorArg(_shape(a))
            if isinstance(a, (list, tuple)):
                return type(a)(arg(x) for x in a) if not hasattr(a, "_fields") else tuple(arg(x) for x in a)
            return a

        call = Call(tuple(arg(a) for a in fx.args), {k: arg(v) for k, v in fx.kwargs.items() if k != "inplace"})
        try:
            given = how.attrs(call)
        except CannotImport as e:
            raise _fail(where, what, f"as `{spec.name}`: {e}") from None
        ins = [of[a] for a in _flat((fx.args, fx.kwargs)) if a in of]
        multi = any(a.name == "index" for a in spec.attrs) and "index" not in given
        if multi:
            given = dict(given, index=0)
        # a part the call itself names (`x.narrow(1, start, length)`, a compiled net's chunk): one
        # of a split's parts, as a chunk's part taken by index is
        part = not multi and any(a.name == "index" for a in spec.attrs)
        node = _Node(fx.name, spec, _convert(spec, given, where, what), ins, _caller(fx), shape=_shape(fx),
                     multi=multi, cat=fx.target is torch.cat, part=part)
        if multi:
            of[fx] = node  # not a layer: its parts, taken by index, are
            continue
        if not spec.join and len(ins) != 1:
            raise _fail(where, what, f"it takes {len(ins)} tensors; `{spec.name}` takes one")
        of[fx] = _then(add(node), how, fx, nodes, add)
    return _associate(nodes), outputs


def _associate(nodes: list) -> list:
    """DenseNet's `torch.cat(features)` over a growing list: each concatenation of a longer list
    becomes the previous one's result joined with what was added (concatenation is associative),
    and a concatenation of one tensor is that tensor, so that every layer's input is one join."""
    alias: dict = {}
    lists: dict = {}
    kept = []
    for n in nodes:
        n.inputs = [alias.get(id(i), i) for i in n.inputs]
        if n.cat:
            whole = list(n.inputs)
            if len(whole) == 1:
                alias[id(n)] = whole[0]
                continue
            prefix = max((d for d in lists.values() if len(d[1]) < len(whole) and d[1] == whole[:len(d[1])]),
                         key=lambda d: len(d[1]), default=None)
            if prefix is not None:
                n.inputs = [prefix[0]] + whole[len(prefix[1]):]
            lists[id(n)] = (n, whole)
        kept.append(n)
    for i, n in enumerate(kept):
        n.index = i
    return kept


@dataclass
class _Bare:
    target: str
    value: Any


def _bare(fx, of: dict, modules: dict) -> _Node:
    """A bare parameter applied to a tensor (`self.layer_scale * x`): the op whose `bare` is that
    function, the layer named as the parameter (so that its state_dict key is the module's)."""
    import torch
    params = [of[a] for a in fx.args if isinstance(of.get(a), _Bare)]
    param = params[0]
    ins = [of[a] for a in fx.args if a in of and not isinstance(of[a], _Bare)]
    found = modules.get((torch.nn.Parameter, False))
    if found is None or found[0].bare is not fx.target or len(ins) != 1 or len(params) != 1:
        raise _fail(param.target, "a bare parameter", f"it is used by {getattr(fx.target, '__name__', fx.target)} "
                    "as no op's `bare` function applies one")
    spec, how = found
    parts = tuple(param.target.split("."))
    return _Node(param.target, spec, _convert(spec, how.attrs(param.value), param.target, "a bare parameter"), ins,
                 parts[:-1], label=parts[-1], shape=_shape(fx), params=param.value.numel())


def _then(node: _Node, how: FromTorch, fx, nodes, add) -> _Node:
    """The ops a mapping puts after its op (`x.mean([2, 3])`: a pool, then a flatten)."""
    for name in how.then:
        spec = REGISTRY[name]
        node = add(_Node(f"{node.name}.{name}", spec, _convert(spec, {}, node.name, name), [node], node.scope,
                         shape=_shape(fx)))
    return node


def _flat(x) -> list:
    if isinstance(x, (list, tuple)):
        return [y for a in x for y in _flat(a)]
    if isinstance(x, dict):
        return [y for a in x.values() for y in _flat(a)]
    return [x]


# --- series-parallel structure ------------------------------------------------------------------

@dataclass(eq=False)
class Layer:
    node: _Node

    @property
    def scope(self) -> tuple:
        return self.node.scope


@dataclass(eq=False)
class Join:
    node: _Node
    spec: OpSpec
    attrs: dict
    branches: list
    src: _Node
    taps: Optional[list] = None     # per branch: the earlier layer a `from` branch starts at, else None

    @functools.cached_property
    def scope(self) -> tuple:
        # where the branches' layers are, but not inside a module the join itself is not in
        # (MobileNetV2's `x + self.conv(x)` is in the block, outside `conv`)
        scopes = [it.scope for b in self.branches for it in b] + [self.node.scope]
        common = scopes[0]
        for s in scopes[1:]:
            k = 0
            while k < min(len(common), len(s)) and common[k] == s[k]:
                k += 1
            common = common[:k]
        return common


def _dominators(nodes: list[_Node]) -> None:
    def meet(a: _Node, b: _Node) -> _Node:
        while a is not b:
            while a.index > b.index:
                a = a.idom
            while b.index > a.index:
                b = b.idom
        return a

    for n in nodes:
        if n.inputs:
            d = n.inputs[0]
            for i in n.inputs[1:]:
                d = meet(d, i)
            n.idom = d


def _chain(start: _Node, end: _Node, seen: dict) -> list:
    """The items that compute `end` from `start`, in order."""
    items = []
    n = end
    while n is not start:
        if n.spec is None:
            raise _fail(end.name, "the traced graph", f"it does not pass through `{start.name}`")
        if id(n) in seen:
            raise _fail(".".join(n.scope + ((n.label,) if n.label else ())) or n.name, n.spec.name,
                        "its output is used on two paths that meet elsewhere than at a join (the graph is not "
                        "series-parallel; `from` paths are not imported yet)")
        seen[id(n)] = n
        if n.spec.join:
            g = n.idom
            branches = [_chain(g, i, seen) for i in n.inputs]
            main = _tapped(n, g, branches)
            if main is not None:  # LR-ASPP's `from`: the path to one branch runs outside the join's module
                k, before = main
                src = before[-1].node
                taps = [None if j == k else g for j in range(len(branches))]
                branches[k] = branches[k][len(before):]
                items.append(Join(n, n.spec, n.attrs, branches, src, taps))
                items.extend(reversed(before))
                n = g
                continue
            item = Join(n, n.spec, n.attrs, branches, g)
            items.append(_split(item))
            n = g
        elif len(n.inputs) == 1:
            items.append(Layer(n))
            n = n.inputs[0]
        else:
            raise _fail(n.name, n.spec.name, f"it takes {len(n.inputs)} inputs")
    return items[::-1]


def _tapped(n: _Node, g: _Node, branches: list) -> Optional[tuple]:
    """Where a join's branches all lie in its own module but for the head of one (`k`), which
    runs from the fork `g` outside it, and the others have layers (LR-ASPP: the backbone's rest,
    then the classifier's high path; the low path starts at the backbone's tap): `(k, that
    head)`, so that the head comes before the join and the others start `from g`. None for a
    plain join (one the nesting into scopes writes as it is)."""
    inside = [len(b) - next((i for i in range(len(b), 0, -1) if b[i - 1].scope[:len(n.scope)] != n.scope), 0)
              for b in branches]
    outside = [k for k, b in enumerate(branches) if inside[k] != len(b)]
    # the other branches are layers of the join's module (DenseNet's concatenation, in the next
    # layer's module, of the features passed on as they are is a plain join)
    if not n.scope or len(outside) != 1 or g.spec is None or not (g.label or g.spec.join) or \
            not all(b for k, b in enumerate(branches) if k != outside[0]):
        return None
    k = outside[0]
    before = branches[k][:len(branches[k]) - inside[k]]
    if any(it.scope[:len(n.scope)] == n.scope for it in before) or not isinstance(before[-1], Layer):
        return None
    return k, before


def _tap_paths(items: list, nodes: list) -> None:
    """Each `from` branch's path: the outermost scope whose last layer is the tap (`backbone.4`,
    as a person writes it, rather than the layer inside it)."""
    def path(n: _Node) -> tuple:
        return n.scope + ((n.label,) if n.label else ())

    for it in items:
        if not isinstance(it, Join):
            continue
        for b in it.branches:
            _tap_paths(b, nodes)
        if not it.taps:
            continue
        it.tap_paths = []
        for tap in it.taps:
            if tap is None:
                it.tap_paths.append(None)
                continue
            full = path(tap)
            later = [path(n) for n in nodes if n.index > tap.index and n.spec is not None]
            k = next((k for k in range(1, len(full) + 1) if all(p[:k] != full[:k] for p in later)), None)
            if k is None or not all(p.isdigit() or _IDENT.match(p) for p in full[:k]):
                raise _fail(".".join(full) or tap.name, tap.spec.name, "a later path starts from its output, and no "
                            "`from` path names it (its scope runs on after it, or a name is no identifier)")
            it.tap_paths.append(".".join(str(int(p)) if p.isdigit() else p for p in full[:k]))


def _split(join: Join) -> Join:
    """A concatenation of the parts of one chunk, each through its branch: the join whose fork
    hands each branch its part (`split`)."""
    firsts = [b[0].node if b and isinstance(b[0], Layer) else None for b in join.branches]
    if not all(f is not None and f.part and f.spec is firsts[0].spec
               and f.attrs.get("parts") == firsts[0].attrs.get("parts") for f in firsts):
        return join
    chunk, count = firsts[0].spec, len(firsts)
    if [f.attrs["index"] for f in firsts] != list(range(count)):
        return join
    parts = firsts[0].attrs["parts"]
    if (parts if is_int(parts) else len(parts)) != count:
        return join
    for spec in REGISTRY.values():
        if spec.fork is not None and spec.build is join.spec.build:
            sizes = () if is_int(parts) else parts
            try:
                if spec.fork({"sizes": sizes}, 0, count)[0] != chunk.name:
                    continue
            except (AttrError, KeyError):
                continue
            return Join(join.node, spec, {"sizes": sizes}, [b[1:] for b in join.branches], firsts[0].inputs[0])
    return join


# --- text ---------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _keywords() -> frozenset:
    from ..parser import KEYWORDS
    return frozenset(KEYWORDS) | {"seq", "inline"}


def _label(name: str) -> str:
    if name.isdigit():
        return str(int(name))
    if _IDENT.match(name) and name not in _keywords():
        return name
    return f'"{name}"'


def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    s = re.sub(r"[^a-z0-9_]", "_", s)
    return s if s and not s[0].isdigit() else "b_" + s


@dataclass(eq=False)
class Group:
    """A submodule's items: a scope (a group, a `seq`, or a block's instance)."""

    name: str
    path: tuple
    items: list


def _nest(items: list, prefix: tuple) -> list:
    out: list = []
    names: set = set()
    for it in items:
        s = it.scope
        if len(s) > len(prefix) and s[:len(prefix)] == prefix:
            child = s[len(prefix)]
            if out and isinstance(out[-1], Group) and out[-1].name == child:
                out[-1].items.append(it)
            else:
                if child in names:
                    raise _fail(".".join(prefix + (child,)), "a submodule",
                                "its layers are not consecutive in the traced graph (another module's layers "
                                "run between them), so it cannot be one scope")
                names.add(child)
                out.append(Group(child, prefix + (child,), [it]))
        else:
            out.append(it)
    for g in out:
        if isinstance(g, Group):
            g.items = _nest(g.items, g.path)
    return out


@dataclass
class _Block:
    name: str
    params: list            # names
    body: str


class _Writer:
    """Writes the nested items as text; in recording mode (a block's template), every value is
    a numbered slot instead."""

    def __init__(self, root, blocks_of: dict, classes_node: Optional[_Node]):
        self.root = root
        self.calls = blocks_of          # path -> (block name, argument values, param names)
        self.classes_node = classes_node
        self.slots: Optional[list] = None  # recording: [(name, value, input channels)]
        self.layers: list = []             # recording: [(spec, attrs, {attribute: slot})]
        self.used: dict = {}               # scope -> the labels written in it
        self.channels = None               # recording: the instance's input channels

    # one value: a literal, or in a template a slot
    def value(self, name: str, v: Any, channels) -> str:
        if isinstance(v, tuple) and len(v) >= 2 and len(set(v)) == 1 and is_int(v[0]):
            v = v[0]  # a square window is one size
        if self.slots is not None:
            self.slots.append((name, v, self.channels))  # the block's input channels: `in_channels`
            return f"\x00{len(self.slots) - 1}\x00"
        return fmt_value(v)

    def items(self, items: list, prefix: tuple, seq: bool, numbered: bool = False) -> list[str]:
        """Lines of text for `items` in the scope `prefix`; `seq`: a `seq` scope (its integer
        labels are counted); `numbered`: a block's body for a Sequential (integer labels written)."""
        lines: list[str] = []
        count = 0
        used = self.used.setdefault(prefix, set())  # an inline join's branches share their scope's names
        pending: list = []  # a run of equal block calls, for `repeat`

        def flush():
            if not pending:
                return
            text = pending[0]
            lines.append(f"repeat {len(pending)} {{ {text} }}" if len(pending) > 1 else text)
            pending.clear()

        for it in items:
            name = it.name if isinstance(it, Group) else (it.node.label if isinstance(it, Layer) else None)
            if name is not None and name in used:
                name = None  # a module called twice: parameterless, so its second call needs no name
            if name is not None:
                used.add(name)
            label = ""
            if name is not None:
                plain = not isinstance(it, Group) or it.path in self.calls or \
                    _is_seq(self.root.get_submodule(".".join(it.path)))  # a group always has a label
                if seq and name.isdigit() and int(name) == count and not numbered and plain:
                    label = ""
                else:
                    label = _label(name) + ": "
                if name.isdigit():
                    count = int(name) + 1
            elif seq:
                count += 1
            text = label + self.item(it, prefix)
            call = isinstance(it, Group) and it.path in self.calls
            if seq and not label and call and (not pending or pending[0] == text):
                pending.append(text)
                continue
            flush()
            if seq and not label and call:
                pending.append(text)
                continue
            lines.append(text)
        flush()
        return lines

    def item(self, it, prefix: tuple) -> str:
        if isinstance(it, Layer):
            return self.layer(it.node)
        if isinstance(it, Join):
            # an empty branch (`x + f(x)`) is an empty `seq`: no layer, as the module has none
            # (an `identity` would be a layer of its own, a row the module's summary lacks)
            branches = ["\n".join(self.items(b, prefix, False)) or "seq { }" for b in it.branches_nested]
            for k, tap in enumerate(it.taps or ()):
                if tap is not None:
                    text = branches[k] if it.branches_nested[k] else ""
                    branches[k] = f"from {it.tap_paths[k]}" + (f"\n{text}" if text else "")
            head = it.spec.describe(it.attrs)
            return f"{head} inline {{\n" + "\n| ".join(branches) + "\n}"
        m = self.root.get_submodule(".".join(it.path))
        if it.path in self.calls:
            block, args, _ = self.calls[it.path]
            if not args:
                return block
            channels = _in_channels(it)
            return f"{block}({', '.join(self.value(n, v, channels) for n, v in args)})"
        seq = _is_seq(m)
        inner = self.items(it.items, it.path, seq)
        return ("seq " if seq else "") + "{\n" + "\n".join(inner) + "\n}"

    def layer(self, n: _Node) -> str:
        exprs = {}
        if n is self.classes_node and self.slots is None:
            exprs["out"] = "classes"
        if self.slots is not None:
            channels = n.inputs[0].shape[0] if n.inputs and n.inputs[0].shape else None
            slots = {}
            for a in n.spec.attrs:
                self.value(a.name, n.attrs[a.name], channels)
                slots[a.name] = len(self.slots) - 1
            self.layers.append((n.spec, n.attrs, slots))
            return f"\x01{len(self.layers) - 1}:{n.spec.name}\x01"
        return n.spec.describe(n.attrs, exprs)


def _is_seq(m) -> bool:
    import torch
    names = list(m._modules)
    return isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList)) and bool(names) and all(k.isdigit() for k in names)


def _in_channels(g: Group):
    first = g.items[0]
    while isinstance(first, Group):
        first = first.items[0]
    src = first.src if isinstance(first, Join) else (first.node.inputs[0] if first.node.inputs else None)
    return src.shape[0] if src is not None and src.shape else None


def _all_groups(items: list, out: list) -> int:
    """Collects every Group (with its height) under `items`; returns the height of the tallest."""
    height = 0
    for it in items:
        if isinstance(it, Group):
            h = 1 + _all_groups(it.items, out)
            out.append((it, h))
            height = max(height, h)
        elif isinstance(it, Join):
            for b in it.branches_nested:
                height = max(height, _all_groups(b, out))
    return height


def _nest_joins(items: list, prefix: tuple) -> None:
    """Nests every join's branches in the scope the join is written in (inline: its own)."""
    for it in items:
        if isinstance(it, Group):
            _nest_joins(it.items, it.path)
        elif isinstance(it, Join):
            it.branches_nested = [_nest(b, prefix) for b in it.branches]
            for b in it.branches_nested:
                _nest_joins(b, prefix)


def from_torch(module, input_shape, name: Optional[str] = None) -> str:
    """The .net text of a torch module: `from_torch(torchvision.models.resnet18(), (3, 224, 224))`.

    The module is traced with torch.fx (in evaluation mode, and in training mode for heads only
    used in training) and every module and function call it makes is mapped to an op by the
    registry's `imports`; the module's submodules become scopes, named as its state_dict keys
    are, and a class used more than once a block. The text is `netdsl fmt`'s and checks without
    a diagnostic, its parameter count is the module's, and the compiled net loads the module's
    state_dict by name. Raises UnmappableModule, naming the module path, its class and what is
    missing, for a module or call no op maps."""
    input_shape = tuple(int(x) for x in input_shape)
    gm = _trace(module, input_shape, training=False)
    nodes, outputs = _layers(gm)
    if len(outputs) != 1:
        raise _fail("", _class_name(module), f"it returns {len(outputs)} tensors in evaluation mode; one is imported")
    _dominators(nodes)
    seen: dict = {}
    chain = _chain(nodes[0], outputs[0], seen)
    used = {n.name for n in seen.values()}
    heads = _heads(module, input_shape, used)
    _account(module, seen, heads)

    _tap_paths(chain, nodes)
    items = _nest(chain, ())
    _nest_joins(items, ())
    classes_node = _last_linear(chain)
    text = _write(module, gm, items, input_shape, name or _snake(type(module).__name__), classes_node, heads)
    from ..diagnostics import NetDSLError
    from ..network import loads
    from ..printer import format_source
    try:
        text = format_source(text)
        net = loads(text)
    except NetDSLError as e:  # a bug here, not in the module: say so, with what was written
        error = UnmappableModule(f"the imported text of {_class_name(module)} does not check (a bug in netdsl "
                                 f"import): {str(e).strip().splitlines()[0]}")
        error.text = text  # what was written, for the report
        raise error from e
    expected = sum(p.numel() for p in module.parameters())
    if net.total_params(train=True) != expected:
        error = UnmappableModule(f"the imported net of {_class_name(module)} has {net.total_params():,} "
                                 f"parameters, the module {expected:,} (a bug in netdsl import)")
        error.text = text
        raise error
    return text


def _last_linear(chain: list) -> Optional[_Node]:
    """The net's classifier: the last layer of the top-level chain, a torch.nn.Linear."""
    import torch
    modules, _, _ = mappings()
    linear = modules[(torch.nn.Linear, False)][0]
    for it in reversed(chain):
        if isinstance(it, Layer) and it.node.spec is linear:
            return it.node
        if isinstance(it, Layer) and it.node.params:
            return None
    return None


@dataclass(eq=False)
class Head:
    """A training-only head: its label, the path it taps (`from`), its items."""

    group: Group
    tap: str
    owners: set


def _ancestors(n: _Node) -> set:
    seen, todo = set(), [n]
    while todo:
        x = todo.pop()
        if id(x) not in seen:
            seen.add(id(x))
            todo.extend(x.inputs)
    return seen


def _heads(module, input_shape, used: set) -> list:
    """The outputs the module returns in training mode only (auxiliary classifiers), each as
    the items from the layer it taps."""
    gm = _trace(module, input_shape, training=True)
    nodes, outputs = _layers(gm)
    if len(outputs) <= 1:
        return []
    _dominators(nodes)
    main = _ancestors(outputs[0])
    heads = []
    for out in outputs[1:]:
        region = _ancestors(out) - main
        inside = [n for n in nodes if id(n) in region]
        taps = {id(i): i for n in inside for i in n.inputs if id(i) not in region}
        if len(taps) != 1:
            raise _fail(out.name, "a training-mode output", f"it reads {len(taps)} layers of the main path; a head "
                        "starts from one")
        (tap,) = taps.values()
        seen: dict = {}
        items = _chain(tap, out, seen)
        scopes = {it.scope[:1] for it in items}
        if len(scopes) != 1 or not next(iter(scopes)):
            raise _fail(out.name, "a training-mode output", "its layers are not all in one submodule")
        (label,) = next(iter(scopes))
        where = tap.scope + ((tap.label,) if tap.label else ())
        if tap.spec is not None and tap.spec.join:
            where = tap.scope
        group = Group(label, (label,), _nest(items, (label,)))
        _nest_joins(group.items, group.path)
        heads.append(Head(group, ".".join(_label(p) for p in where), {n.name for n in seen.values() if n.label}))
    return heads


def _account(module, seen: dict, heads: list) -> None:
    """Every parameter and buffer of the module belongs to a layer that was imported."""
    owners = {n.name for n in seen.values() if n.label is not None}
    for h in heads:
        owners |= h.owners
    for key, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        parts = key.split(".")
        if not any(".".join(parts[:k]) in owners for k in range(1, len(parts) + 1)):
            path = ".".join(parts[:-1])
            raise _fail(key, _class_name(module.get_submodule(path)) if path else _class_name(module),
                        f"this tensor {tuple(tensor.shape)} belongs to no layer of the traced graph: its module "
                        "is never called, or it is used directly (nothing is dropped silently)")


def _write(module, gm, items, input_shape, name, classes_node, heads) -> str:
    """The file: blocks, then the net."""
    import torch
    # containers, and the plain modules that hold a compiled net's scopes, are no block
    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.Module)
    found: list = []
    _all_groups(items + [h.group for h in heads], found)
    by_class: dict = {}
    heights: dict = {}
    for g, h in found:
        m = module.get_submodule(".".join(g.path))
        if type(m) in containers:
            continue
        by_class.setdefault(type(m), []).append(g)
        heights[type(m)] = max(heights.get(type(m), 0), h)
    calls: dict = {}
    blocks: list[_Block] = []
    taken = set(REGISTRY) | set(_keywords()) | {name}
    for cls in sorted((c for c in by_class if len(by_class[c]) > 1), key=lambda c: heights[c]):
        instances = by_class[cls]
        variants: dict = {}
        for g in instances:
            w = _Writer(module, calls, None)
            w.slots, w.channels = [], _in_channels(g)
            body = w.items(g.items, g.path, False, numbered=_is_seq(module.get_submodule(".".join(g.path))))
            variants.setdefault("\n".join(body), []).append((g, w.slots, w.layers))
        base = _snake(cls.__name__.lstrip("_"))
        # a variant used once stays a scope of its own (a block is for what repeats)
        shared = [kv for kv in sorted(variants.items(), key=lambda kv: -len(kv[1])) if len(kv[1]) > 1]
        for k, (template, uses) in enumerate(shared):
            bname = base if k == 0 else f"{base}_{k + 1}"
            while bname in taken:
                bname += "_block"
            taken.add(bname)
            blocks.append(_block(bname, template, uses, calls))
    w = _Writer(module, calls, classes_node)
    body = w.items(items, (), False)
    for h in heads:
        g = h.group
        call = w.item(g, ())
        body.append(f"{_label(g.name)}: train head from {h.tap} {call}")
    shape = "x".join(map(str, input_shape))
    header = f"net {name}(classes = {classes_node.attrs['out']})" if classes_node is not None else f"net {name}"
    text = "".join(f"block {b.name}({', '.join(b.params)}) {{\n{b.body}\n}}\n\n" if b.params else
                   f"block {b.name} {{\n{b.body}\n}}\n\n" for b in blocks)
    return text + header + " {\n" + f"input {shape}\n" + "\n".join(body) + "\n}\n"


def _block(bname: str, template: str, uses: list, calls: dict) -> _Block:
    """A block from the template of its instances: slots equal in all are literals, the others
    its parameters (or `in_channels`, or a multiple of another)."""
    count = len(uses[0][1])
    layers = uses[0][2]
    params: list[str] = []
    vectors: dict = {}   # value vector -> expression
    texts = []
    for i in range(count):
        name, first, _ = uses[0][1][i]
        values = tuple(u[1][i][1] for u in uses)
        channels = tuple(u[1][i][2] for u in uses)
        if all(v == first for v in values):
            texts.append(None)
            continue
        if values in vectors:
            texts.append(vectors[values])
            continue
        expr = None
        if all(is_int(v) for v in values):
            if values == channels:
                expr = "in_channels"
            else:
                for vec, e in vectors.items():
                    if e.isidentifier() and all(is_int(x) and x for x in vec) and all(values):
                        pairs = list(zip(values, vec))
                        if all(v % x == 0 for v, x in pairs) and len({v // x for v, x in pairs}) == 1:
                            expr = f"{values[0] // vec[0]} * {e}"
                            break
                        if all(x % v == 0 for v, x in pairs) and len({x // v for v, x in pairs}) == 1:
                            expr = f"{e} / {vec[0] // values[0]}"
                            break
        if expr is None:
            expr = name
            n = 2
            while expr in params:
                expr = f"{name}{n}"
                n += 1
            params.append(expr)
        vectors[values] = expr
        texts.append(expr)
    # the body: each layer described again with its slots' expressions (literals where equal)
    body = _fill(template, uses[0][1], texts, layers)
    for g, slots, _ in uses:
        args = []
        for p in params:
            i = texts.index(p)
            args.append((p, slots[i][1]))
        calls[g.path] = (bname, args, params)
    return _Block(bname, params, body)


_SLOT = re.compile(r"\x00(\d+)\x00")
_LAYER = re.compile(r"\x01(\d+):\w+\x01")


def _fill(template: str, slots: list, texts: list, layers: list) -> str:
    """The template's slots as literals or expressions, each layer described again (its
    attributes equal in every instance as literals, defaults left out)."""
    def layer(m):
        spec, attrs, where = layers[int(m.group(1))]
        return spec.describe(attrs, {a: texts[i] for a, i in where.items() if texts[i] is not None})

    def one(m):
        i = int(m.group(1))
        return texts[i] if texts[i] is not None else fmt_value(slots[i][1])
    return _SLOT.sub(one, _LAYER.sub(layer, template))
