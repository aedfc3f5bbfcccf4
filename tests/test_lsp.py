"""`netdsl lsp`, driven over stdio by a real client (pygls's LanguageClient) as an editor drives
it: diagnostics as you type, hover, go to definition, completion and formatting. The numbers a
hover shows are checked against `netdsl.load` (itself checked against torch in test_ops.py).
Without pygls the protocol tests skip; the analysis under them (netdsl.lsp.Document) is tested
anyway."""

from __future__ import annotations

import asyncio
import queue
import statistics
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT
import netdsl
from netdsl.lsp import Document, completions, definition, hover
from netdsl.printer import format_source

GOOGLENET = (ROOT / "nets" / "googlenet.net").read_text(encoding="utf-8")
MISTAKES = (ROOT / "examples" / "mistakes.net").read_text(encoding="utf-8")


def _line_of(text: str, needle: str) -> int:
    """The 1-based line holding `needle`."""
    return next(i for i, line in enumerate(text.split("\n"), 1) if needle in line)


def _at(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    """The 1-based (line, column) of `needle`'s first character (plus `offset`)."""
    line = _line_of(text, needle)
    return line, text.split("\n")[line - 1].index(needle) + 1 + offset


# --- the analysis, without the protocol --------------------------------------------------

def test_hover_gives_a_layers_numbers_and_every_instance_in_a_block():
    net = netdsl.loads(GOOGLENET)
    doc = Document(GOOGLENET)
    text, span = hover(doc, _at(GOOGLENET, "conv(64, 7"))
    conv1 = net.layer("conv1")
    assert f"{conv1.params:,} params" in text and f"{conv1.macs:,} MACs" in text and "`64x112x112`" in text
    assert span == conv1.span
    # a conv inside the inception block: one line per use of the block
    text, _ = hover(doc, _at(GOOGLENET, "conv(c3, 3, pad=1)"))
    for instance in ("inception3a", "inception5b"):
        layer = net.layer(f"{instance}.branch2.conv2")
        assert f"`{layer.name}` `{layer.describe()}` → `{'x'.join(map(str, layer.shape))}`" in text


def test_hover_on_a_label_and_on_a_train_head_call():
    doc = Document(GOOGLENET)
    text, _ = hover(doc, _at(GOOGLENET, "aux1:"))
    assert "`aux1` `auxiliary(1000)`" in text and "training only" in text
    assert hover(doc, _at(GOOGLENET, "# One Inception module")) is None


SCOPES = """block b(c) { repeat 2 { conv(c, 3, pad=1) relu } }
net n { input 3x8x8
  stem: { conv(8, 3) relu }
  layer: repeat 2 { b(8) }
  res: add { identity | conv(8, 3, pad=1) }
}
"""


def test_hover_on_scopes_gives_their_totals():
    net, doc = netdsl.loads(SCOPES), Document(SCOPES)

    def totals(scope: str) -> str:
        inside = [net.layer(n) for n in net.layers if n.startswith(scope + ".") or n == scope]
        return f"{sum(x.params for x in inside):,} params · {sum(x.macs for x in inside):,} MACs"

    text, _ = hover(doc, _at(SCOPES, "stem"))
    assert text == f"- `stem` `group` → `8x6x6` · {totals('stem')}, 2 layers"
    text, _ = hover(doc, _at(SCOPES, "layer: repeat", 7))
    assert f"- `layer.2` `pass 2 of 2` → `8x6x6` · {totals('layer.2')}, 4 layers" in text
    text, _ = hover(doc, _at(SCOPES, "b(8)"))  # a block used in each pass: both instances
    assert text.startswith("`block b(c)`") and "`layer.1.b1` `b(8)`" in text and "`layer.2.b1` `b(8)`" in text
    text, _ = hover(doc, _at(SCOPES, "res"))  # a labelled join: its scope and its layer, one line
    assert text.count("`res`") == 1 and f"`res` `add` → `8x6x6` · {totals('res')}" in text


def test_definition_of_a_parameter():
    doc = Document(GOOGLENET)
    span = definition(doc, _at(GOOGLENET, "conv(c1, 1)", 5))
    assert span is not None and (span.line, span.column) == _at(GOOGLENET, "c1, c3r")


def test_completion_of_a_block_while_the_file_does_not_parse():
    text = "block b(width, k = 3) { conv(width, k) }\nnet n { input 3x8x8\n    b(\n"
    assert Document(text).program is None
    labels = [c.label for c in completions(Document(text), (3, 7))]
    assert labels[:2] == ["width", "k"]
    assert completions(Document(text), (1, 12)) == []  # naming a block's parameters: nothing to offer


# --- the protocol ------------------------------------------------------------------------

class Session:
    """A `netdsl lsp` process and a pygls client, run on an event loop in a thread of its own."""

    def __init__(self):
        from lsprotocol import types as lsp
        from pygls.lsp.client import LanguageClient

        self.lsp = lsp
        self.diagnostics: dict[str, queue.Queue] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = client = LanguageClient("netdsl-tests", "1")

        @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params):
            self._queue(params.uri).put((time.perf_counter(), params))

        self.run(client.start_io(sys.executable, "-m", "netdsl", "lsp", "--stdio", cwd=str(ROOT)))
        self.run(client.initialize_async(lsp.InitializeParams(
            process_id=None, root_uri=ROOT.as_uri(), capabilities=lsp.ClientCapabilities())))
        self.notify(client.initialized, lsp.InitializedParams())
        self.versions: dict[str, int] = {}

    def _queue(self, uri: str) -> queue.Queue:
        return self.diagnostics.setdefault(uri, queue.Queue())

    def run(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def notify(self, method, params) -> None:
        async def send():
            method(params)
        self.run(send())

    def open(self, name: str, text: str) -> str:
        uri = (ROOT / "tests" / name).as_uri()
        self.versions[uri] = 1
        self.notify(self.client.text_document_did_open, self.lsp.DidOpenTextDocumentParams(
            self.lsp.TextDocumentItem(uri, "netdsl", 1, text)))
        return uri

    def change(self, uri: str, *changes) -> None:
        self.versions[uri] += 1
        self.notify(self.client.text_document_did_change, self.lsp.DidChangeTextDocumentParams(
            self.lsp.VersionedTextDocumentIdentifier(self.versions[uri], uri), list(changes)))

    def published(self, uri: str, timeout: float = 30):
        """The next diagnostics published for `uri` (the time they came, and them)."""
        return self._queue(uri).get(timeout=timeout)

    def position(self, text: str, needle: str, offset: int = 0):
        line, column = _at(text, needle, offset)
        return self.lsp.Position(line - 1, column - 1)

    def close(self) -> int:
        self.run(self.client.shutdown_async(None))
        self.notify(self.client.exit, None)
        self.run(self.client.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        return self.client._server.returncode


@pytest.fixture(scope="module")
def session():
    pytest.importorskip("pygls", reason="pygls is not installed: pip install 'netdsl[lsp]' to test `netdsl lsp`")
    s = Session()
    yield s
    assert s.close() == 0  # a shutdown request, then exit: the protocol's status 0


def test_diagnostics_as_you_type(session):
    lsp = session.lsp
    uri = session.open("mistakes.net", MISTAKES)
    _, params = session.published(uri)
    expected = netdsl.NetDSLError  # the same errors as `netdsl check`, every one
    try:
        netdsl.loads(MISTAKES)
    except expected as e:
        wanted = e.diagnostics
    assert [d.code for d in params.diagnostics] == [d.code for d in wanted] == ["E402", "E201", "E404"]
    for got, want in zip(params.diagnostics, wanted):
        span = want.span
        assert got.range == lsp.Range(lsp.Position(span.line - 1, span.column - 1),
                                      lsp.Position(span.end_line - 1, span.end_column - 1))
        assert got.message.startswith(want.message) and got.severity == lsp.DiagnosticSeverity.Error
        assert [r.message for r in got.related_information or []] == [n.message for n in want.notes]
    unknown = params.diagnostics[1]
    assert unknown.range.start == session.position(MISTAKES, "cnov") and "help: did you mean `conv`?" in unknown.message
    concat = params.diagnostics[0].related_information
    assert concat[0].location.uri == uri and concat[0].location.range.start == session.position(MISTAKES, "mixed(8)")

    # the typo fixed by an edit of four characters: its error goes, the others stay
    start = session.position(MISTAKES, "cnov")
    session.change(uri, lsp.TextDocumentContentChangePartial(
        range=lsp.Range(start, lsp.Position(start.line, start.character + 4)), text="conv"))
    _, params = session.published(uri)
    assert [d.code for d in params.diagnostics] == ["E402", "E404"]
    assert params.version == session.versions[uri]
    # the whole file fixed: no diagnostics
    fixed = MISTAKES.replace("cnov", "conv").replace("conv(c, 3)", "conv(c, 3, pad=1)").replace(
        "{ linear(classes) }", "{ flatten linear(classes) }")
    session.change(uri, lsp.TextDocumentContentChangeWholeDocument(text=fixed))
    _, params = session.published(uri)
    assert list(params.diagnostics) == []


def test_diagnostics_come_quickly_for_googlenet(session):
    lsp = session.lsp
    uri = session.open("googlenet_timed.net", GOOGLENET)
    session.published(uri)
    times = []
    for i in range(7):
        text = GOOGLENET.replace("linear(classes)\n}", f"linear(classes + {i})\n}}")
        sent = time.perf_counter()
        session.change(uri, lsp.TextDocumentContentChangeWholeDocument(text=text))
        came, params = session.published(uri)
        assert list(params.diagnostics) == []
        times.append(came - sent)
    # the check itself takes about 10 ms; the rest is the round trip through two processes
    assert statistics.median(times) < 0.5, times


def test_a_burst_of_edits_ends_with_the_last_ones_diagnostics(session):
    """Edits that come faster than the checks are checked together: what is published comes in
    the order of the edits, never older after newer, and ends with the last text's errors."""
    lsp = session.lsp
    uri = session.open("googlenet_burst.net", GOOGLENET)
    session.published(uri)
    texts = [GOOGLENET.replace("linear(classes)\n}", f"linear(classes + {i})\n}}") for i in range(9)]
    texts.append(GOOGLENET.replace("conv(64, 7,", "cnov(64, 7,"))
    first = session.versions[uri] + 1

    async def type_fast():
        for i, text in enumerate(texts):
            session.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(first + i, uri),
                [lsp.TextDocumentContentChangeWholeDocument(text=text)]))
    session.run(type_fast())
    session.versions[uri] = last = first + len(texts) - 1
    versions = []
    while not versions or versions[-1] != last:
        _, params = session.published(uri)
        versions.append(params.version)
    assert versions == sorted(versions) and len(versions) <= len(texts)
    assert [d.code for d in params.diagnostics] == ["E201"]


