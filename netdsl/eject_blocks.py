"""One PyTorch class per block definition, for `netdsl eject` (netdsl/eject.py).

A block's class is written from its definition, as torchvision writes its modules: `__init__`
takes `in_channels` and the block's parameters (their literal defaults as Python defaults),
computes the computed defaults as locals, mirrors the block's `if`s with Python `if`s, and
builds each layer from its op's registry entry (`OpSpec.eject`), given attribute values that
may be expressions (`Sym`, whose repr is its Python text); each layer's input channels are an
expression too (`in_channels`, the `out` of the layer before, a sum after a concatenation, a
conditional after an `if`). Where the arms of an `if` also compute differently, `__init__`
keeps the condition as a flag (`self.use_residual`) that an `if` in `forward` reads. A block
body of numbered items in a row is an `nn.Sequential` subclass; a `seq` is an `nn.Sequential`
(of a list that its `if`s fill, where it has some); a branch or group of modules in a row is an
`nn.Sequential` of an `OrderedDict`, which keeps their names; other scopes are `nn.Module()`s
holding their layers, which the forward calls one by one. An unlabelled repeat of calls is a
loop in `__init__` that adds each pass's modules by name (`conv{i + 1}`) and one in the forward
that calls them (in a seq, a loop that appends to its list).

Each forward line ends with its value's shape per example, in the class's terms: its channels
as the class computes them (`e`, `planes * 4`), each size relative to the block input's `H x W`
(`H/2`, `H/s` for a parameter `s`, `1`) by a rule that the IR's shapes of every instance of the
block that runs the line agree with (in an `if`'s arm, the instances whose arguments take it),
`?` where none does or where it runs once per pass of a repeat.

Names follow lowering's rules (netdsl/lower.py): labels, automatic names by kind, a seq's
numbers, so the class's state_dict keys are the compiled module's. What cannot be written
soundly for every argument (a labelled repeat, a head, `from`, a `split`, a name that depends
on an `if`'s arm or a repeat's count, an op whose output channels the registry entry does not
say) raises `Untranslatable`: that block is then written per structure of its instances, as
before (eject.py).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import json
import keyword
import operator
import re
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from . import ast, evaluate, ir
from .binding import bind
from .eject import _assign, _attr, _identifier, camel
from .lower import _if_bodies, _is_index, _labels_in
from .ops import REGISTRY, Symbol
from .ops.spec import REQUIRED, OpSpec


class Untranslatable(Exception):
    """A construct that one class cannot write for every argument (the message says which)."""


# Python's precedences, lowest first: `a if c else b`, or, and, not, comparisons, sums, products, `-a`
_CONDITIONAL, _OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _NEG, _ATOM = range(9)
_PRECEDENCE = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "//": _PRODUCT, "%": _PRODUCT}


@dataclass(frozen=True)
class Sym:
    """A value known only when the class is built: its Python text (`make_divisible(exp * width,
    8)`) and how tightly that text binds. Registry hooks receive it as an attribute value and
    write it by its repr; arithmetic on it is more text, and a decision on it is impossible."""

    text: str
    precedence: int = _ATOM

    def __repr__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        raise Untranslatable(f"an op decides on `{self.text}`, which only the class's arguments give")

    def __add__(self, other): return _binop("+", self, other)
    def __radd__(self, other): return _binop("+", other, self)
    def __sub__(self, other): return _binop("-", self, other)
    def __rsub__(self, other): return _binop("-", other, self)
    def __mul__(self, other): return _binop("*", self, other)
    def __rmul__(self, other): return _binop("*", other, self)
    def __floordiv__(self, other): return _binop("//", self, other)
    def __rfloordiv__(self, other): return _binop("//", other, self)
    def __mod__(self, other): return _binop("%", self, other)
    def __rmod__(self, other): return _binop("%", other, self)
    def __neg__(self): return Sym(f"-{_operand(self, _NEG)}", _NEG)

    def __lt__(self, other):
        raise Untranslatable(f"an op compares `{self.text}`, which only the class's arguments give")

    __le__ = __gt__ = __ge__ = __lt__


class _Opaque:
    """A spatial size inside a block class, which serves every input size: arithmetic on it is a
    TypeError, and writing it is refused."""

    def __repr__(self) -> str:
        raise Untranslatable("an op writes its input's height or width")


_SPATIAL = _Opaque()


def source(v: Any) -> str:
    """A value as Python text: a word (`HS`) is a string."""
    if isinstance(v, Sym):
        return v.text
    if isinstance(v, (Symbol, str)):
        return json.dumps(str(v))
    if isinstance(v, tuple):
        return f"({', '.join(map(source, v))}{',' if len(v) == 1 else ''})"
    return repr(v)


def _precedence(v: Any) -> int:
    if isinstance(v, Sym):
        return v.precedence
    return _NEG if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0 else _ATOM


def _operand(v: Any, precedence: int, strict: bool = False) -> str:
    """`v` as an operand of an operator of `precedence`, in brackets where Python needs them
    (`strict`: also at the same precedence, as the right side of `-` needs)."""
    inner = _precedence(v)
    text = source(v)
    return f"({text})" if inner < precedence or (strict and inner == precedence) else text


def _binop(op: str, a: Any, b: Any) -> Sym:
    p = _PRECEDENCE.get(op, _COMPARE)
    left = _operand(a, p, strict=p == _COMPARE)
    return Sym(f"{left} {op} {_operand(b, p, strict=True)}", p)


# --- expressions ---------------------------------------------------------------------------

# the built-in functions of the language as Python writes them (`make_divisible`: a helper of the file)
_FUNCTIONS = {"min": "min", "max": "max", "round": "round", "int": "int", "floor": "math.floor",
              "ceil": "math.ceil", "make_divisible": "make_divisible"}
HELPERS = {
    "make_divisible": inspect.getsource(evaluate.make_divisible).replace("Optional[int]", "int | None").rstrip(),
    "divide": '''def divide(a, b):
    """`a / b` as netdsl divides: an exact division of integers stays an integer (a channel count)."""
    return a // b if isinstance(a, int) and isinstance(b, int) and b and a % b == 0 else a / b''',
}


@dataclass
class Needs:
    """What the written classes need from the file: helper functions, `import math`, OrderedDict."""

    helpers: list[str] = field(default_factory=list)
    math: bool = False
    ordered_dict: bool = False

    def helper(self, name: str) -> None:
        if name not in self.helpers:
            self.helpers.append(name)


def translate(expr: ast.Expr, env: dict[str, Any], needs: Needs) -> Any:
    """The value of `expr` where it is known (no name of `env` that is a Sym in it), else a Sym."""
    if isinstance(expr, (ast.IntLit, ast.FloatLit, ast.BoolLit)):
        return expr.value
    if isinstance(expr, ast.ShapeLit):
        return expr.dims
    if isinstance(expr, ast.NameRef):
        if expr.name in env:
            return env[expr.name]
        if expr.name in evaluate.INPUT_NAMES:
            raise Untranslatable(f"`{expr.name}`: a block class takes only its input's channels")
        return Symbol(expr.name)
    if isinstance(expr, ast.Not) and isinstance(expr.operand, ast.Compare) and expr.operand.op in ("==", "!="):
        # `not a == b` is `a != b`, as a linter would have it written
        flipped = "!=" if expr.operand.op == "==" else "=="
        return translate(replace(expr.operand, op=flipped), env, needs)
    parts = [translate(e, env, needs) for e in _children(expr)]
    if not any(isinstance(p, Sym) for p in parts):
        return _known(expr, env)
    if isinstance(expr, ast.BinOp):
        if expr.op == "/":
            needs.helper("divide")
            return Sym(f"divide({source(parts[0])}, {source(parts[1])})")
        return _binop(expr.op, *parts)
    if isinstance(expr, ast.Compare):
        return _binop(expr.op, *parts)
    if isinstance(expr, ast.Neg):
        return -parts[0]
    if isinstance(expr, ast.Not):
        return Sym(f"not {_operand(parts[0], _NOT)}", _NOT)
    if isinstance(expr, ast.BoolOp):
        p = _AND if expr.op == "and" else _OR
        return Sym(f"{_operand(parts[0], p)} {expr.op} {_operand(parts[1], p, strict=True)}", p)
    if isinstance(expr, ast.TupleLit):
        return Sym(source(tuple(parts)))
    if isinstance(expr, ast.Conditional):
        return _conditional(parts[0], parts[1], parts[2])
    return _function(expr, parts, needs)


def _children(expr: ast.Expr) -> list[ast.Expr]:
    if isinstance(expr, (ast.BinOp, ast.Compare, ast.BoolOp)):
        return [expr.left, expr.right]
    if isinstance(expr, (ast.Neg, ast.Not)):
        return [expr.operand]
    if isinstance(expr, ast.TupleLit):
        return list(expr.items)
    if isinstance(expr, ast.Conditional):
        return [expr.then, expr.cond, expr.other]
    assert isinstance(expr, ast.FuncCall)
    return [a.value for a in expr.args]


def _known(expr: ast.Expr, env: dict[str, Any]) -> Any:
    """An expression of known values, evaluated as lowering does."""
    try:
        return evaluate.evaluate(expr, {k: v for k, v in env.items() if not isinstance(v, Sym)})
    except (evaluate.EvalError, evaluate.Poisoned) as e:
        raise Untranslatable(f"an expression fails: {e}") from None


def _conditional(then: Any, cond: Any, other: Any) -> Any:
    if not isinstance(cond, Sym):
        return then if cond else other
    if then == other or cond.text == f"{source(then)} != {_operand(other, _COMPARE, strict=True)}":
        return then  # `a if a != b else b` is `a`
    return Sym(f"{_operand(then, _OR)} if {_operand(cond, _OR)} else {_operand(other, _CONDITIONAL)}",
               _CONDITIONAL)


def _function(expr: ast.FuncCall, parts: list[Any], needs: Needs) -> Sym:
    name = _FUNCTIONS.get(expr.name)
    if name is None:
        raise Untranslatable(f"the function `{expr.name}`")
    if name == "make_divisible":
        needs.helper(name)
    needs.math |= name.startswith("math.")
    args = [source(v) if a.name is None else f"{a.name}={source(v)}" for a, v in zip(expr.args, parts)]
    return Sym(f"{name}({', '.join(args)})")


# --- names, as lowering gives them -----------------------------------------------------------

@dataclass
class _Names:
    """A scope's naming state (lower._Ctx's): `path` relative to the block, the labels written
    in it, the automatic names' counts by kind (None: an `if` before made it depend on the arm),
    and for a seq built as a list its next number (None: likewise)."""

    path: str
    reserved: frozenset
    counters: dict[str, Optional[int]] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    number: Optional[int] = 0

    def full(self, local: str) -> str:
        return f"{self.path}.{local}" if self.path else local

    def child(self, local: str, items) -> "_Names":
        return _Names(self.full(local), frozenset(_labels_in(items)))

    def auto(self, kind: str) -> str:
        n = self.counters.get(kind, 0)
        if n is None:
            raise Untranslatable(f"the automatic name of a `{kind}` depends on the arm an `if` took")
        while True:
            n += 1
            name = f"{kind}{n}"
            if name not in self.reserved and name not in self.taken:
                self.counters[kind] = n
                self.taken.add(name)
                return name

    def local(self, item, kind: str) -> str:
        """The item's label, or its automatic name."""
        label = getattr(item, "label", None)
        if label is None:
            return self.auto(kind)
        self.taken.add(label)
        return label

    def append(self, item) -> int:
        """An item appended to a seq's list: the numbers it skips (an integer label ahead of the
        count), which the list fills with `nn.Identity()`. After an `if` whose arms append
        differently many, the count is unknown: fine for the unlabelled items that follow
        (nn.Sequential numbers them), not for an integer label."""
        label = getattr(item, "label", None)
        if label is None:
            self.number = None if self.number is None else self.number + 1
            return 0
        if not _is_index(label) or self.number is None or int(label) < self.number:
            raise Untranslatable(f"the label `{label}` in a seq built as a list")
        gap, self.number = int(label) - self.number, int(label) + 1
        return gap

    def copy(self) -> "_Names":
        return replace(self, counters=dict(self.counters), taken=set(self.taken))

    def merge(self, arms: list["_Names"]) -> None:
        """After an `if`: what every arm agrees on."""
        kinds = set().union(*(a.counters for a in arms))
        self.counters = {k: arms[0].counters.get(k, 0) if len({a.counters.get(k, 0) for a in arms}) == 1 else None
                         for k in kinds}
        self.taken = set().union(*(a.taken for a in arms))
        self.number = arms[0].number if len({a.number for a in arms}) == 1 else None


