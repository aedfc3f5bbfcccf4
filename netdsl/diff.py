"""Comparing two nets' architectures: `diff(a, b)` pairs the layers of two checked nets and
says which were added, removed, renamed or changed, per scope, with the deltas of shape,
parameters and MACs (`netdsl diff A.net B.net`).

Two files written by different people name their layers differently, so names alone pair
little. Layers are paired in steps, each linear or n log n in the number of layers:

1. units: the main body, and each head (heads paired by their output's name, then in order),
   so that a head written at another place of the file is still compared with its match;
2. within a unit, layers of the same name, op and shape, where they keep the order of both
   files (the longest increasing run of such pairs: a name reused for another layer does
   not pull the alignment across);
3. between those anchors, an alignment along the topological order, difflib-style, first on
   the whole signature (op, attributes, shape: an equal layer, renamed or not), then on
   (op, shape), then on the op alone (a changed layer), then on the shape alone (a layer
   replaced by another op); what is left pairs by name, and a gap left with one layer on
   each side is one layer whose op changed. A gap is aligned by difflib when it is small;
   above that by its signatures that occur once on each side (patience diff), and a large
   gap with none in short slices, so the work stays near linear on any net (16,000 layers
   renamed and changed: 0.7 s).

A pair's inputs are compared through the pairing, skipping layers added or removed in
between (a BatchNorm inserted after a conv does not make the ReLU after it "changed").
"""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Sequence

from .files import shown
from .ir import Layer, Net, without_gc
from .ops import fmt_shape, fmt_value

# gaps whose two sides' product is at most this are aligned by difflib (its work grows with
# the product); larger ones by their unique signatures first
SMALL_GAP = 40_000
# the slices a large gap without unique signatures is cut into: difflib's work on a run of
# alike layers grows as the cube of a slice's length, so they are short
BAND = 48
MAX_DEPTH = 64  # patience steps within patience steps, far below Python's recursion limit
STATUSES = ("equal", "renamed", "changed", "added", "removed")


@dataclass(frozen=True)
class Change:
    """One attribute (or the op, the shape, the inputs) that differs: as the language writes
    the two values."""

    what: str
    a: str
    b: str

    def __str__(self) -> str:
        return f"{self.a} -> {self.b}" if self.what == "op" else f"{self.what} {self.a} -> {self.b}"


@dataclass(frozen=True)
class LayerDiff:
    """A layer of A paired with a layer of B, or one of them alone (`added`: only in B,
    `removed`: only in A). `status` is one of `STATUSES`."""

    status: str
    a: Optional[Layer]
    b: Optional[Layer]
    changes: tuple[Change, ...] = ()

    @property
    def params(self) -> int:
        """B's parameters minus A's."""
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs(self) -> int:
        return (self.b.macs if self.b else 0) - (self.a.macs if self.a else 0)


@dataclass
class ScopeDiff:
    """The layers of one scope: an outermost scope of A (`a`, its dotted name; "" for the
    top level, None for a scope only B has) with the scope of B most of its layers paired
    with (`b`). `layers` holds every layer, equal ones too, in the alignment's order."""

    a: Optional[str]
    b: Optional[str]
    block_a: Optional[str] = None
    block_b: Optional[str] = None
    layers: list[LayerDiff] = field(default_factory=list)

    @property
    def differences(self) -> list[LayerDiff]:
        return [d for d in self.layers if d.status != "equal"]

    def local(self, d: LayerDiff) -> tuple[Optional[str], Optional[str]]:
        """The two names inside this scope: `branch3.conv2` of `inception3a.branch3.conv2`."""
        def strip(layer: Optional[Layer], scope: Optional[str]) -> Optional[str]:
            if layer is None:
                return None
            return layer.name[len(scope) + 1:] if scope and layer.name.startswith(scope + ".") else layer.name
        return strip(d.a, self.a), strip(d.b, self.b)

    def pattern(self) -> tuple:
        """What changed, without the numbers that depend on where the scope sits (shapes,
        parameters): scopes with equal patterns are shown together."""
        return (self.block_a, self.block_b,
                tuple((d.status, *self.local(d), _vague(d.changes),
                       d.b.describe() if d.status == "added" else d.a.describe() if d.status == "removed" else "")
                      for d in self.differences))


