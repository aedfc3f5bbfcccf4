"""The `netdsl` command line.

Exit codes: 0 success, 1 the net is invalid (diagnostics on stderr), 2 usage error (bad
options, unreadable file, an output that would overwrite the input, Graphviz missing, standard
output not writable), 130 interrupted (Ctrl-C); `diff`: 1 the nets differ, 2 a file has errors.
`check`, `summary`, `render`, `diff` and `--help` never import torch. No command prints a
Python traceback for a mistake in the call, the file system or the terminal: each is one line
on stderr.

Everything but the standard library is imported inside `main`, so that a Ctrl-C during
start-up (most of a short command's time) ends as one line too.
"""

from __future__ import annotations

import errno
import io
import os
import sys

from . import __version__
from .codes import UNKNOWN_PARAMETER

TYPE_CHECKING = False  # typing and argparse are imported where used, after main() has started
if TYPE_CHECKING:
    import argparse
    from typing import Any, Optional, Sequence

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# The choices of `compile`, spelt out here because `--help` must not import torch; a test keeps
# them equal to the backend's own lists.
COMPILE_DTYPES = ("float32", "float16", "bfloat16", "float64")
COMPILE_INITS = ("default", "none", "meta")
COMPILE_OPTIMIZE = ("fuse", "compile", "auto")
COMPILE_EXPORTS = ("torchscript", "exported", "onnx")
# summary's formats and columns (netdsl.formats' FORMATS and COLUMNS; a test keeps them equal),
# spelt out so that --help imports nothing
SUMMARY_FORMATS = ("table", "markdown", "csv", "latex", "json")
# (one string: a column is called like an op, `input`, which tests/test_structure.py keeps out of quotes)
SUMMARY_COLUMNS = tuple("name,op,shape,params,macs,memory,kernel,stride,input,share".split(","))
# render's limits on what Graphviz is given (netdsl.render's MAX_NODES, EDGES_PER_NODE and
# DOT_TIMEOUT), spelt out for the same reason: importing render imports graphviz
RENDER_MAX_NODES, RENDER_EDGES_PER_NODE, RENDER_DOT_TIMEOUT = 2_000, 2, 60.0
SERVE_PORT = 8765  # netdsl.serve's DEFAULT_PORT, spelt out so that --help need not import http.server


class UsageError(Exception):
    """A mistake in how netdsl was called, not in the net."""


class _OutputError(Exception):
    """Standard output cannot be written: a full disk, a closed descriptor, a broken pipe."""

    def __init__(self, err: int, reason: str):
        super().__init__(reason)
        self.errno = err