def test_hover(session):
    lsp = session.lsp
    uri = session.open("googlenet.net", GOOGLENET)
    session.published(uri)
    net = netdsl.loads(GOOGLENET)
    result = session.run(session.client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(uri), session.position(GOOGLENET, "inception(64,"))))
    block = net.scopes["inception3a"]
    params = sum(net.layer(n).params for n in net.layers if n.startswith("inception3a."))
    assert result.contents.kind == lsp.MarkupKind.Markdown
    assert "`inception3a` `inception(64, 96, 128, 16, 32, 32)` → `256x28x28`" in result.contents.value
    assert f"{params:,} params" in result.contents.value and block.output.shape == (256, 28, 28)
    assert result.range.start == session.position(GOOGLENET, "inception(64,")

    result = session.run(session.client.text_document_hover_async(lsp.HoverParams(
        lsp.TextDocumentIdentifier(uri), session.position(GOOGLENET, "lrn(5)"))))
    # as summary writes it, defaults left out: `lrn(5)` is `lrn`
    assert f"`lrn1` `{net.describe('lrn1')}` → `64x56x56` · 0 params · 0 MACs" in result.contents.value
    assert "`lrn(size=5, *, alpha=0.0001, beta=0.75, k=1)`" in result.contents.value


def test_definition(session):
    lsp = session.lsp
    uri = session.open("googlenet_definition.net", GOOGLENET)
    session.published(uri)
    [location] = [session.run(session.client.text_document_definition_async(lsp.DefinitionParams(
        lsp.TextDocumentIdentifier(uri), session.position(GOOGLENET, "inception(192", 3))))]
    assert location.uri == uri and location.range.start == session.position(GOOGLENET, "inception(c1")

    uri = session.open("mistakes_definition.net", MISTAKES)
    session.published(uri)
    location = session.run(session.client.text_document_definition_async(lsp.DefinitionParams(
        lsp.TextDocumentIdentifier(uri), session.position(MISTAKES, "from c1 {", 6))))
    # `from c1` names the layer labelled c1
    assert location.range == lsp.Range(session.position(MISTAKES, "c1: conv"), session.position(MISTAKES, ": conv"))


