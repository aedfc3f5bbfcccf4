"""Text to syntax tree: the Lark LALR parser for grammars/netdsl.lark, building `netdsl.ast`
nodes directly while it parses (no intermediate parse tree, no recursion, so deep nesting
costs no stack), and turning Lark's errors into located diagnostics."""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast, codes
from .diagnostics import Diagnostic, NetDSLError, Note
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


class _BadLabel(Exception):
    """A quoted label that cannot be a name (the lexer takes any quoted text on one line, so
    that this can say why): where, from the token's start, and what is wrong."""

    def __init__(self, tok: Token, at: int, message: str, help: str):
        super().__init__(message)
        self.token, self.at, self.message, self.help = tok, at, message, help

    def diagnostic(self) -> Diagnostic:
        line, col = self.token.line, self.token.column + self.at
        return Diagnostic(codes.UNEXPECTED_CHARACTER, self.message, ast.Span(line, col, line, col + 1),
                          help=self.help)


def label_text(tok: Token) -> str:
    """A label token's name: a NAME as it is, an INT as its decimal digits (`007:` is `7`, as
    PyTorch would name the 7th child), a QUOTED label without its quotes. A quoted label must
    be a name PyTorch can give a submodule: not empty, no `.` (which separates the scopes of a
    dotted name), no white space, no `\\` (torch.fx writes a name that is no identifier between
    quotes into the forward it generates, as it is: a backslash would escape them) (E101, at
    the character)."""
    if tok.type == "INT":
        return str(_int(tok, tok))
    if tok.type != "QUOTED":
        return str(tok)
    text = str(tok)[1:-1]
    if not text:
        raise _BadLabel(tok, 1, "unexpected character `\"`: a quoted label cannot be empty",
                        'write the name between the quotes: `"block1-0": ...`')
    for i, ch in enumerate(text, 1):
        if ch == ".":
            raise _BadLabel(tok, i, "unexpected character `.` in a quoted label",
                            "`.` separates the scopes of a name (`layer1.0.conv1`): nest scopes instead, "
                            "or write another character")
        if ch == "\\":
            raise _BadLabel(tok, i, "unexpected character `\\` in a quoted label",
                            "a backslash cannot be part of a module's name in the compiled module's code")
        if ch.isspace() or not ch.isprintable():
            raise _BadLabel(tok, i, f"unexpected character U+{ord(ch):04X} in a quoted label",
                            "a label holds no white space or control characters")
    return text


def _dims(tok: Token) -> tuple[int, ...]:
    return tuple(_int(tok, d) for d in tok.replace("×", "x").split("x"))


def _position(c) -> Optional[ast.Span]:
    if type(c) is Token:
        return ast.Span(c.line, c.column, c.end_line, c.end_column)
    span = getattr(c, "span", None)
    return span if span is not None and span.line else None


def _extent(children) -> ast.Span:
    """The span from the first to the last positioned child (tokens and AST nodes alike).
    Only the two ends are looked at: this runs on every reduction (a third of parsing the
    densest text), so the common case, both ends positioned, is decided first."""
    if not children:
        return ast.NOWHERE
    first, last = children[0], children[-1]
    # a token, or a node with a span (None is a placeholder; NOWHERE has line 0)
    if type(first) is Token:
        line, column = first.line, first.column
    else:
        span = getattr(first, "span", None)
        if span is None or not span[0]:
            return _extent_slow(children)
        line, column = span[0], span[1]
    if type(last) is Token:
        return ast.Span(line, column, last.end_line, last.end_column)
    span = getattr(last, "span", None)
    if span is None or not span[0]:
        return _extent_slow(children)
    return ast.Span(line, column, span[2], span[3])


