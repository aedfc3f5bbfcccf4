"""Random valid nets, for the differential test (tests/test_differential.py, and
bench/differential.py for long runs).

`generate(seed)` gives a `RandomNet`: the text of a .net file that netdsl must accept, the
syntax tree it was written from, and what this module expects of it (every layer's name and
shape, the outputs, the parameter counts). It is built to be valid, as a person writing nets
would: each layer is chosen against the shape that reaches it, using the op registry's own
attributes and shape rules (`netdsl.ops.REGISTRY`), so a new op is generated as soon as it is
registered. What the generator decides without the registry it decides here, independently of
netdsl's lowering: binding arguments, evaluating expressions, expanding blocks and repeats,
naming layers and scopes, resolving `head from X`, the outputs. `simulate(program)` is that
model on its own, for any parsed file; a net netdsl refuses, or names or shapes otherwise than
the model, is a bug on one side or the other (the test reports which code, and the rate).

What a net may hold: every op of the registry with arguments drawn per attribute type (Int,
Float, Bool, Pair, ... : `STRATEGIES`), values taken from the op's documented examples now and
then; joins of every registry join (concat and add), with branches steered to the shapes the
join needs; blocks with parameters (of every value type), defaults, blocks calling blocks,
called again with other arguments; labelled and unlabelled repeats (counts that are parameter
expressions too); heads and train heads, from the current layer or from an earlier one by its
(dotted) name, with a chain or a single call; labelled groups; net parameters; labels that
look like automatic names (`relu2`), which automatic naming must skip; vectors after flatten.
Shapes stay small (a few thousand values per example), so compiling and running a net takes
milliseconds.

Known crashes of torch itself, avoided by default (each switch below names one class; all are
fixed now -- netdsl refuses the max-pool windows, `optimize="fuse"` keeps the others out of
channels_last -- and `bench/differential.py --no-avoid` generates them again):
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Optional

from netdsl import ast, codes
from netdsl.ops import REGISTRY, REQUIRED, AttrError, Bool, Float, Int, Pair, ShapeError, Symbol
from netdsl.ops.spec import Choice, Maybe
from netdsl.parser import KEYWORDS, parse

#: The ops a call names, and the joins, in the registry's order (read at import: new ops come in).
CALLABLE = tuple(name for name, spec in REGISTRY.items() if not spec.join and not spec.source)
JOINS = tuple(name for name, spec in REGISTRY.items() if spec.join)

# --- known crash classes (switches) --------------------------------------------------------------

#: A max-pool with an output position whose window lies entirely in the padding (only possible
#: with dilation > 1, e.g. `maxpool(2, stride=1, pad=1, dilation=3)` on a 2-wide input): torch
#: outputs -inf there with an index past the input, and its backward pass writes out of bounds
#: (heap corruption: "double free or corruption", SIGABRT, or a wrong gradient).
AVOID_MAXPOOL_WINDOW_IN_PADDING = True

#: A convolution under `optimize="fuse"` (weights in channels_last memory order) that oneDNN
#: crashes on (SIGSEGV, at a batch of 2 or more): a kernel 1 wide, dilated across the width,
#: whose every output column (two or more) reads padding only; see `conv_crashes_fused`.
AVOID_FUSED_CHANNELS_LAST_CONV_CRASH = True

#: A convolution that oneDNN computes wrongly with channels_last weights (found by this test:
#: no crash, silently different outputs under `optimize="fuse"`): one input channel and an
#: output 1 wide reached with a width stride > 1 and height stride 1; see `conv_wrong_fused`.
AVOID_FUSED_CHANNELS_LAST_CONV_WRONG = True

#: A GroupNorm after a convolution under `optimize="fuse"` (found by this test): the conv's
#: channels_last weights make its output, and what follows it, channels_last, and torch's
#: channels_last GroupNorm kernel (CPU) computes the variance with cancellation, E[x²] - E[x]²:
#: where a group's variance is small against its mean², the fused module's outputs differ from
#: the module's by up to 1e-3 of their size (the contiguous kernel: 1e-6).
AVOID_FUSED_GROUPNORM_AFTER_CONV = True

AVOIDED = ("AVOID_MAXPOOL_WINDOW_IN_PADDING", "AVOID_FUSED_CHANNELS_LAST_CONV_CRASH",
           "AVOID_FUSED_CHANNELS_LAST_CONV_WRONG", "AVOID_FUSED_GROUPNORM_AFTER_CONV")
NATIVE_CRASHES = frozenset(AVOIDED[:2])   # the classes that kill the process (the others give other numbers)

# --- sizes -------------------------------------------------------------------------------------

MAX_CHANNELS = 24
MAX_SIDE = 24
MAX_VALUES = 3072          # per example, per layer
MAX_LAYERS = 64            # per net, after expanding blocks and repeats (about: see Model.add)
MAX_DEPTH = 3              # constructs nested inside each other
BATCH = 2                  # the batch the differential test runs (BatchNorm trains on 2 or more)


class Invalid(Exception):
    """The model refuses an item: `code` is netdsl's error code for it (codes.py), or a word
    of the generator's own (`avoid:...` for a known crash class, `size` past the limits)."""

    def __init__(self, code: str, why: str = ""):
        super().__init__(f"{code}: {why}" if why else code)
        self.code, self.why = code, why


# --- the crash classes, as predicates ----------------------------------------------------------

def _padding_only(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int) -> list[bool]:
    """For each output position of a sliding window along one axis: whether it reads padding only."""
    return [all(not 0 <= o * stride - pad + i * dilation < size for i in range(kernel)) for o in range(out)]


def _axis(in_shape, attrs, out_shape, axis: int) -> list[bool]:
    pad = attrs["pad"][axis] if isinstance(attrs["pad"], tuple) else 0   # `valid`; `same` needs stride 1
    dilation = attrs["dilation"][axis] if "dilation" in attrs else 1
    return _padding_only(in_shape[1 + axis], attrs["kernel"][axis], attrs["stride"][axis], pad,
                         dilation, out_shape[1 + axis])


def window_in_padding(in_shape, attrs, out_shape) -> bool:
    """Some output position of a windowed op reads nothing but padding (along any spatial axis)."""
    return any(any(_axis(in_shape, attrs, out_shape, axis)) for axis in range(len(in_shape) - 1))


def conv_crashes_fused(in_shape, attrs, out_shape) -> bool:
    """oneDNN's SIGSEGV with channels_last weights. Characterised on torch 2.14's CPU build by
    running random convolutions in child processes (bench/differential.py's way): every crash
    seen (dozens) had a 1-wide kernel dilated across the width and two or more output columns,
    each of which reads padding only (the output is the bias alone); about 3 in 4 of those
    crash. None crashed without them."""
    if attrs["pad"] == "same":
        return False
    return (attrs["kernel"][1] == 1 and attrs["dilation"][1] > 1 and out_shape[2] >= 2
            and all(_axis(in_shape, attrs, out_shape, 1)))


def conv_wrong_fused(in_shape, attrs, out_shape) -> bool:
    """oneDNN's wrong results with channels_last weights: every case seen (hundreds, in 20,000
    random convolutions) had one input channel and an output 1 wide reached with a width
    stride > 1 and height stride 1; about 1 in 4 of those is wrong, by as much as the output
    itself."""
    return in_shape[0] == 1 and out_shape[2] == 1 and attrs["stride"][1] > 1 and attrs["stride"][0] == 1


def known_crash(op: str, in_shape, attrs, out_shape, conv_above: bool = False) -> Optional[str]:
    """The switch whose class this layer falls in (whether or not the switch is on), or None.
    `conv_above`: a convolution comes before the layer."""
    if op == "groupnorm" and conv_above:
        return "AVOID_FUSED_GROUPNORM_AFTER_CONV"
    if op == "maxpool" and window_in_padding(in_shape, attrs, out_shape):
        return "AVOID_MAXPOOL_WINDOW_IN_PADDING"
    if op == "conv" and len(in_shape) == 3:
        if conv_crashes_fused(in_shape, attrs, out_shape):
            return "AVOID_FUSED_CHANNELS_LAST_CONV_CRASH"
        if conv_wrong_fused(in_shape, attrs, out_shape):
            return "AVOID_FUSED_CHANNELS_LAST_CONV_WRONG"
    return None


# --- values and expressions (the language's rules, written out again) ---------------------------

