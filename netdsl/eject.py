"""A checked net as a standalone PyTorch source file (`Network.eject`, `netdsl eject`).

The file imports torch only. It holds one `nn.Module` class per block definition, written from
the definition by netdsl/eject_blocks.py (its parameters `__init__`'s, its `if`s Python's, its
forward's shape comments in its terms: `o x H/s x W/s`), then
one class for the net, whose `state_dict` keys are the compiled module's (the IR's layer names,
dotted scope paths) and whose outputs are the compiled module's in both modes. A block that
eject_blocks cannot write as one class (it says why: a `split`, a labelled `repeat`, ...) gets
a class per distinct structure of its instances instead, made here from the IR (which expands
a block per use, with its `if`s decided). How each layer is written comes from its op's
registry entry (`OpSpec.eject`); this module only arranges the lines:

- a block instance becomes an attribute holding an instance of its class, when it is closed: one
  tensor in, only its output read from outside, no net output inside (else it is written out in
  place, as a group is);
- any other scope (a branch, a group, a repeat's pass, a head) is an `nn.Sequential` when its
  items form one chain of modules, and otherwise its layers are written out in place, under an
  `nn.Module()` that holds their modules, so that the names stay the IR's;
- a block instance is written as a call of its definition's class with the arguments its call
  gave; instances that share a per-structure class differ only in numbers, which its
  `__init__` takes, named after the block's parameters (or `in_channels`) where their values
  agree with them; shape comments name them too;
- training-only heads are computed under `if self.training:` where the compiled training graph
  computes them, and returned with the main output as a named tuple (the compiled module's
  `NetOutputs` fields).
"""

from __future__ import annotations

import ast as pyast
import inspect
import io
import itertools
import keyword
import os
import re
import textwrap
import tokenize
from dataclasses import dataclass, field
from typing import Optional

from . import ir
from .ops import Eject
from .ops.spec import fmt_shape

_RESERVED = frozenset({"self", "torch", "nn", "super", "x0", "OrderedDict", "namedtuple"})


class EjectError(Exception):
    """A net that eject cannot write (raised with the reason)."""


def camel(name: str) -> str:
    """`basic_down` -> `BasicDown`."""
    parts = re.split(r"[^0-9A-Za-z]+", name)
    text = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return text if text and not text[0].isdigit() else "N" + text


