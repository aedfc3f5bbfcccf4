"""Diagrams: a net's layer graph and scopes as a Graphviz picture for a paper or a notebook.

One box per row of `netdsl summary --depth N` (the same rule, `summary.rollup`): a layer shows
its name, its op with the key attributes (`conv 64 7×7/2`) and its parameter count; a scope
rolled up into one box (a block instance, a labelled repeat) shows its name, its title, its
output shape and its parameters. Every edge is labelled with the shape of the tensor it carries.
Scopes that are drawn open become clusters: a labelled frame per block instance, repeat, head
or group; a join's branches sit side by side in frames of their own, left unframed.

Readability choices, stated once:
- an activation or dropout that only follows one layer is folded into that layer's box
  (`conv 64 7×7/2 + relu`), unless `fold_activations=False`;
- with `fold_repeats=True`, a run of identical boxes in a chain (a `repeat`'s passes, the convs
  of a VGG stage, identical block instances) is drawn once, marked `× n`;
- training-only layers and heads are dashed; a layer that failed its check is red, with the
  diagnostic in its box, and the layers after it, which could not be checked, are grey.

The DOT text is deterministic: box ids are layer or scope names, in the graph's order.
Graphviz's `dot` is needed only to turn DOT into SVG, PNG or PDF (`save`, `svg`).
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import graphviz

from .diagnostics import Diagnostic
from .ir import Layer, Net, Scope, without_gc
from .summary import rollup_layer

FONT = "Helvetica"

# Fill and border of what is not an op: an op's own colours come with its kind in the registry
# (netdsl/ops/spec.py), the same in every net.
PALETTE: dict[str, tuple[str, str]] = {
    "scope": ("#d8efee", "#2f7f7a"),
    "error": ("#fde2e1", "#cc2222"),
    "unchecked": ("#ffffff", "#bbbbbb"),
}
BROKEN = ("#f4f4f4", "#9a9a9a")  # a layer whose op is unknown (drawn red or grey: failed, or after one)

CLUSTER_COLOURS = {  # (fill, border) of an open scope's frame
    "block": ("#f5f8fc", "#9fb3cc"),
    "repeat": ("#f7f7f2", "#b5b59a"),
    "pass": ("#fbfbf8", "#cfcfbd"),
    "head": ("#fbf6fb", "#c2a3c2"),
    "group": ("#f7f7f7", "#aaaaaa"),
    "join": ("#fdf8f2", "#d9b38c"),
}

MARK_STYLES = {  # how a join drawn as a symbol (the registry's `mark`) looks
    "circle": {"shape": "circle", "fontsize": "14", "width": "0.3", "height": "0.3", "fixedsize": "true",
               "margin": "0.04,0.02", "style": "filled"},
    "ellipse": {"shape": "ellipse", "fontsize": "9", "height": "0.3", "margin": "0.04,0.02", "style": "filled"},
}


def fmt_count(n: int) -> str:
    """A count in three significant figures: 156, 9.47K, 164K, 7.00M."""
    if n < 1000:
        return str(n)
    for unit, scale in (("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        v = n / scale
        if round(v) < 1000 or unit == "T":
            return f"{v:.2f}{unit}" if v < 9.995 else f"{v:.1f}{unit}" if v < 99.95 else f"{v:.0f}{unit}"
    raise AssertionError("unreachable")


def fmt_dims(shape: Optional[Sequence[int]]) -> str:
    """`64×112×112`; `?` where inference stopped."""
    return "?" if shape is None else "×".join(map(str, shape))


# --- what is drawn -----------------------------------------------------------------------

@dataclass
class _Box:
    """One node of the diagram: a layer (with the activations folded into it), a scope rolled
    up into one box, or a run of identical ones (`count` > 1)."""

    id: str
    members: list[str]                 # the layers it stands for, in order
    frame: str                         # the path of the open scope it is drawn in ("" at the top)
    scope: Optional[str] = None        # the rolled-up scope, if it is one
    count: int = 1
    heads: list[str] = field(default_factory=list)  # the ids of the boxes folded into it


def diagram(net, *, depth: Optional[int] = 1, rankdir: str = "TB", fold_activations: bool = True,
            fold_repeats: bool = False, max_nodes: Optional[int] = None, **figure) -> graphviz.Digraph:
    """The diagram of a checked `Network` as a `graphviz.Digraph` (`.source` is the DOT text).
    `depth` as in `netdsl summary --depth` (None: every layer); `rankdir` "TB" or "LR";
    `max_nodes`: refuse (`DiagramTooLarge`) a diagram of more boxes, before writing any DOT;
    `columns` and `legend` as `to_digraph`."""
    return to_digraph(net.ir, source=net.source, depth=depth, rankdir=rankdir, fold_activations=fold_activations,
                      fold_repeats=fold_repeats, max_nodes=max_nodes, **figure)


def failure_diagram(error, **options) -> Optional[graphviz.Digraph]:
    """The diagram of a net that failed its check, drawn up to the failure: `error` is the
    `NetDSLError`; None when nothing was built (a syntax error, no net). Options as `diagram`."""
    partial = getattr(error, "partial", None)
    if partial is None:
        return None
    return to_digraph(partial, error.diagnostics, error.source, **options)


@without_gc
def to_digraph(net: Net, diagnostics: Sequence[Diagnostic] = (), source: str = "", *, depth: Optional[int] = 1,
               rankdir: str = "TB", fold_activations: bool = True, fold_repeats: bool = False,
               max_nodes: Optional[int] = None, columns: int = 1, legend: bool = False) -> graphviz.Digraph:
    """Lay out the diagram of an IR net as DOT; `diagnostics` (with the `source` text they
    point into) mark where a failing net breaks. `columns` > 1 wraps the main chain into that
    many columns side by side (for a page: see `figure`); `legend` adds a key of the colours
    the diagram uses. With `max_nodes`, a diagram of more boxes (or
    more than `EDGES_PER_NODE` times as many edges) is refused once its boxes are known, before
    the DOT is written, which for tens of thousands of boxes takes longer than any check."""
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' or 'LR', got {rankdir!r}")
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    builder = _Builder(net, diagnostics, source, depth, rankdir, fold_activations, fold_repeats,
                       columns=columns, legend=legend)
    if max_nodes is not None:
        nodes, edges = builder.size()
        if nodes > max_nodes or edges > max_nodes * EDGES_PER_NODE:
            raise DiagramTooLarge(nodes, edges, max_nodes)
        # frames (clusters) cost dot as much as boxes, nested ones more: 100,000 layers 97
        # blocks deep, expanded, are 99 boxes in 9,603 frames (7 s, past the budget)
        frames = builder.frames()
        if frames > max_nodes:
            raise DiagramTooLarge(nodes, edges, max_nodes, frames)
    return builder.build()


class _Builder:
    def __init__(self, net: Net, diagnostics: Sequence[Diagnostic], source: str, depth: Optional[int],
                 rankdir: str, fold_activations: bool, fold_repeats: bool, *, columns: int = 1,
                 legend: bool = False):
        self.net, self.diagnostics, self.source = net, diagnostics, source
        self.columns, self.legend = columns, legend
        self.depth, self.rankdir = depth, rankdir
        self.nodes: Mapping[str, Layer] = net.layers
        self.scopes: Mapping[str, Scope] = net.scopes
        self.failed, self.unchecked = self._failures()
        self.messages = self._messages()
        self.boxes = self._boxes(fold_activations)
        if fold_repeats:
            self._fold_runs()
        self.box_of = {m: b for b in self.boxes.values() for m in b.members}
        self.spine = self._spine()
        self.main_line = self._main_line()
        self.segment = self._segments() if columns > 1 else {}
        self._block_titles: Optional[dict[str, list[str]]] = None

    def size(self) -> tuple[int, int]:
        """The boxes and edges the DOT will have (outputs' arrows included), before it is written."""
        box_of = self.box_of
        pairs = {(box_of[s.name].id, box_of[t.name].id) for s, t, _ in self.net.edges()
                 if box_of[s.name] is not box_of[t.name]}
        ends = sum(1 for out in self.net.outputs if out.layer.name in box_of)
        return len(self.boxes) + ends, len(pairs) + ends

    def frames(self) -> int:
        """The frames (clusters) the DOT will have: the open scopes that hold a box."""
        seen: set[str] = set()
        for box in self.boxes.values():
            path = box.frame
            while path and path not in seen:
                seen.add(path)
                scope = self.scopes.get(path)
                path = _path(scope.parent) if scope is not None else ""
        return len(seen)

    # -- failures -----------------------------------------------------------------------

    def _failures(self) -> tuple[set[str], set[str]]:
        """Layers that failed (could not be made, or their shape rule refused their inputs),
        and the layers after them, which could not be checked."""
        failed, unchecked = set(), set()
        for name, layer in self.nodes.items():
            if any(i.name in failed or i.name in unchecked for i in layer.inputs):
                unchecked.add(name)
            elif not layer.ok:
                failed.add(name)
        return failed, unchecked

    def _messages(self) -> dict[str, list[Diagnostic]]:
        """The diagnostics about each failed layer: those inside its span, given to the innermost
        such layer; the rest (about names, parameters, the file) go in the diagram's title."""
        out: dict[str, list[Diagnostic]] = {}
        self.loose: list[Diagnostic] = []
        for diag in self.diagnostics:
            holders = [n for n in self.failed if _contains(self.nodes[n].span, diag.span)]
            if not holders:
                self.loose.append(diag)
                continue
            tightest = min(_extent(self.nodes[n].span) for n in holders)
            for n in holders:
                if _extent(self.nodes[n].span) == tightest:
                    out.setdefault(n, []).append(diag)
        return out

    # -- boxes --------------------------------------------------------------------------

    def _boxes(self, fold_activations: bool) -> dict[str, _Box]:
        boxes: dict[str, _Box] = {}
        box_of: dict[str, _Box] = {}
        for name, layer in self.nodes.items():
            scope = None if layer.is_source else rollup_layer(layer, self.depth)
            if scope is not None or name in boxes:  # rolled up (a labelled join is named as its scope)
                scope = scope or self.scopes[name]
                box = boxes.get(scope.name)
                if box is None:
                    box = boxes[scope.name] = _Box(scope.name, [], _path(scope.parent), scope=scope.name)
                box.members.append(name)
                box_of[name] = box
                continue
            fork = self._fork_of(layer, boxes)
            if fork is not None:  # the parts of a split's input: one mark at the fork
                fork.members.append(name)
                box_of[name] = fork
                continue
            if fold_activations and self._folds(name, box_of):
                box = box_of[layer.inputs[0].name]
                box.members.append(name)
                box_of[name] = box
                continue
            box = boxes[name] = _Box(name, [name], _path(layer.scope))
            box_of[name] = box
        return boxes

    def _fork_of(self, layer: Layer, boxes: Mapping[str, _Box]) -> Optional[_Box]:
        """The box made last, if `layer` is another part of the same fork: the layers a forking
        join (`split`) puts before its branches have an op drawn as a mark, one input and the
        join's span, and come one after the other."""
        if layer.op is None or layer.op.mark is None or layer.op.join or not boxes:
            return None
        box = boxes[next(reversed(boxes))]
        lead = self.nodes[box.members[0]]
        same = box.scope is None and lead.op is layer.op and lead.span == layer.span and lead.scope is layer.scope
        return box if same and lead.inputs == layer.inputs else None

    def _folds(self, name: str, box_of: Mapping[str, _Box]) -> bool:
        """Whether an activation or dropout joins the box of the one layer it follows."""
        layer = self.nodes[name]
        if layer.op is None or not layer.op.kind.folds or len(layer.inputs) != 1 or name in self.failed:
            return False
        source = layer.inputs[0]
        src = source.name
        box = box_of[src]
        return (box.scope is None and box.members[-1] == src and source.users == [layer]
                and source.scope is layer.scope and not source.is_source
                and source.train_only == layer.train_only
                and src not in self.failed and src not in self.unchecked)

    def _signature(self, box: _Box):
        """What makes two boxes alike: the same ops and attributes, or the same block with the
        same arguments (a repeat's passes are alike by construction)."""
        if box.scope is None:
            return tuple((self.nodes[m].op_name, repr(self.nodes[m].attrs)) for m in box.members)
        scope = self.scopes.get(box.scope)
        if scope is None or scope.kind not in ("block", "pass"):
            return None
        return ("pass", _path(scope.parent)) if scope.kind == "pass" else ("block", scope.title)

    def _fold_runs(self) -> None:
        """Merge each run of alike boxes in a chain into its first box, `count` times."""
        order = list(self.boxes.values())
        box_of = {m: b for b in order for m in b.members}
        signature = {b.id: self._signature(b) for b in order}
        kept: dict[str, _Box] = {}
        prev: Optional[_Box] = None
        for box in order:
            if prev is not None and signature[box.id] is not None and signature[box.id] == signature[prev.id] \
                    and self._chained(prev, box, box_of):
                prev.count += 1
                prev.members += box.members
                prev.heads.append(box.id)
                for m in box.members:
                    box_of[m] = prev
                continue
            kept[box.id] = box
            prev = box
        self.boxes = kept

    def _chained(self, prev: _Box, box: _Box, box_of: Mapping[str, _Box]) -> bool:
        """Whether `box` reads `prev` alone and is all that reads it, in the same frame, all checked."""
        if prev.frame != box.frame or any(m in self.failed or m in self.unchecked
                                          for m in prev.members + box.members):
            return False
        inputs = {box_of[i.name].id for m in box.members for i in self.nodes[m].inputs if box_of[i.name] is not box}
        readers = {box_of[c.name].id for m in prev.members for c in self.nodes[m].users if box_of[c.name] is not prev}
        return inputs == {prev.id} and readers == {box.id}

    def _spine(self) -> set[str]:
        """The top-level boxes on the way from the input to the main output, along first inputs."""
        spine: set[str] = set()
        layer = self.net.outputs[0].layer if self.net.outputs else None
        while layer is not None:
            box = self.box_of[layer.name]
            if not box.frame:
                spine.add(box.id)
            layer = layer.inputs[0] if layer.inputs else None
        return spine

    # -- DOT ----------------------------------------------------------------------------

    def build(self) -> graphviz.Digraph:
        g = graphviz.Digraph(self.net.name, graph_attr={
            "rankdir": self.rankdir, "fontname": FONT, "fontsize": "14", "labelloc": "t", "labeljust": "l",
            "nodesep": "0.25", "ranksep": "0.3", "newrank": "true", "bgcolor": "white",
            "label": self._title(), **dict(pad="0.2"),  # a keyword: a quoted "pad" would name the op
        }, node_attr={
            "fontname": FONT, "fontsize": "11", "shape": "box", "style": "rounded,filled", "margin": "0.12,0.05",
            "penwidth": "1.2",
        }, edge_attr={
            "fontname": FONT, "fontsize": "9", "fontcolor": "#555555", "color": "#666666", "arrowsize": "0.6",
        })
        self._frames(g)
        self._align(g)
        self._edges(g)
        if self.segment:
            self._wrap(g)
        if self.legend:
            self._legend(g)
        return g

    def _align(self, g: graphviz.Digraph) -> None:
        """Branches side by side: the first boxes of a join's branches share a rank."""
        firsts: dict[str, list[str]] = {}  # the box the branches read -> each branch's first box
        seen: set[str] = set()
        for box in self.boxes.values():
            # the scopes this box is in: its frame and the frames around it, and itself if rolled up
            around = self.scopes[box.scope if box.scope is not None else box.frame].ancestors() \
                if (box.scope or box.frame) else []
            for scope in reversed(around):
                if scope.kind != "branch" or scope.name in seen:
                    continue
                seen.add(scope.name)  # the first box of this branch
                source = next((self.box_of[i.name].id for m in box.members for i in self.nodes[m].inputs
                               if self.box_of[i.name] is not box), None)
                if source is not None and box.id not in firsts.setdefault(source, []):
                    firsts[source].append(box.id)
        for ids in firsts.values():
            if len(ids) > 1:
                with g.subgraph() as same:
                    same.attr(rank="same")
                    for box_id in ids:
                        same.node(box_id)

    def _title(self) -> str:
        net = self.net
        total, deploy = net.totals(train=True).params, net.totals(train=False).params
        parts = [f"<b>{_escape(net.name)}</b>"]
        if net.input is not None:
            parts.append(f"input {fmt_dims(net.input_shape)}")
        parts.append(f"{len(net) - (net.input is not None)} layers")
        parts.append(f"{fmt_count(total)} params" + (f" ({fmt_count(deploy)} deploy)" if deploy != total else ""))
        lines = ["  ·  ".join(parts)]
        if self.diagnostics:
            n = len(self.diagnostics)
            lines.append(f'<font color="{PALETTE["error"][1]}">{n} error{"s" if n != 1 else ""}: '
                         "drawn up to the failure</font>")
            for diag in self.loose:
                lines.append(f'<font color="{PALETTE["error"][1]}" point-size="11">'
                             f'{_escape(_one_line(diag), 4 * MAX_LABEL)}</font>')
        return "<" + '<br align="left"/>'.join(lines) + '<br align="left"/>>'

    def _frames(self, g: graphviz.Digraph) -> None:
        """Boxes in nested clusters, one per open scope, in the graph's order."""
        tree: dict[str, list] = {"": []}  # frame -> its items: ("box", _Box) or ("frame", path)
        for box in self.boxes.values():
            path = box.frame
            item = ("box", box)
            while True:
                if path in tree:
                    tree[path].append(item)
                    break
                tree[path] = []
                tree[path].append(item)
                item, path = ("frame", path), _path(self.scopes[path].parent)
                # a frame is listed in its parent once, where its first box comes
        self._emit(g, "", tree)

    def _emit(self, g: graphviz.Digraph, path: str, tree: Mapping[str, list]) -> None:
        for kind, item in tree[path]:
            if kind == "box":
                self._box(g, item)
                continue
            scope = self.scopes.get(item)
            with g.subgraph(name="cluster_" + item) as c:
                style = self._frame_style(item, scope)
                c.attr(**style)
                self._emit(c, item, tree)
                self._spacer(c, item, style, tree)

    def _spacer(self, c: graphviz.Digraph, path: str, style: Mapping[str, str], tree: Mapping[str, list]) -> None:
        """An invisible box as wide as the frame's title, left of the frame's first box on its
        rank: the title sits above it, so the edges into the frame, which come down to the
        boxes right of it, never cross the title (dot draws edges through cluster labels)."""
        if not style.get("label") or style.get("style") == "invis":
            return
        entry = self._first_box(path, tree)
        if entry is None:
            return
        node = SPACER + path
        c.node(node, style["label"], shape="plaintext", style="invis", fontsize=style.get("fontsize", "11"),
               height="0.1")
        with c.subgraph() as same:
            same.attr(rank="same")
            same.edge(node, entry, style="invis")  # a flat edge: the spacer is left of the box

    def _first_box(self, path: str, tree: Mapping[str, list]) -> Optional[str]:
        """The first box drawn in a frame, in the graph's order (inner frames included)."""
        for kind, item in tree[path]:
            inner = item.id if kind == "box" else self._first_box(item, tree)
            if inner is not None:
                return inner
        return None

    def _frame_style(self, path: str, scope: Optional[Scope]) -> dict[str, str]:
        if scope is None:
            return {"label": path, "style": "rounded"}
        local = scope.local
        if scope.kind == "branch":
            return {"label": "", "style": "invis", "margin": "4"}
        fill, border = CLUSTER_COLOURS.get(scope.kind, CLUSTER_COLOURS["group"])
        title = {
            "block": f"<b>{_escape(local)}</b>  {_escape(scope.title)}",
            "repeat": f"<b>{_escape(local)}</b>  {_escape(scope.title.replace('repeat ', '× '))}",
            "pass": f"pass {_escape(local)}",
            "head": f"<b>{_escape(local)}</b>  {_escape(scope.title)}",
            "join": f"<b>{_escape(local)}</b>  {_escape(scope.title)}",
        }.get(scope.kind, f"<b>{_escape(local)}</b>")
        style = "rounded,filled" + (",dashed" if scope.train_only else "")
        return {"label": f"<{title}>", "style": style, "fillcolor": fill, "color": border, "fontsize": "11",
                "fontcolor": "#333333", "labeljust": "l", "margin": "10"}

    def _box(self, g: graphviz.Digraph, box: _Box) -> None:
        nodes = self.nodes
        failed = [m for m in box.members if m in self.failed]
        if box.scope is not None:
            colours, lines, attrs = self._scope_label(box, failed)
        else:
            colours, lines, attrs = self._layer_label(box, failed)
        if failed:
            colours = PALETTE["error"]
            shown = set()  # the parts of a fork share their diagnostics
            for m in failed:
                for diag in self.messages.get(m, ()):
                    if id(diag) in shown:
                        continue
                    shown.add(id(diag))
                    text = "\n".join(textwrap.wrap(_clip(f"{diag.code}: {diag.message}", 4 * MAX_LABEL), 44))
                    lines.append(f'<font color="{PALETTE["error"][1]}" point-size="10">'
                                 + _escape(text, 8 * MAX_LABEL).replace("\n", "<br/>") + "</font>")
            attrs["penwidth"] = "2.5"
        elif all(m in self.unchecked for m in box.members):
            colours = PALETTE["unchecked"]
            attrs["fontcolor"] = "#999999"
        fill, border = colours
        style = attrs.get("style", "rounded,filled")
        if all(nodes[m].train_only for m in box.members):
            style += ",dashed"
        attrs.update(fillcolor=fill, color=border, style=style, tooltip=self._tooltip(box))
        if box.id in self.spine or box.id in self.main_line:
            attrs["group"] = "main"  # dot keeps edges within a group straight
        g.node(box.id, "<" + "<br/>".join(lines) + ">", **attrs)

    def _scope_label(self, box: _Box, failed: list[str]) -> tuple[tuple[str, str], list[str], dict[str, str]]:
        """A rolled-up scope: its name, its call, its output shape and parameters."""
        scope = self.scopes.get(box.scope)
        local = _local(box)
        last = box.heads[-1] if box.count > 1 else box.id  # the last scope of a run
        span = local if box.count == 1 else f"{local}–{_within(box.frame, last)}"
        if scope is not None and scope.kind == "pass":  # a repeat's pass: what it holds
            name = f"pass {span}" if box.count == 1 else f"passes {span}"
            title = self._blocks_in(box.scope)
        elif scope is not None and scope.kind == "repeat":
            name = f"{span} {scope.title.replace('repeat ', '× ')}"
            title = self._blocks_in(scope.children[0].name) if scope.children else ""
        else:
            name = span
            title = scope.title if scope is not None and scope.kind in ("block", "join") else ""
        if box.count > 1:  # (the count kept whole, after the title is shortened)
            title = (_clip(title, MAX_LABEL - 12) + " " if title else "") + f"× {box.count}"
        lines = [f"<b>{_escape(name)}</b>"] + ([_escape(title)] if title else [])
        if not failed:
            # what the scope outputs: the end of its main chain, or a labelled join's own layer;
            # nothing for a scope whose lowering stopped inside it
            end = self.scopes[last].output if last in self.scopes else None
            end = end or self.nodes.get(last)
            shape = end.shape if end is not None else None
            params = sum(self.nodes[m].params for m in box.members)
            facts = ([fmt_dims(shape)] if shape is not None else []) + [f"{fmt_count(params)} params"]
            lines.append(f'<font point-size="9" color="#555555">{" · ".join(facts)}</font>')
        # a double border: more inside; a triple one: a run of them
        return PALETTE["scope"], lines, {"peripheries": "2" if box.count == 1 else "3"}

    def _layer_label(self, box: _Box, failed: list[str]) -> tuple[tuple[str, str], list[str], dict[str, str]]:
        """A layer (and what is folded into it): its name, op, key attributes and parameters."""
        nodes = self.nodes
        lead = nodes[box.members[0]]
        spec = lead.op
        if lead.is_source:
            return ((spec.kind.fill, spec.kind.border), [f"<b>{_escape(_brief(lead))}</b> {fmt_dims(lead.shape)}"],
                    {"style": "filled,bold"})
        colours = BROKEN if spec is None else (spec.kind.fill, spec.kind.border)
        one = box.members[:len(box.members) // box.count]  # one repetition
        what = _joined([_brief(nodes[m]) for m in one])
        if failed and (spec is None or lead.attrs is None):
            what = self._written(lead) or what
        if len(box.members) == 1 and not failed:  # small marks for what computes nothing new
            if spec is None or spec.kind.small and spec.mark is None:
                return colours, [_escape(what)], {"fontsize": "9", "height": "0.25", "margin": "0.08,0.03"}
        if spec is not None and spec.mark is not None and not failed and \
                (len(box.members) == 1 or not spec.join and all(nodes[m].op is spec for m in box.members)):
            return colours, [_escape(spec.mark.text)], dict(MARK_STYLES[spec.mark.shape])
        local = _local(box)
        name = local if box.count == 1 else f"{local}–{_within(box.frame, box.heads[-1])}"
        lines = [f"<b>{_escape(name)}</b>", _escape(_clip(what, MAX_LABEL - 12) + (f" × {box.count}" if box.count > 1 else ""))]
        params = sum(nodes[m].params for m in box.members)
        if params:
            lines.append(f'<font point-size="9" color="#555555">{fmt_count(params)} params</font>')
        return colours, lines, {}

    def _blocks_in(self, path: str) -> str:
        """What a pass of a repeat does, when it is block calls only: their calls; a pass that
        also holds layers or other scopes of its own gets no title (a partial one would mislead)."""
        if self._block_titles is None:
            self._block_titles = {}
            mixed = set()
            for scope in self.scopes.values():
                if scope.kind == "block":
                    self._block_titles.setdefault(_path(scope.parent), []).append(scope.title)
                else:
                    mixed.add(_path(scope.parent))
            mixed.update(_path(layer.scope) for layer in self.nodes.values())
            for p in mixed:
                self._block_titles.pop(p, None)
        return " · ".join(self._block_titles.get(path, ()))

    def _written(self, layer: Layer) -> str:
        """The source text of a layer that could not be made, as written."""
        span = layer.span
        lines = self.source.splitlines()
        if not self.source or not (1 <= span.line <= len(lines)) or span.end_line != span.line:
            return ""
        text = lines[span.line - 1][span.column - 1:span.end_column - 1]
        return text if len(text) <= 40 else text[:37] + "..."

    def _tooltip(self, box: _Box) -> str:
        """Shown on hover in SVG: the layers, as the language writes them."""
        if box.scope is not None:
            scope = self.scopes.get(box.scope)
            n = len(box.members)
            return _clip(f"{box.scope}: {scope.title if scope else ''}, {n} layer{'s' if n != 1 else ''}", 4 * MAX_LABEL)
        lines = []
        for m in box.members[:8]:
            layer = self.nodes[m]
            if layer.is_source:
                what = "x".join(map(str, layer.shape))
            elif layer.op is not None and layer.attrs is not None:
                what = layer.describe()
            else:
                what = "could not be made"
            lines.append(_clip(f"{m}: {what}"))
        return "\n".join(lines + (["..."] if len(box.members) > 8 else []))

    def _edges(self, g: graphviz.Digraph) -> None:
        box_of = self.box_of
        seen: dict[tuple[str, str], tuple[str, dict]] = {}
        for source, target, _ in self.net.edges():
            src, dst = source.name, target.name
            a, b = box_of[src], box_of[dst]
            if a is b or (a.id, b.id) in seen:
                continue
            shape = source.shape
            attrs: dict[str, str] = {}
            if dst in self.failed and src not in self.failed:
                attrs.update(color=PALETTE["error"][1], fontcolor=PALETTE["error"][1], penwidth="2")
            elif src in self.failed or src in self.unchecked:
                attrs.update(color="#bbbbbb", style="dashed")
            if target.train_only and not source.train_only:
                attrs["style"] = "dashed"
            if self.segment.get(a.id, 0) != self.segment.get(b.id, 0):
                attrs["constraint"] = "false"  # from the foot of one column to the head of the next
            seen[(a.id, b.id)] = (fmt_dims(shape) if shape is not None else "", attrs)
        for (a, b), (label, attrs) in seen.items():
            g.edge(a, b, label=" " + label if label else None, **attrs)
        # each output ends in an arrow labelled with what the net returns
        for i, out in enumerate(self.net.outputs):
            box = box_of.get(out.layer.name)
            if box is None:
                continue
            end = f"output {out.name}"  # a space: no layer or scope has this id
            text = "output" if i == 0 else f"{out.name} output"
            g.node(end, text, shape="plaintext", style="solid", fontsize="10", height="0.2")
            shape = out.layer.shape
            attrs = {"style": "dashed"} if out.train_only else {}
            g.edge(box.id, end, label=" " + fmt_dims(shape) if shape is not None else None, **attrs)

    # -- figures: the main line, columns, the legend ----------------------------------------

    def _main_line(self) -> set[str]:
        """The boxes on the way from the input to the main output, at every depth, through the
        middle branch of each join (the second of two, the third of four): given one `group`,
        dot draws them in one straight line, the other branches either side of it, where the
        first branch carrying on would drift the diagram sideways at every join."""
        line: set[str] = set()
        layer = self.net.outputs[0].layer if self.net.outputs else None
        seen: set[str] = set()
        while layer is not None and layer.name not in seen:
            seen.add(layer.name)
            line.add(self.box_of[layer.name].id)
            inputs = layer.inputs
            layer = inputs[len(inputs) // 2] if inputs else None
        return line

    def _ranks(self) -> dict[str, int]:
        """Each box's longest distance from a source, in boxes (the graph's order is topological)."""
        rank: dict[str, int] = {}
        for box in self.boxes.values():
            before = [rank.get(self.box_of[i.name].id, 0) for m in box.members for i in self.nodes[m].inputs
                      if self.box_of[i.name] is not box]
            rank[box.id] = 1 + max(before, default=-1)
        return rank

    def _segments(self) -> dict[str, int]:
        """The column of each box when the main chain wraps into `columns`: the top-level chain
        cut into runs of about as many ranks each; a box off the chain goes with its inputs."""
        rank = self._ranks()
        chain = [b.id for b in self.boxes.values() if b.id in self.spine]
        k = min(self.columns, len(chain) // MIN_COLUMN)
        if k < 2:
            return {}
        total = rank[chain[-1]] + 1
        segment = {b: min(k - 1, rank[b] * k // total) for b in chain}
        for box in self.boxes.values():
            if box.id not in segment:
                segment[box.id] = max((segment.get(self.box_of[i.name].id, 0) for m in box.members
                                       for i in self.nodes[m].inputs if self.box_of[i.name] is not box), default=0)
        return segment

    def _wrap(self, g: graphviz.Digraph) -> None:
        """Columns side by side: the head of each run of the chain on the first rank, in order."""
        heads: list[str] = []
        for box in self.boxes.values():
            if box.id in self.spine and self.segment[box.id] == len(heads):
                heads.append(box.id)
        if len(heads) < 2:
            return
        with g.subgraph() as same:
            same.attr(rank="same")
            for a, b in zip(heads, heads[1:]):
                same.edge(a, b, style="invis")

    def kinds(self) -> list[tuple[str, str, str]]:
        """The (name, fill, border) of each colour the boxes use, in the registry's order; a
        rolled-up scope last, as "block"."""
        from .ops.spec import KINDS

        used: set[str] = set()
        scoped = False
        for box in self.boxes.values():
            if box.scope is not None:
                scoped = True
                continue
            op = self.nodes[box.members[0]].op
            if op is not None:
                used.add(op.kind.name)
        out = [(k.name, k.fill, k.border) for k in KINDS if k.name in used]
        return out + ([("block", *PALETTE["scope"])] if scoped else [])

    def _legend(self, g: graphviz.Digraph) -> None:
        """A key of the colours in use, one cell per kind, below the diagram."""
        kinds = self.kinds()
        if not kinds:
            return
        per_row = 8 if self.rankdir == "TB" else 4
        cells = [f'<td bgcolor="{fill}" color="{border}" border="1" cellpadding="2">'
                 f'<font point-size="9">{_escape(name)}</font></td>' for name, fill, border in kinds]
        rows = ["<tr>" + "".join(cells[i:i + per_row]) + "</tr>" for i in range(0, len(cells), per_row)]
        table = '<table border="0" cellspacing="3" cellborder="1">' + "".join(rows) + "</table>"
        # under the title, where it is seen first and needs no place in the layout
        title = g.graph_attr["label"][1:-1]
        g.graph_attr["label"] = (f'<<table border="0" cellspacing="0" cellpadding="0"><tr><td align="left" '
                                 f'balign="left">{title}</td></tr><tr><td align="left">{table}</td></tr></table>>')


def _brief(layer: Layer) -> str:
    """A layer's op as a diagram box writes it (`conv 64 7×7/2`); `?` for an unknown op."""
    if layer.op is None:
        return "?"
    return layer.op.name if layer.attrs is None else layer.op.brief(layer.attrs)


# The longest text of one line of a box or frame. Titles and folded runs grow with the file (a
# block call of 50,000 arguments, `relu` folded 99,999 times) and `dot` refuses a label past
# its own bound ("String starting: ..."), so long text is shortened with an ellipsis, and a
# long folded run is written run by run (`linear 8 + relu ×99,998`).
MAX_LABEL = 200


def _clip(text: str, limit: int = MAX_LABEL) -> str:
    """`text`, or its first `limit - 1` characters and an ellipsis."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _joined(briefs: Sequence[str]) -> str:
    """Ops folded into one box, `a + b`; past MAX_LABEL, each run of one op once with its count."""
    text = " + ".join(briefs)
    if len(text) <= MAX_LABEL:
        return text
    runs: list[list] = []
    for brief in briefs:
        if runs and runs[-1][0] == brief:
            runs[-1][1] += 1
        else:
            runs.append([brief, 1])
    return " + ".join(b if n == 1 else f"{b} ×{n:,}" for b, n in runs)


def _escape(text: str, limit: int = MAX_LABEL) -> str:
    """Text for a Graphviz HTML-like label (quotes need no escaping between tags), at most
    `limit` characters (MAX_LABEL: see there)."""
    return html.escape(_clip(text, limit), quote=False)


def _local(box: _Box) -> str:
    """A box's name inside its frame, which names the scope around it."""
    return _within(box.frame, box.id)


def _within(frame: str, name: str) -> str:
    """`name` relative to the scope path `frame` it is in."""
    return name[len(frame) + 1:] if frame else name


def _path(scope: Optional[Scope]) -> str:
    """A scope's path; "" for the top of the net."""
    return "" if scope is None else scope.name


def _contains(outer, inner) -> bool:
    return (outer.line, outer.column) <= (inner.line, inner.column) and \
        (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column) and outer.line > 0


def _extent(span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_column - span.column)


def _one_line(diag: Diagnostic) -> str:
    where = f"{diag.span.line}:{diag.span.column}: " if diag.span.line else ""
    return f"{where}{diag.code}: {diag.message}"


# --- writing -----------------------------------------------------------------------------

SPACER = "space "  # a title's spacer: its frame's path after a space, so no layer or scope has its id

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".gv": None, ".dot": None}
PNG_DPI = "144"  # crisp on a slide or a high-density screen

# What `dot` is given at most. Its layout time grows faster than the graph (on the development
# machine: 1,600 edges 2.4 s, 3,200 edges 7 s, 6,400 edges 60 s; a repeated concat of 100 bytes,
# expanded, took 169 s and 1.9 GB), so a larger diagram is refused at once, with what to do,
# rather than left to run. Every net in nets/ has at most 255 boxes and 245 edges, expanded.
MAX_NODES = 2_000
EDGES_PER_NODE = 2      # the edge limit is this times the node limit
DOT_TIMEOUT = 60.0      # seconds: dot is stopped after that, whatever the size


class GraphvizMissing(Exception):
    """Graphviz's `dot` program is not installed; `.dot_path` holds the DOT text written
    instead, if any."""

    def __init__(self, dot_path: Optional[Path] = None, not_written: Optional[str] = None):
        from .files import shown

        if dot_path is not None:
            where = f"; the DOT source is in {shown(dot_path)}"
        elif not_written is not None:
            where = f"; the DOT source was not written ({not_written})"
        else:
            where = ""
        super().__init__(f"Graphviz's dot program is not installed{where} "
                         "(install Graphviz: apt-get install graphviz / brew install graphviz)")
        self.dot_path = dot_path


class GraphvizFailed(Exception):
    """Graphviz's `dot` failed, ran past its time, or was not run (`DiagramTooLarge`); the
    message says which."""


class DiagramTooLarge(GraphvizFailed):
    """The diagram has more boxes or edges than `dot` is given (`max_nodes`); nothing was run."""

    def __init__(self, nodes: int, edges: int, max_nodes: int, frames: int = 0):
        max_edges = max_nodes * EDGES_PER_NODE
        if frames > max_nodes:  # few boxes, in many frames (clusters)
            has, over, limit = f"{nodes:,} boxes in {frames:,} frames", f"{frames:,} frames", f"{max_nodes:,} frames"
        else:
            has = f"{nodes:,} boxes and {edges:,} edges"
            over = f"{nodes:,} boxes" if nodes > max_nodes else f"{edges:,} edges"
            limit = f"{max_nodes:,} boxes" if nodes > max_nodes else f"{max_edges:,} edges"
        super().__init__(
            f"the diagram has {has}, over the limit of {limit} that Graphviz is "
            f"given (its layout of {over} could take many minutes and gigabytes): draw fewer boxes with a "
            f"smaller --depth (or without --expand, or with --fold-repeats), or raise the limit with "
            f"--max-nodes {max(nodes, frames, -(-edges // EDGES_PER_NODE))} (max_nodes= in Python), "
            "or write the DOT text with -o NAME.gv")
        self.nodes, self.edges, self.max_nodes, self.frames = nodes, edges, max_nodes, frames


def output_format(path: Path | str) -> Optional[str]:
    """The Graphviz format a file name asks for (None for DOT text); ValueError for others."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        from .files import shown

        raise ValueError(f"cannot tell the format of {shown(path)}: name it .svg, .png, .pdf or .gv")
    return FORMATS[suffix]


def save(dot: graphviz.Digraph, path: Path | str, *, keep: Sequence = (), max_nodes: int = MAX_NODES,
         timeout: float = DOT_TIMEOUT, dpi: Optional[int] = None) -> Path:
    """Write the diagram in the format the file name asks for (.svg, .png, .pdf; .gv or .dot for
    the DOT text). Without `dot`, writes the DOT text beside it and raises `GraphvizMissing`.

    `keep` lists files never to be written over, as (what, path) pairs: the net's own source
    (`netdsl.files.WouldOverwrite` if `path` is one; the DOT text is then not written either).
    `max_nodes` and `timeout` bound what `dot` is given (`DiagramTooLarge`, `GraphvizFailed`).
    `dpi`: the resolution of a PNG (default `PNG_DPI`), written into its header too."""
    from .files import WouldOverwrite, refuse_overwrite

    path = Path(path)
    keep = list(keep)
    fmt = output_format(path)
    refuse_overwrite([(path, "name another output")], keep)
    if fmt is None:
        path.write_text(dot.source, encoding="utf-8")
        return path
    if fmt == "png" and dpi is not None:
        dot = with_dpi(dot, dpi)
    try:
        data = _pipe(dot, fmt, max_nodes, timeout)
        if fmt == "png":
            data = png_with_dpi(data, int(float(dot.graph_attr.get("dpi", PNG_DPI))))
    except GraphvizMissing:
        gv = path.with_suffix(".gv")
        try:
            refuse_overwrite([(gv, "")], keep)
        except WouldOverwrite:
            from .files import shown

            raise GraphvizMissing(None, f"{shown(gv)} is the net's own file") from None
        gv.write_text(dot.source, encoding="utf-8")
        raise GraphvizMissing(gv) from None
    path.write_bytes(data)
    return path


_KEYWORDS = frozenset({"graph", "node", "edge", "subgraph", "digraph", "strict"})


def diagram_size(dot: graphviz.Digraph) -> tuple[int, int]:
    """The numbers of nodes and edges in the diagram's DOT text, as `dot` would lay them out:
    each node once however often it is named, each `->` an edge."""
    import re

    # a quoted string (newlines and all), an arrow, a name or number, a newline, any other character
    token = re.compile(r'[^\S\n]*("(?:[^"\\]|\\.)*"|->|--|[^\s"<>\[\]{};=,:]+|\n|\S)')
    text = dot.source
    nodes: set[str] = set()
    edges = pos = depth = 0  # depth: inside an attribute list [...]
    statement: list[str] = []
    while (m := token.match(text, pos)) is not None:
        t, pos = m.group(1), m.end()
        if t == "<":  # an HTML-like label, tags nested in it: skip to its closing >
            level = 1
            while level and pos < len(text):
                nxt = min((k for k in (text.find("<", pos), text.find(">", pos)) if k >= 0), default=len(text))
                level += 1 if text[nxt:nxt + 1] == "<" else -1
                pos = nxt + 1
            t = "<>"
        if t == "[":
            depth += 1
        elif t == "]":
            depth -= 1
        elif depth:
            continue
        elif t in ("\n", ";", "{", "}"):
            if statement and statement[0] not in _KEYWORDS and "=" not in statement:
                edges += statement.count("->") + statement.count("--")
                names = [w for k, w in enumerate(statement) if w not in ("->", "--", ":")
                         and (k == 0 or statement[k - 1] != ":")]  # `a:port`: the port is no node
                nodes.update(w[1:-1].replace('\\"', '"') if w.startswith('"') else w for w in names)
            statement = []
        else:
            statement.append(t)
    return len(nodes), edges


def _pipe(dot: graphviz.Digraph, fmt: str, max_nodes: int = MAX_NODES, timeout: float = DOT_TIMEOUT) -> bytes:
    import subprocess

    text = dot.source
    # a statement per line names at most two new nodes: a small diagram needs no count
    if 2 * text.count("\n") > max_nodes or text.count("->") > max_nodes * EDGES_PER_NODE:
        nodes, edges = diagram_size(dot)
        if nodes > max_nodes or edges > max_nodes * EDGES_PER_NODE:
            raise DiagramTooLarge(nodes, edges, max_nodes)
    if fmt == "png":
        dot = dot.copy()
        dot.graph_attr.setdefault("dpi", PNG_DPI)  # `save(dpi=)` may have set it
    try:
        # run here, not by graphviz's pipe(), which has no time limit
        done = subprocess.run(["dot", "-Kdot", f"-T{fmt}"], input=dot.source.encode("utf-8"),
                              capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise GraphvizMissing() from None
    except subprocess.TimeoutExpired:  # run() has killed it
        nodes, edges = diagram_size(dot)
        raise GraphvizFailed(f"Graphviz's dot did not finish in {timeout:g} s ({nodes:,} boxes, {edges:,} edges) and "
                             "was stopped: draw fewer boxes with a smaller --depth, or allow it longer with "
                             "--dot-timeout (timeout= in Python)") from None
    except OSError as e:  # not executable, say
        raise GraphvizFailed(f"Graphviz's dot could not run: {e.strerror}") from None
    if done.returncode != 0:  # dot crashed or ran out of memory on a huge net
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        how = f"exit {done.returncode}" if done.returncode > 0 else f"killed by signal {-done.returncode}"
        raise GraphvizFailed(f"Graphviz's dot failed ({how})" + (f": {said[-1]}" if said else ""))
    return done.stdout


def svg(dot: graphviz.Digraph, *, max_nodes: int = MAX_NODES, timeout: float = DOT_TIMEOUT) -> str:
    """The diagram as SVG text (needs Graphviz's `dot`; `max_nodes` and `timeout` as `save`)."""
    return _pipe(dot, "svg", max_nodes, timeout).decode("utf-8")


# --- figures for papers: resolution, font size, fitting a page -----------------------------

BASE_FONT = 11.0  # the points of a box's text; every other size is drawn in proportion to it
FITS = {"column": (3.3, 9.0), "page": (6.5, 9.0)}  # inches: a column of a two-column paper, a page
MAX_COLUMNS = 6   # the most columns `fit` wraps a chain into
MIN_COLUMN = 3    # boxes of the chain in a column at least: fewer would not be worth a column
NARROW = 5.0      # inches: narrower than this, a fitted diagram's title is broken into lines


def with_dpi(dot: graphviz.Digraph, dpi: int) -> graphviz.Digraph:
    """A copy of the diagram drawn at `dpi` pixels per inch when written as PNG."""
    if not 1 <= dpi <= 2400:
        raise ValueError(f"dpi must be between 1 and 2400, got {dpi}")
    dot = dot.copy()
    dot.graph_attr["dpi"] = str(dpi)
    return dot


def png_with_dpi(data: bytes, dpi: int) -> bytes:
    """PNG bytes with a pHYs chunk saying `dpi` (dot writes none, so a word processor would
    place a 144 dpi picture at twice its size); unchanged if it has one."""
    import struct
    import zlib

    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or b"pHYs" in data[:4096]:
        return data
    per_metre = round(dpi / 0.0254)
    body = b"pHYs" + struct.pack(">IIB", per_metre, per_metre, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    end = 8 + 8 + 13 + 4  # the signature, then IHDR (length, type, 13 bytes, CRC)
    return data[:end] + chunk + data[end:]


def with_font_size(dot: graphviz.Digraph, points: float) -> graphviz.Digraph:
    """A copy of the diagram whose box text is `points` high, every other text (title, edge
    labels, parameter counts) scaled with it."""
    import re

    if not 1 <= points <= 72:
        raise ValueError(f"font size must be between 1 and 72 points, got {points:g}")
    factor = points / BASE_FONT

    def scaled(m: "re.Match[str]") -> str:
        return f"{m.group(1)}{float(m.group(2)) * factor:.3g}{m.group(3)}"

    dot = dot.copy()
    for attrs in (dot.graph_attr, dot.node_attr, dot.edge_attr):
        if "fontsize" in attrs:
            attrs["fontsize"] = f"{float(attrs['fontsize']) * factor:.3g}"
    size = re.compile(r'(fontsize="?|point-size=")([0-9.]+)("?)')
    dot.body[:] = [size.sub(scaled, line) for line in dot.body]
    return dot


def parse_fit(text: str) -> tuple[float, float]:
    """`column`, `page` or `WIDTHxHEIGHT` in inches (`6.5x9`, `3.3x4in`) as (width, height)."""
    import re

    if text in FITS:
        return FITS[text]
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*[x×]\s*([0-9]*\.?[0-9]+)\s*(?:in)?\s*", text)
    if m is None or not (0 < float(m.group(1)) <= 200 and 0 < float(m.group(2)) <= 200):
        raise ValueError(f"cannot read the size {text!r}: give column, page, or WIDTHxHEIGHT in inches "
                         "(such as 6.5x9)")
    return float(m.group(1)), float(m.group(2))


def layout_size(dot: graphviz.Digraph, max_nodes: int = MAX_NODES, timeout: float = DOT_TIMEOUT
                ) -> tuple[float, float]:
    """The width and height in inches that dot lays the diagram out at, unscaled."""
    first = _pipe(dot, "plain", max_nodes, timeout).split(b"\n", 1)[0].split()
    return float(first[2]), float(first[3])


@dataclass(frozen=True)
class Fitted:
    """A diagram fitted to a size: how many columns its chain wraps into and the scale dot
    draws it at (1: not shrunk), so its smallest text is `scale` times its points."""

    dot: graphviz.Digraph
    columns: int
    scale: float
    width: float
    height: float


def fit(make, width: float, height: float, *, max_columns: int = MAX_COLUMNS, max_nodes: int = MAX_NODES,
        timeout: float = DOT_TIMEOUT) -> Fitted:
    """The diagram `make(columns)` that is shrunk least to fit `width` × `height` inches: its
    main chain wrapped into 1 to `max_columns` columns side by side, each laid out by dot;
    then `size` tells dot to scale it down to fit. Deterministic: the same sizes, the same pick."""
    best: Optional[tuple[float, int, graphviz.Digraph]] = None
    previous = None
    for k in range(1, max_columns + 1):
        dot = make(k)
        if previous is not None and dot.source == previous:
            break  # the chain has no more places to cut
        previous = dot.source
        w, h = layout_size(dot, max_nodes, timeout)
        scale = min(1.0, width / w, height / h)
        if best is None or scale > best[0] * 1.01:  # a column more only for a real gain
            best = (scale, k, dot)
        elif scale < best[0]:
            break  # wider than it is tall now: more columns only shrink it further
        if scale >= 1.0:
            break
    assert best is not None
    scale, k, dot = best
    dot = dot.copy()
    dot.graph_attr["size"] = f"{width:g},{height:g}"  # dot shrinks a larger drawing to fit, never enlarges
    return Fitted(dot, k, scale, width, height)


def figure(make, *, fit_to: Optional[tuple[float, float]] = None, font_size: Optional[float] = None,
           max_nodes: int = MAX_NODES, timeout: float = DOT_TIMEOUT) -> Fitted:
    """A diagram for a paper: `make(columns)` gives the DOT (such as
    `lambda k: net.to_dot(columns=k)`), `font_size` the points of its box text, `fit_to` the
    (width, height) in inches it must fit (`parse_fit`), for which the chain wraps into columns."""
    def made(k: int) -> graphviz.Digraph:
        dot = make(k)
        return with_font_size(dot, font_size) if font_size is not None else dot

    if fit_to is None:
        return Fitted(made(1), 1, 1.0, 0.0, 0.0)

    def compact(k: int) -> graphviz.Digraph:
        dot = made(k).copy()  # closer ranks and boxes: every inch saved is larger text on the page
        dot.graph_attr.update(ranksep="0.2", nodesep="0.18")
        if fit_to[0] < NARROW:  # a column: the title's parts on lines of their own
            dot.graph_attr["label"] = dot.graph_attr["label"].replace("  ·  ", '<br align="left"/>')
        return dot

    return fit(compact, *fit_to, max_nodes=max_nodes, timeout=timeout)
