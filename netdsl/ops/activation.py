"""Activations, dropout, identity and softmax: ops that keep their input's shape and learn nothing."""

from __future__ import annotations

import math

from .. import codes
from .spec import ACTIVATION, REGULARISATION, RESHAPE, Attr, Float, Int, ShapeError, examples, family, fmt_shape

op = family("activation")


def same_shape(ins, a):
    return ins[0]


def _module(torch_name: str, kwargs=lambda a: {}):
    """A builder for one torch.nn module, its arguments taken from the attributes."""

    def build(ins, a):
        from torch import nn
        return getattr(nn, torch_name)(**kwargs(a))

    return build


def _dropout_saves(ins, a, out):
    # on the CPU torch draws the mask as a tensor of the input's type (CUDA: one byte a value)
    return ((math.prod(out), 0),) if 0 < a["p"] < 1 else ()


def _elementwise(name: str, torch_name: str, attrs: tuple[Attr, ...] = (), kwargs=lambda a: {}, *,
                 tests=((("3x4x4"),),), kind=ACTIVATION, doc: str = "", **fields) -> None:
    """An op that keeps its input's shape and has no parameters. `tests`: (input shape[, text])."""
    uses = examples(*[(t[0], t[1] if len(t) > 1 else name) for t in tests])
    op(name, attrs, infer=same_shape, build=_module(torch_name, kwargs), kind=kind,
       doc=doc or f"torch.nn.{torch_name}", examples=uses, **fields)


# What each backward keeps (`saves`): its output (relu, sigmoid, tanh, softmax) or its input;
# working in place, both are the input's memory.
_KEEPS_OUTPUT = lambda ins, a, out: ("out",)  # noqa: E731
_KEEPS_INPUT = lambda ins, a, out: ("in",)  # noqa: E731
_elementwise("relu", "ReLU", in_place=True, saves=_KEEPS_OUTPUT)
_elementwise("sigmoid", "Sigmoid", saves=_KEEPS_OUTPUT)
_elementwise("tanh", "Tanh", tests=(("6",),), saves=_KEEPS_OUTPUT)
_elementwise("relu6", "ReLU6", in_place=True, saves=_KEEPS_INPUT)
_elementwise("gelu", "GELU", saves=_KEEPS_INPUT)
_elementwise("silu", "SiLU", doc="x · sigmoid(x), also called swish (torch.nn.SiLU)", in_place=True,
             saves=_KEEPS_INPUT)
_elementwise("identity", "Identity", kind=RESHAPE, doc="passes its input on unchanged (torch.nn.Identity)",
             aliases=True)
_elementwise("leaky_relu", "LeakyReLU", (Attr("slope", Float(), 0.01, positional=True),),
             lambda a: {"negative_slope": a["slope"]}, tests=(("3x4x4", "leaky_relu(0.2)"),), in_place=True,
             saves=_KEEPS_INPUT)
_elementwise("dropout", "Dropout", (Attr("p", Float(0.0, 1.0), 0.5, positional=True, doc="drop probability"),),
             lambda a: {"p": a["p"]}, kind=REGULARISATION, label=lambda a: f"dropout {a['p']:g}",
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


op("softmax", (Attr("dim", Int(min=0), 0, positional=True, doc="0 = channels"),),
   infer=_softmax_infer, build=_softmax_build, kind=ACTIVATION, doc="softmax over the channels (torch.nn.Softmax)",
   saves=_KEEPS_OUTPUT,
   examples=examples(("10", "softmax"), ("3x4x5", "softmax(dim=2)")))