@dataclass(frozen=True)
class HeadDiff:
    """A head (an output but the main one) of A, of B, or of both: its names and whether it
    is training-only on each side (None where it is absent)."""

    a: Optional[str]
    b: Optional[str]
    train_a: Optional[bool]
    train_b: Optional[bool]

    @property
    def status(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        return "equal" if (self.a, self.train_a) == (self.b, self.train_b) else "changed"


class NetDiff:
    """The difference between two nets, A and B (`diff(a, b)`): `layers` (every layer of
    both, paired, in order), `scopes` (the same, per outermost scope), `heads`. `equal` is
    true when nothing differs but the files' text (comments, layout, the net's name)."""

    def __init__(self, a: Net, b: Net, layers: list[LayerDiff], scopes: list[ScopeDiff], heads: list[HeadDiff],
                 files: tuple[str, str] = ("a", "b")):
        self.a, self.b, self.layers, self.scopes, self.heads, self.files = a, b, layers, scopes, heads, files

    @property
    def equal(self) -> bool:
        return all(d.status == "equal" for d in self.layers) and all(h.status == "equal" for h in self.heads)

    def count(self, status: str) -> int:
        return sum(d.status == status for d in self.layers)

    def totals(self) -> dict[str, dict[str, tuple[int, int]]]:
        """{"params" | "macs": {"deploy" | "train": (A's, B's)}}."""
        out: dict[str, dict[str, tuple[int, int]]] = {"params": {}, "macs": {}}
        for key, train in (("deploy", False), ("train", True)):
            ta, tb = self.a.totals(train), self.b.totals(train)
            out["params"][key] = (ta.params, tb.params)
            out["macs"][key] = (ta.macs, tb.macs)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The difference as plain data (`netdsl diff --json`; the schema is in the README)."""
        totals = self.totals()

        def side(net: Net, file: str, i: int) -> dict[str, Any]:
            return {"file": file, "net": net.name, "layers": len(net) - 1,
                    "params": {k: v[i] for k, v in totals["params"].items()},
                    "macs": {k: v[i] for k, v in totals["macs"].items()}}

        def layer(d: LayerDiff) -> dict[str, Any]:
            a, b = d.a, d.b
            return {"status": d.status, "a": a and a.name, "b": b and b.name,
                    "op": [a and a.op_name, b and b.op_name],
                    "describe": [a and a.describe(), b and b.describe()],
                    "shape": [a and _shape(a), b and _shape(b)],
                    "changes": [{"what": c.what, "a": c.a, "b": c.b} for c in d.changes],
                    "params": d.params, "macs": d.macs}

        return {
            "a": side(self.a, self.files[0], 0), "b": side(self.b, self.files[1], 1), "equal": self.equal,
            "counts": {s: self.count(s) for s in STATUSES},
            "delta": {k: {m: v[1] - v[0] for m, v in per.items()} for k, per in totals.items()},
            "heads": [{"status": h.status, "a": h.a, "b": h.b, "train_only": [h.train_a, h.train_b]}
                      for h in self.heads],
            "scopes": [{"a": s.a, "b": s.b, "block": [s.block_a, s.block_b],
                        "params": sum(d.params for d in s.layers), "macs": sum(d.macs for d in s.layers),
                        "layers": [layer(d) for d in s.differences]}
                       for s in self.scopes if s.differences],
        }

    def text(self, colour: bool = False) -> str:
        """The difference for people: per scope, a line per difference (alike lines and
        alike scopes folded), then the heads and the totals; ANSI colours with `colour`."""
        return _Text(self, colour).render()

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in STATUSES[1:] if self.count(s))
        return f"<NetDiff {self.a.name} -> {self.b.name}: {counts or 'equal'}>"


@without_gc  # many small objects and no cycles: the collector's rescans would cost a third
def diff(a: Any, b: Any) -> NetDiff:
    """Compare two nets (each a `netdsl.Network` or a `netdsl.ir.Net`): B against A."""
    files = (getattr(a, "filename", a.name), getattr(b, "filename", b.name))
    net_a, net_b = getattr(a, "ir", a), getattr(b, "ir", b)
    units_a, heads_a = _units(net_a)
    units_b, heads_b = _units(net_b)
    heads = _pair_heads(heads_a, heads_b)
    pairs: list[tuple[Optional[Layer], Optional[Layer]]] = _align(units_a[None], units_b[None])
    for h in heads:
        pairs += _align(units_a.get(h.a, []) if h.a is not None else [],
                        units_b.get(h.b, []) if h.b is not None else [])
    layers = _classify(pairs)
    return NetDiff(net_a, net_b, layers, _scopes(layers, net_a, net_b), heads, files)


# --- units and heads ----------------------------------------------------------------------

def _units(net: Net) -> tuple[dict[Optional[str], list[Layer]], list[tuple[str, bool]]]:
    """The layers of the main body (key None) and of each head (key: its output's name),
    each in topological order; and the heads (name, training-only) in order."""
    heads = [(o.name, o.train_only) for o in net.outputs[1:]]
    names = {name for name, _ in heads}
    units: dict[Optional[str], list[Layer]] = {None: []}
    units.update((name, []) for name in names)
    if not names:  # most nets: no name to look up
        units[None] = list(net)
        return units, heads
    for layer in net:
        units[_head_of(layer.name, names)].append(layer)
    return units, heads


def _head_of(name: str, heads: set[str]) -> Optional[str]:
    """The innermost head whose name is `name` or a prefix of it."""
    while True:
        if name in heads:
            return name
        cut = name.rfind(".")
        if cut < 0:
            return None
        name = name[:cut]


def _pair_heads(a: list[tuple[str, bool]], b: list[tuple[str, bool]]) -> list[HeadDiff]:
    """Heads paired by name, then the rest in order."""
    train_b = dict(b)
    names_a = {name for name, _ in a}
    left_b = [h for h in b if h[0] not in names_a]
    out = []
    for name, train in a:
        if name in train_b:
            out.append(HeadDiff(name, name, train, train_b[name]))
        elif left_b:
            other, t = left_b.pop(0)
            out.append(HeadDiff(name, other, train, t))
        else:
            out.append(HeadDiff(name, None, train, None))
    return out + [HeadDiff(None, name, None, train) for name, train in left_b]


# --- alignment ----------------------------------------------------------------------------

Pair = tuple[Optional[Layer], Optional[Layer]]


def _align(a: list[Layer], b: list[Layer]) -> list[Pair]:
    """Every layer of `a` and `b` once, paired or alone, in an order that keeps both orders.
    A name anchors a pair only with the same op and shape: names made up by netdsl (`conv2`,
    the second conv of its scope) move on to the next layer when one is inserted before it;
    a name that pairs layers of other ops or shapes pairs them among what is left at the end."""
    where = {layer.name: j for j, layer in enumerate(b)}
    anchors = _increasing([(i, where[x.name]) for i, x in enumerate(a)
                           if x.name in where and _signature(1)(x) == _signature(1)(b[where[x.name]])])
    out: list[Pair] = []
    i0 = j0 = 0
    for i, j in anchors + [(len(a), len(b))]:
        out += _by_structure(a[i0:i], b[j0:j], 0)
        if i < len(a):
            out.append((a[i], b[j]))
        i0, j0 = i + 1, j + 1
    return out


def _signature(level: int) -> Callable[[Layer], Hashable]:
    if level == 0:
        return lambda x: (x.op_name, _frozen(x.attrs), x.shape)
    if level == 1:
        return lambda x: (x.op_name, x.shape)
    if level == 2:
        return lambda x: x.op_name
    return lambda x: x.shape  # another op in the same place: a replaced layer


LEVELS = 4


def _by_structure(a: list[Layer], b: list[Layer], level: int) -> list[Pair]:
    """Align a gap on the signature of `level`, and what is left between its matches on the
    next, coarser one."""
    if not a or not b:
        return [(x, None) for x in a] + [(None, y) for y in b]
    if level == LEVELS:
        return _leftovers(a, b)
    key = _signature(level)
    matches = _match([key(x) for x in a], [key(y) for y in b])
    out: list[Pair] = []
    i0 = j0 = 0
    for i, j in matches + [(len(a), len(b))]:
        out += _by_structure(a[i0:i], b[j0:j], level + 1)
        if i < len(a):
            out.append((a[i], b[j]))
        i0, j0 = i + 1, j + 1
    return out


def _leftovers(a: list[Layer], b: list[Layer]) -> list[Pair]:
    """What no signature paired: layers of the same name (in order), or a lone layer on each
    side (one whose op changed); the rest alone."""
    if len(a) == len(b) == 1:
        return [(a[0], b[0])]
    where = {layer.name: j for j, layer in enumerate(b)}
    named = _increasing([(i, where[x.name]) for i, x in enumerate(a) if x.name in where])
    out: list[Pair] = []
    i0 = j0 = 0
    for i, j in named + [(len(a), len(b))]:
        out += [(x, None) for x in a[i0:i]] + [(None, y) for y in b[j0:j]]
        if i < len(a):
            out.append((a[i], b[j]))
        i0, j0 = i + 1, j + 1
    return out


def _match(ka: Sequence[Hashable], kb: Sequence[Hashable], depth: int = 0) -> list[tuple[int, int]]:
    """Index pairs of equal keys, increasing in both: the common ends, then difflib on a small
    middle, or a patience step on a large one (keys unique on both sides as anchors, each gap
    between them matched again)."""
    n, m = len(ka), len(kb)
    start = 0
    while start < min(n, m) and ka[start] == kb[start]:
        start += 1
    end = 0
    while end < min(n, m) - start and ka[n - 1 - end] == kb[m - 1 - end]:
        end += 1
    head = [(k, k) for k in range(start)]
    tail = [(n - end + k, m - end + k) for k in range(end)]
    mid_a, mid_b = ka[start:n - end], kb[start:m - end]
    if not mid_a or not mid_b:
        return head + tail
    if len(mid_a) * len(mid_b) <= SMALL_GAP:
        blocks = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False).get_matching_blocks()
        middle = [(bl.a + k, bl.b + k) for bl in blocks for k in range(bl.size)]
    elif depth < MAX_DEPTH:
        middle = _patience(mid_a, mid_b, depth)
    else:  # anchors found one by one, each deeper: slices end it
        middle = _banded(mid_a, mid_b)
    return head + [(i + start, j + start) for i, j in middle] + tail


def _patience(ka: Sequence[Hashable], kb: Sequence[Hashable], depth: int) -> list[tuple[int, int]]:
    count_a: dict[Hashable, int] = {}
    for k in ka:
        count_a[k] = count_a.get(k, 0) + 1
    count_b: dict[Hashable, int] = {}
    for k in kb:
        count_b[k] = count_b.get(k, 0) + 1
    where = {k: j for j, k in enumerate(kb) if count_b[k] == 1}
    anchors = _increasing([(i, where[k]) for i, k in enumerate(ka) if count_a[k] == 1 and k in where])
    if not anchors:
        return _banded(ka, kb)
    out: list[tuple[int, int]] = []
    i0 = j0 = 0
    for i, j in anchors + [(len(ka), len(kb))]:
        out += [(i0 + p, j0 + q) for p, q in _match(ka[i0:i], kb[j0:j], depth + 1)]
        if i < len(ka):
            out.append((i, j))
        i0, j0 = i + 1, j + 1
    return out


def _banded(ka: Sequence[Hashable], kb: Sequence[Hashable]) -> list[tuple[int, int]]:
    """A large gap with no signature unique on both sides (a long run of alike layers): cut
    into slices at the same fractions of both sides, each aligned by difflib (linear work;
    it misses only matches that move further than a slice)."""
    n, m = len(ka), len(kb)
    slices = -(-max(n, m) // BAND)
    out: list[tuple[int, int]] = []
    for k in range(slices):
        i0, i1, j0, j1 = n * k // slices, n * (k + 1) // slices, m * k // slices, m * (k + 1) // slices
        blocks = difflib.SequenceMatcher(None, ka[i0:i1], kb[j0:j1], autojunk=False).get_matching_blocks()
        out += [(i0 + bl.a + t, j0 + bl.b + t) for bl in blocks for t in range(bl.size)]
    return out


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of `pairs` (increasing in their first item) increasing in the second
    too (patience sorting, n log n)."""
    tops: list[int] = []       # the smallest second item ending a run of each length
    ends: list[int] = []       # the index into pairs of that run's end
    before: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        at = bisect.bisect_left(tops, j)
        if at == len(tops):
            tops.append(j)
            ends.append(k)
        else:
            tops[at], ends[at] = j, k
        before[k] = ends[at - 1] if at else -1
    out = []
    k = ends[-1] if ends else -1
    while k >= 0:
        out.append(pairs[k])
        k = before[k]
    return out[::-1]


def _frozen(v: Any) -> Hashable:
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    return v


# --- what changed -------------------------------------------------------------------------

def _classify(pairs: list[Pair]) -> list[LayerDiff]:
    partner: dict[int, Layer] = {id(x): y for x, y in pairs if x is not None and y is not None}
    paired_b = {id(y) for x, y in pairs if x is not None and y is not None}
    # what each layer reads, seen through the pairing: a layer only one side has, with one
    # input, stands for that input (so inserting a layer does not change the next one's inputs)
    seen_a: dict[int, Any] = {}
    seen_b: dict[int, Any] = {}
    for x, y in pairs:
        if x is not None:
            seen_a[id(x)] = _seen(x, partner.get(id(x)), seen_a)
        if y is not None:
            seen_b[id(y)] = _seen(y, y if id(y) in paired_b else None, seen_b)
    out = []
    for x, y in pairs:
        if y is None:
            out.append(LayerDiff("removed", x, None))
        elif x is None:
            out.append(LayerDiff("added", None, y))
        else:
            changes = _changes(x, y)
            if [seen_a.get(id(i), i) for i in x.inputs] != [seen_b.get(id(i), i) for i in y.inputs]:
                changes += (Change("inputs", ", ".join(x.input_names), ", ".join(y.input_names)),)
            status = "changed" if changes else "equal" if x.name == y.name else "renamed"
            out.append(LayerDiff(status, x, y, changes))
    return out


def _seen(layer: Layer, partner: Optional[Layer], seen: dict[int, Any]) -> Any:
    if partner is not None:
        return partner
    if len(layer.inputs) == 1:
        return seen.get(id(layer.inputs[0]), layer.inputs[0])
    return layer  # unpaired, reading several: itself, which no layer of the other side equals


def _changes(a: Layer, b: Layer) -> tuple[Change, ...]:
    if a.op is None or b.op is None or a.attrs is None or b.attrs is None:
        return (Change("op", str(a.op_name), str(b.op_name)),) if a.op_name != b.op_name else ()
    out = []
    if a.op is not b.op:
        out.append(Change("op", a.describe(), b.describe()))
    else:
        for attr in a.op.attrs:
            va, vb = a.attrs.get(attr.name), b.attrs.get(attr.name)
            if va != vb:
                out.append(Change(attr.name, _value(va), _value(vb)))
    shape = Change("shape", fmt_shape(a.shape), fmt_shape(b.shape))
    if a.shape != b.shape and shape not in out:  # the input's own `shape` attribute says it already
        out.append(shape)
    if not out:  # the same layer on an input of another shape (a linear after a larger flatten)
        if a.params != b.params:
            out.append(Change("params", f"{a.params:,}", f"{b.params:,}"))
        elif a.macs != b.macs:
            out.append(Change("MACs", f"{a.macs:,}", f"{b.macs:,}"))
    return tuple(out)


def _value(v: Any) -> str:
    # a square window reads as one size, as `describe` writes it
    if isinstance(v, tuple) and len(v) >= 2 and len(set(v)) == 1:
        v = v[0]
    return fmt_value(v)


def _shape(layer: Layer) -> Optional[list[int]]:
    return None if layer.shape is None else list(layer.shape)


# --- scopes -------------------------------------------------------------------------------

def _top(layer: Layer) -> str:
    """The outermost scope a layer is in ("" for none)."""
    return "" if layer.scope is None else layer.scope.ancestors()[0].name


def _scopes(layers: list[LayerDiff], net_a: Net, net_b: Net) -> list[ScopeDiff]:
    """Each layer under its outermost scope of A, and each scope of B under the scope of A
    that most of its paired layers are paired with (a block only B has, such as a conv +
    BatchNorm block around a conv of A's top level, joins A's scope)."""
    votes: dict[tuple[str, str], int] = {}
    for d in layers:
        if d.a is not None and d.b is not None:
            key = (_top(d.a), _top(d.b))
            votes[key] = votes.get(key, 0) + 1
    of_a: dict[str, tuple[int, str]] = {}
    of_b: dict[str, tuple[int, str]] = {}
    for (sa, sb), n in votes.items():  # dicts keep the first of equal counts: the earlier pair
        if n > of_a.get(sa, (0, ""))[0]:
            of_a[sa] = (n, sb)
        if n > of_b.get(sb, (0, ""))[0]:
            of_b[sb] = (n, sa)
    sections: dict[tuple[str, Optional[str]], ScopeDiff] = {}
    for d in layers:
        if d.a is not None:
            sa = _top(d.a)
            key: tuple[str, Optional[str]] = ("a", sa)
            sb = of_a[sa][1] if sa in of_a else None
            if key not in sections:
                sections[key] = ScopeDiff(sa, sb)
        else:
            sb = _top(d.b)
            key = ("a", of_b[sb][1]) if sb in of_b else ("b", sb)
            if key not in sections:
                sections[key] = ScopeDiff(None, sb) if key[0] == "b" else ScopeDiff(key[1], sb)
        sections[key].layers.append(d)
    for s in sections.values():
        if s.b is None:  # every layer of A's scope removed: the layers B has there, if any, say where
            s.b = next((_top(d.b) for d in s.layers if d.b is not None), None)
        s.block_a = net_a.scopes[s.a].block if s.a else None
        s.block_b = net_b.scopes[s.b].block if s.b else None
    return list(sections.values())


# --- text ---------------------------------------------------------------------------------

MARKS = {"added": "+", "removed": "-", "changed": "~", "renamed": "=", "equal": " "}
COLOURS = {"+": "32", "-": "31", "~": "33", "=": "36", "h": "1"}
WIDEST = 60  # characters of a column, past which a cell does not widen it
FOLDED_NAMES = 30  # characters of the names a folded line shows


class _Text:
    def __init__(self, d: NetDiff, colour: bool):
        self.d, self.colour = d, colour

    def paint(self, code: str, text: str) -> str:
        return f"\x1b[{COLOURS[code]}m{text}\x1b[0m" if self.colour and text else text

    def render(self) -> str:
        d = self.d
        n_a, n_b = len(d.a) - 1, len(d.b) - 1
        names = d.a.name if d.a.name == d.b.name else f"{d.a.name} -> {d.b.name}"
        lines = [self.paint("h", f"--- {shown(d.files[0])}") + f"  ({n_a} layers)",  # a name's escapes shown
                 self.paint("h", f"+++ {shown(d.files[1])}") + f"  ({n_b} layers)"]
        if d.equal:
            lines.append(f"{names}: no difference")
            return "\n".join(lines) + "\n"
        counts = ", ".join(f"{d.count(s)} {s}" for s in ("changed", "added", "removed", "renamed") if d.count(s))
        lines.append(f"{names}: {counts or 'the heads differ'}")
        for group in self._groups():
            lines.append("")
            lines += self._section(group)
        heads = [h for h in d.heads if h.status != "equal"]
        if heads:
            lines.append("")
            lines.append(self.paint("h", "heads"))
            for h in heads:
                mark = MARKS[h.status]
                if h.status == "changed":
                    name = h.a if h.a == h.b else f"{h.a} -> {h.b}"
                    what = f"{_role(h.train_a)} -> {_role(h.train_b)}" if h.train_a != h.train_b else "renamed"
                    lines.append(f"  {self.paint(mark, mark)} {name}  {what}")
                else:
                    name, train = (h.b, h.train_b) if h.status == "added" else (h.a, h.train_a)
                    lines.append(f"  {self.paint(mark, mark)} {name}  {_role(train)} head")
        lines.append("")
        lines += self._totals()
        return "\n".join(lines) + "\n"

    def _groups(self) -> list[list[ScopeDiff]]:
        """Scopes with differences; alike block instances (equal patterns) together."""
        groups: dict[Any, list[ScopeDiff]] = {}
        for s in self.d.scopes:
            if not s.differences:
                continue
            key = s.pattern() if s.block_a or s.block_b else id(s)
            groups.setdefault(key, []).append(s)
        return list(groups.values())

    def _section(self, group: list[ScopeDiff]) -> list[str]:
        first = group[0]
        params = sum(d.params for s in group for d in s.layers)
        macs = sum(d.macs for s in group for d in s.layers)
        if len(group) == 1:
            title = _scope_title(first)
        else:
            titles = [_scope_title(s) for s in group]
            names = ", ".join(titles) if len(titles) <= 3 else f"{titles[0]}, {titles[1]}, … {titles[-1]}"
            title = f"{names} ({len(group)} {first.block_a or first.block_b} blocks alike)"
        title += f": {_delta(params, 'params')}, {_delta(macs, 'MACs')}"
        lines = [self.paint("h", title)]
        rows = self._rows(first, one=len(group) == 1)
        # a long row's text runs past the column rather than push every row's numbers right
        widths = [max((len(r[k]) for r in rows if len(r[k]) <= WIDEST), default=0) for k in range(3)]
        for mark, name, what, numbers in rows:
            cells = [name.ljust(widths[1]), what.ljust(widths[2]) if numbers else what, numbers]
            lines.append(("  " + self.paint(mark, mark) + " " + "  ".join(cells)).rstrip())
        return lines

    def _rows(self, s: ScopeDiff, one: bool) -> list[tuple[str, str, str, str]]:
        """(mark, names, what, numbers) for each difference, alike ones folded into one row;
        shapes and parameters only where the rows stand for `one` scope and one layer."""
        folded: dict[Any, list[LayerDiff]] = {}
        for d in s.differences:
            folded.setdefault(_fold_key(d), []).append(d)
        rows = []
        for ds in folded.values():
            d = ds[0]
            if len(ds) == 1:
                name = _pair_name(*s.local(d))
            else:  # one side's names (B's for added layers), as many as fit
                names = [s.local(x)[1] if x.status == "added" else s.local(x)[0] for x in ds]
                name = names[0]
                for more in names[1:]:
                    if len(name) + len(more) > FOLDED_NAMES:
                        name += ", …"
                        break
                    name += ", " + more
                name += f" (×{len(ds)})"
            if d.status in ("added", "removed"):
                layer = d.b if d.status == "added" else d.a
                what = layer.describe() + (f"  {fmt_shape(layer.shape)}" if one and len(ds) == 1 else "")
            elif d.status == "renamed":
                what = "renamed"
            else:
                shown = d.changes if one and len(ds) == 1 else _vague(d.changes)
                prefix = "" if d.changes[0].what == "op" else f"{d.a.op_name}: "
                what = prefix + ", ".join(map(str, shown))
            p = sum(x.params for x in ds)
            rows.append((MARKS[d.status], name, what, _delta(p, "params") if one and p else ""))
        return rows

    def _totals(self) -> list[str]:
        t = self.d.totals()
        lines = []
        for what, label in (("params", "params"), ("macs", "MACs")):
            (da, db), (ta, tb) = t[what]["deploy"], t[what]["train"]
            line = f"{label + ':':8} {da:,} -> {db:,} ({_signed(db - da)})"
            if (ta, tb) != (da, db):
                line += f" deploy; {ta:,} -> {tb:,} ({_signed(tb - ta)}) with training heads"
            lines.append(line)
        return lines


def _fold_key(d: LayerDiff) -> Any:
    if d.status == "renamed":
        return ("renamed",)
    if d.status in ("added", "removed"):
        layer = d.b if d.status == "added" else d.a
        return (d.status, layer.describe())
    return (d.status, d.a.op_name, _vague(d.changes))


def _vague(changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """Changes as rows of several layers or scopes share them: that a shape (or what follows
    from where the layer sits) changed, not from what to what."""
    return tuple(dict.fromkeys(_CHANGED if c.what in _SITED else c for c in changes))


_SITED = {"shape", "params", "MACs", "inputs"}


class _Changed(Change):
    def __str__(self) -> str:
        return "other shapes"


_CHANGED = _Changed("shape", "", "")


def _pair_name(a: Optional[str], b: Optional[str]) -> str:
    if a is None or b is None or a == b:
        return a or b or ""
    return f"{a} -> {b}"


def _scope_title(s: ScopeDiff) -> str:
    if s.a == "" and s.b in ("", None):
        return "top level"
    if s.a is None:
        return f"{s.b} (only in B)"
    if s.a == "":
        return f"top level -> {s.b}"
    return s.a if s.b in (s.a, None, "") else f"{s.a} -> {s.b}"


def _role(train: Optional[bool]) -> str:
    return "train" if train else "deploy"


def _signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else f"{n:,}" if n < 0 else "±0"


def _delta(n: int, what: str) -> str:
    return f"{_signed(n)} {what}"