# --- the class of one block --------------------------------------------------------------------

@dataclass
class _Flow:
    """Where the forward is: the tensor's variable (`var`), the variable a line writes (`out`),
    its channels (a value or a Sym) and rank (sizes per example), and which layer of each
    instance it holds there (`seen`, for shape comments)."""

    var: str
    out: str
    channels: Any
    rank: int
    seen: tuple = ()

    def shape(self) -> tuple:
        return (self.channels,) + (_SPATIAL,) * (self.rank - 1)


@dataclass
class _Lines:
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    made: set[str] = field(default_factory=set)      # the containers (`nn.Module()`) made so far
    maybe: set[str] = field(default_factory=set)     # ... or made in some arm of an `if` only
    first: Optional[str] = None                      # the first attribute it sets (a flag's name)
    residual: bool = False                           # a join that takes its input itself


@dataclass
class BlockClass:
    """A written block class: its name, its source, the blocks whose classes it uses, what it
    needs from the file, the classes of netdsl.ops.modules its layers need (`helpers`), and
    what its shape comments stand for (`values`)."""

    name: str
    block: ast.BlockDef
    text: str = ""
    uses: list[str] = field(default_factory=list)
    needs: Needs = field(default_factory=Needs)
    helpers: list[str] = field(default_factory=list)
    # per forward line with a shape comment (its index in `text`): its value in each instance
    # that runs it, (the instance, its layer); a test holds the comments to these
    values: dict[int, list[tuple[ir.Scope, Optional[ir.Layer]]]] = field(default_factory=dict)