def _identifier(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = "v" + text
    return text + "_" if keyword.iskeyword(text) or text in _RESERVED else text


def _attr(path: str) -> str:
    """`self.` and a dotted module path, as Python reads it (`getattr` for a part that is no name)."""
    text = "self"
    for part in path.split("."):
        text = f"{text}.{part}" if part.isidentifier() and not keyword.iskeyword(part) else \
            f"getattr({text}, {part!r})"
    return text


def _assign(path: str, value: str, parameter: bool = False) -> str:
    holder, _, leaf = path.rpartition(".")
    target = _attr(holder) if holder else "self"
    if leaf.isidentifier() and not keyword.iskeyword(leaf):
        return f"{target}.{leaf} = {value}"
    return f"{target}.{'register_parameter' if parameter else 'add_module'}({leaf!r}, {value})"


# --- what each scope becomes -----------------------------------------------------------

@dataclass
class _Unit:
    """One item of a class body: a layer, or a scope written as one module (`kind`: `layer`,
    `class` for a closed block, `seq` for a chain of modules)."""

    kind: str
    path: str                      # the IR name: the layer's, or the scope's
    output: ir.Layer
    inputs: list[ir.Layer]
    first: int                     # where it starts in the IR's order
    layer: Optional[ir.Layer] = None
    scope: Optional[ir.Scope] = None
    train_only: bool = False


@dataclass
class _Class:
    """A class of the file: the body of its first instance (`text`, its `__init__` lines then its
    forward lines; `places`: where each number is in it), and per instance its numbers, its
    input's shape and each forward line's shape. The net's class has one instance, None."""

    name: str
    block: Optional[str]           # None: the net's class
    title: str
    init: list[str]
    forward: list[tuple[str, bool]]  # (code, training only)
    text: str
    places: list[tuple[int, int, int]]
    instances: list[Optional[ir.Scope]] = field(default_factory=list)
    numbers: list[list[str]] = field(default_factory=list)
    ins: list[tuple[int, ...]] = field(default_factory=list)
    shape_rows: list[list[Optional[tuple[int, ...]]]] = field(default_factory=list)
    sequential: bool = False       # an nn.Sequential of `init`'s items (no forward of its own)
    why: str = ""                  # why the block's definition is not one class (eject_blocks says)

    @property
    def init_rows(self) -> int:
        return sum(line.count("\n") + 1 for line in self.init)


class _Writer:
    """Writes one pass over the net: its classes, in the order they are first used (a block's
    inside its parent's), with the arguments `plan` gives each (none yet: every number)."""

    def __init__(self, network, plan: dict[str, "_Plan"], defs):
        self.network, self.plan, self.defs = network, plan, defs
        self.net: ir.Net = network.ir
        self.index = {layer: i for i, layer in enumerate(self.net)}
        self.inside: dict[str, list[ir.Layer]] = {}  # scope path -> its layers, its scopes' included
        for layer in self.net:
            for scope in ir.scopes_of(layer):
                self.inside.setdefault(scope.name, []).append(layer)
        self.sets = {name: set(layers) for name, layers in self.inside.items()}
        self.direct: dict[Optional[str], list[ir.Layer]] = {}  # scope path (None: the net) -> its own layers
        for layer in self.net.body():
            self.direct.setdefault(None if layer.scope is None else layer.scope.name, []).append(layer)
        self._units: dict[str, Optional[_Unit]] = {}
        self.outputs = {o.layer for o in self.net.outputs}
        self.helpers: list[str] = []
        self.classes: list = []  # a _Class, or a block's own class (eject_blocks.BlockClass)
        self.by_key: dict[tuple, _Class] = {}
        self.taken = set(defs.taken)  # the net's class, the copied modules', the blocks' own
        self.uses_ordered_dict = False
        self.tuples: dict[str, list[str]] = {}

    # -- scopes

    def externals(self, scope: ir.Scope) -> list[ir.Layer]:
        own = self.sets.get(scope.name, set())
        seen: list[ir.Layer] = []
        for layer in self.inside.get(scope.name, []):
            for source in layer.inputs:
                if source not in own and source not in seen:
                    seen.append(source)
        return seen

    def closed(self, scope: ir.Scope) -> bool:
        """One tensor in, only its output read from outside, no net output inside but that."""
        own = self.sets.get(scope.name)
        if not own or scope.output not in own or len(self.externals(scope)) != 1:
            return False
        for layer in own:
            if layer is not scope.output and (layer in self.outputs or any(u not in own for u in layer.users)):
                return False
            if layer.train_only != scope.output.train_only:
                return False
        return True

    def units(self, scope: Optional[ir.Scope], flat: bool = True) -> list[_Unit]:
        """The items of a class body or of a chain, in the IR's order: the layers of `scope` (None:
        the net) and its child scopes, each written as a module where it can be; with `flat`, the
        layers of the others in place."""
        direct = self.direct.get(None if scope is None else scope.name, [])
        children = list(scope.children) if scope is not None else \
            [s for s in self.net.scopes.values() if s.parent is None]
        result = [self.layer_unit(layer) for layer in direct]
        for child in children:
            if not self.inside.get(child.name):
                continue  # makes no layer: it stands for its input
            unit = self.scope_unit(child)
            if unit is not None:
                result.append(unit)
            elif flat:
                result.extend(self.units(child))
            else:
                return []
        return sorted(result, key=lambda u: u.first)

    def layer_unit(self, layer: ir.Layer) -> _Unit:
        return _Unit("layer", layer.name, layer, list(layer.inputs), self.index[layer], layer=layer,
                     train_only=layer.train_only)

    def scope_unit(self, scope: ir.Scope) -> Optional[_Unit]:
        """The scope as one module (a class or an nn.Sequential), or None: written in place."""
        if scope.name not in self._units:
            self._units[scope.name] = self._scope_unit(scope)
        return self._units[scope.name]

    def _scope_unit(self, scope: ir.Scope) -> Optional[_Unit]:
        if not self.closed(scope):
            return None
        first = self.index[self.inside[scope.name][0]]
        kind = "class" if scope.kind == "block" else "seq" if self.chain(scope) else None
        if kind is None:
            return None
        return _Unit(kind, scope.name, scope.output, self.externals(scope), first, scope=scope,
                     train_only=scope.output.train_only)

    def chain(self, scope: ir.Scope) -> bool:
        """Its items, each a module, each reading the one before (the first the scope's input)."""
        items = self.units(scope, flat=False)
        if not items:
            return False
        if all(u.kind == "layer" and self.eject(u.layer).call is not None and self.eject(u.layer).parameter is None
               for u in items):
            return False  # nothing that needs a module: written in place (an identity is no line)
        previous = self.externals(scope)
        for i, unit in enumerate(items):
            if unit.inputs != previous:
                return False
            if unit.kind == "layer" and self.eject(unit.layer).module is None:
                return False
            if i + 1 < len(items):
                after = items[i + 1]
                following = {after.layer} if after.kind == "layer" else self.sets[after.path]
                if any(u not in following for u in unit.output.users):
                    return False
            previous = [unit.output]
        return items[-1].output is scope.output

    def eject(self, layer: ir.Layer) -> Eject:
        made = layer.op.eject([i.shape for i in layer.inputs], layer.attrs)
        for helper in made.helpers:
            if helper not in self.helpers:
                self.helpers.append(helper)
        return made

    # -- module expressions

    def module(self, unit: _Unit) -> str:
        """The expression that constructs a unit's module."""
        if unit.kind == "layer":
            return self.eject(unit.layer).module
        if unit.kind == "class":
            return self.instance(unit.scope)
        items = self.units(unit.scope, flat=False)
        names = [item.path[len(unit.path) + 1:] for item in items]
        parts = [self.module(item) for item in items]
        if names == [str(i) for i in range(len(names))]:
            inner = ",\n".join(parts)
            return f"nn.Sequential(\n{_indent(inner, 4)},\n)"
        self.uses_ordered_dict = True
        inner = ",\n".join(f"({name!r}, {part})" for name, part in zip(names, parts))
        return f"nn.Sequential(OrderedDict([\n{_indent(inner, 4)},\n]))"

    def instance(self, scope: ir.Scope) -> str:
        """`ClassName(args)` for a closed block instance, its class written first."""
        own = self.defs.classes.get(scope.block)
        if own is not None:
            self.use(own)
            return self.defs.call(scope, self.externals(scope)[0].shape[0])
        cls, args = self.block_class(scope)
        return f"{cls.name}({', '.join(args)})"

    def use(self, own) -> None:
        """A block's own class in the file, after the classes it uses."""
        if own in self.classes:
            return
        for block in own.uses:
            self.use(self.defs.classes[block])
        self.helpers += [h for h in own.helpers if h not in self.helpers]
        self.classes.append(own)

    # -- class bodies

    def body(self, scope: Optional[ir.Scope]) -> tuple[list[str], list[tuple[str, bool]], list, dict]:
        """`__init__` lines, forward lines (code, training only), their shapes, and the variable
        of each value the body gives back, for the net (`scope` None) or a closed block instance."""
        prefix = "" if scope is None else scope.name + "."
        units = self.units(scope)
        init: list[str] = []
        made: set[str] = set()
        forward: list[tuple[str, bool]] = []
        shapes: list[Optional[tuple[int, ...]]] = []
        last: dict[ir.Layer, float] = {}  # the last unit that reads each value
        for i, unit in enumerate(units):
            for source in unit.inputs:
                last[source] = max(last.get(source, -1), i)
        returned = [o.layer for o in self.net.outputs] if scope is None else [scope.output]
        for layer in returned:
            last[layer] = float("inf")
        entry = self.net.input if scope is None else self.externals(scope)[0]
        var = {entry: "x"}
        holder = {"x": entry}
        alias: dict[ir.Layer, ir.Layer] = {}  # an identity's output: its input

        def canon(layer: ir.Layer) -> ir.Layer:
            while layer in alias:
                layer = alias[layer]
            return layer

        def made_call(unit: _Unit) -> bool:
            return unit.kind == "layer" and self.eject(unit.layer).call is not None

        if scope is not None and scope.train_only:  # a training-only head's class: all of it is
            for unit in units:
                unit.train_only = False
        for i, unit in enumerate(units):
            rel = unit.path[len(prefix):]
            args = [var[canon(s)] for s in unit.inputs]
            if unit.kind == "layer":
                made_ = self.eject(unit.layer)
                if made_.call == "{x0}":
                    target = canon(unit.inputs[0])
                    alias[unit.output] = target
                    last[target] = max(last.get(target, -1), last.get(unit.output, -1))
                    continue
                if made_.parameter is not None:  # a bare op: its tensor on this module, named by the layer
                    self._containers(rel, init, made)
                    init.append(_assign(rel, f"nn.Parameter({made_.parameter})", parameter=True))
                    code = made_.call.format(w=_attr(rel), **{f"x{k}": a for k, a in enumerate(args)})
                elif made_.call is not None:
                    code = made_.call.format(**{f"x{k}": a for k, a in enumerate(args)})
                else:
                    self._containers(rel, init, made)
                    init.append(_assign(rel, made_.module))
                    code = f"{_attr(rel)}({', '.join(args)})"
            else:
                self._containers(rel, init, made)
                init.append(_assign(rel, self.module(unit)))
                code = f"{_attr(rel)}({', '.join(args)})"
            name = self._variable(unit, rel, scope)
            if name == "x" and made_call(unit) and last.get(canon(unit.inputs[0]), -1) > i:
                name = _identifier(rel.rpartition(".")[2])  # a view taken while its input is still read
            numbered = (f"{name}{k}" for k in itertools.count(2))
            for candidate in itertools.chain([name], ["out"] if name == "x" else [], numbered):
                held = holder.get(candidate)
                if held is None or last.get(canon(held), -1) <= i:
                    name = candidate
                    break
            var[unit.output] = name
            holder[name] = unit.output
            forward.append((f"{name} = {code}", unit.train_only))
            shapes.append(unit.output.shape)
        return init, forward, shapes, {layer: var[canon(layer)] for layer in returned}

    def _containers(self, rel: str, init: list[str], made: set[str]) -> None:
        parts = rel.split(".")[:-1]
        for k in range(1, len(parts) + 1):
            path = ".".join(parts[:k])
            if path not in made:
                made.add(path)
                init.append(_assign(path, "nn.Module()"))

    def _variable(self, unit: _Unit, rel: str, owner: Optional[ir.Scope]) -> str:
        """A head's values are named after it, a branch's after the branch, the rest `x`."""
        s = unit.scope if unit.kind != "layer" else unit.layer.scope
        while s is not None and s is not owner:
            if s.kind == "head" or (unit.train_only and s.parent is owner):
                return _identifier(s.local)
            if s.kind == "branch":
                return _identifier(s.local)
            s = s.parent
        return _identifier(rel.split(".")[0]) if unit.train_only else "x"

    # -- block classes

    def block_class(self, scope: ir.Scope) -> tuple[_Class, list[str]]:
        """The class of a closed block instance (made at its first instance of that structure)
        and the arguments this instance passes it."""
        items = self.units(scope, flat=False) if self.chain(scope) else []
        sequential = bool(items) and [u.path[len(scope.name) + 1:] for u in items] == \
            [str(i) for i in range(len(items))]
        if sequential:  # a block of numbered items, one after the other: an nn.Sequential, as torchvision's
            init, forward = [self.module(u) + "," for u in items], []
            shapes = [u.output.shape for u in items]
        else:
            init, forward, shapes, returned = self.body(scope)
            forward = forward + [(f"return {returned[scope.output]}", False)]
        text = "\n".join(init + [code for code, _ in forward])
        skeleton, numbers, places = _holes(text)
        key = (scope.block, sequential, skeleton)
        cls = self.by_key.get(key)
        if cls is None:
            cls = _Class(self._class_name(scope.block, init), scope.block, scope.title, init, forward, text, places,
                         sequential=sequential, why=self.defs.refused.get(scope.block, ""))
            self.by_key[key] = cls
            self.classes.append(cls)
        cls.instances.append(scope)
        cls.numbers.append(numbers)
        cls.ins.append(self.externals(scope)[0].shape)
        cls.shape_rows.append(shapes)
        plan = self.plan.get(cls.name)
        if plan is None:  # the first pass: every number is an argument
            return cls, numbers
        return cls, plan.call(len(cls.instances) - 1)

    def net_class(self) -> _Class:
        """The net's class: its body, and what its forward returns in each mode."""
        from .backend.outputs import field_name

        init, forward, shapes, returned = self.body(None)
        outputs = self.net.outputs
        deploy = [o for o in outputs if not o.train_only]

        def result(chosen, type_name: str) -> str:
            if len(chosen) == 1:
                return returned[chosen[0].layer]
            self.tuples[type_name] = [field_name(o.name) for o in chosen]
            return f"{type_name}({', '.join(returned[o.layer] for o in chosen)})"

        if len(deploy) != len(outputs):
            forward.append((f"return {result(outputs, 'NetOutputs')}", True))
            forward.append((f"return {result(deploy, 'EvalOutputs' if len(deploy) > 1 else 'NetOutputs')}", False))
        else:
            forward.append((f"return {result(outputs, 'NetOutputs')}", False))
        text = "\n".join(init + [code for code, _ in forward])
        return _Class(camel(self.net.name), None, self.net.name, init, forward, text, _holes(text)[2], [None],
                      [], [self.net.input_shape], [shapes])

    def _class_name(self, block: str, init: list[str]) -> str:
        base = camel(block)
        name = base
        if name in self.taken:
            mine = [_target(line) for line in init]
            theirs = {_target(line) for c in self.classes if c.block == block for line in c.init}
            extra = [t for t in mine if t and t not in theirs]
            label = extra[0].rpartition(".")[2] if extra else ""
            name = base + camel(label) if label.isidentifier() and not label[-1].isdigit() else base
            k = 2
            while name in self.taken:
                name, k = f"{base}{k}", k + 1
        self.taken.add(name)
        return name


def _target(line: str) -> Optional[str]:
    """The attribute an `__init__` line sets (`self.downsample = ...`: `downsample`), or None."""
    found = re.match(r"self\.([\w.]+) = ", line)
    return found.group(1) if found else None


def _indent(text: str, n: int) -> str:
    return "\n".join((" " * n + line) if line else line for line in text.split("\n"))


def _holes(text: str) -> tuple[tuple, list[str], list[tuple[int, int, int]]]:
    """The text with each number a hole (its structure), the numbers in order, and where each
    is (line, start and end column)."""
    structure, numbers, places = [], [], []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.NUMBER:
            numbers.append(tok.string)
            places.append((tok.start[0] - 1, tok.start[1], tok.end[1]))
            structure.append("#")
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.ENDMARKER):
            structure.append(tok.string)
    return tuple(structure), numbers, places