class _Output:
    """Standard output while a command runs: a write that fails raises `_OutputError` (one line
    from `main`, not a traceback now and another when Python flushes at exit), and text the
    terminal's encoding cannot show (PYTHONIOENCODING=ascii) is written with backslash escapes."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        stream = self._check()
        try:
            try:
                return stream.write(text)
            except UnicodeEncodeError:  # nothing was written: the text is encoded before any of it
                encoding = getattr(stream, "encoding", None) or "ascii"
                return stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        except OSError as e:
            raise _OutputError(e.errno, e.strerror or str(e)) from None

    def write_bytes(self, data: bytes) -> None:
        """Write data (a formatted net: UTF-8 whatever the terminal's encoding)."""
        stream = self._check()
        buffer = getattr(stream, "buffer", None)
        try:
            if buffer is None:  # a text-only stream (a test's capture)
                stream.write(data.decode("utf-8"))
            else:
                stream.flush()
                buffer.write(data)
        except OSError as e:
            raise _OutputError(e.errno, e.strerror or str(e)) from None

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as e:
            raise _OutputError(e.errno, e.strerror or str(e)) from None

    def discard(self) -> None:
        """After a failed write: send what is still buffered to /dev/null, so that Python's
        own flush at exit does not fail (and print) again."""
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (AttributeError, OSError, ValueError):
            pass

    def _check(self):
        if self._stream is None:  # started with stdout closed (`>&-`): Python sets sys.stdout to None
            raise _OutputError(errno.EBADF, "it is closed")
        return self._stream

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _error(message: str) -> None:
    """One line on stderr (dropped if stderr is closed; print would send it to stdout)."""
    if sys.stderr is not None:
        try:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def _stdin_buffer():
    if sys.stdin is None:  # started with stdin closed (`<&-`)
        raise UsageError("cannot read standard input: it is closed")
    return sys.stdin.buffer


def _input_file(args: argparse.Namespace):
    """What the command reads, as `files.refuse_overwrite` takes it: the file named (its path,
    or for `-` standard input when that is a regular file)."""
    from .files import stdin_id

    return ("the net file being read", stdin_id() if args.file == "-" else args.file)


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """`--set classes=10 --set size=3x3 --set pad=same` to {"classes": 10, "size": (3, 3),
    "pad": Symbol("same")}: values as the language writes them."""
    from .evaluate import evaluate
    from .parser import parse_expr

    values: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            value = evaluate(parse_expr(text.strip(), f"--set {key}"), {})
        except Exception:  # a syntax error, arithmetic on words, division by zero
            value = None
        if value is None:
            raise UsageError(f"--set {key}: {text!r} is not a value "
                             "(a number, true/false, a shape like 3x3, or a word like same)")
        values[key] = value
    return values


def _load(args: argparse.Namespace):
    from .files import shown
    from .limits import DEFAULT_MAX_BYTES
    from .network import load, loads, read_source

    params = _parse_set(args.set)
    max_bytes = getattr(args, "max_bytes", DEFAULT_MAX_BYTES)  # for commands that do not offer --max-bytes
    if args.file == "-":
        text = read_source(_stdin_buffer(), "<stdin>", max_bytes)
        return loads(text, "<stdin>", max_layers=args.max_layers, max_bytes=max_bytes, **params)
    try:
        return load(args.file, max_layers=args.max_layers, max_bytes=max_bytes, **params)
    except (OSError, ValueError) as e:  # missing, a folder, no permission, a name too long, a NUL in it ...
        raise UsageError(f"cannot read {shown(args.file)}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def cmd_check(args: argparse.Namespace) -> int:
    net = _load(args)
    train, deploy = net.total_params(), net.total_params(train=False)
    extra = f" ({deploy:,} deploy)" if deploy != train else ""
    n = len(net.layers)
    print(f"ok: {net.name}: {n} layer{'s' if n != 1 else ''}, {train:,} params{extra}")
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    from . import formats

    try:
        columns = formats.parse_columns(args.columns)
    except ValueError as e:
        raise UsageError(str(e)) from None
    form = "json" if args.json else args.format
    if form == "json" and args.columns is not None:
        raise UsageError("--columns chooses the columns of a table; JSON has every field")
    if form == "csv" and args.memory:
        raise UsageError("--memory does not fit in the CSV of the rows; use --format json for both")
    net = _load(args)
    summary = net.summary(batch=args.batch)
    depth = None if args.expand else args.depth
    if form == "json":
        if args.memory or args.dtype != "float32":
            import json
            doc = summary.to_dict()
            doc["memory"] = summary.memory(args.dtype).to_dict()
            print(json.dumps(doc, indent=1))
        else:
            print(summary.to_json())
        return EXIT_OK
    render = {"table": formats.table, "markdown": formats.markdown, "csv": formats.to_csv, "latex": formats.latex}
    text = render[form](summary, depth, columns, args.dtype)
    print(text, end="" if text.endswith("\n") else "\n")
    if args.memory:
        model = summary.memory(args.dtype)
        show = {"table": formats.memory_text, "markdown": formats.memory_markdown, "latex": formats.memory_latex}
        print("\n" + show[form](model))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """`netdsl diff A B`: exit 0 when the architectures are equal, 1 when they differ, 2 when
    either file does not check (its diagnostics printed, as `check` prints them) or cannot
    be read."""
    import argparse

    from .diagnostics import NetDSLError

    if args.a == "-" and args.b == "-":
        raise UsageError("only one of the two files can be standard input")
    nets, failed = [], False
    for path in (args.a, args.b):
        one = argparse.Namespace(file=path, set=args.set, max_layers=args.max_layers, max_bytes=args.max_bytes)
        try:
            nets.append(_load(one))
        except NetDSLError as e:
            _error(str(e))
            failed = True
    if failed:
        return EXIT_USAGE
    result = nets[0].diff(nets[1])
    if args.json:
        import json
        print(json.dumps(result.to_dict(), indent=1))
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(result.text(colour=colour), end="")
    return EXIT_OK if result.equal else EXIT_INVALID


def cmd_compile(args: argparse.Namespace) -> int:
    from .files import refuse_overwrite

    # the outputs named are checked before anything is read or built; the default export name,
    # which needs the net's name, by compile_and_run before it builds anything
    keep = [_input_file(args)] + ([("the weights file being read", args.weights)] if args.weights else [])
    refuse_overwrite([(path, "give another path") for path in (args.save, args.output) if path], keep)
    net = _load(args)
    from .backend import CompileError, UncompilableNet, WeightsError
    from .backend.command import CompileOptions, compile_and_run
    from .limits import DEFAULT_MAX_PARAMS

    options = CompileOptions(device=args.device, dtype=args.dtype, batch=args.batch, weights=args.weights,
                             init=args.init, max_params=args.max_params or DEFAULT_MAX_PARAMS, optimize=args.optimize,
                             save=args.save, export=args.export, output=args.output, keep=tuple(keep))
    try:
        report = compile_and_run(net, options)
    except (CompileError, WeightsError) as e:
        _error(f"netdsl: error: {_one_line(str(e))}")
        return EXIT_INVALID if isinstance(e, UncompilableNet) else EXIT_USAGE
    if args.json:
        import json
        print(json.dumps(report, indent=2))
    else:
        print(_compile_text(report))
    return EXIT_OK


def _compile_text(r: dict[str, Any]) -> str:
    from .files import shown
    from .ops import fmt_shape

    p, batch = r["params"], r["batch"]
    runs = r.get("forward_runs", 1)
    lines = [f"{r['net']}: compiled for {r['device']} ({r['device_name']}), {r['dtype']}, "
             f"init {r['init']}, in {_ms(r['seconds']['build'])}"]
    if "weights" in r:
        w = r["weights"]
        how = ", ".join(part for part in (f"{w['by_name']:,} by name" if w["by_name"] else "",
                                          f"{w['by_order']:,} by order" if w["by_order"] else "") if part)
        if w.get("per_shape"):
            how += f" (per shape: {w['per_shape']:,} out of place)"
        lines.append(f"weights:  {w['tensors']:,} tensors ({w['values']:,} values) from {w['source']}, "
                     f"matched {how or 'none'}, every shape checked")
    else:
        lines.append(f"weights:  none loaded (init {r['init']})")
    heads = f" deploy, {p['train']:,} with training heads" if p["train"] != p["deploy"] else ""
    lines.append(f"params:   {p['deploy']:,}{heads} (equal to the summary's)")
    if "macs" in r:
        m = r["macs"]
        heads = f" deploy, {m['train']:,} with training heads" if m["train"] != m["deploy"] else ""
        each = f"{m['deploy']:,}{heads}"
        lines.append(f"MACs:     per example {each}" + (f"; the batch of {batch}: {m['deploy'] * batch:,}"
                                                             if batch != 1 else ""))
    lines.append(f"forward:  batch {batch}, {r['layers_checked']} layers, every shape as inferred "
                 f"(checked pass {_ms(r['seconds']['checked_pass'])}); generated forward "
                 f"{_ms(r['seconds']['forward'])}, median of {runs} warm run{'s' if runs != 1 else ''}")
    for o in r["outputs"]:
        kind = " (training head)" if o["train_only"] else ""
        per = fmt_shape(o["shape"][1:])
        lines.append(f"output:   {o['name']}{kind} {per}" + (f" per example, batch {batch}" if batch != 1 else ""))
    if "optimize" in r:
        o = r["optimize"]
        verdict = "outputs within tolerance" if o["within_tolerance"] else "OUTPUTS DIFFER"
        level = o["level"] if "chosen" not in o else f"auto chose {o['chosen']}{' (remembered)' * o['cached']}"
        if "layers" in o:
            level += f" for {len(o['layers'])} layer{'s' if len(o['layers']) != 1 else ''}"
        lines.append(f"optimize: {level}: forward {_ms(o['forward'])} (median), {o['speedup']:.2f}x "
                     f"(max |diff| {o['max_abs_diff']:.2g}, {verdict}; took {_ms(o['seconds'])})")
    if "saved" in r:
        lines.append(f"saved:    {shown(r['saved'])}")
    if "exported" in r:
        e = r["exported"]
        lines.append(f"exported: {e['format']} to {shown(e['path'])} in {_ms(e['seconds'])}")
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    """Plain milliseconds, never in scientific notation: `1,052 ms`, `12.3 ms`, `0.042 ms`."""
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f} ms"
    return f"{ms:.1f} ms" if ms >= 1 else f"{ms:.3f} ms"


def cmd_eject(args: argparse.Namespace) -> int:
    """`netdsl eject FILE [-o model.py]`: the net as standalone PyTorch code (stdout without -o)."""
    from .files import refuse_overwrite, shown

    keep = [_input_file(args)]
    if args.output is not None:
        refuse_overwrite([(args.output, "name another output with -o")], keep)  # before anything is read
    from .backend import UncompilableNet

    try:
        source = _load(args).eject()
    except UncompilableNet as e:
        _error(f"netdsl: error: {_one_line(str(e))}")
        return EXIT_INVALID
    if args.output is None:
        sys.stdout.write(source)
        return EXIT_OK
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(source)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot write {shown(args.output)}: {_reason(e)}") from None
    print(f"wrote {shown(args.output)}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from .diagnostics import NetDSLError
    from .files import refuse_overwrite, shown
    from .render import GraphvizFailed, GraphvizMissing, failure_diagram, output_format, save

    keep = [_input_file(args)]
    if args.output is not None:
        try:
            output_format(args.output)
        except ValueError as e:
            raise UsageError(str(e)) from None
        refuse_overwrite([(args.output, "name another output with -o")], keep)  # before anything is read
    # A picture is bounded before its DOT is even written; DOT text itself (-o NAME.gv) is not.
    bound = None if args.output and output_format(args.output) is None else args.max_nodes
    options = dict(depth=None if args.expand else args.depth, rankdir=args.rankdir,
                   fold_activations=not args.no_fold, fold_repeats=args.fold_repeats, max_nodes=bound)
    failure = None
    try:
        try:
            net = _load(args)
            dot, name = _figure(args, lambda k: net.to_dot(**options, **_drawn(args, k))), net.name
        except NetDSLError as e:
            if all(d.code == UNKNOWN_PARAMETER for d in e.diagnostics):
                raise  # a mistake in the call, not the net
            dot = failure_diagram(e, **options, **_drawn(args, 1))
            if dot is None:
                raise  # nothing was built to draw: a syntax error, no net
            failure, name = e, e.partial.name  # kept: `e` itself is unbound when the except ends
            dot = _figure(args, lambda k: failure_diagram(failure, **options, **_drawn(args, k)))
            _error(str(e))
    except GraphvizFailed as e:  # too large to draw: refused before any DOT was written
        raise UsageError(str(e)) from None
    path = args.output or f"{name}.svg"
    refuse_overwrite([(path, "name another output with -o")], keep)  # the default name, NET.svg
    try:
        save(dot, path, keep=keep, max_nodes=args.max_nodes, timeout=args.dot_timeout, dpi=args.dpi)
    except (GraphvizMissing, GraphvizFailed) as e:
        raise UsageError(str(e)) from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot write {shown(path)}: {_reason(e)}") from None
    print(f"wrote {shown(path)}" + (" (drawn up to the errors)" if failure else ""))
    return EXIT_INVALID if failure else EXIT_OK


def _drawn(args: argparse.Namespace, columns: int) -> dict:
    """The diagram options of render's figure flags (a chain wrapped into `columns`)."""
    return {"columns": columns, "legend": args.legend}


def _figure(args: argparse.Namespace, make):
    """The diagram `make(columns)`, in render's --font-size, fitted to its --fit."""
    from .render import GraphvizFailed, GraphvizMissing, figure

    if args.fit is None and args.font_size is None:
        return make(1)
    try:
        fitted = figure(make, fit_to=args.fit, font_size=args.font_size, max_nodes=args.max_nodes,
                        timeout=args.dot_timeout)
    except (GraphvizMissing, GraphvizFailed) as e:
        raise UsageError(str(e)) from None
    if args.fit is not None:
        columns = f"{fitted.columns} columns, " if fitted.columns > 1 else ""
        print(f"fitted to {fitted.width:g}x{fitted.height:g} in: {columns}drawn at {fitted.scale:.0%}, "
              f"box text {fitted.scale * (args.font_size or 11):.1f} pt")
    return fitted.dot


def cmd_fmt(args: argparse.Namespace) -> int:
    """Format files in place (or check, or show the diff); `-` reads stdin, writes stdout.

    fmt formats the file a name stands for: a symlink's target is rewritten (the link stays a
    link), a file with several hard links stays one file, its mode is kept; a read-only file, a
    FIFO or a device is refused (`files.rewrite`). A file that cannot be read or written is
    reported and the others are still formatted; the exit status is the worst."""
    import difflib

    from .diagnostics import NetDSLError
    from .files import Refused, read_for_rewrite, rewrite, shown
    from .network import read_limited, read_source
    from .printer import FormatError, format_source

    status = EXIT_OK
    for name in args.files:
        label = "<stdin>" if name == "-" else shown(name)
        try:
            if name == "-":
                original, data = None, read_limited(_stdin_buffer(), args.max_bytes)
            else:
                original = read_for_rewrite(name, args.max_bytes)
                data = original.data
            text = read_source(io.BytesIO(data), label, args.max_bytes)
            formatted = format_source(text, label)
        except Refused as e:
            _error(f"netdsl: error: {e}")
            status = max(status, EXIT_USAGE)
            continue
        except (OSError, ValueError) as e:  # missing, a folder, no permission, a symlink loop, a name too long ...
            _error(f"netdsl: error: cannot read {label}: {_reason(e)}")
            status = max(status, EXIT_USAGE)
            continue
        except NetDSLError as e:  # the file is left as it is
            _error(str(e))
            status = max(status, EXIT_INVALID)
            continue
        except FormatError as e:
            _error(f"netdsl: error: {e}")
            status = max(status, EXIT_INVALID)
            continue
        new = formatted.encode("utf-8")
        changed = new != data
        if args.diff and changed:
            diff = "".join(
                # as diff(1) marks a last line without its newline, so that patch(1) reads it
                line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                for line in difflib.unified_diff(text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                                                 label, label))
            sys.stdout.write_bytes(diff.encode("utf-8"))
        if args.check:
            if changed:
                _error(f"would reformat {label}")
                status = max(status, EXIT_INVALID)
        elif name == "-":
            if not args.diff:
                sys.stdout.write_bytes(new)
        elif changed and not args.diff:
            try:
                rewrite(original, new, label)
            except Refused as e:
                _error(f"netdsl: error: {e}")
                status = max(status, EXIT_USAGE)
                continue
            except OSError as e:
                _error(f"netdsl: error: cannot write {label}: {_reason(e)}")
                status = max(status, EXIT_USAGE)
                continue
            _error(f"reformatted {label}")
    return status


def cmd_serve(args: argparse.Namespace) -> int:
    """The live playground (netdsl/serve.py) until Ctrl-C."""
    from .files import Refused, shown
    from .serve import PlaygroundFile, SaveRefused, serve

    if args.file == "-":
        raise UsageError("serve needs a file to read and save, not standard input")
    try:  # a file that cannot be read (a folder, a FIFO, no permission) is refused now, not in the page
        PlaygroundFile(args.file).read()
    except Refused as e:
        raise UsageError(str(e).replace("fmt", "netdsl serve")) from None
    except (OSError, ValueError, SaveRefused) as e:
        raise UsageError(f"cannot serve {shown(args.file)}: {_reason(e)}") from None
    folder = os.path.dirname(os.path.abspath(args.file)) if args.file is not None else None
    if folder is not None and not os.path.isdir(folder):  # the first save would fail
        raise UsageError(f"cannot serve {shown(args.file)}: its folder does not exist")
    try:
        serve(args.file, args.host, args.port, depth=None if args.expand else args.depth, quiet=not args.log)
    except OSError as e:  # the port is taken, the host is not this machine's ...
        raise UsageError(f"cannot serve on {shown(args.host)} port {args.port}: {_reason(e)}") from None
    except KeyboardInterrupt:  # the normal way to stop it
        return EXIT_OK
    return EXIT_OK


def _watched(args: argparse.Namespace) -> int:
    """`render --watch` and `summary --watch`: the command again each time the file is saved."""
    from .watch import watch

    if args.file == "-":
        raise UsageError("--watch needs a file to watch, not standard input")
    return watch(args.file, lambda: _dispatch(args), clear=args.command == "summary" and sys.stdout.isatty())


def cmd_explain(args: argparse.Namespace) -> int:
    """An error code's entry in the catalogue, or the list of codes."""
    from .catalogue import CATALOGUE, explain, lookup, suggestion

    if args.code is None:
        for code, entry in CATALOGUE.items():
            print(f"{code}  {entry.title}")
        return EXIT_OK
    entry = lookup(args.code)
    if entry is None:
        raise UsageError(suggestion(args.code))
    print(explain(entry), end="")
    return EXIT_OK


def cmd_lsp(args: argparse.Namespace) -> int:
    """The language server (netdsl/lsp.py) over standard input and output, until the editor
    ends it."""
    try:
        import lsprotocol  # noqa: F401  (the server imports them when it starts: asked for here, to say
        import pygls  # noqa: F401        what to install before anything else happens)

        from .lsp import serve
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        raise UsageError("`netdsl lsp` needs pygls: pip install 'netdsl[lsp]'") from None
    # The protocol's bytes go to the real standard output, around main's text wrapper, through
    # a copy of its descriptor: the server closes the stream it writes to when the editor says
    # `exit`, and main still flushes standard output after that.
    with os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0) as out:
        return serve(sys.stdin.buffer, out)


def _add_lsp(sub) -> None:
    lsp = sub.add_parser("lsp", help="run the language server (for editors: diagnostics, hover, completion ...)",
                         description="Speak the Language Server Protocol over standard input and output: "
                                     "diagnostics as you type, hover, go to definition, completion and "
                                     "formatting for .net files. Needs pygls (pip install 'netdsl[lsp]').")
    # editors' clients (vscode-languageclient) say which transport they use; stdio is the one there is
    lsp.add_argument("--stdio", action="store_true", help="talk over standard input and output (the default)")
    lsp.set_defaults(run=cmd_lsp)


def _seconds(text: str) -> float:
    import argparse

    try:
        s = float(text)
    except ValueError:
        s = float("nan")
    if not 0 < s < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return s


def _one_line(message: str) -> str:
    from .files import shown_text

    return shown_text(message)


def _points(text: str) -> float:
    import argparse

    try:
        pt = float(text)
    except ValueError:
        pt = float("nan")
    if not 1 <= pt <= 72:
        raise argparse.ArgumentTypeError(f"expected a font size from 1 to 72 points, got {text!r}")
    return pt


def _fit(text: str) -> tuple[float, float]:
    import argparse

    from .render import parse_fit

    try:
        return parse_fit(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The command line's argparse parser."""
    import argparse

    from .limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_LAYERS

    p = argparse.ArgumentParser(
        prog="netdsl",
        description="Write a convolutional network as a short text file; check it, summarise it, "
                    "compile it to torch.",
        epilog="Exit codes: 0 ok, 1 the net has errors, 2 usage error. See README.md for the language.")
    p.add_argument("--version", action="version", version=f"netdsl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file", metavar="FILE", help="a .net file, or - to read standard input")
        options(sp, "override a net parameter, e.g. --set classes=10 (repeatable)")

    def options(sp: argparse.ArgumentParser, set_help: str) -> None:
        """--set and the limits, of every command that reads .net files."""
        sp.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help=set_help)
        sp.add_argument("--max-layers", type=_positive, default=DEFAULT_MAX_LAYERS, metavar="N",
                        help=f"refuse nets that expand to more layers (default {DEFAULT_MAX_LAYERS:,})")
        sp.add_argument("--max-bytes", type=_positive, default=DEFAULT_MAX_BYTES, metavar="N",
                        help=f"refuse larger files (default {DEFAULT_MAX_BYTES:,})")

    check = sub.add_parser("check", help="parse and check a net: shapes, names, arguments",
                           description="Parse and check a net; print a one-line verdict or every error.")
    common(check)
    check.set_defaults(run=cmd_check)

    summary = sub.add_parser("summary", help="per-layer shapes, params, MACs and memory",
                             description="Print per-layer output shape, parameters, MACs and "
                                         "activation memory, with deploy and training totals.")
    common(summary)
    depth = summary.add_mutually_exclusive_group()
    depth.add_argument("--depth", type=_positive, default=1, metavar="N",
                       help="show scopes N levels deep, deeper layers rolled up (default 1)")
    depth.add_argument("--expand", action="store_true", help="show every layer")
    summary.add_argument("--batch", type=_positive, default=1, metavar="B",
                         help="batch size for activation memory (default 1)")
    summary.add_argument("--format", choices=SUMMARY_FORMATS, default="table",
                         help="table (default), markdown, csv, latex (booktabs) or json")
    summary.add_argument("--columns", metavar="COLS",
                         help="the table's columns, comma-separated, from: " + ",".join(SUMMARY_COLUMNS)
                              + " (default name,op,shape,params,macs,memory)")
    summary.add_argument("--dtype", choices=COMPILE_DTYPES, default="float32",
                         help="the type memory is counted in (default float32)")
    summary.add_argument("--memory", action="store_true",
                         help="also print the memory model: parameters, gradients, optimizer state, "
                              "activations saved for backward, inference peak")
    summary.add_argument("--json", action="store_true", help="print the summary as JSON (= --format json)")
    _watch_flag(summary)
    summary.set_defaults(run=cmd_summary)

    diff = sub.add_parser("diff", help="compare two nets: layers added, removed, renamed, changed",
                          description="Compare two nets' architectures: layers added, removed, renamed and "
                                      "changed (op, attributes, shape, inputs), per scope, with the deltas of "
                                      "parameters and MACs, and heads added or removed. Layers are paired by "
                                      "name, then by structure, so two files that name their layers differently "
                                      "still compare. Exit 0 when equal, 1 when they differ, 2 on errors.")
    diff.add_argument("a", metavar="A", help="a .net file, or - to read standard input")
    diff.add_argument("b", metavar="B", help="the .net file to compare it with (or -)")
    options(diff, "override a parameter of both nets, e.g. --set classes=10 (repeatable)")
    diff.add_argument("--json", action="store_true", help="print the difference as JSON (schema in README.md)")
    diff.set_defaults(run=cmd_diff)

    compile_ = sub.add_parser(
        "compile", help="build the torch module, run it once, check every shape",
        description="Build the net as a torch module (torch.fx), run one forward pass on random input of "
                    "the declared shape, check every layer's runtime shape against the inferred one, and "
                    "print outputs, parameters, device and timings.")
    common(compile_)
    compile_.add_argument("--device", default="cpu", metavar="DEVICE",
                          help="cpu, cuda, cuda:N, or auto (CUDA when present); default cpu")
    compile_.add_argument("--dtype", choices=COMPILE_DTYPES, default=None,
                          help="parameter and input type (default float32)")
    compile_.add_argument("--batch", type=_positive, default=1, metavar="B", help="batch size of the test input")
    compile_.add_argument("--weights", metavar="W",
                          help="load weights: .safetensors, or a state_dict file (.pt/.pth) read with "
                               "torch.load(weights_only=True); by name, else by order, shapes checked")
    compile_.add_argument("--init", choices=COMPILE_INITS, default="default",
                          help="default: torch's initialisation; none/meta: skip it (for --weights)")
    compile_.add_argument("--max-params", type=_positive, default=None, metavar="N",
                          help="refuse nets with more parameters (default 10,000,000,000)")
    compile_.add_argument("--optimize", nargs="?", const="fuse", choices=COMPILE_OPTIMIZE, default=None,
                          help="also build an inference module (fuse: BatchNorm folding + channels_last; "
                               "compile: fuse + torch.compile; auto: the fastest path for this device, dtype "
                               "and batch, remembered) and report its speed-up")
    compile_.add_argument("--save", metavar="PATH", help="save the weights (.safetensors, or .pt/.pth)")
    compile_.add_argument("--export", choices=COMPILE_EXPORTS,
                          help="export the evaluation graph (onnx needs pip install 'netdsl[onnx]')")
    compile_.add_argument("-o", "--output", metavar="PATH",
                          help="where --export writes (default NET.pt, NET.pt2 or NET.onnx)")
    compile_.add_argument("--json", action="store_true", help="print the report as JSON")
    compile_.set_defaults(run=cmd_compile)
    eject = sub.add_parser("eject", help="write the net as standalone PyTorch code (torch only)",
                           description="Write the net as a PyTorch source file that imports torch only: a "
                                       "class per block and one for the net, with the compiled module's "
                                       "state_dict keys and outputs, and each forward line's shape.")
    common(eject)
    eject.add_argument("-o", "--output", metavar="PATH", help="the file to write (default: standard output)")
    eject.set_defaults(run=cmd_eject)
    render = sub.add_parser("render", help="draw the net as a diagram (SVG, PNG, PDF or DOT)",
                            description="Draw the net with Graphviz: a box per layer or rolled-up block, "
                                        "each edge labelled with its tensor shape. A net with errors is "
                                        "drawn up to them, the failing layer in red.")
    common(render)
    render.add_argument("-o", "--output", metavar="OUT",
                        help="the file to write; its extension picks the format: .svg, .png, .pdf, or .gv "
                             "for the DOT text (default: NET.svg in the current folder)")
    depth = render.add_mutually_exclusive_group()
    depth.add_argument("--depth", type=_positive, default=1, metavar="N",
                       help="open scopes N levels deep, deeper ones drawn as one box (default 1), as summary")
    depth.add_argument("--expand", action="store_true", help="draw every layer")
    render.add_argument("--rankdir", choices=("TB", "LR"), default="TB",
                        help="top to bottom (default) or left to right")
    render.add_argument("--fold-repeats", action="store_true",
                        help="draw a run of identical layers or block instances once, marked x N")
    render.add_argument("--no-fold", action="store_true",
                        help="draw activations and dropout as boxes of their own, not folded into "
                             "the layer before them")
    render.add_argument("--max-nodes", type=_positive, default=RENDER_MAX_NODES, metavar="N",
                        help=f"refuse to hand Graphviz more boxes than this, or {RENDER_EDGES_PER_NODE} x N edges "
                             f"(default {RENDER_MAX_NODES:,}: a larger layout takes dot minutes)")
    render.add_argument("--dot-timeout", type=_seconds, default=RENDER_DOT_TIMEOUT, metavar="S",
                        help=f"stop Graphviz after S seconds (default {RENDER_DOT_TIMEOUT:g})")
    figure = render.add_argument_group("figures for papers")
    figure.add_argument("--dpi", type=_positive, default=None, metavar="N",
                        help="pixels per inch of a PNG, written in its header too (default 144)")
    figure.add_argument("--font-size", type=_points, default=None, metavar="PT",
                        help="the points of a box's text, every other text in proportion (default 11)")
    figure.add_argument("--fit", type=_fit, default=None, metavar="WxH|column|page",
                        help="fit a size in inches (column: 3.3x9, page: 6.5x9), a long chain wrapped "
                             "into columns side by side so that its text is as large as it can be")
    figure.add_argument("--legend", action="store_true", help="a key of the kinds' colours under the title")
    _watch_flag(render)
    render.set_defaults(run=cmd_render)

    fmt = sub.add_parser("fmt", help="format .net files in place (comments and alignment kept)",
                         description="Rewrite each file in netdsl's canonical layout, keeping its comments, "
                                     "its line breaks between layers and gaps that align columns. A file "
                                     "with syntax errors is reported and left untouched.")
    fmt.add_argument("files", nargs="+", metavar="FILE", help="a .net file, or - to format standard input to "
                                                              "standard output")
    fmt.add_argument("--check", action="store_true",
                     help="change nothing; exit 1 and list the files that would change")
    fmt.add_argument("--diff", action="store_true", help="print a unified diff instead of writing")
    fmt.add_argument("--max-bytes", type=_positive, default=DEFAULT_MAX_BYTES, metavar="N",
                     help=f"refuse larger files (default {DEFAULT_MAX_BYTES:,})")
    fmt.set_defaults(run=cmd_fmt)

    explain = sub.add_parser("explain", help="what an error code means, with an example",
                             description="Print an error code's explanation, an example file that makes "
                                         "the error and what netdsl says about it; without a code, list the codes.")
    explain.add_argument("code", nargs="?", metavar="CODE", help="an error code, such as E402")
    explain.set_defaults(run=cmd_explain)
    _serve_parser(sub)
    _add_lsp(sub)
    _import_parser(sub)
    return p


def cmd_import(args: argparse.Namespace) -> int:
    """`netdsl import SPEC`: build the module SPEC names (running the user's own Python, which is
    the point; reading a .net never does) and write it as a .net file."""
    import importlib
    import json

    spec = args.spec
    where, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    if not where or not attr:
        raise UsageError(f"{spec!r} names no constructor: give `package.module.function` or `package.module:function`")
    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except ValueError as e:
        raise UsageError(f"--kwargs is not JSON: {e}") from None
    if not isinstance(kwargs, dict):
        raise UsageError("--kwargs must be a JSON object, such as '{\"num_classes\": 10}'")
    shape = args.input
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: a module of the current folder
    try:
        make = getattr(importlib.import_module(where), attr)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"cannot import {spec}: {_one_line(str(e))}") from None
    from .backend.errors import UnmappableModule, describe
    from .backend.importer import from_torch
    try:
        module = make(**kwargs)
    except Exception as e:  # the user's constructor: its failure in one line
        raise UsageError(f"{spec}(**{kwargs}) failed: {describe(e)}") from None
    import torch
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"{spec} returned a {type(module).__name__}, not a torch.nn.Module")
    try:
        text = from_torch(module, shape, name=attr.split(".")[-1] if attr.isidentifier() else None)
    except UnmappableModule as e:
        raise UsageError(str(e)) from None
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text, end="")
    return EXIT_OK


