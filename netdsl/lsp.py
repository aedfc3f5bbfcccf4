"""The language server, `netdsl lsp`: netdsl's checks in any editor that speaks the Language
Server Protocol (editors/vscode starts it; the README shows Neovim and Helix set-ups).

- diagnostics as you type: every error `netdsl check` reports, with its code, its notes as
  related information and its help line under the message;
- hover on a layer (op, output shape, params, MACs: each instance of a block's layer), on a
  block call or any scope (its totals), on a definition's name;
- go to definition: a block's name to its `block`, a `from` path to the layer or scope it names,
  a parameter's use to the parameter;
- completion: ops, blocks and keywords; inside a call's parentheses the argument names of the op
  or block being called, then the words an argument accepts (`pad=same`);
- formatting through `netdsl fmt` (netdsl.printer);
- an outline (document symbols): the blocks and the net, with their labelled layers and scopes.

The first half of this module works on netdsl's own types (a `Document`; positions are 1-based
lines and columns of characters, as `Span`s are) and needs nothing else; `serve` adds the
protocol, with pygls (`pip install 'netdsl[lsp]'`), which only it imports. Like `check`, it never
imports torch: it runs netdsl's public pipeline, `netdsl.loads`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import typing
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from . import __version__, ast, codes
from .diagnostics import Diagnostic, NetDSLError, source_lines
from .ir import Layer, Net, Scope, scopes_of
from .network import loads
from .ops import REGISTRY, REQUIRED, Bool, fmt_shape, fmt_value
from .parser import KEYWORDS, SKIPPED, parse
from .printer import FormatError, format_source
from .vocabulary import CONSTANT_KEYWORDS, DEFINITION_KEYWORDS, PATH_KEYWORDS, alternatives

Position = tuple[int, int]  # (line, column), 1-based, columns in characters

_ITEMS = typing.get_args(ast.Item)  # what a chain holds: calls, joins, repeats, heads, groups, ...
MAX_SHOWN = 12  # instances listed in a hover; the rest are counted


def _contains(span: ast.Span, pos: Position) -> bool:
    """Whether `pos` is in `span`, or just after its end (where the cursor is after typing it)."""
    return bool(span.line) and (span.line, span.column) <= pos <= (span.end_line, span.end_column)


def _inside(inner: ast.Span, outer: ast.Span) -> bool:
    return bool(outer.line) and (outer.line, outer.column) <= (inner.line, inner.column) and \
        (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column)


def _size(span: ast.Span) -> tuple[int, int]:
    """How large a span is, to find the innermost of those around a place: lines, then columns."""
    return span.end_line - span.line, span.end_column - span.column if span.end_line == span.line else 10 ** 9


def walk(node: Any) -> Iterator[Any]:
    """Every syntax-tree node under `node` (itself included), whatever rules the grammar has:
    the dataclasses of netdsl.ast, found through their fields."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Span):
            continue
        if isinstance(n, tuple):
            stack.extend(reversed(n))
        elif dataclasses.is_dataclass(n):
            yield n
            stack.extend(getattr(n, f.name) for f in reversed(dataclasses.fields(n)))