@dataclass
class _Plan:
    """What a class's `__init__` takes: `args` (names), each hole's expression (None: the
    number itself, equal in every instance), and each instance's arguments."""

    args: list[str]
    holes: list[Optional[str]]
    calls: list[list[str]]
    named: dict[str, tuple]  # an expression -> its value in each instance (for shape comments)

    def call(self, i: int) -> list[str]:
        return self.calls[i]


def _number(text: str):
    return pyast.literal_eval(text)


def _plan(cls: _Class, params: list[str]) -> _Plan:
    count = len(cls.instances)
    holes = len(cls.numbers[0])
    columns = [tuple(_number(cls.numbers[i][j]) for i in range(count)) for j in range(holes)]
    # named vectors: the block's parameters, then the input's channels
    named: dict[str, tuple] = {}
    values = [_title_values(scope.title) for scope in cls.instances]
    for k, p in enumerate(params):
        column = tuple(v[k] if k < len(v) else None for v in values)
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in column):
            named.setdefault(p, column)
    named.setdefault("in_channels", tuple(shape[0] for shape in cls.ins))
    used: list[str] = []
    extra: dict[tuple, str] = {}
    exprs: list[Optional[str]] = []

    for column in columns:
        if len(set(column)) == 1:
            exprs.append(None)
            continue
        found = _derived(column, named)
        if found is None:
            if column not in extra:
                extra[column] = f"arg{len(extra) + 1}"
                named[extra[column]] = column
            found = extra[column], extra[column]
        name, expr = found
        if name not in used:
            used.append(name)
        exprs.append(expr)
    order = [p for p in params if p in used] + [n for n in used if n not in params]
    calls = [[repr(named[n][i]) for n in order] for i in range(count)]
    return _Plan(order, exprs, calls, named)


