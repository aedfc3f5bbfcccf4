"""Syntax tree to layer graph: blocks and repeats expanded, expressions evaluated, arguments
bound and type-checked against the op registry, every layer given its dotted scope name.

The result is a `LayerGraph` (netdsl/graph.py): one node per layer, keyed by its dotted
name, added in topological order (each layer after the layers it reads). Lowering never
stops at the first mistake: it records a diagnostic, puts an erroneous layer in the graph (so
names and later layers still resolve) and goes on; a value that failed to evaluate is POISON,
which later uses pass on without reporting again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping, Optional

from . import ast
from .diagnostics import DiagnosticBag, Note, did_you_mean
from .graph import LayerGraph
from .ops import REGISTRY, REQUIRED, AttrError, OpSpec, Symbol, fmt_value
from .parser import KEYWORDS, MAX_NESTING

DEFAULT_MAX_LAYERS = 100_000
# Once a net is known to pass the layer limit, lowering goes on only this far: enough for the
# errors among the first layers and for a partial net to draw, never the whole limit's worth.
PARTIAL_LAYERS = 1_000
MAX_INT_BITS = 256  # no size in a net comes near; bigger numbers only arise from mistakes


@dataclass
class Scope:
    """A named group of layers: a block instance, a repeat and each of its passes, a branch,
    a head or a group. `title` is how summaries and diagrams show it; `output` is the layer
    whose output the scope stands for: the end of its main chain (not of a head inside it)."""

    name: str
    kind: str  # "block", "repeat", "pass", "branch", "join", "head", "group"
    title: str
    span: ast.Span
    train_only: bool = False
    block: Optional[str] = None
    output: Optional[str] = None


@dataclass(frozen=True)
class Output:
    """An output of the net: the main chain's last layer, or a head."""

    name: str
    node: str
    train_only: bool = False


@dataclass
class LoweredNet:
    name: str
    params: dict[str, Any]
    input_shape: Optional[tuple[int, ...]]
    graph: LayerGraph
    scopes: dict[str, Scope]
    outputs: list[Output]


class _Abort(Exception):
    """Stops lowering when going on would only produce noise (the net is too large)."""


class _Poison:
    """The value of an expression that failed; its error is already reported."""

    def __repr__(self) -> str:
        return "POISON"


POISON = _Poison()


class _Poisoned(Exception):
    """Evaluating used a POISON value: fail quietly, the cause is already reported."""


class _EvalError(Exception):
    def __init__(self, code: str, message: str, span: ast.Span, help: Optional[str] = None):
        super().__init__(message)
        self.code, self.message, self.span, self.help = code, message, span, help


# --- expressions -------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def evaluate(expr: ast.Expr, env: Mapping[str, Any]) -> Any:
    """The value of an expression: int, float, bool, tuple, or a `Symbol` for a bare word
    that is not a parameter (the attribute it is given to decides whether that is allowed)."""
    if isinstance(expr, (ast.IntLit, ast.FloatLit, ast.BoolLit)):
        return expr.value
    if isinstance(expr, ast.ShapeLit):
        return expr.dims
    if isinstance(expr, ast.NameRef):
        if expr.name not in env:
            return Symbol(expr.name)
        if env[expr.name] is POISON:
            raise _Poisoned
        return env[expr.name]
    if isinstance(expr, ast.TupleLit):
        return tuple(evaluate(e, env) for e in expr.items)
    if isinstance(expr, ast.Neg):
        v = _operand(expr.operand, env)
        return -v
    assert isinstance(expr, ast.BinOp)
    a, b = _operand(expr.left, env), _operand(expr.right, env)
    try:
        result = _arithmetic(expr.op, a, b)
    except ZeroDivisionError:
        raise _EvalError("E307", f"division by zero in `{expr.op}`", expr.span) from None
    except OverflowError:  # a float result out of range, from huge integers
        raise _EvalError("E307", f"the result of `{expr.op}` is too large", expr.span) from None
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise _EvalError("E307", f"the result of `{expr.op}` is too large", expr.span)
    return result


