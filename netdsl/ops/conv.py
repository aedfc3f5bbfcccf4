"""Convolution and transposed convolution, on sequences, images and volumes."""

from __future__ import annotations

import math

from .. import codes
from .spec import (CONV, Attr, Bool, CannotImport, Eject, FromTorch, Int, Pair, ShapeError, Symbol, axis_names,
                   examples, family, pycall)
from .window import fmt_pair, fmt_stride, needs_spatial, windowed

op = family("conv")

_TORCH_RANK = {1: "1d", 2: "2d", 3: "3d"}


def _check_groups(c, a):
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeError(codes.GROUPS_MISMATCH, f"`groups={a['groups']}` must divide both the input channels ({c}) "
                         f"and the output channels ({a['out']})")


def _infer(ins, a):
    (shape,) = ins
    rank = needs_spatial("conv", shape)
    _check_groups(shape[0], a)
    if a["pad"] == "same" and a["stride"] != (1,) * rank:
        raise ShapeError(codes.OUT_OF_RANGE, "`pad=same` needs `stride=1` (PyTorch has no strided same padding)",
                         help="give the padding as a number instead")
    return windowed("conv", shape, a["out"], a["kernel"], a["stride"], a["pad"], a["dilation"])


def _weights(ins, a):
    return a["out"] * (ins[0][0] // a["groups"]) * math.prod(a["kernel"])


def _build(ins, a):
    from torch import nn
    pad = 0 if a["pad"] == "valid" else a["pad"]
    cls = getattr(nn, "Conv" + _TORCH_RANK[len(ins[0]) - 1])
    return cls(ins[0][0], a["out"], a["kernel"], a["stride"], pad, a["dilation"], a["groups"], a["bias"])


def _eject(ins, a):
    pad = 0 if a["pad"] == "valid" else a["pad"]
    return Eject(pycall(f"nn.Conv{_TORCH_RANK[len(ins[0]) - 1]}", ins[0][0], a["out"], a["kernel"], stride=a["stride"],
                        padding=pad, dilation=a["dilation"], groups=a["groups"], bias=a["bias"],
                        defaults={"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}))


def _transpose_eject(ins, a):
    return Eject(pycall(f"nn.ConvTranspose{_TORCH_RANK[len(ins[0]) - 1]}", ins[0][0], a["out"], a["kernel"],
                        stride=a["stride"], padding=a["pad"], output_padding=a["output_pad"], groups=a["groups"],
                        bias=a["bias"], dilation=a["dilation"],
                        defaults={"stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1,
                                  "bias": True}))


def _from_conv(m, transposed=False):
    """A torch conv module's attributes (netdsl import)."""
    if m.padding_mode != "zeros":
        raise CannotImport(f"padding_mode={m.padding_mode!r} (netdsl's conv pads with zeros)")
    pad = Symbol(m.padding) if isinstance(m.padding, str) else tuple(m.padding)
    a = dict(out=m.out_channels, kernel=tuple(m.kernel_size), stride=tuple(m.stride), pad=pad,
             dilation=tuple(m.dilation), groups=m.groups, bias=m.bias is not None)
    if transposed:
        a["output_pad"] = tuple(m.output_padding)
    return a


def _label(name):
    def label(a):
        text = f"{name} {a['out']} {fmt_pair(a['kernel'])}{fmt_stride(a['stride'])}"
        if set(a["dilation"]) != {1}:
            text += f" dil {fmt_pair(a['dilation'])}"
        if a["groups"] != 1:
            text += f" g{a['groups']}"
        return text
    return label


op("conv",
   (Attr("out", Int(), positional=True, doc="output channels"),
    Attr("kernel", Pair(), positional=True, doc="kernel size"),
    Attr("stride", Pair(), 1, positional=True),
    Attr("pad", Pair(min=0, symbols=("same", "valid")), 0, positional=True,
         doc="zero padding on each side; `same` keeps the size (stride 1 only), `valid` is none"),
    Attr("dilation", Pair(), 1),
    Attr("groups", Int(), 1),
    Attr("bias", Bool(), True)),
   infer=_infer, build=_build, eject=_eject, kind=CONV, label=_label("conv"),
   params=lambda ins, a, out: _weights(ins, a) + (a["out"] if a["bias"] else 0),
   macs=lambda ins, a, out: _weights(ins, a) * math.prod(out[1:]),
   doc="convolution (torch.nn.Conv2d; Conv1d on sequences, Conv3d on volumes)", overwritable=True,
   imports=tuple(FromTorch(f"torch.nn.Conv{r}", _from_conv) for r in _TORCH_RANK.values()),
   saves=lambda ins, a, out: ("in",),
   shape_doc="C×H×W → out×H'×W' (C×L, C×D×H×W alike)", params_doc="out·C/groups·kh·kw (+out)",
   examples=examples(("3x17x19", "conv(8, 3)"), ("3x17x19", "conv(8, 3, stride=2, pad=1)"),
                     ("4x20x11", "conv(6, 5x3, stride=2x1, pad=2x0)"), ("3x9x12", "conv(8, 3, pad=same)"),
                     ("3x9x12", "conv(8, 4, pad=same, dilation=2)"), ("8x10x10", "conv(12, 3, groups=4)"),
                     ("7x6x6", "conv(5, 1, bias=false)"), ("2x8x8", "conv(4, 3, pad=valid)"),
                     ("3x227x227", "conv(16, 11, stride=4)"),
                     ("2x40", "conv(4, 5, stride=2, pad=2)"), ("4x30", "conv(8, 3, pad=same, dilation=2, groups=2)"),
                     ("3x6x9x9", "conv(4, 3, pad=1)"), ("3x8x11x10", "conv(5, 3x7x7, stride=1x2x2, pad=1x3x3)"),
                     ("4x5x6x7", "conv(4, (1, 3, 3), pad=(0, 1, 1), groups=4, bias=false)")))


def _transpose_infer(ins, a):
    (shape,) = ins
    rank = needs_spatial("conv_transpose", shape)
    _check_groups(shape[0], a)
    out = []
    for axis, name in enumerate(axis_names(rank)):
        k, s, p, op_, d = (a[n][axis] for n in ("kernel", "stride", "pad", "output_pad", "dilation"))
        if op_ >= s and op_ >= d:
            raise ShapeError(codes.OUT_OF_RANGE, f"`output_pad` must be smaller than the stride or the dilation on "
                             f"every axis: along the {name} it is {op_}, the stride {s} and the dilation {d}",
                             help="PyTorch requires it: the extra size it adds is less than one step")
        n = (shape[1 + axis] - 1) * s - 2 * p + d * (k - 1) + op_ + 1
        if n < 1:
            raise ShapeError(codes.WINDOW_TOO_LARGE, f"`conv_transpose` padding {p} on each side leaves no output "
                             f"along the {name} ({shape[1 + axis]} in gives {n})",
                             help="use less padding, or a larger kernel or stride")
        out.append(n)
    return (a["out"], *out)


def _transpose_weights(ins, a):
    return ins[0][0] * (a["out"] // a["groups"]) * math.prod(a["kernel"])


def _transpose_build(ins, a):
    from torch import nn
    cls = getattr(nn, "ConvTranspose" + _TORCH_RANK[len(ins[0]) - 1])
    return cls(ins[0][0], a["out"], a["kernel"], a["stride"], a["pad"], a["output_pad"], a["groups"], a["bias"],
               a["dilation"])


op("conv_transpose",
   (Attr("out", Int(), positional=True, doc="output channels"),
    Attr("kernel", Pair(), positional=True, doc="kernel size"),
    Attr("stride", Pair(), 1, positional=True),
    Attr("pad", Pair(min=0), 0, positional=True, doc="removed from each side of the output"),
    Attr("output_pad", Pair(min=0), 0, doc="added to one side; less than the stride or the dilation"),
    Attr("dilation", Pair(), 1),
    Attr("groups", Int(), 1),
    Attr("bias", Bool(), True)),
   infer=_transpose_infer, build=_transpose_build, eject=_transpose_eject, kind=CONV, label=_label("conv_transpose"),
   params=lambda ins, a, out: _transpose_weights(ins, a) + (a["out"] if a["bias"] else 0),
   # each input value times each weight it meets: the multiply-accumulates of the transposed conv
   macs=lambda ins, a, out: _transpose_weights(ins, a) * math.prod(ins[0][1:]),
   doc="transposed convolution (torch.nn.ConvTranspose2d; 1d on sequences, 3d on volumes)", overwritable=True,
   imports=tuple(FromTorch(f"torch.nn.ConvTranspose{r}", lambda m: _from_conv(m, True)) for r in _TORCH_RANK.values()),
   saves=lambda ins, a, out: ("in",),
   shape_doc="C×H×W → out×(H−1)·s−2p+d(k−1)+op+1×…", params_doc="C·out/groups·kh·kw (+out)",
   examples=examples(("4x7x7", "conv_transpose(6, 4, stride=2, pad=1)"),
                     ("4x5x6", "conv_transpose(2, 3x2, stride=2, pad=1, output_pad=1, bias=false)"),
                     ("6x5x5", "conv_transpose(4, 3, stride=1, dilation=2, groups=2)"),
                     ("3x10", "conv_transpose(5, 4, stride=2, pad=1)"),
                     ("4x3x5x5", "conv_transpose(2, 3, stride=(1, 2, 2), pad=1, output_pad=(0, 1, 1))")))
