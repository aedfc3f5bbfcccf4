"""Syntax tree to text: the inverse of the parser, and the formatter built on it.

`to_text(program)` writes a tree as canonical .net text, from the tree alone, so that
`parse(to_text(tree)) == tree` (tests/test_properties.py checks that on generated files).

`format_source(text)` is what `netdsl fmt` does: it parses the text and prints its tree again,
taking from the source only what the tree leaves out and a reader would miss:

- comments, each kept with its code: at the end of the line holding the code it followed, or on
  a line of its own before the code it preceded; two comments never share a line;
- which layers share a line, and single blank lines between groups of lines; where a definition's
  parameter list breaks between parameters (continued under the first);
- gaps of two or more spaces, which line things up into columns (`conv1:    conv(...)`,
  `inception(64,  96,  128, ...)`, trailing comments); a narrower gap becomes the canonical one;
- how numbers are spelt (`1e-4` stays `1e-4`).

Everything else is canonical: four spaces per level, `{` at the end of its line, the branches of
a join written over several lines one per line with `|` in front of all but the first, spaces
after commas and around operators and parameter defaults, none around `=` in arguments,
brackets only where precedence needs them, `3x3` for shapes, one blank line between
definitions, a newline at the end. A construct the source writes on one line stays on one line.
The result is a fixed point: formatting it again changes nothing.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Optional

from . import ast
from .parser import KEYWORDS, SKIPPED, parse

INDENT = 4
# Binding strength, loosest first, as the grammar has it: `a if c else b`, `or`, `and`, `not`,
# comparisons (which do not chain), `+ -`, `* / // %`, unary `-`, then atoms.
_COND, _OR, _AND, _NOT, _COMPARE = 1, 2, 3, 4, 5
_PRECEDENCE = {"+": 6, "-": 6, "*": 7, "/": 7, "//": 7, "%": 7}
_UNARY = 8
_CANONICAL_WIDTH = 60  # without a source to follow, a nested construct longer than this gets lines of its own
# the grammar's COMMENT, and quoted labels, in which a `#` starts none (matches that begin with
# `"` are skipped)
_COMMENT = re.compile(SKIPPED)
_BRACE = re.compile(SKIPPED + r"|\{")
_BRACES = re.compile(SKIPPED + r"|[{}]")
_BARE_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|0|[1-9][0-9]*")  # a NAME, or an INT as the parser keeps it


def to_text(program: ast.Program) -> str:
    """Canonical .net text for a syntax tree (spans, if any, are ignored)."""
    return _Printer(None).program(program)


def format_source(text: str, filename: str = "<string>") -> str:
    """The text formatted: the same tree, canonical layout, comments and alignment kept.
    Raises `NetDSLError` (syntax errors) as `parse` does; line endings follow the input's.
    `text` is decoded text (`network.decode` and `read_source` drop a file's byte-order mark;
    one left in the text is a mistake in the file, diagnosed as `check` does)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    text = text.replace("\r\n", "\n")
    program = parse(text, filename)
    result = _Printer(_Source(text)).program(program)
    # As black does: never hand back text that means something else (it would be a bug here).
    if parse(result, filename) != program:
        raise FormatError(f"formatting {filename} would change its meaning; it is left as it is "
                          "(a bug in netdsl: please report it with the file)")
    return result.replace("\n", newline)


class FormatError(RuntimeError):
    """The formatter's output would not parse to the same tree: a bug, never the file's fault."""


def label_text(label: str) -> str:
    """A label as the language writes it: bare when it is a name or an integer (`conv1`, `0`),
    else quoted (`"block1-0"`, and a keyword, `"seq"`)."""
    if _BARE_LABEL.fullmatch(label) and label not in KEYWORDS:
        return label
    return f'"{label}"'


def expr_text(expr: ast.Expr) -> str:
    """An expression as the language writes it, with brackets only where they are needed."""
    return _Printer(None).expr(expr)


# --- what the source tells about layout ----------------------------------------------------