def _derived(column: tuple, named: dict[str, tuple]) -> Optional[tuple[str, str]]:
    """(name, expression) giving `column` from one of the `named` vectors: the name itself, or
    a small multiple or exact fraction of it (`planes * 4`, `out // 2`)."""
    for name, base in named.items():
        if column == base:
            return name, name
    for name, base in named.items():
        if not all(isinstance(b, int) and not isinstance(b, bool) and isinstance(c, int) and b > 0
                   for b, c in zip(base, column)):
            continue
        for k in range(2, 17):
            if all(c == b * k for b, c in zip(base, column)):
                return name, f"{name} * {k}"
            if all(b % k == 0 and c == b // k for b, c in zip(base, column)):
                return name, f"{name} // {k}"
    return None


def _sum_of(column: tuple, named: dict[str, tuple]) -> Optional[str]:
    """`c1+c3+c5+proj` where `column` is the sum of up to four of the `named` vectors."""
    names = [n for n, v in named.items() if all(isinstance(x, int) and not isinstance(x, bool) for x in v)]
    for size in range(2, min(4, len(names)) + 1):
        for chosen in itertools.combinations(names, size):
            if all(sum(named[n][i] for n in chosen) == c for i, c in enumerate(column)):
                return "+".join(chosen)
    return None


def _shape_comment(cls: _Class, plan: _Plan, row: int) -> Optional[str]:
    rows = [shapes[row] for shapes in cls.shape_rows]
    if any(r is None for r in rows):
        return None
    if len(set(rows)) == 1:
        return fmt_shape(rows[0])
    ins = cls.ins
    letters = {1: "L", 2: "HW", 3: "DHW"}
    dims = []
    for d in range(len(rows[0])):
        column = tuple(r[d] for r in rows)
        text = None
        if len(set(column)) == 1:
            text = str(column[0])
        args = {name: plan.named[name] for name in plan.args}
        found = _derived(column, args) if text is None else None
        if found is not None:
            text = found[1].replace(" ", "")
        if text is None and d == 0:  # a concat's channels: the sum of some of the arguments
            text = _sum_of(column, args)
        if text is None and d > 0 and len(ins[0]) == len(rows[0]):
            axis = letters.get(len(ins[0]) - 1, "?" * 4)[d - 1]
            base = tuple(shape[d] for shape in ins)
            if base == column:
                text = axis
            for k in range(2, 33):
                if text is None and all(b == c * k for b, c in zip(base, column)):
                    text = f"{axis}/{k}"
                if text is None and all(c == b * k for b, c in zip(base, column)):
                    text = f"{axis}*{k}"
        dims.append(text or "?")
    return "x".join(dims) if all(d.isdigit() for d in dims) else " x ".join(dims)


def _class_source(cls: _Class, plan: _Plan) -> str:
    lines = cls.text.split("\n")
    in_forward = set()
    for j, (line, start, end) in sorted(enumerate(cls.places), key=lambda t: (-t[1][0], -t[1][1])):
        expr = plan.holes[j]
        if expr is None:
            continue
        if line >= cls.init_rows:
            for name in plan.args:
                if re.search(rf"\b{name}\b", expr):
                    in_forward.add(name)
            expr = re.sub(r"\b([A-Za-z_]\w*)\b", r"self.\1", expr)
        text = lines[line]
        lines[line] = text[:start] + expr + text[end:]
    init, forward = lines[:cls.init_rows], lines[cls.init_rows:]
    what = "net" if cls.block is None else "block"
    head = [f"class {cls.name}(nn.{'Sequential' if cls.sequential else 'Module'}):"]
    if cls.block is not None:
        titles = list(dict.fromkeys(scope.title for scope in cls.instances))
        shown = [t for k, t in enumerate(titles) if len(", ".join(titles[:k + 1])) < 60] or titles[:1]
        uses = ", ".join(shown) + (", ..." if len(shown) < len(titles) else ".")
        note = ""
        if cls.why:  # the reader learns why this block is not one class of its definition
            why = f"Written per structure of its instances, as its definition is not one class: {cls.why}."
            note = "\n\n" + "\n".join(textwrap.wrap(why, 96, initial_indent="    ", subsequent_indent="    "))
        head.append(f'    """The {what} `{cls.block}`: {uses}{note}"""')
    else:
        head.append(f'    """The {what} `{cls.title}`."""')
    signature = f"    def __init__({', '.join(['self'] + plan.args)}):"
    if cls.sequential:  # each item's shape after its last line
        out, at = head + ["", signature, "        super().__init__("], 0
        for row, item in enumerate(cls.init):
            count = item.count("\n") + 1
            part = init[at:at + count]
            comment = _shape_comment(cls, plan, row)
            part[-1] += f"  # {comment}" if comment else ""
            out += [f"            {line}" if line else line for line in part]
            at += count
        return "\n".join(out + ["        )"])
    out = head + ["", signature, "        super().__init__()"]
    out += [f"        self.{name} = {name}" for name in plan.args if name in in_forward]
    out += _indent("\n".join(init), 8).split("\n") if init else []
    out += ["", "    def forward(self, x):"]
    training = False
    for row, (code, (_, train_only)) in enumerate(zip(forward, cls.forward)):
        if train_only and not training:
            out.append("        if self.training:  # the training-only heads")
        training = train_only
        comment = _shape_comment(cls, plan, row) if row < len(cls.shape_rows[0]) else None
        pad = "    " if train_only else ""
        body = code.split("\n")
        body[-1] += f"  # {comment}" if comment else ""
        out += [f"        {pad}{part}" for part in body]
    return "\n".join(out)


def _block_params(program) -> dict[str, list[str]]:
    from .ast import BlockDef

    return {d.name: [p.name for p in d.params] for d in program.definitions if isinstance(d, BlockDef)}


def _title_values(title: str) -> list:
    """The arguments of a block title (`basic(64, 2)`) as Python values (None: not a literal)."""
    inside = title[title.find("(") + 1:-1] if "(" in title else ""
    parts, depth, current = [], 0, ""
    for ch in inside:
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += ch in "(["
        depth -= ch in ")]"
        current += ch
    if current.strip():
        parts.append(current.strip())
    values = []
    for p in parts:
        try:
            values.append(pyast.literal_eval(p))
        except (ValueError, SyntaxError):
            values.append(None)
    return values


def eject(network) -> str:
    """The net as a standalone PyTorch source file; see the module docstring. Raises
    `netdsl.backend.UncompilableNet` for a net that compile refuses by its names (a layer named
    `forward`, say), which would be no module here either."""
    from . import parser
    from .backend.fx import _check_names
    from .eject_blocks import Classes
    from .ops import modules

    _check_names(network)
    program = parser.parse(network.source, network.filename)
    params = _block_params(program)
    # no block class takes the name of the net's class or of a module class copied into the file
    taken = {camel(network.name)} | {name for name, value in vars(modules).items() if isinstance(value, type)}
    defs = Classes(program, network.ir, os.path.basename(network.filename), taken)
    plans: dict[str, _Plan] = {}
    for _ in range(16):  # a class's arguments shape the calls in the class around it: until they settle
        writer = _Writer(network, plans, defs)
        net = writer.net_class()
        fresh = {cls.name: _plan(cls, params.get(cls.block, [])) for cls in writer.classes if isinstance(cls, _Class)}
        if fresh == plans:
            break
        plans = fresh
    else:  # pragma: no cover
        raise EjectError("the block classes' arguments do not settle")
    return _file(network, writer, net, plans)


def _file(network, writer: _Writer, net: _Class, plans: dict[str, _Plan]) -> str:
    from .eject_blocks import HELPERS, BlockClass
    from .ops import modules

    def text(cls) -> str:
        return cls.text if isinstance(cls, BlockClass) else _class_source(cls, plans[cls.name])

    own = [cls for cls in writer.classes if isinstance(cls, BlockClass)]
    functions = list(dict.fromkeys(h for cls in own for h in cls.needs.helpers))

    first = f"The net `{network.name}` as PyTorch code, written by `netdsl eject` from"
    name = os.path.basename(network.filename)
    first += f" {name}." if len(first) + len(name) < 90 else f"\n{name}."
    parts = [f'"""{first}\n\n'
             "Standalone (torch only). Its state_dict keys are those of the net compiled by netdsl, so either\n"
             'loads the other\'s weights; the shapes in comments are per example (no batch)."""']
    writer.uses_ordered_dict |= any(cls.needs.ordered_dict for cls in own)
    stdlib = (["from collections import OrderedDict"] if writer.uses_ordered_dict else []) + \
        (["from collections import namedtuple"] if writer.tuples else [])
    if writer.uses_ordered_dict and writer.tuples:
        stdlib = ["from collections import OrderedDict, namedtuple"]
    helpers = [inspect.getsource(getattr(modules, name)).rstrip() for name in writer.helpers] + \
        [HELPERS[name] for name in functions]
    body = "\n".join(helpers) + "\n".join(text(cls) for cls in writer.classes) + \
        _class_source(net, _Plan([], [None] * len(net.places), [[]], {}))
    stdlib = (["import math"] if any(cls.needs.math for cls in own) else []) + stdlib
    third = (["import torch"] if "torch." in body else []) + ["from torch import nn"]
    imports = "\n".join(stdlib + ([""] if stdlib else []) + third)
    tuples = [f"{name} = namedtuple({name!r}, {fields!r})" for name, fields in writer.tuples.items()]
    parts[0] += "\n\n" + "\n\n".join([imports] + ["\n".join(tuples)] if tuples else [imports])
    parts += helpers
    parts += [text(cls) for cls in writer.classes]
    parts.append(_class_source(net, _Plan([], [None] * len(net.places), [[]], {})))
    return "\n\n\n".join(parts) + "\n"
