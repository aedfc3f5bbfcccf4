"""The `netdsl` command line.

Exit codes: 0 success, 1 the net is invalid (diagnostics on stderr), 2 usage error (bad
options, unreadable file). `check`, `summary` and `--help` never import torch.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any, Optional, Sequence

from . import __version__
from .diagnostics import NetDSLError
from .lower import DEFAULT_MAX_LAYERS, evaluate
from .network import DEFAULT_MAX_BYTES

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in how netdsl was called, not in the net."""


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """`--set classes=10 --set size=3x3 --set pad=same` to {"classes": 10, "size": (3, 3),
    "pad": Symbol("same")}: values as the language writes them."""
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
    from .network import load, loads, read_source

    params = _parse_set(args.set)
    max_bytes = getattr(args, "max_bytes", DEFAULT_MAX_BYTES)  # for commands that do not offer --max-bytes
    if args.file == "-":
        text = read_source(sys.stdin.buffer, "<stdin>", max_bytes)
        return loads(text, "<stdin>", max_layers=args.max_layers, max_bytes=max_bytes, **params)
    try:
        return load(args.file, max_layers=args.max_layers, max_bytes=max_bytes, **params)
    except OSError as e:  # missing, a folder, no permission, a symlink loop ...
        raise UsageError(f"cannot read {args.file}: {e.strerror}") from None


def cmd_check(args: argparse.Namespace) -> int:
    net = _load(args)
    train, deploy = net.total_params(), net.total_params(train=False)
    extra = f" ({deploy:,} deploy)" if deploy != train else ""
    n = len(net.layers)
    print(f"ok: {net.name}: {n} layer{'s' if n != 1 else ''}, {train:,} params{extra}")
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    net = _load(args)
    summary = net.summary(batch=args.batch)
    if args.json:
        print(summary.to_json())
    else:
        print(summary.table(None if args.expand else args.depth))
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    """Format files in place (or check, or show the diff); `-` reads stdin, writes stdout."""
    import difflib

    from .network import read_source
    from .printer import FormatError, format_source

    status = EXIT_OK
    for name in args.files:
        try:
            if name == "-":
                original = sys.stdin.buffer.read(args.max_bytes + 1)
                text = read_source(io.BytesIO(original), "<stdin>", args.max_bytes)
            else:
                with open(name, "rb") as f:
                    original = f.read(args.max_bytes + 1)
                text = read_source(io.BytesIO(original), name, args.max_bytes)
            formatted = format_source(text, "<stdin>" if name == "-" else name)
        except OSError as e:  # missing, a folder, no permission, a symlink loop ...
            raise UsageError(f"cannot read {name}: {e.strerror}") from None
        except NetDSLError as e:  # the file is left as it is
            print(e, file=sys.stderr)
            status = EXIT_INVALID
            continue
        except FormatError as e:
            print(f"netdsl: error: {e}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        changed = formatted.encode("utf-8") != original
        if args.diff and changed:
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(keepends=True), formatted.splitlines(keepends=True), name, name))
        if args.check:
            if changed:
                print(f"would reformat {name}", file=sys.stderr)
                status = max(status, EXIT_INVALID)
        elif name == "-":
            if not args.diff:
                sys.stdout.write(formatted)
        elif changed and not args.diff:
            try:
                _replace(name, formatted)
            except OSError as e:
                raise UsageError(f"cannot write {name}: {e.strerror}") from None
            print(f"reformatted {name}", file=sys.stderr)
    return status


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


def _replace(path: str, text: str) -> None:
    """Write `text` over the file at `path` through a temporary file beside it, so an
    interrupted write never leaves half a net; the file keeps its permissions."""
    import os
    import shutil
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".netdsl-fmt-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netdsl",
        description="Write a convolutional network as a short text file; check it, summarise it.",
        epilog="Exit codes: 0 ok, 1 the net has errors, 2 usage error. See README.md for the language.")
    p.add_argument("--version", action="version", version=f"netdsl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file", metavar="FILE", help="a .net file, or - to read standard input")
        sp.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a net parameter, e.g. --set classes=10 (repeatable)")
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
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")
    summary.set_defaults(run=cmd_summary)

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
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except NetDSLError as e:
        print(e, file=sys.stderr)
        # `--set` of a parameter the net does not have is a mistake in the call, not the net
        return EXIT_USAGE if all(d.code == "E205" for d in e.diagnostics) else EXIT_INVALID
    except UsageError as e:
        print(f"netdsl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `netdsl summary ... | head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