class _Source:
    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self.comments = []  # (line, column, text, trailing)
        for m in _COMMENT.finditer(text):
            if m.group()[0] == '"':
                continue
            line = bisect.bisect_right(self.starts, m.start())
            col = m.start() - self.starts[line - 1]
            trailing = bool(self.lines[line - 1][:col].strip())
            self.comments.append((line, col, m.group().rstrip(), trailing))

    def offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column - 1

    def slice(self, span: ast.Span) -> str:
        return self.text[self.offset(span.line, span.column):self.offset(span.end_line, span.end_column)]

    def gap(self, before: ast.Span, after: ast.Span) -> int:
        """The spaces just before `after`, when it is on the line where `before` ends; else 0."""
        if not (before.end_line and after.line) or before.end_line != after.line:
            return 0
        between = self.text[self.offset(before.end_line, before.end_column):self.offset(after.line, after.column)]
        return len(between) - len(between.rstrip(" "))

    def brace_line(self, span: ast.Span) -> int:
        """The line of the first `{` from the start of `span` on, comments skipped: where a
        header (`net n(...)`, `repeat 2`, `head from x`) that may run over lines ends."""
        for m in _BRACE.finditer(self.text, self.offset(span.line, span.column)):
            if m.group() == "{":
                return bisect.bisect_right(self.starts, m.start())
        return span.line

    def closing_line(self, span: ast.Span) -> int:
        """The line of the `}` that closes the first `{` from the start of `span` on, comments
        skipped (an `if` whose last arm is empty, `{}`, has a span that ends before it)."""
        depth = 0
        for m in _BRACES.finditer(self.text, self.offset(span.line, span.column)):
            if m.group() in "{}":
                depth += 1 if m.group() == "{" else -1
                if depth == 0:
                    return bisect.bisect_right(self.starts, m.start())
        return span.end_line

    def blank_between(self, first: int, last: int) -> bool:
        """Is any line strictly between source lines `first` and `last` blank?"""
        return any(not self.lines[i - 1].strip() for i in range(first + 1, last))


def _sep(gap: int, canonical: str = " ") -> str:
    """The author's gap when it is wide enough to be alignment, else the canonical one."""
    return " " * gap if gap >= 2 else canonical


def _start(item) -> ast.Span:
    label_span = getattr(item, "label_span", ast.NOWHERE)
    return label_span if getattr(item, "label", None) is not None and label_span.line else item.span


# --- lines of output -----------------------------------------------------------------------

@dataclass
class _Line:
    indent: int
    text: str
    first: int = 0          # the source lines it came from (0: none known)
    last: int = 0
    kind: str = "code"      # "open" (ends with `{`), "close" (a lone `}`), "comment" or "code"
    comment_indent: int = 0  # where a comment just before this line goes
    trailing: list[str] = field(default_factory=list)
    top_close: bool = False  # closes a definition: a blank line follows


