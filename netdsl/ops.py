"""The op registry: every layer kind of the language, declared once.

An `OpSpec` holds everything netdsl knows about one op: its attributes (types, defaults,
which may be given positionally), its shape rule, its parameter count, its MAC count and the
torch module it compiles to. Adding a layer kind is one `register(OpSpec(...))` here plus its
row in the tests, which are parametrised over this registry (tests/test_ops.py compares every
shape rule and parameter count with the real torch module).

Conventions, stated once:
- shapes are per example, without the batch dimension: images are (C, H, W), vectors (C,);
- params are learnable parameters, biases included; BatchNorm counts 2*C (its running
  statistics are buffers, not parameters);
- MACs are the multiply-accumulates of conv and linear layers only (bias additions, pools,
  activations and normalisation are not counted); FLOPs = 2 * MACs.

torch is imported inside the builders only, so checking and summarising never load it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

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

def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def fmt_value(v: Any) -> str:
    """A value as the language writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        if v and all(_is_int(x) and x >= 0 for x in v):
            return "x".join(str(x) for x in v)
        return f"({', '.join(map(fmt_value, v))})"
    return str(v)


def _describe(v: Any) -> str:
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

    def convert(self, v: Any, name: str) -> int:
        if not _is_int(v):
            raise AttrError("E305", f"`{name}` expects an integer, got {_describe(v)}")
        if v < self.min:
            raise AttrError("E306", f"`{name}` must be at least {self.min}, got {v}")
        return v


