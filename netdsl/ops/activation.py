"""Activations, dropout, identity and softmax: ops that keep their input's shape (and, but for
`prelu`, learn nothing).

`overwritable` (the layer after may write over the output) is set where torch's backward
formula does not read the output, whether the module runs in place or not: ReLU's and
Sigmoid's read their result; ELU's reads its input out of place but its result in place
(`elu_`), so it is not overwritable either. Hardswish, Hardsigmoid, Mish and SiLU read their
input, in place too: autograd keeps a copy of it before `silu_` and the others overwrite it
(`copies_input_in_place`); GELU, Softplus and PReLU their input."""

from __future__ import annotations

import math

from .. import codes
from .spec import (ACTIVATION, REGULARISATION, RESHAPE, Attr, Bool, CannotImport, Choice, Eject, Float, FromTorch, Int,
                   ShapeError, examples, family, fmt_shape, pycall)

op = family("activation")


def same_shape(ins, a):
    return ins[0]


def _module(torch_name: str, kwargs=lambda a: {}):
    """A builder for one torch.nn module, its arguments taken from the attributes."""

    def build(ins, a):
        from torch import nn
        return getattr(nn, torch_name)(**kwargs(a))

    return build


def _source(torch_name: str, kwargs=lambda a: {}):
    """The same module as `_module` builds, as source (`Network.eject`)."""
    return lambda ins, a: Eject(pycall(f"nn.{torch_name}", **kwargs(a)))


def _dropout_saves(ins, a, out):
    # on the CPU torch draws the mask as a tensor of the input's type (CUDA: one byte a value)
    return ((math.prod(out), 0),) if 0 < a["p"] < 1 else ()


def _elementwise(name: str, torch_name: str, attrs: tuple[Attr, ...] = (), kwargs=lambda a: {}, *,
                 tests=((("3x4x4"),),), kind=ACTIVATION, doc: str = "", functions: tuple[str, ...] = (),
                 from_module=lambda m: {}, **fields) -> None:
    """An op that keeps its input's shape and has no parameters. `tests`: (input shape[, text]);
    `functions`: the torch functions that `netdsl import` maps to it besides torch.nn.`torch_name`
    (names, for functions without arguments but the tensor and `inplace`, or `FromTorch`s),
    `from_module` its attributes from the module."""
    uses = examples(*[(t[0], t[1] if len(t) > 1 else name) for t in tests])
    fields.setdefault("eject", _source(torch_name, kwargs))
    imports = (FromTorch(f"torch.nn.{torch_name}", from_module),) + tuple(
        f if isinstance(f, FromTorch) else FromTorch(f) for f in functions)
    op(name, attrs, infer=same_shape, build=_module(torch_name, kwargs), kind=kind,
       doc=doc or f"torch.nn.{torch_name}", examples=uses, imports=imports, **fields)


# What each backward keeps (`saves`): its output (relu, sigmoid, tanh, softmax) or its input;
# working in place, both are the input's memory.
_KEEPS_OUTPUT = lambda ins, a, out: ("out",)  # noqa: E731
_KEEPS_INPUT = lambda ins, a, out: ("in",)  # noqa: E731
_elementwise("relu", "ReLU", in_place=True, saves=_KEEPS_OUTPUT,
             functions=("torch.nn.functional.relu", "torch.relu", "torch.relu_", "Tensor.relu", "Tensor.relu_"))
_elementwise("sigmoid", "Sigmoid", saves=_KEEPS_OUTPUT,
             functions=("torch.sigmoid", "torch.nn.functional.sigmoid", "Tensor.sigmoid"))
_elementwise("tanh", "Tanh", tests=(("6",),), saves=_KEEPS_OUTPUT, functions=("torch.tanh", "Tensor.tanh"))
_elementwise("relu6", "ReLU6", in_place=True, saves=_KEEPS_INPUT, functions=("torch.nn.functional.relu6",))
def _gelu_build(ins, a):
    from .modules import GELU  # torch.nn.GELU, quicker on channels-last views
    return GELU(a["approximate"])


