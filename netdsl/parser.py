"""Text to syntax tree: the Lark LALR parser for grammars/netdsl.lark, building `netdsl.ast`
nodes directly while it parses (no intermediate parse tree, no recursion, so deep nesting
costs no stack), and turning Lark's errors into located diagnostics."""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path
from typing import Optional

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast, codes
from .diagnostics import Diagnostic, NetDSLError
from .limits import MAX_EXPR_DEPTH, MAX_NESTING

GRAMMAR_NAME = "netdsl.lark"

def grammar_path() -> Path:
    """The grammar file: the copy shipped inside the installed package, or, in a source
    checkout, the one in the repository's grammars/ folder."""
    # beside this file, not through importlib.resources (whose import alone costs 1.5 ms of
    # every start-up): the grammar is read as a plain file anyway
    packaged = Path(__file__).parent / GRAMMAR_NAME
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "grammars" / GRAMMAR_NAME


# The grammar's words (its quoted literals), which cannot name a layer or a block.
KEYWORDS = frozenset(re.findall(r'"([A-Za-z_]+)"', grammar_path().read_text(encoding="utf-8")))


def _token_span(tok: Token) -> ast.Span:
    return ast.Span(tok.line, tok.column, tok.end_line, tok.end_column)


MAX_DIGITS = 60  # far beyond any size or count in a net; Python refuses str(int) past 4300


class _LiteralTooLong(Exception):
    def __init__(self, tok: Token):
        super().__init__(tok)
        self.token = tok


class _ExpressionTooDeep(Exception):
    def __init__(self, span: ast.Span):
        super().__init__(span)
        self.span = span


def _expr_depth(node) -> int:
    return getattr(node, "depth", 0)  # literals and names have no depth field: 0