def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def evaluate(e: ast.Expr, env: dict[str, Any]) -> Any:
    if isinstance(e, (ast.IntLit, ast.FloatLit, ast.BoolLit)):
        return e.value
    if isinstance(e, ast.ShapeLit):
        return tuple(e.dims)
    if isinstance(e, ast.NameRef):
        return env[e.name] if e.name in env else Symbol(e.name)
    if isinstance(e, ast.TupleLit):
        return tuple(evaluate(x, env) for x in e.items)
    if isinstance(e, ast.Neg):
        return -_operand(e.operand, env)
    a, b = _operand(e.left, env), _operand(e.right, env)
    try:
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if e.op == "*":
            return a * b
        if e.op == "/":
            exact = isinstance(a, int) and isinstance(b, int) and b != 0 and a % b == 0
            return a // b if exact else a / b
        if e.op == "//":
            return a // b
        return a % b
    except ZeroDivisionError:
        raise Invalid(codes.ARITHMETIC, "division by zero") from None


def _operand(e: ast.Expr, env) -> Any:
    v = evaluate(e, env)
    if isinstance(v, Symbol):
        raise Invalid(codes.UNDEFINED_NAME, f"`{v}` in arithmetic")
    if not _number(v):
        raise Invalid(codes.WRONG_TYPE, "arithmetic on a non-number")
    return v


def literal(v: Any, rng: Optional[random.Random] = None) -> ast.Expr:
    """A value as an expression (pairs as `3x2` or `(3, 2)`)."""
    if isinstance(v, bool):
        return ast.BoolLit(v)
    if isinstance(v, int):
        return ast.IntLit(v)
    if isinstance(v, float):
        return ast.FloatLit(v)
    if isinstance(v, Symbol):
        return ast.NameRef(v.name)
    if isinstance(v, tuple):
        if rng is not None and rng.random() < 0.3 or not all(isinstance(x, int) and x >= 0 for x in v):
            return ast.TupleLit(tuple(literal(x) for x in v))
        return ast.ShapeLit(tuple(v))
    raise TypeError(v)


# --- the model: layers, scopes and outputs as netdsl should make them -------------------------

@dataclass(frozen=True)
class Node:
    name: str
    op: str
    shape: tuple
    train_only: bool
    attrs: Optional[dict] = field(default=None, compare=False)
    params: int = 0
    in_shape: Optional[tuple] = None
    conv_above: bool = False     # the layer is a convolution or comes after one


@dataclass(frozen=True)
class Refusal:
    """A layer the registry's shape rule refused while the generator was choosing: torch must
    refuse it too (tests/differential_check.py, `check_refusals`)."""

    op: str
    in_shapes: tuple
    attrs: dict = field(compare=False)
    code: str = ""
    message: str = ""


#: The refusals whose rightness torch can judge: a window larger than its input, groups that do
#: not divide the channels, values out of range. (A wrong rank is the language's rule, not
#: torch's: torch's Linear takes an image, applied to its last dimension; joins are left out
#: for the same reason: torch broadcasts any sum.)
CHECKED_REFUSALS = frozenset({codes.WINDOW_TOO_LARGE, codes.GROUPS_MISMATCH, codes.OUT_OF_RANGE})
MAX_REFUSALS = 8   # per net

_MISSING, _INSERTED = object(), object()


class Model:
    """Every layer (full dotted name -> Node), scope (path -> level, output) and output, with
    a journal so that a rejected item can be undone."""

    def __init__(self, blocks: dict[str, ast.BlockDef], generating: bool):
        self.blocks = blocks
        self.generating = generating   # apply the size limits and the crash switches
        self.layers: dict[str, Node] = {}
        self.levels: dict[str, int] = {}
        self.scope_out: dict[str, Optional[Node]] = {}
        self.outputs: list[tuple[str, Node, bool]] = []
        self.crash_classes: set[str] = set()   # layers in a known crash class (whatever the switches)
        self.refusals: list[Refusal] = []      # candidates refused while generating (not undone)
        self._log: list = []

    # journal
    def set(self, d: dict, k, v) -> None:
        self._log.append((d, k, d.get(k, _MISSING)))
        d[k] = v

    def insert(self, lst: list, i: int, v) -> None:
        self._log.append((lst, i, _INSERTED))
        lst.insert(i, v)

    def mark(self) -> int:
        return len(self._log)

    def rollback(self, mark: int) -> None:
        while len(self._log) > mark:
            d, k, old = self._log.pop()
            if old is _INSERTED or old is _MISSING:
                del d[k]
            else:
                d[k] = old

    # structure
    def open_scope(self, path: str) -> None:
        parent = path.rpartition(".")[0]
        self.set(self.levels, path, self.levels.get(parent, 0) + 1)
        self.set(self.scope_out, path, None)

    def add(self, node: Node) -> Node:
        if node.name in self.layers:
            raise Invalid(codes.DUPLICATE_NAME, node.name)
        # chains stop adding items at MAX_LAYERS - 8; what must still come (adapters, reserved
        # labels, the passes of a repeat) has room up to this
        if self.generating and len(self.layers) > MAX_LAYERS + 24:
            raise Invalid("layers", "too many layers")
        self.set(self.layers, node.name, node)
        return node

    def main_output(self) -> str:
        return self.outputs[0][0]

    def totals(self, train: bool) -> int:
        return sum(n.params for n in self.layers.values() if train or not n.train_only)


def labels_in(items: Iterable) -> set[str]:
    """The labels a scope writes itself (an unlabelled repeat's body is in the scope too)."""
    out: set[str] = set()
    for item in items:
        label = getattr(item, "label", None)
        if label is not None:
            out.add(label)
        elif isinstance(item, ast.Repeat):
            out |= labels_in(item.body)
    return out


@dataclass
class Ctx:
    """Where items are being simulated: the scope's path, the parameters in sight, the labels
    the scope writes (automatic names skip them), whether this is training-only, and the
    level of the innermost block instance (a block sees only its own layers)."""

    path: str
    env: dict
    reserved: frozenset
    train_only: bool = False
    floor: int = 0
    names: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)

    def full(self, local: str) -> str:
        return f"{self.path}.{local}" if self.path else local

    def child(self, local: str, reserved: Iterable[str], **changes) -> "Ctx":
        return Ctx(self.full(local), changes.get("env", self.env), frozenset(reserved),
                   changes.get("train_only", self.train_only), changes.get("floor", self.floor))

    def auto(self, kind: str, model: Model) -> str:
        n = self.counters.get(kind, 0)
        while True:
            n += 1
            name = f"{kind}{n}"
            if name not in self.reserved and name not in self.names:
                model.set(self.counters, kind, n)
                model.set(self.names, name, True)
                return name

    def local_name(self, label: Optional[str], kind: str, model: Model) -> str:
        if label is None:
            return self.auto(kind, model)
        if label in self.names:
            raise Invalid(codes.DUPLICATE_NAME, f"`{self.full(label)}` twice")
        model.set(self.names, label, True)
        return label


def bind_args(what: str, names: list[str], positional: int, args) -> dict[str, ast.Arg]:
    bound: dict[str, ast.Arg] = {}
    keyword, index = False, 0
    for arg in args:
        if arg.name is None:
            if keyword or index >= positional:
                raise Invalid(codes.TOO_MANY_POSITIONAL, what)
            bound[names[index]] = arg
            index += 1
            continue
        keyword = True
        if arg.name not in names:
            raise Invalid(codes.UNKNOWN_ARGUMENT, f"{what}({arg.name}=)")
        if arg.name in bound:
            raise Invalid(codes.ARGUMENT_TWICE, f"{what}({arg.name}=)")
        bound[arg.name] = arg
    return bound


def bind_op(spec, args, env) -> dict[str, Any]:
    names = [a.name for a in spec.attrs]
    positional = sum(1 for a in spec.attrs if a.positional)
    plain = [i for i, a in enumerate(args) if a.name is None]
    if positional and spec.attrs[positional - 1].rest and len(plain) > positional:
        # `split(16, 48)`: the positional arguments from the rest attribute's place on are its tuple
        at = plain[positional - 1]
        packed = ast.Arg(None, ast.TupleLit(tuple(args[i].value for i in plain[positional - 1:])))
        args = tuple(packed if i == at else a for i, a in enumerate(args) if i not in plain[positional:])
    bound = bind_args(spec.name, names, positional, args)
    attrs: dict[str, Any] = {}
    for attr in spec.attrs:
        arg = bound.get(attr.name)
        if arg is None:
            if attr.default is REQUIRED:
                raise Invalid(codes.MISSING_ARGUMENT, f"{spec.name} needs {attr.name}")
            attrs[attr.name] = attr.default_for(attrs)
            continue
        value = evaluate(arg.value, env)
        if isinstance(value, Symbol) and value.name not in getattr(attr.type, "symbols", ()):
            raise Invalid(codes.UNDEFINED_NAME, str(value))
        try:
            attrs[attr.name] = attr.type.convert(value, attr.name)
        except AttrError as e:
            raise Invalid(e.code, e.message) from None
    return attrs


