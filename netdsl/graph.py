"""The layer graph: one node per layer, keyed by its dotted scope name, in topological order.

The passes (shape inference, summary) walk `nodes` directly, which is all they need; the
same graph as a `networkx.DiGraph` (`to_networkx`, or `Network.graph`) is built on first use,
because importing networkx costs about 0.3 s, longer than all of `netdsl check`'s own work.

Node data (a dict per layer):
    op          the op's registry name ("conv", "concat", ...; "input" for the input)
    attrs       the bound, typed attributes (None when the layer is in error)
    inputs      the names of the layers it reads, in argument order
    span        where the layer is written
    train_only  True inside a `train head`
    shape, params, macs   set by shape inference (shape None where unknown)
"""

from __future__ import annotations

from typing import Any, Iterator


class LayerGraph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}  # insertion order is topological

    def add(self, name: str, **data: Any) -> None:
        """Add a layer; every layer it reads must already be in the graph."""
        assert name not in self.nodes and all(i in self.nodes for i in data["inputs"]), name
        self.nodes[name] = data

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def edges(self) -> Iterator[tuple[str, str, int]]:
        """(source, target, input index) for every tensor."""
        for name, data in self.nodes.items():
            for index, src in enumerate(data["inputs"]):
                yield src, name, index

    def to_networkx(self):
        """A networkx.DiGraph with the same nodes, node data and edges (edge data: `index`)."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self.nodes.items())
        g.add_edges_from((s, t, {"index": i}) for s, t, i in self.edges())
        return g