class Classes:
    """The block classes of a program, one per definition that translates (`classes`), and why
    the others do not (`refused`)."""

    def __init__(self, program: ast.Program, net: ir.Net, filename: str, taken: set[str]):
        self.blocks = {d.name: d for d in program.definitions if isinstance(d, ast.BlockDef)}
        self.calls = _block_calls(program, self.blocks)
        self.keeps = _channel_keeping_ops(net)
        self.ranks = _instance_ranks(net)
        self.net = net
        self.instances, self.inputs = _instances(net)
        self.filename = filename
        self.classes: dict[str, BlockClass] = {}
        self.refused: dict[str, str] = {}
        self.taken = taken
        for name in self.blocks:
            self.get(name)

    def get(self, name: str) -> Optional[BlockClass]:
        """The class of block `name`, written at first ask; None where it does not translate."""
        if name in self.refused:
            return None
        if name not in self.classes:
            cls = self.classes[name] = BlockClass(self._class_name(name), self.blocks[name])
            try:
                cls.text = _Writer(self, cls).write()
            # besides what the writer refuses, a registry hook given a Sym may fail its own way
            except (Untranslatable, TypeError, KeyError, ValueError) as e:
                del self.classes[name]
                self.taken.discard(cls.name)
                self.refused[name] = str(e)
                return None
        return self.classes[name]

    def _class_name(self, block: str) -> str:
        base = camel(block)
        name = next(n for n in itertools.chain([base], (f"{base}{k}" for k in itertools.count(2)))
                    if n not in self.taken)
        self.taken.add(name)
        return name

    def channels(self, name: str, env: dict[str, Any], flow: _Flow) -> Any:
        """The channels of block `name`'s output, for the arguments `env` (values or Syms of the caller)."""
        writer = _Writer(self, BlockClass("", self.blocks[name]))
        return writer.walk(env, flow)

    def layer(self, scope: ir.Scope, path: str) -> Optional[ir.Layer]:
        """The layer at `path` in a block instance (a labelled join's is its layer; another
        scope's, the one it stands for)."""
        name = f"{scope.name}.{path}"
        if name in self.net.layers:
            return self.net.layers[name]
        return self.net.scopes[name].output if name in self.net.scopes else None

    def call(self, scope: ir.Scope, in_channels: int) -> str:
        """A block instance's constructor, its arguments as its call wrote them (their values)."""
        call = self.calls[scope.span]
        block = self.blocks[scope.block]
        names = [p.name for p in block.params]
        args = [source(in_channels)]
        for k, arg in enumerate(call.args):
            name = arg.name or names[k]
            value = source(scope.arguments[name])
            args.append(value if arg.name is None else f"{name}={value}")
        return f"{self.classes[scope.block].name}({', '.join(args)})"


def _block_calls(program: ast.Program, blocks) -> dict[ast.Span, ast.Call]:
    """Every call of a block, by its span (a block instance's scope has its call's)."""
    found: dict[ast.Span, ast.Call] = {}
    stack = [item for d in program.definitions for item in d.body]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Call) and item.name in blocks:
            found[item.span] = item
        elif isinstance(item, ast.Join):
            stack += [i for branch in item.branches for i in branch]
        elif isinstance(item, (ast.Repeat, ast.Group)):
            stack += item.body
        elif isinstance(item, ast.If):
            stack += [i for _, body in item.arms for i in body] + list(item.otherwise or ())
        elif isinstance(item, ast.Head):
            stack += [item.body] if isinstance(item.body, ast.Call) else item.body
    return found


def _instance_ranks(net: ir.Net) -> dict[str, set[int]]:
    """The ranks of the inputs of each block's instances."""
    ranks: dict[str, set[int]] = {}
    for layer in net:
        for scope in ir.scopes_of(layer):
            if scope.kind != "block":
                continue
            for source_ in layer.inputs:
                if source_.shape is not None and not (source_.scope and scope in source_.scope.ancestors()):
                    ranks.setdefault(scope.block, set()).add(len(source_.shape))
    return ranks


def _instances(net: ir.Net) -> tuple[dict[str, list[ir.Scope]], dict[ir.Scope, ir.Layer]]:
    """Each block's instances, and each instance's input: the first layer from outside it that
    one of its layers reads."""
    instances: dict[str, list[ir.Scope]] = {}
    inputs: dict[ir.Scope, ir.Layer] = {}
    for scope in net.scopes.values():
        if scope.kind == "block":
            instances.setdefault(scope.block, []).append(scope)
    for layer in net:
        for scope in ir.scopes_of(layer):
            if scope.kind == "block" and scope not in inputs:
                outside = [s for s in layer.inputs if not (s.scope and scope in s.scope.ancestors())]
                if outside:
                    inputs[scope] = outside[0]
    return instances, inputs


def _channel_keeping_ops(net: ir.Net) -> set[str]:
    """The ops whose every layer in the net keeps its input's channels and rank: a block class
    gives their output its input's channels (for an op with an `out`, that attribute's value;
    for the others it cannot say)."""
    keeps, changes = set(), set()
    for layer in net:
        if layer.op is None or layer.op.join or layer.op.source or not layer.inputs:
            continue
        shape, out = layer.inputs[0].shape, layer.shape
        same = shape is not None and out is not None and len(shape) == len(out) and shape[0] == out[0]
        (keeps if same else changes).add(layer.op.name)
    return keeps - changes


# names `__init__` reads besides the parameters (its lists, `layers`, `layers2`, ..., are refused apart)
_RESERVED = frozenset({"self", "nn", "torch", "math", "super", "in_channels", "divide", "OrderedDict",
                       *_FUNCTIONS, *(n.split(".")[0] for n in _FUNCTIONS.values())})