def test_completion(session):
    lsp = session.lsp
    text = GOOGLENET.replace("    fc:           linear(classes)", "    fc:           linear(classes, )\n    ")
    uri = session.open("googlenet_completion.net", text)
    session.published(uri)

    def labels(needle: str, offset: int):
        result = session.run(session.client.text_document_completion_async(lsp.CompletionParams(
            lsp.TextDocumentIdentifier(uri), session.position(text, needle, offset))))
        return {item.label: item for item in result.items}

    inside = labels("linear(classes, )", len("linear(classes, "))
    assert {"out", "bias", "classes", "dropout"} <= set(inside) and "conv" not in inside
    assert inside["bias"].insert_text == "bias=" and inside["bias"].kind == lsp.CompletionItemKind.Property
    block = labels("inception(64,", len("inception("))
    assert list(block)[:6] == ["c1", "c3r", "c3", "c5r", "c5", "proj"]
    value = labels("pad=3)", len("pad="))
    assert {"same", "valid"} <= set(value)
    anywhere = labels("    fc:", 0)
    assert {"conv", "maxpool", "concat", "inception", "auxiliary", "repeat", "head"} <= set(anywhere)
    assert "input" in anywhere and anywhere["inception"].kind == lsp.CompletionItemKind.Class
    assert anywhere["conv"].detail.startswith("conv(out, kernel")