op("gelu", (Attr("approximate", Choice(("none", "tanh")), "none",
                 doc="`none`: exact (erf), `tanh`: the tanh approximation"),),
   infer=same_shape, build=_gelu_build, kind=ACTIVATION,
   eject=lambda ins, a: Eject(pycall("GELU", a["approximate"], defaults={"approximate": "none"}), helpers=("GELU",)),
   overwritable=True, saves=_KEEPS_INPUT, doc="torch.nn.GELU",
   imports=tuple(FromTorch(cls, lambda m: dict(approximate=m.approximate), channels_last=last)
                 for cls in ("torch.nn.GELU", "netdsl.ops.modules.GELU") for last in (False, True)),
   examples=examples(("3x4x4", "gelu"), ("6", "gelu(approximate=tanh)"),
                     ("4x3x3", "g: { channel_linear(6) } gelu(approximate=tanh)")))  # a channels-last view
# their in-place kernels' backward reads the input they overwrite: autograd keeps a copy of it
_SELF_GATED = dict(overwritable=True, in_place=True, copies_input_in_place=True, saves=_KEEPS_INPUT)
_elementwise("silu", "SiLU", doc="x · sigmoid(x), also called swish (torch.nn.SiLU)",
             functions=("torch.nn.functional.silu",), **_SELF_GATED)
_elementwise("hardswish", "Hardswish", tests=(("3x4x4",), ("6",), ("4x10",), ("2x3x3x3",)),
             doc="x · relu6(x + 3) / 6, MobileNetV3's swish (torch.nn.Hardswish)",
             functions=("torch.nn.functional.hardswish",), **_SELF_GATED)
_elementwise("hardsigmoid", "Hardsigmoid", tests=(("3x4x4",), ("6",)),
             doc="relu6(x + 3) / 6, MobileNetV3's gate (torch.nn.Hardsigmoid)",
             functions=("torch.nn.functional.hardsigmoid",), **_SELF_GATED)
_elementwise("mish", "Mish", doc="x · tanh(softplus(x)) (torch.nn.Mish)", **_SELF_GATED)
_elementwise("elu", "ELU", (Attr("alpha", Float(), 1.0, positional=True, doc="the value for x → −∞"),),
             lambda a: {"alpha": a["alpha"]}, in_place=True, from_module=lambda m: dict(alpha=m.alpha),
             saves=_KEEPS_INPUT, tests=(("3x4x4", "elu"), ("6", "elu(0.5)")),
             doc="x above 0, alpha · (exp(x) − 1) below (torch.nn.ELU)")
# beta above 0: torch divides by it; the threshold may be any number (linear above it)
_elementwise("softplus", "Softplus", (Attr("beta", Float(above=True), 1.0, doc="sharpness"),
                                      Attr("threshold", Float(), 20.0, doc="linear where beta · x is above it")),
             lambda a: {"beta": a["beta"], "threshold": a["threshold"]}, overwritable=True, saves=_KEEPS_INPUT,
             from_module=lambda m: dict(beta=m.beta, threshold=m.threshold),
             tests=(("3x4x4",), ("6", "softplus(beta=2, threshold=5)")),
             doc="log(1 + exp(beta · x)) / beta (torch.nn.Softplus)")
_elementwise("identity", "Identity", kind=RESHAPE, eject=lambda ins, a: Eject("nn.Identity()", "{x0}"),
             doc="passes its input on unchanged (torch.nn.Identity)",
             aliases=True)
_elementwise("leaky_relu", "LeakyReLU", (Attr("slope", Float(), 0.01, positional=True),),
             lambda a: {"negative_slope": a["slope"]}, tests=(("3x4x4", "leaky_relu(0.2)"),), in_place=True,
             from_module=lambda m: dict(slope=m.negative_slope),
             saves=_KEEPS_INPUT)
_elementwise("dropout", "Dropout", (Attr("p", Float(0.0, 1.0), 0.5, positional=True, doc="drop probability"),),
             lambda a: {"p": a["p"]}, kind=REGULARISATION, label=lambda a: f"dropout {a['p']:g}",
             from_module=lambda m: dict(p=m.p),
             functions=(FromTorch("torch.nn.functional.dropout", lambda c: dict(p=c.arg(1, "p", 0.5))),),
             tests=(("3x4x4", "dropout(0.3)"), ("10", "dropout")),
             aliases=True,  # evaluation mode returns the input itself; training, input x mask
             in_place=True, copies_in_training=True, saves=_dropout_saves)


