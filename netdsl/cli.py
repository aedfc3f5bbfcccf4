"""The `netdsl` command line.

Exit codes: 0 success, 1 the net is invalid (diagnostics on stderr), 2 usage error (bad
options, unreadable file). `check`, `summary` and `--help` never import torch.
"""

from __future__ import annotations

import argparse
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
    if args.file == "-":
        text = read_source(sys.stdin.buffer, "<stdin>", args.max_bytes)
        return loads(text, "<stdin>", max_layers=args.max_layers, max_bytes=args.max_bytes, **params)
    try:
        return load(args.file, max_layers=args.max_layers, max_bytes=args.max_bytes, **params)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
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