class Document:
    """One text as netdsl sees it: checked once (`diagnostics`, and the net, built up to the
    errors, in `net`), parsed again only when a hover or a jump needs the syntax tree."""

    def __init__(self, text: str, filename: str = "<string>"):
        self.text, self.filename = text, filename
        self.lines = source_lines(text)
        self.net: Optional[Net] = None
        self.diagnostics: list[Diagnostic] = []
        try:
            self.net = loads(text, filename).ir
        except NetDSLError as e:
            self.diagnostics = list(e.diagnostics)
            self.net = e.partial
        self._program: Any = None
        self._parsed = False
        self._index: Optional[tuple[dict, dict, dict, dict]] = None

    @property
    def program(self) -> Optional[ast.Program]:
        """The syntax tree, None when the text does not parse."""
        if not self._parsed:
            self._parsed = True
            if any(d.code == codes.FILE_TOO_LARGE for d in self.diagnostics):
                return None  # refused unread, as the check did
            try:
                self._program = parse(self.text, self.filename)
            except NetDSLError:
                self._program = None
        return self._program

    def _indexes(self) -> tuple[dict, dict, dict, dict]:
        # by span: the layers and scopes made from each piece of text (a block's body is made
        # once per use); each scope's totals; the syntax node of each span
        if self._index is None:
            layers: dict[ast.Span, list[Layer]] = {}
            scopes: dict[ast.Span, list[Scope]] = {}
            totals: dict[str, list[int]] = {}
            nodes: dict[ast.Span, Any] = {}
            if self.net is not None:
                for layer in self.net:
                    layers.setdefault(layer.span, []).append(layer)
                    for scope in scopes_of(layer):
                        total = totals.setdefault(scope.name, [0, 0, 0])
                        total[0] += layer.params
                        total[1] += layer.macs
                        total[2] += 1
                for scope in self.net.scopes.values():
                    scopes.setdefault(scope.span, []).append(scope)
            if self.program is not None:
                for node in walk(self.program):
                    span = getattr(node, "span", None)
                    if isinstance(span, ast.Span) and span.line and span not in nodes:
                        nodes[span] = node
            self._index = layers, scopes, totals, nodes
        return self._index

    def layers_at(self, span: ast.Span) -> list[Layer]:
        return self._indexes()[0].get(span, [])

    def scopes_at(self, span: ast.Span) -> list[Scope]:
        return self._indexes()[1].get(span, [])

    def totals(self, scope: Scope) -> tuple[int, int, int]:
        """A scope's params, MACs and layer count."""
        return tuple(self._indexes()[2].get(scope.name, (0, 0, 0)))  # type: ignore[return-value]

    def node_at(self, span: ast.Span) -> Any:
        return self._indexes()[3].get(span)

    def blocks(self) -> dict[str, ast.BlockDef]:
        program = self.program
        return {} if program is None else {d.name: d for d in program.definitions if isinstance(d, ast.BlockDef)}

    def item_at(self, pos: Position) -> Any:
        """The innermost layer, join, repeat, head, group or input at `pos` (its label included)."""
        if self.program is None:
            return None
        best, best_size = None, None
        for node in walk(self.program):
            if not isinstance(node, _ITEMS):
                continue
            for span in (node.span, getattr(node, "label_span", ast.NOWHERE)):
                if _contains(span, pos) and (best_size is None or _size(node.span) < best_size):
                    best, best_size = node, _size(node.span)
        if isinstance(best, ast.Head) and isinstance(best.body, ast.Call):
            return best.body  # `aux1: train head auxiliary(classes)`: the head is the call's instance
        return best

    def definition_at(self, pos: Position) -> Optional[ast.Definition]:
        program = self.program
        for d in program.definitions if program is not None else ():
            if _contains(d.span, pos):
                return d
        return None


# --- hover -------------------------------------------------------------------------------

def _numbers(shape: Optional[tuple[int, ...]], params: int, macs: int) -> str:
    return f"→ `{fmt_shape(shape)}` · {params:,} params · {macs:,} MACs"


def _layer_line(layer: Layer) -> str:
    if layer.op is None or layer.attrs is None:
        return f"`{layer.name}`: not made (see the error here)"
    what = layer.describe()
    train = " (training only)" if layer.train_only else ""
    return f"`{layer.name}` `{what}` {_numbers(layer.shape, layer.params, layer.macs)}{train}"


def _scope_line(doc: Document, scope: Scope) -> str:
    params, macs, count = doc.totals(scope)
    output = scope.output
    if output is None and doc.net is not None:  # a labelled join: the join layer bears its name
        output = doc.net.layers.get(scope.name)
    shape = output.shape if output is not None else None
    train = " (training only)" if scope.train_only else ""
    return (f"`{scope.name}` `{scope.title}` {_numbers(shape, params, macs)}, "
            f"{count:,} layer{'s' if count != 1 else ''}{train}")


def _listed(lines: list[str]) -> list[str]:
    shown = [f"- {line}" for line in lines[:MAX_SHOWN]]
    if len(lines) > MAX_SHOWN:
        shown.append(f"- and {len(lines) - MAX_SHOWN:,} more")
    return shown


def signature(name: str) -> Optional[str]:
    """An op as a call: `conv(out, kernel, stride=1, pad=0, *, dilation=1, groups=1, bias=true)`."""
    spec = REGISTRY.get(name)
    if spec is None or spec.source:
        return None
    shown, starred = [], False
    for a in spec.attrs:
        if not a.positional and not starred:
            shown.append("*")
            starred = True
        if a.default is REQUIRED:
            shown.append(a.name)
        elif callable(a.default):
            shown.append(f"{a.name}=…")
        else:  # 1e-05, not 1.0000000000000001e-05, as the README's op table writes it
            default = f"{a.default:g}" if isinstance(a.default, float) else fmt_value(a.default)
            shown.append(f"{a.name}={default}")
    braces = " { … | … }" if spec.join else ""
    return f"{name}({', '.join(shown)}){braces}" if shown else f"{name}{braces}"