def _arithmetic(op: str, a, b):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        # Exact integer division stays an integer, so `c / 2` can be a channel count.
        return a // b if isinstance(a, int) and isinstance(b, int) and b and a % b == 0 else a / b
    return a // b if op == "//" else a % b


def _operand(expr: ast.Expr, env: Mapping[str, Any]) -> Any:
    v = evaluate(expr, env)
    if isinstance(v, Symbol):
        raise _EvalError("E202", f"undefined name `{v}`", expr.span, did_you_mean(v.name, env))
    if not _is_number(v):
        raise _EvalError("E305", f"arithmetic needs numbers, got `{fmt_value(v)}`", expr.span)
    return v


# --- binding arguments -------------------------------------------------------------------

def _bind(what: str, names: list[str], positional: int, args: Iterable[ast.Arg],
          error) -> Optional[dict[str, ast.Arg]]:
    """Match a call's arguments to the callee's parameter names (the first `positional` of
    them may be given by position). None when the call is wrong; diagnostics say why."""
    bound: dict[str, ast.Arg] = {}
    ok, seen_keyword, index = True, False, 0
    for arg in args:
        if arg.name is None:
            if seen_keyword:
                error("E303", f"positional argument after a keyword argument in `{what}`", arg.span,
                          help="give the keyword arguments last")
                ok = False
            elif index >= positional:
                takes = f"takes {positional} positional argument{'s' if positional != 1 else ''}"
                error("E303", f"`{what}` {takes}", arg.span,
                          help=("name the others: " + ", ".join(f"`{n}=...`" for n in names[positional:]))
                          if len(names) > positional else None)
                ok = False
            else:
                bound[names[index]] = arg
            index += 1
            continue
        seen_keyword = True
        if arg.name not in names:
            error("E301", f"`{what}` has no argument `{arg.name}`", arg.span,
                      help=did_you_mean(arg.name, names) or (f"it takes {', '.join(f'`{n}`' for n in names)}"
                                                            if names else f"`{what}` takes no arguments"))
            ok = False
        elif arg.name in bound:
            error("E304", f"argument `{arg.name}` of `{what}` is given twice", arg.span,
                      notes=[Note("given first here", bound[arg.name].span)])
            ok = False
        else:
            bound[arg.name] = arg
    return bound if ok else None


# --- scopes while lowering ---------------------------------------------------------------

def _labels_in(items: Iterable[ast.Item]) -> Iterator[str]:
    """Labels written directly in this scope (an unlabelled repeat inlines its body)."""
    for item in items:
        label = getattr(item, "label", None)
        if label is not None:
            yield label
        elif isinstance(item, ast.Repeat):
            yield from _labels_in(item.body)


