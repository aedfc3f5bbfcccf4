"""The error catalogue: for each error code, what it means, how to fix it, and a small file
that makes it. `netdsl explain CODE` prints an entry, with the message the example really
produces (the checker is run on it); docs/errors.md is generated from here by docs/errors.py,
and tests/test_catalogue.py keeps the two equal and proves each example makes its code.

The one-line titles are `diagnostics.CODES`; this module adds the longer story.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from . import codes
from .diagnostics import CODES, NetDSLError, did_you_mean
from .limits import MAX_EXPR_DEPTH, MAX_NAME_LENGTH, MAX_NESTING


@dataclass(frozen=True)
class Entry:
    code: str
    explanation: str
    example: Union[str, bytes]  # bytes where the mistake is in the encoding
    options: dict[str, Any] = field(default_factory=dict)  # for `loads`: parameters, max_bytes...
    cli: str = ""  # how the options are given on the command line

    @property
    def title(self) -> str:
        return CODES[self.code]


_ENTRIES = [
    Entry(codes.UNEXPECTED_TOKEN, "The parser met a token that cannot come at this point: a missing comma between "
          "arguments, a stray bracket, a label without its layer. The message lists what could have "
          "come instead; after the error the parser skips the token and goes on, so later lines are "
          "checked too.",
          "net n { input 3x8x8 conv(64 3) }"),
    Entry(codes.UNEXPECTED_CHARACTER, "A character that is no part of the language: quotes (netdsl has no strings: "
          "`pad=same`, not `pad=\"same\"`; only a label may be quoted, `\"block1-0\": ...`, and a quoted "
          "label holds no `.`, `\\` or white space, and is not empty), semicolons (layers need no "
          "separator), control characters or NUL bytes (shown as their pictures, such as ␀).",
          "net n { input 3x8x8 conv(8, 3, pad=\"same\") }"),
    Entry(codes.UNEXPECTED_END, "The file ends inside a construct: a `{` or `(` that is never closed. The error is "
          "reported at the end of the file; the bracket left open is usually the last one opened.",
          "net n { input 3x8x8 conv(8, 3)"),
    Entry(codes.NOT_TEXT, "The file is not UTF-8 text. The error points at the first byte that is not UTF-8 "
          "(shown as �); save the file as UTF-8. A leading byte-order mark is accepted.",
          b"net n { input 3x8x8 \xff relu }"),
    Entry(codes.FILE_TOO_LARGE, "The file is larger than the size limit, 512 KiB unless set otherwise, and is refused "
          "without being read further. Nets are a few kilobytes; the limit keeps a wrong file (a log, "
          "a data set) from costing minutes. Raise it with `--max-bytes N` or `load(path, max_bytes=N)`.",
          "net n { input 3x8x8 relu }  # a comment that takes the file past its limit",
          {"max_bytes": 64}, "--max-bytes 64"),
    Entry(codes.UNKNOWN_OP, "A name used as a layer is neither a built-in op nor a block of the file. Usually a "
          "misspelling (the help suggests the nearest name); a name meant as a label needs a colon "
          "(`conv1: conv(...)`). Likewise a name before branches `{ a | b }` that is no join (`no join "
          "named ...`: the help names the nearest join, or lists the joins there are: `concat`, `add`, "
          "`mul`, `split`), an op written with branches (`relu { ... }`), or a join written without them.",
          "net n { input 3x8x8 cnov(8, 3) }"),
    Entry(codes.UNDEFINED_NAME, "A name is not defined where it is used: a parameter the net or block does not "
          "declare, a word an argument does not accept, or `head from` a layer that does not come "
          "before. A block sees its own parameters only: pass it what it needs.",
          "net n(classes = 10) { input 64 linear(clases) }"),
    Entry(codes.DUPLICATE_NAME, "A name is defined twice: two layers with one label in a scope, two blocks or two "
          "parameters with one name, or a block named like a built-in op. Labels inside an unlabelled "
          "`repeat` clash on the second pass: label the repeat, so that each pass is a scope.",
          "net n { input 3x8x8 c1: conv(8, 3) c1: relu }"),
    Entry(codes.RECURSIVE_BLOCK, "A block uses itself, directly or through other blocks, so it would never end. Use "
          "`repeat` for a chain of copies.",
          "block a { relu b }\nblock b { a }\nnet n { input 8 a }"),
    Entry(codes.UNKNOWN_PARAMETER, "A parameter set from outside the file (`--set NAME=VALUE`, or a keyword argument of "
          "`load`) that the net does not declare. On the command line this is a usage error (exit 2).",
          "net n(classes = 10) { input 64 linear(classes) }", {"clases": 3}, "--set clases=3"),
    Entry(codes.NOT_ONE_NET, "A file must define exactly one net (and any number of blocks). An empty file, a "
          "file of blocks only, or a file with two nets is reported here.",
          "block features { conv(8, 3) relu }"),
    Entry(codes.MISPLACED, "A construct is used where it makes no sense: a join with a single branch, a head "
          "without layers (a head is an output of its own; a branch, group, block or `repeat` that makes "
          "no layer is the identity instead), `from` anywhere but at the start of a join's branch (and in "
          "a `split` branch, which takes its part of the split's input, at all), or a deploy head that "
          "reads a layer that exists only in training.",
          "net n { input 3x8x8 concat { relu } }"),
    Entry(codes.UNKNOWN_FUNCTION, "A call in an expression of a function that is not built in. Expressions may call "
          "`min`, `max`, `round`, `floor`, `ceil`, `int` and `make_divisible` only (no name reaches "
          "Python); the help names the nearest one.",
          "net n(w = 1.0) { input 3x8x8 conv(make_divisable(32 * w, 8), 3) }"),
    Entry(codes.UNKNOWN_ARGUMENT, "A keyword argument the op or block does not take; the help names the nearest one "
          "or lists those it takes.",
          "net n { input 3x8x8 conv(8, 3, strid=2) }"),
    Entry(codes.MISSING_ARGUMENT, "A required argument is missing (marked ● in the README's op table), or a block "
          "parameter without a default is not given, or a net parameter has neither a default nor a "
          "value set from outside.",
          "net n { input 3x8x8 conv(8) }"),
    Entry(codes.TOO_MANY_POSITIONAL, "More positional arguments than the op takes positionally, or a positional argument "
          "after a keyword argument. Name the others: `conv(8, 3, dilation=2)`.",
          "net n { input 3x8x8 conv(8, 3, 1, 0, 1) }"),
    Entry(codes.ARGUMENT_TWICE, "The same argument is given twice, by position and by name, or by name twice.",
          "net n { input 3x8x8 conv(8, 3, stride=1, stride=2) }"),
    Entry(codes.WRONG_TYPE, "A value of the wrong type: a float where an integer is needed (`stride=1.5`, "
          "`48 * 0.25` as a channel count, even though it is 12.0: write `int(48 * 0.25)`), a "
          "number for a boolean (`bias=1`), a tuple of the wrong length, arithmetic on a word, a "
          "comparison of a number with `true`.",
          "net n { input 3x8x8 conv(8, 3, stride=1.5) }"),
    Entry(codes.OUT_OF_RANGE, "A value out of range: zero channels, a dropout probability over 1, `pad=same` with "
          "a stride, pool padding over half the kernel, a number of more than 60 digits, an input "
          "size of 0.",
          "net n { input 3x8x8 conv(0, 3) }"),
    Entry(codes.ARITHMETIC, "Arithmetic that fails: division or remainder by zero, or a result too large to be "
          "a size.",
          "net n(c = 8) { input 3x8x8 conv(c // 0, 3) }"),
    Entry(codes.WRONG_ARITY, "A built-in function given too few or too many arguments: `min` and `max` take two or "
          "more, `round`, `floor`, `ceil` and `int` one, `make_divisible(v, divisor, min_value=divisor)` "
          "two or three.",
          "net n { input 3x8x8 conv(max(8), 3) }"),
    Entry(codes.NOT_A_BOOLEAN, "A condition (of `if`, of `a if c else b`) or an operand of `and`, `or` or `not` that "
          "is not true or false. Numbers are not conditions: compare them (`in_channels != out`, "
          "`stride > 1`).",
          "net n { input 3x8x8 if in_channels { relu } }"),
    Entry(codes.WINDOW_TOO_LARGE, "A pooling or convolution window larger than its (padded) input: the output would "
          "have no rows or columns. The notes say which layer made the input and its shape.",
          "net n { input 3x32x32 maxpool(40) }"),
    Entry(codes.CONCAT_MISMATCH, "The branches of a `concat` are joined along channels, so every other dimension must "
          "agree; the message names the branch that disagrees and the notes point at the layers that "
          "produced each shape.",
          "net n { input 3x32x32 concat { conv(8, 1) | conv(8, 3) } }"),
    Entry(codes.ELEMENTWISE_MISMATCH, "The branches of an `add` are summed, so their shapes must be equal; a residual "
          "branch that changes the channels or the size needs a projection on the skip path. The branches "
          "of a `mul` are multiplied, and broadcast as PyTorch's `*` does: each size must be equal, or 1 "
          "on one side, which is repeated (a squeeze-and-excitation gate C x 1 x 1 times C x H x W); "
          "their ranks must agree too (an image cannot multiply a vector: reshape the gate).",
          "net n { input 8x32x32 add { identity | conv(9, 1) } }"),
    Entry(codes.WRONG_RANK, "An op gets a tensor with the wrong number of dimensions: `linear` on an image "
          "(add `flatten` before it), a conv or pool on a vector (they take sequences C x L, images C x H x W "
          "and volumes C x D x H x W), `pixel_shuffle` on anything but an image, or an interpolating "
          "`upsample` mode made for another rank (`bilinear` is for images, `linear` for sequences, "
          "`trilinear` for volumes).",
          "net n { input 3x32x32 linear(10) }"),
    Entry(codes.GROUPS_MISMATCH, "A grouped convolution needs its input and output channels divisible by `groups`; "
          "likewise `pixel_shuffle(r)` needs channels divisible by r², which it turns into r x r pixels.",
          "net n { input 3x32x32 conv(8, 3, groups=2) }"),
    Entry(codes.INPUT_DECLARATION, "The net's body starts with its input shape (`input 3x224x224`), once; a layer "
          "before it has nothing to read, and blocks take their input from where they are used.",
          "net n { conv(8, 3) }"),
    Entry(codes.NET_TOO_LARGE, "The net would have more layers than the limit (100,000 unless set otherwise). The "
          "limit guards against runaway repeats and blocks that multiply; the layers are counted before "
          "any is made, so the error comes at once, at the line that passes the limit. Raise it with "
          "`--max-layers N` or `load(path, max_layers=N)`.",
          "net n { input 8 repeat 1000000000 { relu } }"),
    Entry(codes.TOO_DEEP, f"The file nests too deeply: brackets more than {MAX_NESTING} levels deep, an "
          f"expression of more than {MAX_EXPR_DEPTH} nested operators (each `+` of a long sum and each "
          f"`-` of `---1` is a level), or blocks using blocks more than {MAX_NESTING} levels deep. Real "
          "nets nest a few levels; the limits keep checking fast and far from Python's recursion limit.",
          "net n { input 8 linear(" + "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1) + ") }"),
    Entry(codes.WINDOW_IN_PADDING, "A pooling window that reads padding only: with dilation, the taps of a window that "
          "starts in the padding can step over the whole input (`maxpool(2, pad=1, dilation=3)` on a height "
          "of 2 reads rows -1 and 2). PyTorch gives such a window -inf and an index of no input position, "
          "which its backward pass writes through, corrupting memory. The message names the first such "
          "output row or column; use less padding or dilation, or check the layers before.",
          "net n { input 8x2x2 maxpool(2, pad=1, dilation=3) }"),
    Entry(codes.NAME_TOO_LONG, f"A name longer than {MAX_NAME_LENGTH:,} characters: an identifier in the file (then "
          "nothing else is checked), or a layer's or scope's dotted name, which holds the labels of every "
          "scope around it (`stage1.block2.conv1`; then checking stops there). Every layer keeps its name "
          "and messages quote them, so the limit keeps memory and output in proportion to the net. Real "
          "names are tens of characters.",
          "net n { input 8 " + "a" * (MAX_NAME_LENGTH + 1) + ": relu }"),
    Entry(codes.RANK_MISMATCH, "A size given per axis (`kernel=7x1`, `stride=(1, 2, 2)`) needs one size for each "
          "spatial axis of the layer's input: one (length) for a sequence C x L, two (height, width) for an image "
          "C x H x W, three (depth, height, width) for a volume C x D x H x W. A single number (`kernel=3`) means "
          "that size on every axis, whatever the input.",
          "net n { input 3x16x32x32 conv(8, 3x3) }"),
    Entry(codes.SPLIT_SIZES, "`split(16, 48) { a | b }` hands each branch the number of channels given for it, in "
          "order: there must be one size per branch, and the sizes must add up to the channels of the "
          "split's input (`chunk(index, (16, 48))` likewise). Without sizes, `split` cuts the channels into equal "
          "parts, one per branch.",
          "net n { input 64x8x8 split(16, 32) { conv(8, 1) | conv(8, 1) } }"),
    Entry(codes.SPLIT_UNEVEN, "`split { a | b }` without sizes cuts the channels into equal parts, one per branch (as "
          "`x.chunk(2, dim=1)` does in ShuffleNetV2), so the channels must be divisible by the number of "
          "branches. Give the sizes (`split(16, 48)`) for unequal parts.",
          "net n { input 15x8x8 split { conv(8, 1) | conv(8, 1) } }"),
]

CATALOGUE: dict[str, Entry] = {e.code: e for e in _ENTRIES}

EXAMPLE_FILE = "example.net"


def example_source(entry: Entry) -> str:
    """The example as text (bytes that are not UTF-8 shown with escapes)."""
    if isinstance(entry.example, bytes):
        return entry.example.decode("utf-8", errors="backslashreplace")
    return entry.example


def example_output(entry: Entry) -> str:
    """What `netdsl check` prints for the example: run through the real checker."""
    from .network import loads, read_source

    options = dict(entry.options)
    try:
        if isinstance(entry.example, bytes):
            text = read_source(io.BytesIO(entry.example), EXAMPLE_FILE)
        else:
            text = entry.example
        if "max_bytes" in options:
            text = read_source(io.BytesIO(text.encode("utf-8")), EXAMPLE_FILE, options.pop("max_bytes"))
        loads(text, EXAMPLE_FILE, **options)
    except NetDSLError as err:
        return str(err)
    return "(no error)"


def lookup(code: str) -> Optional[Entry]:
    """The entry for `E402`, `e402` or `402`."""
    code = code.strip().upper()
    if code.isdigit():
        code = "E" + code
    return CATALOGUE.get(code)


def suggestion(code: str) -> str:
    """What to say about a code that is not in the catalogue."""
    hint = did_you_mean(code.strip().upper(), CATALOGUE)
    return f"no error code {code}" + (f"; {hint}" if hint else "") + " (codes: " + ", ".join(CATALOGUE) + ")"


def explain(entry: Entry) -> str:
    """The entry as `netdsl explain` prints it (docs/errors.md shows the same, as Markdown)."""
    command = f"netdsl check {EXAMPLE_FILE}" + (f" {entry.cli}" if entry.cli else "")
    example = "\n".join("    " + line for line in example_source(entry).splitlines())
    output = "\n".join(("    " + line).rstrip() for line in example_output(entry).splitlines())
    return (f"{entry.code}: {entry.title}\n\n{textwrap.fill(entry.explanation, 96)}\n\n"
            f"Example ({EXAMPLE_FILE}):\n\n{example}\n\n$ {command}\n\n{output}\n")