def _infer(model: Model, spec, in_nodes: list[Node], attrs: dict) -> tuple:
    ins = [n.shape for n in in_nodes]
    try:
        attrs.update(spec.resolve(ins, attrs))  # sizes per axis, one per axis of this input (E411)
        out = tuple(spec.infer(ins, attrs))
    except ShapeError as e:
        if model.generating and not spec.join and e.code in CHECKED_REFUSALS \
                and len(model.refusals) < MAX_REFUSALS:
            model.refusals.append(Refusal(spec.name, tuple(ins), dict(attrs), e.code, e.message))
        raise Invalid(e.code, e.message) from None
    if model.generating:
        if any(d < 1 for d in out) or len(out) == 3 and (out[0] > MAX_CHANNELS or max(out[1:]) > MAX_SIDE) \
                or len(out) == 1 and out[0] > MAX_VALUES or math.prod(out) > MAX_VALUES:
            raise Invalid("size", f"{spec.name} -> {out}")
    return out


def sim_layer(model: Model, name: str, spec, attrs: dict, in_nodes: list[Node], ctx: Ctx) -> Node:
    out = _infer(model, spec, in_nodes, attrs)
    above = any(n.conv_above for n in in_nodes)
    crash = known_crash(spec.name, in_nodes[0].shape, attrs, out, above) if not spec.join else None
    if crash is not None:
        if model.generating and globals()[crash]:
            raise Invalid("avoid:" + crash)
        model.crash_classes.add(crash)
    params = spec.params([n.shape for n in in_nodes], attrs, out)
    return model.add(Node(name, spec.name, out, ctx.train_only, attrs, params, in_nodes[0].shape,
                          above or spec.name == "conv"))


def sim_chain(model: Model, items, cur: Optional[Node], ctx: Ctx) -> Optional[Node]:
    for i, item in enumerate(items):
        if isinstance(item, ast.InputDecl):
            if i != 0 or ctx.path or "input" in model.layers or len(item.dims) > 4 or min(item.dims) < 1:
                raise Invalid(codes.INPUT_DECLARATION)
            cur = model.add(Node("input", "input", tuple(item.dims), False))
        elif cur is None:
            raise Invalid(codes.INPUT_DECLARATION, "a layer before the input")
        elif isinstance(item, ast.Call):
            cur = sim_call(model, item, cur, ctx)
        elif isinstance(item, ast.Join):
            cur = sim_join(model, item, cur, ctx)
        elif isinstance(item, ast.Repeat):
            cur = sim_repeat(model, item, cur, ctx)
        elif isinstance(item, ast.Head):
            sim_head(model, item, cur, ctx)
        elif isinstance(item, ast.Group):
            local = ctx.local_name(item.label, "group", model)
            path = ctx.full(local)
            model.open_scope(path)
            cur = sim_chain(model, item.body, cur, ctx.child(local, labels_in(item.body)))
            model.set(model.scope_out, path, cur)
    return cur


def sim_call(model: Model, call: ast.Call, cur: Node, ctx: Ctx, local: Optional[str] = None) -> Node:
    if call.name in model.blocks:
        return sim_block(model, call, cur, ctx, local)
    spec = REGISTRY.get(call.name)
    if spec is None or spec.join or spec.source:
        raise Invalid(codes.UNKNOWN_OP, call.name)
    local = local or ctx.local_name(call.label, spec.name, model)
    attrs = bind_op(spec, call.args, ctx.env)
    return sim_layer(model, ctx.full(local), spec, attrs, [cur], ctx)


def block_env(model: Model, block: ast.BlockDef, args, env: dict) -> dict:
    names = [p.name for p in block.params]
    bound = bind_args(block.name, names, len(names), args)
    inner: dict[str, Any] = {}
    for p in block.params:
        if p.name in bound:
            inner[p.name] = evaluate(bound[p.name].value, env)
        elif p.default is not None:
            inner[p.name] = evaluate(p.default, inner)
        else:
            raise Invalid(codes.MISSING_ARGUMENT, f"{block.name} needs {p.name}")
    return inner


def sim_block(model: Model, call: ast.Call, cur: Node, ctx: Ctx, local: Optional[str] = None,
              body: Optional[Callable] = None, reserved: Iterable[str] = ()) -> Node:
    """A block instance; `body(inner_ctx, cur)` makes the body instead (the generator, whose
    body will label `reserved` itself)."""
    block = model.blocks[call.name]
    local = local or ctx.local_name(call.label, block.name, model)
    inner_env = block_env(model, block, call.args, ctx.env)
    path = ctx.full(local)
    model.open_scope(path)
    inner = ctx.child(local, labels_in(block.body) if body is None else reserved, env=inner_env,
                      floor=model.levels[path])
    out = sim_chain(model, block.body, cur, inner) if body is None else body(inner, cur)
    model.set(model.scope_out, path, out)
    return out


def sim_join(model: Model, join: ast.Join, cur: Node, ctx: Ctx, branch: Optional[Callable] = None) -> Node:
    """A join; `branch(i, ctx, cur, ends)` makes branch i instead (the generator)."""
    local = ctx.local_name(join.label, join.kind, model)
    count = len(join.branches)
    if count < 2:
        raise Invalid(codes.MISPLACED, "one branch")
    home = ctx
    if join.label is not None:
        home = ctx.child(local, ())
        model.open_scope(home.path)
    spec = REGISTRY.get(join.kind)
    if spec is None or not spec.join:
        raise Invalid(codes.UNKNOWN_OP, join.kind)
    starts = [cur] * count
    if spec.fork is not None:
        # `split`: its arguments are bound first, and a layer per branch (`chunk`), made in the
        # join's home before any branch, hands that branch its part of the input
        attrs = bind_op(spec, join.args, ctx.env)
        starts = []
        for i in range(count):
            try:
                op, part = spec.fork(attrs, i, count)
            except AttrError as e:
                raise Invalid(e.code, e.message) from None
            starts.append(sim_layer(model, home.full(home.auto(op, model)), REGISTRY[op], dict(part), [cur], home))
    ends: list[Node] = []
    for i in range(count):
        name = home.auto("branch", model)
        path = home.full(name)
        model.open_scope(path)
        items = join.branches[i] if branch is None else ()
        sub = home.child(name, labels_in(items))
        start = starts[i]
        end = sim_chain(model, items, start, sub) if branch is None else branch(i, sub, start, ends)
        if end is start:
            raise Invalid(codes.MISPLACED, "an empty branch")
        model.set(model.scope_out, path, end)
        ends.append(end)
    attrs = bind_op(spec, join.args, ctx.env)
    return sim_layer(model, ctx.full(local), spec, attrs, ends, ctx)


def repeat_count(rep: ast.Repeat, env) -> int:
    count = evaluate(rep.count, env)
    if isinstance(count, bool) or not isinstance(count, int):
        raise Invalid(codes.WRONG_TYPE if not isinstance(count, Symbol) else codes.UNDEFINED_NAME, "count")
    if count < 1:
        raise Invalid(codes.OUT_OF_RANGE, "count")
    if not rep.body:
        raise Invalid(codes.MISPLACED, "empty repeat")
    return count


def sim_repeat(model: Model, rep: ast.Repeat, cur: Node, ctx: Ctx) -> Node:
    return run_repeat(model, rep.label, repeat_count(rep, ctx.env), rep.body, cur, ctx)[0]


def run_repeat(model: Model, label: Optional[str], count: int, body, cur: Node, ctx: Ctx,
               first: Optional[Callable] = None) -> tuple[Node, tuple]:
    """`count` passes of `body`; `first(ctx, cur) -> (cur, body)` makes the first pass's body
    instead (the generator), which the other passes repeat. Returns the end and the body."""
    if label is None:
        for i in range(count):
            if i == 0 and first is not None:
                cur, body = first(ctx, cur)
            else:
                cur = sim_chain(model, body, cur, ctx)
        return cur, body
    local = ctx.local_name(label, "repeat", model)
    home = ctx.child(local, ())
    model.open_scope(home.path)
    for i in range(1, count + 1):
        model.set(home.names, str(i), True)
        model.open_scope(home.full(str(i)))
        if i == 1 and first is not None:
            cur, body = first(home.child("1", ()), cur)
        else:
            cur = sim_chain(model, body, cur, home.child(str(i), labels_in(body)))
        model.set(model.scope_out, home.full(str(i)), cur)
    model.set(model.scope_out, home.path, cur)
    return cur, body