class _Writer:
    """Writes one block's class (or, for `channels`, only walks it)."""

    def __init__(self, classes: Classes, cls: BlockClass):
        self.classes, self.cls, self.block = classes, cls, cls.block
        self.needs = cls.needs
        self.env: dict[str, Any] = {}
        self.variables: set[str] = {"x"}
        self.lists = 0  # the lists being filled, one inside the other (`layers`, `layers2`, ...)
        self.flags: set[str] = set()
        # for shape comments: the instances that run the lines being written (`unsure`: some
        # instance's arm is unknown), the names of a repeat's loop (no argument gives them),
        # and each marked line's note
        self.here: list[ir.Scope] = classes.instances.get(self.block.name, [])
        self.unsure = False
        self.loop_names: set[str] = set()
        self.notes: list[_Note] = []

    # -- the whole class

    def write(self) -> str:
        block = self.block
        for p in block.params:
            if keyword.iskeyword(p.name) or p.name in _RESERVED or re.fullmatch(r"layers\d*", p.name) \
                    or not p.name.isidentifier():
                raise Untranslatable(f"the parameter `{p.name}` is no name the class can take")
        signature, locals_ = self._signature()
        flow = _Flow("x", "x", Sym("in_channels"), self._rank(),
                     tuple((s, self.classes.inputs.get(s)) for s in self.here))
        sequential = self._sequential(flow)
        if sequential is not None:
            body = locals_ + sequential + ["super().__init__(*layers)"]
            head = "nn.Sequential"
            forward: list[str] = []
        else:
            lines = _Lines()
            names = _Names("", frozenset(_labels_in(block.body)))
            flow = self._chain(block.body, names, flow, lines)
            body = ["super().__init__()"] + locals_ + lines.init
            head = "nn.Module"
            forward = ["", "    def forward(self, x):"] + _indent(lines.forward + [f"return {flow.var}"], 8)
        body = _drop_unused(body, locals_)
        where = f"{self.classes.filename}, line {block.span.line}"
        out = [f"class {self.cls.name}({head}):", f'    """The block `{block.name}` ({where})."""', "",
               f"    def __init__({', '.join(['self', 'in_channels'] + signature)}):"]
        rows = [wrapped for line in out + _indent(body, 8) + forward for wrapped in _wrap(line)]
        return "\n".join(self._comments(rows))

    def walk(self, env: dict[str, Any], flow: _Flow) -> Any:
        """The output's channels for the arguments `env` (the lines written are dropped)."""
        self.env = dict(env)
        self.env["in_channels"] = flow.channels
        for p in self.block.params:
            if p.name not in self.env:
                self.env[p.name] = translate(p.default, self.env, self.needs)
        names = _Names("", frozenset(_labels_in(self.block.body)))
        if self._only_numbered(self.block.body):
            return self._list(self.block.body, names, flow, [], "layers").channels
        return self._chain(self.block.body, names, flow, _Lines()).channels

    def _rank(self) -> int:
        """The rank of the block's input: the same in every instance (a class serves one rank)."""
        ranks = self.classes.ranks.get(self.block.name, set())
        if len(ranks) != 1:
            raise Untranslatable("its instances take inputs of several ranks, or there is none")
        return next(iter(ranks))

    def _signature(self) -> tuple[list[str], list[str]]:
        """The parameters after `in_channels` (a literal default as a Python default), and the
        lines that compute the computed defaults (a local where no call gives it, else when
        the call gives None)."""
        self.env = {"in_channels": Sym("in_channels")}
        signature, locals_ = [], []
        defaulted = False
        for k, p in enumerate(self.block.params):
            value = None if p.default is None else translate(p.default, self.env, self.needs)
            self.env[p.name] = Sym(p.name)
            if p.default is None:
                if defaulted:
                    raise Untranslatable("a parameter without a default follows one with a default")
                signature.append(p.name)
                continue
            if not isinstance(value, Sym):
                signature.append(f"{p.name}={source(value)}")
                defaulted = True
            elif self._given(k, p.name):
                signature.append(f"{p.name}=None")
                locals_ += [f"if {p.name} is None:", f"    {p.name} = {value.text}"]
                defaulted = True
            else:
                locals_.append(f"{p.name} = {value.text}")
        return signature, locals_

    def _given(self, index: int, name: str) -> bool:
        """Does some call of the block give parameter `name` (the `index`th)?"""
        return any(sum(a.name is None for a in call.args) > index or any(a.name == name for a in call.args)
                   for call in self.classes.calls.values() if call.name == self.block.name)

    def _sequential(self, flow: _Flow) -> Optional[list[str]]:
        """The `__init__` lines of a body of integer-labelled items in a row, numbered as
        nn.Sequential numbers its children, into a list `layers`; else None."""
        if not self._only_numbered(self.block.body):
            return None
        names = _Names("", frozenset(_labels_in(self.block.body)))
        lines: list[str] = []
        self.lists = 1
        self._list(self.block.body, names, flow, lines, "layers")
        return _gather(lines, "layers")

    def _only_numbered(self, items) -> bool:
        """Are the items (in every arm of an `if`) calls and seqs, each labelled with an integer?"""
        for item in items:
            if isinstance(item, ast.If):
                if not all(self._only_numbered(body) for body in _if_bodies(item)):
                    return False
            elif not (isinstance(item, ast.Call) or isinstance(item, ast.Group) and item.seq) \
                    or item.label is None or not _is_index(item.label):
                return False
        return True

    # -- a chain of items whose modules are attributes

    def _chain(self, items, names: _Names, flow: _Flow, lines: _Lines) -> _Flow:
        for item in items:
            if isinstance(item, ast.Call):
                flow = self._call(item, names, flow, lines)
            elif isinstance(item, ast.Join):
                flow = self._join(item, names, flow, lines)
            elif isinstance(item, ast.Group):
                flow = self._group(item, names, flow, lines)
            elif isinstance(item, ast.If):
                flow = self._if(item, names, flow, lines)
            elif isinstance(item, ast.Repeat):
                flow = self._repeat(item, names, flow, lines)
            else:
                raise Untranslatable(f"a block with a `{type(item).__name__.lower()}`")
        return flow

    def _call(self, call: ast.Call, names: _Names, flow: _Flow, lines: _Lines) -> _Flow:
        if call.name in self.classes.blocks:
            path = names.full(names.local(call, call.name))
            module, channels = self._block(call, flow)
            return self._module(path, module, replace(flow, channels=channels), flow, lines)
        spec = REGISTRY.get(call.name)
        if spec is None or spec.join or spec.source:
            raise Untranslatable(f"`{call.name}` is no op a class can write")
        path = names.full(names.local(call, spec.name))
        attrs = self._attrs(spec, call.args, flow)
        made = spec.eject([flow.shape()], attrs)
        self._helpers(made.helpers)
        after = replace(flow, channels=self._channels(spec, attrs, flow))
        if made.call == "{x0}":  # the input itself: no line
            return after
        if made.parameter is not None:
            self._containers(path, lines)
            lines.init.append(_assign(path, f"nn.Parameter({made.parameter})", parameter=True))
            lines.first = lines.first or path
            return self._line(lines, made.call.format(w=_attr(path), x0=flow.var), self._at(path), after)
        if made.call is not None:
            if any(isinstance(v, Sym) for v in attrs.values()):
                raise Untranslatable(f"`{call.name}` computes in the forward with the class's arguments")
            return self._line(lines, made.call.format(x0=flow.var), self._at(path), after)
        return self._module(path, made.module, after, flow, lines)

    def _module(self, path: str, module: str, after: _Flow, flow: _Flow, lines: _Lines) -> _Flow:
        self._containers(path, lines)
        lines.init += _assign(path, module).split("\n")
        lines.first = lines.first or path
        return self._line(lines, f"{_attr(path)}({flow.var})", self._at(path), after)

    def _containers(self, path: str, lines: _Lines) -> None:
        """`self.a = nn.Module()` for each scope around `path` not made yet."""
        parts = path.split(".")[:-1]
        for k in range(1, len(parts) + 1):
            holder = ".".join(parts[:k])
            if holder in lines.made:
                continue
            if holder in lines.maybe:
                raise Untranslatable(f"the scope `{holder}` is made in only some arms of an `if`")
            lines.made.add(holder)
            lines.init.append(_assign(holder, "nn.Module()"))

    def _block(self, call: ast.Call, flow: _Flow) -> tuple[str, Any]:
        """The constructor of a block used in this one, and its output's channels."""
        used = self.classes.get(call.name)
        if used is None:
            raise Untranslatable(f"it uses the block `{call.name}`, which has no class of its own")
        if call.name not in self.cls.uses:
            self.cls.uses.append(call.name)
        params = [p.name for p in used.block.params]
        bound = bind(call.name, params, len(params), call.args)
        if bound is None:
            raise Untranslatable(f"a call of `{call.name}` that does not bind")
        env = {name: translate(arg.value, self.env, self.needs) for name, arg in bound.items()}
        args = [source(flow.channels)]
        for arg in call.args:
            value = source(translate(arg.value, self.env, self.needs))
            args.append(value if arg.name is None else f"{arg.name}={value}")
        return f"{used.name}({', '.join(args)})", self.classes.channels(call.name, env, flow)

    def _attrs(self, spec: OpSpec, args, flow: _Flow) -> dict[str, Any]:
        """The op's attributes: values, converted as lowering converts them, or Syms."""
        names = [a.name for a in spec.attrs]
        positional = sum(1 for a in spec.attrs if a.positional)
        if positional and spec.attrs[positional - 1].rest:
            raise Untranslatable(f"`{spec.name}` collects its arguments")
        bound = bind(spec.name, names, positional, args)
        if bound is None:
            raise Untranslatable(f"a call of `{spec.name}` that does not bind")
        attrs: dict[str, Any] = {}
        for attr in spec.attrs:
            if attr.name in bound:
                value = translate(bound[attr.name].value, self.env, self.needs)
            elif attr.default is REQUIRED:
                raise Untranslatable(f"`{spec.name}` without `{attr.name}`")
            else:
                value = attr.default(attrs) if callable(attr.default) else attr.default
            attrs[attr.name] = value if isinstance(value, Sym) else attr.type.convert(value, attr.name)
        return dict(spec.resolve([flow.shape()], attrs))

    def _channels(self, spec: OpSpec, attrs: dict[str, Any], flow: _Flow) -> Any:
        if "out" in attrs:
            return attrs["out"]
        if spec.name in self.classes.keeps:
            return flow.channels
        raise Untranslatable(f"the channels of `{spec.name}`'s output")

    def _helpers(self, helpers) -> None:
        self.cls.helpers += [h for h in helpers if h not in self.cls.helpers]

    def _group(self, group: ast.Group, names: _Names, flow: _Flow, lines: _Lines) -> _Flow:
        local = names.local(group, "seq" if group.seq else "group")
        if not group.seq:
            return self._scope(group.body, names, local, flow, lines)
        module, after = self._seq(group.body, names.child(local, group.body), flow, lines.init)
        return self._module(names.full(local), module, after, flow, lines)

    def _scope(self, items, names: _Names, local: str, flow: _Flow, lines: _Lines) -> _Flow:
        """A named scope (a group, a join's branch): one nn.Sequential of an OrderedDict where its
        items are modules in a row, else its layers in place, under an `nn.Module()` of its name."""
        inner = names.child(local, items)
        init: list[str] = []
        chain = self._named_chain(items, inner, flow, init)
        if chain is None:
            return self._chain(items, names.child(local, items), flow, lines)
        module, after = chain
        lines.init += init
        return self._module(names.full(local), module, after, flow, lines)

    def _named_chain(self, items, names: _Names, flow: _Flow, init: list[str]) -> Optional[tuple[str, _Flow]]:
        """`nn.Sequential(OrderedDict([...]))` of the items, and the flow after them; None where
        one is not a module (or an `if` decides)."""
        pairs = []
        for item in items:
            if isinstance(item, ast.Group) and item.seq:
                local = names.local(item, "seq")
                module, flow = self._seq(item.body, names.child(local, item.body), flow, init)
            elif isinstance(item, ast.Call) and item.name in self.classes.blocks:
                local = names.local(item, item.name)
                module, channels = self._block(item, flow)
                flow = replace(flow, channels=channels)
            elif isinstance(item, ast.Call) and item.name in REGISTRY:
                spec = REGISTRY[item.name]
                attrs = self._attrs(spec, item.args, flow)
                made = spec.eject([flow.shape()], attrs)
                if spec.join or made.module is None or made.parameter is not None or made.call == "{x0}":
                    return None  # (an identity alone is no module at all, in place)
                local = names.local(item, spec.name)
                self._helpers(made.helpers)
                module, flow = made.module, replace(flow, channels=self._channels(spec, attrs, flow))
            else:
                return None
            pairs.append(f"    ({local!r}, {module}),")
        if not pairs:
            return None
        self.needs.ordered_dict = True
        return "\n".join(["nn.Sequential(OrderedDict(["] + pairs + ["]))"]), flow

    def _seq(self, items, names: _Names, flow: _Flow, init: list[str]) -> tuple[str, _Flow]:
        """A seq's nn.Sequential: of its modules where no `if` decides them, else of a list built
        by `init`'s lines (a list's name is free again once its nn.Sequential is made)."""
        self.lists += 1
        target = "layers" if self.lists == 1 else f"layers{self.lists}"
        made: list[str] = []
        try:
            after = self._list(items, names, flow, made, target)
        finally:
            self.lists -= 1
        appended = [line[len(target) + 8:-1] for line in made if line.startswith(f"{target}.append(")]
        if len(appended) == len(made):
            return f"nn.Sequential({', '.join(appended)})", after
        init += _gather(made, target)
        return f"nn.Sequential(*{target})", after

    def _join(self, join: ast.Join, names: _Names, flow: _Flow, lines: _Lines) -> _Flow:
        spec = REGISTRY.get(join.kind)
        if spec is None or not spec.join or spec.fork is not None or join.args:
            raise Untranslatable(f"the join `{join.kind}`")
        late = join.inline and join.label is None
        local = None if late else names.local(join, join.kind)
        home = names
        if join.label is not None:
            home = _Names(names.full(local), frozenset(
                label for b in join.branches for label in _labels_in(b)) if join.inline else frozenset())
        ends = []
        for branch in join.branches:
            if join.inline:
                ends.append(self._chain(branch, home, replace(flow, out=self._variable("out")), lines))
                continue
            name = home.auto("branch")
            ends.append(self._scope(branch, home, name, replace(flow, out=self._variable(_identifier(name))), lines))
        if late:
            local = names.local(join, join.kind)
        made = spec.eject([e.shape() for e in ends], {})
        if made.call is None:
            raise Untranslatable(f"the join `{join.kind}` as a module")
        lines.residual |= any(e.var == flow.var for e in ends)
        code = made.call.format(**{f"x{k}": e.var for k, e in enumerate(ends)})
        channels = functools.reduce(operator.add, [e.channels for e in ends]) if _sums_channels(spec) \
            else ends[0].channels
        return self._line(lines, code, self._at(names.full(local)), replace(flow, channels=channels))

    def _variable(self, base: str) -> str:
        """A forward variable no other value of the class has (`out`, `out2`, ...)."""
        name = next(n for n in itertools.chain([base], (f"{base}{k}" for k in itertools.count(2)))
                    if n not in self.variables)
        self.variables.add(name)
        return name

    # -- ifs

    def _arms(self, item: ast.If) -> list[tuple[Any, tuple, int]]:
        """(condition, body, index) of the arms that may be taken, the last one's condition True
        (the index among all the arms, the `else` last)."""
        arms = []
        for index, (cond, body) in enumerate(list(item.arms) + [(None, item.otherwise or ())]):
            value = True if cond is None else translate(cond, self.env, self.needs)
            if value is False:
                continue
            if not isinstance(value, (Sym, bool)):
                raise Untranslatable("a condition that is not true or false")
            arms.append((value, body, index))
            if value is True:
                break
        return arms

    def _if(self, item: ast.If, names: _Names, flow: _Flow, lines: _Lines) -> _Flow:
        arms = self._arms(item)
        if len(arms) == 1:
            return self._chain(arms[0][1], names, flow, lines)
        runs = self._runs(item, arms)
        results = []
        for (_, body, _), run in zip(arms, runs):
            arm_names, arm_lines = names.copy(), _Lines(made=set(lines.made), maybe=set(lines.maybe))
            with self._running(*run):
                results.append((arm_names, arm_lines, self._chain(body, arm_names, flow, arm_lines)))
        names.merge([r[0] for r in results])
        conds = [c for c, *_ in arms]
        after = self._meet([r[2] for r in results], [r[1] for r in results], flow, conds, runs)
        lines.made = set.intersection(*(r[1].made for r in results))  # made in every arm
        lines.maybe |= set().union(*(r[1].made for r in results)) - lines.made
        forwards = [r[1].forward for r in results]
        if all(_unmarked(f) == _unmarked(forwards[0]) for f in forwards):
            tests = [source(c) for c in conds]
            lines.forward += self._merged(forwards, conds)
        else:
            tests = self._flags(conds, [r[1] for r in results], lines)
            lines.forward += _if_lines(tests, forwards)
        inits = [r[1].init for r in results]
        lines.init += inits[0] if all(i == inits[0] for i in inits) else _if_lines(tests, inits)
        return after

    def _meet(self, ends: list[_Flow], arms: list[_Lines], flow: _Flow, conds: list[Any],
              runs: list[tuple[list[ir.Scope], bool]]) -> _Flow:
        """The flow after an `if`: one variable (`out = x` in an arm that wrote none), its
        channels chosen as the arms choose, its layers each arm's (`runs`: who takes each arm)."""
        ends = [replace(end, seen=tuple(p for p in end.seen if p[0] in here)) for end, (here, _) in zip(ends, runs)]
        var = flow.var
        if len({e.var for e in ends}) > 1:
            var = flow.out
            for k, (end, arm, run) in enumerate(zip(ends, arms, runs)):
                if end.var != var:
                    with self._running(*run):
                        ends[k] = self._line(arm, end.var, end.seen, replace(end, out=var))
        if len({e.rank for e in ends}) > 1:
            raise Untranslatable("the arms of an `if` give different ranks")
        channels = ends[-1].channels
        for cond, end in zip(reversed(conds[:-1]), reversed(ends[:-1])):
            channels = _conditional(end.channels, cond, channels)
        return replace(flow, var=var, channels=channels, seen=tuple(p for e in ends for p in e.seen))

    def _flags(self, conds: list[Any], arms: list[_Lines], lines: _Lines) -> list[str]:
        """`self.use_...` flags for the conditions, set in `__init__`, which the forward's `if` reads."""
        tests = []
        for cond, arm in zip(conds[:-1], arms):
            base = "use_residual" if arm.residual else f"use_{_identifier(arm.first.rpartition('.')[2])}" \
                if arm.first else "use_case"
            name = next(n for n in itertools.chain([base], (f"{base}{k}" for k in itertools.count(2)))
                        if n not in self.flags)
            self.flags.add(name)
            lines.init.append(f"self.{name} = {source(cond)}")
            tests.append(f"self.{name}")
        return tests + ["True"]

    # -- shape comments

    def _line(self, lines: _Lines, code: str, seen: tuple, after: _Flow) -> _Flow:
        """`out = code` in the forward, marked for its shape comment (`seen`: its value's layer in
        each instance that runs it); the flow after it."""
        channels = after.channels
        if self.loop_names and re.search(rf"\b({'|'.join(self.loop_names)})\b", source(channels)):
            channels = Sym("?")  # a local of `__init__`'s loop, which the forward has not
        self.notes.append(_Note(channels, seen, self.unsure, after.rank))
        lines.forward.append(f"{after.out} = {code}{_MARK}{len(self.notes) - 1}")
        return replace(after, var=after.out, seen=seen)

    def _at(self, path: str) -> tuple:
        """The layer at `path` in each instance that runs the line."""
        return tuple((s, self.classes.layer(s, path)) for s in self.here)

    def _runs(self, item: ast.If, arms) -> list[tuple[list[ir.Scope], bool]]:
        """Per arm, the instances that take it, and whether that is unsure (some instance's
        arguments do not decide its arm: a condition on a repeat's `as`)."""
        taken = {s: _taken(item, s.arguments) for s in self.here}
        unsure = self.unsure or None in taken.values()
        return [([s for s in self.here if taken[s] == index], unsure) for *_, index in arms]

    @contextlib.contextmanager
    def _running(self, here: list[ir.Scope], unsure: bool):
        """Lines written inside, an arm's, are run by the instances `here` only."""
        saved = self.here, self.unsure
        self.here, self.unsure = here, unsure
        try:
            yield
        finally:
            self.here, self.unsure = saved

    def _merged(self, forwards: list[list[str]], conds: list[Any]) -> list[str]:
        """The forward lines of arms that write the same code, each comment over every arm's
        instances (its channels chosen as the arms choose)."""
        out = []
        for rows in zip(*forwards):
            notes = [self.notes[int(m.group(1))] for m in map(_MARKED.search, rows) if m]
            if not notes:
                out.append(rows[0])
                continue
            channels = notes[-1].channels
            for cond, note in zip(reversed(conds[:-1]), reversed(notes[:-1])):
                channels = _conditional(note.channels, cond, channels)
            seen = tuple(p for n in notes for p in n.seen)
            self.notes.append(_Note(channels, seen, any(n.unsure for n in notes), notes[0].rank))
            out.append(_MARKED.sub(f"{_MARK}{len(self.notes) - 1}", rows[0]))
        return out

    def _comments(self, rows: list[str]) -> list[str]:
        """The class's rows, each marked one ending with its shape comment (where that keeps
        it in the line length: else its channels are `?`), recorded in the class's `values`."""
        written = "\n".join(_unmarked(rows))
        # a size may be a parameter's fraction, of a parameter the class has (not a dropped local)
        params = [p.name for p in self.block.params if re.search(rf"\b{p.name}\b", written)]
        out = []
        for row in rows:
            found = _MARKED.search(row)
            if found is None:
                out.append(row)
                continue
            note = self.notes[int(found.group(1))]
            code = row[:found.start()]
            text = f"{code}  # {_comment(note, self.classes.inputs, params)}"
            if len(text) > _WIDTH:
                text = f"{code}  # {_comment(replace(note, channels=Sym('?')), self.classes.inputs, params)}"
            self.cls.values[len(out)] = list(note.seen)
            out.append(text)
        return out

    # -- a seq's items, appended to a list

    def _list(self, items, names: _Names, flow: _Flow, lines: list[str], target: str) -> _Flow:
        for item in items:
            if isinstance(item, ast.If):
                flow = self._list_if(item, names, flow, lines, target)
                continue
            if isinstance(item, ast.Repeat):
                flow = self._list_repeat(item, names, flow, lines, target)
                continue
            if not isinstance(item, (ast.Call, ast.Group)) or isinstance(item, ast.Group) and not item.seq:
                raise Untranslatable("a seq holds what is not a module in a row")
            lines += [f"{target}.append(nn.Identity())"] * names.append(item)
            if isinstance(item, ast.Group):
                module, flow = self._seq(item.body, _Names("", frozenset(_labels_in(item.body))), flow, lines)
                lines.append(f"{target}.append({module})")
                continue
            module, flow = self._list_call(item, flow)
            lines.append(f"{target}.append({module})")
        return flow

    def _list_call(self, call: ast.Call, flow: _Flow) -> tuple[str, _Flow]:
        if call.name in self.classes.blocks:
            module, channels = self._block(call, flow)
            return module, replace(flow, channels=channels)
        spec = REGISTRY.get(call.name)
        if spec is None or spec.join or spec.source:
            raise Untranslatable(f"`{call.name}` is no op a class can write")
        attrs = self._attrs(spec, call.args, flow)
        made = spec.eject([flow.shape()], attrs)
        if made.module is None or made.parameter is not None:
            raise Untranslatable(f"`{call.name}` in a seq: it is no module")
        self._helpers(made.helpers)
        return made.module, replace(flow, channels=self._channels(spec, attrs, flow))

    def _list_if(self, item: ast.If, names: _Names, flow: _Flow, lines: list[str], target: str) -> _Flow:
        arms = self._arms(item)
        if len(arms) == 1:
            return self._list(arms[0][1], names, flow, lines, target)
        results = []
        for _, body, _ in arms:
            arm_names, arm_lines = names.copy(), []
            results.append((arm_names, arm_lines, self._list(body, arm_names, flow, arm_lines, target)))
        names.merge([r[0] for r in results])
        conds = [c for c, *_ in arms]
        after = self._meet([r[2] for r in results], [_Lines() for _ in results], flow, conds, self._runs(item, arms))
        lines += _if_lines([source(c) for c in conds], [r[1] for r in results])
        return after


    # -- unlabelled repeats: Python loops

    def _repeat(self, rep: ast.Repeat, names: _Names, flow: _Flow, lines: _Lines) -> _Flow:
        """A loop in `__init__` that adds each pass's modules, named by kind and pass as lowering
        names them (`conv{i + 1}`), and one in the forward that calls them."""
        count, index = self._count(rep)
        kinds = _kinds(rep.body, self.classes.blocks)
        for kind in set(kinds):
            if names.counters.get(kind, 0) is None or any(re.fullmatch(rf"{re.escape(kind)}\d+", label)
                                                          for label in names.reserved):
                raise Untranslatable(f"the automatic names of a repeat's `{kind}`s")
        if names.path:
            self._containers(names.full("_"), lines)
        times = f"self.{self._times(count, names)}" if isinstance(count, Sym) else source(count)
        body = _Lines(made=lines.made, maybe=lines.maybe)
        start = flow if flow.var == flow.out else replace(flow, var=flow.out)
        setup, update, after = self._passes(rep, index, start, body,
                                            lambda f, out: self._pass(rep.body, kinds, names, index, f, out))
        keep = [f"{times} = {source(count)}"] if isinstance(count, Sym) else []  # for the forward's loop
        lines.init += setup + keep + _loop(index, source(count), body.init + update)
        if flow.var != flow.out:
            self._line(lines, flow.var, flow.seen, flow)
        lines.forward += _loop(index, times, body.forward)
        for kind in set(kinds):
            names.counters[kind] = None if isinstance(count, Sym) else names.counters.get(kind, 0) + \
                count * kinds.count(kind)
        return after

    def _list_repeat(self, rep: ast.Repeat, names: _Names, flow: _Flow, lines: list[str], target: str) -> _Flow:
        """A loop that appends each pass's modules to the seq's list."""
        count, index = self._count(rep)
        if any(getattr(item, "label", None) is not None for item in rep.body):
            raise Untranslatable("a label inside a repeat in a seq")

        def one(f: _Flow, out: _Lines) -> _Flow:
            return self._list(rep.body, names.copy(), f, out.init, target)

        body = _Lines()
        setup, update, after = self._passes(rep, index, flow, body, one)
        lines += setup + _loop(index, source(count), body.init + update)
        names.number = None
        return after

    def _count(self, rep: ast.Repeat) -> tuple[Any, str]:
        """The count of an unlabelled repeat (a value or a Sym), and its loop's variable (its `as`)."""
        if rep.label is not None:
            raise Untranslatable("a labelled repeat (a scope per pass)")
        count = translate(rep.count, self.env, self.needs)
        if not isinstance(count, Sym) and not (isinstance(count, int) and not isinstance(count, bool)):
            raise Untranslatable("a repeat count that is no integer")
        index = rep.var or next(n for n in ("i", "j", "k", "n", "index") if n not in self.env)
        if index in self.env or index in _RESERVED:
            raise Untranslatable(f"a repeat's `as {index}`, a name the class has already")
        return count, index

    def _times(self, count: Sym, names: _Names) -> str:
        """The attribute that keeps a repeat's count for the forward's loop."""
        base = count.text if count.text.isidentifier() else "repeats"
        name = next(n for n in itertools.chain([base], (f"{base}{k}" for k in itertools.count(2)))
                    if n not in self.flags and n not in names.reserved and n not in names.taken)
        self.flags.add(name)
        return name

    def _passes(self, rep: ast.Repeat, index: str, flow: _Flow, body: _Lines,
                walk) -> tuple[list[str], list[str], _Flow]:
        """Write one pass into `body` (`walk(flow, lines)`), the channels it starts from a local of
        `__init__` (`channels_in`, as torchvision's loops keep theirs) where its output has other
        channels than its input: the lines that set that local before the loop and at the end of
        each pass, and the flow after the loop."""
        outer = self.env.get(index)
        self.env[index] = Sym(index)
        loop_names, unsure = set(self.loop_names), self.unsure
        self.loop_names.add(index)
        self.unsure = True  # a line in the loop stands for a layer per pass
        try:
            first = self._dry(walk, flow).channels
            if re.search(rf"\b{index}\b", source(first)):
                raise Untranslatable("a repeat whose passes' channels depend on the pass")
            if first == flow.channels:  # each pass keeps the channels
                return [], [], replace(walk(flow, body), channels=flow.channels)
            if self._dry(walk, replace(flow, channels=first)).channels != first:
                raise Untranslatable("a repeat whose every pass changes the channels")
            local = next(n for n in itertools.chain(["channels_in"], (f"channels_in{k}" for k in itertools.count(2)))
                         if n not in self.env)
            self.env[local] = Sym(local)
            self.loop_names.add(local)
            done = walk(replace(flow, channels=Sym(local)), body)
            if done.channels != first:
                raise Untranslatable("a repeat whose passes' channels depend on their input's")
        finally:
            self.loop_names, self.unsure = loop_names, unsure
            self.env.pop(index)
            if outer is not None:
                self.env[index] = outer
        count = translate(rep.count, self.env, self.needs)
        channels = _conditional(first, _binop(">", count, 0), flow.channels) if isinstance(count, Sym) else \
            first if count > 0 else flow.channels
        return [f"{local} = {source(flow.channels)}"], [f"{local} = {source(first)}"], replace(done, channels=channels)

    def _dry(self, walk, flow: _Flow) -> _Flow:
        """`walk` into lines that are dropped, the writer's names as they were after it."""
        saved = set(self.variables), set(self.flags), self.lists
        try:
            return walk(flow, _Lines())
        finally:
            self.variables, self.flags, self.lists = saved

    def _pass(self, body, kinds: list[str], names: _Names, index: str, flow: _Flow, lines: _Lines) -> _Flow:
        """One pass of an unlabelled repeat of calls: each module added by its name in the pass."""
        holder = _attr(names.path) if names.path else "self"
        seen: dict[str, int] = {}
        for call, kind in zip(body, kinds):
            seen[kind] = seen.get(kind, 0) + 1
            per_pass, first = kinds.count(kind), names.counters.get(kind, 0) + seen[kind]
            name = f'f"{kind}{{{index + " + " if per_pass == 1 else f"{per_pass} * {index} + "}{first}}}"'
            module, call_code, after = self._pass_item(call, flow)
            if module is not None:
                lines.init.append(f"{holder}.add_module({name}, {module})")
                call_code = f"getattr({holder}, {name})({flow.var})"
            if call_code is not None:
                after = self._line(lines, call_code, (), after)
            flow = after
        return flow

    def _pass_item(self, call: ast.Call, flow: _Flow) -> tuple[Optional[str], Optional[str], _Flow]:
        """A call in a repeat: its module (or None), its forward's code where it has no module
        (None: the input itself), and the flow after it."""
        if call.name in self.classes.blocks:
            module, channels = self._block(call, flow)
            return module, None, replace(flow, channels=channels)
        spec = REGISTRY[call.name]
        attrs = self._attrs(spec, call.args, flow)
        made = spec.eject([flow.shape()], attrs)
        self._helpers(made.helpers)
        after = replace(flow, channels=self._channels(spec, attrs, flow))
        if made.parameter is not None or made.call is not None and any(isinstance(v, Sym) for v in attrs.values()):
            raise Untranslatable(f"`{call.name}` in a repeat")
        if made.call == "{x0}":
            return None, None, after
        if made.call is not None:
            return None, made.call.format(x0=flow.var), after
        return made.module, None, after


