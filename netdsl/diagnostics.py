"""Diagnostics: every mistake in a .net file, located, explained, and reported together.

A `Diagnostic` has an error code, a one-line message (lowercase, no final period), the span
it is about, and optional notes (which may point elsewhere: "this layer produced 256x5x5")
and a help line. Stages append to a `DiagnosticBag` and keep going; the caller raises one
`NetDSLError` with all of them at the end. Rendering follows mypy's first line and rustc's
source excerpt:

    nets/bad.net:7:12: error[E201]: unknown op `cnov`
      |
    7 |     conv1: cnov(64, 7, stride=2, pad=3)
      |            ^^^^
      = help: did you mean `conv`?
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Union

from . import codes
from .ast import NOWHERE, Span

# One line per error code. The full catalogue with examples is in the README ("Error codes");
# tests/test_diagnostics.py proves that every code here is produced by some input.
CODES: dict[str, str] = codes.MEANINGS  # code -> its meaning in a line


@dataclass(frozen=True)
class Note:
    """A secondary remark; with a span it is printed with its own source excerpt."""

    message: str
    span: Optional[Span] = None


@dataclass(frozen=True)
class Diagnostic:
    """One error: `code`, `message`, where (`line`, `column`, from `span`), notes and help."""

    code: str
    message: str
    span: Span = NOWHERE
    notes: tuple[Note, ...] = ()
    help: Optional[str] = None

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column


class NetDSLError(Exception):
    """Raised for an invalid net; `.diagnostics` lists every error found, `str()` renders them.
    `.partial` is what could be built despite them (a `netdsl.ir.Net`, shapes
    inferred up to the errors), so a diagram can show where the net breaks; None when the
    file did not parse or defines no net."""

    def __init__(self, diagnostics: Iterable[Diagnostic], source: str = "", filename: str = "<string>",
                 truncated: bool = False, partial: Any = None):
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.span.line, d.span.column))
        self.source = source
        self.filename = filename
        self.truncated = truncated  # checking stopped after MAX_DIAGNOSTICS errors
        self.partial = partial  # what was lowered before the errors (render draws it), or None
        super().__init__(render_all(self.diagnostics, source, filename, truncated))

    def __repr__(self) -> str:
        n = len(self.diagnostics)
        codes = ", ".join(dict.fromkeys(d.code for d in self.diagnostics))
        return f"<NetDSLError: {n} error{'s' if n != 1 else ''} in {self.filename} ({codes})>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain text: the diagnostics as the command line prints them."""
        printer.text(str(self))

    def _repr_html_(self) -> str:
        """The rendered diagnostics in a notebook: the text, carets aligned, escaped, in <pre>."""
        import html
        return f'<pre class="netdsl-diagnostics">{html.escape(str(self))}</pre>'

    def _repr_markdown_(self) -> str:
        fence = "```"
        while fence in str(self):  # a fence the text cannot close
            fence += "`"
        return f"{fence}text\n{self}\n{fence}"


MAX_DIAGNOSTICS = 100  # a file with more errors is not worth checking further (nor printing)

# A help line, or a function that makes one: a hint such as "did you mean" costs a search among
# names, so it is made only for a report the bag keeps, not for each repeat of one it has.
Help = Union[str, None, Callable[[], Optional[str]]]