def prefixes(model: Model, ctx: Ctx) -> list[str]:
    """Where `head from NAME` looks, innermost first."""
    out, path = [], ctx.path
    while path:
        if path in model.levels and model.levels[path] >= ctx.floor:
            out.append(path + ".")
        path = path.rpartition(".")[0]
    return out + ([""] if ctx.floor == 0 else [])


def resolve(model: Model, name: str, ctx: Ctx) -> Node:
    for prefix in prefixes(model, ctx):
        candidate = prefix + name
        if candidate in model.layers:
            return model.layers[candidate]
        if model.scope_out.get(candidate) is not None:
            return model.scope_out[candidate]
    raise Invalid(codes.UNDEFINED_NAME, f"from {name}")


def sim_head(model: Model, head: ast.Head, cur: Node, ctx: Ctx, body: Optional[Callable] = None) -> None:
    """A head; `body(ctx, source)` makes a braced body instead (the generator)."""
    source = cur if head.source is None else resolve(model, head.source, ctx)
    train = head.train_only or ctx.train_only
    if not train and source.train_only:
        raise Invalid(codes.MISPLACED, "a deploy head reads a training-only layer")
    index = len(model.outputs)
    if isinstance(head.body, ast.Call):
        call = replace(head.body, label=head.label)
        local = ctx.local_name(call.label, call.name, model)
        end = sim_call(model, call, source, replace(ctx, train_only=train), local)
    else:
        local = ctx.local_name(head.label, "head", model)
        path = ctx.full(local)
        model.open_scope(path)
        sub = ctx.child(local, labels_in(head.body), train_only=train)
        end = sim_chain(model, head.body, source, sub) if body is None else body(sub, source)
        model.set(model.scope_out, path, end)
    if end is source:
        raise Invalid(codes.MISPLACED, "an empty head")
    model.insert(model.outputs, index, (ctx.full(local), end, train))


def simulate(program: ast.Program) -> Model:
    """The model of a whole file (raises Invalid where netdsl should refuse it, or where the
    model does not follow, e.g. a net whose first item is not its input)."""
    blocks: dict[str, ast.BlockDef] = {}
    nets = []
    for d in program.definitions:
        if isinstance(d, ast.BlockDef):
            if d.name in blocks or d.name in REGISTRY or d.name in KEYWORDS:
                raise Invalid(codes.DUPLICATE_NAME, d.name)
            blocks[d.name] = d
        else:
            nets.append(d)
    if len(nets) != 1:
        raise Invalid(codes.NOT_ONE_NET)
    _check_recursion(blocks)
    net = nets[0]
    model = Model(blocks, generating=False)
    env: dict[str, Any] = {}
    for p in net.params:
        if p.default is None:
            raise Invalid(codes.MISSING_ARGUMENT, p.name)
        env[p.name] = evaluate(p.default, env)
    ctx = Ctx("", env, frozenset(labels_in(net.body)))
    last = sim_chain(model, net.body, None, ctx)
    if last is None:
        raise Invalid(codes.INPUT_DECLARATION)
    model.outputs.insert(0, (last.name.split(".")[0], last, False))
    return model


def _check_recursion(blocks: dict[str, ast.BlockDef]) -> None:
    def calls(items) -> Iterable[str]:
        for item in items:
            if isinstance(item, ast.Call):
                yield item.name
            elif isinstance(item, ast.Join):
                for b in item.branches:
                    yield from calls(b)
            elif isinstance(item, ast.Head):
                yield from calls([item.body] if isinstance(item.body, ast.Call) else item.body)
            elif isinstance(item, (ast.Repeat, ast.Group)):
                yield from calls(item.body)

    def visit(name: str, path: tuple) -> None:
        if name in path:
            raise Invalid(codes.RECURSIVE_BLOCK, name)
        for c in calls(blocks[name].body):
            if c in blocks:
                visit(c, path + (name,))

    for name in blocks:
        visit(name, ())


# --- argument values, by attribute type ------------------------------------------------------

NICE_FLOATS = (1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0)
FLOAT_TOP = 2.0   # numbers stay this small, parameter expressions too: `lrn(beta=7)` overflows gradients


def _small(rng: random.Random, top: int) -> int:
    """0, 1, 2, ... up to `top`, smaller ones likelier."""
    return min(int(rng.expovariate(0.6)), top)


@dataclass
class Hints:
    """Values worth trying first: the sizes of the input, and of a shape being aimed at."""

    ints: tuple[int, ...] = ()
    pairs: tuple[tuple[int, int], ...] = ()


def int_value(t: Int, shape: tuple, hints: Hints, rng: random.Random) -> int:
    pool = [v for v in hints.ints if v >= t.min]
    if shape:
        pool += [d for d in range(1, shape[0] + 1) if shape[0] % d == 0 and d >= t.min]   # divisors of C
        pool += [i for i in range(len(shape)) if i >= t.min]                                # dimensions
    if pool and rng.random() < 0.4:
        return rng.choice(pool)
    return t.min + _small(rng, 9)


def float_value(t: Float, shape: tuple, hints: Hints, rng: random.Random) -> float:
    if math.isfinite(t.max):
        return rng.choice([t.min, t.max, (t.min + t.max) / 2, round(rng.uniform(t.min, t.max), 2)])
    # unbounded above: positive values only (a zero epsilon or LRN constant divides by zero)
    return rng.choice([x for x in NICE_FLOATS if x >= t.min and x > 0])


def bool_value(t: Bool, shape: tuple, hints: Hints, rng: random.Random) -> bool:
    return rng.random() < 0.5


def choice_value(t: Choice, shape: tuple, hints: Hints, rng: random.Random) -> Symbol:
    # every word alike: the examples favour the common ones (`nearest`), and the rarer ones
    # are those that fit only one rank (`linear`: sequences)
    return Symbol(rng.choice(t.symbols))


def pair_value(t: Pair, shape: tuple, hints: Hints, rng: random.Random) -> Any:
    r = rng.random()
    if t.symbols and r < 0.12:
        return Symbol(rng.choice(t.symbols))
    if hints.pairs and r < 0.35:
        return rng.choice(hints.pairs)
    a = t.min + _small(rng, 4)
    axes = len(shape) - 1  # one size per spatial axis of the input, when given per axis
    if r < 0.7 or axes < 2:
        return a
    return (a,) + tuple(t.min + _small(rng, 4) for _ in range(axes - 1))


#: An op refused for its input's rank this often is not tried on that rank again; not at the first
#: refusal, as some refuse only some attributes (`upsample(mode=bilinear)` on a sequence).
WRONG_RANK_TRIES = 5

#: How a value is drawn for each attribute type (a type without an entry gets values from the
#: op's examples, or its default).
STRATEGIES: dict[type, Callable[[Any, tuple, Hints, random.Random], Any]] = {
    Int: int_value, Float: float_value, Bool: bool_value, Pair: pair_value, Choice: choice_value}

_EXAMPLES: dict[tuple[str, str], list] = {}


def example_values() -> dict[tuple[str, str], list]:
    """(op, attribute) -> the values the registry's examples give it."""
    if not _EXAMPLES:
        for name, spec in REGISTRY.items():
            if spec.join or spec.source:
                continue
            for ex in spec.examples:
                program = parse(f"net e {{ input {ex.input} {ex.text} }}")
                call = program.definitions[0].body[1]
                if not isinstance(call, ast.Call) or call.name != name:
                    continue
                names = [a.name for a in spec.attrs]
                try:
                    bound = bind_args(name, names, sum(1 for a in spec.attrs if a.positional), call.args)
                except Invalid:
                    continue
                for attr_name, arg in bound.items():
                    _EXAMPLES.setdefault((name, attr_name), []).append(evaluate(arg.value, {}))
    return _EXAMPLES


def _symbols() -> tuple[str, ...]:
    return tuple(sorted({s for spec in REGISTRY.values() for a in spec.attrs for s in getattr(a.type, "symbols", ())}))


def _accepts(t, v) -> bool:
    try:
        t.convert(v, "x")
        return True
    except AttrError:
        return False


