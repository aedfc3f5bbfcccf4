"""The limits that keep any input, however large or hostile, within a bounded cost, and the
layer bound that enforces the layer limit before any layer is made.

| limit | default | where |
| --- | --- | --- |
| file size | 1 MiB | `load`/`loads` (E104) |
| brackets and expressions nested | 100 levels | the parser, lowering (E408) |
| layers | 100,000 | lowering (E407), bounded before expansion |
| errors reported | 100 | the diagnostic bag |
| parameters to compile | 10^10 | the backend |
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from . import ast
from .binding import bind
from .evaluate import value_or_none

# 1 MiB: four hundred times googlenet.net, room for 50,000 layers written out one by one. Parsing
# takes time in proportion to the text (10 s for the densest 1 MiB on a slow machine): the limit bounds it.
DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_LAYERS = 100_000
# Once a net is known to pass the layer limit, lowering goes on only this far: enough for the
# errors among the first layers and for a partial net to draw, never the whole limit's worth.
PARTIAL_LAYERS = 1_000
DEFAULT_MAX_PARAMS = 10_000_000_000  # 40 GB of float32: beyond one machine's memory for training
# How deeply brackets (`(` and `{` together) and expressions may nest. Real nets nest a few
# levels; the stages after the parser walk the tree recursively, and these limits keep them
# far from Python's recursion limit, so absurd nesting is one located error, never a crash.
MAX_NESTING = 100
MAX_EXPR_DEPTH = 100


class LayerBound:
    """A lower bound on the layers items will make, counted without making them and remembered
    per block and arguments, so blocks that multiply (each using the one before twice, thirty
    deep: a billion layers) cost a few steps. Only what is certain counts: ops, joins, groups,
    and blocks and repeats whose arguments evaluate and bind; heads and anything in doubt count
    what lowering makes at least (a block in error is one broken layer, a head nothing)."""

    def __init__(self, blocks: Mapping[str, ast.BlockDef], recursive: set[str]):
        self.blocks, self.recursive = blocks, recursive
        self.memo: dict[tuple, int] = {}
        self.depth = 0

    def chain(self, items: Iterable[ast.Item], env: Mapping[str, Any]) -> int:
        return sum(self.item(i, env) for i in items)

    def item(self, item: ast.Item, env: Mapping[str, Any]) -> int:
        if isinstance(item, ast.Call):
            return self.call(item, env)
        if isinstance(item, ast.Join):
            return 1 + sum(self.chain(b, env) for b in item.branches)
        if isinstance(item, ast.Repeat):
            count = value_or_none(item.count, env)
            ok = isinstance(count, int) and not isinstance(count, bool) and count > 0
            return count * self.chain(item.body, env) if ok else 0
        if isinstance(item, ast.Group):
            return self.chain(item.body, env)
        return 0  # the input; heads

    def call(self, call: ast.Call, env: Mapping[str, Any]) -> int:
        block = self.blocks.get(call.name)
        if block is None or block.name in self.recursive or self.depth >= MAX_NESTING:
            return 1
        names = [p.name for p in block.params]
        bound = bind(block.name, names, len(names), call.args)
        if bound is None:
            return 1  # arguments that do not bind: one broken layer
        inner: dict[str, Any] = {}
        for p in block.params:
            arg = bound.get(p.name)
            value = value_or_none(arg.value, env) if arg is not None else (
                value_or_none(p.default, inner) if p.default is not None else None)
            if value is None:
                return 1
            inner[p.name] = value
        key = (block.name, repr(list(inner.values())))
        if key not in self.memo:
            self.depth += 1
            self.memo[key] = self.chain(block.body, inner)
            self.depth -= 1
        return self.memo[key]
