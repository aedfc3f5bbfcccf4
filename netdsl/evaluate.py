"""Expressions: the value of an argument, a parameter default, a repeat count or a condition.

Values are ints, floats, bools, tuples, or a `Symbol` for a bare word that is not a parameter
(the attribute it is given to decides whether that is allowed). A value that failed to
evaluate is POISON: its error is already reported, and later uses pass it on silently.

Besides arithmetic there are comparisons, `and`/`or`/`not` (on true and false only), Python's
`a if c else b`, and the built-in pure functions of `FUNCTIONS`; no name ever reaches Python.
The names of `INPUT_NAMES` are the sizes of the input (see `input_names`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Optional

from . import ast, codes
from .diagnostics import Help, did_you_mean
from .ops import Symbol, fmt_value

MAX_INT_BITS = 256  # no size in a net comes near; bigger numbers only arise from mistakes


class _Poison:
    """The value of an expression that failed; its error is already reported."""

    def __repr__(self) -> str:
        return "POISON"


POISON = _Poison()


class Poisoned(Exception):
    """Evaluating used a POISON value: fail quietly, the cause is already reported."""


class EvalError(Exception):
    """A mistake in an expression, to be reported at `span`; `help` may be a function that
    makes the help line (see `DiagnosticBag.error`)."""

    def __init__(self, code: str, message: str, span: ast.Span, help: Help = None):
        super().__init__(message)
        self.code, self.message, self.span, self.help = code, message, span, help


class Unavailable:
    """The value of an `in_*` name for an input without that axis (`in_height` of a vector):
    using it is an error that says why."""

    __slots__ = ("shape", "axis")

    def __init__(self, shape: tuple[int, ...], axis: str):
        self.shape, self.axis = shape, axis

    def __repr__(self) -> str:
        return f"Unavailable({self.axis})"


# The sizes of an input by rank: channels first, then the spatial axes.
_AXES = {2: ("length",), 3: ("height", "width"), 4: ("depth", "height", "width")}
INPUT_NAMES = ("in_channels", "in_depth", "in_height", "in_width", "in_length")


def input_names(shape: Optional[tuple[int, ...]]) -> dict[str, Any]:
    """The `in_*` names for an input of `shape`: `in_channels` is its first size at any rank,
    `in_length` the second of a sequence (C x L), `in_height` and `in_width` the last two of an
    image or volume, `in_depth` the second of a volume (C x D x H x W). An unknown shape (an
    earlier error) makes them all POISON; a name the shape has no axis for is `Unavailable`."""
    if shape is None:
        return dict.fromkeys(INPUT_NAMES, POISON)
    axes = _AXES.get(len(shape), ())
    names: dict[str, Any] = {"in_channels": shape[0]}
    for axis in ("depth", "height", "width", "length"):
        names[f"in_{axis}"] = shape[1 + axes.index(axis)] if axis in axes else Unavailable(shape, axis)
    return names


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def evaluate(expr: ast.Expr, env: Mapping[str, Any]) -> Any:
    """The value of an expression in `env` (parameter name -> value); raises EvalError or Poisoned."""
    if isinstance(expr, (ast.IntLit, ast.FloatLit, ast.BoolLit)):
        return expr.value
    if isinstance(expr, ast.ShapeLit):
        return expr.dims
    if isinstance(expr, ast.NameRef):
        if expr.name not in env:
            return Symbol(expr.name)
        value = env[expr.name]
        if value is POISON:
            raise Poisoned
        if value.__class__ is Unavailable:
            shape = "x".join(map(str, value.shape))
            raise EvalError(codes.UNDEFINED_NAME, f"`{expr.name}` is not defined here: the input, {shape}, "
                            f"has no {value.axis}", expr.span, _axes_help(value.shape))
        return value
    if isinstance(expr, ast.TupleLit):
        return tuple(evaluate(e, env) for e in expr.items)
    if isinstance(expr, ast.Neg):
        v = _operand(expr.operand, env)
        return -v
    if isinstance(expr, ast.Compare):
        return _compare(expr, env)
    if isinstance(expr, ast.BoolOp):
        left = _boolean(expr.left, env, f"`{expr.op}`")
        if left == (expr.op == "or"):  # decided by the left side, as in Python
            return left
        return _boolean(expr.right, env, f"`{expr.op}`")
    if isinstance(expr, ast.Not):
        return not _boolean(expr.operand, env, "`not`")
    if isinstance(expr, ast.Conditional):
        chosen = expr.then if _boolean(expr.cond, env, "the condition of `a if c else b`") else expr.other
        return evaluate(chosen, env)
    if isinstance(expr, ast.FuncCall):
        return _call(expr, env)
    assert isinstance(expr, ast.BinOp)
    a, b = _operand(expr.left, env), _operand(expr.right, env)
    try:
        result = _arithmetic(expr.op, a, b)
    except ZeroDivisionError:
        raise EvalError(codes.ARITHMETIC, f"division by zero in `{expr.op}`", expr.span) from None
    except OverflowError:  # a float result out of range, from huge integers
        raise EvalError(codes.ARITHMETIC, f"the result of `{expr.op}` is too large", expr.span) from None
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise EvalError(codes.ARITHMETIC, f"the result of `{expr.op}` is too large", expr.span)
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
        # the hint is made only if the error is reported (the layer bound evaluates quietly)
        raise EvalError(codes.UNDEFINED_NAME, f"undefined name `{v}`", expr.span, lambda: did_you_mean(v.name, env))
    if not _is_number(v):
        raise EvalError(codes.WRONG_TYPE, f"arithmetic needs numbers, got `{fmt_value(v)}`", expr.span)
    return v


def _axes_help(shape: tuple[int, ...]) -> str:
    names = [n for n, v in input_names(shape).items() if not isinstance(v, Unavailable)]
    return "this input has " + ", ".join(f"`{n}`" for n in names)


def _boolean(expr: ast.Expr, env: Mapping[str, Any], what: str) -> bool:
    """The value of a condition, which must be true or false (no truthiness: `if 0` is a mistake)."""
    v = evaluate(expr, env)
    if isinstance(v, Symbol):
        raise EvalError(codes.UNDEFINED_NAME, f"undefined name `{v}`", expr.span, lambda: did_you_mean(v.name, env))
    if not isinstance(v, bool):
        raise EvalError(codes.NOT_A_BOOLEAN, f"{what} must be true or false, got `{fmt_value(v)}`", expr.span,
                        "compare it to make a condition, e.g. `x > 0` or `x == 1`")
    return v


def _compare(expr: ast.Compare, env: Mapping[str, Any]) -> bool:
    a, b = evaluate(expr.left, env), evaluate(expr.right, env)
    if expr.op in ("==", "!="):
        # Words compare with words (a parameter `mode = bilinear` with `bilinear`); a word
        # beside anything else is a misspelt name, not a value that is merely unequal.
        for v, side in ((a, expr.left), (b, expr.right)):
            if isinstance(v, Symbol) and not isinstance(a if v is b else b, Symbol):
                raise EvalError(codes.UNDEFINED_NAME, f"undefined name `{v}`", side.span,
                                lambda v=v: did_you_mean(v.name, env))
        if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, tuple) != isinstance(b, tuple):
            raise EvalError(codes.WRONG_TYPE, f"`{expr.op}` compares `{fmt_value(a)}` with `{fmt_value(b)}`, "
                            "values of different kinds", expr.span)
        return (a == b) == (expr.op == "==")
    for v, side in ((a, expr.left), (b, expr.right)):
        if isinstance(v, Symbol):
            raise EvalError(codes.UNDEFINED_NAME, f"undefined name `{v}`", side.span,
                            lambda v=v: did_you_mean(v.name, env))
        if not _is_number(v):
            raise EvalError(codes.WRONG_TYPE, f"`{expr.op}` compares numbers, got `{fmt_value(v)}`", side.span)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[expr.op]


class Function(NamedTuple):
    """A built-in function: its parameter names (the first `required` must be given; a
    variadic one takes `required` or more, positionally), and what it computes."""

    params: tuple[str, ...]
    required: int
    fn: Callable[..., Any]
    doc: str
    variadic: bool = False


def make_divisible(v: float, divisor: int, min_value: Optional[int] = None) -> int:
    """torchvision's `_make_divisible` (torchvision/models/_utils.py), as it is: `v` rounded to
    the nearest multiple of `divisor`, at least `min_value` (default `divisor`), and never more
    than 10% below `v`."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


