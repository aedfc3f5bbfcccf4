"""What an op is: `OpSpec`, its attributes and their types, its diagram kind, and the registry.

Everything netdsl knows about a layer kind is one `OpSpec` (see netdsl/ops/__init__.py for
the conventions every entry follows); the passes, the diagram, the backend, the docs and the
registry-wide tests read it from here and nowhere else.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from .. import codes

Shape = tuple[int, ...]
Attrs = Mapping[str, Any]


class ShapeError(Exception):
    """Raised by a shape rule: `code` and `message` become a diagnostic at the layer."""

    def __init__(self, code: str, message: str, help: Optional[str] = None,
                 bad_inputs: Sequence[int] = ()):
        super().__init__(message)
        self.code, self.message, self.help = code, message, help
        self.bad_inputs = tuple(bad_inputs)  # which inputs to point at in notes


class AttrError(Exception):
    """Raised by an attribute type for a value it does not accept."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Symbol:
    """A bare word that is not a parameter, such as `same` in `pad=same`."""

    name: str

    def __str__(self) -> str:
        return self.name


# --- attribute types ---------------------------------------------------------------------

def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def fmt_value(v: Any) -> str:
    """A value as the language writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        if v and all(is_int(x) and x >= 0 for x in v):
            return "x".join(str(x) for x in v)
        return f"({', '.join(map(fmt_value, v))})"
    return str(v)


def fmt_shape(shape: Optional[Shape]) -> str:
    return "?" if shape is None else "x".join(map(str, shape))


def describe_value(v: Any) -> str:
    """A value in an error message: `the integer 3`, `the word `same``."""
    if isinstance(v, bool):
        return f"the boolean {fmt_value(v)}"
    if isinstance(v, int):
        return f"the integer {v}"
    if isinstance(v, float):
        return f"the number {v}"
    if isinstance(v, Symbol):
        return f"the word `{v}`"
    if isinstance(v, tuple):
        text = fmt_value(v)
        return f"the tuple {text if len(text) <= 40 else text[:37] + '...'}"
    return repr(v)


@dataclass(frozen=True)
class Int:
    min: int = 1
    doc = "integer"

    def convert(self, v: Any, name: str) -> int:
        if not is_int(v):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects an integer, got {describe_value(v)}")
        if v < self.min:
            raise AttrError(codes.OUT_OF_RANGE, f"`{name}` must be at least {self.min}, got {v}")
        return v


@dataclass(frozen=True)
class Float:
    min: float = 0.0
    max: float = math.inf
    above: bool = False   # `min` itself is not allowed (an epsilon that must be positive)
    doc = "number"

    def convert(self, v: Any, name: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects a number, got {describe_value(v)}")
        try:
            x = float(v)
        except OverflowError:  # an integer of hundreds of digits
            x = math.inf
        if not (self.min <= x <= self.max and math.isfinite(x)) or (self.above and x == self.min):
            low = f"above {self.min}" if self.above else f"at least {self.min}"
            bound = low if self.max == math.inf else \
                f"{low} and at most {self.max}" if self.above else f"between {self.min} and {self.max}"
            raise AttrError(codes.OUT_OF_RANGE, f"`{name}` must be a finite number {bound}, got {fmt_value(v)}")
        return x


@dataclass(frozen=True)
class Bool:
    doc = "true/false"

    def convert(self, v: Any, name: str) -> bool:
        if not isinstance(v, bool):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects true or false, got {describe_value(v)}")
        return v


class Every(tuple):
    """One size given for every spatial axis (`3`), before the input's rank is known: it reads
    as the square pair it meant before netdsl had sequences and volumes (`3` is (3, 3)), and
    `per_axis` spreads it over however many axes the input has. A size given per axis (`7x1`,
    `(3, 1, 1)`) is a plain tuple."""

    def spread(self, rank: int) -> tuple[int, ...]:
        return (self[0],) * rank


def spatial_name(rank: int) -> str:
    """What a tensor of `rank` spatial axes is called in messages."""
    return {1: "a sequence", 2: "an image", 3: "a volume"}.get(rank, f"a tensor of {rank} spatial axes")


AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def axis_names(rank: int) -> tuple[str, ...]:
    """The spatial axes by name: (`height`, `width`) for images."""
    return AXES.get(rank, tuple(f"axis {i + 1}" for i in range(rank)))


def per_axis(v: Any, rank: int, name: str) -> Any:
    """A converted `Pair` (or `Factor`) value for an input of `rank` spatial axes: one size per
    axis. A word (`same`), a single number (a Factor's) and None stay as they are; sizes per
    axis whose count is not the rank are a ShapeError (E411)."""
    if isinstance(v, Every):
        return v.spread(rank)
    if isinstance(v, tuple) and len(v) != rank:
        raise ShapeError(codes.RANK_MISMATCH, f"`{name}` gives {len(v)} sizes ({fmt_value(v)}), but the input is "
                         f"{spatial_name(rank)} with {rank} spatial ax{'is' if rank == 1 else 'es'}",
                         help=f"give one size for every axis ({' x '.join(axis_names(rank))}), "
                              "or a single number for all")
    return v


@dataclass(frozen=True)
class Pair:
    """A size per spatial axis: `3` means 3 on every axis (3x3 on an image, 3x3x3 on a volume);
    `7x1` or `(7, 1)` give height and width, `3x1x1` depth, height and width. Converted without
    knowing the input: one number becomes an `Every`, which `per_axis` spreads over the input's
    axes once its shape is known (OpSpec.resolve)."""

    min: int = 1
    symbols: tuple[str, ...] = ()  # bare words also accepted, e.g. ("same", "valid")
    doc = "HxW"
    per_axis = True  # OpSpec.resolve makes it one size per spatial axis of the input

    def convert(self, v: Any, name: str):
        given = v
        if isinstance(v, Symbol):
            if v.name in self.symbols:
                return v.name
            raise AttrError(codes.WRONG_TYPE, f"`{name}` does not accept the word `{v}`"
                            + (f" (it accepts {', '.join(self.symbols)})" if self.symbols else ""))
        if is_int(v):
            v = Every((v, v))
        if not (isinstance(v, tuple) and 1 <= len(v) <= 3 and all(is_int(x) for x in v)):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects an integer or a pair like 3x3, "
                            f"got {describe_value(v)}")
        if min(v) < self.min:
            raise AttrError(codes.OUT_OF_RANGE, f"`{name}` must be at least {self.min}, got {fmt_value(given)}")
        return v if isinstance(v, Every) else tuple(v)


@dataclass(frozen=True)
class Factor:
    """A positive scale: one number for every spatial axis (`2`, `1.5`), or one per axis (`(1, 2, 2)`)."""

    doc = "number or per axis"
    per_axis = True

    def convert(self, v: Any, name: str):
        items = v if isinstance(v, tuple) else (v,)
        if not (1 <= len(items) <= 3 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items)):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects a number or one per axis like (1, 2, 2), "
                            f"got {describe_value(v)}")
        if not all(0 < x < math.inf for x in items):
            raise AttrError(codes.OUT_OF_RANGE, f"`{name}` must be above 0 (and finite), got {fmt_value(v)}")
        return v


@dataclass(frozen=True)
class Choice:
    """One of a few bare words: `mode=bilinear`."""

    symbols: tuple[str, ...]

    @property
    def doc(self) -> str:
        return "|".join(self.symbols)

    def convert(self, v: Any, name: str) -> str:
        if isinstance(v, Symbol):
            v = v.name
        if not (isinstance(v, str) and v in self.symbols):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects one of {', '.join(self.symbols)}, "
                            f"got {describe_value(Symbol(v) if isinstance(v, str) else v)}")
        return v


@dataclass(frozen=True)
class Maybe:
    """Another type's values, or None when left out (`upsample`'s `size`, given or not)."""

    type: Any

    @property
    def doc(self) -> str:
        return self.type.doc

    @property
    def symbols(self) -> tuple[str, ...]:
        return getattr(self.type, "symbols", ())

    @property
    def per_axis(self) -> bool:
        return getattr(self.type, "per_axis", False)

    def convert(self, v: Any, name: str):
        return None if v is None else self.type.convert(v, name)


@dataclass(frozen=True)
class Dims:
    """The sizes of a tensor, as the input declares them (`3x224x224`)."""

    doc = "CxHxW"

    def convert(self, v: Any, name: str) -> Shape:
        if not (isinstance(v, tuple) and v and all(is_int(x) for x in v)):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects sizes like 3x224x224, got {describe_value(v)}")
        return v


REQUIRED = object()


@dataclass(frozen=True)
class Attr:
    """One attribute of an op. `default` may be REQUIRED, a value, or a function of the
    attributes bound before it (pools: `stride` defaults to `kernel`)."""

    name: str
    type: Any
    default: Any = REQUIRED
    positional: bool = False
    doc: str = ""
    rest: bool = False  # the last positional attribute collects every positional argument from
    #                     its place on into one tuple: `split(16, 48)`

    def default_for(self, bound: Mapping[str, Any]) -> Any:
        if callable(self.default):
            return self.type.convert(self.default(bound), self.name)
        return self._fixed_default

    @functools.cached_property
    def _fixed_default(self) -> Any:
        # converted once: describing 100,000 layers compares each attribute with its default
        return self.type.convert(self.default, self.name)


# --- how an op is drawn ------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """A family of ops as a diagram shows it: one colour per kind, in every net. `folds`: a
    layer of this kind that follows one layer is drawn inside that layer's box (`conv + relu`);
    `small`: on its own it is a small mark, not a full box (it computes nothing worth a box)."""

    name: str
    fill: str
    border: str
    folds: bool = False
    small: bool = False


INPUT_KIND = Kind("input", "#ffffff", "#333333")
CONV = Kind("convolution", "#dbe8f7", "#3f6fae")
POOL = Kind("pooling", "#dcf0d5", "#4b8a3a")
NORM = Kind("normalisation", "#fbf0c4", "#b08d1a")
DENSE = Kind("dense", "#e8dcf3", "#7a52a6")
ACTIVATION = Kind("activation", "#eeeeee", "#888888", folds=True, small=True)
REGULARISATION = Kind("regularisation", "#f4f4f4", "#9a9a9a", folds=True, small=True)
RESHAPE = Kind("reshape", "#f4f4f4", "#9a9a9a", small=True)
JOIN = Kind("join", "#fde3c8", "#c26a12")
KINDS = (INPUT_KIND, CONV, POOL, NORM, DENSE, ACTIVATION, REGULARISATION, RESHAPE, JOIN)


@dataclass(frozen=True)
class Mark:
    """A join drawn as a small symbol rather than a box: `+` in a circle, `concat` in an ellipse."""

    text: str
    shape: str  # "circle" or "ellipse"


@dataclass(frozen=True)
class Example:
    """A use of the op for the registry-wide tests: the input shape and the item as the
    language writes it (for a join, the whole join with its branches)."""

    input: str
    text: str


@dataclass(frozen=True)
class Eject:
    """How `Network.eject` writes a layer as PyTorch source (netdsl/eject.py): `module`, the
    expression that constructs its torch module (`nn.Conv2d(64, 128, 3, stride=2, bias=False)`),
    and/or `call`, a functional forward with its inputs as `{x0}`, `{x1}`, ... (`torch.cat([{x0},
    {x1}], 1)`; exactly `{x0}`: the input itself, no line). An op with both is written as `call` in
    a forward and as `module` inside an `nn.Sequential`. `helpers`: classes of netdsl.ops.modules
    the module needs (torch has none like them), copied into the file. `parameter`: a `bare` op's
    tensor (`torch.full([64, 1, 1], 1e-06)`), held as an `nn.Parameter` named by the layer and
    read by `call` as `{w}`."""

    module: Optional[str] = None
    call: Optional[str] = None
    helpers: tuple[str, ...] = ()
    parameter: Optional[str] = None


def py(v: Any) -> str:
    """A value as Python source: a square size reads as one number (`3`, not `(3, 3)`)."""
    if isinstance(v, tuple):
        if v and len(set(v)) == 1 and not isinstance(v[0], tuple):
            return py(v[0])
        return f"({', '.join(map(py, v))}{',' if len(v) == 1 else ''})"
    if isinstance(v, list):
        return f"[{', '.join(map(py, v))}]"
    return repr(v)


def pycall(callee: str, *args: Any, defaults: Mapping[str, Any] = {}, **kwargs: Any) -> str:
    """`callee(args, name=value)` as source, leaving out each keyword whose value is its default
    in `defaults` (torch's): `pycall("nn.Conv2d", 3, 8, 3, stride=1, defaults={"stride": 1})`."""
    shown = [py(a) for a in args]
    shown += [f"{k}={py(v)}" for k, v in kwargs.items() if k not in defaults or py(defaults[k]) != py(v)]
    return f"{callee}({', '.join(shown)})"


class CannotImport(Exception):
    """Raised by a `FromTorch`'s `attrs` for a module or call the op cannot stand for (a conv
    with reflect padding, a flatten from dim 2): the message says what is missing."""


@dataclass(frozen=True)
class TensorArg:
    """A tensor among a traced call's arguments (`Call.args`): its shape per example."""

    shape: Optional[Shape] = None


@dataclass(frozen=True)
class Call:
    """A traced function or method call, as a `FromTorch` for a function reads it: its
    arguments, tensors as `TensorArg`s (the receiver of a method first)."""

    args: tuple
    kwargs: Mapping[str, Any]

    def arg(self, index: int, name: str, default: Any = REQUIRED) -> Any:
        """Argument `index` (by position) or `name` (by keyword), else `default`."""
        if index < len(self.args):
            return self.args[index]
        if name in self.kwargs:
            return self.kwargs[name]
        if default is REQUIRED:
            raise CannotImport(f"no argument `{name}`")
        return default


def _no_attrs(source: Any) -> dict:
    return {}


@dataclass(frozen=True)
class FromTorch:
    """How `netdsl import` maps a torch module class or function to the op: `target` names the
    class (`torch.nn.Conv2d`), the function (`torch.flatten`, `operator.add`) or, as
    `Tensor.NAME`, the method (`Tensor.flatten`); `attrs` gives the op's attributes from the
    module (duck-typed: it reads the module's attributes) or from the `Call`, raising
    CannotImport for what the op cannot express; `then` names ops with no attributes that
    follow it (`x.mean([2, 3])` is a global pool, then a flatten); `channels_last`: the mapping
    of a module applied to a tensor whose channels a permute moved last (ConvNeXt's nn.Linear
    between its permutes is a `channel_linear`). `torch.nn.Parameter` stands for a module's bare
    parameter that the op's `bare` function applies (ConvNeXt's `layer_scale * x`). Names are
    strings, so the registry never imports torch."""

    target: str
    attrs: Callable[[Any], dict] = _no_attrs
    then: tuple[str, ...] = ()
    channels_last: bool = False

    @property
    def method(self) -> Optional[str]:
        """The method's name for a `Tensor.NAME` target, else None."""
        return self.target[len("Tensor."):] if self.target.startswith("Tensor.") else None


def _zero(in_shapes: Sequence[Shape], attrs: Attrs, out: Shape) -> int:
    return 0


def _no_buffers(in_shapes: Sequence[Shape], attrs: Attrs, out: Shape) -> tuple[int, int]:
    return 0, 0


def _saves_nothing(in_shapes: Sequence[Shape], attrs: Attrs, out: Shape) -> tuple:
    return ()


@dataclass(frozen=True)
class OpSpec:
    """Everything about one op.

    - `infer(in_shapes, attrs) -> Shape` raises ShapeError; `params` and `macs` take
      `(in_shapes, attrs, out_shape)`, as does `buffers`, which gives the module's buffers as
      (values in the net's dtype, int64 counters): BatchNorm's running statistics, for memory; `build(in_shapes, attrs)` returns a torch.nn.Module
      (importing torch inside);
    - `join`: the op takes the outputs of several branches (its module takes them as one list);
      `source`: it takes no input and stands for the net's input (the backend's placeholder);
    - `fork`: a join whose branches each take a part of its input rather than all of it (`split`):
      `fork(attrs, i, n)` gives the op (a registry name) and attributes of the layer that hands
      branch i of n its part, which lowering puts first in the branch; it raises AttrError when
      the join's attributes cannot fork into n branches;
    - `kind`, `label(attrs)` (a diagram box's short text; default: `describe`) and `mark` say
      how a diagram draws it;
    - `overwritable` and `aliases` are the backend's in-place flags: the next layer may overwrite
      this op's output, because its backward pass does not read it (conv does not; sigmoid and
      ReLU do); the module may return its input's memory (the input itself, or a view of it);
      `in_place`: the torch module can work in place (it has torch's `inplace` switch), which the
      backend turns on where `overwritable` and the graph allow it; `copies_in_training`: an
      `aliases` op that makes a tensor of its own in training mode (dropout);
    - `saves(in_shapes, attrs, out_shape)`: what its backward pass keeps, for the memory model
      (netdsl/memory.py): `"in"` (its first input's memory), `"ins"` (every input's),
      `"out"` (its own), or `(values per example, bytes per value)` for a tensor it makes for
      itself (0 bytes: the net's dtype; a third item `"once"`: values for the whole batch);
    - `scratch(in_shapes, attrs, out_shape)`: the temporaries alive at its busiest moment in
      inference beyond its inputs and output (an op made of several torch calls, such as LRN):
      values per example in the net's dtype, or, like `saves`' tensors of their own,
      `(values per example, bytes per value)` pairs (adaptive max pooling's int64 indices, which
      torch makes and drops even when only the output is asked for);
    - `copies_input_in_place`: working in place in a training forward, the op's backward still
      reads the input it overwrites, so autograd keeps a copy of it (torch clones `self` for
      `silu_`, `hardswish_`, `hardsigmoid_`, `mish_`): its `"in"` is then a tensor of its own,
      not its input's memory (which holds its output);
    - `eject(in_shapes, attrs) -> Eject`: the layer as PyTorch source (`Network.eject`); every
      op with a `build` has one, made from the same attributes;
    - `bare(weight, x)`: the op holds its one tensor as a bare parameter, as torchvision's
      CNBlock holds `layer_scale`: the compiled net registers it on the enclosing scope's module
      under the layer's own name (state_dict key `features.1.0.layer_scale`, not
      `...layer_scale.weight`), and its graph reads it (`get_attr`) and computes `bare(weight, x)`,
      a function of tensors that fx records as one call (`operator.mul`) and that pickles by name.
      `build` still gives a module holding that one parameter (and no buffer) and computing the
      same, which makes the tensor (its init, on the build's device) and which the registry-wide
      tests run on its own;
    - `examples`: uses of the op that the registry-wide tests run through every path;
    - `imports`: the torch modules and functions `netdsl import` maps to this op (`FromTorch`);
    - `doc`, `shape_doc`, `params_doc`: its row in the README's op table (docs/readme_tables.py).
    """

    name: str
    attrs: tuple[Attr, ...]
    infer: Callable[[Sequence[Shape], Attrs], Shape]
    build: Optional[Callable[[Sequence[Shape], Attrs], Any]]
    kind: Kind
    doc: str
    examples: tuple[Example, ...]
    params: Callable[[Sequence[Shape], Attrs, Shape], int] = _zero
    macs: Callable[[Sequence[Shape], Attrs, Shape], int] = _zero
    buffers: Callable[[Sequence[Shape], Attrs, Shape], tuple[int, int]] = _no_buffers
    join: bool = False
    source: bool = False
    label: Optional[Callable[[Attrs], str]] = None
    mark: Optional[Mark] = None
    overwritable: bool = False
    aliases: bool = False
    in_place: bool = False
    copies_in_training: bool = False
    copies_input_in_place: bool = False
    saves: Callable[[Sequence[Shape], Attrs, Shape], tuple] = _saves_nothing
    scratch: Callable[[Sequence[Shape], Attrs, Shape], Any] = _zero
    shape_doc: str = "unchanged"   # the README's op table: what the op does to a shape,
    params_doc: str = "0"          # and how many parameters it learns
    family: str = ""
    fork: Optional[Callable[[Attrs, int, int], tuple[str, dict]]] = None
    eject: Optional[Callable[[Sequence[Shape], Attrs], Eject]] = None
    imports: tuple[FromTorch, ...] = ()
    bare: Optional[Callable[[Any, Any], Any]] = None

    def describe(self, attrs: Attrs, exprs: Mapping[str, str] = {}) -> str:
        """The layer as the language writes it, defaults left out: `conv(64, 7, stride=2)`.
        Required attributes come by position, the others by name, but for an op's first
        attribute, whose meaning is plain without one (`dropout(0.7)`, `lrn(5)`). `exprs`
        gives some attributes as expressions instead (`conv(planes, 3)`: a block's parameter)."""
        shown = []
        for a in self.attrs:
            v = attrs[a.name]
            if a.name in exprs:
                bare = a.default is REQUIRED or (a is self.attrs[0] and a.positional)
                shown.append(exprs[a.name] if bare else f"{a.name}={exprs[a.name]}")
                continue
            if a.default is not REQUIRED:
                default = a.default_for(attrs)
                if isinstance(default, Every) and isinstance(v, tuple):
                    default = default.spread(len(v))  # `stride=1` against a resolved (1, 1, 1)
                if v == default:
                    continue
            if a.rest:  # the positional arguments it collected, as they were written
                shown.append(", ".join(map(fmt_value, v)))
                continue
            if isinstance(v, tuple) and len(v) >= 2 and len(set(v)) == 1 and (len(v) == 2 or isinstance(a.type, Pair)):
                v = v[0]  # a square (or cubic) window reads as one size
            text = fmt_value(v)
            bare = a.default is REQUIRED or (a is self.attrs[0] and a.positional)
            shown.append(text if bare else f"{a.name}={text}")
        return f"{self.name}({', '.join(shown)})" if shown else self.name

    def resolve(self, in_shapes: Sequence[Shape], attrs: Attrs) -> Attrs:
        """`attrs` with every size-per-axis attribute (`Pair`) given one size per spatial axis of
        the first input: `3` becomes (3, 3, 3) before a volume. Raises ShapeError (E411) for a
        count of sizes that disagrees with the input. An input with no spatial axes, or more
        than 3, is left to the shape rule, which says what the op expects."""
        pairs = self._pairs
        if not pairs or not in_shapes or not 2 <= len(in_shapes[0]) <= 4:
            return attrs
        rank = len(in_shapes[0]) - 1
        if rank == 2:  # an image: an Every already reads as its pair, so only counts are checked (no copy)
            for name in pairs:
                v = attrs[name]
                if isinstance(v, tuple) and len(v) != 2:
                    per_axis(v, rank, name)  # raises
            return attrs
        resolved = dict(attrs)
        for name in pairs:
            resolved[name] = per_axis(attrs[name], rank, name)
        return resolved

    @functools.cached_property
    def _pairs(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attrs if getattr(a.type, "per_axis", False))

    def brief(self, attrs: Attrs) -> str:
        """The op as a diagram box writes it: `conv 64 7×7/2`, `linear 1000`."""
        return self.label(attrs) if self.label is not None else self.describe(attrs)


REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add an op to the registry (each name once)."""
    if spec.name in REGISTRY:
        raise ValueError(f"op {spec.name!r} is registered twice")
    if not spec.examples:
        raise ValueError(f"op {spec.name!r} needs at least one example for the registry-wide tests")
    REGISTRY[spec.name] = spec
    return spec


def family(name: str) -> Callable[..., OpSpec]:
    """`register` for one family file: `op = family("pool")`, then `op(OpSpec fields...)`."""

    def op(*args: Any, **fields: Any) -> OpSpec:
        return register(OpSpec(*args, family=name, **fields))

    return op


def examples(*pairs: tuple[str, str]) -> tuple[Example, ...]:
    """`examples(("3x8x8", "conv(4, 3)"), ...)`."""
    return tuple(Example(shape, text) for shape, text in pairs)
