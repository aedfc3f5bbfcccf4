"""The limits that keep any input, however large or hostile, within a bounded cost, and the
layer bound that enforces the layer limit before any layer is made.

| limit | default | where |
| --- | --- | --- |
| file size | 1 MiB | `load`/`loads` (E104) |
| brackets and expressions nested | 100 levels | the parser, lowering (E408) |
| layers | 100,000 | lowering (E407), bounded before expansion |
| scopes (block instances, passes, branches, heads) | 1 per layer of the limit | lowering (E407) |
| steps of expansion (items, terms evaluated) | 10 per layer of the limit | lowering (E407) |
| a name (an identifier, or a dotted name) | 1,000 characters | lowering (E410) |
| errors reported | 100 | the diagnostic bag |
| parameters to compile | 10^10 | the backend |
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Mapping, Optional

from . import ast
from .binding import bind
from .evaluate import expr_size, subexpressions, value_or_none
from .ops import Symbol

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
# Expanding a net costs more than its layers, and each cost is bounded in proportion to the
# layer limit, so `--max-layers` raises them all together:
# - scopes (block instances, repeats and their passes, branches, labelled joins, heads, groups)
#   cost as much to make as a layer, and blocks whose bodies make no layer (heads only, or
#   nothing) multiply them as other blocks multiply layers;
# - steps: each item lowered, each term of an expression evaluated; a block of a thousand
#   parameters used a thousand times evaluates a million arguments and makes a thousand layers.
# The bundled nets use at most 0.5 scopes and 4.6 steps per layer (torchvision's GoogLeNet).
SCOPES_PER_LAYER = 1
STEPS_PER_LAYER = 10
# The layer bound gives up after this many steps per layer of the limit; lowering's own checks
# then stop a net where it passes a limit, so the bound stays a small part of any check.
BOUND_STEPS_PER_LAYER = 2


# Names: every layer and scope keeps its dotted name, and every message may quote one, so a
# name's length multiplies into memory and output (labels of 2,000 characters nested 40 deep
# and repeated 1,000 times took 1.8 GB). Real names are tens of characters.
MAX_NAME_LENGTH = 1_000


def long_names(program: ast.Program, limit: int = MAX_NAME_LENGTH) -> Iterator[tuple[int, ast.Span]]:
    """(length, span) of every identifier in the file longer than `limit` characters: the names
    of blocks, nets, parameters, labels, ops, joins and heads' sources, and names in expressions."""
    exprs: list[ast.Expr] = []
    for d in program.definitions:
        yield from _long(limit, (d.name, d.name_span), *((p.name, p.span) for p in d.params))
        exprs += [p.default for p in d.params if p.default is not None]
        stack = list(d.body)
        while stack:
            item = stack.pop()
            label = getattr(item, "label", None)
            if label is not None:
                yield from _long(limit, (label, item.label_span))
            if isinstance(item, (ast.Call, ast.Join)):
                yield from _long(limit, (item.name if isinstance(item, ast.Call) else item.kind, item.name_span),
                                 *((a.name, a.span) for a in item.args if a.name is not None))
                exprs += [a.value for a in item.args]
            if isinstance(item, ast.Join):
                for branch in item.branches:
                    stack.extend(branch)
            elif isinstance(item, ast.Head):
                if item.source is not None:
                    yield from _long(limit, (item.source, item.source_span))
                stack.extend([item.body] if isinstance(item.body, ast.Call) else item.body)
            elif isinstance(item, (ast.Repeat, ast.Group)):
                if isinstance(item, ast.Repeat):
                    exprs.append(item.count)
                    if item.var is not None:
                        yield from _long(limit, (item.var, item.var_span))
                stack.extend(item.body)
            elif isinstance(item, ast.If):
                for cond, body in item.arms:
                    exprs.append(cond)
                    stack.extend(body)
                stack.extend(item.otherwise or ())
            elif isinstance(item, ast.From):
                yield from _long(limit, (item.source, item.span))
    for e in (sub for expr in exprs for sub in subexpressions(expr)):
        if isinstance(e, ast.NameRef):
            yield from _long(limit, (e.name, e.span))
        elif isinstance(e, ast.FuncCall):
            yield from _long(limit, (e.name, e.name_span), *((a.name, a.span) for a in e.args if a.name is not None))


