"""Normalisation: local response, batch and group normalisation."""

from __future__ import annotations

import math

from .. import codes
from .spec import NORM, Attr, Bool, Float, Int, ShapeError, examples, family, fmt_shape
from .window import needs_image

op = family("norm")


def _lrn_infer(ins, a):
    needs_image("lrn", ins[0])
    return ins[0]


def _lrn_build(ins, a):
    from torch import nn
    return nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])


def _lrn_saves(ins, a, out):
    # torch.nn.functional.local_response_norm is several calls: x*x padded along the channels
    # (kept by avg_pool3d), the pooled sum scaled (kept by pow), its power (kept by the division)
    values, rest = math.prod(out), math.prod(out[1:])
    return ("in", ((out[0] + a["size"] - 1) * rest, 0), (values, 0), (values, 0))


op("lrn", (Attr("size", Int(), 5, positional=True, doc="channels in the window"),
           Attr("alpha", Float(), 1e-4), Attr("beta", Float(), 0.75), Attr("k", Float(), 1.0)),
   infer=_lrn_infer, build=_lrn_build, kind=NORM, label=lambda a: f"lrn {a['size']}",
   saves=_lrn_saves, scratch=lambda ins, a, out: 2 * math.prod(out),
   doc="local response normalisation across channels (torch.nn.LocalResponseNorm)", shape_doc="C×H×W, unchanged",
   examples=examples(("8x6x6", "lrn(5)"), ("4x5x5", "lrn(3, alpha=0.001, beta=0.5, k=2)")))


def _bn_infer(ins, a):
    if len(ins[0]) not in (1, 3):
        raise ShapeError(codes.WRONG_RANK, f"`batchnorm` expects an image or a vector, got {fmt_shape(ins[0])}")
    return ins[0]


def _bn_build(ins, a):
    from torch import nn
    cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
    return cls(ins[0][0], a["eps"], a["momentum"], a["affine"])


# eps above 0: torch's batch_norm refuses 0 in training ("eps must be positive during training")
op("batchnorm", (Attr("eps", Float(above=True), 1e-5), Attr("momentum", Float(0.0, 1.0), 0.1),
                 Attr("affine", Bool(), True)),
   infer=_bn_infer, build=_bn_build, kind=NORM,
   params=lambda ins, a, out: 2 * ins[0][0] if a["affine"] else 0,
   buffers=lambda ins, a, out: (2 * ins[0][0], 1),  # running mean and variance; num_batches_tracked
   doc="batch normalisation (torch.nn.BatchNorm2d, or 1d on vectors)", overwritable=True,
   saves=lambda ins, a, out: ("in", (2 * ins[0][0], 4, "once")),  # and each channel's mean and 1/std, float32
   shape_doc="unchanged (images or vectors)", params_doc="2·C if affine",
   examples=examples(("8x5x5", "batchnorm"), ("6x3x3", "batchnorm(eps=0.001, affine=false)"), ("12", "batchnorm"),
                     ("12", "batchnorm(affine=false)")))


def _gn_infer(ins, a):
    channels = ins[0][0]
    if channels % a["groups"]:
        raise ShapeError(codes.GROUPS_MISMATCH, f"`groups={a['groups']}` must divide the input channels ({channels})",
                         help="choose a number of groups that divides the channels, e.g. 32 of 256")
    return ins[0]


def _gn_build(ins, a):
    from torch import nn
    return nn.GroupNorm(a["groups"], ins[0][0], a["eps"], a["affine"])


op("groupnorm", (Attr("groups", Int(), positional=True, doc="channel groups, each normalised on its own"),
                 Attr("eps", Float(), 1e-5), Attr("affine", Bool(), True)),
   infer=_gn_infer, build=_gn_build, kind=NORM, label=lambda a: f"groupnorm {a['groups']}",
   params=lambda ins, a, out: 2 * ins[0][0] if a["affine"] else 0,
   doc="group normalisation over channel groups, per example (torch.nn.GroupNorm)",
   saves=lambda ins, a, out: ("in", (2 * a["groups"], 0)),  # and each group's mean and 1/std
   shape_doc="unchanged; C divisible by groups", params_doc="2·C if affine",
   examples=examples(("8x5x5", "groupnorm(4)"), ("6x3x3", "groupnorm(3, eps=0.001, affine=false)"), ("12", "groupnorm(2)")))
