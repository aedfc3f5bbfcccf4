"""Syntax tree to IR: blocks, repeats and `if`s expanded, arguments bound and type-checked
against the op registry, every layer and scope given its dotted name, and every layer's shape
inferred as soon as it is made (netdsl/shapes.py), so that the `in_*` names of a block's body
(the sizes of its input) and conditions on them have their values when they are evaluated.

The result is an `ir.Net` (netdsl/ir.py): its layers added in topological order (each after the
layers it reads), its scope tree and its outputs. Lowering never stops at the first mistake:
it records a diagnostic, puts an erroneous layer in the net (so names and later layers still
resolve) and goes on; a value that failed to evaluate is POISON (netdsl/evaluate.py), which
later uses pass on without reporting again. Expressions are evaluated by netdsl/evaluate.py,
arguments bound by netdsl/binding.py, and the layer limit enforced with netdsl/limits.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping, Optional

from . import ast, codes, ir
from .binding import bind
from .diagnostics import DiagnosticBag, Help, Note, did_you_mean, name_list
from .evaluate import (FUNCTIONS, INPUT_NAMES, POISON, EvalError, Poisoned, evaluate, expr_size, input_names,
                       subexpressions, unknown_function)
from .ir import Layer
from .limits import (BOUND_STEPS_PER_LAYER, DEFAULT_MAX_LAYERS, MAX_NAME_LENGTH, MAX_NESTING, PARTIAL_LAYERS,
                     SCOPES_PER_LAYER, STEPS_PER_LAYER, BoundGaveUp, LayerBound, long_names)
from .ops import INPUT, REGISTRY, REQUIRED, AttrError, OpSpec, Symbol, fmt_value
from .parser import KEYWORDS, PLACEHOLDER, Damage
from .shapes import ShapeInference


_PLAIN = frozenset({int, float, str, Symbol})  # values that equal only values of their own type
_MISSING = object()


class _Abort(Exception):
    """Stops lowering when going on would only produce noise (the net is too large)."""


# --- scopes while lowering ---------------------------------------------------------------

_NO_LABELS: frozenset = frozenset()


def _labels_in(items: Iterable[ast.Item]) -> Iterator[str]:
    """Labels written directly in this scope (an unlabelled repeat, `if` or inline join inlines
    its bodies)."""
    for item in items:
        label = getattr(item, "label", None)
        if label is not None:
            yield label
        elif isinstance(item, ast.Repeat):
            yield from _labels_in(item.body)
        elif isinstance(item, ast.If):  # inline, as an unlabelled repeat: every arm's labels
            for body in _if_bodies(item):
                yield from _labels_in(body)
        elif isinstance(item, ast.Join) and item.inline:
            for branch in item.branches:
                yield from _labels_in(branch)


def _is_index(label: str) -> bool:
    """Is the label an integer (`2:`, which the parser keeps as "2"), one that sets a seq's count?
    A quoted `"02"` is not: PyTorch never numbers a child so."""
    return label.isascii() and label.isdigit() and str(int(label)) == label


def _if_bodies(item: ast.If) -> list[tuple[ast.Item, ...]]:
    return [body for _, body in item.arms] + ([item.otherwise] if item.otherwise is not None else [])


@dataclass(slots=True)
class _Ctx:
    path: str                      # dotted prefix of names made here ("" at the top)
    env: Mapping[str, Any]         # parameters visible here
    reserved: frozenset            # labels written in this scope: automatic names avoid them
    train_only: bool = False
    site: Optional[tuple[str, ast.Span]] = None  # (block instance, its call) when inside a block
    names: dict[str, ast.Span] = field(default_factory=dict)
    # automatic names' counts by kind; under "" (no kind's name), a seq's next number
    counters: dict[str, int] = field(default_factory=dict)
    top: bool = False
    seq: bool = False              # a `seq` scope: unlabelled items are numbered (see number)

    def full(self, local: str) -> str:
        return f"{self.path}.{local}" if self.path else local

    def child(self, local: str, reserved: frozenset = _NO_LABELS, **changes) -> "_Ctx":
        """The context of a scope inside this one; `reserved`: the labels written in it."""
        return _Ctx(self.full(local), changes.get("env", self.env), reserved,
                    changes.get("train_only", self.train_only), changes.get("site", self.site),
                    seq=changes.get("seq", False))

    def number(self) -> str:
        """The next number of a seq scope: 0, 1, 2, ... The count lives in `counters`, which
        the contexts of an unlabelled repeat's passes share with it (`replace` keeps the
        dict), so the passes continue it; an integer label moves it (see Lowerer._local_name)."""
        n = self.counters.get("", 0)
        self.counters[""] = n + 1
        return str(n)

    def auto(self, kind: str) -> str:
        """The next free automatic name for `kind` here: conv1, conv2, ... (also in a seq, for
        what takes no number: heads)."""
        n = self.counters.get(kind, 0)
        while True:
            n += 1
            name = f"{kind}{n}"
            if name not in self.reserved and name not in self.names:
                self.counters[kind] = n
                self.names[name] = ast.NOWHERE
                return name


class Lowerer:
    def __init__(self, program: ast.Program, bag: DiagnosticBag, overrides: Mapping[str, Any],
                 max_layers: int = DEFAULT_MAX_LAYERS, damage: Optional[Damage] = None):
        self.program, self.bag, self.overrides, self.max_layers = program, bag, overrides, max_layers
        # after syntax errors: where the parts cut out were (see parser.parse_recovering)
        self.damage = damage or Damage()
        self._stop_at = max_layers  # layers made before lowering stops
        # and the scopes and steps (items lowered, terms evaluated): see netdsl/limits.py
        self.max_scopes, self.max_steps = SCOPES_PER_LAYER * max_layers, STEPS_PER_LAYER * max_layers
        self._stop_scopes, self._stop_steps = self.max_scopes, self.max_steps
        self.steps = 0
        self._sizes: dict[int, int] = {}  # expression sizes, by node
        self._labels: dict[int, frozenset] = {}  # the labels written in each body, by body
        # An op's argument names, and attribute values already converted, by attribute and
        # value: a net of 100,000 layers converts the same few values again and again.
        self._signatures: dict[str, Any] = {}
        self._converted: dict[tuple, Any] = {}
        self._limit_reported = False
        self.net = ir.Net("", {})
        self.blocks: dict[str, ast.BlockDef] = {}
        self.recursive: set[str] = set()  # blocks on a call cycle: reported once, never expanded
        self._missing_input_reported = False
        self._input_declared = False
        self._site: Optional[tuple[str, ast.Span]] = None
        self._depth = 0  # chains being lowered, one inside another
        self._shapes = ShapeInference(bag)
        # Whether a repeat's passes may differ (`as i`, an `if`, a conditional or `in_*` anywhere):
        # then the first pass does not tell what the others cost (see _check_repeat_size).
        self._varying = _has_conditions(program)

    def _error(self, code: str, message: str, span: ast.Span = ast.NOWHERE, *,
               notes: Iterable[Note] = (), help: Help = None) -> None:
        """Report a mistake; inside a block, a note says which use of the block found it."""
        notes = list(notes)
        if self._site is not None:
            instance, call_span = self._site
            notes.append(Note(f"in `{instance}`, the use of the block here", call_span))
        self.bag.error(code, message, span, notes=notes, help=help)
        if self.bag.full:
            self.bag.truncated = True
            raise _Abort

    # -- entry --------------------------------------------------------------------------

    @property
    def scopes(self) -> dict[str, ir.Scope]:
        return self.net.scopes

    @property
    def outputs(self) -> list[ir.Output]:
        return self.net.outputs

    def run(self) -> Optional[ir.Net]:
        # Names too long to keep, quote and compare: reported, and nothing else is checked.
        too_long = False
        for length, span in long_names(self.program):
            too_long = True
            self._error(codes.NAME_TOO_LONG, f"a name of {length:,} characters; names are at most "
                        f"{MAX_NAME_LENGTH:,}", span, help="choose a shorter name")
        if too_long:
            return None
        nets = [d for d in self.program.definitions if isinstance(d, ast.NetDef)]
        for d in self.program.definitions:
            if isinstance(d, ast.BlockDef):
                self._define_block(d)
        self._check_blocks()
        self._check_ahead(nets)
        if len(nets) != 1:
            end = self.program.span  # with no net, point at the end of the file, where one could go
            where = nets[1].name_span if nets else ast.Span(end.end_line, end.end_column, end.end_line,
                                                            end.end_column + 1)
            self._error(codes.NOT_ONE_NET, "a file defines exactly one net" + (f", this one defines {len(nets)}" if nets else
                                                                     ", this one defines none"), where,
                        help=None if nets else "add `net NAME { input CxHxW ... }`")
            if not nets:
                return None
        net = nets[0]
        params = self._net_params(net)
        self.net.name, self.net.params = net.name, params
        if self._too_large(net, params):
            self._stop_at = min(self.max_layers, PARTIAL_LAYERS)
            # scopes and steps: bounded too, but loosely enough that the layers stop it first
            self._stop_scopes = min(self.max_scopes, 10 * SCOPES_PER_LAYER * PARTIAL_LAYERS)
            self._stop_steps = min(self.max_steps, 10 * STEPS_PER_LAYER * PARTIAL_LAYERS)
        # until the input is declared its sizes are unknown: `in_*` names are POISON (and the
        # missing input is reported)
        ctx = _Ctx("", {**input_names(None), **params}, frozenset(_labels_in(net.body)), top=True)
        stopped = False
        try:
            last = self._chain(net.body, None, ctx)
        except _Abort:
            last, stopped = None, True
        if not self._input_declared and not stopped and \
                not any(d.code == codes.INPUT_DECLARATION for d in self.bag.items):
            self._error(codes.INPUT_DECLARATION, f"net `{net.name}` has no input declaration", net.name_span,
                        help="start its body with the input shape, e.g. `input 3x224x224`")
        if last is not None:
            top = ir.scopes_of(last)
            self.outputs.insert(0, ir.Output(top[0].name if top else last.name, last, False))
        return self.net

    def _too_large(self, net: ast.NetDef, params: Mapping[str, Any]) -> bool:
        """Refuse at once (E407) a net whose layers surely pass the limit, at the top-level item
        that passes it, rather than after making the first `max_layers` of them."""
        if not (net.body and isinstance(net.body[0], ast.InputDecl)):
            return False  # a net without its input is reported as such
        bound = LayerBound(self.blocks, self.recursive, self.max_layers, BOUND_STEPS_PER_LAYER * self.max_layers)
        total = 0
        for item in net.body:
            try:
                total += bound.item(item, params)
            except BoundGaveUp:  # too costly to tell: lowering stops the net where it passes a limit
                return False
            if total > self.max_layers:
                where = item.count.span if isinstance(item, ast.Repeat) else item.span
                self._limit_passed(f"the net has more than {self.max_layers:,} layers: {total:,} at least, "
                                   "by here", where)
                return True
        return False

    def _define_block(self, d: ast.BlockDef) -> None:
        if d.name in self.blocks:
            self._error(codes.DUPLICATE_NAME, f"block `{d.name}` is defined twice", d.name_span,
                        notes=[Note("first defined here", self.blocks[d.name].name_span)])
        elif d.name in REGISTRY or d.name in KEYWORDS:
            what = "a built-in op" if d.name in REGISTRY else "a keyword"
            self._error(codes.DUPLICATE_NAME, f"block `{d.name}` has the name of {what}", d.name_span,
                        help="choose another name")
        else:
            self.blocks[d.name] = d
        self._check_params(d.params)

    def _check_blocks(self) -> None:
        """What can be checked in a block before it is used, so that a block no net uses yet
        is checked too: the names it calls, and calls that come back to it (E204)."""
        calls = {name: [i for i in _items_in(b.body) if isinstance(i, ast.Call)] for name, b in self.blocks.items()}
        known = {n for n, s in REGISTRY.items() if not s.join and not s.source} | set(self.blocks)
        for name, block_calls in calls.items():
            for call in block_calls:
                if call.name not in known and not self._cut(call):
                    self._unknown_op(call, None)
            for item in _items_in(self.blocks[name].body):
                if isinstance(item, ast.Join) and not (item.kind in REGISTRY and REGISTRY[item.kind].join):
                    self._unknown_join(item)
                if isinstance(item, ast.InputDecl):
                    self._error(codes.INPUT_DECLARATION, "the input belongs in the net's body, not in a block", item.span)
        # Depth-first search for cycles among blocks: a few lines, where importing networkx for
        # its cycle finder would cost more than checking the whole file.
        done: set[str] = set()
        path: list[str] = []  # the blocks being visited, outermost first

        def visit(name: str) -> None:
            if len(path) > MAX_NESTING:  # lowering reports such depth (E408) where a net reaches it
                return
            path.append(name)
            for call in calls[name]:
                if call.name in path:
                    cycle = path[path.index(call.name):] + [call.name]
                    self.recursive.update(cycle)
                    self._error(codes.RECURSIVE_BLOCK, f"block `{call.name}` calls itself ({' -> '.join(cycle)})", call.span,
                                notes=[Note(f"`{call.name}` is defined here", self.blocks[call.name].name_span)],
                                help="a block cannot contain itself; use `repeat` for a chain of copies")
                elif call.name in self.blocks and call.name not in done:
                    visit(call.name)
            path.pop()
            done.add(name)

        for name in self.blocks:
            if name not in done:
                visit(name)

    def _check_ahead(self, nets: list[ast.NetDef]) -> None:
        """What is reported even where it may never be evaluated: calls of unknown functions
        anywhere, and in the net's body unknown ops and joins in the arms of an `if` (the arm
        taken reports them again when it is lowered; the bag keeps one)."""
        for d in self.program.definitions:
            exprs = [p.default for p in d.params if p.default is not None]
            for item in _items_in(d.body):
                exprs.extend(_expressions_in(item))
            for e in (sub for expr in exprs for sub in subexpressions(expr)):
                if isinstance(e, ast.FuncCall) and e.name not in FUNCTIONS:
                    err = unknown_function(e)
                    self._error(err.code, err.message, err.span, help=err.help)
        known = {n for n, s in REGISTRY.items() if not s.join and not s.source} | set(self.blocks)
        for net in nets:
            for item in _items_in(net.body):
                if not isinstance(item, ast.If):
                    continue
                for body in _if_bodies(item):
                    for inner in _items_in(body):
                        if isinstance(inner, ast.Call) and inner.name not in known and inner.name != "from" \
                                and not self._cut(inner):
                            self._unknown_op(inner, None)
                        elif isinstance(inner, ast.Join) and not (inner.kind in REGISTRY and REGISTRY[inner.kind].join):
                            self._unknown_join(inner)

    def _check_params(self, params: Iterable[ast.Param]) -> None:
        seen: dict[str, ast.Span] = {}
        for p in params:
            if p.name in seen:
                self._error(codes.DUPLICATE_NAME, f"parameter `{p.name}` is declared twice", p.span,
                            notes=[Note("first declared here", seen[p.name])])
            seen[p.name] = p.span

    def _net_params(self, net: ast.NetDef) -> dict[str, Any]:
        self._check_params(net.params)
        names = [p.name for p in net.params]
        for key in self.overrides:
            if key not in names:
                self._error(codes.UNKNOWN_PARAMETER, f"net `{net.name}` has no parameter `{key}`",
                            help=did_you_mean(key, names) or (
                                f"its parameters are {name_list(names)}" if names
                                else f"`{net.name}` declares no parameters"))
        env: dict[str, Any] = {}
        for p in net.params:
            if p.name in self.overrides:
                env[p.name] = self._override(p, self.overrides[p.name])
            elif p.default is None:
                self._error(codes.MISSING_ARGUMENT, f"parameter `{p.name}` of net `{net.name}` has no default", p.span,
                            help=f"give it one (`{p.name} = ...`) or set it (`--set {p.name}=...`)")
                env[p.name] = POISON
            else:
                env[p.name] = self._value(p.default, env, p.name, net.params)
        return env

    def _override(self, p: ast.Param, value: Any) -> Any:
        """A parameter value given from outside the file (Python or `--set`)."""
        if isinstance(value, str) and value.isidentifier():
            return Symbol(value)  # a word, as the language writes `same`
        ok = isinstance(value, (bool, int, float, Symbol)) or (
            isinstance(value, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in value))
        if not ok:
            self._error(codes.WRONG_TYPE, f"parameter `{p.name}` is set to {value!r}; it takes a number, "
                        "true or false, or a shape like 3x3", p.span)
            return POISON
        return value

    def _value(self, expr: ast.Expr, env: Mapping[str, Any], name: str,
               params: Iterable[ast.Param]) -> Any:
        """A parameter's default: a value, a bare word (checked where it is used), or POISON.
        A parameter of the same definition declared after this one is reported here."""
        value = self._eval(expr, env)
        if isinstance(value, Symbol) and isinstance(expr, ast.NameRef) and value.name in {p.name for p in params}:
            self._error(codes.UNDEFINED_NAME, f"`{value}` is used before it is defined",
                        expr.span, help=f"declare `{value}` before `{name}`")
            return POISON
        return value

    def _eval(self, expr: ast.Expr, env: Mapping[str, Any]) -> Any:
        """The value, or POISON after reporting why there is none."""
        if expr.__class__ is ast.IntLit:  # most arguments: one step, nothing to evaluate
            self.steps += 1
            if self.steps > self._stop_steps:
                self._spend(0, expr.span)
            return expr.value
        self._spend(expr_size(expr, self._sizes), expr.span)
        try:
            return evaluate(expr, env)
        except Poisoned:
            return POISON
        except EvalError as e:
            self._error(e.code, e.message, e.span, help=e.help)
            return POISON

    # -- chains -------------------------------------------------------------------------

    def _chain(self, items: tuple[ast.Item, ...], current: Optional[Layer], ctx: _Ctx) -> Optional[Layer]:
        """Lower items one after another; returns the name of the last layer's output."""
        # Lowering recurses once per level of nesting. The parser bounds the brackets of one
        # definition; blocks using blocks could still nest without end (b1 uses b2 uses b3 ...).
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                self.bag.error(codes.TOO_DEEP, f"blocks and brackets nested more than {MAX_NESTING} levels deep",
                               self._site[1] if self._site else _extent(items),
                               help="a block that uses a block that uses a block ...: flatten some of them")
                raise _Abort
            return self._chain_items(items, current, ctx)
        finally:
            self._depth -= 1

    def _chain_items(self, items: tuple[ast.Item, ...], current: Optional[Layer], ctx: _Ctx) -> Optional[Layer]:
        skip = -1
        for i, item in enumerate(items):
            self.steps += 1
            if self.steps > self._stop_steps:
                self._spend(0, item.span)
            if i == skip:
                continue
            if isinstance(item, ast.Call) and item.name == "from" and not item.args and item.label is None:
                # `from x` where the lexer took `from` for a name (a keyword only where it can
                # come): one error for the misplaced `from`, none for the path after it
                self._error(codes.MISPLACED, "`from` can only begin a join branch", item.span,
                            help="`add { from x conv(8, 1) | identity }` starts a branch from `x`; "
                                 "`head from x { ... }` taps `x` for a head")
                following = items[i + 1] if i + 1 < len(items) else None
                if isinstance(following, ast.Call) and not following.args and following.label is None:
                    skip = i + 1
                continue
            if isinstance(item, ast.InputDecl):
                current = self._input(item, ctx, first=(i == 0))
            elif isinstance(item, ast.Call):
                following = items[i + 1] if i + 1 < len(items) else None
                current = self._call(item, current, ctx, following)
            elif isinstance(item, ast.Join):
                current = self._join(item, current, ctx)
            elif isinstance(item, ast.Repeat):
                current = self._repeat(item, current, ctx)
            elif isinstance(item, ast.Head):
                self._head(item, current, ctx)
            elif isinstance(item, ast.Group):
                # a seq: a group whose items are numbered; unlabelled, it is named `seq1`, `seq2`
                # (or takes a number, in a seq)
                local = self._local_name(item, "seq" if item.seq else "group", ctx)
                scope = self._scope(ctx.full(local), "group", "seq" if item.seq else "group", item.span, ctx)
                current = scope.output = self._chain(item.body, current,
                                                     ctx.child(local, self._reserved(item.body), seq=item.seq))
            elif isinstance(item, ast.If):
                current = self._if(item, current, ctx)
            elif isinstance(item, ast.From):  # first in a join's branch (the grammar puts it only there)
                current = self._resolve(item.source, item.span, ctx)
        return current

    def _if(self, item: ast.If, current: Optional[Layer], ctx: _Ctx) -> Optional[Layer]:
        """The body of the first arm whose condition holds, or of the `else`, lowered inline
        (its layers join this scope, as an unlabelled repeat's do: in a seq they take the next
        numbers, as if the arm were written in place); the input passed on when none holds.
        A condition that fails makes a broken layer (so what follows is not
        checked against an input it may not have had), after reporting why."""
        for cond, body in item.arms:
            value = self._eval(cond, ctx.env)
            if value is POISON:
                return self._broken_if(item, current, ctx)
            if isinstance(value, Symbol):
                self._error(codes.UNDEFINED_NAME, f"undefined name `{value}`", cond.span,
                            help=lambda: did_you_mean(value.name, ctx.env))
                return self._broken_if(item, current, ctx)
            if not isinstance(value, bool):
                self._error(codes.NOT_A_BOOLEAN, f"the condition of `if` must be true or false, got "
                            f"`{fmt_value(value)}`", cond.span,
                            help="compare it to make a condition, e.g. `x > 0` or `x == 1`")
                return self._broken_if(item, current, ctx)
            if value:
                return self._chain(body, current, ctx)
        if item.otherwise is not None:
            return self._chain(item.otherwise, current, ctx)
        return current

    def _broken_if(self, item: ast.If, current: Optional[Layer], ctx: _Ctx) -> Optional[Layer]:
        if current is None:
            return None
        return self._add_layer(ctx.full(ctx.auto("if")), None, None, [current], item.span, ctx)

    def _reserved(self, items: tuple[ast.Item, ...]) -> frozenset:
        """The labels written in a body, which its automatic names avoid: found once per body,
        not once per instance of a block or pass of a repeat."""
        labels = self._labels.get(id(items))
        if labels is None:
            labels = self._labels[id(items)] = frozenset(_labels_in(items))
        return labels

    def _reserved_all(self, bodies: tuple[tuple[ast.Item, ...], ...]) -> frozenset:
        """The labels written in several bodies that share one scope (an inline join's branches)."""
        labels = self._labels.get(id(bodies))
        if labels is None:
            labels = self._labels[id(bodies)] = frozenset(label for body in bodies for label in _labels_in(body))
        return labels

    def _scope(self, path: str, kind: str, title: str, span: ast.Span, ctx: _Ctx,
               block: Optional[str] = None) -> ir.Scope:
        if len(self.scopes) >= self._stop_scopes:
            self._limit_passed(f"the net has more than {self.max_scopes:,} scopes (block instances, repeats and "
                               "their passes, branches, heads, groups)", span)
            raise _Abort
        if len(path) > MAX_NAME_LENGTH:
            self._name_too_long(path, span)
        # the tree follows the names: a scope's parent is the scope its path extends
        parent = self.scopes.get(path.rpartition(".")[0])
        scope = self.scopes[path] = ir.Scope(path, kind, title, span, ctx.train_only, block, parent)
        return scope

    def _input(self, item: ast.InputDecl, ctx: _Ctx, first: bool) -> Optional[Layer]:
        if ctx.site is not None:
            return None  # inside a block: _check_blocks has reported it
        if not ctx.top or not first or self._input_declared:
            what = "is declared twice" if self._input_declared else \
                "must be the first line of the net's body"
            self._error(codes.INPUT_DECLARATION, f"the input {what}", item.span)
            return None
        self._input_declared = True
        if item.sizes is not None:
            item = self._input_sizes(item, ctx)
            if item is None:
                return None
        if len(item.dims) > 4:
            self._error(codes.WRONG_RANK, f"the input is {'x'.join(map(str, item.dims))}; write it as one size "
                        "(a vector), C x L (a sequence), C x H x W (an image) or C x D x H x W (a volume)",
                        item.span)
            return None
        if min(item.dims) < 1:
            self._error(codes.OUT_OF_RANGE, "every size of the input must be at least 1", item.span)
            return None
        layer = self._add_layer(INPUT.name, INPUT, {"shape": item.dims}, [], item.span, ctx)
        # the net's body sees the input's sizes, unless a parameter takes the name
        ctx.env = {**input_names(layer.shape), **self.net.params}
        return layer

    def _input_sizes(self, item: ast.InputDecl, ctx: _Ctx) -> Optional[ast.InputDecl]:
        """`input (3, res, res)`: the sizes evaluated with the net's parameters (integers), as
        the declaration of those dims; None after reporting why not."""
        dims, ok = [], True  # every size is checked: all of their mistakes are reported
        for e in item.sizes:
            v = self._eval(e, ctx.env)
            if v is POISON:
                ok = False
            elif isinstance(v, Symbol):
                self._error(codes.UNDEFINED_NAME, f"undefined name `{v}`", e.span,
                            help=lambda v=v: did_you_mean(v.name, ctx.env))
                ok = False
            elif isinstance(v, bool) or not isinstance(v, int):
                self._error(codes.WRONG_TYPE, f"each size of the input must be an integer, got {fmt_value(v)}", e.span,
                            help="round it: `int(...)`, `round(...)` or `ceil(...)`" if isinstance(v, float) else None)
                ok = False
            dims.append(v)
        return replace(item, dims=tuple(dims)) if ok else None

    def _local_name(self, item, kind: str, ctx: _Ctx, numbered: bool = True) -> str:
        """The item's label, checked to be new in this scope, or an automatic name.

        Outside a seq, an unlabelled item is named by its kind and a count: `conv1`, `conv2`
        (skipping the labels written in the scope). In a seq (`seq { ... }`), as nn.Sequential
        numbers its children, every unlabelled item that is `numbered` takes the next number,
        0, 1, 2, ...: op calls (parameterless ones too), block calls, joins, nested seqs; the
        callers pass `numbered=False` for heads, which take no number. An unlabelled repeat,
        `if` or inline join lowers its items in this same context, so they take numbers as if
        written out in place. An integer label `k:` sets the count: the next unlabelled item
        is k+1. A named (or quoted) label takes no number. A number that meets a name already
        taken (`seq { 1: a  0: b  c }`: `c` would be 1 again) is reported as a duplicate."""
        label = getattr(item, "label", None)
        if label is None:
            if not (ctx.seq and numbered):
                return ctx.auto(kind)
            name, span = ctx.number(), item.span
        else:
            name, span = label, item.label_span
            if ctx.seq and _is_index(label):
                ctx.counters[""] = int(label) + 1
        if name in ctx.names:
            first = ctx.names[name]
            self._error(codes.DUPLICATE_NAME, f"`{ctx.full(name)}` is defined twice", span,
                        notes=[Note("first defined here", first)] if first.line and first != span else [],
                        help="labels inside an unlabelled `repeat` clash on each pass: label the repeat "
                             "so each pass gets its own scope" if first == span else None)
            # keep going under a fresh name so later layers still connect
            return ctx.auto(name + "_")
        ctx.names[name] = span
        return name

    def _add_layer(self, name: str, op: Optional[OpSpec], attrs: Optional[dict], inputs: list[Layer],
                  span: ast.Span, ctx: _Ctx) -> Layer:
        if len(self.net) - self._input_declared >= self._stop_at and not (op is not None and op.source):
            self._limit_passed(f"the net has more than {self.max_layers:,} layers", span)
            raise _Abort
        if len(name) > MAX_NAME_LENGTH:
            self._name_too_long(name, span)
        layer = self.net.add(Layer(name, op, attrs, inputs, span, ctx.train_only, ctx.site,
                                   self.scopes.get(name.rpartition(".")[0])))
        if not self._shapes.layer(layer) and self.bag.full:
            self.bag.truncated = True
            raise _Abort
        return layer

    def _needs_input(self, current: Optional[Layer], span: ast.Span) -> bool:
        """False when there is no tensor to apply a layer to. That is a mistake only before
        the input declaration; otherwise an earlier error broke the chain and was reported."""
        if current is None and not self._input_declared and not self._missing_input_reported:
            self._missing_input_reported = True
            self._error(codes.INPUT_DECLARATION, "a layer comes before the input declaration", span,
                        help="start the net's body with the input shape, e.g. `input 3x224x224`")
        return current is not None

    # -- calls --------------------------------------------------------------------------

    def _call(self, call: ast.Call, current: Optional[Layer], ctx: _Ctx, following,
              local: Optional[str] = None) -> Optional[Layer]:
        """An op or block call; `local` is its name when the caller has already chosen it."""
        if call.name in self.blocks:
            return self._expand_block(call, current, ctx, local)
        if self._cut(call):  # a part cut out after a syntax error, or a block that was
            return self._broken(call, current, ctx, local)
        spec = REGISTRY.get(call.name)
        if spec is None or spec.join or spec.source:  # joins take branches; the input is a keyword
            if ctx.site is None:  # inside blocks, _check_blocks has reported it already
                self._unknown_op(call, following)
            return self._broken(call, current, ctx, local)
        local = local or self._local_name(call, spec.name, ctx)
        attrs = self._bind_op(spec, call, ctx.env)
        if not self._needs_input(current, call.span):
            return None
        return self._add_layer(ctx.full(local), spec, attrs, [current], call.span, ctx)

    def _cut(self, call: ast.Call) -> bool:
        """Does the call stand for a part cut out after a syntax error (a placeholder, or a
        block whose definition was cut)? It is then a broken layer, reported by the syntax error."""
        if call.name == PLACEHOLDER:
            return (call.span.line, call.span.column) in self.damage.placeholders
        return call.name in self.damage.definitions

    def _broken(self, call: ast.Call, current: Optional[Layer], ctx: _Ctx, local: Optional[str]) -> Optional[Layer]:
        """A layer that cannot be made: kept in the net (its name stays taken, later layers
        still connect) with no attributes, so nothing after it is checked against it."""
        local = local or self._local_name(call, call.name, ctx)
        if current is None:
            return None
        return self._add_layer(ctx.full(local), None, None, [current], call.span, ctx)

    def _unknown_join(self, join: ast.Join) -> None:
        joins = [n for n, s in REGISTRY.items() if s.join]
        what = "an op, not a join" if join.kind in REGISTRY or join.kind in self.blocks else "no join"
        self._error(codes.UNKNOWN_OP, f"`{join.kind}` is {what}" if what != "no join" else f"no join named `{join.kind}`",
                    join.name_span, help=lambda: did_you_mean(join.kind, joins) or
                    "joins are " + name_list(joins) + "; they take branches `{ a | b }`")

    def _unknown_op(self, call: ast.Call, following) -> None:
        if call.name in REGISTRY and REGISTRY[call.name].join:
            self.bag.error(codes.UNKNOWN_OP, f"`{call.name}` is a join: it takes branches", call.name_span,
                           help=f"write `{call.name} {{ a | b }}`, each branch a chain of layers")
            if self.bag.full:
                self.bag.truncated = True
                raise _Abort
            return

        def help_() -> str:  # made only for a report the bag keeps
            known = [n for n, s in REGISTRY.items() if not s.join and not s.source] + list(self.blocks)
            hint = did_you_mean(call.name, known)
            if hint is None and not call.args and isinstance(following, ast.Call) and following.label is None:
                hint = f"to name a layer, write a colon after the name: `{call.name}: {following.name}(...)`"
            return hint or "ops: " + name_list(sorted(known), limit=60)

        self.bag.error(codes.UNKNOWN_OP, f"unknown op `{call.name}`", call.name_span, help=help_)
        if self.bag.full:
            self.bag.truncated = True
            raise _Abort

    def _bind_op(self, spec: OpSpec, call: ast.Call, env: Mapping[str, Any]) -> Optional[dict]:
        signature = self._signatures.get(spec.name)
        if signature is None:
            signature = self._signatures[spec.name] = ([a.name for a in spec.attrs],
                                                       sum(1 for a in spec.attrs if a.positional))
        names, positional = signature
        args = call.args
        if positional and spec.attrs[positional - 1].rest:  # ops-misc (issue 11): `split(16, 48)`
            args = _collect_rest(args, positional - 1)
        bound = bind(spec.name, names, positional, args, self._error)
        if bound is None:
            return None
        attrs: dict[str, Any] = {}
        ok = True
        for attr in spec.attrs:
            arg = bound.get(attr.name)
            if arg is None:
                if attr.default is REQUIRED:
                    what = f" ({attr.doc})" if attr.doc else ""
                    self._error(codes.MISSING_ARGUMENT, f"`{spec.name}` needs `{attr.name}`{what}", call.span,
                                help=f"e.g. `{spec.name}({', '.join(_required(spec))})`")
                    ok = False
                    continue
                if ok:
                    attrs[attr.name] = attr.default_for(attrs) if callable(attr.default) else \
                        self._convert(attr, attr.default)
                continue
            value = self._eval(arg.value, env)
            if value is POISON:
                ok = False
                continue
            symbols = getattr(attr.type, "symbols", ())
            if isinstance(value, Symbol) and value.name not in symbols:
                via = arg.value.name if isinstance(arg.value, ast.NameRef) and arg.value.name != value.name else None
                self._error(codes.UNDEFINED_NAME, f"undefined name `{value}`" + (f" (the value of `{via}`)" if via else ""),
                            arg.value.span, help=lambda: did_you_mean(value.name, [*env, *symbols]))
                ok = False
                continue
            try:
                attrs[attr.name] = self._convert(attr, value)
            except AttrError as e:
                self._error(e.code, f"{e.message} (in `{spec.name}`)", arg.value.span)
                ok = False
        return attrs if ok else None

    def _convert(self, attr, value: Any) -> Any:
        """`attr.type.convert(value)`, remembered for plain values (a failure is not). Tuples only
        of ints: `(1, true) == (1, 1)`, and one must not stand for the other."""
        kind = value.__class__
        if not (kind in _PLAIN or kind is tuple and all(x.__class__ is int for x in value)):
            return attr.type.convert(value, attr.name)
        key = (id(attr), kind, value)
        converted = self._converted.get(key, _MISSING)
        if converted is _MISSING:
            converted = self._converted[key] = attr.type.convert(value, attr.name)
        return converted

    def _expand_block(self, call: ast.Call, current: Optional[Layer], ctx: _Ctx,
                      local: Optional[str] = None) -> Optional[Layer]:
        block = self.blocks[call.name]
        if block.name in self.recursive:  # reported by _check_blocks
            return self._broken(call, current, ctx, local)
        local = local or self._local_name(call, block.name, ctx)
        names = self._signatures.get(block.name)  # (blocks and ops have distinct names)
        if names is None:
            names = self._signatures[block.name] = [p.name for p in block.params]
        bound = bind(block.name, names, len(names), call.args, self._error)
        # the body sees its input's sizes, unless a parameter takes the name
        env: dict[str, Any] = input_names(current.shape if current is not None else None)
        ok = bound is not None
        for p in block.params:
            if not ok:
                break
            if p.name in bound:
                value = self._eval(bound[p.name].value, ctx.env)
            elif p.default is not None:
                value = self._value(p.default, env, p.name, block.params)
            else:
                self._error(codes.MISSING_ARGUMENT, f"block `{block.name}` needs `{p.name}`", call.span,
                            notes=[Note(f"`{block.name}` is defined here", block.name_span)])
                value = POISON
            ok = value is not POISON
            env[p.name] = value
        if not ok:
            return self._broken(call, current, ctx, local)
        title = f"{block.name}({', '.join(fmt_value(env[p.name]) for p in block.params)})"
        path = ctx.full(local)
        scope = self._scope(path, "block", title, call.span, ctx, block.name)
        scope.arguments = env  # (shared, not copied: an instance costs a slot more, no dict)
        inner = ctx.child(local, self._reserved(block.body), env=env, site=(path, call.span))
        outer, self._site = self._site, inner.site  # errors in the body name this use
        try:
            scope.output = self._chain(block.body, current, inner)
        finally:
            self._site = outer
        return scope.output

    # -- structure ----------------------------------------------------------------------

    def _join(self, join: ast.Join, current: Optional[Layer], ctx: _Ctx) -> Optional[Layer]:
        """A join: its branches, each from the current tensor, and the join layer over their ends.

        A labelled join is a scope of its own, and so is an unlabelled one in a seq, under its
        number (the seq's child k, as in PyTorch); another unlabelled one names its branches
        here. Each branch is a scope (`branch1`, `branch2`, ...) unless the join is `inline`:
        then the branches' layers are named in the join's scope (labelled) or in this one, all
        in one context, so a label used in two branches is a duplicate (both sites named), and
        in a seq the branches' unlabelled items take numbers in order, as if written out in
        place, the join layer itself the next number after them."""
        inline = join.inline
        late = inline and join.label is None  # named after its branches, which come first
        local = None if late else self._local_name(join, join.kind, ctx)
        if len(join.branches) < 2:
            self._error(codes.MISPLACED, f"`{join.kind}` needs at least two branches, separated by `|`", join.span)
        home = ctx
        if join.label is not None or (ctx.seq and not inline):
            home = ctx.child(local, self._reserved_all(join.branches) if inline else _NO_LABELS)
            self._scope(home.path, "join", join.kind, join.span, ctx)
        # ops-misc (issue 11): a join that forks its input (`split`) binds its arguments before its
        # branches, for the layer (OpSpec.fork) that hands each branch its part of the input
        spec = REGISTRY.get(join.kind)
        forks = spec is not None and spec.join and spec.fork is not None
        if forks:
            attrs = self._bind_op(spec, ast.Call(join.kind, join.args, None, join.span, join.name_span), ctx.env)
            parts = self._fork(spec, attrs, join)
            # the parts are made beside the branches, before them: a diagram draws them as one mark
            # at the fork. No parts (a mistake, reported): the branches have no input, and stay unchecked.
            starts = [None if parts is None or current is None or self._from_in_fork(join, branch) else
                      self._add_layer(home.full(home.auto(op.name)), op, part, [current], _args_span(join), home)
                      for (op, part), branch in zip(parts or [(None, None)] * len(join.branches), join.branches)]
        ends = []
        for i, branch in enumerate(join.branches):
            start = starts[i] if forks else current
            if inline:
                ends.append(self._chain(branch, start, home))
                continue
            name = home.auto("branch")
            scope = self._scope(home.full(name), "branch", f"{join.kind} branch", _extent(branch), ctx)
            # a branch that makes no layer (`repeat 0`, an `if` that does not hold, `from x` alone)
            # is the identity, as an empty body is anywhere: its scope stands for its input
            end = scope.output = self._chain(branch, start, home.child(name, self._reserved(branch)))
            ends.append(end)
        if late:
            local = self._local_name(join, join.kind, ctx)
        if not self._needs_input(current, join.span):
            return None
        if spec is None or not spec.join:
            attrs = None
            if ctx.site is None:  # inside blocks, _check_blocks has reported it already
                self._unknown_join(join)
            spec = None
        elif not forks:
            attrs = self._bind_op(spec, ast.Call(join.kind, join.args, None, join.span, join.name_span), ctx.env)
        ok = all(e is not None for e in ends)
        return self._add_layer(ctx.full(local), spec, attrs if ok else None,
                              [e for e in ends if e is not None], join.span, ctx)

    def _from_in_fork(self, join: ast.Join, branch: tuple[ast.Item, ...]) -> bool:
        """ops-misc (issue 11): a branch of a forking join takes its part of the join's input, so
        `from` cannot start it (reported)."""
        if not (branch and isinstance(branch[0], ast.From)):
            return False
        self._error(codes.MISPLACED, f"a `{join.kind}` branch takes its part of the input: it cannot start with `from`",
                    branch[0].span, help="use `concat` to join a branch that reads another layer")
        return True

    def _fork(self, spec: OpSpec, attrs: Optional[dict], join: ast.Join) -> Optional[list[tuple[OpSpec, dict]]]:
        """ops-misc (issue 11): the (op, attributes) of the layer that starts each branch of a
        forking join; None when the join's arguments are wrong (reported)."""
        if attrs is None:
            return None
        parts = []
        for i in range(len(join.branches)):
            try:
                name, part = spec.fork(attrs, i, len(join.branches))
            except AttrError as e:
                self._error(e.code, e.message, _args_span(join))
                return None
            parts.append((REGISTRY[name], part))
        return parts

    def _repeat(self, rep: ast.Repeat, current: Optional[Layer], ctx: _Ctx) -> Optional[Layer]:
        count = self._repeat_count(rep, ctx)
        if count is None:
            return current
        # Passes that add no layer end the repeat early: the others would add none either, as
        # each pass sees what the one before saw, unless it counts its passes (`as i`).
        same_passes = rep.var is None

        def env_of(i: int) -> Mapping[str, Any]:
            return ctx.env if rep.var is None else {**ctx.env, rep.var: i}

        if rep.label is None:  # inline: the passes' layers join this scope
            # one context for every pass (it shares the scope's names), its `as` name set per pass
            inner = ctx if rep.var is None else replace(ctx)
            for i in range(count):
                before, made = len(self.net), (self._made() if i == 0 else None)
                if rep.var is not None:
                    inner.env = env_of(i)
                current = self._chain(rep.body, current, inner)
                if len(self.net) == before and i >= 1 and same_passes:
                    break
                if i == 0:
                    self._check_repeat_size(rep, count, made)
            return current
        local = self._local_name(rep, "repeat", ctx)
        home = ctx.child(local)
        scope = self._scope(home.path, "repeat", f"repeat {count}", rep.span, ctx)
        for i in range(1, count + 1):
            home.names[str(i)] = rep.span
            before, made = len(self.net), (self._made() if i == 1 else None)
            one = self._scope(home.full(str(i)), "pass", f"pass {i} of {count}", rep.span, ctx)
            current = one.output = self._chain(rep.body, current, home.child(str(i), self._reserved(rep.body),
                                                                              env=env_of(i - 1)))
            if len(self.net) == before and i >= 2 and same_passes:
                break
            if i == 1:
                self._check_repeat_size(rep, count, made)
        scope.output = current
        return current

    def _made(self) -> tuple[int, int, int]:
        """Layers (the input aside), scopes and steps so far."""
        return len(self.net) - self._input_declared, len(self.scopes), self.steps

    def _check_repeat_size(self, rep: ast.Repeat, count: int, before: tuple[int, int, int]) -> None:
        """After the first pass, refuse at once a repeat whose passes would pass the layer
        limit, or the scope or step limit (every pass costs as much as the first), rather than
        expanding up to it."""
        if self._varying:
            # passes may differ (`if`, `as i`, conditions on `in_*`): the first tells nothing
            # of the others, and the limits are enforced as layers, scopes and steps are made
            return
        (layers, scopes, steps), (layers0, scopes0, steps0) = self._made(), before
        per_pass = layers - layers0
        if layers + (count - 1) * per_pass > self.max_layers:
            self._limit_passed(f"`repeat {count:,}` of {per_pass:,} layer{'s' if per_pass != 1 else ''} "
                               f"would make the net larger than the limit of {self.max_layers:,} layers",
                               rep.count.span)
            raise _Abort
        if per_pass == 0:
            return  # a pass that makes no layer is the last but one (see _repeat)
        for what, now, per_pass, limit in (("scopes", scopes, scopes - scopes0, self.max_scopes),
                                           ("steps of expansion", steps, steps - steps0, self.max_steps)):
            if now + (count - 1) * per_pass > limit:
                self._limit_passed(f"`repeat {count:,}` would make more than the limit of {limit:,} {what} "
                                   f"({per_pass:,} a pass)", rep.count.span)
                raise _Abort

    def _name_too_long(self, name: str, span: ast.Span) -> None:
        """Stop at a dotted name past the limit: every layer inside it would have a longer one."""
        self._error(codes.NAME_TOO_LONG, f"the name `{name[:60]}...` is {len(name):,} characters long; names "
                    f"are at most {MAX_NAME_LENGTH:,}", span,
                    help="a name holds the labels of every scope around it (`stage1.block2.conv1`): use shorter "
                         "labels, or nest fewer of them")
        raise _Abort

    def _spend(self, steps: int, span: ast.Span) -> None:
        """Count steps of expansion (items lowered, terms evaluated) and stop past the limit."""
        self.steps += steps
        if self.steps > self._stop_steps:
            self._limit_passed(f"expanding the net's blocks and repeats takes more than {self.max_steps:,} steps "
                               "(items lowered and terms of expressions evaluated)", span)
            raise _Abort

    def _limit_passed(self, message: str, span: ast.Span) -> None:
        """Report (once) that the net passes the layer limit."""
        if not self._limit_reported:
            self._limit_reported = True
            self._error(codes.NET_TOO_LARGE, message, span,
                        help="the limit guards against runaway repeats and blocks; raise it with `max_layers=` "
                             "or `--max-layers` if the net is really this large (the limits on scopes and steps "
                             "grow with it)")

    def _repeat_count(self, rep: ast.Repeat, ctx: _Ctx) -> Optional[int]:
        count = self._eval(rep.count, ctx.env)
        if count is POISON:
            return None
        if isinstance(count, Symbol):
            self._error(codes.UNDEFINED_NAME, f"undefined name `{count}`", rep.count.span, help=lambda: did_you_mean(count.name, ctx.env))
            return None
        if isinstance(count, bool) or not isinstance(count, int):
            self._error(codes.WRONG_TYPE, f"`repeat` expects an integer count, got {fmt_value(count)}", rep.count.span)
            return None
        if count < 0:
            self._error(codes.OUT_OF_RANGE, f"`repeat` count must be at least 0, got {count}", rep.count.span)
            return None
        if not rep.body and rep.label is None:
            return None  # nothing, any number of times: the input passed on
        return count

    def _head(self, head: ast.Head, current: Optional[Layer], ctx: _Ctx) -> None:
        source = current
        if head.source is not None:
            source = self._resolve(head.source, head.source_span, ctx)
            if source is None:
                return
        train_only = head.train_only or ctx.train_only
        if not train_only and source is not None and source.train_only:
            self._error(codes.MISPLACED, f"a deploy head cannot read `{source.name}`, which exists in training only",
                        head.source_span if head.source is not None else head.span,
                        help="make it a `train head`, or tap a layer outside the train head")
            return
        index = len(self.outputs)  # the head's output comes before any head nested in it
        inner_ctx = replace(ctx, train_only=train_only)
        if isinstance(head.body, ast.Call):  # `aux1: head f(x)`: the call is named by the head
            call = replace(head.body, label=head.label, label_span=head.label_span)
            local = self._local_name(call, call.name, ctx, numbered=False)
            end = self._call(call, source, inner_ctx, None, local)
        else:
            local = self._local_name(head, "head", ctx, numbered=False)
            scope = self._scope(ctx.full(local), "head", "train head" if train_only else "head", head.span, inner_ctx)
            inner = ctx.child(local, self._reserved(head.body), train_only=train_only)
            end = scope.output = self._chain(head.body, source, inner)
        if end is not None and end != source:
            self.outputs.insert(index, ir.Output(ctx.full(local), end, train_only))
        elif source is not None and end == source:
            self._error(codes.MISPLACED, "a head needs at least one layer", head.span)

    def _resolve(self, name: str, span: ast.Span, ctx: _Ctx) -> Optional[Layer]:
        """A layer named from inside a scope: looked up here first, then in enclosing scopes.
        A scope (a block instance, say) stands for the end of its main chain."""
        here = self.scopes.get(ctx.path)
        around = here.ancestors() if here is not None else []
        # a block's body sees its own layers only, as it sees its own parameters only
        floor = self.scopes[ctx.site[0]].level if ctx.site else 0
        prefixes = [f"{scope.name}." for scope in reversed(around) if scope.level >= floor] + [""] * (floor == 0)
        for prefix in prefixes:
            candidate = prefix + name
            if candidate in self.net.layers:
                return self.net.layers[candidate]
            if candidate in self.scopes and self.scopes[candidate].output is not None:
                return self.scopes[candidate].output
        self._error(codes.UNDEFINED_NAME, f"no layer `{name}` before this point", span,
                    help=lambda: did_you_mean(name, (layer.name for layer in self.net.body())))
        return None



