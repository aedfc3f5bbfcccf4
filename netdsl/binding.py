"""Matching a call's arguments to the parameters of the op or block it calls: one binder for
lowering (which reports every mistake) and for the layer bound (which only needs to know
whether a call binds)."""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from . import ast, codes
from .diagnostics import Note, did_you_mean, name_list

Report = Callable[..., None]  # (code, message, span, *, notes=(), help=None)


def quiet(*args, **kwargs) -> None:
    """A `Report` that says nothing: for callers that only need to know whether a call binds."""


def bind(what: str, names: list[str], positional: int, args: Iterable[ast.Arg],
         error: Report = quiet) -> Optional[dict[str, ast.Arg]]:
    """Match a call's arguments to the callee's parameter names (the first `positional` of
    them may be given by position). None when the call is wrong; `error` is told why."""
    bound: dict[str, ast.Arg] = {}
    known: Optional[set[str]] = None  # made for the first keyword: no search through thousands of names per argument
    ok, seen_keyword, index = True, False, 0
    for arg in args:
        if arg.name is None:
            if seen_keyword:
                error(codes.TOO_MANY_POSITIONAL, f"positional argument after a keyword argument in `{what}`", arg.span,
                      help="give the keyword arguments last")
                ok = False
            elif index >= positional:
                takes = f"takes {positional} positional argument{'s' if positional != 1 else ''}"
                error(codes.TOO_MANY_POSITIONAL, f"`{what}` {takes}", arg.span,
                      help=lambda: ("name the others: " + name_list(f"{n}=..." for n in names[positional:]))
                      if len(names) > positional else None)
                ok = False
            else:
                bound[names[index]] = arg
            index += 1
            continue
        seen_keyword = True
        if known is None:
            known = set(names)
        if arg.name not in known:
            error(codes.UNKNOWN_ARGUMENT, f"`{what}` has no argument `{arg.name}`", arg.span,
                  help=lambda arg=arg: did_you_mean(arg.name, names) or (
                      f"it takes {name_list(names)}" if names else f"`{what}` takes no arguments"))
            ok = False
        elif arg.name in bound:
            error(codes.ARGUMENT_TWICE, f"argument `{arg.name}` of `{what}` is given twice", arg.span,
                  notes=[Note("given first here", bound[arg.name].span)])
            ok = False
        else:
            bound[arg.name] = arg
    return bound if ok else None