def _extent_slow(children) -> ast.Span:
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
           "LBRACE", "RBRACE", "COMMA", "COLON", "EQUAL", "VBAR", "DOT", "PLUS", "MINUS", "STAR", "SEQ",
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
        kept = [c for c in children if type(c) is not Token or c.type not in _SYNTAX]
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
    def input_decl(self, span, *parts):
        parts = [p for p in parts if p is not None]
        if len(parts) == 1 and isinstance(parts[0], Token):
            return ast.InputDecl(_dims(parts[0]), span)
        return ast.InputDecl((), span, tuple(parts))  # sizes as expressions: evaluated when lowered

    @_rule
    def labelled(self, span, label, element):
        if isinstance(element, ast.If):  # a labelled `if`: the scope of a group around it
            element = ast.Group(_seq((element,), element.span), None, element.span)
        return replace(element, label=label_text(label), label_span=_token_span(label))

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
    def join(self, span, name, args, inline, branches):
        return ast.Join(str(name), args or (), branches, None, span, _token_span(name), inline=inline is not None)

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
    def seq(self, span, body):
        return ast.Group(body, None, span, seq=True)

    @_rule
    def path(self, span, *parts):
        return ".".join(parts), span

    # expressions: the rules most often reduced (the densest text is long sums), so the
    # literals and operators take their children directly, without `_rule`'s filtering
    def int_lit(self, children):
        tok = children[0]
        return ast.IntLit(_int(tok, tok), ast.Span(tok.line, tok.column, tok.end_line, tok.end_column))

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

    def name_ref(self, children):
        tok = children[0]
        return ast.NameRef(str(tok), ast.Span(tok.line, tok.column, tok.end_line, tok.end_column))

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
        def method(self, children):  # left, the operator's token, right
            left, right = children[0], children[2]
            span = _extent(children)
            return ast.BinOp(op, left, right, span, _deeper2(span, left, right))
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


def _deeper2(span: ast.Span, left, right) -> int:
    """`_deeper` of a binary operator's two operands, without building their list."""
    depth = 1 + max(getattr(left, "depth", 0), getattr(right, "depth", 0))
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
    "IF": "`if`", "ELSE": "`else`", "SEQ": "`seq`", "INLINE": "`inline`", "QUOTED": "a quoted label",
    "AS": "`as`", "AND": "`and`", "OR": "`or`", "NOT": "`not`",
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


_NO_STRINGS = ("netdsl has no strings: write names and numbers bare (`pad=same`); only a label may be quoted, "
               'closed on its line (`"block1-0": ...`)')


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
            hint = _NO_STRINGS
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
    if tok.type == "QUOTED":  # quoted text where no label can stand: a string, which netdsl has not
        return Diagnostic(codes.UNEXPECTED_CHARACTER, "unexpected character `\"`", ast.Span(tok.line, tok.column,
                          tok.line, tok.column + 1), help=_NO_STRINGS)
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


# Text in which `#` and brackets mean nothing, for the scans of the text that do not parse it: a
# comment, and a quoted label (the grammar's QUOTED: `"a#1"` starts no comment). Scanned from
# left to right, whichever starts first wins, so a quote inside a comment is part of the comment.
SKIPPED = r'"[^"\n]*"|#[^\n]*'
_BRACKETS = re.compile(SKIPPED + r"|[({]|[)}]")  # comments and quoted labels are skipped


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


def parse(text: str, filename: str = "<string>") -> ast.Program:
    """Parse a whole .net text into an `ast.Program`, or raise `NetDSLError` (codes E1xx)
    listing the syntax errors of every line (see `parse_recovering`)."""
    program, found, _ = parse_recovering(text)
    if found:
        raise NetDSLError(found, text, filename)
    return program


# --- going on after syntax errors ----------------------------------------------------------

# After a syntax error the parser goes on, to report the file's other errors, syntax and not.
# The line with the error is cut out, with the lines its brackets need (a header's `{` takes
# the body and its `}` along; an unclosed `(` is the line to cut when a later line trips over
# it), and its place is taken by a placeholder layer, which later stages treat as a layer that
# could not be made (so nothing after it is checked against a shape it may not have had); a
# definition whose header is cut goes entirely; brackets still open at the end are closed.
# What remains is parsed again, until it parses: each error costs one parse of the file, so
# this is done for files up to REPAIR_MAX_CHARS and MAX_SYNTAX_ERRORS errors; a larger file
# has Lark's own recovery (drop the token, go on) and only its syntax errors reported.
MAX_SYNTAX_ERRORS = 20
MAX_SYNTAX_RECOVERIES = 200
REPAIR_MAX_CHARS = 48 * 1024
REPAIR_MAX_PARSES = 3 * MAX_SYNTAX_ERRORS
PLACEHOLDER = "_"  # a name, put where a cut part began: a layer known to be broken
_CLOSER = {"(": ")", "{": "}"}


