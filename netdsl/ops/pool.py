"""Pooling: max and average over windows, adaptive and global, on sequences, images and volumes."""

from __future__ import annotations

import math

from .. import codes
from .spec import (POOL, Attr, Bool, CannotImport, Eject, FromTorch, Pair, ShapeError, axis_names, examples, family,
                   fmt_value, pycall)
from .window import fmt_pair, fmt_stride, needs_spatial, padding_window, windowed

op = family("pool")


def _check_pad(name, a):
    if any(p * 2 > k for p, k in zip(a["pad"], a["kernel"])):
        raise ShapeError(codes.OUT_OF_RANGE, f"`{name}` padding {fmt_value(a['pad'])} is more than half its kernel "
                         f"{fmt_value(a['kernel'])}", help="PyTorch allows at most half the kernel")


_LINES = {"height": "row", "width": "column", "depth": "slice", "length": "position"}


def _check_windows(name, shape, a, dilation, what):
    """Refuse (E409) a window that reads padding only: PyTorch gives it no input position, so
    its result is meaningless (`what`) and, for maxpool, its index points outside the input."""
    for axis, dim in enumerate(axis_names(len(shape) - 1)):
        rows = _LINES.get(dim, "position")
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
    needs_spatial("maxpool", ins[0])
    _check_pad("maxpool", a)
    out = windowed("maxpool", ins[0], ins[0][0], a["kernel"], a["stride"], a["pad"], a["dilation"], a["ceil_mode"])
    _check_windows("maxpool", ins[0], a, a["dilation"],
                   "output -inf there and, in the backward pass, write to a position that is not in the "
                   "input (corrupting memory)")
    return out


def _avgpool_infer(ins, a):
    rank = needs_spatial("avgpool", ins[0])
    _check_pad("avgpool", a)
    out = windowed("avgpool", ins[0], ins[0][0], a["kernel"], a["stride"], a["pad"], ceil=a["ceil_mode"])
    if rank == 3:  # torch's avg_pool3d alone also wants the unpadded input at least the kernel's size
        for axis, name in enumerate(axis_names(3)):
            if ins[0][1 + axis] < a["kernel"][axis]:
                raise ShapeError(codes.WINDOW_TOO_LARGE, f"the {a['kernel'][axis]}-wide window of `avgpool` does not "
                                 f"fit the input {name} {ins[0][1 + axis]} (PyTorch's 3-D average pooling needs the "
                                 "input, without its padding, at least as large as the kernel)",
                                 help="use a smaller kernel, or check the layers before")
    # Without dilation, pad <= kernel/2 leaves every window some input (see padding_window):
    # checked all the same, for an average over no input divides by zero.
    _check_windows("avgpool", ins[0], a, (1,) * rank, "divide by zero there" if not a["count_include_pad"]
                   else "average padding only there")
    return out


def _torch(name, shape):
    """The torch.nn class for `shape`'s rank: `MaxPool` and a 3-D input give nn.MaxPool3d."""
    from torch import nn
    return getattr(nn, f"{name}{len(shape) - 1}d")


def _maxpool_build(ins, a):
    return _torch("MaxPool", ins[0])(a["kernel"], a["stride"], a["pad"], a["dilation"], ceil_mode=a["ceil_mode"])


def _avgpool_build(ins, a):
    return _torch("AvgPool", ins[0])(a["kernel"], a["stride"], a["pad"], ceil_mode=a["ceil_mode"],
                        count_include_pad=a["count_include_pad"])


def _maxpool_eject(ins, a):
    return Eject(pycall(f"nn.MaxPool{len(ins[0]) - 1}d", a["kernel"], stride=a["stride"], padding=a["pad"],
                        dilation=a["dilation"], ceil_mode=a["ceil_mode"],
                        defaults={"stride": a["kernel"], "padding": 0, "dilation": 1, "ceil_mode": False}))


def _avgpool_eject(ins, a):
    return Eject(pycall(f"nn.AvgPool{len(ins[0]) - 1}d", a["kernel"], stride=a["stride"], padding=a["pad"],
                        ceil_mode=a["ceil_mode"], count_include_pad=a["count_include_pad"],
                        defaults={"stride": a["kernel"], "padding": 0, "ceil_mode": False, "count_include_pad": True}))


def _label(name):
    return lambda a: f"{name} {fmt_pair(a['kernel'])}{fmt_stride(a['stride'])}"