class DiagnosticBag:
    """Collects diagnostics from a stage that goes on after each one."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: set = set()
        self.truncated = False

    @property
    def full(self) -> bool:
        """True once MAX_DIAGNOSTICS errors are in: the stage may stop."""
        return len(self.items) >= MAX_DIAGNOSTICS

    def error(self, code: str, message: str, span: Span = NOWHERE, *,
              notes: Iterable[Note] = (), help: Help = None) -> None:
        """Record a report, unless the bag has it already (same code, message and place: a block
        expanded twice, a repeat's passes) or is full; the limit counts distinct reports.
        `help` may be a function, called only when the report is kept."""
        assert code in CODES, code
        key = (code, message, span)
        if key in self._seen:  # a block expanded twice must not report its mistake twice
            return
        if self.full:
            self.truncated = True
            return
        self._seen.add(key)
        if callable(help):
            help = help()
        self.items.append(Diagnostic(code, message, span, tuple(notes), help))

    def __bool__(self) -> bool:
        return bool(self.items)


# difflib compares two names in time proportional to the product of their lengths, and a hint
# compares the name with every candidate: both are bounded, so a hint costs at most a few
# milliseconds whatever the file (100 KB names, a hundred thousand layers to choose from).
HINT_MAX_LENGTH = 100      # longer names are not typos worth a hint, and are not compared
HINT_MAX_CANDIDATES = 1000  # the first this many candidates (of a fitting length) are compared


def did_you_mean(name: str, candidates: Iterable[str]) -> Optional[str]:
    """`did you mean `conv`?` for a misspelt name, or None when nothing is close. Only names of
    at most HINT_MAX_LENGTH characters are compared, and only the first HINT_MAX_CANDIDATES
    candidates of such a length; answers are remembered."""
    if len(name) > HINT_MAX_LENGTH:
        return None
    picked: list[str] = []
    for c in candidates:
        if len(c) <= HINT_MAX_LENGTH:
            picked.append(c)
            if len(picked) >= HINT_MAX_CANDIDATES:
                break
    return _closest(name, tuple(picked))


def name_list(names: Iterable[str], limit: int = 20) -> str:
    """"`a`, `b`, `c`" for a help line, at most `limit` names shown: "... and 980 more"."""
    names = list(names)
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f" and {len(names) - limit:,} more" if len(names) > limit else "")


@functools.lru_cache(maxsize=256)
def _closest(name: str, candidates: tuple[str, ...], cutoff: float = 0.6) -> Optional[str]:
    # difflib.get_close_matches, but of equally close names the first is taken (it takes the
    # greatest string): a list's order says which candidate is likelier. difflib is imported
    # here, by a mistake's diagnosis: a check without mistakes never needs it (start-up).
    import difflib

    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(name)
    best, best_score = None, cutoff
    for c in candidates:
        matcher.set_seq1(c)
        if matcher.real_quick_ratio() >= best_score and matcher.quick_ratio() >= best_score:
            score = matcher.ratio()
            if score > best_score or (best is None and score >= best_score):
                best, best_score = c, score
    return f"did you mean `{best}`?" if best is not None else None


# --- rendering ---------------------------------------------------------------------------

TAB = 4
EXCERPT_WIDTH = 120  # longer source lines are shown as a window of this many columns around the place


# Control characters would garble a terminal (or drive it: an escape sequence in a comment);
# each is shown as its one-column Unicode picture (NUL as ␀), so the caret still lines up.
_CONTROL_PICTURES = {c: 0x2400 + c for c in range(32) if c != 9} | {127: 0x2421}


def source_lines(source: str) -> list[str]:
    """The lines as the parser counts them: split at `\n` only (str.splitlines would also
    split at form feeds and other separators, putting carets on the wrong line)."""
    return [line.removesuffix("\r") for line in source.split("\n")]


def _excerpt(lines: list[str], span: Span, mark: str) -> list[str]:
    """The source line of `span` with `mark` characters under it, tabs expanded so the caret
    lines up with what a terminal shows."""
    if not (1 <= span.line <= len(lines)):
        return []
    text = lines[span.line - 1].translate(_CONTROL_PICTURES)
    start = len(text[: span.column - 1].expandtabs(TAB))
    if span.end_line == span.line and span.end_column > span.column:
        end = len(text[: span.end_column - 1].expandtabs(TAB))
    else:  # a span over several lines: underline to the end of the first
        end = max(len(text.rstrip().expandtabs(TAB)), start + 1)
    shown = text.expandtabs(TAB)
    if len(shown) > EXCERPT_WIDTH:  # a window around the place, so a huge line stays readable
        lo = max(0, min(start - EXCERPT_WIDTH // 3, len(shown) - EXCERPT_WIDTH))
        hi = lo + EXCERPT_WIDTH
        before, after = ("..." if lo else ""), ("..." if hi < len(shown) else "")
        shown = before + shown[lo:hi] + after
        start, end = start - lo + len(before), min(end, hi) - lo + len(before)
    gutter = str(span.line)
    pad = " " * len(gutter)
    return [
        f"{pad} |",
        f"{gutter} | {shown}".rstrip(),
        f"{pad} | {' ' * start}{mark * max(1, end - start)}",
    ]


def render(diag: Diagnostic, source: str, filename: str, lines: Optional[list[str]] = None) -> str:
    """One diagnostic as text: where, what, the source line with a caret, notes and help."""
    from .files import shown

    if lines is None:
        lines = source_lines(source)
    filename = shown(filename)  # a file name's control characters escaped, as the source's are pictured
    where = f"{filename}:{diag.span}" if diag.span.line else filename
    out = [f"{where}: error[{diag.code}]: {diag.message}"]
    out += _excerpt(lines, diag.span, "^")
    for note in diag.notes:
        if note.span is not None and note.span.line:
            out.append(f"  = note: {note.message}")
            out.append(f"  --> {filename}:{note.span}")
            out += ["  " + line for line in _excerpt(lines, note.span, "-")]
        else:
            out.append(f"  = note: {note.message}")
    if diag.help:
        out.append(f"  = help: {diag.help}")
    return "\n".join(out)


def render_all(diagnostics: list[Diagnostic], source: str, filename: str, truncated: bool = False) -> str:
    from .files import shown

    lines = source_lines(source)  # once: a file may have many errors
    body = "\n\n".join(render(d, source, filename, lines) for d in diagnostics)
    filename = shown(filename)
    n = len(diagnostics)
    more = "; checking stopped there" if truncated else ""
    return f"{body}\n\n{n} error{'s' if n != 1 else ''} in {filename}{more}"