# --- the generator ---------------------------------------------------------------------------

WORDS = ("t", "x", "stem", "trunk", "res", "mix", "tap", "side", "feat", "aux", "probe", "cell", "out", "z")
PARAM_WORDS = {"int": ("c", "n", "width", "k"), "float": ("p", "rate"), "bool": ("flag", "use"),
               "pair": ("size", "win"), "symbol": ("mode", "padding")}


@dataclass
class Where:
    """What the chain being made may hold."""

    depth: int = 0
    labels: bool = True          # items here may be labelled (not in an unlabelled repeat's body)
    keep_spatial: float = 0.0    # chance of refusing a layer that changes H and W (join branches)
    flatten: float = 0.08        # chance of accepting a layer that makes an image a vector
    in_block: bool = False

    def inner(self, **changes) -> "Where":
        return replace(self, depth=self.depth + 1, labels=changes.pop("labels", True), **changes)


@dataclass
class RandomNet:
    seed: int
    text: str
    program: ast.Program
    model: Model
    features: Counter
    rejected: Counter            # candidates the model refused while generating, by code
    refusals: list = field(default_factory=list)   # some of them, for torch to judge (Refusal)

    @property
    def name(self) -> str:
        return f"net{self.seed}"


class GeneratorBug(AssertionError):
    """The generator's model of its own net differs from the model of the text it wrote."""