@dataclass
class Damage:
    """What the parser cut out of a file with syntax errors: where placeholders stand (line,
    column), the names of the definitions cut entirely, and whether any was."""

    placeholders: set[tuple[int, int]] = field(default_factory=set)
    definitions: set[str] = field(default_factory=set)
    cut_definition: bool = False
    words: set[str] = field(default_factory=set)  # every word of the text cut out

    def may_define(self, label: str) -> bool:
        """Could the text cut out have held this label (or the input, for `input`)?"""
        return label in self.words


class _Failed(Exception):
    """A parse of the (repaired) text failed: the diagnostic, where (an offset), and whether the
    parser ran into the end of the text."""

    def __init__(self, diag: Diagnostic, pos: int, at_end: bool):
        super().__init__(diag.message)
        self.diag, self.pos, self.at_end = diag, pos, at_end


def _parse_once(text: str, original: str) -> ast.Program:
    """One parse without recovery; raises _Failed, with the diagnostic made against `original`
    (the text before any repair, of which `text` keeps every position)."""
    try:
        return _parser().parse(text, start="start")
    except UnexpectedInput as err:
        diag = syntax_diagnostic(err, original)
        at_end = isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END")
        if isinstance(err, UnexpectedCharacters):
            pos = err.pos_in_stream
        elif at_end:
            pos = len(original)
        else:
            pos = err.token.start_pos
        raise _Failed(diag, min(pos, len(original)), at_end) from None
    except _LiteralTooLong as err:
        raise _Failed(Diagnostic(codes.OUT_OF_RANGE, f"a number with more than {MAX_DIGITS} digits",
                                 _token_span(err.token), help="no size or count in a net comes near that"),
                      err.token.start_pos, False) from None
    except _ExpressionTooDeep as err:
        raise _Failed(_expression_too_deep(err), _offset(original, err.span.line, err.span.column), False) from None
    except _BadLabel as err:
        raise _Failed(err.diagnostic(), err.token.start_pos, False) from None


def parse_recovering(text: str) -> tuple[Optional[ast.Program], list[Diagnostic], Optional[Damage]]:
    """Parse, going on after syntax errors.

    Returns (program, syntax errors, damage): with no syntax error, the program, [] and None;
    with some, the program of what remains with the erroneous parts cut out (None when that
    cannot be had: too many errors, too large a file) and what was cut, so that the checks
    after it stay silent about what they cannot see. The last text's answer is remembered
    (`check` then `fmt` of one text in one process parse it once; trees are never changed)."""
    program, found, damage = _parse_recovering(text)
    return program, list(found), damage


@functools.lru_cache(maxsize=1)
def _parse_recovering(text: str) -> tuple[Optional[ast.Program], tuple[Diagnostic, ...], Optional[Damage]]:
    program, found, damage = _recover(text)
    return program, tuple(found), damage


