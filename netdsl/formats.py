"""A summary's rows in the formats people paste elsewhere: an aligned text table, Markdown, CSV,
LaTeX (booktabs) and HTML (notebooks), with the columns chosen; and the memory model as text.

`summary --format table` with the default columns and dtype is `Summary.table` itself, byte for
byte; everything else is made here from the same rows (`Summary.rows`' roll-up at a depth).
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from typing import Optional, Sequence

from .memory import Memory, dtype_bytes
from .ops import fmt_shape
from .summary import BYTES_PER_VALUE, framed_rows, rollup

# column -> (heading, right-aligned, what it is); keywords, not quoted names, since a column is
# called like an op (`input`) and tests/test_structure.py keeps quoted op names in the registry
COLUMNS = dict(
    name=("Layer", False, "the layer's or rolled-up block's name ([train]: a training head's)"),
    op=("Op", False, "the op as the language writes it, or the block call"),
    shape=("Output", True, "the output shape of one example"),
    params=("Params", True, "learnable parameters, biases included"),
    macs=("MACs", True, "multiply-accumulates of one example"),
    memory=("Memory", True, "the output's bytes at the batch and dtype"),
    kernel=("Kernel", True, "a conv's or pool's window"),
    stride=("Stride", True, "a conv's or pool's stride"),
    input=("Input", True, "the input shape (a join's: each branch's)"),
    share=("Share", True, "its share of the net's parameters (training heads included)"),
)
DEFAULT_COLUMNS = ("name", "op", "shape", "params", "macs", "memory")
FORMATS = ("table", "markdown", "csv", "latex", "json")


@dataclass(frozen=True)
class Row:
    name: str
    op: str
    shape: list
    params: int
    macs: int
    memory: int
    kernel: Optional[tuple]
    stride: Optional[tuple]
    input: list  # input shapes
    share: float
    train_only: bool


def parse_columns(text: Optional[str]) -> tuple[str, ...]:
    """`"name,op,kernel"` to its columns (None: the default ones); ValueError names a wrong one."""
    if text is None:
        return DEFAULT_COLUMNS
    from .diagnostics import did_you_mean

    names = tuple(c.strip() for c in text.split(",") if c.strip())
    for c in names:
        if c not in COLUMNS:
            close = did_you_mean(c, COLUMNS)  # "did you mean `name`?"
            hint = f"; {close}" if close else ""
            raise ValueError(f"unknown column `{c}` (columns: {', '.join(COLUMNS)}){hint}")
    if not names:
        raise ValueError(f"--columns names no column (columns: {', '.join(COLUMNS)})")
    return names


def rows(summary, depth: Optional[int] = 1, dtype: str = "float32") -> list[Row]:
    """The summary's rows at `depth` (None: every layer), with memory in `dtype`."""
    scale = dtype_bytes(dtype)
    net = _net(summary)
    total = max(summary.totals["params"], 1)
    first: dict[str, str] = {}  # row -> its first layer, whose input is the row's
    for r in summary.layers:
        scope = rollup(summary._scopes_of[r.name], r.train_only, depth)
        first.setdefault(r.name if scope is None else scope.name, r.name)
    out = []
    for name, what, shape, p, m, b, train in summary.rows(depth):
        layer = net.layers[first[name]]
        alone = first[name] == name
        attrs = layer.attrs or {}
        kernel = attrs.get("kernel") if alone else None
        stride = attrs.get("stride") if alone else None
        out.append(Row(name, what, list(shape), p, m, b * scale // BYTES_PER_VALUE, kernel, stride,
                       [list(i.shape) for i in layer.inputs], p / total, train))
    return out


def _net(summary):
    if summary._ir is None:
        raise ValueError("this Summary was made without its net: make it with Summary.of(network)")
    return summary._ir