def _size(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _from_maxpool(m):
    if m.return_indices:
        raise CannotImport("return_indices=True (netdsl's maxpool outputs the maxima only)")
    return dict(kernel=_size(m.kernel_size), stride=_size(m.stride or m.kernel_size), pad=_size(m.padding),
                dilation=_size(m.dilation), ceil_mode=m.ceil_mode)


def _from_avgpool(m):
    if getattr(m, "divisor_override", None) is not None:
        raise CannotImport("divisor_override (netdsl's avgpool divides by the window)")
    return dict(kernel=_size(m.kernel_size), stride=_size(m.stride or m.kernel_size), pad=_size(m.padding),
                ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad)


class _Args:
    """A pooling function's arguments read as a module's attributes (F.max_pool2d(x, 3, 2))."""

    def __init__(self, call, names, defaults):
        for i, (name, default) in enumerate(zip(names, defaults)):
            setattr(self, name, call.arg(i + 1, name, default))


def _from_max_pool_call(c):
    return _from_maxpool(_Args(c, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
                               (None, None, 0, 1, False, False)))


def _from_avg_pool_call(c):
    return _from_avgpool(_Args(c, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                   "divisor_override"), (None, None, 0, False, True, None)))


_WINDOW = (
    Attr("kernel", Pair(), positional=True),
    Attr("stride", Pair(), lambda bound: bound["kernel"], positional=True, doc="defaults to the kernel"),
    Attr("pad", Pair(min=0), 0, positional=True),
)

op("maxpool", _WINDOW + (Attr("dilation", Pair(), 1), Attr("ceil_mode", Bool(), False)),
   infer=_maxpool_infer, build=_maxpool_build, eject=_maxpool_eject, kind=POOL, label=_label("maxpool"),
   doc="max pooling (torch.nn.MaxPool2d; 1d on sequences, 3d on volumes)", overwritable=True,
   imports=tuple(FromTorch(f"torch.nn.MaxPool{r}d", _from_maxpool) for r in (1, 2, 3))
   + tuple(FromTorch(f"torch.nn.functional.max_pool{r}d", _from_max_pool_call) for r in (1, 2, 3)),
   saves=lambda ins, a, out: ("in", (math.prod(out), 8)),  # and where each maximum was, as int64
   shape_doc="C×H×W → C×H'×W'",
   examples=examples(("3x9x9", "maxpool(2)"), ("4x112x112", "maxpool(3, stride=2, ceil_mode=true)"),
                     ("4x15x16", "maxpool(3, stride=2, pad=1)"), ("2x7x7", "maxpool(3, stride=1, pad=1)"),
                     ("1x14x14", "maxpool(3, stride=2, ceil_mode=true)"), ("1x9x9", "maxpool(2, dilation=2)"),
                     ("1x10x10", "maxpool(3, stride=3, pad=1, ceil_mode=true)"),
                     ("3x20", "maxpool(3, stride=2, pad=1)"), ("2x19", "maxpool(2, dilation=2, ceil_mode=true)"),
                     ("2x6x9x9", "maxpool(3, stride=2, pad=1)"), ("2x4x8x8", "maxpool((1, 2, 2))"),
                     ("2x7x9x10", "maxpool(3, stride=2, dilation=1x2x2, ceil_mode=true)")))

op("avgpool", _WINDOW + (Attr("ceil_mode", Bool(), False), Attr("count_include_pad", Bool(), True)),
   infer=_avgpool_infer, build=_avgpool_build, eject=_avgpool_eject, kind=POOL, label=_label("avgpool"),
   doc="average pooling (torch.nn.AvgPool2d; 1d on sequences, 3d on volumes)", overwritable=True,
   imports=tuple(FromTorch(f"torch.nn.AvgPool{r}d", _from_avgpool) for r in (1, 2, 3))
   + tuple(FromTorch(f"torch.nn.functional.avg_pool{r}d", _from_avg_pool_call) for r in (1, 2, 3)),
   saves=lambda ins, a, out: ("in",),
   shape_doc="C×H×W → C×H'×W'",
   examples=examples(("3x9x9", "avgpool(2)"), ("8x14x14", "avgpool(5, stride=3)"),
                     ("2x10x11", "avgpool(3, stride=2, pad=1, ceil_mode=true, count_include_pad=false)"),
                     ("16x7x7", "avgpool(7, stride=1)"),
                     ("3x21", "avgpool(4, stride=2, pad=1, ceil_mode=true, count_include_pad=false)"),
                     ("2x4x8x8", "avgpool(2)"),
                     ("2x5x9x9", "avgpool(3x3x3, stride=2, pad=1, count_include_pad=false)")))


def _adaptive_infer(name):
    def infer(ins, a):
        needs_spatial(name, ins[0])
        return (ins[0][0],) + a["size"]
    return infer


def _global_infer(name):
    def infer(ins, a):
        needs_spatial(name, ins[0])
        return (ins[0][0],) + (1,) * (len(ins[0]) - 1)
    return infer