class Generator:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.blocks: dict[str, ast.BlockDef] = {}
        self.kinds: dict[str, dict[str, str]] = {}      # block -> param -> value kind
        self.model = Model(self.blocks, generating=True)
        self.uses: Counter = Counter()
        self.wrong_rank: Counter = Counter()  # (op, rank) -> refusals for the rank
        self.rejected: Counter = Counter()
        self.labels = 0
        self.examples = example_values()
        self.symbols = _symbols()

    # -- names and values --------------------------------------------------------------------

    def fresh_label(self, reserved: list[str]) -> str:
        if reserved and self.rng.random() < 0.5:
            return reserved.pop()
        self.labels += 1
        return f"{self.rng.choice(WORDS)}{self.labels}"

    def auto_like(self) -> list[str]:
        """Labels that automatic names would take, which the scope reserves (0 to 2 of them)."""
        if self.rng.random() > 0.3:
            return []
        kinds = list(CALLABLE) + list(JOINS) + ["branch", "head"]
        return sorted({f"{self.rng.choice(kinds)}{self.rng.randint(1, 3)}" for _ in range(self.rng.randint(1, 2))})

    def design_value(self, kind: str) -> Any:
        rng = self.rng
        if kind == "int":
            return rng.randint(1, 8)
        if kind == "float":
            return rng.choice(NICE_FLOATS[4:12])
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "pair":
            return rng.choice([rng.randint(1, 3), (rng.randint(1, 3), rng.randint(1, 3))])
        return Symbol(rng.choice(self.symbols))

    def param_expr(self, t, env: dict) -> Optional[ast.Expr]:
        """An expression over the parameters in sight that `t` accepts, or None."""
        rng = self.rng
        names = [n for n, v in env.items() if not isinstance(v, Symbol) or _accepts(t, v)]
        if not names:
            return None
        for _ in range(4):
            n = rng.choice(names)
            v = env[n]
            e: ast.Expr = ast.NameRef(n)
            if isinstance(v, int) and not isinstance(v, bool) and rng.random() < 0.5:
                op, k = rng.choice([("+", 1), ("+", 2), ("*", 2), ("//", 2), ("/", 2), ("-", 1), ("%", 5)])
                e = ast.BinOp(op, e, ast.IntLit(k))
                others = [m for m in names if isinstance(env[m], int) and not isinstance(env[m], bool) and m != n]
                if others and rng.random() < 0.3:
                    e = ast.BinOp(rng.choice(["+", "*"]), e, ast.NameRef(rng.choice(others)))
                if rng.random() < 0.1:
                    e = ast.BinOp("-", e, ast.Neg(ast.IntLit(1)))
            elif isinstance(v, float) and rng.random() < 0.4:
                e = ast.BinOp(rng.choice(["/", "*"]), e, ast.IntLit(2) if rng.random() < 0.5 else ast.FloatLit(0.5))
            elif isinstance(v, int) and not isinstance(v, bool) and isinstance(t, Pair) and rng.random() < 0.3:
                e = ast.TupleLit((e, ast.IntLit(rng.randint(t.min, t.min + 2))))
            try:
                value = evaluate(e, env)
            except Invalid:
                continue
            if _accepts(t, value):
                return e
        return None

    def value(self, spec, attr, shape: tuple, env: dict, hints: Hints) -> ast.Expr:
        rng = self.rng
        r = rng.random()
        if r < 0.25 and env:
            e = self.param_expr(attr.type, env)
            if e is not None and not (isinstance(attr.type, Float) and not evaluate(e, env) <= FLOAT_TOP):
                return e
        seen = self.examples.get((spec.name, attr.name))
        if seen and getattr(attr.type, "per_axis", False):  # the examples' sizes that fit this input's axes
            seen = [v for v in seen if not isinstance(v, tuple) or len(v) == len(shape) - 1]
        kind = attr.type.type if isinstance(attr.type, Maybe) else attr.type  # a value when given
        strategy = next((STRATEGIES[c] for c in type(kind).__mro__ if c in STRATEGIES), None)
        if seen and (r < 0.4 or strategy is None):
            return literal(rng.choice(seen), rng)
        if strategy is None:
            return literal(attr.default_for({}), rng)
        return literal(strategy(kind, shape, hints, rng), rng)

    def arrange(self, given: list[tuple[str, ast.Expr, bool]]) -> tuple[ast.Arg, ...]:
        """Arguments as a call writes them: a prefix of the positional ones by position (in
        order), the others by name, in any order. `given`: (name, value, may be positional)
        in the callee's order, None values for those left out."""
        prefix = 0
        for _, v, positional in given:
            if v is None or not positional:
                break
            prefix += 1
        k = prefix if self.rng.random() < 0.7 else self.rng.randint(0, prefix)
        args = [ast.Arg(None, v) for _, v, _ in given[:k]]
        named = [ast.Arg(n, v) for n, v, _ in given[k:] if v is not None]
        self.rng.shuffle(named)
        return tuple(args + named)

    def fork_args(self, spec, shape: tuple, count: int) -> tuple[ast.Arg, ...]:
        """A forking join's sizes (`split`): none (equal parts), or one per branch adding up to
        the input's channels, written one by one (`split(3, 5)`) or as a tuple (`sizes=(3, 5)`)."""
        channels, rng = shape[0], self.rng
        if channels < count:
            raise Invalid("size", f"{spec.name} of {channels} channels into {count}")
        if channels % count == 0 and rng.random() < 0.4:
            return ()
        cuts = sorted(rng.sample(range(1, channels), count - 1))
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [channels])]
        if rng.random() < 0.2:
            return (ast.Arg(spec.attrs[0].name, ast.TupleLit(tuple(ast.IntLit(x) for x in sizes))),)
        return tuple(ast.Arg(None, ast.IntLit(x)) for x in sizes)

    def op_args(self, spec, shape: tuple, env: dict, hints: Hints) -> tuple[ast.Arg, ...]:
        given = []
        for attr in spec.attrs:
            give = attr.default is REQUIRED or self.rng.random() < 0.4
            given.append((attr.name, self.value(spec, attr, shape, env, hints) if give else None, attr.positional))
        return self.arrange(given)

    def weight(self, name: str) -> float:
        """Ops with more attributes are tried more often (they have more to cover), ops this
        net already has less often."""
        return (1 + len(REGISTRY[name].attrs)) / (1 + self.uses[name])

    # -- trying things -----------------------------------------------------------------------

    def attempt(self, make: Callable, tries: int):
        """The first of `tries` calls of `make()` the model accepts; each refused one is undone."""
        for _ in range(tries):
            mark = self.model.mark()
            try:
                return make()
            except Invalid as e:
                self.model.rollback(mark)
                self.rejected[e.code] += 1
        raise Invalid("gave up")

    def chain(self, ctx: Ctx, cur: Node, n: int, where: Where, target: Optional[tuple] = None,
              reserved: Optional[list[str]] = None) -> tuple[list, Node]:
        """About `n` items from `cur`; at least one layer; ending in `target` when given; the
        labels in `reserved` are all used (the scope reserved them for itself)."""
        items: list = []
        start = cur
        for _ in range(n):
            if len(self.model.layers) >= MAX_LAYERS - 8:
                break   # room is left for what must still come (adapters, reserved labels)
            try:
                item, cur = self.item(ctx, cur, where, reserved if reserved is not None else [])
            except Invalid:
                continue
            items.append(item)
        if target is not None:
            more, cur = self.reach(ctx, cur, target, need=cur is start)
            items += more
        elif cur is start:
            item, cur = self.attempt(lambda: self.op(ctx, cur, Where(where.depth, flatten=0.0), None), 4)
            items.append(item)
        for label in reserved or ():
            item, cur = self.attempt(lambda: self.keep_shape(ctx, cur, label), 20)
            items.append(item)
        if reserved:
            reserved.clear()
        return items, cur

    def item(self, ctx: Ctx, cur: Node, where: Where, reserved: list[str]):
        rng = self.rng
        deep = where.depth >= MAX_DEPTH
        kinds = {"op": 55, "join": 0 if deep else 11, "block": 0 if deep else 9, "repeat": 0 if deep else 7,
                 "head": 0 if deep else 8, "group": 0 if deep or not where.labels else 5}
        def make():
            before = list(reserved)
            kind = rng.choices(list(kinds), list(kinds.values()))[0]
            label = self.fresh_label(reserved) if where.labels and (kind == "group" or rng.random() < 0.3) else None
            try:
                return getattr(self, kind)(ctx, cur, where, label)
            except Invalid:
                reserved[:] = before  # a label taken by a refused item is free again
                raise

        return self.attempt(make, 6)

    # -- items -------------------------------------------------------------------------------

    def op(self, ctx: Ctx, cur: Node, where: Where, label: Optional[str], hints: Hints = Hints(),
           exact: Optional[tuple] = None):
        rng = self.rng
        rank = len(cur.shape)
        names = [n for n in CALLABLE if self.wrong_rank[(n, rank)] < WRONG_RANK_TRIES]
        weights = [self.weight(n) for n in names]

        def make():
            spec = REGISTRY[rng.choices(names, weights)[0]]
            call = ast.Call(spec.name, self.op_args(spec, cur.shape, ctx.env, hints), label)
            try:
                node = sim_call(self.model, call, cur, ctx)
            except Invalid as e:
                if e.code == codes.WRONG_RANK:   # the op takes no input of this rank: stop trying it soon
                    self.wrong_rank[(spec.name, rank)] += 1
                raise
            if exact is not None:
                if node.shape != exact:
                    raise Invalid("aim")
            else:
                if len(node.shape) < len(cur.shape) and rng.random() >= where.flatten:
                    raise Invalid("choice")
                if len(node.shape) == 3 == len(cur.shape) and node.shape[1:] != cur.shape[1:] \
                        and rng.random() < where.keep_spatial:
                    raise Invalid("choice")
            self.uses[spec.name] += 1
            return call, node

        return self.attempt(make, 12 if exact is None else 40)

    def keep_shape(self, ctx: Ctx, cur: Node, label: str):
        """A layer that keeps the shape, under `label`."""
        names = [n for n in CALLABLE if not any(a.default is REQUIRED for a in REGISTRY[n].attrs)]
        spec = REGISTRY[self.rng.choice(names)]
        call = ast.Call(spec.name, (), label)
        node = sim_call(self.model, call, cur, ctx)
        if node.shape != cur.shape:
            raise Invalid("aim")
        return call, node

    def reach(self, ctx: Ctx, cur: Node, target: tuple, need: bool):
        """One or two layers from `cur` to the shape `target` (at least one when `need`)."""
        if cur.shape == target and not need:
            return [], cur
        hints = Hints(ints=(target[0],), pairs=(tuple(target[1:]),) if len(target) == 3 else ())
        items = []
        if len(cur.shape) != len(target) or cur.shape[1:] != target[1:] and cur.shape[0] != target[0]:
            # two steps: first anything that keeps the model going, aimed at the target's sizes
            for _ in range(3):
                mark = self.model.mark()
                try:
                    item, node = self.op(ctx, cur, Where(flatten=1.0 if len(target) < len(cur.shape) else 0.0),
                                         None, hints)
                except Invalid:
                    self.model.rollback(mark)
                    continue
                if len(node.shape) == len(target) and (node.shape[0] == target[0] or node.shape[1:] == target[1:]):
                    items.append(item)
                    cur = node
                    break
                self.model.rollback(mark)
        if cur.shape == target and items:
            return items, cur
        item, cur = self.op(ctx, cur, Where(), None, hints, exact=target)
        return items + [item], cur

    def join(self, ctx: Ctx, cur: Node, where: Where, label: Optional[str]):
        rng = self.rng
        kinds = list(JOINS)
        kind = rng.choices(kinds, [1.0 / (1 + self.uses[k]) for k in kinds])[0]
        count = rng.choices([2, 3, 4], [70, 25, 5])[0]
        plan = rng.choice(["same", "same", "channels", "ones"])
        branches: list[tuple] = []
        inner = where.inner(keep_spatial=0.85, flatten=0.03)

        def branch(i: int, sub: Ctx, start: Node, ends: list[Node]) -> Node:
            if i == 0:
                items, end = self.chain(sub, start, rng.randint(1, 3), inner)
            else:
                target = ends[0].shape
                if plan == "channels":    # what concat allows
                    target = (rng.randint(1, 8),) + tuple(target[1:])
                elif plan == "ones":      # sizes of 1, which broadcast where a join allows it
                    target = tuple(1 if rng.random() < 0.5 else d for d in target)
                items, end = self.chain(sub, start, rng.randint(0, 2), inner, target=target)
            branches.append(tuple(items))
            return end

        spec = REGISTRY[kind]
        args = self.fork_args(spec, cur.shape, count) if spec.fork else self.op_args(spec, cur.shape, ctx.env, Hints())
        placeholder = ast.Join(kind, args, ((),) * count, label)
        node = sim_join(self.model, placeholder, cur, ctx, branch)
        self.uses[kind] += 1
        return replace(placeholder, branches=tuple(branches)), node

    def block(self, ctx: Ctx, cur: Node, where: Where, label: Optional[str]):
        existing = [name for name in self.blocks if self.blocks[name].body]
        if existing and self.rng.random() < 0.6:
            return self.call_block(ctx, cur, self.rng.choice(existing), label)
        return self.new_block(ctx, cur, where, label)

    def block_args(self, name: str, env: dict) -> tuple[ast.Arg, ...]:
        rng = self.rng
        block = self.blocks[name]
        given = []
        for p in block.params:
            kind = self.kinds[name][p.name]
            if p.default is not None and rng.random() < 0.4:
                given.append((p.name, None, True))
                continue
            e = None
            if env and rng.random() < 0.3:
                e = self.param_expr(self.probe(kind), env)
                if e is not None and kind == "float" and not evaluate(e, env) <= FLOAT_TOP:
                    e = None
            given.append((p.name, e if e is not None else literal(self.design_value(kind), rng), True))
        return self.arrange(given)

    def probe(self, kind: str):
        """An attribute type that takes the values of a parameter of this kind."""
        return {"int": Int(), "float": Float(), "bool": Bool(), "pair": Pair(),
                "symbol": Pair(symbols=self.symbols)}[kind]

    def call_block(self, ctx: Ctx, cur: Node, name: str, label: Optional[str]):
        def make():
            call = ast.Call(name, self.block_args(name, ctx.env), label)
            return call, sim_call(self.model, call, cur, ctx)
        return self.attempt(make, 6)

    def new_block(self, ctx: Ctx, cur: Node, where: Where, label: Optional[str]):
        rng = self.rng
        name = f"unit_{len(self.kinds) + 1}"
        kinds: dict[str, str] = {}
        params, env, args = [], {}, []
        for i in range(rng.choice([0, 1, 1, 2, 2, 3])):
            kind = rng.choice(["int", "int", "int", "float", "bool", "pair", "symbol"])
            pname = f"{rng.choice(PARAM_WORDS[kind])}{i + 1}"
            kinds[pname] = kind
            value = self.design_value(kind)
            default = None
            ints = [n for n, v in env.items() if kinds[n] == "int"]
            if rng.random() < 0.35:
                default = literal(value, rng)
                if kind == "int" and ints and rng.random() < 0.5:
                    default = ast.BinOp("+", ast.NameRef(rng.choice(ints)), ast.IntLit(1))
                    value = evaluate(default, env)
            params.append(ast.Param(pname, default))
            env[pname] = value
            args.append((pname, None if default is not None and rng.random() < 0.5 else literal(value, rng), True))
        self.kinds[name] = kinds
        self.model.set(self.blocks, name, ast.BlockDef(name, tuple(params), ()))
        call = ast.Call(name, self.arrange(args), label)
        reserved = self.auto_like()
        body: list = []

        def make_body(inner: Ctx, start: Node) -> Node:
            items, end = self.chain(inner, start, rng.randint(1, 5), where.inner(in_block=True),
                                    reserved=list(reserved))
            body.extend(items)
            return end

        node = sim_block(self.model, call, cur, ctx, body=make_body, reserved=reserved)
        self.model.set(self.blocks, name, ast.BlockDef(name, tuple(params), tuple(body)))
        return call, node

    def repeat(self, ctx: Ctx, cur: Node, where: Where, label: Optional[str]):
        rng = self.rng
        count = rng.choices([1, 2, 3], [2, 5, 3])[0]
        expr: ast.Expr = ast.IntLit(count)
        ints = [n for n, v in ctx.env.items() if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 3]
        if ints and rng.random() < 0.4:
            expr = ast.NameRef(rng.choice(ints))
            count = ctx.env[expr.name]
        inner = where.inner(labels=label is not None)

        def first(sub: Ctx, start: Node):
            items, end = self.chain(sub, start, rng.randint(1, 3), inner)
            return end, tuple(items)

        node, body = run_repeat(self.model, label, count, (), cur, ctx, first)
        return ast.Repeat(expr, body, label), node

    def sources(self, ctx: Ctx, deploy: bool) -> list[str]:
        """Names `head from` can use here, each resolving to what it names."""
        found = []
        whole = [(n, node) for n, node in self.model.layers.items() if n != "input"]
        whole += [(n, node) for n, node in self.model.scope_out.items() if node is not None]
        for full, node in whole:
            if deploy and node.train_only:
                continue
            for prefix in prefixes(self.model, ctx):
                if not full.startswith(prefix):
                    continue
                rel = full[len(prefix):]
                first = rel.split(".")[0]
                if not first.isidentifier() or first in KEYWORDS:
                    continue
                try:
                    if resolve(self.model, rel, ctx) is node:
                        found.append(rel)
                except Invalid:
                    pass
                break
        return found

    def head(self, ctx: Ctx, cur: Node, where: Where, label: Optional[str]):
        rng = self.rng
        train = rng.random() < 0.45
        source = None
        if rng.random() < 0.45:
            names = self.sources(ctx, deploy=not (train or ctx.train_only))
            if names:
                source = rng.choice(names)
        start = cur if source is None else resolve(self.model, source, ctx)
        if rng.random() < 0.3:  # one call, named by the head
            existing = [n for n in self.blocks if self.blocks[n].body]
            if existing and rng.random() < 0.3:
                name = rng.choice(existing)
                call = ast.Call(name, self.block_args(name, ctx.env))
            else:
                names = list(CALLABLE)
                spec = REGISTRY[rng.choices(names, [self.weight(n) for n in names])[0]]
                call = ast.Call(spec.name, self.op_args(spec, start.shape, ctx.env, Hints()))
            head = ast.Head(train, source, call, label)
            sim_head(self.model, head, cur, ctx)
            return head, cur
        body: list = []

        def make_body(sub: Ctx, begin: Node) -> Node:
            items, end = self.chain(sub, begin, rng.randint(1, 3), where.inner(flatten=0.4))
            body.extend(items)
            return end

        placeholder = ast.Head(train, source, (), label)
        sim_head(self.model, placeholder, cur, ctx, body=make_body)
        return replace(placeholder, body=tuple(body)), cur

    def group(self, ctx: Ctx, cur: Node, where: Where, label: str):
        local = ctx.local_name(label, "group", self.model)
        path = ctx.full(local)
        self.model.open_scope(path)
        reserved = self.auto_like()
        sub = ctx.child(local, reserved)
        items, end = self.chain(sub, cur, self.rng.randint(1, 4), where.inner(), reserved=list(reserved))
        self.model.set(self.model.scope_out, path, end)
        return ast.Group(tuple(items), label), end

    # -- the whole file ----------------------------------------------------------------------

    def net(self) -> ast.Program:
        rng = self.rng
        params, env = [], {}
        for i in range(rng.choice([0, 0, 1, 2, 3])):
            kind = rng.choice(["int", "int", "float", "bool", "pair", "symbol"])
            pname = f"{rng.choice(PARAM_WORDS[kind])}_{i + 1}"
            value = self.design_value(kind)
            default = literal(value, rng)
            ints = [n for n, v in env.items() if isinstance(v, int) and not isinstance(v, bool)]
            if kind == "int" and ints and rng.random() < 0.4:
                default = ast.BinOp(rng.choice(["+", "*"]), ast.NameRef(rng.choice(ints)), ast.IntLit(2))
                value = evaluate(default, env)
            params.append(ast.Param(pname, default))
            env[pname] = value
        r = rng.random()
        side = lambda: rng.randint(6, 14) if rng.random() < 0.8 else rng.randint(1, 5)  # noqa: E731
        if r < 0.1:
            dims = (rng.randint(2, 24),)
        elif r < 0.25:  # a sequence, C x L
            dims = (rng.randint(1, 4), rng.randint(6, 40) if rng.random() < 0.8 else rng.randint(1, 5))
        elif r < 0.35:  # a volume, C x D x H x W
            dims = (rng.randint(1, 3), rng.randint(1, 6), side(), side())
        else:
            dims = (rng.randint(1, 4), side(), side())
        reserved = self.auto_like()
        ctx = Ctx("", env, frozenset(reserved))
        cur = self.model.add(Node("input", "input", dims, False))
        items, last = self.chain(ctx, cur, rng.randint(4, 14), Where(), reserved=list(reserved))
        self.model.outputs.insert(0, (last.name.split(".")[0], last, False))
        net = ast.NetDef("random", tuple(params), (ast.InputDecl(dims),) + tuple(items))
        blocks = [b for b in self.blocks.values() if b.body]
        if blocks and rng.random() < 0.1:  # a block no net uses is checked too
            spare = rng.choice(blocks)
            blocks.append(replace(spare, name=f"spare_{len(blocks)}"))
        definitions = list(blocks)
        rng.shuffle(definitions)
        at = len(definitions) if rng.random() < 0.8 else rng.randint(0, len(definitions))
        return ast.Program(tuple(definitions[:at]) + (net,) + tuple(definitions[at:]))


