"""Fully connected layers, and flattening an image into the vector they take."""

from __future__ import annotations

import math

from .. import codes
from .spec import (DENSE, RESHAPE, Attr, Bool, CannotImport, Eject, FromTorch, Int, ShapeError, examples, family,
                   fmt_shape, pycall)

op = family("linear")


def _linear_infer(ins, a):
    (shape,) = ins
    if len(shape) != 1:
        raise ShapeError(codes.WRONG_RANK, f"`linear` expects a vector, got {fmt_shape(shape)}", help="add `flatten` before it")
    return (a["out"],)


def _linear_build(ins, a):
    from torch import nn
    return nn.Linear(ins[0][0], a["out"], a["bias"])


def _flatten_build(ins, a):
    from torch import nn
    return nn.Flatten()


def _from_linear(m):
    return dict(out=m.out_features, bias=m.bias is not None)


def _from_flatten(m):
    if m.start_dim != 1 or m.end_dim != -1:
        raise CannotImport(f"a flatten of dims {m.start_dim} to {m.end_dim} (netdsl's flattens all but the batch)")
    return {}


def _from_flatten_call(c):
    start, end = c.arg(1, "start_dim", 0), c.arg(2, "end_dim", -1)
    rank = len(c.args[0].shape) + 1 if c.args[0].shape else None
    if start != 1 or end not in (-1, rank and rank - 1):
        raise CannotImport(f"a flatten of dims {start} to {end} (netdsl's flattens all but the batch)")
    return {}


op("linear", (Attr("out", Int(), positional=True, doc="output features"), Attr("bias", Bool(), True)),
   infer=_linear_infer, build=_linear_build, kind=DENSE,
   eject=lambda ins, a: Eject(pycall("nn.Linear", ins[0][0], a["out"], bias=a["bias"], defaults={"bias": True})),
   label=lambda a: f"linear {a['out']}",
   params=lambda ins, a, out: ins[0][0] * a["out"] + (a["out"] if a["bias"] else 0),
   macs=lambda ins, a, out: ins[0][0] * a["out"],
   doc="fully connected layer (torch.nn.Linear)", overwritable=True, shape_doc="C → out",
   imports=(FromTorch("torch.nn.Linear", _from_linear),),
   saves=lambda ins, a, out: ("in",),
   params_doc="C·out (+out)",
   examples=examples(("20", "linear(10)"), ("7", "linear(3, bias=false)")))

op("flatten", (), infer=lambda ins, a: (math.prod(ins[0]),), build=_flatten_build, kind=RESHAPE,
   eject=lambda ins, a: Eject("nn.Flatten()", "torch.flatten({x0}, 1)"),
   doc="an image (or a sequence, a volume) as one vector (torch.nn.Flatten)", aliases=True, shape_doc="C×H×W → C·H·W",
   imports=(FromTorch("torch.nn.Flatten", _from_flatten), FromTorch("torch.flatten", _from_flatten_call),
            FromTorch("Tensor.flatten", _from_flatten_call)),
   examples=examples(("3x4x5", "flatten"), ("6", "flatten"), ("3x7", "flatten"), ("2x3x4x5", "flatten")))


def _channel_linear_saves(ins, a, out):
    # F.linear on the input with its channels moved last folds it to (positions, C) for the matrix
    # product and keeps that: a view of the input on a vector, with one position or one channel,
    # but otherwise (at a batch above 1) a channels-last copy of its own, whatever the input is a
    # view of (a `chunk` of a larger tensor keeps only its part)
    if len(ins[0]) == 1 or ins[0][0] == 1 or math.prod(ins[0][1:]) == 1:
        return ("in",)
    return ((math.prod(ins[0]), 0),)


def _channel_linear_build(ins, a):
    from .modules import ChannelLinear
    return ChannelLinear(ins[0][0], a["out"], a["bias"])


op("channel_linear", (Attr("out", Int(), positional=True, doc="output channels"), Attr("bias", Bool(), True)),
   infer=lambda ins, a: (a["out"],) + ins[0][1:], build=_channel_linear_build, kind=DENSE,
   eject=lambda ins, a: Eject(pycall("ChannelLinear", ins[0][0], a["out"], bias=a["bias"], defaults={"bias": True}),
                              helpers=("ChannelLinear",)),
   label=lambda a: f"channel linear {a['out']}",
   imports=(FromTorch("netdsl.ops.modules.ChannelLinear", _from_linear),
            FromTorch("torch.nn.Linear", _from_linear, channels_last=True)),
   params=lambda ins, a, out: ins[0][0] * a["out"] + (a["out"] if a["bias"] else 0),
   macs=lambda ins, a, out: math.prod(out) * ins[0][0],
   doc="a fully connected layer over the channels at every position (ConvNeXt's torch.nn.Linear between "
       "permutes: weight out×C); on a vector, `linear`", overwritable=True, shape_doc="C×… → out×…",
   saves=_channel_linear_saves,
   params_doc="C·out (+out)",
   examples=examples(("8x4x4", "channel_linear(16)"), ("6x3x3", "channel_linear(4, bias=false)"),
                     ("7", "channel_linear(3)"), ("4x10", "channel_linear(6)"), ("3x2x3x3", "channel_linear(5)")))