@dataclass(frozen=True)
class Float:
    min: float = 0.0
    max: float = math.inf

    def convert(self, v: Any, name: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise AttrError("E305", f"`{name}` expects a number, got {_describe(v)}")
        try:
            x = float(v)
        except OverflowError:  # an integer of hundreds of digits
            x = math.inf
        if not (self.min <= x <= self.max and math.isfinite(x)):
            bound = f"between {self.min} and {self.max}" if self.max != math.inf else f"at least {self.min}"
            raise AttrError("E306", f"`{name}` must be a finite number {bound}, got {fmt_value(v)}")
        return x


@dataclass(frozen=True)
class Bool:
    def convert(self, v: Any, name: str) -> bool:
        if not isinstance(v, bool):
            raise AttrError("E305", f"`{name}` expects true or false, got {_describe(v)}")
        return v


@dataclass(frozen=True)
class Pair:
    """A size per spatial axis: `3` means 3x3; `7x1` or `(7, 1)` give height and width."""

    min: int = 1
    symbols: tuple[str, ...] = ()  # bare words also accepted, e.g. ("same", "valid")

    def convert(self, v: Any, name: str):
        given = v
        if isinstance(v, Symbol):
            if v.name in self.symbols:
                return v.name
            raise AttrError("E305", f"`{name}` does not accept the word `{v}`"
                            + (f" (it accepts {', '.join(self.symbols)})" if self.symbols else ""))
        if _is_int(v):
            v = (v, v)
        if not (isinstance(v, tuple) and len(v) == 2 and all(_is_int(x) for x in v)):
            raise AttrError("E305", f"`{name}` expects an integer or a pair like 3x3, got {_describe(v)}")
        if min(v) < self.min:
            raise AttrError("E306", f"`{name}` must be at least {self.min}, got {fmt_value(given)}")
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

    def default_for(self, bound: Mapping[str, Any]) -> Any:
        value = self.default(bound) if callable(self.default) else self.default
        return self.type.convert(value, self.name)


def _zero(in_shapes: Sequence[Shape], attrs: Attrs, out: Shape) -> int:
    return 0


@dataclass(frozen=True)
class OpSpec:
    """Everything about one op. `infer(in_shapes, attrs) -> Shape` raises ShapeError;
    `params` and `macs` take (in_shapes, attrs, out_shape); `build(in_shapes, attrs)` returns
    a torch.nn.Module. `join` ops take the outputs of several branches, and their modules take
    them as one list."""

    name: str
    attrs: tuple[Attr, ...]
    infer: Callable[[Sequence[Shape], Attrs], Shape]
    build: Callable[[Sequence[Shape], Attrs], Any]
    params: Callable[[Sequence[Shape], Attrs, Shape], int] = _zero
    macs: Callable[[Sequence[Shape], Attrs, Shape], int] = _zero
    join: bool = False
    doc: str = ""
    # For the torch backend's in-place rewrites (an in-place ReLU or sum saves a tensor's worth
    # of memory traffic). `overwritable`: the next layer may overwrite this op's output, because
    # its backward pass does not read it (conv does not; sigmoid and ReLU do). `aliases`: the
    # module may return its input's memory (the input itself, or a view of it).
    overwritable: bool = False
    aliases: bool = False
    def describe(self, attrs: Attrs) -> str:
        """The layer as the language writes it, defaults left out: `conv(64, 7, stride=2)`.
        Required attributes come by position, the others by name, but for an op's first
        attribute, whose meaning is plain without one (`dropout(0.7)`, `lrn(5)`)."""
        shown = []
        for a in self.attrs:
            v = attrs[a.name]
            if a.default is not REQUIRED and v == a.default_for(attrs):
                continue
            if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
                v = v[0]  # a square window reads as one size
            text = fmt_value(v)
            bare = a.default is REQUIRED or (a is self.attrs[0] and a.positional)
            shown.append(text if bare else f"{a.name}={text}")
        return f"{self.name}({', '.join(shown)})" if shown else self.name


REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"op {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


# --- shape helpers -----------------------------------------------------------------------

def fmt_shape(shape: Optional[Shape]) -> str:
    return "?" if shape is None else "x".join(map(str, shape))


def _needs_image(op: str, shape: Shape) -> None:
    if len(shape) != 3:
        raise ShapeError("E404", f"`{op}` expects an image (C x H x W), got {fmt_shape(shape)}",
                         help="its input is a vector: from `flatten` or `linear`, or an input declared "
                              "with one size" if len(shape) == 1 else None)


def window_out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> Optional[int]:
    """Output length of a sliding window (conv and pools), or None when no window fits.
    This is PyTorch's rule: in ceil mode a last, partial window counts if it starts inside
    the input or the left padding; one that would start inside the right padding is dropped."""
    reach = size + 2 * p - d * (k - 1) - 1
    out = (reach + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out if out >= 1 else None


def _windowed(op: str, shape: Shape, channels: int, kernel, stride, pad, dilation=(1, 1),
              ceil: bool = False) -> Shape:
    _needs_image(op, shape)
    if pad == "same":
        return (channels, shape[1], shape[2])
    pad = (0, 0) if pad == "valid" else pad
    out = []
    for axis, name in ((0, "height"), (1, "width")):
        n = window_out(shape[1 + axis], kernel[axis], stride[axis], pad[axis], dilation[axis], ceil)
        if n is None or n < 1:
            eff = dilation[axis] * (kernel[axis] - 1) + 1
            raise ShapeError("E401", f"the {eff}-wide window of `{op}` does not fit the input {name} "
                             f"{shape[1 + axis]} padded by {pad[axis]} on each side",
                             help="use a smaller kernel or more padding, or check the layers before")
        out.append(n)
    return (channels, out[0], out[1])


# --- the ops -----------------------------------------------------------------------------

def _conv_infer(ins, a):
    (shape,) = ins
    _needs_image("conv", shape)
    c = shape[0]
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeError("E405", f"`groups={a['groups']}` must divide both the input channels ({c}) "
                         f"and the output channels ({a['out']})")
    if a["pad"] == "same" and a["stride"] != (1, 1):
        raise ShapeError("E306", "`pad=same` needs `stride=1` (PyTorch has no strided same padding)",
                         help="give the padding as a number instead")
    return _windowed("conv", shape, a["out"], a["kernel"], a["stride"], a["pad"], a["dilation"])


def _conv_weights(ins, a):
    return a["out"] * (ins[0][0] // a["groups"]) * a["kernel"][0] * a["kernel"][1]


def _conv_build(ins, a):
    from torch import nn
    pad = 0 if a["pad"] == "valid" else a["pad"]
    return nn.Conv2d(ins[0][0], a["out"], a["kernel"], a["stride"], pad, a["dilation"],
                     a["groups"], a["bias"])


register(OpSpec(
    "conv",
    (Attr("out", Int(), positional=True, doc="output channels"),
     Attr("kernel", Pair(), positional=True, doc="kernel size"),
     Attr("stride", Pair(), 1, positional=True),
     Attr("pad", Pair(min=0, symbols=("same", "valid")), 0, positional=True,
          doc="zero padding on each side; `same` keeps H and W (stride 1 only)"),
     Attr("dilation", Pair(), 1),
     Attr("groups", Int(), 1),
     Attr("bias", Bool(), True)),
    infer=_conv_infer, build=_conv_build,
    params=lambda ins, a, out: _conv_weights(ins, a) + (a["out"] if a["bias"] else 0),
    macs=lambda ins, a, out: _conv_weights(ins, a) * out[1] * out[2],
    doc="2-D convolution (torch.nn.Conv2d)", overwritable=True,
))


def _pool_check_pad(op, a):
    if a["pad"][0] * 2 > a["kernel"][0] or a["pad"][1] * 2 > a["kernel"][1]:
        raise ShapeError("E306", f"`{op}` padding {fmt_value(a['pad'])} is more than half its kernel "
                         f"{fmt_value(a['kernel'])}", help="PyTorch allows at most half the kernel")


def _maxpool_infer(ins, a):
    _needs_image("maxpool", ins[0])
    _pool_check_pad("maxpool", a)
    return _windowed("maxpool", ins[0], ins[0][0], a["kernel"], a["stride"], a["pad"],
                     a["dilation"], a["ceil_mode"])


def _avgpool_infer(ins, a):
    _needs_image("avgpool", ins[0])
    _pool_check_pad("avgpool", a)
    return _windowed("avgpool", ins[0], ins[0][0], a["kernel"], a["stride"], a["pad"],
                     ceil=a["ceil_mode"])


def _maxpool_build(ins, a):
    from torch import nn
    return nn.MaxPool2d(a["kernel"], a["stride"], a["pad"], a["dilation"], ceil_mode=a["ceil_mode"])


def _avgpool_build(ins, a):
    from torch import nn
    return nn.AvgPool2d(a["kernel"], a["stride"], a["pad"], ceil_mode=a["ceil_mode"],
                        count_include_pad=a["count_include_pad"])


_POOL_ATTRS = (
    Attr("kernel", Pair(), positional=True),
    Attr("stride", Pair(), lambda bound: bound["kernel"], positional=True, doc="defaults to the kernel"),
    Attr("pad", Pair(min=0), 0, positional=True),
)

register(OpSpec("maxpool", _POOL_ATTRS + (Attr("dilation", Pair(), 1), Attr("ceil_mode", Bool(), False)),
                infer=_maxpool_infer, build=_maxpool_build, doc="max pooling (torch.nn.MaxPool2d)",
                overwritable=True))
register(OpSpec("avgpool", _POOL_ATTRS + (Attr("ceil_mode", Bool(), False),
                                          Attr("count_include_pad", Bool(), True)),
                infer=_avgpool_infer, build=_avgpool_build, doc="average pooling (torch.nn.AvgPool2d)",
                overwritable=True))


def _adaptive_infer(ins, a):
    _needs_image("adaptive_avgpool", ins[0])
    return (ins[0][0],) + a["size"]


def _adaptive_build(ins, a):
    from torch import nn
    return nn.AdaptiveAvgPool2d(a["size"])


register(OpSpec("adaptive_avgpool", (Attr("size", Pair(), 1, positional=True, doc="output HxW"),),
                infer=_adaptive_infer, build=_adaptive_build,
                doc="average pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d)"))


def _global_infer(ins, a):
    _needs_image("global_avgpool", ins[0])
    return (ins[0][0], 1, 1)


register(OpSpec("global_avgpool", (), infer=_global_infer,
                build=lambda ins, a: _adaptive_build(ins, {"size": (1, 1)}),
                doc="average over all positions: C x H x W to C x 1 x 1"))


def _linear_infer(ins, a):
    (shape,) = ins
    if len(shape) != 1:
        raise ShapeError("E404", f"`linear` expects a vector, got {fmt_shape(shape)}",
                         help="add `flatten` before it")
    return (a["out"],)


def _linear_build(ins, a):
    from torch import nn
    return nn.Linear(ins[0][0], a["out"], a["bias"])


register(OpSpec(
    "linear",
    (Attr("out", Int(), positional=True, doc="output features"), Attr("bias", Bool(), True)),
    infer=_linear_infer, build=_linear_build,
    params=lambda ins, a, out: ins[0][0] * a["out"] + (a["out"] if a["bias"] else 0),
    macs=lambda ins, a, out: ins[0][0] * a["out"],
    doc="fully connected layer (torch.nn.Linear)", overwritable=True,
))


def _flatten_build(ins, a):
    from torch import nn
    return nn.Flatten()


register(OpSpec("flatten", (), infer=lambda ins, a: (math.prod(ins[0]),), build=_flatten_build,
                doc="C x H x W to one vector of C*H*W", aliases=True))


def _same_shape(ins, a):
    return ins[0]


def _elementwise(name: str, torch_name: str, attrs: tuple[Attr, ...] = (), kwargs=lambda a: {},
                 doc: str = "", aliases: bool = False) -> None:
    """An op that keeps its input's shape and has no parameters."""

    def build(ins, a):
        from torch import nn
        return getattr(nn, torch_name)(**kwargs(a))

    register(OpSpec(name, attrs, infer=_same_shape, build=build, doc=doc or f"torch.nn.{torch_name}",
                    aliases=aliases))


_elementwise("relu", "ReLU")
_elementwise("sigmoid", "Sigmoid")
_elementwise("tanh", "Tanh")
_elementwise("relu6", "ReLU6")
_elementwise("gelu", "GELU")
_elementwise("identity", "Identity", doc="passes its input on unchanged (torch.nn.Identity)", aliases=True)
_elementwise("leaky_relu", "LeakyReLU", (Attr("slope", Float(), 0.01, positional=True),),
             lambda a: {"negative_slope": a["slope"]})
_elementwise("dropout", "Dropout", (Attr("p", Float(0.0, 1.0), 0.5, positional=True, doc="drop probability"),),
             lambda a: {"p": a["p"]}, aliases=True)  # evaluation mode returns the input itself


def _softmax_infer(ins, a):
    if a["dim"] >= len(ins[0]):
        raise ShapeError("E306", f"`dim={a['dim']}` is past the last dimension of {fmt_shape(ins[0])}",
                         help="dimensions count from 0, the channels, without the batch")
    return ins[0]


def _softmax_build(ins, a):
    from torch import nn
    return nn.Softmax(dim=a["dim"] + 1)  # +1: the batch dimension comes first at run time


register(OpSpec("softmax", (Attr("dim", Int(min=0), 0, positional=True, doc="0 = channels"),),
                infer=_softmax_infer, build=_softmax_build, doc="softmax over the channels (torch.nn.Softmax)"))


def _lrn_infer(ins, a):
    _needs_image("lrn", ins[0])
    return ins[0]


def _lrn_build(ins, a):
    from torch import nn
    return nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])


register(OpSpec("lrn", (Attr("size", Int(), 5, positional=True, doc="channels in the window"),
                        Attr("alpha", Float(), 1e-4), Attr("beta", Float(), 0.75), Attr("k", Float(), 1.0)),
                infer=_lrn_infer, build=_lrn_build,
                doc="local response normalisation across channels (torch.nn.LocalResponseNorm)"))


def _bn_infer(ins, a):
    if len(ins[0]) not in (1, 3):
        raise ShapeError("E404", f"`batchnorm` expects an image or a vector, got {fmt_shape(ins[0])}")
    return ins[0]


def _bn_build(ins, a):
    from torch import nn
    cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
    return cls(ins[0][0], a["eps"], a["momentum"], a["affine"])


register(OpSpec("batchnorm", (Attr("eps", Float(), 1e-5), Attr("momentum", Float(0.0, 1.0), 0.1),
                              Attr("affine", Bool(), True)),
                infer=_bn_infer, build=_bn_build,
                params=lambda ins, a, out: 2 * ins[0][0] if a["affine"] else 0,
                doc="batch normalisation (torch.nn.BatchNorm2d, or 1d on vectors)", overwritable=True))


# --- joins: several branches into one tensor ---------------------------------------------

def _concat_infer(ins, a):
    first = ins[0]
    for i, s in enumerate(ins):
        if len(s) != len(first):
            raise ShapeError("E402", f"concat branch {i + 1} outputs {_kind(s)} {fmt_shape(s)}, "
                             f"branch 1 {_kind(first)} {fmt_shape(first)}",
                             help="images and vectors cannot be joined; flatten every branch or none",
                             bad_inputs=(0, i))
        if s[1:] != first[1:]:
            raise ShapeError("E402", f"concat branch {i + 1} has spatial size {fmt_shape(s[1:])}, "
                             f"branch 1 has {fmt_shape(first[1:])}",
                             help="branches are joined along channels: every other dimension must agree",
                             bad_inputs=(0, i))
    return (sum(s[0] for s in ins),) + first[1:]


def _kind(shape: Shape) -> str:
    return {1: "a vector", 3: "an image"}.get(len(shape), f"a {len(shape)}-d tensor")


def _add_infer(ins, a):
    for i, s in enumerate(ins):
        if s != ins[0]:
            raise ShapeError("E403", f"add branch {i + 1} has shape {fmt_shape(s)}, "
                             f"branch 1 has {fmt_shape(ins[0])}",
                             help="branches are summed element by element: their shapes must be equal",
                             bad_inputs=(0, i))
    return ins[0]


def _join_build(kind):
    def build(ins, a):
        from . import torch_modules
        return torch_modules.Concat() if kind == "concat" else torch_modules.Add()
    return build


register(OpSpec("concat", (), infer=_concat_infer, build=_join_build("concat"), join=True,
                doc="branches joined along the channels", overwritable=True))
register(OpSpec("add", (), infer=_add_infer, build=_join_build("add"), join=True,
                doc="branches summed element by element (residual connections)", overwritable=True))
