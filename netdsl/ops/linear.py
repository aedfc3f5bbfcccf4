"""Fully connected layers, and flattening an image into the vector they take."""

from __future__ import annotations

import math

from .. import codes
from .spec import DENSE, RESHAPE, Attr, Bool, Int, ShapeError, examples, family, fmt_shape

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


op("linear", (Attr("out", Int(), positional=True, doc="output features"), Attr("bias", Bool(), True)),
   infer=_linear_infer, build=_linear_build, kind=DENSE, label=lambda a: f"linear {a['out']}",
   params=lambda ins, a, out: ins[0][0] * a["out"] + (a["out"] if a["bias"] else 0),
   macs=lambda ins, a, out: ins[0][0] * a["out"],
   doc="fully connected layer (torch.nn.Linear)", overwritable=True, shape_doc="C → out",
   saves=lambda ins, a, out: ("in",),
   params_doc="C·out (+out)",
   examples=examples(("20", "linear(10)"), ("7", "linear(3, bias=false)")))

op("flatten", (), infer=lambda ins, a: (math.prod(ins[0]),), build=_flatten_build, kind=RESHAPE,
   doc="an image as one vector (torch.nn.Flatten)", aliases=True, shape_doc="C×H×W → C·H·W",
   examples=examples(("3x4x5", "flatten"), ("6", "flatten")))