def generate(seed: int) -> RandomNet:
    """A random valid net, the same for the same seed (and the same registry)."""
    gen = Generator(seed)
    program = gen.net()
    text = Writer(random.Random(seed ^ 0x5EED)).program(program)
    parsed = parse(text)
    if parsed != program:
        raise GeneratorBug(f"seed {seed}: the text does not parse to the tree it was written from\n{text}")
    model = simulate(parsed)
    mine = {n: node.shape for n, node in gen.model.layers.items()}
    if {n: node.shape for n, node in model.layers.items()} != mine or \
            [(o[0], o[1].name, o[2]) for o in model.outputs] != [(o[0], o[1].name, o[2]) for o in gen.model.outputs]:
        raise GeneratorBug(f"seed {seed}: the model of the text differs from the generator's\n{text}")
    return RandomNet(seed, text, program, model, features(program, model), gen.rejected, gen.model.refusals)


# --- writing the text ------------------------------------------------------------------------

class Writer:
    """A syntax tree as text, laid out at random (lines, spaces, comments), as people write."""

    def __init__(self, rng: Optional[random.Random] = None):
        self.rng = rng   # None: one canonical layout (minimised regressions)

    def _chance(self, p: float) -> bool:
        return self.rng is not None and self.rng.random() < p

    def expr(self, e: ast.Expr, top: bool = True) -> str:
        if isinstance(e, ast.BoolLit):
            return "true" if e.value else "false"
        if isinstance(e, ast.IntLit):
            return str(e.value)
        if isinstance(e, ast.FloatLit):
            return self.float(e.value)
        if isinstance(e, ast.ShapeLit):
            return ("×" if self._chance(0.1) else "x").join(map(str, e.dims))
        if isinstance(e, ast.NameRef):
            return e.name
        if isinstance(e, ast.TupleLit):
            return "(" + ", ".join(self.expr(x) for x in e.items) + ")"
        if isinstance(e, ast.Neg):
            inner = self.expr(e.operand, top=False)
            return f"-{inner}"
        text = f"{self.expr(e.left, False)} {e.op} {self.expr(e.right, False)}"
        return text if top else f"({text})"

    def float(self, v: float) -> str:
        spellings = [repr(v)]
        if spellings[0].startswith("0."):
            spellings.append(spellings[0][1:])
        e = f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
        if float(e) == v:
            spellings.append(e)
        if v == int(v):
            spellings.append(f"{int(v)}.")
        return self.rng.choice(spellings) if self.rng is not None else spellings[0]

    def args(self, args) -> str:
        parts = [(f"{a.name}={self.expr(a.value)}" if a.name else self.expr(a.value)) for a in args]
        return "(" + ", ".join(parts) + ("," if parts and self._chance(0.05) else "") + ")"

    def call(self, c: ast.Call) -> str:
        if not c.args:
            return c.name + ("()" if self._chance(0.1) else "")
        return c.name + self.args(c.args)

    def label(self, item) -> str:
        return f"{item.label}: " if getattr(item, "label", None) else ""

    def item(self, item, indent: int) -> str:
        return self.label(item) + self.element(item, indent)

    def element(self, item, indent: int) -> str:
        pad = " " * (4 * (indent + 1))
        end = " " * (4 * indent)
        if isinstance(item, ast.InputDecl):
            return "input " + "x".join(map(str, item.dims))
        if isinstance(item, ast.Call):
            return self.call(item)
        if isinstance(item, ast.Join):
            head = item.kind + (self.args(item.args) if item.args else "")
            chains = [self.chain(b, indent + 1, inline=True) for b in item.branches]
            if self._chance(0.5) and sum(map(len, chains)) < 70 and "\n" not in "".join(chains):
                return f"{head} {{ " + " | ".join(chains) + " }"
            lead = "| " if self._chance(0.3) else "  "
            lines = [pad + (lead if i == 0 else "| ") + self.chain(b, indent + 1, inline=True)
                     for i, b in enumerate(item.branches)]
            return f"{head} {{\n" + "\n".join(lines) + f"\n{end}}}"
        if isinstance(item, ast.Repeat):
            return f"repeat {self.expr(item.count)} " + self.braced(item.body, indent)
        if isinstance(item, ast.Head):
            words = ("train " if item.train_only else "") + "head" + (f" from {item.source}" if item.source else "")
            if isinstance(item.body, ast.Call):
                return f"{words} {self.call(item.body)}"
            return f"{words} " + self.braced(item.body, indent)
        if isinstance(item, ast.Group):
            return self.braced(item.body, indent)
        raise TypeError(item)

    def braced(self, items, indent: int) -> str:
        if self.rng is None or self.rng.random() < 0.5:
            inline = self.chain(items, indent, inline=True)
            if "\n" not in inline and len(inline) < 60:
                return "{ " + inline + " }"
        return "{\n" + self.lines(items, indent + 1) + "\n" + " " * (4 * indent) + "}"

    def chain(self, items, indent: int, inline: bool = False) -> str:
        if inline:
            parts = [self.item(i, indent) for i in items]
            if all("\n" not in p for p in parts):
                return "  ".join(parts) if self._chance(0.2) else " ".join(parts)
            return "\n".join((" " * (4 * indent) if k else "") + p for k, p in enumerate(parts))
        return self.lines(items, indent)

    def lines(self, items, indent: int) -> str:
        pad = " " * (4 * indent)
        out, line = [], []
        for item in items:
            text = self.item(item, indent)
            if "\n" in text or not line or not self._chance(0.3):
                if line:
                    out.append(pad + " ".join(line))
                line = [text]
            else:
                line.append(text)
            if self._chance(0.04):
                line[-1] += "  # note"
                out.append(pad + " ".join(line))
                line = []
        if line:
            out.append(pad + " ".join(line))
        return "\n".join(out)

    def params(self, params) -> str:
        if not params:
            return "()" if self._chance(0.2) else ""
        return "(" + ", ".join(p.name + (f" = {self.expr(p.default)}" if p.default is not None else "")
                               for p in params) + ")"

    def definition(self, d) -> str:
        word = "net" if isinstance(d, ast.NetDef) else "block"
        return f"{word} {d.name}{self.params(d.params)} {{\n" + self.lines(d.body, 1) + "\n}\n"

    def program(self, p: ast.Program) -> str:
        return "\n".join(self.definition(d) for d in p.definitions)