def _int(tok: Token, text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise _LiteralTooLong(tok)
    return int(text)


def _dims(tok: Token) -> tuple[int, ...]:
    return tuple(_int(tok, d) for d in tok.replace("×", "x").split("x"))


def _position(c) -> Optional[ast.Span]:
    if isinstance(c, Token):
        return _token_span(c)
    span = getattr(c, "span", None)
    return span if span is not None and span.line else None


def _extent(children) -> ast.Span:
    """The span from the first to the last positioned child (tokens and AST nodes alike).
    Only the two ends are looked at: this runs on every reduction."""
    first = last = None
    for c in children:
        first = _position(c)
        if first is not None:
            break
    if first is None:
        return ast.NOWHERE
    for c in reversed(children):
        last = _position(c)
        if last is not None:
            break
    return ast.Span(first.line, first.column, last.end_line, last.end_column)


# Tokens that are pure syntax: kept by the parser (keep_all_tokens) only so spans can reach
# from the first keyword to the closing bracket; dropped before building nodes.
_SYNTAX = {"NET", "BLOCK", "INPUT", "REPEAT", "HEAD", "FROM", "LPAR", "RPAR", "IF", "ELSE", "AS", "AND", "OR", "NOT",
           "LBRACE", "RBRACE", "COMMA", "COLON", "EQUAL", "VBAR", "DOT", "PLUS", "MINUS", "STAR",
           "SLASH", "FLOORDIV", "PERCENT", "TRUE", "FALSE"}


class _Seq(tuple):
    """A tuple that remembers the span of the text it came from (brackets included), so the
    node built from it can span its brackets too. It equals the plain tuple of its items."""

    span: ast.Span


def _seq(items, span: ast.Span) -> _Seq:
    seq = _Seq(items)
    seq.span = span
    return seq


def _rule(fn):
    """Adapt a builder to Lark's internal-transformer call: `fn(span, *meaningful_children)`."""
    @functools.wraps(fn)
    def callback(self, children):
        kept = [c for c in children if not (isinstance(c, Token) and c.type in _SYNTAX)]
        return fn(self, _extent(children), *kept)
    return callback


class _ASTBuilder(Transformer):
    """One method per grammar rule; each returns the rule's dataclass. It runs inside the
    LALR parser, on each reduction, so no parse tree is built and nothing recurses."""

    @_rule
    def start(self, span, *defs):
        return ast.Program(tuple(defs))

    @_rule
    def net_def(self, span, name, params, body):
        return ast.NetDef(str(name), params or (), body, span, _token_span(name))

    @_rule
    def block_def(self, span, name, params, body):
        return ast.BlockDef(str(name), params or (), body, span, _token_span(name))

    @_rule
    def param_list(self, span, *params):
        return _seq(tuple(p for p in params if p is not None), span)

    @_rule
    def param(self, span, name, *default):
        return ast.Param(str(name), next((d for d in default if d is not None), None), span)

    @_rule
    def body(self, span, *items):
        return _seq(tuple(items), span)

    @_rule
    def input_decl(self, span, tok):
        return ast.InputDecl(_dims(tok), span)

    @_rule
    def labelled(self, span, label, element):
        return replace(element, label=str(label), label_span=_token_span(label))

    @_rule
    def call(self, span, name, args):
        return ast.Call(str(name), args or (), None, span, _token_span(name))

    @_rule
    def arg_list(self, span, *args):
        return _seq((a if isinstance(a, ast.Arg) else ast.Arg(None, a, a.span)
                     for a in args if a is not None), span)

    @_rule
    def keyword_arg(self, span, name, value):
        return ast.Arg(str(name), value, span)

    @_rule
    def join(self, span, name, args, branches):
        return ast.Join(str(name), args or (), branches, None, span, _token_span(name))

    @_rule
    def branches(self, span, *chains):
        return _seq(tuple(c for c in chains if c is not None), span)

    @_rule
    def chain(self, span, *items):
        return _seq(tuple(items), span)

    @_rule
    def from_chain(self, span, path, *items):
        source, source_span = path
        return _seq((ast.From(source, source_span), *items), span)

    @_rule
    def repeat(self, span, count, *rest):
        # `["as" NAME]` leaves a placeholder for each of its two symbols when it is absent
        *var, body = [r for r in rest if r is not None]
        var = var[0] if var else None
        if var is None:
            return ast.Repeat(count, body, None, span)
        return ast.Repeat(count, body, None, span, var=str(var), var_span=_token_span(var))

    @_rule
    def if_chain(self, span, cond, body, *rest):
        # the else-ifs are (condition, body) pairs, then the final `else`'s body, or the two
        # placeholders of `["else" body]`
        others = [r for r in rest if r is not None and not isinstance(r, _Seq)]
        otherwise = next((r for r in rest if isinstance(r, _Seq)), None)
        return ast.If(((cond, body), *others), otherwise, span)

    @_rule
    def else_if(self, span, cond, body):
        return cond, body

    @_rule
    def head(self, span, train, *rest):
        *source, body = [r for r in rest if r is not None]
        src, src_span = source[0] if source else (None, ast.NOWHERE)
        return ast.Head(train is not None, src, body, None, span, src_span)

    @_rule
    def group(self, span, body):
        return ast.Group(body, None, span)

    @_rule
    def path(self, span, *parts):
        return ".".join(parts), span

    # expressions
    @_rule
    def int_lit(self, span, tok):
        return ast.IntLit(_int(tok, tok), span)

    @_rule
    def float_lit(self, span, tok):
        return ast.FloatLit(float(tok), span)

    @_rule
    def shape_lit(self, span, tok):
        return ast.ShapeLit(_dims(tok), span)

    @_rule
    def true_lit(self, span):
        return ast.BoolLit(True, span)

    @_rule
    def false_lit(self, span):
        return ast.BoolLit(False, span)

    @_rule
    def name_ref(self, span, tok):
        return ast.NameRef(str(tok), span)

    @_rule
    def func_call(self, span, name, args):
        return ast.FuncCall(str(name), tuple(args), span, _token_span(name),
                            _deeper(span, *(a.value for a in args)))

    @_rule
    def compare_op(self, span, left, op, right):
        return ast.Compare(str(op), left, right, span, _deeper(span, left, right))

    @_rule
    def and_op(self, span, left, right):
        return ast.BoolOp("and", left, right, span, _deeper(span, left, right))

    @_rule
    def or_op(self, span, left, right):
        return ast.BoolOp("or", left, right, span, _deeper(span, left, right))

    @_rule
    def not_op(self, span, operand):
        return ast.Not(operand, span, _deeper(span, operand))

    @_rule
    def cond_op(self, span, then, cond, other):
        return ast.Conditional(then, cond, other, span, _deeper(span, then, cond, other))

    @_rule
    def atom(self, span, inner):  # `( expr )`: parentheses only group
        return inner

    @_rule
    def tuple_lit(self, span, *items):
        items = tuple(i for i in items if i is not None)
        return ast.TupleLit(items, span, _deeper(span, *items))

    @_rule
    def neg_op(self, span, operand):
        return ast.Neg(operand, span, _deeper(span, operand))

    def _binop(op):  # noqa: N805 - a factory used while the class body runs
        @_rule
        def method(self, span, left, right):
            return ast.BinOp(op, left, right, span, _deeper(span, left, right))
        return method

    add_op, sub_op, mul_op = _binop("+"), _binop("-"), _binop("*")
    div_op, floordiv_op, mod_op = _binop("/"), _binop("//"), _binop("%")
    del _binop


def _deeper(span: ast.Span, *operands) -> int:
    """The depth of a new expression node over `operands`; a chain like `1+1+1+...` or
    `---1` nests one level per operator, brackets or not."""
    depth = 1 + max(map(_expr_depth, operands), default=0)
    if depth > MAX_EXPR_DEPTH:
        raise _ExpressionTooDeep(span)
    return depth


_ORIGIN: list[str] = []  # where the parser's tables came from: "tables" or "grammar"


@functools.lru_cache(maxsize=None)
def _parser() -> Lark:
    # The tables come from the JSON file shipped in the package when it matches the grammar,
    # else from the grammar itself; never from a cache another user could write (see tables.py,
    # imported here so that `python -m netdsl.tables` finds it not yet imported).
    from . import tables

    grammar = tables.read_regular(grammar_path()).decode("utf-8")
    parser = tables.load(grammar, _ASTBuilder())
    _ORIGIN[:] = ["tables" if parser is not None else "grammar"]
    return parser or Lark(grammar, transformer=_ASTBuilder(), **tables.OPTIONS)


def tables_origin() -> str:
    """Where the parser's LALR tables came from: "tables" (the shipped parser_tables.json) or
    "grammar" (built in memory, when the shipped file does not match the grammar or Lark)."""
    _parser()
    return _ORIGIN[0]


# --- syntax errors -----------------------------------------------------------------------

# Readable names for the grammar's terminals, for "expected ..." lists.
_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "SHAPE": "a shape like 3x224x224",
    "LBRACE": "`{`", "RBRACE": "`}`", "LPAR": "`(`", "RPAR": "`)`", "COMMA": "`,`",
    "COLON": "`:`", "EQUAL": "`=`", "VBAR": "`|`", "DOT": "`.`", "PLUS": "`+`", "MINUS": "`-`",
    "STAR": "`*`", "SLASH": "`/`", "FLOORDIV": "`//`", "PERCENT": "`%`", "NET": "`net`", "BLOCK": "`block`",
    "INPUT": "`input`", "REPEAT": "`repeat`",
    "HEAD": "`head`", "TRAIN": "`train`", "FROM": "`from`", "TRUE": "`true`", "FALSE": "`false`",
    "IF": "`if`", "ELSE": "`else`", "AS": "`as`", "AND": "`and`", "OR": "`or`", "NOT": "`not`",
    "COMPARE": "a comparison",
    "$END": "the end of the file",
}