def _adaptive_saves(kind):
    def saves(ins, a, out):
        if kind == "max":  # and where each maximum was, as int64
            return ("in", (math.prod(out), 8))
        # torch computes an output of all 1s as a mean, whose backward needs only the input's size
        return () if all(s == 1 for s in out[1:]) else ("in",)
    return saves


def _adaptive_scratch(kind):
    # adaptive max pooling computes the int64 indices of its maxima even when only the output is
    # asked for (F.adaptive_max_pool2d takes [0] of the pair): alive with the output, then dropped
    return (lambda ins, a, out: ((math.prod(out), 8),)) if kind == "max" else (lambda ins, a, out: 0)


def _adaptive_build(kind):
    return lambda ins, a: _torch(f"Adaptive{kind}Pool", ins[0])(a["size"])


def _adaptive_eject(kind):
    return lambda ins, a: Eject(pycall(f"nn.Adaptive{kind}Pool{len(ins[0]) - 1}d", a["size"]))


def _global_eject(kind):
    return lambda ins, a: Eject(pycall(f"nn.Adaptive{kind}Pool{len(ins[0]) - 1}d", 1))


def _global_build(kind):
    def build(ins, a):
        from . import modules
        return getattr(modules, f"Global{kind}Pool{len(ins[0]) - 1}d")(1)
    return build


def _from_adaptive(m):
    if getattr(m, "return_indices", False):
        raise CannotImport("return_indices=True (netdsl's pool outputs the maxima only)")
    size = _size(m.output_size)
    if size is None or (isinstance(size, tuple) and None in size):
        raise CannotImport("an output size of None (the input's size along that axis)")
    return dict(size=size)


def _from_adaptive_call(c):
    return dict(size=_size(c.arg(1, "output_size")))


def _from_mean(c):
    """`x.mean([2, 3])`, ShuffleNetV2's and MNASNet's global pool: a global average pool, then a flatten."""
    dims = c.arg(1, "dim")
    rank = len(c.args[0].shape) if c.args[0].shape else 0
    if c.arg(2, "keepdim", False) or sorted(d % (rank + 1) for d in dims) != list(range(2, rank + 1)):
        raise CannotImport(f"a mean over dims {dims} (netdsl's global pool averages all positions)")
    return {}


for _kind, _what in (("avg", "average"), ("max", "maximum")):
    _Kind = _kind.capitalize()
    op(f"adaptive_{_kind}pool", (Attr("size", Pair(), 1, positional=True, doc="output size per axis"),),
       imports=tuple(FromTorch(f"torch.nn.Adaptive{_Kind}Pool{r}d", _from_adaptive) for r in (1, 2, 3))
       + tuple(FromTorch(f"torch.nn.functional.adaptive_{_kind}_pool{r}d", _from_adaptive_call) for r in (1, 2, 3)),
       infer=_adaptive_infer(f"adaptive_{_kind}pool"), build=_adaptive_build(_Kind), kind=POOL,
       eject=_adaptive_eject(_Kind),
       saves=_adaptive_saves(_kind), scratch=_adaptive_scratch(_kind),
       doc=f"{_what} pooling to a fixed output size (torch.nn.Adaptive{_Kind}Pool2d; 1d, 3d)",
       shape_doc="C×H×W → C×h×w",
       examples=examples(("5x9x9", f"adaptive_{_kind}pool"), ("5x9x7", f"adaptive_{_kind}pool(3x2)"),
                         ("4x20", f"adaptive_{_kind}pool(6)"), ("3x4x9x9", f"adaptive_{_kind}pool"),
                         ("3x5x9x7", f"adaptive_{_kind}pool(1x3x2)")))

    op(f"global_{_kind}pool", (), infer=_global_infer(f"global_{_kind}pool"), build=_global_build(_Kind),
       eject=_global_eject(_Kind), kind=POOL, saves=_adaptive_saves(_kind), scratch=_adaptive_scratch(_kind),
       imports=tuple(FromTorch(f"netdsl.ops.modules.Global{_Kind}Pool{r}d") for r in (1, 2, 3))  # a compiled net's
       + ((FromTorch("Tensor.mean", _from_mean, then=("flatten",)),) if _kind == "avg" else ()),
       doc=f"{_what} over all positions (torch.nn.Adaptive{_Kind}Pool2d(1); 1d, 3d)",
       shape_doc="C×H×W → C×1×1",
       examples=examples(("5x9x7", f"global_{_kind}pool"), ("4x12", f"global_{_kind}pool"),
                         ("3x4x5x6", f"global_{_kind}pool")))