def _recover(text: str) -> tuple[Optional[ast.Program], list[Diagnostic], Optional[Damage]]:
    too_deep = _nesting_diagnostic(text)
    if too_deep is not None:
        return None, [too_deep], None
    span = ast.Span(1, 1, *_end_span(text)[:2])
    try:
        return replace(_parse_once(text, text), span=span), [], None
    except _Failed as failed:
        first = failed
    if len(text) > REPAIR_MAX_CHARS:
        return None, _lark_recovery(text), None
    brackets = _Brackets(text)
    regions: list[list[int]] = []
    closers = ""
    found: list[Diagnostic] = []
    failed: Optional[_Failed] = first
    for _ in range(REPAIR_MAX_PARSES):
        if failed is None:
            regions = _merged(regions)
            repaired, damage = _cut(text, regions, brackets)
            try:
                tree = _parse_once(repaired + closers, text)
            except _Failed as again:
                failed = again
            else:
                return replace(tree, span=span), found, damage
        pos, diag, at_end = failed.pos, failed.diag, failed.at_end
        failed = None
        inside = next((r for r in regions if r[0] <= pos <= r[1]), None)
        if inside is not None and not at_end:
            # the repair's own doing (a placeholder where no layer can stand): cut the construct around it
            grown = brackets.enclosing(*inside)
            if grown == inside:
                return None, found, None
            inside[:] = grown
            continue
        if diag.line not in {d.line for d in found}:
            found.append(diag)  # one error a line: a second is nearly always an echo of the first
            if len(found) >= MAX_SYNTAX_ERRORS:
                return None, found, None
        if at_end:
            needed = brackets.closers(regions)
            if not needed or needed == closers:
                return None, found, None
            closers = needed
            continue
        opener = brackets.unclosed_before(pos, regions)
        line = text.count("\n", 0, pos) + 1
        if opener is not None and text.count("\n", 0, opener) + 1 != line:
            # the parser is still inside a bracket an earlier line left open: that line is the
            # one to cut, and the error says so
            line = text.count("\n", 0, opener) + 1
            ch = text[opener]
            found[-1] = replace(diag, notes=(*diag.notes, Note(f"the `{ch}` here is never closed",
                                                                _position_span(text, opener))),
                                help=f"close it with `{_CLOSER[ch]}`")
        regions.append(brackets.balanced(*brackets.line_range(line)))
    return None, found, None


def _blank(text: str, start: int, end: int) -> bool:
    """Is text[start:end] non-empty and more than spaces? (True: something stands between.)"""
    return end > start and bool(text[start:end].strip())


def _lark_recovery(text: str) -> list[Diagnostic]:
    """Lark's recovery, for files too large to repair: each bad token (or character) dropped."""
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
        _parser().parse(text, start="start", on_error=record)
    except UnexpectedInput as err:  # the end of the file, or too many errors
        record(err)
    except _LiteralTooLong as err:
        found.append(Diagnostic(codes.OUT_OF_RANGE, f"a number with more than {MAX_DIGITS} digits",
                                _token_span(err.token), help="no size or count in a net comes near that"))
    except _ExpressionTooDeep as err:
        found.append(_expression_too_deep(err))
    except _BadLabel as err:
        found.append(err.diagnostic())
    return found


def _offset(text: str, line: int, column: int) -> int:
    at = 0
    for _ in range(line - 1):
        at = text.find("\n", at) + 1
        if at == 0:
            return len(text)
    return min(at + column - 1, len(text))