def _long(limit: int, *names: tuple[str, ast.Span]) -> Iterator[tuple[int, ast.Span]]:
    for name, span in names:
        if len(name) > limit:
            yield len(name), span


class BoundGaveUp(Exception):
    """The layer bound spent its steps before it could tell whether the net passes the limit."""


class LayerBound:
    """A lower bound on the layers items will make, counted without making them and remembered
    per block and arguments, so blocks that multiply (each using the one before twice, thirty
    deep: a billion layers) cost a few steps. Only what is certain counts: ops, joins, groups,
    and blocks and repeats whose arguments evaluate and bind; heads and anything in doubt count
    what lowering makes at least (a block in error is one broken layer, a head nothing).

    The bound's own work is bounded: once a count passes `limit` it stops adding (the net is
    too large, by how much does not matter), and after `max_steps` steps (items visited, terms
    of expressions evaluated; blocks called with different arguments each time are visited once
    per call) it raises BoundGaveUp."""

    def __init__(self, blocks: Mapping[str, ast.BlockDef], recursive: set[str],
                 limit: Optional[int] = None, max_steps: Optional[int] = None):
        self.blocks, self.recursive = blocks, recursive
        self.limit = math.inf if limit is None else limit
        self.steps_left = math.inf if max_steps is None else max_steps
        self.memo: dict[tuple, int] = {}
        self.sizes: dict[int, int] = {}  # expression sizes, by node
        self.depth = 0

    def _spend(self, steps: int) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise BoundGaveUp

    def _value(self, expr: ast.Expr, env: Mapping[str, Any]) -> Any:
        self._spend(expr_size(expr, self.sizes))
        return value_or_none(expr, env)

    def chain(self, items: Iterable[ast.Item], env: Mapping[str, Any]) -> int:
        total = 0
        for item in items:
            self._spend(1)
            total += self.item(item, env)
            if total > self.limit:
                break  # already past the limit: the rest could only add to it
        return total

    def item(self, item: ast.Item, env: Mapping[str, Any]) -> int:
        if isinstance(item, ast.Call):
            return self.call(item, env)
        if isinstance(item, ast.Join):
            total = 1
            for branch in item.branches:
                total += self.chain(branch, env)
                if total > self.limit:
                    break
            return total
        if isinstance(item, ast.Repeat):
            count = self._value(item.count, env)
            ok = isinstance(count, int) and not isinstance(count, bool) and count > 0
            if not ok:
                return 0
            if item.var is not None:  # the pass unknown: what depends on it counts its least
                env = {**env, item.var: Symbol(item.var)}
            return count * self.chain(item.body, env)
        if isinstance(item, ast.Group):
            return self.chain(item.body, env)
        if isinstance(item, ast.If):
            # the arm taken when the conditions evaluate; else the least of every arm (and of
            # none, without an `else`)
            for cond, body in item.arms:
                value = self._value(cond, env)
                if value is True:
                    return self.chain(body, env)
                if value is not False:
                    break
            else:
                return self.chain(item.otherwise, env) if item.otherwise is not None else 0
            if item.otherwise is None:
                return 0
            least = self.chain(item.otherwise, env)
            for _, body in item.arms:
                least = min(least, self.chain(body, env))
            return least
        return 0  # the input; heads; `from`

    def call(self, call: ast.Call, env: Mapping[str, Any]) -> int:
        block = self.blocks.get(call.name)
        if block is None or block.name in self.recursive or self.depth >= MAX_NESTING:
            return 1
        names = [p.name for p in block.params]
        self._spend(len(call.args) + len(names))  # binding, and the key below
        bound = bind(block.name, names, len(names), call.args)
        if bound is None:
            return 1  # arguments that do not bind: one broken layer
        inner: dict[str, Any] = {}
        for p in block.params:
            arg = bound.get(p.name)
            value = self._value(arg.value, env) if arg is not None else (
                self._value(p.default, inner) if p.default is not None else None)
            if value is None:
                return 1
            inner[p.name] = value
        key = (block.name, repr(list(inner.values())))
        if key not in self.memo:
            self.depth += 1
            try:
                self.memo[key] = self.chain(block.body, inner)
            finally:
                self.depth -= 1
        return self.memo[key]