def _block_signature(block: ast.BlockDef) -> str:
    from .printer import expr_text

    params = [p.name if p.default is None else f"{p.name} = {expr_text(p.default)}" for p in block.params]
    return f"block {block.name}({', '.join(params)})"


def _op_help(name: str) -> list[str]:
    spec = REGISTRY.get(name)
    if spec is None:
        return []
    shown = [f"**{name}**: {spec.doc}"]
    sig = signature(name)
    if sig:
        shown.append(f"`{sig}`")
    return shown


def hover(doc: Document, pos: Position) -> Optional[tuple[str, ast.Span]]:
    """Markdown about what is at `pos`, and the span it is about; None where there is nothing."""
    if doc.program is None:
        return None
    blocks = doc.blocks()
    for d in doc.program.definitions:
        if _contains(d.name_span, pos):
            if isinstance(d, ast.BlockDef):
                uses = [s for s in (doc.net.scopes.values() if doc.net is not None else ()) if s.block == d.name]
                text = [f"`{_block_signature(d)}`", "", f"used {len(uses):,} time{'s' if len(uses) != 1 else ''}"]
                return "\n".join(text + _listed([_scope_line(doc, s) for s in uses])), d.name_span
            if doc.net is not None:
                totals = doc.net.totals()
                return (f"net `{doc.net.name}`: input `{fmt_shape(doc.net.input_shape)}`, {len(doc.net):,} layers, "
                        f"{totals.params:,} params, {totals.macs:,} MACs"), d.name_span
            return None
    node = doc.item_at(pos)
    if node is None:
        return None
    layers, scopes = doc.layers_at(node.span), doc.scopes_at(node.span)
    name = getattr(node, "name", None) or getattr(node, "kind", None)
    text: list[str] = []
    if isinstance(node, ast.Call) and node.name in blocks:
        text.append(f"`{_block_signature(blocks[node.name])}`")
    elif isinstance(name, str):
        text += _op_help(name)
    if scopes:
        text += [""] + _listed([_scope_line(doc, s) for s in scopes])
    named = {s.name for s in scopes}
    layers = [layer for layer in layers if layer.name not in named]  # said by its scope's line
    if layers:
        text += [""] + _listed([_layer_line(layer) for layer in layers])
    if not (scopes or layers) and text:
        text += ["", "not checked: see the errors of this file" if doc.diagnostics else "not used by the net"]
    return ("\n".join(text).strip(), node.span) if text else None


# --- go to definition --------------------------------------------------------------------

def _labelled(doc: Document, span: ast.Span) -> ast.Span:
    """Where a layer or scope made from the item at `span` is named: its label, else the item."""
    node = doc.node_at(span)
    label = getattr(node, "label_span", ast.NOWHERE)
    return label if label.line else span


def _source_target(doc: Document, node: Any) -> Optional[ast.Span]:
    """The layer or scope a `from` path names, looked up as lowering does: in the scope around
    the item, then outward."""
    net = doc.net
    if net is None:
        return None
    body = getattr(node, "body", None)
    made = doc.scopes_at(body.span if isinstance(body, ast.Call) else node.span)
    around = made[0].parent.ancestors() if made and made[0].parent is not None else []
    # an item that makes no scope of its own (a join branch's `from`): the scopes around its text
    around = around or sorted((s for s in net.scopes.values() if _inside(node.span, s.span)), key=lambda s: s.level)
    candidates = [f"{s.name}.{node.source}" for s in reversed(around)] + [node.source]
    # the head could not be made (its path is wrong, say): any layer or scope of that name
    candidates += [n for n in [*net.layers, *net.scopes] if n.endswith("." + node.source)]
    for name in candidates:
        if name in net.layers:
            return _labelled(doc, net.layers[name].span)
        if name in net.scopes:
            return _labelled(doc, net.scopes[name].span)
    return None


def definition(doc: Document, pos: Position) -> Optional[ast.Span]:
    """Where the name at `pos` is defined: a block, the layer a `from` path names, a parameter."""
    if doc.program is None:
        return None
    blocks = doc.blocks()
    for node in walk(doc.program):
        name_span = getattr(node, "name_span", None)
        if isinstance(node, (ast.Call, ast.Join)) and name_span is not None and _contains(name_span, pos):
            name = getattr(node, "name", None) or getattr(node, "kind", None)
            if name in blocks:
                return blocks[name].name_span
        # a `from` path: a head's, a join branch's (whose node is the `from` and its path alone)
        source_span = getattr(node, "source_span", getattr(node, "span", None))
        if isinstance(getattr(node, "source", None), str) and source_span is not None and _contains(source_span, pos):
            return _source_target(doc, node)
        if isinstance(node, ast.NameRef) and _contains(node.span, pos):
            here = doc.definition_at(pos)
            for p in here.params if here is not None else ():
                if p.name == node.name:
                    return p.span
    return None