_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "FLOORDIV", "PERCENT", "COMPARE", "AND", "OR"}


def _expected(expected: set) -> str:
    if "RPAR" in expected or "COMMA" in expected:
        # LALR merges the state after a value in `(...)` with the one after `repeat N` (and
        # after `x if c`), so `{`, `as` and `else` show up here too; inside brackets they are
        # never what the user meant, and `if` there continues the value, as an operator does
        expected = expected - {"LBRACE", "AS", "ELSE"}
        if "IF" in expected:
            expected = (expected - {"IF"}) | {"PLUS"}
    words = {_TERMINAL_WORDS.get(t, f"`{t.lower()}`") for t in expected
             if t not in _OPERATORS and not t.startswith("__")}
    if expected & _OPERATORS:
        words.add("an operator")
    words = sorted(words)
    if not words:
        return ""
    if len(words) > 6:  # a long list helps nobody
        return "; expected a layer, a value or a closing bracket"
    return "; expected " + (words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1])


def _token_text(tok: Token) -> str:
    return "the end of the file" if tok.type == "$END" else f"`{tok}`"


def syntax_diagnostic(err: UnexpectedInput, text: str) -> Diagnostic:
    """One diagnostic for a Lark error: where, what was found, what could have come."""
    line, col = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else "?"
        hint = None
        shown = f"`{ch}`" if ch.isprintable() else f"U+{ord(ch):04X}"  # a NUL or escape would garble the line
        if ch == "\0":
            hint = "the file holds NUL bytes: it is not a text file"
        elif ch in "\"'":
            hint = "netdsl has no strings: write names and numbers bare (`pad=same`)"
        elif ch == ";":
            hint = "layers need no separator: write them one after another"
        return Diagnostic(codes.UNEXPECTED_CHARACTER, f"unexpected character {shown}", ast.Span(line, col, line, col + 1),
                          help=hint)
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        span = _end_span(text)
        return Diagnostic(codes.UNEXPECTED_END, "unexpected end of file" + _expected(err.expected), span,
                          help="a `{` or `(` is not closed" if {"RBRACE", "RPAR"} & set(err.expected) else None)
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    span = _token_span(tok) if tok.line else ast.Span(line, col, line, col + 1)
    help_ = _syntax_help(err, text)
    return Diagnostic(codes.UNEXPECTED_TOKEN, f"unexpected {_token_text(tok)}" + _expected(err.expected), span,
                      help=help_)