# --- shape comments ------------------------------------------------------------------------------

# a forward line is written with a mark, `\0` and its note's number, until the class's text is
# whole: an `if` whose arms write the same code merges their notes first
_MARK = "\0"
_MARKED = re.compile(_MARK + r"(\d+)")


@dataclass(frozen=True)
class _Note:
    """What a forward line's shape comment says: its value's channels (a value or a Sym), and
    per instance that runs it, (the instance, the layer it computes there); `unsure`: some
    instances that run it are not known, or it runs once per pass of a repeat; its rank."""

    channels: Any
    seen: tuple
    unsure: bool
    rank: int


def _unmarked(lines: list[str]) -> list[str]:
    return [_MARKED.sub("", line) for line in lines]


def _taken(item: ast.If, arguments) -> Optional[int]:
    """The index of the arm of `item` that a block instance takes (the `else` last), as
    lowering decided it from the instance's arguments; None where they do not decide it."""
    for index, (cond, _) in enumerate(item.arms):
        try:
            value = evaluate.evaluate(cond, arguments)
        except (evaluate.EvalError, evaluate.Poisoned):
            return None
        if not isinstance(value, bool):
            return None
        if value:
            return index
    return len(item.arms)


_AXES = {2: "L", 3: "HW", 4: "DHW"}  # the letters of an input's sizes after its channels, by rank