# --- completion --------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # "op", "block", "keyword", "argument", "value", "layer"
    detail: str = ""
    doc: str = ""
    insert: Optional[str] = None


def _strip_comments(text: str) -> str:
    # comments blanked; a quoted label (`"a#1":`) is kept, and starts none
    return re.sub(SKIPPED, lambda m: m.group() if m.group()[0] == '"' else " " * len(m.group()), text)


def _open_call(before: str) -> Optional[tuple[str, int]]:
    """The name of the call whose parentheses the text ends inside, and where its `(` is."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        c = before[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", before[:i])
                return (m.group(1), m.start(1)) if m else None
            depth -= 1
        elif c in "{}":
            return None  # arguments never hold braces: the cursor is in a body
    return None


def _blocks_before(doc: Document, line: int) -> dict[str, ast.BlockDef]:
    """The blocks defined before the definition that holds `line`, for a text that does not parse
    (the definition being written breaks it) and never did: the text before it may."""
    start = re.compile(rf"\s*{alternatives(DEFINITION_KEYWORDS)}")
    for i in range(min(line, len(doc.lines)) - 1, 0, -1):
        if start.match(doc.lines[i]):
            try:
                program = parse("\n".join(doc.lines[:i]), doc.filename)
            except NetDSLError:
                return {}
            return {d.name: d for d in program.definitions if isinstance(d, ast.BlockDef)}
    return {}


def completions(doc: Document, pos: Position, blocks: Optional[dict[str, ast.BlockDef]] = None) -> list[Completion]:
    """What may be written at `pos`. `blocks`: the file's blocks as last parsed, for while it
    does not parse (the default: this text's own)."""
    line, column = pos
    if not (1 <= line <= len(doc.lines)):
        return []
    current = doc.lines[line - 1][: column - 1]
    if any(m.group()[0] == "#" for m in re.finditer(SKIPPED, current)):
        return []  # in a comment
    before = _strip_comments("\n".join(doc.lines[: line - 1] + [current]))
    blocks = doc.blocks() or blocks or _blocks_before(doc, line)
    here = doc.definition_at(pos)
    params = [p.name for p in here.params] if here is not None else []
    if re.search(rf"\b{alternatives(PATH_KEYWORDS)}\s+[A-Za-z0-9_.]*$", before) and doc.net is not None:
        return [Completion(n, "layer") for n in [*doc.net.scopes, *(x.name for x in doc.net.body())]][:1000]
    call = _open_call(before)
    if call is not None:
        callee, start = call
        word_before = re.search(r"([A-Za-z_]+)\s+$", before[:start])
        if word_before is not None and word_before.group(1) in KEYWORDS:
            return []  # a definition's parameter list (`block b(`): new names
        value = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*[A-Za-z_0-9]*$", before)
        spec = REGISTRY.get(callee)
        if value is not None:  # `pad=` ...: the words the argument takes, the parameters in scope
            words: list[str] = []
            attr = next((a for a in spec.attrs if a.name == value.group(1)), None) if spec is not None else None
            if attr is not None:
                words += list(getattr(attr.type, "symbols", ()))
                if isinstance(attr.type, Bool):
                    words += sorted(CONSTANT_KEYWORDS, reverse=True)  # true, false
            return [Completion(w, "value") for w in words] + [Completion(p, "value", "parameter") for p in params]
        if spec is not None:
            args = [Completion(a.name, "argument", a.type.doc, a.doc, f"{a.name}=") for a in spec.attrs]
        elif callee in blocks:
            args = [Completion(p.name, "argument", f"{callee} parameter", "", f"{p.name}=")
                    for p in blocks[callee].params]
        else:
            args = []
        return args + [Completion(p, "value", "parameter") for p in params]
    items = [Completion(name, "op", signature(name) or "", spec.doc)
             for name, spec in REGISTRY.items() if not spec.source]
    items += [Completion(name, "block", _block_signature(b)) for name, b in blocks.items()]
    items += [Completion(k, "keyword") for k in sorted(KEYWORDS)]
    return items


# --- outline -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Symbol:
    """A named thing of the file for an editor's outline: a definition, or a labelled item
    (with the labelled items inside it)."""

    name: str
    kind: str  # "net", "block", "layer" (a call) or "scope" (a join, repeat, head or group)
    detail: str
    span: ast.Span  # all of it, label included
    name_span: ast.Span
    children: tuple["Symbol", ...] = ()


def _labelled_inside(node: Any) -> list[Symbol]:
    found: list[Symbol] = []
    stack = [getattr(node, f.name) for f in reversed(dataclasses.fields(node))]
    while stack:
        child = stack.pop()
        if isinstance(child, tuple) and not isinstance(child, ast.Span):
            stack.extend(reversed(child))
        elif dataclasses.is_dataclass(child):
            label = getattr(child, "label", None)
            if not isinstance(child, _ITEMS) or label is None:
                found += _labelled_inside(child)  # nesting is bounded by the parser (MAX_NESTING)
                continue
            start = min(child.label_span, child.span)
            span = ast.Span(start.line, start.column, child.span.end_line, child.span.end_column)
            what = getattr(child, "name", None) or getattr(child, "kind", None)
            kind = "layer" if isinstance(child, ast.Call) else "scope"
            detail = what if isinstance(what, str) else type(child).__name__.lower()
            found.append(Symbol(label, kind, detail, span, child.label_span, tuple(_labelled_inside(child))))
    return found


def outline(doc: Document) -> list[Symbol]:
    """The file's definitions, each with its labelled layers and scopes, as written."""
    program = doc.program
    if program is None:
        return []
    return [Symbol(d.name, "block" if isinstance(d, ast.BlockDef) else "net",
                   _block_signature(d) if isinstance(d, ast.BlockDef) else f"net {d.name}",
                   d.span, d.name_span, tuple(_labelled_inside(d)))
            for d in program.definitions]


# --- formatting --------------------------------------------------------------------------

def formatted(doc: Document) -> Optional[str]:
    """The text as `netdsl fmt` writes it; None when it does not parse (nothing to do)."""
    try:
        return format_source(doc.text, doc.filename)
    except (NetDSLError, FormatError):
        return None


# --- the protocol ------------------------------------------------------------------------

def build_server():
    """The pygls `LanguageServer`, its features registered."""
    from lsprotocol import types as lsp
    from pygls.lsp.server import LanguageServer
    from pygls.uris import to_fs_path
    from pygls.workspace.position_codec import ServerTextPosition

    server = LanguageServer("netdsl", __version__)
    documents: dict[str, Document] = {}
    parsed: dict[str, Document] = {}  # the last text that parsed: its blocks complete while typing breaks it
    kinds = {"op": lsp.CompletionItemKind.Function, "block": lsp.CompletionItemKind.Class,
             "keyword": lsp.CompletionItemKind.Keyword, "argument": lsp.CompletionItemKind.Property,
             "value": lsp.CompletionItemKind.Value, "layer": lsp.CompletionItemKind.Reference}

    def codec():
        return server.workspace.position_codec

    def to_position(lines: Sequence[str], line: int, column: int):
        return codec().position_to_client_units(lines, ServerTextPosition(line - 1, column - 1))

    def to_range(doc: Document, span: ast.Span):
        if not span.line:
            return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        return lsp.Range(to_position(doc.lines, span.line, span.column),
                         to_position(doc.lines, span.end_line, span.end_column))

    def from_position(doc: Document, position) -> Position:
        server_pos = codec().position_from_client_units(doc.lines, position)
        return server_pos.line + 1, server_pos.character + 1

    def checked(text: str, uri: str) -> Any:
        """The text checked (a Document), or the exception a bug in netdsl raised."""
        try:
            return Document(text, to_fs_path(uri) or uri)
        except Exception as e:  # said where the user looks, and the server goes on
            return e

    def publish(uri: str, version: Optional[int], result: Any) -> None:
        if not isinstance(result, Document):
            server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, [lsp.Diagnostic(
                lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)),
                f"netdsl failed to check this file (a bug in netdsl: please report it with the file): "
                f"{type(result).__name__}: {result}", severity=lsp.DiagnosticSeverity.Error, source="netdsl")],
                version=version))
            return
        doc, found = result, []
        for d in doc.diagnostics:
            where = to_range(doc, d.span)
            related = [lsp.DiagnosticRelatedInformation(
                lsp.Location(uri, to_range(doc, n.span) if n.span is not None and n.span.line else where), n.message)
                for n in d.notes]
            message = d.message + (f"\nhelp: {d.help}" if d.help else "")
            found.append(lsp.Diagnostic(where, message, severity=lsp.DiagnosticSeverity.Error, code=d.code,
                                        source="netdsl", related_information=related or None))
        server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, found, version=version))

    def keep(uri: str, result: Any) -> None:
        if isinstance(result, Document):
            documents[uri] = result
            if result.net is not None:  # it was lowered, so it parsed
                parsed[uri] = result

    # Checks run one at a time, off the event loop (a hover is answered while a large net is
    # checked), and only for the latest text: edits that come during a check are checked
    # together after it, and a check that a newer edit overtook is not published.
    latest: dict[str, int] = {}
    tickets = itertools.count()
    one_at_a_time = asyncio.Lock()

    async def check_latest(uri: str) -> None:
        ticket = latest[uri] = next(tickets)
        async with one_at_a_time:
            if latest.get(uri) != ticket:
                return
            text_document = server.workspace.get_text_document(uri)
            version, text = text_document.version, text_document.source
            result = await asyncio.to_thread(checked, text, uri)
        if latest.get(uri) != ticket:
            return
        keep(uri, result)
        publish(uri, version, result)

    def document(uri: str) -> Document:
        """The document as it is now, checked now if its last check is of an older text."""
        text = server.workspace.get_text_document(uri).source
        doc = documents.get(uri)
        if doc is None or doc.text != text:
            result = checked(text, uri)
            keep(uri, result)
            doc = documents.get(uri) if isinstance(result, Document) else Document("")
        return doc

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls, params: lsp.DidOpenTextDocumentParams) -> None:
        await check_latest(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls, params: lsp.DidChangeTextDocumentParams) -> None:
        await check_latest(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        documents.pop(uri, None)
        parsed.pop(uri, None)
        latest.pop(uri, None)  # a check under way is not published
        server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, []))

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(ls, params: lsp.HoverParams):
        doc = document(params.text_document.uri)
        found = hover(doc, from_position(doc, params.position))
        if found is None:
            return None
        text, span = found
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text), to_range(doc, span))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls, params: lsp.DefinitionParams):
        doc = document(params.text_document.uri)
        span = definition(doc, from_position(doc, params.position))
        return None if span is None else lsp.Location(params.text_document.uri, to_range(doc, span))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["(", ",", "="]))
    def on_completion(ls, params: lsp.CompletionParams):
        uri = params.text_document.uri
        doc = document(uri)
        items = [lsp.CompletionItem(c.label, kind=kinds[c.kind], detail=c.detail or None,
                                    documentation=c.doc or None, insert_text=c.insert)
                 for c in completions(doc, from_position(doc, params.position),
                                      parsed[uri].blocks() if uri in parsed else None)]
        return lsp.CompletionList(is_incomplete=False, items=items)

    symbol_kinds = {"net": lsp.SymbolKind.Module, "block": lsp.SymbolKind.Class, "layer": lsp.SymbolKind.Field,
                    "scope": lsp.SymbolKind.Namespace}

    def to_symbol(doc: Document, symbol: Symbol):
        return lsp.DocumentSymbol(symbol.name, symbol_kinds[symbol.kind], to_range(doc, symbol.span),
                                  to_range(doc, symbol.name_span), detail=symbol.detail,
                                  children=[to_symbol(doc, c) for c in symbol.children] or None)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(ls, params: lsp.DocumentSymbolParams):
        doc = document(params.text_document.uri)
        return [to_symbol(doc, symbol) for symbol in outline(doc)]

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(ls, params: lsp.DocumentFormattingParams):
        doc = document(params.text_document.uri)
        text = formatted(doc)
        if text is None or text == doc.text:
            return []
        end = lsp.Position(len(doc.lines) - 1, codec().client_num_units(doc.lines[-1]))
        return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), text)]

    @server.feature(lsp.SHUTDOWN)
    def on_shutdown(ls, params: None) -> None:
        server.netdsl_shut_down = True  # the protocol's exit status: 0 after a shutdown request, else 1

    server.netdsl_shut_down = False
    return server


def serve(stdin=None, stdout=None) -> int:
    """Run the language server over `stdin` and `stdout` (binary streams; by default standard
    input and output) until the editor ends it. Returns the exit status the protocol asks for:
    0 when the editor asked the server to shut down first, 1 when it did not."""
    server = build_server()
    server.start_io(stdin, stdout)
    return 0 if server.netdsl_shut_down else 1