def _cell(row: Row, column: str, plain: bool) -> str:
    """A cell as text: `plain` for CSV (bare numbers), else as the table writes it."""
    v = getattr(row, column)
    if column == "name":
        return v if plain else v + (" [train]" if row.train_only else "")
    if column in ("params", "macs", "memory"):
        return str(v) if plain else (kib(v) if column == "memory" else f"{v:,}")
    if column == "shape":
        return "x".join(map(str, v)) if plain else fmt_shape(v)
    if column in ("kernel", "stride"):
        if v is None:
            return ""
        return "x".join(map(str, v)) if isinstance(v, tuple) and (plain or v[0] != v[1]) else str(
            v[0] if isinstance(v, tuple) else v)
    if isinstance(v, list) and all(isinstance(s, list) for s in v):  # the input shapes
        return " | ".join(("x".join(map(str, s)) if plain else fmt_shape(s)) for s in v)
    if column == "share":
        return f"{v:.6f}" if plain else f"{100 * v:.1f} %"
    return str(v)


def table(summary, depth: Optional[int] = 1, columns: Sequence[str] = DEFAULT_COLUMNS,
          dtype: str = "float32") -> str:
    """An aligned text table (the default columns in float32: `Summary.table`, byte for byte)."""
    if tuple(columns) == DEFAULT_COLUMNS and dtype == "float32":
        return summary.table(depth)
    body = [[_cell(r, c, False) for c in columns] for r in rows(summary, depth, dtype)]
    out = framed_rows(summary, [COLUMNS[c][0] for c in columns], body, [COLUMNS[c][1] for c in columns])
    return "\n".join(out + [_totals_line(summary, dtype)])


def _totals_line(summary, dtype: str) -> str:
    t = summary.totals
    memory = t["activation_bytes"] * dtype_bytes(dtype) // BYTES_PER_VALUE
    text = f"total: {t['params']:,} params, {t['macs']:,} MACs, {kib(memory)} of outputs in {dtype}"
    if t["params"] != t["params_deploy"] or t["macs"] != t["macs_deploy"]:
        text += f" (deploy: {t['params_deploy']:,} params, {t['macs_deploy']:,} MACs)"
    return text


def markdown(summary, depth: Optional[int] = 1, columns: Sequence[str] = DEFAULT_COLUMNS,
             dtype: str = "float32") -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned, and the totals below it."""
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|")

    out = ["| " + " | ".join(COLUMNS[c][0] for c in columns) + " |",
           "|" + "|".join("---:" if COLUMNS[c][1] else ":---" for c in columns) + "|"]
    out += ["| " + " | ".join(esc(_cell(r, c, False)) for c in columns) + " |" for r in rows(summary, depth, dtype)]
    return "\n".join(out) + "\n\n" + esc(_totals_line(summary, dtype).replace(" [train]", ""))


def to_csv(summary, depth: Optional[int] = 1, columns: Sequence[str] = DEFAULT_COLUMNS,
           dtype: str = "float32") -> str:
    """CSV with bare numbers (bytes, not KiB) and a `train_only` column; no totals row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*columns, "train_only"])
    for r in rows(summary, depth, dtype):
        writer.writerow([*(_cell(r, c, True) for c in columns), str(r.train_only).lower()])
    return buffer.getvalue()


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "×": r"$\times$", "·": r"$\cdot$"}


def latex(summary, depth: Optional[int] = 1, columns: Sequence[str] = DEFAULT_COLUMNS,
          dtype: str = "float32") -> str:
    """A LaTeX `tabular` with booktabs rules (`\\usepackage{booktabs}`), totals as its last row."""
    def esc(text: str) -> str:
        return "".join(_LATEX.get(ch, ch) for ch in text)

    spec = "".join("r" if COLUMNS[c][1] else "l" for c in columns)
    out = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(esc(COLUMNS[c][0]) for c in columns) + r" \\", r"\midrule"]
    out += [" & ".join(esc(_cell(r, c, False)) for c in columns) + r" \\" for r in rows(summary, depth, dtype)]
    out += [r"\bottomrule", r"\end{tabular}", "% " + _totals_line(summary, dtype)]
    return "\n".join(out)