@dataclass
class _Ctx:
    path: str                      # dotted prefix of names made here ("" at the top)
    env: Mapping[str, Any]         # parameters visible here
    reserved: frozenset            # labels written in this scope: automatic names avoid them
    train_only: bool = False
    site: Optional[tuple[str, ast.Span]] = None  # (block instance, its call) when inside a block
    names: dict[str, ast.Span] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    top: bool = False

    def full(self, local: str) -> str:
        return f"{self.path}.{local}" if self.path else local

    def child(self, local: str, items: Iterable[ast.Item], **changes) -> "_Ctx":
        return _Ctx(self.full(local), changes.get("env", self.env), frozenset(_labels_in(items)),
                    changes.get("train_only", self.train_only), changes.get("site", self.site))

    def auto(self, kind: str) -> str:
        """The next free automatic name for `kind` here: conv1, conv2, ..."""
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
                 max_layers: int = DEFAULT_MAX_LAYERS):
        self.program, self.bag, self.overrides, self.max_layers = program, bag, overrides, max_layers
        self._stop_at = max_layers  # layers made before lowering stops
        self._limit_reported = False
        self.graph = LayerGraph()
        self.scopes: dict[str, Scope] = {}
        self.outputs: list[Output] = []
        self.blocks: dict[str, ast.BlockDef] = {}
        self.recursive: set[str] = set()  # blocks on a call cycle: reported once, never expanded
        self.input_shape: Optional[tuple[int, ...]] = None
        self._missing_input_reported = False
        self._input_declared = False
        self._site: Optional[tuple[str, ast.Span]] = None
        self._depth = 0  # chains being lowered, one inside another

    def _error(self, code: str, message: str, span: ast.Span = ast.NOWHERE, *,
               notes: Iterable[Note] = (), help: Optional[str] = None) -> None:
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

    def run(self) -> Optional[LoweredNet]:
        nets = [d for d in self.program.definitions if isinstance(d, ast.NetDef)]
        for d in self.program.definitions:
            if isinstance(d, ast.BlockDef):
                self._define_block(d)
        self._check_blocks()
        if len(nets) != 1:
            end = self.program.span  # with no net, point at the end of the file, where one could go
            where = nets[1].name_span if nets else ast.Span(end.end_line, end.end_column, end.end_line,
                                                            end.end_column + 1)
            self._error("E206", "a file defines exactly one net" + (f", this one defines {len(nets)}" if nets else
                                                                     ", this one defines none"), where,
                        help=None if nets else "add `net NAME { input CxHxW ... }`")
            if not nets:
                return None
        net = nets[0]
        params = self._net_params(net)
        if self._too_large(net, params):
            self._stop_at = min(self.max_layers, PARTIAL_LAYERS)
        ctx = _Ctx("", params, frozenset(_labels_in(net.body)), top=True)
        try:
            last = self._chain(net.body, None, ctx)
        except _Abort:
            last = None
        if not self._input_declared and not any(d.code == "E406" for d in self.bag.items):
            self._error("E406", f"net `{net.name}` has no input declaration", net.name_span,
                        help="start its body with the input shape, e.g. `input 3x224x224`")
        if last is not None:
            self.outputs.insert(0, Output(last.split(".")[0], last, False))
        return LoweredNet(net.name, params, self.input_shape, self.graph, self.scopes, self.outputs)

    def _too_large(self, net: ast.NetDef, params: Mapping[str, Any]) -> bool:
        """Refuse at once (E407) a net whose layers surely pass the limit, at the top-level item
        that passes it, rather than after making the first `max_layers` of them."""
        if not (net.body and isinstance(net.body[0], ast.InputDecl)):
            return False  # a net without its input is reported as such
        bound, total = _LayerBound(self.blocks, self.recursive), 0
        for item in net.body:
            total += bound.item(item, params)
            if total > self.max_layers:
                where = item.count.span if isinstance(item, ast.Repeat) else item.span
                self._limit_passed(f"the net has more than {self.max_layers:,} layers: {total:,} at least, "
                                   "by here", where)
                return True
        return False

    def _define_block(self, d: ast.BlockDef) -> None:
        if d.name in self.blocks:
            self._error("E203", f"block `{d.name}` is defined twice", d.name_span,
                        notes=[Note("first defined here", self.blocks[d.name].name_span)])
        elif d.name in REGISTRY or d.name in KEYWORDS:
            what = "a built-in op" if d.name in REGISTRY else "a keyword"
            self._error("E203", f"block `{d.name}` has the name of {what}", d.name_span,
                        help="choose another name")
        else:
            self.blocks[d.name] = d
        self._check_params(d.params)

    def _check_blocks(self) -> None:
        """What can be checked in a block before it is used, so that a block no net uses yet
        is checked too: the names it calls, and calls that come back to it (E204)."""
        calls = {name: [i for i in _items_in(b.body) if isinstance(i, ast.Call)] for name, b in self.blocks.items()}
        known = set(REGISTRY) | set(self.blocks)
        for name, block_calls in calls.items():
            for call in block_calls:
                if call.name not in known:
                    self._unknown_op(call, None)
            for item in _items_in(self.blocks[name].body):
                if isinstance(item, ast.InputDecl):
                    self._error("E406", "the input belongs in the net's body, not in a block", item.span)
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
                    self._error("E204", f"block `{call.name}` calls itself ({' -> '.join(cycle)})", call.span,
                                notes=[Note(f"`{call.name}` is defined here", self.blocks[call.name].name_span)],
                                help="a block cannot contain itself; use `repeat` for a chain of copies")
                elif call.name in self.blocks and call.name not in done:
                    visit(call.name)
            path.pop()
            done.add(name)

        for name in self.blocks:
            if name not in done:
                visit(name)

    def _check_params(self, params: Iterable[ast.Param]) -> None:
        seen: dict[str, ast.Span] = {}
        for p in params:
            if p.name in seen:
                self._error("E203", f"parameter `{p.name}` is declared twice", p.span,
                            notes=[Note("first declared here", seen[p.name])])
            seen[p.name] = p.span

    def _net_params(self, net: ast.NetDef) -> dict[str, Any]:
        self._check_params(net.params)
        names = [p.name for p in net.params]
        for key in self.overrides:
            if key not in names:
                self._error("E205", f"net `{net.name}` has no parameter `{key}`",
                            help=did_you_mean(key, names) or (
                                f"its parameters are {', '.join(f'`{n}`' for n in names)}" if names
                                else f"`{net.name}` declares no parameters"))
        env: dict[str, Any] = {}
        for p in net.params:
            if p.name in self.overrides:
                env[p.name] = self._override(p, self.overrides[p.name])
            elif p.default is None:
                self._error("E302", f"parameter `{p.name}` of net `{net.name}` has no default", p.span,
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
            self._error("E305", f"parameter `{p.name}` is set to {value!r}; it takes a number, "
                        "true or false, or a shape like 3x3", p.span)
            return POISON
        return value

    def _value(self, expr: ast.Expr, env: Mapping[str, Any], name: str,
               params: Iterable[ast.Param]) -> Any:
        """A parameter's default: a value, a bare word (checked where it is used), or POISON.
        A parameter of the same definition declared after this one is reported here."""
        value = self._eval(expr, env)
        if isinstance(value, Symbol) and isinstance(expr, ast.NameRef) and value.name in {p.name for p in params}:
            self._error("E202", f"`{value}` is used before it is defined",
                        expr.span, help=f"declare `{value}` before `{name}`")
            return POISON
        return value

    def _eval(self, expr: ast.Expr, env: Mapping[str, Any]) -> Any:
        """The value, or POISON after reporting why there is none."""
        try:
            return evaluate(expr, env)
        except _Poisoned:
            return POISON
        except _EvalError as e:
            self._error(e.code, e.message, e.span, help=e.help)
            return POISON

    # -- chains -------------------------------------------------------------------------

    def _chain(self, items: tuple[ast.Item, ...], current: Optional[str], ctx: _Ctx) -> Optional[str]:
        """Lower items one after another; returns the name of the last layer's output."""
        # Lowering recurses once per level of nesting. The parser bounds the brackets of one
        # definition; blocks using blocks could still nest without end (b1 uses b2 uses b3 ...).
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                self.bag.error("E408", f"blocks and brackets nested more than {MAX_NESTING} levels deep",
                               self._site[1] if self._site else _extent(items),
                               help="a block that uses a block that uses a block ...: flatten some of them")
                raise _Abort
            return self._chain_items(items, current, ctx)
        finally:
            self._depth -= 1

    def _chain_items(self, items: tuple[ast.Item, ...], current: Optional[str], ctx: _Ctx) -> Optional[str]:
        for i, item in enumerate(items):
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
                local = self._local_name(item, "group", ctx)
                scope = self._scope(ctx.full(local), "group", "group", item.span, ctx)
                current = scope.output = self._chain(item.body, current, ctx.child(local, item.body))
        return current

    def _scope(self, path: str, kind: str, title: str, span: ast.Span, ctx: _Ctx,
               block: Optional[str] = None) -> Scope:
        scope = self.scopes[path] = Scope(path, kind, title, span, ctx.train_only, block)
        return scope

    def _input(self, item: ast.InputDecl, ctx: _Ctx, first: bool) -> Optional[str]:
        if ctx.site is not None:
            return None  # inside a block: _check_blocks has reported it
        if not ctx.top or not first or self._input_declared:
            what = "is declared twice" if self._input_declared else \
                "must be the first line of the net's body"
            self._error("E406", f"the input {what}", item.span)
            return None
        self._input_declared = True
        if len(item.dims) not in (1, 3):
            self._error("E404", f"the input is {'x'.join(map(str, item.dims))}; "
                        "write it as C x H x W (an image) or as one size (a vector)", item.span)
            return None
        if min(item.dims) < 1:
            self._error("E306", "every size of the input must be at least 1", item.span)
            return None
        self.input_shape = item.dims
        self._add_node("input", "input", {"shape": item.dims}, [], item.span, ctx)
        return "input"

    def _local_name(self, item, kind: str, ctx: _Ctx) -> str:
        """The item's label, checked to be new in this scope, or an automatic name."""
        label = getattr(item, "label", None)
        if label is None:
            return ctx.auto(kind)
        if label in ctx.names:
            first = ctx.names[label]
            self._error("E203", f"`{ctx.full(label)}` is defined twice", item.label_span,
                        notes=[Note("first defined here", first)] if first.line and first != item.label_span else [],
                        help="labels inside an unlabelled `repeat` clash on each pass: label the repeat "
                             "so each pass gets its own scope" if first == item.label_span else None)
            # keep going under a fresh name so later layers still connect
            return ctx.auto(label + "_")
        ctx.names[label] = item.label_span
        return label

    def _add_node(self, name: str, op: Optional[str], attrs: Optional[dict], inputs: list[str],
                  span: ast.Span, ctx: _Ctx) -> str:
        if len(self.graph) - self._input_declared >= self._stop_at and op != "input":
            self._limit_passed(f"the net has more than {self.max_layers:,} layers", span)
            raise _Abort
        self.graph.add(name, op=op, attrs=attrs, inputs=inputs, span=span, train_only=ctx.train_only,
                       site=ctx.site)
        return name

    def _needs_input(self, current: Optional[str], span: ast.Span) -> bool:
        """False when there is no tensor to apply a layer to. That is a mistake only before
        the input declaration; otherwise an earlier error broke the chain and was reported."""
        if current is None and not self._input_declared and not self._missing_input_reported:
            self._missing_input_reported = True
            self._error("E406", "a layer comes before the input declaration", span,
                        help="start the net's body with the input shape, e.g. `input 3x224x224`")
        return current is not None

    # -- calls --------------------------------------------------------------------------

    def _call(self, call: ast.Call, current: Optional[str], ctx: _Ctx, following,
              local: Optional[str] = None) -> Optional[str]:
        """An op or block call; `local` is its name when the caller has already chosen it."""
        if call.name in self.blocks:
            return self._expand_block(call, current, ctx, local)
        spec = REGISTRY.get(call.name)
        if spec is None or spec.join:  # joins are keywords: only a misspelling gets here
            if ctx.site is None:  # inside blocks, _check_blocks has reported it already
                self._unknown_op(call, following)
            return self._broken(call, current, ctx, local)
        local = local or self._local_name(call, spec.name, ctx)
        attrs = self._bind_op(spec, call, ctx.env)
        if not self._needs_input(current, call.span):
            return None
        return self._add_node(ctx.full(local), spec.name, attrs, [current], call.span, ctx)

    def _broken(self, call: ast.Call, current: Optional[str], ctx: _Ctx, local: Optional[str]) -> Optional[str]:
        """A layer that cannot be made: kept in the graph (its name stays taken, later layers
        still connect) with no attributes, so nothing after it is checked against it."""
        local = local or self._local_name(call, call.name, ctx)
        if current is None:
            return None
        return self._add_node(ctx.full(local), None, None, [current], call.span, ctx)

    def _unknown_op(self, call: ast.Call, following) -> None:
        known = [n for n, s in REGISTRY.items() if not s.join] + list(self.blocks)
        help_ = did_you_mean(call.name, known)
        if help_ is None and not call.args and isinstance(following, ast.Call) and following.label is None:
            help_ = f"to name a layer, write a colon after the name: `{call.name}: {following.name}(...)`"
        self.bag.error("E201", f"unknown op `{call.name}`", call.name_span,
                       help=help_ or "ops: " + ", ".join(sorted(known)))
        if self.bag.full:
            self.bag.truncated = True
            raise _Abort

    def _bind_op(self, spec: OpSpec, call: ast.Call, env: Mapping[str, Any]) -> Optional[dict]:
        names = [a.name for a in spec.attrs]
        positional = sum(1 for a in spec.attrs if a.positional)
        bound = _bind(spec.name, names, positional, call.args, self._error)
        if bound is None:
            return None
        attrs: dict[str, Any] = {}
        ok = True
        for attr in spec.attrs:
            arg = bound.get(attr.name)
            if arg is None:
                if attr.default is REQUIRED:
                    what = f" ({attr.doc})" if attr.doc else ""
                    self._error("E302", f"`{spec.name}` needs `{attr.name}`{what}", call.span,
                                help=f"e.g. `{spec.name}({', '.join(_required(spec))})`")
                    ok = False
                    continue
                if ok:
                    attrs[attr.name] = attr.default_for(attrs)
                continue
            value = self._eval(arg.value, env)
            if value is POISON:
                ok = False
                continue
            symbols = getattr(attr.type, "symbols", ())
            if isinstance(value, Symbol) and value.name not in symbols:
                via = arg.value.name if isinstance(arg.value, ast.NameRef) and arg.value.name != value.name else None
                self._error("E202", f"undefined name `{value}`" + (f" (the value of `{via}`)" if via else ""),
                            arg.value.span, help=did_you_mean(value.name, list(env) + list(symbols)))
                ok = False
                continue
            try:
                attrs[attr.name] = attr.type.convert(value, attr.name)
            except AttrError as e:
                self._error(e.code, f"{e.message} (in `{spec.name}`)", arg.value.span)
                ok = False
        return attrs if ok else None

    def _expand_block(self, call: ast.Call, current: Optional[str], ctx: _Ctx,
                      local: Optional[str] = None) -> Optional[str]:
        block = self.blocks[call.name]
        if block.name in self.recursive:  # reported by _check_blocks
            return self._broken(call, current, ctx, local)
        local = local or self._local_name(call, block.name, ctx)
        names = [p.name for p in block.params]
        bound = _bind(block.name, names, len(names), call.args, self._error)
        env: dict[str, Any] = {}
        ok = bound is not None
        for p in block.params:
            if not ok:
                break
            if p.name in bound:
                value = self._eval(bound[p.name].value, ctx.env)
            elif p.default is not None:
                value = self._value(p.default, env, p.name, block.params)
            else:
                self._error("E302", f"block `{block.name}` needs `{p.name}`", call.span,
                            notes=[Note(f"`{block.name}` is defined here", block.name_span)])
                value = POISON
            ok = value is not POISON
            env[p.name] = value
        if not ok:
            return self._broken(call, current, ctx, local)
        title = f"{block.name}({', '.join(fmt_value(env[p.name]) for p in block.params)})"
        path = ctx.full(local)
        scope = self._scope(path, "block", title, call.span, ctx, block.name)
        inner = ctx.child(local, block.body, env=env, site=(path, call.span))
        outer, self._site = self._site, inner.site  # errors in the body name this use
        try:
            scope.output = self._chain(block.body, current, inner)
        finally:
            self._site = outer
        return scope.output

    # -- structure ----------------------------------------------------------------------

    def _join(self, join: ast.Join, current: Optional[str], ctx: _Ctx) -> Optional[str]:
        local = self._local_name(join, join.kind, ctx)
        if len(join.branches) < 2:
            self._error("E207", f"`{join.kind}` needs at least two branches, separated by `|`", join.span)
        # A labelled join is a scope of its own; an unlabelled one numbers its branches here.
        home = ctx
        if join.label is not None:
            home = ctx.child(local, ())
            self._scope(home.path, "join", join.kind, join.span, ctx)
        ends = []
        for branch in join.branches:
            name = home.auto("branch")
            scope = self._scope(home.full(name), "branch", f"{join.kind} branch", _extent(branch), ctx)
            end = scope.output = self._chain(branch, current, home.child(name, branch))
            if end == current and end is not None:
                self._error("E207", "a branch needs at least one layer", _extent(branch),
                            help="write `identity` for a branch that passes its input on")
            ends.append(end)
        if not self._needs_input(current, join.span):
            return None
        ok = all(e is not None for e in ends)
        return self._add_node(ctx.full(local), join.kind, {} if ok else None,
                              [e for e in ends if e is not None], join.span, ctx)

    def _repeat(self, rep: ast.Repeat, current: Optional[str], ctx: _Ctx) -> Optional[str]:
        count = self._repeat_count(rep, ctx)
        if count is None:
            return current
        if rep.label is None:  # inline: the passes' layers join this scope
            for i in range(count):
                before = len(self.graph)
                current = self._chain(rep.body, current, ctx)
                if len(self.graph) == before and i >= 1:
                    break  # passes that add no layer: the others would add none either
                if i == 0:
                    self._check_repeat_size(rep, count, len(self.graph) - before)
            return current
        local = self._local_name(rep, "repeat", ctx)
        home = ctx.child(local, ())
        scope = self._scope(home.path, "repeat", f"repeat {count}", rep.span, ctx)
        for i in range(1, count + 1):
            home.names[str(i)] = rep.span
            before = len(self.graph)
            one = self._scope(home.full(str(i)), "pass", f"pass {i} of {count}", rep.span, ctx)
            current = one.output = self._chain(rep.body, current, home.child(str(i), rep.body))
            if len(self.graph) == before and i >= 2:
                break
            if i == 1:
                self._check_repeat_size(rep, count, len(self.graph) - before)
        scope.output = current
        return current

    def _check_repeat_size(self, rep: ast.Repeat, count: int, per_pass: int) -> None:
        """After the first pass, refuse at once a repeat whose passes would pass the layer
        limit (every pass makes as many layers as the first), rather than expanding up to it."""
        layers = len(self.graph) - self._input_declared
        if layers + (count - 1) * per_pass > self.max_layers:
            self._limit_passed(f"`repeat {count:,}` of {per_pass:,} layer{'s' if per_pass != 1 else ''} "
                               f"would make the net larger than the limit of {self.max_layers:,} layers",
                               rep.count.span)
            raise _Abort

    def _limit_passed(self, message: str, span: ast.Span) -> None:
        """Report (once) that the net passes the layer limit."""
        if not self._limit_reported:
            self._limit_reported = True
            self._error("E407", message, span,
                        help="the limit guards against runaway repeats and blocks; raise it with `max_layers=` "
                             "or `--max-layers` if the net is really this large")

    def _repeat_count(self, rep: ast.Repeat, ctx: _Ctx) -> Optional[int]:
        count = self._eval(rep.count, ctx.env)
        if count is POISON:
            return None
        if isinstance(count, Symbol):
            self._error("E202", f"undefined name `{count}`", rep.count.span, help=did_you_mean(count.name, ctx.env))
            return None
        if isinstance(count, bool) or not isinstance(count, int):
            self._error("E305", f"`repeat` expects an integer count, got {fmt_value(count)}", rep.count.span)
            return None
        if count < 1:
            self._error("E306", f"`repeat` count must be at least 1, got {count}", rep.count.span)
            return None
        if not rep.body:
            self._error("E207", "`repeat` has nothing to repeat", rep.span, help="put layers between its braces")
            return None
        return count

    def _head(self, head: ast.Head, current: Optional[str], ctx: _Ctx) -> None:
        source = current
        if head.source is not None:
            source = self._resolve(head.source, head.source_span, ctx)
            if source is None:
                return
        train_only = head.train_only or ctx.train_only
        if not train_only and source is not None and self.graph.nodes[source]["train_only"]:
            self._error("E207", f"a deploy head cannot read `{source}`, which exists in training only",
                        head.source_span if head.source is not None else head.span,
                        help="make it a `train head`, or tap a layer outside the train head")
            return
        index = len(self.outputs)  # the head's output comes before any head nested in it
        inner_ctx = replace(ctx, train_only=train_only)
        if isinstance(head.body, ast.Call):  # `aux1: head f(x)`: the call is named by the head
            call = replace(head.body, label=head.label, label_span=head.label_span)
            local = self._local_name(call, call.name, ctx)
            end = self._call(call, source, inner_ctx, None, local)
        else:
            local = self._local_name(head, "head", ctx)
            scope = self._scope(ctx.full(local), "head", "train head" if train_only else "head", head.span, inner_ctx)
            end = scope.output = self._chain(head.body, source, ctx.child(local, head.body, train_only=train_only))
        if end is not None and end != source:
            self.outputs.insert(index, Output(ctx.full(local), end, train_only))
        elif source is not None and end == source:
            self._error("E207", "a head needs at least one layer", head.span)

    def _resolve(self, name: str, span: ast.Span, ctx: _Ctx) -> Optional[str]:
        """A layer named from inside a scope: looked up here first, then in enclosing scopes.
        A scope (a block instance, say) stands for the end of its main chain."""
        parts = ctx.path.split(".") if ctx.path else []
        # a block's body sees its own layers only, as it sees its own parameters only
        floor = len(ctx.site[0].split(".")) if ctx.site else 0
        for depth in range(len(parts), floor - 1, -1):
            candidate = ".".join(parts[:depth] + [name])
            if candidate in self.graph:
                return candidate
            if candidate in self.scopes and self.scopes[candidate].output is not None:
                return self.scopes[candidate].output
        self._error("E202", f"no layer `{name}` before this point", span,
                    help=did_you_mean(name, [n for n in self.graph if n != "input"]))
        return None


class _LayerBound:
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
            count = _value(item.count, env)
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
        positional = [a for a in call.args if a.name is None]
        keywords = {a.name: a for a in call.args if a.name is not None}
        if (len(positional) > len(names) or len(keywords) + len(positional) != len(call.args)
                or any(k not in names[len(positional):] for k in keywords)
                or any(a.name is None for a in call.args[len(positional):])):
            return 1  # arguments that do not bind: one broken layer
        inner: dict[str, Any] = {}
        for i, p in enumerate(block.params):
            arg = positional[i] if i < len(positional) else keywords.get(p.name)
            value = _value(arg.value, env) if arg is not None else (
                _value(p.default, inner) if p.default is not None else None)
            if value is None:
                return 1
            inner[p.name] = value
        key = (block.name, repr(list(inner.values())))
        if key not in self.memo:
            self.depth += 1
            self.memo[key] = self.chain(block.body, inner)
            self.depth -= 1
        return self.memo[key]


def _value(expr: ast.Expr, env: Mapping[str, Any]) -> Any:
    """The value of an expression, or None when it has none (the error is lowering's to report)."""
    try:
        value = evaluate(expr, env)
    except (_Poisoned, _EvalError):
        return None
    return None if value is POISON else value


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


def _required(spec: OpSpec) -> list[str]:
    return [a.name for a in spec.attrs if a.default is REQUIRED]


def _extent(items: tuple[ast.Item, ...]) -> ast.Span:
    if not items:
        return ast.NOWHERE
    a, b = items[0].span, items[-1].span
    return ast.Span(a.line, a.column, b.end_line, b.end_column)


def lower(program: ast.Program, bag: DiagnosticBag, overrides: Optional[Mapping[str, Any]] = None,
          max_layers: int = DEFAULT_MAX_LAYERS) -> Optional[LoweredNet]:
    """Lower a parsed file to its layer graph, recording every mistake in `bag`."""
    try:
        return Lowerer(program, bag, overrides or {}, max_layers).run()
    except _Abort:  # too many errors before the net's body: nothing more is worth checking
        return None
