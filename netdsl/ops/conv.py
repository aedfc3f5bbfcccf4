"""Convolution."""

from __future__ import annotations

from .. import codes
from .spec import CONV, Attr, Bool, Int, Pair, ShapeError, examples, family
from .window import fmt_pair, fmt_stride, needs_image, windowed

op = family("conv")


def _infer(ins, a):
    (shape,) = ins
    needs_image("conv", shape)
    c = shape[0]
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeError(codes.GROUPS_MISMATCH, f"`groups={a['groups']}` must divide both the input channels ({c}) "
                         f"and the output channels ({a['out']})")
    if a["pad"] == "same" and a["stride"] != (1, 1):
        raise ShapeError(codes.OUT_OF_RANGE, "`pad=same` needs `stride=1` (PyTorch has no strided same padding)",
                         help="give the padding as a number instead")
    return windowed("conv", shape, a["out"], a["kernel"], a["stride"], a["pad"], a["dilation"])


def _weights(ins, a):
    return a["out"] * (ins[0][0] // a["groups"]) * a["kernel"][0] * a["kernel"][1]


def _build(ins, a):
    from torch import nn
    pad = 0 if a["pad"] == "valid" else a["pad"]
    return nn.Conv2d(ins[0][0], a["out"], a["kernel"], a["stride"], pad, a["dilation"], a["groups"], a["bias"])


def _label(a):
    text = f"conv {a['out']} {fmt_pair(a['kernel'])}{fmt_stride(a['stride'])}"
    if a["dilation"] != (1, 1):
        text += f" dil {fmt_pair(a['dilation'])}"
    if a["groups"] != 1:
        text += f" g{a['groups']}"
    return text


op("conv",
   (Attr("out", Int(), positional=True, doc="output channels"),
    Attr("kernel", Pair(), positional=True, doc="kernel size"),
    Attr("stride", Pair(), 1, positional=True),
    Attr("pad", Pair(min=0, symbols=("same", "valid")), 0, positional=True,
         doc="zero padding on each side; `same` keeps H and W (stride 1 only), `valid` is none"),
    Attr("dilation", Pair(), 1),
    Attr("groups", Int(), 1),
    Attr("bias", Bool(), True)),
   infer=_infer, build=_build, kind=CONV, label=_label,
   params=lambda ins, a, out: _weights(ins, a) + (a["out"] if a["bias"] else 0),
   macs=lambda ins, a, out: _weights(ins, a) * out[1] * out[2],
   doc="2-D convolution (torch.nn.Conv2d)", overwritable=True, saves=lambda ins, a, out: ("in",),
   shape_doc="C×H×W → out×H'×W'", params_doc="out·C/groups·kh·kw (+out)",
   examples=examples(("3x17x19", "conv(8, 3)"), ("3x17x19", "conv(8, 3, stride=2, pad=1)"),
                     ("4x20x11", "conv(6, 5x3, stride=2x1, pad=2x0)"), ("3x9x12", "conv(8, 3, pad=same)"),
                     ("3x9x12", "conv(8, 4, pad=same, dilation=2)"), ("8x10x10", "conv(12, 3, groups=4)"),
                     ("7x6x6", "conv(5, 1, bias=false)"), ("2x8x8", "conv(4, 3, pad=valid)"),
                     ("3x227x227", "conv(16, 11, stride=4)")))
