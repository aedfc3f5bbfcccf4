"""The IR every pass reads and writes: the layers of a net, its scope tree and its outputs.

Lowering (netdsl/lower.py) makes a `Net`; shape inference (netdsl/shapes.py) fills in each
layer's shape, parameters and MACs; summary, render and the torch backend read it. `Network`
(netdsl/network.py) is the public face over it.

- `Layer`: one node of the graph, named by its dotted scope path (`inception3a.branch2.conv2`).
  Its `op` is the registry's `OpSpec` (the input is an op too, a `source`); `op` is None for a
  layer that could not be made (an unknown op) and `attrs` None for one whose arguments are
  wrong, so that its name stays taken and later layers still connect. `inputs` and `users`
  are layers; `shape` is None where inference stopped.
- `Scope`: a block instance, a repeat and each of its passes, a branch, a labelled join, a
  head or a group, in a tree (`parent`, `children`); `output` is the layer the scope stands
  for, the end of its main chain.
- `Output`: the main output, then the heads, in source order.
"""

from __future__ import annotations

import functools
import gc
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Optional, TypeVar

from .ast import Span
from .ops import OpSpec


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_NO_ARGUMENTS: Mapping[str, Any] = MappingProxyType({})


def without_gc(fn: F) -> F:
    """Run `fn` with Python's cyclic garbage collector paused. A pass over a large IR allocates
    many small objects and frees none of them, and the collector would rescan the whole IR again
    and again (two thirds of summarising 100,000 layers); nothing built here forms a cycle that
    needs collecting."""

    @functools.wraps(fn)
    def paused(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused  # type: ignore[return-value]


class Layer:
    """One layer of the net (see the module docstring)."""

    __slots__ = ("name", "op", "attrs", "inputs", "users", "span", "site", "train_only", "scope",
                 "shape", "params", "macs")

    def __init__(self, name: str, op: Optional[OpSpec], attrs: Optional[dict[str, Any]], inputs: list["Layer"],
                 span: Span, train_only: bool = False, site: Optional[tuple[str, Span]] = None,
                 scope: Optional["Scope"] = None):
        self.name, self.op, self.attrs, self.inputs = name, op, attrs, inputs
        self.span, self.train_only, self.site, self.scope = span, train_only, site, scope
        self.users: list[Layer] = []
        self.shape: Optional[tuple[int, ...]] = None
        self.params = 0
        self.macs = 0

    @property
    def op_name(self) -> Optional[str]:
        """The op's registry name, None for a layer that could not be made."""
        return None if self.op is None else self.op.name

    @property
    def input_names(self) -> list[str]:
        """The names of the layers it reads, in argument order."""
        return [i.name for i in self.inputs]

    @property
    def is_source(self) -> bool:
        return self.op is not None and self.op.source

    @property
    def ok(self) -> bool:
        """Made, with its arguments bound and its shape inferred."""
        return self.op is not None and self.attrs is not None and self.shape is not None

    @property
    def local(self) -> str:
        """The name inside its scope: `conv2` of `inception3a.branch2.conv2`."""
        return self.name if self.scope is None else self.name[len(self.scope.name) + 1:]

    def describe(self) -> str:
        """The layer as the language writes it, defaults left out: `conv(64, 7, stride=2, pad=3)`."""
        return self.op.describe(self.attrs)

    def data(self) -> dict[str, Any]:
        """The layer as plain data (the networkx node data, `Network.graph`)."""
        return {"op": self.op_name, "attrs": self.attrs, "inputs": [i.name for i in self.inputs], "span": self.span,
                "site": self.site, "train_only": self.train_only, "shape": self.shape, "params": self.params,
                "macs": self.macs}

    def __repr__(self) -> str:
        return f"<Layer {self.name}: {self.op_name} -> {self.shape}>"


class Scope:
    """A named group of layers (see the module docstring). `title` is how summaries and
    diagrams show it: `inception(64, 96, 128, 16, 32, 32)`, `repeat 3`. A block instance's
    `arguments` are the names its body was lowered with: its block's parameters' values,
    defaults included, and its input's sizes (`in_channels`, ...); empty for other scopes."""

    __slots__ = ("name", "kind", "title", "span", "train_only", "block", "output", "parent", "children", "level",
                 "arguments", "_around")

    def __init__(self, name: str, kind: str, title: str, span: Span, train_only: bool = False,
                 block: Optional[str] = None, parent: Optional["Scope"] = None):
        self.name, self.kind, self.title, self.span = name, kind, title, span
        self.train_only, self.block, self.parent = train_only, block, parent
        self.output: Optional[Layer] = None
        self.arguments: Mapping[str, Any] = _NO_ARGUMENTS
        self.children: list[Scope] = []
        self.level: int = 1 if parent is None else parent.level + 1  # scopes around it, itself included
        self._around: Optional[list[Scope]] = None
        if parent is not None:
            parent.children.append(self)

    @property
    def local(self) -> str:
        return self.name if self.parent is None else self.name[len(self.parent.name) + 1:]

    def ancestors(self) -> list["Scope"]:
        """This scope and the scopes around it, outermost first (one list, made once: do not
        change it)."""
        if self._around is None:
            self._around = (self.parent.ancestors() if self.parent is not None else []) + [self]
        return self._around

    def __repr__(self) -> str:
        return f"<Scope {self.name}: {self.kind} {self.title}>"


def scopes_of(layer: Layer) -> list[Scope]:
    """The scopes a layer is in, outermost first."""
    return [] if layer.scope is None else layer.scope.ancestors()


@dataclass(frozen=True)
class Output:
    """An output of the net: the main chain's last layer, or a head."""

    name: str
    layer: Layer
    train_only: bool = False


@dataclass(frozen=True)
class Totals:
    params: int
    macs: int


class Net:
    """A lowered net: its layers in topological order (each after the layers it reads), its
    scopes by path in definition order, its outputs."""

    def __init__(self, name: str, params: dict[str, Any]):
        self.name, self.params = name, params
        self.layers: dict[str, Layer] = {}
        self.scopes: dict[str, Scope] = {}
        self.outputs: list[Output] = []
        self.input: Optional[Layer] = None
        self._totals: dict[bool, Totals] = {}
        self._derived: dict[Any, Any] = {}

    @property
    def input_shape(self) -> Optional[tuple[int, ...]]:
        return None if self.input is None else tuple(self.input.attrs["shape"])

    def add(self, layer: Layer) -> Layer:
        """Add a layer; every layer it reads is already in the net."""
        assert layer.name not in self.layers, layer.name
        self.layers[layer.name] = layer
        for source in layer.inputs:
            source.users.append(layer)
        if layer.is_source and self.input is None:
            self.input = layer
        return layer

    def __len__(self) -> int:
        return len(self.layers)

    def __contains__(self, name: object) -> bool:
        return name in self.layers

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers.values())

    def body(self) -> Iterator[Layer]:
        """Every layer but the input."""
        return (layer for layer in self.layers.values() if not layer.is_source)

    def edges(self) -> Iterator[tuple[Layer, Layer, int]]:
        """(source, target, input index) for every tensor."""
        for layer in self.layers.values():
            for index, source in enumerate(layer.inputs):
                yield source, layer, index

    def totals(self, train: bool = True) -> Totals:
        """Parameters and MACs of every layer; with `train=False`, without the training-only
        heads. Counted once, after shape inference."""
        if train not in self._totals:
            kept = [layer for layer in self.layers.values() if train or not layer.train_only]
            self._totals[train] = Totals(sum(x.params for x in kept), sum(x.macs for x in kept))
        return self._totals[train]

    def derived(self, key: Any, compute: Callable[[], T]) -> T:
        """What `compute()` derives from the net, computed on the first call for `key` only: the
        net does not change once lowered, and `load` hands the same net out for the same text
        (the backend's facts of a net cost about 2 ms of a 20 ms build). A `compute` that
        raises is asked again next time."""
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = compute()
            return value

    def to_networkx(self):
        """A networkx.DiGraph with a node per layer (its `Layer.data()`) and an edge per tensor
        (edge data `index`: which input of the target it is)."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from((name, layer.data()) for name, layer in self.layers.items())
        g.add_edges_from((s.name, t.name, {"index": i}) for s, t, i in self.edges())
        return g