def _comment(note: _Note, inputs: dict[ir.Scope, ir.Layer], params: list[str]) -> str:
    """`e x H/s x W/s`: the channels as the class computes them, then each size relative to the
    block input's, by a rule that holds in every instance that runs the line (`?` where none
    does, or where not every such instance is known), which may read the `params`."""
    channels = _operand(note.channels, _PRODUCT)
    pairs = [(inputs.get(scope), layer) for scope, layer in note.seen]
    known = not note.unsure and all(
        i is not None and o is not None and i.shape is not None and o.shape is not None
        and len(i.shape) == len(o.shape) == note.rank for i, o in pairs)
    sizes = [_size([(i.shape[d], o.shape[d]) for i, o in pairs], [s.arguments for s, _ in note.seen], params, letter)
             if known else "?" for d, letter in enumerate(_AXES.get(note.rank, "?" * (note.rank - 1)), 1)]
    parts = [channels] + sizes
    return "x".join(parts) if all(p.isdigit() for p in parts) else " x ".join(parts)


def _size(pairs: list[tuple[int, int]], arguments: list, params: list[str], letter: str) -> str:
    """One size of a line's output given the block input's (`pairs`, per instance, with its
    `arguments`): `H`, `1`, `H/2`, `H*2`, `H/s` for one of the `params`, a number, or `?`."""
    if not pairs:
        return "?"
    if all(o == i for i, o in pairs):
        return letter
    if all(o == 1 for _, o in pairs):
        return "1"
    for k in range(2, 33):
        if all(i == o * k for i, o in pairs):
            return f"{letter}/{k}"
        if all(o == i * k for i, o in pairs):
            return f"{letter}*{k}"
    for name in params:
        if all(_is_count(a.get(name)) and i == o * a[name] for (i, o), a in zip(pairs, arguments)):
            return f"{letter}/{name}"
    outs = {o for _, o in pairs}
    return str(outs.pop()) if len(outs) == 1 else "?"


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