def _merged(regions: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for start, end in sorted(regions):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


class _Brackets:
    """The brackets of a text (comments skipped), each pair matched by kind: a close that
    meets an open of the other kind closes the nearest open of its own kind (those above it
    were never closed); a close with no open of its kind is stray. Unclosed opens and stray
    closes are cut with their lines; only matched pairs hold lines together."""

    def __init__(self, text: str):
        self.text = text
        self.match: dict[int, int] = {}  # matched pairs, both ways
        self.kind: dict[int, str] = {}
        self.unclosed: list[int] = []
        stack: list[int] = []
        for m in _BRACKETS.finditer(text):
            ch, at = m.group(), m.start()
            if ch[0] in '#"':
                continue
            self.kind[at] = ch
            if ch in "({":
                stack.append(at)
                continue
            want = "(" if ch == ")" else "{"
            if any(text[o] == want for o in stack):
                while text[stack[-1]] != want:
                    self.unclosed.append(stack.pop())
                opened = stack.pop()
                self.match[opened], self.match[at] = at, opened
        self.unclosed += stack
        self.unclosed.sort()
        self.positions = sorted(self.kind)

    def line_range(self, line: int) -> list[int]:
        start = _offset(self.text, line, 1)
        end = self.text.find("\n", start)
        return [start, len(self.text) if end < 0 else end]

    def _line_start(self, at: int) -> int:
        return self.text.rfind("\n", 0, at) + 1 if at > 0 else 0

    def _line_end(self, at: int) -> int:
        end = self.text.find("\n", at)
        return len(self.text) if end < 0 else end

    def _inside(self, start: int, end: int) -> list[int]:
        lo, hi = bisect.bisect_left(self.positions, start), bisect.bisect_left(self.positions, end)
        return self.positions[lo:hi]

    def balanced(self, start: int, end: int) -> list[int]:
        """The smallest run of whole lines around [start, end) holding both brackets of every
        matched pair it holds one of."""
        while True:
            lo, hi = start, end
            for at in self._inside(start, end):
                partner = self.match.get(at)
                if partner is None:
                    continue
                if partner >= end:
                    hi = max(hi, self._line_end(partner))
                elif partner < start:
                    lo = min(lo, self._line_start(partner))
            if (lo, hi) == (start, end):
                return [start, end]
            start, end = lo, hi

    def opener(self, at: int) -> Optional[int]:
        """The innermost matched open bracket around `at`."""
        best = None
        for o in self.positions:
            if o >= at:
                break
            partner = self.match.get(o)
            if self.kind[o] in "({" and partner is not None and partner >= at:
                best = o
        return best

    def unclosed_before(self, at: int, regions: list[list[int]]) -> Optional[int]:
        """The last bracket opened before `at` and never closed (and not cut yet), when no
        matched pair opened after it is still open at `at` (then it is what the parser is in)."""
        before = [o for o in self.unclosed if o < at and not any(r[0] <= o < r[1] for r in regions)]
        if not before:
            return None
        inner = self.opener(at)
        return before[-1] if inner is None or inner < before[-1] else None

    def closers(self, regions: list[list[int]]) -> str:
        """What closes the brackets left open, outside the regions cut, innermost first."""
        kept = [o for o in self.unclosed if not any(r[0] <= o < r[1] for r in regions)]
        return " " + "".join(_CLOSER[self.text[o]] for o in reversed(kept)) if kept else ""

    def enclosing(self, start: int, end: int) -> list[int]:
        """The lines of the construct around [start, end): from the line of the innermost
        matched bracket open around it to the line of its partner; the whole text at the top."""
        opened = self.opener(start)
        if opened is None:
            return [0, len(self.text)]
        return self.balanced(self._line_start(opened), self._line_end(self.match[opened]))

    def in_parentheses(self, at: int) -> bool:
        opened = self.opener(at)
        return opened is not None and self.kind[opened] == "("


_COMMENTS = re.compile(r"#[^\n]*")  # (a `#` in a quoted label only adds words: harmless here)
_DEFINITION = re.compile(r"\b(?:block|net)\s+([A-Za-z_][A-Za-z0-9_]*)")


def _cut(text: str, regions: list[list[int]], brackets: _Brackets) -> tuple[str, Damage]:
    """The text with each region blanked (its line breaks kept, so every other position stays),
    a placeholder at its start where it held layers, and what was cut."""
    damage = Damage()
    pieces, last = [], 0
    for region in regions:
        start, end = region
        if brackets.in_parentheses(start):  # a part of a bracketed list: take the whole construct
            region[:] = brackets.enclosing(start, end)
            start, end = region
        start = max(start, last)
        chunk = text[start:end]
        blank = re.sub(r"[^\n]", " ", chunk)
        damage.words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _COMMENTS.sub("", chunk)))
        if brackets.opener(start) is None:  # whole definitions
            damage.cut_definition = True
            damage.definitions.update(_DEFINITION.findall(chunk))
        else:
            lead = len(chunk) - len(chunk.lstrip())
            keep = "| " if chunk.lstrip().startswith("|") else ""  # a branch stays a branch
            mark = keep + PLACEHOLDER
            if lead + len(mark) <= len(chunk) and "\n" not in chunk[lead:lead + len(mark)]:
                blank = blank[:lead] + mark + blank[lead + len(mark):]
                at = start + lead + len(keep)
                damage.placeholders.add((text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)))
        pieces += [text[last:start], blank]
        last = end
    pieces.append(text[last:])
    return "".join(pieces), damage


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