def _shape(text: str) -> tuple[int, ...]:
    import argparse
    parts = text.lower().replace("×", "x").split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected sizes like 3x224x224, got {text!r}")
    return tuple(int(p) for p in parts)


def _import_parser(sub) -> None:
    imp = sub.add_parser("import", help="write a PyTorch model as a .net file (runs the model's Python)",
                         description="Build the torch module SPEC names and write it as the .net file a person "
                                     "would write: its submodules as scopes named as its state_dict keys, classes "
                                     "used more than once as blocks. This runs the constructor's Python code; "
                                     "reading a .net never runs any. A module or call no op maps is one error.")
    imp.add_argument("spec", metavar="SPEC",
                     help="the constructor: torchvision.models.resnet50 or package.module:make_model")
    imp.add_argument("-o", "--output", metavar="FILE.net", help="the file to write (default: standard output)")
    imp.add_argument("--kwargs", metavar="JSON", help="keyword arguments for the constructor, as a JSON object")
    imp.add_argument("--input", type=_shape, default=(3, 224, 224), metavar="CxHxW",
                     help="the shape of one example (default 3x224x224)")
    imp.set_defaults(run=cmd_import)


def _watch_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--watch", action="store_true",
                    help="run again each time the file is saved (polled every 0.3 s), until Ctrl-C")