FUNCTIONS: dict[str, Function] = {
    "min": Function(("values",), 2, min, "the smallest of two or more numbers", variadic=True),
    "max": Function(("values",), 2, max, "the largest of two or more numbers", variadic=True),
    "round": Function(("x",), 1, round, "the nearest integer, halves to the even one (as Python's `round`)"),
    "floor": Function(("x",), 1, math.floor, "the largest integer not above x"),
    "ceil": Function(("x",), 1, math.ceil, "the smallest integer not below x"),
    "int": Function(("x",), 1, int, "x with its fraction dropped (towards zero)"),
    "make_divisible": Function(("v", "divisor", "min_value"), 2, make_divisible,
                               "torchvision's `_make_divisible`: v to the nearest multiple of divisor, at least "
                               "min_value (default divisor), never below 90% of v"),
}


def unknown_function(expr: ast.FuncCall) -> EvalError:
    """The error for a call of a function that is not built in (raised when it is evaluated;
    lowering also reports it ahead, in parts of a file that may never be evaluated)."""
    name = expr.name
    return EvalError(codes.UNKNOWN_FUNCTION, f"unknown function `{name}`", expr.name_span,
                     lambda: did_you_mean(name, FUNCTIONS) or "the functions are " + ", ".join(f"`{n}`" for n in FUNCTIONS))


