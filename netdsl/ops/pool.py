"""Pooling: max and average over windows, adaptive and global average."""

from __future__ import annotations

import math

from .. import codes
from .spec import POOL, Attr, Bool, Pair, ShapeError, examples, family, fmt_value
from .window import fmt_pair, fmt_stride, needs_image, padding_window, windowed

op = family("pool")


def _check_pad(name, a):
    if a["pad"][0] * 2 > a["kernel"][0] or a["pad"][1] * 2 > a["kernel"][1]:
        raise ShapeError(codes.OUT_OF_RANGE, f"`{name}` padding {fmt_value(a['pad'])} is more than half its kernel "
                         f"{fmt_value(a['kernel'])}", help="PyTorch allows at most half the kernel")


def _check_windows(name, shape, a, dilation, what):
    """Refuse (E409) a window that reads padding only: PyTorch gives it no input position, so
    its result is meaningless (`what`) and, for maxpool, its index points outside the input."""
    for axis, (dim, rows) in enumerate((("height", "row"), ("width", "column"))):
        size, k, s, p, d = shape[1 + axis], a["kernel"][axis], a["stride"][axis], a["pad"][axis], dilation[axis]
        o = padding_window(size, k, s, p, d, a["ceil_mode"])
        if o is not None:
            taps = [o * s - p + j * d for j in range(min(k, 4))]
            shown = ", ".join(map(str, taps[:-1])) + (", ..." if k > 4 else "") + f" and {taps[-1]}" \
                if k > 1 else str(taps[0])
            raise ShapeError(codes.WINDOW_IN_PADDING,
                             f"a window of `{name}` lies entirely in the padding: output {rows} {o} reads input "
                             f"{rows}{'s' if k > 1 else ''} {shown}, outside "
                             + (f"{rows}s 0 to {size - 1}" if size > 1 else f"{rows} 0") + f" of the input {dim} {size}",
                             help=f"PyTorch would {what}; use less padding or dilation, or a larger input")


def _maxpool_infer(ins, a):
    needs_image("maxpool", ins[0])
    _check_pad("maxpool", a)
    out = windowed("maxpool", ins[0], ins[0][0], a["kernel"], a["stride"], a["pad"], a["dilation"], a["ceil_mode"])
    _check_windows("maxpool", ins[0], a, a["dilation"],
                   "output -inf there and, in the backward pass, write to a position that is not in the "
                   "input (corrupting memory)")
    return out


def _avgpool_infer(ins, a):
    needs_image("avgpool", ins[0])
    _check_pad("avgpool", a)
    out = windowed("avgpool", ins[0], ins[0][0], a["kernel"], a["stride"], a["pad"], ceil=a["ceil_mode"])
    # Without dilation, pad <= kernel/2 leaves every window some input (see padding_window):
    # checked all the same, for an average over no input divides by zero.
    _check_windows("avgpool", ins[0], a, (1, 1), "divide by zero there" if not a["count_include_pad"]
                   else "average padding only there")
    return out


def _maxpool_build(ins, a):
    from torch import nn
    return nn.MaxPool2d(a["kernel"], a["stride"], a["pad"], a["dilation"], ceil_mode=a["ceil_mode"])


def _avgpool_build(ins, a):
    from torch import nn
    return nn.AvgPool2d(a["kernel"], a["stride"], a["pad"], ceil_mode=a["ceil_mode"],
                        count_include_pad=a["count_include_pad"])


def _label(name):
    return lambda a: f"{name} {fmt_pair(a['kernel'])}{fmt_stride(a['stride'])}"


_WINDOW = (
    Attr("kernel", Pair(), positional=True),
    Attr("stride", Pair(), lambda bound: bound["kernel"], positional=True, doc="defaults to the kernel"),
    Attr("pad", Pair(min=0), 0, positional=True),
)

op("maxpool", _WINDOW + (Attr("dilation", Pair(), 1), Attr("ceil_mode", Bool(), False)),
   infer=_maxpool_infer, build=_maxpool_build, kind=POOL, label=_label("maxpool"),
   doc="max pooling (torch.nn.MaxPool2d)", overwritable=True, shape_doc="C×H×W → C×H'×W'",
   saves=lambda ins, a, out: ("in", (math.prod(out), 8)),  # and where each maximum was, as int64
   examples=examples(("3x9x9", "maxpool(2)"), ("4x112x112", "maxpool(3, stride=2, ceil_mode=true)"),
                     ("4x15x16", "maxpool(3, stride=2, pad=1)"), ("2x7x7", "maxpool(3, stride=1, pad=1)"),
                     ("1x14x14", "maxpool(3, stride=2, ceil_mode=true)"), ("1x9x9", "maxpool(2, dilation=2)"),
                     ("1x10x10", "maxpool(3, stride=3, pad=1, ceil_mode=true)")))

op("avgpool", _WINDOW + (Attr("ceil_mode", Bool(), False), Attr("count_include_pad", Bool(), True)),
   infer=_avgpool_infer, build=_avgpool_build, kind=POOL, label=_label("avgpool"),
   doc="average pooling (torch.nn.AvgPool2d)", overwritable=True, shape_doc="C×H×W → C×H'×W'",
   saves=lambda ins, a, out: ("in",),
   examples=examples(("3x9x9", "avgpool(2)"), ("8x14x14", "avgpool(5, stride=3)"),
                     ("2x10x11", "avgpool(3, stride=2, pad=1, ceil_mode=true, count_include_pad=false)"),
                     ("16x7x7", "avgpool(7, stride=1)")))


def _adaptive_infer(ins, a):
    needs_image("adaptive_avgpool", ins[0])
    return (ins[0][0],) + a["size"]


def _adaptive_build(ins, a):
    from torch import nn
    return nn.AdaptiveAvgPool2d(a["size"])


def _global_infer(ins, a):
    needs_image("global_avgpool", ins[0])
    return (ins[0][0], 1, 1)


def _adaptive_saves(ins, a, out):
    # torch computes a 1x1 output as a mean, whose backward needs only the input's size
    return () if tuple(out[1:]) == (1, 1) else ("in",)


op("adaptive_avgpool", (Attr("size", Pair(), 1, positional=True, doc="output HxW"),),
   infer=_adaptive_infer, build=_adaptive_build, kind=POOL, saves=_adaptive_saves,
   doc="average pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d)", shape_doc="C×H×W → C×h×w",
   examples=examples(("5x9x9", "adaptive_avgpool"), ("5x9x7", "adaptive_avgpool(3x2)")))

op("global_avgpool", (), infer=_global_infer, build=lambda ins, a: _adaptive_build(ins, {"size": (1, 1)}),
   kind=POOL, doc="average over all positions (torch.nn.AdaptiveAvgPool2d(1))", shape_doc="C×H×W → C×1×1",
   examples=examples(("5x9x7", "global_avgpool"),))
