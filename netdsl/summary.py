"""Summaries: per-layer output shape, parameters, MACs and activation memory, with deploy
and training totals, as a table (`str`) or as the JSON document tools read (`to_dict`)."""

from __future__ import annotations

import bisect
import json
import math
import operator
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .ir import Layer, Scope, scopes_of, without_gc
from .ops import fmt_shape

BYTES_PER_VALUE = 4  # activations are counted in float32

CONVENTIONS = ("MACs count the multiply-accumulates of conv and linear layers; FLOPs = 2 x MACs.\n"
               "Params include biases (BatchNorm: 2 x C). Memory: each layer's output in float32.")


@dataclass(frozen=True)
class LayerRow:
    name: str
    op: str
    call: str              # the layer as the language writes it
    output_shape: list
    params: int
    macs: int
    activation_bytes: int
    train_only: bool
    line: int


@dataclass(frozen=True)
class BlockRow:
    name: str
    block: str
    call: str
    output_shape: list
    params: int
    macs: int
    activation_bytes: int
    train_only: bool


class Summary:
    """The numbers of a checked `Network` at a given batch size."""

    _ir = None  # the net's IR, which `of` keeps for the memory model and the other formats

    def __init__(self, net: str, input_shape, batch: int, layers: list[LayerRow], blocks: list[BlockRow],
                 outputs: list[dict], rows_of: Mapping[str, list[Scope]], scope_shapes: Mapping[str, list],
                 counts: Mapping[str, int]):
        self.net, self.input, self.batch = net, list(input_shape), batch
        self._counts = counts  # params and MACs, deploy and training: the IR's totals
        self.layers, self.blocks, self.outputs = layers, blocks, outputs
        self._scopes_of = rows_of  # layer name -> the scopes it is in, for rolling rows up
        self._scope_shapes = scope_shapes

    @classmethod
    @without_gc
    def of(cls, network, batch: int = 1) -> "Summary":
        """The summary of a checked `Network` (or of its `ir.Net`)."""
        net = getattr(network, "ir", network)
        layers, scopes_by_layer = [], {}
        # scope -> [index of its last layer, that layer's shape, params, MACs, bytes]: each layer
        # adds itself to its own scope only, and each scope then to its parent, deepest first, so
        # the cost is layers + scopes (adding every layer to every scope around it cost layers x
        # depth: 100,000 layers 97 blocks deep were ten million additions)
        acc: dict[str, list] = {}
        by_level: dict[int, list[Scope]] = {}
        for index, layer in enumerate(net.body()):
            row = LayerRow(layer.name, layer.op.name, layer.describe(), list(layer.shape), layer.params, layer.macs,
                           batch * BYTES_PER_VALUE * math.prod(layer.shape), layer.train_only, layer.span.line)
            layers.append(row)
            scopes_by_layer[layer.name] = scopes_of(layer)
            scope = layer.scope
            if scope is not None:
                a = acc.get(scope.name)
                if a is None:
                    a = acc[scope.name] = [index, None, 0, 0, 0]
                    by_level.setdefault(scope.level, []).append(scope)
                a[0], a[1] = index, row.output_shape
                a[2] += row.params
                a[3] += row.macs
                a[4] += row.activation_bytes
        for level in range(max(by_level, default=0), 1, -1):  # (levels of parents are added as it goes)
            for scope in by_level.get(level, ()):
                parent = scope.parent
                if parent is None:
                    continue
                a, p = acc[scope.name], acc.get(parent.name)
                if p is None:
                    p = acc[parent.name] = [-1, None, 0, 0, 0]
                    by_level.setdefault(parent.level, []).append(parent)
                if a[0] > p[0]:
                    p[0], p[1] = a[0], a[1]
                p[2] += a[2]
                p[3] += a[3]
                p[4] += a[4]
        shapes = {name: list(s.output.shape) for name, s in net.scopes.items()
                  if s.output is not None and s.output.shape is not None}
        blocks = [BlockRow(name, s.block, s.title, shapes.get(name, acc[name][1]), *acc[name][2:], s.train_only)
                  for name, s in net.scopes.items() if s.kind == "block" and name in acc]
        outputs = [{"name": o.name, "shape": list(o.layer.shape), "train_only": o.train_only} for o in net.outputs]
        train, deploy = net.totals(train=True), net.totals(train=False)
        counts = {"params": train.params, "macs": train.macs, "params_deploy": deploy.params,
                  "macs_deploy": deploy.macs}
        summary = cls(net.name, net.input_shape, batch, layers, blocks, outputs, scopes_by_layer, shapes, counts)
        summary._ir = net  # for the memory model and the other formats (netdsl/formats.py)
        return summary

    # -- totals -------------------------------------------------------------------------

    @property
    def totals(self) -> dict:
        return {**self._counts,
                "activation_bytes": sum(r.activation_bytes for r in self.layers),
                "activation_bytes_deploy": sum(r.activation_bytes for r in self.layers if not r.train_only)}

    LAYER_KEYS = ("name", "op", "output_shape", "params", "macs", "activation_bytes", "train_only", "line")
    BLOCK_KEYS = ("name", "block", "output_shape", "params", "macs", "train_only")

    @without_gc
    def to_dict(self) -> dict:
        """The documented JSON document (README, "summary --json")."""
        return self._document([_pick(r, self.LAYER_KEYS) for r in self.layers],
                              [_pick(r, self.BLOCK_KEYS) for r in self.blocks])

    def _document(self, layers, blocks) -> dict:
        return dict(net=self.net, input=self.input, batch=self.batch, layers=layers, blocks=blocks,
                    outputs=self.outputs, totals=self.totals)

    @without_gc
    def to_json(self) -> str:
        """`to_dict()` as JSON, indented by one space, as `json.dumps(..., indent=1)` writes it,
        byte for byte, in a third of the time: json's C encoder does not indent, and its Python
        one took 1.5 s for 100,000 layers. The rows are written straight from the row objects."""
        parts: list[str] = []
        _encode(self._document(_Rows(self.layers, self.LAYER_KEYS), _Rows(self.blocks, self.BLOCK_KEYS)), "\n",
                parts)
        return "".join(parts)

    # -- the table ----------------------------------------------------------------------

    def rows(self, depth: Optional[int] = None) -> list[tuple]:
        """(name, what, shape, params, macs, bytes, train_only) per row, layers deeper than
        `depth` scope levels rolled up into their scope's row."""
        out: list[list] = []
        index: dict[str, int] = {}
        for r in self.layers:
            scope = rollup(self._scopes_of[r.name], r.train_only, depth)
            key = r.name if scope is None else scope.name
            what = r.call if scope is None else scope.title
            if key in index:
                row = out[index[key]]
                row[2] = self._scope_shapes.get(key, r.output_shape)
                row[3] += r.params
                row[4] += r.macs
                row[5] += r.activation_bytes
                row[6] = row[6] and r.train_only
            else:
                index[key] = len(out)
                out.append([key, what, r.output_shape, r.params, r.macs, r.activation_bytes, r.train_only])
        return [tuple(r) for r in out]

    @without_gc
    def table(self, depth: Optional[int] = 1) -> str:
        head = ("Layer", "Op", "Output", "Params", "MACs", "Memory")
        body = [(name + (" [train]" if train else ""), what, fmt_shape(shape), f"{p:,}", f"{m:,}", _kib(b))
                for name, what, shape, p, m, b, train in self.rows(depth)]
        t = self.totals
        out = framed_rows(self, head, body, (False, False, True, True, True, True))
        split = any(r.train_only for r in self.layers)
        totals = [("params", t["params_deploy"], t["params"]), ("MACs", t["macs_deploy"], t["macs"]),
                  ("memory", t["activation_bytes_deploy"], t["activation_bytes"])]
        fmt = lambda k, v: _kib(v) if k == "memory" else f"{v:,}"  # noqa: E731
        if split:
            cells = [("", "deploy", "training")] + [(k, fmt(k, d), fmt(k, a)) for k, d, a in totals]
        else:
            cells = [("", "total")] + [(k, fmt(k, a)) for k, d, a in totals]
        w = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        for c in cells:
            out.append("  ".join([c[0].ljust(w[0])] + [x.rjust(wi) for x, wi in zip(c[1:], w[1:])]).rstrip())
        if split:
            out.append("training adds the [train] heads, which deploy leaves out")
        out.append(CONVENTIONS)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()

    # -- the memory model and other formats (netdsl/memory.py, netdsl/formats.py) --------

    def memory(self, dtype: str = "float32"):
        """The memory model at this summary's batch in `dtype` (a `netdsl.memory.Memory`):
        parameters, gradients, optimizer state, activations saved for backward, inference peak."""
        from .formats import _net
        from .memory import memory
        return memory(_net(self), self.batch, dtype)

    def to_markdown(self, depth: Optional[int] = 1, columns=None, dtype: str = "float32") -> str:
        """A Markdown table of the rows at `depth` (None: every layer); `columns` from
        `netdsl.formats.COLUMNS` (default: those of the text table); memory in `dtype`."""
        from . import formats
        return formats.markdown(self, depth, columns or formats.DEFAULT_COLUMNS, dtype)

    def to_csv(self, depth: Optional[int] = 1, columns=None, dtype: str = "float32") -> str:
        """CSV of the rows (bare numbers, bytes), as `to_markdown` takes them."""
        from . import formats
        return formats.to_csv(self, depth, columns or formats.DEFAULT_COLUMNS, dtype)

    def to_latex(self, depth: Optional[int] = 1, columns=None, dtype: str = "float32") -> str:
        """A LaTeX booktabs `tabular` of the rows, as `to_markdown` takes them."""
        from . import formats
        return formats.latex(self, depth, columns or formats.DEFAULT_COLUMNS, dtype)

    def to_html(self, depth: Optional[int] = 1, columns=None, dtype: str = "float32") -> str:
        """An HTML table of the rows, as `to_markdown` takes them."""
        from . import formats
        return formats.to_html(self, depth, columns or formats.DEFAULT_COLUMNS, dtype)

    def _repr_html_(self) -> str:
        """The table in a notebook."""
        return self.to_html()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return (f"<Summary {self.net}: input {fmt_shape(self.input)}, batch {self.batch}, {len(self.layers)} layers, "
                f"{self.totals['params']:,} params>")