def _items_in(items: Iterable[ast.Item]) -> Iterator[ast.Item]:
    """Every item written in a body, however deeply nested."""
    stack = list(items)
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, ast.Join):
            for branch in item.branches:
                stack.extend(branch)
        elif isinstance(item, ast.Head):
            stack.extend([item.body] if isinstance(item.body, ast.Call) else item.body)
        elif isinstance(item, (ast.Repeat, ast.Group)):
            stack.extend(item.body)
        elif isinstance(item, ast.If):
            for body in _if_bodies(item):
                stack.extend(body)


def _expressions_in(item: ast.Item) -> Iterator[ast.Expr]:
    """The expressions written in one item (not in the items inside it)."""
    if isinstance(item, (ast.Call, ast.Join)):
        yield from (a.value for a in item.args)
    elif isinstance(item, ast.Repeat):
        yield item.count
    elif isinstance(item, ast.If):
        yield from (cond for cond, _ in item.arms)


def _has_conditions(program: ast.Program) -> bool:
    """Does the file use anything that can make two passes of a repeat differ: an `if`, a
    repeat that counts its passes, a conditional expression, an `in_*` name? One pass over it."""
    for d in program.definitions:
        exprs = [p.default for p in d.params if p.default is not None]
        for item in _items_in(d.body):
            if isinstance(item, ast.If) or (isinstance(item, ast.Repeat) and item.var is not None):
                return True
            exprs.extend(_expressions_in(item))
        for e in (sub for expr in exprs for sub in subexpressions(expr)):
            if isinstance(e, ast.Conditional) or (isinstance(e, ast.NameRef) and e.name in INPUT_NAMES):
                return True
    return False


