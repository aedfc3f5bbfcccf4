"""Expressions: the value of an argument, a parameter default or a repeat count.

Values are ints, floats, bools, tuples, or a `Symbol` for a bare word that is not a parameter
(the attribute it is given to decides whether that is allowed). A value that failed to
evaluate is POISON: its error is already reported, and later uses pass it on silently.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

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
        if env[expr.name] is POISON:
            raise Poisoned
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


def subexpressions(expr: ast.Expr) -> Iterator[ast.Expr]:
    """The expression and every expression inside it, without recursion (a balanced expression
    may have thousands of terms)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, ast.BinOp):
            stack += (e.left, e.right)
        elif isinstance(e, ast.Neg):
            stack.append(e.operand)
        elif isinstance(e, ast.TupleLit):
            stack.extend(e.items)


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