def _syntax_help(err: UnexpectedToken, text: str) -> Optional[str]:
    """The common mistakes, recognised from what the parser was ready to accept."""
    exp, tok = err.expected, err.token
    before = text[: tok.start_pos].rstrip().rsplit(None, 1)[-1:] if tok.start_pos else []
    if tok.type == "COLON" and before and before[0] in KEYWORDS:
        return f"`{before[0]}` is a keyword and cannot be a label; choose another name"
    if "COMMA" in exp and "RPAR" in exp and tok.type in {"INT", "NAME", "FLOAT", "SHAPE"}:
        return "separate arguments with `,`"
    if tok.type == "COLON":
        return "a label comes right before its layer: `conv1: conv(64, 7)`"
    if tok.type == "LBRACE" and "NAME" in exp:
        return "a group needs a label (`stem: { ... }`); a join names its kind (`concat { a | b }`)"
    if tok.type == "EQUAL" and "RPAR" not in exp:
        return "`=` is for arguments (`stride=2`) and parameter defaults only"
    return None


def _end_span(text: str) -> ast.Span:
    """Just past the last character (lines counted at `\n` only, as Lark counts them)."""
    n = text.count("\n") + 1
    last = text[text.rfind("\n") + 1:].rstrip("\r")
    return ast.Span(n, len(last) + 1, n, len(last) + 2)


_BRACKETS = re.compile(r"#[^\n]*|[({]|[)}]")  # comments are skipped: brackets in them do not count


# `- - - 1` nests without brackets and to the right, so the parser would shift the whole run
# before the first reduction could count it: runs of minus signs are found before parsing too.
_MINUS_RUN = re.compile(r"-(?:[ \t\r\n]*-)+")  # a maximal run of two or more, found in one linear pass


def _position_span(text: str, pos: int) -> ast.Span:
    line = text.count("\n", 0, pos) + 1
    col = pos - text.rfind("\n", 0, pos)
    return ast.Span(line, col, line, col + 1)