def write(program: ast.Program) -> str:
    """The canonical layout (for minimised regression files)."""
    return Writer(None).program(program)


# --- what a net holds (coverage) --------------------------------------------------------------

def _walk(items):
    for item in items:
        yield item
        if isinstance(item, ast.Join):
            for b in item.branches:
                yield from _walk(b)
        elif isinstance(item, ast.Head):
            yield from _walk([item.body] if isinstance(item.body, ast.Call) else item.body)
        elif isinstance(item, (ast.Repeat, ast.Group)):
            yield from _walk(item.body)


def _exprs(program: ast.Program):
    for d in program.definitions:
        for p in d.params:
            if p.default is not None:
                yield p.default
        for item in _walk(d.body):
            for a in getattr(item, "args", ()) or (item.body.args if isinstance(item, ast.Head)
                                                   and isinstance(item.body, ast.Call) else ()):
                yield a.value
            if isinstance(item, ast.Repeat):
                yield item.count


def features(program: ast.Program, model: Model) -> Counter:
    """What the net holds: each op; each attribute given another value than its default
    (`conv.stride`), each boolean value (`maxpool.ceil_mode=true`); each construct."""
    f: Counter = Counter()
    for node in model.layers.values():
        f[f"op:{node.op}"] += 1
        spec = REGISTRY[node.op]
        if node.attrs is None:
            continue
        for a in spec.attrs:
            v = node.attrs[a.name]
            if a.default is REQUIRED or v != a.default_for(node.attrs):
                f[f"attr:{node.op}.{a.name}"] += 1
            if isinstance(v, bool):
                f[f"attr:{node.op}.{a.name}={'true' if v else 'false'}"] += 1
            if isinstance(v, str):
                f[f"attr:{node.op}.{a.name}={v}"] += 1
        if spec.join and len(node.shape) == 1:
            f[f"vector {node.op}"] += 1
        if not spec.join and node.in_shape is not None and len(node.in_shape) == 1 and node.op != "flatten":
            f["a layer on a vector"] += 1
    net = next(d for d in program.definitions if isinstance(d, ast.NetDef))
    blocks = [d for d in program.definitions if isinstance(d, ast.BlockDef)]
    calls: dict[str, set] = {}
    automatic = set(CALLABLE) | set(JOINS) | {"branch", "head"}
    all_items = list(_walk(net.body)) + [i for b in blocks for i in _walk(b.body)]
    for item in all_items:
        kind = type(item).__name__.lower()
        if isinstance(item, ast.Call) and item.name in {b.name for b in blocks}:
            calls.setdefault(item.name, set()).add(write_args(item.args))
            kind = "block call"
        if isinstance(item, ast.Head):
            kind = ("train " if item.train_only else "") + "head"
            if item.source:
                f["head from" + (" a dotted name" if "." in item.source else "")] += 1
            if isinstance(item.body, ast.Call):
                f["head of one call"] += 1
                if item.body.name in calls or item.body.name in {b.name for b in blocks}:
                    f["head of one block call"] += 1
        if isinstance(item, ast.Repeat):
            kind = ("labelled " if item.label else "") + "repeat"
            if not isinstance(item.count, ast.IntLit):
                f["repeat count from a parameter"] += 1
        if isinstance(item, ast.Join):
            kind = ("labelled " if item.label else "") + "join"
        if getattr(item, "label", None) and item.label.rstrip("0123456789") in automatic:
            f["label like an automatic name"] += 1
        f[kind] += 1
    f["block"] += len(blocks)
    f["block parameter default"] += sum(p.default is not None for b in blocks for p in b.params)
    f["block called with different arguments"] += sum(len(v) > 1 for v in calls.values())
    f["block calling a block"] += sum(any(isinstance(i, ast.Call) and i.name in calls for i in _walk(b.body))
                                      for b in blocks)
    f["block no net uses"] += sum(b.name not in calls for b in blocks)
    f["net parameter"] += len(net.params)
    f["parameter arithmetic"] += sum(isinstance(e, ast.BinOp) for e in _exprs(program))
    return f


def write_args(args) -> str:
    return Writer(None).args(args)