def test_outline(session):
    lsp = session.lsp
    uri = session.open("googlenet_outline.net", GOOGLENET)
    session.published(uri)
    symbols = session.run(session.client.text_document_document_symbol_async(lsp.DocumentSymbolParams(
        lsp.TextDocumentIdentifier(uri))))
    assert [s.name for s in symbols] == ["inception", "auxiliary", "googlenet"]
    assert symbols[0].kind == lsp.SymbolKind.Class and symbols[2].kind == lsp.SymbolKind.Module
    layers = {s.name: s for s in symbols[2].children}
    assert list(layers)[:3] == ["conv1", "r1", "pool1"] and {"inception3a", "aux1", "fc"} <= set(layers)
    assert layers["conv1"].detail == "conv"
    assert layers["conv1"].selection_range.start == session.position(GOOGLENET, "conv1:")
    assert [s.name for s in symbols[1].children] == ["pool", "conv", "fc1", "fc2"]


def test_formatting(session):
    lsp = session.lsp
    text = "net n(c=4){input 3x8x8\nconv( c,3 ,pad = 1)   relu # ok\n}"
    uri = session.open("formatting.net", text)
    session.published(uri)
    edits = session.run(session.client.text_document_formatting_async(lsp.DocumentFormattingParams(
        lsp.TextDocumentIdentifier(uri), lsp.FormattingOptions(4, True))))
    [edit] = edits
    assert edit.range == lsp.Range(lsp.Position(0, 0), lsp.Position(2, 1)) and edit.new_text == format_source(text)
    broken = "net n {"  # nothing to format: the file does not parse
    session.change(uri, lsp.TextDocumentContentChangeWholeDocument(text=broken))
    session.published(uri)
    assert session.run(session.client.text_document_formatting_async(lsp.DocumentFormattingParams(
        lsp.TextDocumentIdentifier(uri), lsp.FormattingOptions(4, True)))) in ([], ())


def test_the_analysis_never_imports_torch():
    code = ("import sys\nfrom netdsl.lsp import Document, completions, hover\n"
            "doc = Document(open('nets/googlenet.net').read())\n"
            "hover(doc, (40, 25)), completions(doc, (40, 25))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'networkx')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.stdout == "[]\n", r.stderr


def test_without_pygls_the_command_says_what_to_install():
    # pygls made unimportable in a fresh interpreter: one line, exit status 2, no traceback
    code = "import sys; sys.modules['pygls'] = None; from netdsl.cli import main; sys.exit(main(['lsp']))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and r.stderr == "netdsl: error: `netdsl lsp` needs pygls: pip install 'netdsl[lsp]'\n"