# --- small helpers ------------------------------------------------------------------------------

def _sums_channels(spec: OpSpec) -> bool:
    """Does the join give the sum of its inputs' channels (a concatenation)? Its shape rule says."""
    return spec.infer([(2, 3, 3), (2, 3, 3)], {})[0] == 4


def _kinds(body, blocks) -> list[str]:
    """The kind (an op's or block's name) of each call of a repeat's body, whose automatic names
    count by kind; Untranslatable for anything but unlabelled calls of ops and blocks."""
    kinds = []
    for item in body:
        if not isinstance(item, ast.Call) or item.label is not None or \
                item.name not in blocks and (item.name not in REGISTRY or REGISTRY[item.name].join):
            raise Untranslatable("a repeat of what is not unlabelled calls")
        kinds.append(item.name)
    return kinds


def _loop(index: str, count: str, body: list[str]) -> list[str]:
    """`for index in range(count):` and its body (none where the body is empty; `_` for an
    index the body does not read)."""
    if not body:
        return []
    read = any(re.search(rf"\b{index}\b", line) for line in body)
    return [f"for {index if read else '_'} in range({count}):"] + _indent(body, 4)


def _if_lines(tests: list[str], bodies: list[list[str]]) -> list[str]:
    """`if a: ... elif b: ... else: ...` (the last test `True`: an `else`), empty arms left out
    where Python allows."""
    while bodies and not bodies[-1] and len(bodies) > 1 and tests[-1] == "True":
        tests, bodies = tests[:-1], bodies[:-1]
    if not any(bodies):
        return []
    out = []
    for k, (test, body) in enumerate(zip(tests, bodies)):
        head = "else:" if test == "True" and k else f"{'elif' if k else 'if'} {test}:"
        out += [head] + _indent(body or ["pass"], 4)
    return out