def _nesting_diagnostic(text: str) -> Optional[Diagnostic]:
    """An error at the first bracket nested deeper than MAX_NESTING (or at a run of more than
    MAX_EXPR_DEPTH minus signs), found by a scan of the text before parsing, so that even a
    million open brackets cost one quick pass."""
    if text.count("-") > MAX_EXPR_DEPTH:  # the scan only when it may find something
        for run in _MINUS_RUN.finditer(text):
            if text.count("-", run.start(), run.end()) > MAX_EXPR_DEPTH:
                at = run.start()
                for _ in range(MAX_EXPR_DEPTH):  # the first minus past the limit
                    at = text.index("-", at + 1)
                return Diagnostic(codes.TOO_DEEP, f"an expression nested more than {MAX_EXPR_DEPTH} levels deep",
                                  _position_span(text, at), help="each `-` nests one level")
    if text.count("(") + text.count("{") <= MAX_NESTING:
        return None
    depth = 0
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if ch in "({":
            depth += 1
            if depth > MAX_NESTING:
                return Diagnostic(codes.TOO_DEEP, f"brackets nested more than {MAX_NESTING} levels deep",
                                  _position_span(text, m.start()),
                                  help="no net needs this much nesting: move the inner part into a block")
        elif ch in ")}":
            depth = max(depth - 1, 0)
    return None


MAX_SYNTAX_ERRORS = 20
MAX_SYNTAX_RECOVERIES = 200


def parse(text: str, filename: str = "<string>") -> ast.Program:
    """Parse a whole .net text into an `ast.Program`, or raise `NetDSLError` (codes E1xx).

    After a syntax error the parser drops the offending token (or character) and goes on, so
    one run reports the syntax errors of many lines; it keeps one per line, since a second on
    the same line is nearly always an echo of the first."""
    too_deep = _nesting_diagnostic(text)
    if too_deep is not None:
        raise NetDSLError([too_deep], text, filename)
    found: list[Diagnostic] = []
    seen = 0

    def record(err: UnexpectedInput) -> bool:
        nonlocal seen
        seen += 1
        diag = syntax_diagnostic(err, text)
        if not found or found[-1].line != diag.line:
            found.append(diag)
        # stop at so many reported errors, or at so many in all: a line of 100,000 stray `)`
        # would otherwise cost 100,000 recoveries to report one error
        return len(found) < MAX_SYNTAX_ERRORS and seen < MAX_SYNTAX_RECOVERIES

    try:
        program = _parser().parse(text, start="start", on_error=record)
    except UnexpectedInput as err:  # the end of the file, or too many errors
        record(err)
    except _LiteralTooLong as err:
        found.append(Diagnostic(codes.OUT_OF_RANGE, f"a number with more than {MAX_DIGITS} digits",
                                _token_span(err.token), help="no size or count in a net comes near that"))
    except _ExpressionTooDeep as err:
        found.append(_expression_too_deep(err))
    if found:
        raise NetDSLError(found, text, filename)
    return replace(program, span=ast.Span(1, 1, *_end_span(text)[:2]))


def _expression_too_deep(err: _ExpressionTooDeep) -> Diagnostic:
    return Diagnostic(codes.TOO_DEEP, f"an expression nested more than {MAX_EXPR_DEPTH} levels deep", err.span,
                      help="each operator nests one level: compute the value outside the net and pass it in")


def parse_expr(text: str, filename: str = "<value>") -> ast.Expr:
    """Parse one expression, such as the value of `--set classes=10`."""
    too_deep = _nesting_diagnostic(text)
    if too_deep is not None:
        raise NetDSLError([too_deep], text, filename)
    try:
        return _parser().parse(text, start="expr")
    except UnexpectedInput as err:
        raise NetDSLError([syntax_diagnostic(err, text)], text, filename) from None
    except _ExpressionTooDeep as err:
        raise NetDSLError([_expression_too_deep(err)], text, filename) from None
