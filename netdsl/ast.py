"""The syntax tree of a .net file: one dataclass per grammar rule.

Every node carries the `Span` of the text it came from, so later stages can point at it.
Spans are left out of equality (`compare=False`): two trees are equal when they say the same
thing, wherever it was written, which is what a parse/print round trip needs.

Nodes are never changed after the parser makes them (`dataclasses.replace` makes new ones).
They are not declared frozen only because a frozen dataclass takes four times as long to
build, and the parser builds one per token or so: a third of the parse of a large net.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Union


class Span(NamedTuple):
    """A region of source text: 1-based line and column of its first character, and of the
    character just past its end. (A NamedTuple: immutable, hashable and quick to make.)"""

    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


NOWHERE = Span(0, 0, 0, 0)


def _span() -> Span:
    return field(default=NOWHERE, compare=False, repr=False)


# --- expressions -------------------------------------------------------------------------

@dataclass(slots=True)
class IntLit:
    value: int
    span: Span = _span()


@dataclass(slots=True)
class FloatLit:
    value: float
    span: Span = _span()


@dataclass(slots=True)
class BoolLit:
    value: bool
    span: Span = _span()


@dataclass(slots=True)
class ShapeLit:
    """`3x224x224` or `7x7`: several sizes written as one token."""

    dims: tuple[int, ...]
    span: Span = _span()


@dataclass(slots=True)
class NameRef:
    """A parameter of the net or block, or a symbol an attribute accepts (`pad=same`)."""

    name: str
    span: Span = _span()


def _depth():
    # How deeply the expression nests (the parser limits it); not part of what it says.
    return field(default=1, compare=False, repr=False)


@dataclass(slots=True)
class TupleLit:
    items: tuple["Expr", ...]
    span: Span = _span()
    depth: int = _depth()


@dataclass(slots=True)
class BinOp:
    op: str  # one of + - * / // %
    left: "Expr"
    right: "Expr"
    span: Span = _span()
    depth: int = _depth()


@dataclass(slots=True)
class Neg:
    operand: "Expr"
    span: Span = _span()
    depth: int = _depth()


@dataclass(slots=True)
class Compare:
    """`a == b`, `a < b`, ...: one comparison (they do not chain)."""

    op: str  # one of == != < <= > >=
    left: "Expr"
    right: "Expr"
    span: Span = _span()
    depth: int = _depth()


@dataclass(slots=True)
class BoolOp:
    """`a and b`, `a or b`: both sides true or false; the right one is evaluated only when
    the left does not decide (as in Python)."""

    op: str  # "and" or "or"
    left: "Expr"
    right: "Expr"
    span: Span = _span()
    depth: int = _depth()


@dataclass(slots=True)
class Not:
    operand: "Expr"
    span: Span = _span()
    depth: int = _depth()


@dataclass(slots=True)
class Conditional:
    """`then if cond else other`: only the chosen side is evaluated."""

    then: "Expr"
    cond: "Expr"
    other: "Expr"
    span: Span = _span()
    depth: int = _depth()


@dataclass(slots=True)
class FuncCall:
    """`min(a, b)`, `make_divisible(v, 8)`: a call of a built-in pure function."""

    name: str
    args: tuple["Arg", ...]
    span: Span = _span()
    name_span: Span = _span()
    depth: int = _depth()


Expr = Union[IntLit, FloatLit, BoolLit, ShapeLit, NameRef, TupleLit, BinOp, Neg, Compare, BoolOp, Not,
             Conditional, FuncCall]


# --- layers and structure ----------------------------------------------------------------

@dataclass(slots=True)
class Arg:
    """One argument of a call: positional when `name` is None."""

    name: Optional[str]
    value: Expr
    span: Span = _span()


@dataclass(slots=True)
class Call:
    """A use of an op or a block: `conv(64, 7, stride=2)`, `relu`.

    A `label` (here and on every item that has one) is the local name as a string: written
    bare (`conv1:`), as an integer (`0:`, kept as its decimal digits, "0") or quoted
    (`"block1-0":`, kept without the quotes)."""

    name: str
    args: tuple[Arg, ...] = ()
    label: Optional[str] = None
    span: Span = _span()
    name_span: Span = _span()
    label_span: Span = _span()


@dataclass(slots=True)
class Join:
    """`concat { a | b }`, `add { a | b }`: parallel branches from one input, made one tensor
    by the join op `kind` (a registry name, with its arguments). An `inline` join
    (`add inline { a | b }`) makes no scope for each branch: the branches' layers are named in
    the enclosing scope (in the join's own, when it is labelled)."""

    kind: str
    args: tuple[Arg, ...]
    branches: tuple[tuple["Item", ...], ...]
    label: Optional[str] = None
    span: Span = _span()
    name_span: Span = _span()
    label_span: Span = _span()
    inline: bool = False


@dataclass(slots=True)
class Repeat:
    """`repeat N { body }`: the body N times in a row; `repeat N as i { body }` names the pass
    (0 to N-1) `var` inside the body."""

    count: Expr
    body: tuple["Item", ...]
    label: Optional[str] = None
    span: Span = _span()
    label_span: Span = _span()
    var: Optional[str] = None
    var_span: Span = _span()


@dataclass(slots=True)
class If:
    """`if c1 { a } else if c2 { b } else { c }`: `arms` are the (condition, body) pairs in
    order, `otherwise` the body of the final `else` (None without one)."""

    arms: tuple[tuple[Expr, tuple["Item", ...]], ...]
    otherwise: Optional[tuple["Item", ...]] = None
    span: Span = _span()


@dataclass(slots=True)
class Head:
    """An extra output, tapped from `source` (or from the current tensor). `body` is a chain,
    or a single `Call` that takes the head's label as its name."""

    train_only: bool
    source: Optional[str]
    body: Union[tuple["Item", ...], Call]
    label: Optional[str] = None
    span: Span = _span()
    source_span: Span = _span()
    label_span: Span = _span()


@dataclass(slots=True)
class From:
    """`from PATH` at the start of a join branch: the branch starts from that earlier layer's
    output instead of the join's input. Only the parser puts it there, first in its branch."""

    source: str
    span: Span = _span()


@dataclass(slots=True)
class Group:
    """`name: { body }`: a named scope around a chain; `seq { body }` (`seq` true) one whose
    unlabelled items are numbered 0, 1, 2, ..., as nn.Sequential numbers its children (it may
    be unlabelled)."""

    body: tuple["Item", ...]
    label: Optional[str] = None
    span: Span = _span()
    label_span: Span = _span()
    seq: bool = False


@dataclass(slots=True)
class InputDecl:
    """`input 3x224x224` (`dims`), or `input (3, res, res)`: `sizes`, expressions of the net's
    parameters (then `dims` is empty until lowering evaluates them)."""

    dims: tuple[int, ...]
    span: Span = _span()
    sizes: Optional[tuple["Expr", ...]] = None


Element = Union[Call, Join, Repeat, Head, Group]
Item = Union[InputDecl, Call, Join, Repeat, Head, Group, If, From]


# --- definitions -------------------------------------------------------------------------

@dataclass(slots=True)
class Param:
    name: str
    default: Optional[Expr] = None
    span: Span = _span()


@dataclass(slots=True)
class Definition:
    """What `block` and `net` definitions share: a name, parameters and a body."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Item, ...]
    span: Span = _span()
    name_span: Span = _span()


@dataclass(slots=True)
class BlockDef(Definition):
    """`block NAME(params) { body }`."""


@dataclass(slots=True)
class NetDef(Definition):
    """`net NAME(params) { body }`."""


@dataclass(slots=True)
class Program:
    """A whole file; `span` covers all of its text."""

    definitions: tuple[Definition, ...]
    span: Span = _span()