class _Printer:
    def __init__(self, source: Optional[_Source]):
        self.src = source
        self.out: list[_Line] = []

    # -- expressions and calls ----------------------------------------------------------

    def expr(self, e: ast.Expr, min_prec: int = 0) -> str:
        if isinstance(e, (ast.IntLit, ast.FloatLit)):
            if self.src is not None and e.span.line:
                return self.src.slice(e.span)  # the number as written: 1e-4, not 0.0001
            return str(e.value) if isinstance(e, ast.IntLit) else _float(e.value)
        if isinstance(e, ast.BoolLit):
            return "true" if e.value else "false"
        if isinstance(e, ast.ShapeLit):
            return "x".join(map(str, e.dims))
        if isinstance(e, ast.NameRef):
            return e.name
        if isinstance(e, ast.TupleLit):
            return "(" + ", ".join(self.expr(i) for i in e.items) + ")"
        if isinstance(e, ast.Neg):
            return "-" + self.expr(e.operand, _UNARY)
        if isinstance(e, ast.FuncCall):
            return e.name + self._args(e.args)
        if isinstance(e, ast.Conditional):
            # `a if b else c`: the condition binds like `or`'s operands, the `else` side nests
            prec = _COND
            text = f"{self.expr(e.then, _OR)} if {self.expr(e.cond, _OR)} else {self.expr(e.other, _COND)}"
        elif isinstance(e, ast.BoolOp):
            prec = _OR if e.op == "or" else _AND
            text = f"{self.expr(e.left, prec)} {e.op} {self.expr(e.right, prec + 1)}"
        elif isinstance(e, ast.Not):
            prec = _NOT
            text = "not " + self.expr(e.operand, _NOT)
        elif isinstance(e, ast.Compare):
            prec = _COMPARE  # they do not chain: both sides are sums
            text = f"{self.expr(e.left, _COMPARE + 1)} {e.op} {self.expr(e.right, _COMPARE + 1)}"
        else:
            prec = _PRECEDENCE[e.op]
            text = f"{self.expr(e.left, prec)} {e.op} {self.expr(e.right, prec + 1)}"  # left-associative
        return f"({text})" if prec < min_prec else text

    def _gap(self, before: ast.Span, after: ast.Span) -> int:
        return self.src.gap(before, after) if self.src is not None else 0

    def _args(self, args) -> str:
        parts = []
        for i, arg in enumerate(args):
            text = self.expr(arg.value) if arg.name is None else f"{arg.name}={self.expr(arg.value)}"
            parts.append(text if i == 0 else "," + _sep(self._gap(args[i - 1].span, arg.span)) + text)
        return "(" + "".join(parts) + ")"

    def call(self, c: ast.Call) -> str:
        return c.name + (self._args(c.args) if c.args else "")

    def _join_head(self, j: ast.Join) -> str:
        return j.kind + (self._args(j.args) if j.args else "") + (" inline" if j.inline else "")

    def _params(self, params) -> str:
        if not params:
            return ""
        return "(" + ", ".join(p.name if p.default is None else f"{p.name} = {self.expr(p.default)}"
                               for p in params) + ")"

    # -- items on one line --------------------------------------------------------------

    def _label(self, item) -> str:
        if getattr(item, "label", None) is None:
            return ""
        return f"{label_text(item.label)}:" + _sep(self._gap(item.label_span, item.span))

    def _repeat_words(self, r: ast.Repeat) -> str:
        return f"repeat {self.expr(r.count)}" + (f" as {r.var}" if r.var is not None else "")

    def _head_words(self, h: ast.Head) -> str:
        return ("train " if h.train_only else "") + "head" + (f" from {h.source}" if h.source is not None else "")

    def element(self, item) -> str:
        """An item without its label, on one line."""
        if isinstance(item, ast.InputDecl):
            if item.sizes is not None:
                return "input (" + ", ".join(self.expr(e) for e in item.sizes) + ")"
            return "input " + "x".join(map(str, item.dims))
        if isinstance(item, ast.Call):
            return self.call(item)
        if isinstance(item, ast.Join):
            return f"{self._join_head(item)} {{ " + " | ".join(self.chain(b) for b in item.branches) + " }"
        if isinstance(item, ast.Repeat):
            return f"{self._repeat_words(item)} " + self._braced(item.body)
        if isinstance(item, ast.If):
            return " else ".join(f"if {self.expr(c)} {self._braced(b)}" for c, b in item.arms) + (
                f" else {self._braced(item.otherwise)}" if item.otherwise is not None else "")
        if isinstance(item, ast.From):
            return f"from {item.source}"
        if isinstance(item, ast.Head):
            body = self.call(item.body) if isinstance(item.body, ast.Call) else self._braced(item.body)
            return f"{self._head_words(item)} {body}"
        assert isinstance(item, ast.Group)
        return ("seq " if item.seq else "") + self._braced(item.body)

    def item(self, item) -> str:
        return self._label(item) + self.element(item)

    def _braced(self, items) -> str:
        return "{ " + self.chain(items) + " }" if items else "{ }"

    def chain(self, items) -> str:
        parts = []
        for i, item in enumerate(items):
            text = self.item(item)
            parts.append(text if i == 0 else _sep(self._gap(items[i - 1].span, _start(item))) + text)
        return "".join(parts)

    def _multiline(self, item) -> bool:
        """Does a construct get lines of its own? As in the source; else when it is long."""
        if isinstance(item, (ast.InputDecl, ast.Call, ast.From)) or (isinstance(item, ast.Head)
                                                            and isinstance(item.body, ast.Call)):
            return False
        if self.src is not None and item.span.line:
            return item.span.end_line > item.span.line
        return len(self.item(item)) > _CANONICAL_WIDTH

    # -- lines --------------------------------------------------------------------------

    def _emit(self, indent: int, text: str, first: int, last: int, kind: str = "code",
              comment_indent: Optional[int] = None) -> _Line:
        line = _Line(indent, text, first, last, kind, indent if comment_indent is None else comment_indent)
        self.out.append(line)
        return line

    def lines_of(self, items, indent: int, prefix: str = "", together: bool = False) -> None:
        """A chain over lines at `indent`; `prefix` (`| `) hangs left of its first line. Items
        share a line where the source has them on one line (without a source: `together`)."""
        text: Optional[str] = None
        first = last = 0
        line_indent = indent
        prev = None
        for item in items:
            start = _start(item)
            if prev is None:
                same = False
            elif self.src is not None and start.line:
                same = start.line == prev.span.end_line
            else:
                same = together
            if text is not None and same:
                text += _sep(self._gap(prev.span, start))
            else:
                if text is not None:
                    self._emit(line_indent, text, first, last, comment_indent=indent)
                text, first, last, line_indent = prefix, start.line, start.line, indent - len(prefix)
                prefix = ""
            if self._multiline(item):
                self._open(line_indent, indent, text + self._label(item), item, first)
                text, prev = None, None
                continue
            text += self.item(item)
            last, prev = max(last, item.span.end_line), item
        if text is not None:
            self._emit(line_indent, text, first, last, comment_indent=indent)

    def _open(self, line_indent: int, indent: int, lead: str, item, first: int) -> None:
        """A construct over several lines: its header ending in `{`, its body, `}`."""
        if isinstance(item, ast.If):
            self._open_if(line_indent, indent, lead, item, first)
            return
        if isinstance(item, ast.Join):
            header = f"{self._join_head(item)} {{"
        elif isinstance(item, ast.Repeat):
            header = f"{self._repeat_words(item)} {{"
        elif isinstance(item, ast.Head):
            header = f"{self._head_words(item)} {{"
        else:
            header = "seq {" if item.seq else "{"
        self._emit(line_indent, lead + header, first or item.span.line, self._header_end(item.span), "open", indent)
        inner = indent + INDENT
        if isinstance(item, ast.Join):
            for i, branch in enumerate(item.branches):
                self.lines_of(branch, inner, "" if i == 0 else "| ", together=True)
        else:
            self.lines_of(item.body, inner)
        self._emit(indent, "}", item.span.end_line, item.span.end_line, "close", inner)

    def _open_if(self, line_indent: int, indent: int, lead: str, item: ast.If, first: int) -> None:
        """`if c {`, its body, `} else if c {`, ..., `}`: each arm's header on the line that
        closes the arm before it, as the grammar's examples write it."""
        inner = indent + INDENT
        bodies = [(f"if {self.expr(c)} {{", c.span, b) for c, b in item.arms]
        if item.otherwise is not None:
            bodies.append(("{", None, item.otherwise))
        for i, (header, span, body) in enumerate(bodies):
            if i == 0:
                self._emit(line_indent, lead + header, first or item.span.line,
                           self._header_end(span) if span is not None else item.span.line, "open", indent)
            else:
                # the line of the arm's `{`: the parser keeps the braces' span with the body
                braces = getattr(body, "span", None)
                at = self._header_end(span) if span is not None else (
                    braces.line if braces is not None and self.src is not None else 0)
                self._emit(indent, "} else " + header, at, at, "open", inner)
            self.lines_of(body, inner)
        _, span, body = bodies[-1]
        last = span if span is not None else getattr(body, "span", None)
        end = self.src.closing_line(last) if self.src is not None and last is not None and last.line \
            else item.span.end_line
        self._emit(indent, "}", end, end, "close", inner)

    def _header(self, lead: str, d: ast.Definition) -> None:
        """`net n(a = 1, b = 2) {`; a parameter list the source breaks over lines keeps its
        breaks (each line's parameters together), continued under the first parameter."""
        rows: list[list[ast.Param]] = [[]]
        for prev, p in zip((None, *d.params), d.params):
            if prev is not None and self.src is not None and p.span.line > prev.span.end_line > 0:
                rows.append([])
            rows[-1].append(p)
        if len(rows) == 1:
            self._emit(0, f"{lead}{self._params(d.params)} {{", d.span.line, self._header_end(d.span), "open", 0)
            return
        for i, row in enumerate(rows):
            text = self._params(row)[1:-1]
            if i == 0:
                self._emit(0, f"{lead}({text},", d.span.line, row[-1].span.end_line, "code", 0)
            elif i < len(rows) - 1:
                self._emit(len(lead) + 1, text + ",", row[0].span.line, row[-1].span.end_line, "code")
            else:
                self._emit(len(lead) + 1, text + ") {", row[0].span.line, self._header_end(d.span), "open")

    def _header_end(self, span: ast.Span) -> int:
        """The source line of a construct's `{`, so that the comments of a header written over
        several lines stay with the header's output line."""
        return self.src.brace_line(span) if self.src is not None and span.line else span.line

    def program(self, program: ast.Program) -> str:
        for d in program.definitions:
            word = "net" if isinstance(d, ast.NetDef) else "block"
            self._header(f"{word} {d.name}", d)
            self.lines_of(d.body, INDENT)
            close = self._emit(0, "}", d.span.end_line, d.span.end_line, "close", INDENT)
            close.top_close = True
        if self.src is not None:
            self._place_comments()
        return self._render()

    # -- comments and blank lines -------------------------------------------------------

    def _place_comments(self) -> None:
        """Each comment stays with the output line that holds the code it was written beside.

        A comment at the end of a source line trails the output line holding that line's code;
        one on a line of its own goes before the output line holding the code that follows it
        (the next line's, or, inside a construct printed on one line, that construct's). An
        output line gathering several comments (its code came from several source lines) keeps
        them in their order, each on a line of its own: only the last may trail the code, and
        only if it trailed code in the source, so no two comments ever share a line."""
        code = self.out
        owner_of: dict[int, int] = {}  # source line -> the last output line that holds code from it
        inside: dict[int, int] = {}    # source line strictly within an output line's code -> that line
        reached, highest = [], 0       # the highest source line reached by each output line and before it
        for i, line in enumerate(code):
            if line.first:
                owner_of.update(dict.fromkeys(range(line.first, line.last + 1), i))
                for n in range(line.first + 1, line.last):
                    inside.setdefault(n, i)
            highest = max(highest, line.first)
            reached.append(highest)
        attached: dict[int, list[tuple[str, bool, int]]] = {}  # output line -> (text, trails, source line)
        for line_no, col, text, trailing in self.src.comments:
            if trailing and line_no in owner_of:
                code_end = len(self.src.lines[line_no - 1][:col].rstrip())
                attached.setdefault(owner_of[line_no], []).append((_sep(col - code_end, "  ") + text, True, line_no))
                continue
            at = inside.get(line_no)
            if at is None:
                at = bisect.bisect_right(reached, line_no)
            attached.setdefault(at, []).append((text, False, line_no))
        self.out = []
        for i in range(len(code) + 1):
            notes = attached.get(i, [])
            line = code[i] if i < len(code) else None
            if notes and notes[-1][1] and line is not None:
                line.trailing.append(notes.pop()[0])
            indent = line.comment_indent if line is not None else 0
            self.out += [_Line(indent, text.lstrip(), n, n, "comment") for text, _, n in notes]
            if line is not None:
                self.out.append(line)

    def _render(self) -> str:
        text: list[str] = []
        prev: Optional[_Line] = None
        for line in self.out:
            if prev is not None and (prev.top_close or (
                    self.src is not None and prev.kind != "open" and line.kind != "close"
                    and prev.last and line.first and self.src.blank_between(prev.last, line.first))):
                text.append("")
            text.append((" " * line.indent + line.text + "".join(line.trailing)).rstrip())
            prev = line
        while text and not text[-1]:
            text.pop()
        return "\n".join(text) + "\n"


def _float(value: float) -> str:
    if value == float("inf"):
        return "1e999"  # what the parser reads as infinity
    return repr(value)