def _call(expr: ast.FuncCall, env: Mapping[str, Any]) -> Any:
    name = expr.name
    f = FUNCTIONS.get(name)
    if f is None:
        raise unknown_function(expr)
    positional = [a for a in expr.args if a.name is None]
    keywords = [a for a in expr.args if a.name is not None]
    if keywords and f.variadic:
        raise EvalError(codes.UNKNOWN_ARGUMENT, f"`{name}` takes no keyword arguments", keywords[0].span)
    bound: dict[str, ast.Arg] = {}
    for i, arg in enumerate(expr.args):
        if arg.name is not None:
            if arg.name not in f.params:
                raise EvalError(codes.UNKNOWN_ARGUMENT, f"`{name}` has no argument `{arg.name}`", arg.span,
                                f"it takes {', '.join(f'`{p}`' for p in f.params)}")
            if arg.name in bound:
                raise EvalError(codes.ARGUMENT_TWICE, f"argument `{arg.name}` of `{name}` is given twice", arg.span)
            bound[arg.name] = arg
        elif any(a.name is not None for a in expr.args[:i]):
            raise EvalError(codes.TOO_MANY_POSITIONAL, f"positional argument after a keyword argument in `{name}`",
                            arg.span, "give the keyword arguments last")
        elif not f.variadic and i < len(f.params):
            bound[f.params[i]] = arg
    given = len(positional) + len(keywords)
    if f.variadic:
        ok = given >= f.required
        takes = f"at least {f.required} arguments"
    else:
        ok = f.required <= given <= len(f.params) and all(p in bound for p in f.params[:f.required])
        takes = (f"{f.required} argument{'s' if f.required != 1 else ''}" if f.required == len(f.params)
                 else f"{f.required} to {len(f.params)} arguments")
    if not ok:
        raise EvalError(codes.WRONG_ARITY, f"`{name}` takes {takes}, got {given}", expr.span,
                        f"`{name}({', '.join(f.params) if not f.variadic else 'a, b, ...'})`: {f.doc}")
    if f.variadic:
        values = [_number_arg(name, a, env) for a in positional]
    else:
        values = [_number_arg(name, bound[p], env) for p in f.params if p in bound]
    if name == "make_divisible":
        divisor = values[1]
        if not (isinstance(divisor, int) and divisor >= 1):
            raise EvalError(codes.OUT_OF_RANGE, f"the divisor of `make_divisible` must be a positive integer, "
                            f"got {fmt_value(divisor)}", bound["divisor"].value.span)
    try:
        result = f.fn(*values)
    except (OverflowError, ValueError):  # int(inf), round(nan)
        raise EvalError(codes.ARITHMETIC, f"`{name}` of {fmt_value(values[0])} has no integer value",
                        expr.span) from None
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise EvalError(codes.ARITHMETIC, f"the result of `{name}` is too large", expr.span)
    return result


def _number_arg(name: str, arg: ast.Arg, env: Mapping[str, Any]) -> Any:
    v = evaluate(arg.value, env)
    if isinstance(v, Symbol):
        raise EvalError(codes.UNDEFINED_NAME, f"undefined name `{v}`", arg.value.span,
                        lambda: did_you_mean(v.name, env))
    if not _is_number(v):
        raise EvalError(codes.WRONG_TYPE, f"`{name}` needs numbers, got `{fmt_value(v)}`", arg.value.span)
    return v


def subexpressions(expr: ast.Expr) -> Iterator[ast.Expr]:
    """The expression and every expression inside it, without recursion (a balanced expression
    may have thousands of terms)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, (ast.BinOp, ast.Compare, ast.BoolOp)):
            stack += (e.left, e.right)
        elif isinstance(e, (ast.Neg, ast.Not)):
            stack.append(e.operand)
        elif isinstance(e, ast.TupleLit):
            stack.extend(e.items)
        elif isinstance(e, ast.Conditional):
            stack += (e.then, e.cond, e.other)
        elif isinstance(e, ast.FuncCall):
            stack.extend(a.value for a in e.args)


def expr_size(expr: ast.Expr, cache: dict[int, int]) -> int:
    """The terms of an expression (literals, names, operators, the sizes of a shape): what
    evaluating it costs, for the limits on expansion. Remembered in `cache` by the node's
    identity, so `cache` must not outlive the syntax tree."""
    size = cache.get(id(expr))
    if size is None:
        size = sum(len(e.dims) if isinstance(e, ast.ShapeLit) else 1 for e in subexpressions(expr))
        cache[id(expr)] = size
    return size


def value_or_none(expr: ast.Expr, env: Mapping[str, Any]) -> Any:
    """The value of an expression, or None when it has none (reporting is someone else's job)."""
    try:
        value = evaluate(expr, env)
    except (Poisoned, EvalError):
        return None
    return None if value is POISON else value