def _collect_rest(args: tuple[ast.Arg, ...], at: int) -> tuple[ast.Arg, ...]:
    """ops-misc (issue 11): the positional arguments from the `at`-th on as one tuple argument,
    for an attribute that collects them (`Attr.rest`: `split(16, 48)`)."""
    plain = [i for i, a in enumerate(args) if a.name is None]
    if len(plain) <= at + 1:  # one value: the attribute's type takes it as it is (`split(x)`: undefined)
        return args
    rest = [args[i] for i in plain[at:]]
    first, last = rest[0].span, rest[-1].span
    span = ast.Span(first.line, first.column, last.end_line, last.end_column)
    packed = ast.Arg(None, ast.TupleLit(tuple(a.value for a in rest), span), span)
    dropped = set(plain[at + 1:])
    return tuple(packed if i == plain[at] else a for i, a in enumerate(args) if i not in dropped)


def _args_span(join: ast.Join) -> ast.Span:
    """A join's name and arguments: `split(16, 48)`."""
    name = join.name_span
    if not join.args:
        return name
    end = join.args[-1].span
    return ast.Span(name.line, name.column, end.end_line, end.end_column + 1)  # the closing bracket


def _required(spec: OpSpec) -> list[str]:
    return [a.name for a in spec.attrs if a.default is REQUIRED]


def _extent(items: tuple[ast.Item, ...]) -> ast.Span:
    if not items:
        return ast.NOWHERE
    a, b = items[0].span, items[-1].span
    return ast.Span(a.line, a.column, b.end_line, b.end_column)


def lower(program: ast.Program, bag: DiagnosticBag, overrides: Optional[Mapping[str, Any]] = None,
          max_layers: int = DEFAULT_MAX_LAYERS, damage: Optional[Damage] = None) -> Optional[ir.Net]:
    """Lower a parsed file to its IR, recording every mistake in `bag`; `damage` says what the
    parser cut out of a file with syntax errors (see `parser.parse_recovering`)."""
    try:
        return Lowerer(program, bag, overrides or {}, max_layers, damage).run()
    except _Abort:  # too many errors before the net's body: nothing more is worth checking
        return None