def framed_rows(summary, head: Sequence[str], body: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """A table's title (`net: input 3x224x224, batch 8`), its heading and rows aligned (the
    columns where `right` is true to the right), between rules, and a closing rule: the text
    table of `Summary.table` and of `summary --columns` alike."""
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    rule = "-" * len(line(head))
    batch = f", batch {summary.batch}" if summary.batch != 1 else ""
    return [f"{summary.net}: input {fmt_shape(summary.input)}{batch}", rule, line(head), rule,
            *map(line, body), rule]


def rollup(around: list[Scope], train_only: bool, depth: Optional[int]) -> Optional[Scope]:
    """The scope a layer is rolled up into at `depth` scope levels, given the scopes it is in
    (outermost first); None when it is a row of its own (`depth` None: every layer is).
    `summary --depth` and `render --depth` both use it, so a diagram's boxes are the table's rows."""
    levels = len(around) + 1  # the layer's own name is one level more than its scope's
    cut = levels if depth is None else max(depth, 1)  # depth 0 reads as 1: the top-level names
    if train_only:
        # a training-only part of a deployed scope gets a row of its own, so that no row
        # mixes deploy and training numbers. Scopes inside a training-only one are training-only
        # too, so the first is found by bisection (around[i] is at level i + 1), not by a scan
        # per layer (layers x depth)
        cut = max(cut, bisect.bisect_left(around, True, key=_train_only) + 1)
    if levels <= cut:
        return None
    return around[cut - 1] if cut >= 1 else around[-1]


def _train_only(scope: Scope) -> bool:
    return scope.train_only


def rollup_layer(layer: Layer, depth: Optional[int]) -> Optional[Scope]:
    """`rollup` for one layer of the IR."""
    return rollup(scopes_of(layer), layer.train_only, depth)


def _encode(value, newline: str, out: list[str]) -> None:
    """Append `value` as `json.dumps(value, indent=1)` writes it, `newline` being the line
    break and indent of the level it is at."""
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + " "
        sep = "{" + inner
        for key, item in value.items():
            out.append(sep)
            out.append(_string(key) if isinstance(key, str) else json.dumps({key: 0})[1:-4])
            out.append(": ")
            _encode(item, inner, out)
            sep = "," + inner
        out.append(newline + "}")
    elif isinstance(value, _Rows):
        value.encode(newline, out)
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + " "
        if all(type(v) is int for v in value):  # a shape: the common case, joined at once
            out.append("[" + inner + ("," + inner).join(map(int.__repr__, value)) + newline + "]")
            return
        sep = "[" + inner
        for item in value:
            out.append(sep)
            _encode(item, inner, out)
            sep = "," + inner
        out.append(newline + "]")
    elif isinstance(value, str):
        out.append(_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif type(value) is int:
        out.append(int.__repr__(value))
    else:  # floats and anything else: as json writes them
        out.append(json.dumps(value))


class _Rows:
    """Rows to be written as a JSON list of objects of `keys` (the value of `_pick` on each),
    without making those objects."""

    def __init__(self, rows: list, keys: tuple[str, ...]):
        self.rows, self.keys = rows, keys

    def encode(self, newline: str, out: list[str]) -> None:
        if not self.rows:
            out.append("[]")
            return
        inner = newline + " "
        field = inner + " "
        names = ["{" + field + _string(self.keys[0]) + ": "] + ["," + field + _string(k) + ": " for k in self.keys[1:]]
        get = operator.attrgetter(*self.keys)
        sep = "[" + inner
        for row in self.rows:
            out.append(sep)
            for name, value in zip(names, get(row)):
                out.append(name)
                if type(value) is int:
                    out.append(int.__repr__(value))
                elif type(value) is str:
                    out.append(_string(value))
                else:
                    _encode(value, field, out)
            out.append(inner + "}")
            sep = "," + inner
        out.append(newline + "]")


_string = json.encoder.encode_basestring_ascii  # json's own C function (ensure_ascii, the default)


def _pick(row, keys) -> dict:
    return {k: getattr(row, k) for k in keys}


def _kib(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    k = n / 1024
    return f"{k:,.0f} KiB" if k >= 100 or k == int(k) else f"{k:,.1f} KiB"