def to_html(summary, depth: Optional[int] = 1, columns: Sequence[str] = DEFAULT_COLUMNS,
            dtype: str = "float32") -> str:
    """An HTML table (a notebook's `_repr_html_`), every cell escaped."""
    def td(tag: str, text: str, right: bool) -> str:
        style = ' style="text-align:right"' if right else ' style="text-align:left"'
        return f"<{tag}{style}>{html.escape(text)}</{tag}>"

    batch = f", batch {summary.batch}" if summary.batch != 1 else ""
    out = [f"<table class=\"netdsl-summary\"><caption>{html.escape(summary.net)}: input "
           f"{html.escape(fmt_shape(summary.input))}{batch}</caption>",
           "<thead><tr>" + "".join(td("th", COLUMNS[c][0], COLUMNS[c][1]) for c in columns) + "</tr></thead><tbody>"]
    for r in rows(summary, depth, dtype):
        out.append("<tr>" + "".join(td("td", _cell(r, c, False), COLUMNS[c][1]) for c in columns) + "</tr>")
    out.append(f"</tbody></table><p>{html.escape(_totals_line(summary, dtype))}</p>")
    return "\n".join(out)


def memory_text(m: Memory) -> str:
    """The memory model as lines of text (the README states the model)."""
    batch = f", batch {m.batch}" if m.batch != 1 else ""
    deploy = f" ({kib(m.params_deploy)} deploy)" if m.params_deploy != m.params else ""
    lines = [f"memory model ({m.dtype}{batch}):",
             f"  parameters          {kib(m.params)}{deploy}, buffers {kib(m.buffers)}",
             f"  gradients           {kib(m.gradients)}",
             f"  optimizer state     SGD with momentum {kib(m.sgd_momentum)}, Adam {kib(m.adam)}",
             f"  saved for backward  {kib(m.saved)} (a training forward's activations)",
             f"  inference peak      {kib(m.peak)} of activations alive at once (input {kib(m.input)})",
             f"  training step       {kib(m.training('sgd'))} with SGD, {kib(m.training('adam'))} with Adam",
             f"  inference           {kib(m.inference())}"]
    return "\n".join(lines)


def memory_markdown(m: Memory) -> str:
    """The memory model as a Markdown table (bytes, and as the text writes them)."""
    out = [f"| memory ({m.dtype}, batch {m.batch}) | bytes | |", "|:---|---:|---:|"]
    out += [f"| {what} | {n} | {kib(n)} |" for what, n in _memory_items(m)]
    return "\n".join(out)


def memory_latex(m: Memory) -> str:
    """The memory model as a LaTeX booktabs `tabular`."""
    out = ["\\begin{tabular}{lr}", r"\toprule", f"memory ({m.dtype}, batch {m.batch}) & \\\\", r"\midrule"]
    out += [f"{what} & {kib(n)} \\\\" for what, n in _memory_items(m)]
    return "\n".join(out + [r"\bottomrule", r"\end{tabular}"])


def _memory_items(m: Memory) -> list[tuple[str, int]]:
    return [("parameters", m.params), ("parameters, deploy", m.params_deploy), ("buffers", m.buffers),
            ("gradients", m.gradients), ("SGD momentum", m.sgd_momentum), ("Adam state", m.adam),
            ("saved for backward", m.saved), ("inference peak", m.peak), ("input batch", m.input),
            ("training step, SGD", m.training("sgd")), ("training step, Adam", m.training("adam")),
            ("inference", m.inference())]


def kib(n: int) -> str:
    """Bytes as the summary writes them: B, KiB, then MiB and GiB from 10 MiB on."""
    if n < 1024:
        return f"{n} B"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= 10 * size:
            v = n / size
            return f"{v:,.0f} {unit}" if v >= 100 else f"{v:,.1f} {unit}"
    k = n / 1024
    return f"{k:,.0f} KiB" if k >= 100 or k == int(k) else f"{k:,.1f} KiB"