def _serve_parser(sub) -> None:
    serve = sub.add_parser("serve", help="the live playground: an editor, the diagram and the summary in a browser",
                           description="Serve a page with a code editor for FILE: errors underlined as you type, "
                                       "the diagram and the summary beside it, the numbers of the layer under the "
                                       "cursor, and save back to FILE. It reads and writes only FILE, and listens "
                                       "on 127.0.0.1 unless --host says otherwise. POST /api/check takes a net's "
                                       "source and answers diagnostics, summary rows, layer spans and the SVG.")
    serve.add_argument("file", metavar="FILE", nargs="?", default=None,
                       help="the .net file to edit (created on the first save if missing); "
                            "without it, an example that cannot be saved")
    serve.add_argument("--port", type=_port, default=SERVE_PORT, metavar="N",
                       help=f"the port (default {SERVE_PORT}; 0: any free one)")
    serve.add_argument("--host", default="127.0.0.1", metavar="HOST",
                       help="the address to listen on (default 127.0.0.1, this machine alone; another "
                            "lets others on the network read and write FILE)")
    depth = serve.add_mutually_exclusive_group()
    depth.add_argument("--depth", type=_positive, default=1, metavar="N",
                       help="the diagram's and table's depth at first, as summary (default 1)")
    depth.add_argument("--expand", action="store_true", help="every layer at first")
    serve.add_argument("--log", action="store_true", help="log each request on stderr")
    serve.set_defaults(run=cmd_serve)