def _softmax_infer(ins, a):
    if a["dim"] >= len(ins[0]):
        raise ShapeError(codes.OUT_OF_RANGE, f"`dim={a['dim']}` is past the last dimension of {fmt_shape(ins[0])}",
                         help="dimensions count from 0, the channels, without the batch")
    return ins[0]


def _softmax_build(ins, a):
    from torch import nn
    return nn.Softmax(dim=a["dim"] + 1)  # +1: the batch dimension comes first at run time


def _from_softmax(m):
    if m.dim is None or m.dim < 1:
        raise CannotImport(f"a softmax over dim {m.dim} (netdsl's counts dims after the batch: give dim >= 1)")
    return dict(dim=m.dim - 1)


op("softmax", (Attr("dim", Int(min=0), 0, positional=True, doc="0 = channels"),),
   infer=_softmax_infer, build=_softmax_build, kind=ACTIVATION,
   eject=lambda ins, a: Eject(pycall("nn.Softmax", dim=a["dim"] + 1)),
   doc="softmax over the channels (torch.nn.Softmax)",
   imports=(FromTorch("torch.nn.Softmax", _from_softmax),),
   saves=_KEEPS_OUTPUT,
   examples=examples(("10", "softmax"), ("3x4x5", "softmax(dim=2)")))


def _prelu_build(ins, a):
    from torch import nn
    return nn.PReLU(ins[0][0] if a["per_channel"] else 1)


def _prelu_infer(ins, a):
    # torch's PReLU takes the channels from dim 1: a vector's features, an image's channels
    return ins[0]


op("prelu", (Attr("per_channel", Bool(), False, doc="one slope per channel rather than one"),),
   infer=_prelu_infer, build=_prelu_build, kind=ACTIVATION,
   eject=lambda ins, a: Eject(pycall("nn.PReLU", *([ins[0][0]] if a["per_channel"] else []))),
   overwritable=True, saves=_KEEPS_INPUT,
   params=lambda ins, a, out: ins[0][0] if a["per_channel"] else 1,
   imports=(FromTorch("torch.nn.PReLU", lambda m: dict(per_channel=m.num_parameters > 1)),),
   doc="leaky ReLU with a learnt slope (torch.nn.PReLU, initialised to 0.25)", params_doc="1, or C if per_channel",
   examples=examples(("3x4x4", "prelu"), ("3x4x4", "prelu(per_channel=true)"), ("6", "prelu(per_channel=true)"),
                     ("4x10", "prelu(per_channel=true)"), ("3x2x3x3", "prelu(per_channel=true)")))


def _drop_path_build(ins, a):
    from .modules import DropPath
    return DropPath(a["p"])


def _from_stochastic_depth(m):
    if m.mode != "row":
        raise CannotImport(f"mode={m.mode!r} (netdsl's drop_path drops whole examples: mode 'row')")
    return dict(p=m.p)


op("drop_path", (Attr("p", Float(0.0, 1.0), positional=True, doc="probability of dropping an example's path"),),
   infer=same_shape, build=_drop_path_build, kind=REGULARISATION,
   eject=lambda ins, a: Eject(pycall("DropPath", a["p"]), helpers=("DropPath",)),
   label=lambda a: f"drop path {a['p']:g}",
   imports=(FromTorch("torchvision.ops.StochasticDepth", _from_stochastic_depth),
            FromTorch("netdsl.ops.modules.DropPath", lambda m: dict(p=m.p))),
   doc="stochastic depth: each example's input zeroed with probability p in training, the others scaled by "
       "1/(1−p); the input itself in evaluation (torchvision.ops.StochasticDepth, mode row)",
   aliases=True, copies_in_training=True,  # evaluation mode returns the input itself; training, input x mask
   # the product's backward keeps the mask: one value per example, in the input's dtype (p = 1 too: all zeros)
   saves=lambda ins, a, out: ((1, 0),) if a["p"] > 0 else (),
   examples=examples(("3x4x4", "drop_path(0.3)"), ("10", "drop_path(0.5)"), ("3x4x4", "drop_path(0)"),
                     ("3x2x3x3", "drop_path(0.2)")))