def _gather(lines: list[str], target: str) -> list[str]:
    """`layers = [a, b]` for the appends before the first `if`, then the rest."""
    first = []
    for line in lines:
        if not line.startswith(f"{target}.append("):
            break
        first.append(line[len(target) + 8:-1])
    rest = lines[len(first):]
    if len(first) <= 1 and not rest:
        return [f"{target} = [{', '.join(first)}]"]
    opened = [f"{target} = ["] + [f"    {m}," for m in first] + ["]"] if first else [f"{target} = []"]
    return opened + rest


def _drop_unused(body: list[str], locals_: list[str]) -> list[str]:
    """The body without the computed defaults it never reads."""
    for line in locals_:
        if " = " not in line or line.startswith(("if ", " ")):
            continue
        name = line.split(" = ")[0]
        rest = "\n".join(b for b in body if b != line)
        if not re.search(rf"\b{name}\b", rest):
            body = [b for b in body if b != line]
    return body


_WIDTH = 120  # the project's line length (ruff, pyproject.toml)


def _wrap(line: str) -> list[str]:
    """A line longer than `_WIDTH` broken inside its outermost brackets, the arguments packed
    one indent deeper (each one too long broken likewise)."""
    if len(line) <= _WIDTH:
        return [line]
    pad = line[:len(line) - len(line.lstrip())]
    opened, closed = _outermost(line)
    if opened is None:
        return [line]
    inner = pad + "    "
    rows: list[str] = []
    for part in _split_args(line[opened + 1:closed]):
        if rows and len(rows[-1]) + len(part) + 2 <= _WIDTH and len(_wrap(inner + part)) == 1:
            rows[-1] += f" {part},"
        else:
            rows += _wrap(f"{inner}{part},")
    return [line[:opened + 1]] + rows + [pad + line[closed:]]


def _outermost(line: str) -> tuple[Optional[int], int]:
    """Where the widest call's brackets or list at the line's top level open and close: inside
    them Python lets the line break, and a comma after the last item changes nothing (after a
    bracketed expression it would make a tuple)."""
    depth, opened, best, quote = 0, 0, (None, 0), None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            opened = i if depth == 0 else opened
            depth += 1
        elif ch in ")]":
            depth -= 1
            listed = line[opened] == "[" or opened > 0 and (line[opened - 1].isalnum() or line[opened - 1] in "_)]")
            if depth == 0 and listed and (best[0] is None or i - opened > best[1] - best[0]):
                best = (opened, i)
    return best


def _split_args(text: str) -> list[str]:
    parts, depth, current, quote = [], 0, "", None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    return parts + ([current.strip()] if current.strip() else [])


def _indent(lines: list[str], n: int) -> list[str]:
    return [(" " * n + line) if line else line for line in lines]


__all__ = ["BlockClass", "Classes", "HELPERS", "Sym", "Untranslatable"]