def _port(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return n


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line (`argv`, default sys.argv[1:]); returns the exit status."""
    stdout = sys.stdout
    sys.stdout = output = _Output(stdout)
    try:
        try:
            status = _run(argv)
        except SystemExit:  # argparse's --help, --version and usage errors: what they printed must get out
            output.flush()
            raise
        output.flush()
        return status
    except KeyboardInterrupt:
        _error("netdsl: interrupted")
        return EXIT_INTERRUPTED
    except _OutputError as e:
        output.discard()
        if e.errno == errno.EPIPE:  # `netdsl summary ... | head`: the reader has what it wanted
            return EXIT_OK
        _error(f"netdsl: error: cannot write to standard output: {e}")
        return EXIT_USAGE
    finally:
        sys.stdout = stdout


def _run(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "watch", False):
        try:
            return _watched(args)
        except UsageError as e:
            _error(f"netdsl: error: {_one_line(str(e))}")
            return EXIT_USAGE
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command `args` names; a mistake in the net or the call is reported on stderr
    and becomes the exit status."""
    from .diagnostics import NetDSLError
    from .files import WouldOverwrite, shown

    try:
        return args.run(args)
    except NetDSLError as e:
        _error(str(e))
        # `--set` of a parameter the net does not have is a mistake in the call, not the net
        return EXIT_USAGE if all(d.code == UNKNOWN_PARAMETER for d in e.diagnostics) else EXIT_INVALID
    except (UsageError, WouldOverwrite) as e:
        _error(f"netdsl: error: {_one_line(str(e))}")
        return EXIT_USAGE
    except OSError as e:  # the file system anywhere else (a name too long, a full disk): one line
        name = e.filename
        where = f"{shown(name) if isinstance(name, (str, bytes, os.PathLike)) else name}: " if name is not None else ""
        _error(f"netdsl: error: {where}{_reason(e)}")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
