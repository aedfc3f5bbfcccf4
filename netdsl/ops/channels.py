"""Ops that pick or reorder channels: `chunk`, the part of the channels a `split` hands each of its
branches (netdsl/ops/join.py), and `channel_shuffle`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import codes
from .spec import (JOIN, RESHAPE, Attr, AttrError, CannotImport, Eject, FromTorch, Int, Mark, ShapeError,
                   describe_value, examples, family, fmt_shape, is_int, pycall)

op = family("channels")


@dataclass(frozen=True)
class Parts:
    """How the channels are cut: a number of equal parts (`2`), or each part's size (`(16, 48)`)."""

    doc = "count or sizes"

    def convert(self, v: Any, name: str):
        if is_int(v):
            if v < 1:
                raise AttrError(codes.OUT_OF_RANGE, f"`{name}` must be at least 1, got {v}")
            return v
        return Sizes().convert(v, name)


@dataclass(frozen=True)
class Sizes:
    """Channel counts, one per part; `()` (no sizes): equal parts."""

    doc = "channels per part"

    def convert(self, v: Any, name: str) -> tuple[int, ...]:
        if is_int(v):
            v = (v,)
        if isinstance(v, tuple) and len(v) == 1 and isinstance(v[0], tuple):
            v = v[0]  # `split(16x48)`: the sizes written as one shape
        if not (isinstance(v, tuple) and all(is_int(x) for x in v)):
            raise AttrError(codes.WRONG_TYPE, f"`{name}` expects channel counts like 16, 48, got {describe_value(v)}")
        if any(x < 1 for x in v):
            raise AttrError(codes.OUT_OF_RANGE, f"every part of `{name}` must be at least 1 channel, got "
                            f"{', '.join(map(str, v))}")
        return v


def part(shape, a) -> tuple[int, int]:
    """(first channel, channel count) of part `index` of the channels of `shape`; ShapeError
    when the channels do not cut that way."""
    channels, parts, index = shape[0], a["parts"], a["index"]
    count = parts if is_int(parts) else len(parts)
    if index >= count:
        raise ShapeError(codes.OUT_OF_RANGE, f"`chunk` part {index} of {count}: parts count from 0")
    if is_int(parts):
        if channels % parts:
            raise ShapeError(codes.SPLIT_UNEVEN, f"{channels} channels do not split into {parts} equal parts",
                             help=f"give each part's size, e.g. `split({channels // parts + channels % parts}, "
                                  f"{', '.join([str(channels // parts)] * (parts - 1))})`")
        size = channels // parts
        return index * size, size
    if sum(parts) != channels:
        raise ShapeError(codes.SPLIT_SIZES, f"the split sizes {', '.join(map(str, parts))} add up to {sum(parts)}, "
                         f"but the input has {channels} channels ({fmt_shape(shape)})",
                         help="the parts of the channels, one per branch, must add up to the channels")
    return sum(parts[:index]), parts[index]


def _chunk_infer(ins, a):
    return (part(ins[0], a)[1],) + ins[0][1:]


def _chunk_build(ins, a):
    from .modules import Narrow
    return Narrow(*part(ins[0], a))


def _chunk_label(a) -> str:
    parts, index = a["parts"], a["index"]
    if is_int(parts):
        return f"split {index + 1}/{parts}"
    start = sum(parts[:index])
    return f"split {start}:{start + parts[index]}"


def _from_chunk(c):
    """`x.chunk(n, dim=1)`, whose parts the traced graph then takes by index (`index` is left
    out: `netdsl import` gives each part's)."""
    if c.arg(2, "dim", 0) != 1:
        raise CannotImport(f"a chunk along dim {c.arg(2, 'dim', 0)} (netdsl's chunk cuts the channels, dim 1)")
    return dict(parts=c.arg(1, "chunks"))


def _from_split(c):
    if c.arg(2, "dim", 0) != 1:
        raise CannotImport(f"a split along dim {c.arg(2, 'dim', 0)} (netdsl's chunk cuts the channels, dim 1)")
    size = c.arg(1, "split_size_or_sections")
    if is_int(size):
        channels = c.args[0].shape[0]
        if channels % size:
            raise CannotImport(f"a split of {channels} channels into parts of {size}")
        return dict(parts=channels // size)
    return dict(parts=tuple(size))


def _from_narrow(c):
    """`x.narrow(1, start, length)`, as a compiled net's `split` takes each part (netdsl.ops.modules.Narrow):
    the part of equal parts where `length` divides the channels and `start`, else of the sizes around it."""
    if c.arg(1, "dim") != 1:
        raise CannotImport(f"a narrow along dim {c.arg(1, 'dim')} (netdsl's chunk cuts the channels, dim 1)")
    channels, start, length = c.args[0].shape[0], c.arg(2, "start"), c.arg(3, "length")
    if not (is_int(start) and is_int(length)) or start < 0 or length <= 0 or start + length > channels:
        raise CannotImport(f"a narrow from {start} of length {length} of {channels} channels")
    if channels % length == 0 and start % length == 0:
        return dict(parts=channels // length, index=start // length)
    sizes = tuple(s for s in (start, length, channels - start - length) if s)
    return dict(parts=sizes, index=1 if start else 0)


op("chunk", (Attr("index", Int(min=0), positional=True, doc="which part, from 0"),
             Attr("parts", Parts(), 2, positional=True, doc="a count of equal parts, or their sizes")),
   infer=_chunk_infer, build=_chunk_build, kind=JOIN,
   eject=lambda ins, a: Eject(call=pycall("{x0}.narrow", 1, *part(ins[0], a))),
   label=_chunk_label, mark=Mark("split", "ellipse"),
   aliases=True,  # a view of its input's channels
   imports=(FromTorch("torch.chunk", _from_chunk), FromTorch("Tensor.chunk", _from_chunk),
            FromTorch("torch.split", _from_split), FromTorch("Tensor.split", _from_split),
            FromTorch("Tensor.narrow", _from_narrow)),  # a compiled net's own chunk, imported again
   doc="one part of the channels, as `x.chunk(parts, dim=1)[index]` or, with sizes, `x.split(sizes, dim=1)[index]`; "
       "what `split` hands each branch", shape_doc="C×… → part×…",
   examples=examples(("8x4x4", "chunk(1)"), ("8x4x4", "chunk(0, 4)"), ("6x3x3", "chunk(1, (2, 4))"), ("10", "chunk(0)"),
                     ("6x5", "chunk(2, 3)"), ("4x2x3x3", "chunk(1, (1, 3))")))


def _shuffle_infer(ins, a):
    shape = ins[0]
    if len(shape) < 2:
        raise ShapeError(codes.WRONG_RANK, f"`channel_shuffle` expects channels with positions, got {fmt_shape(shape)}",
                         help="it reorders the channels of a sequence, an image or a volume")
    if shape[0] % a["groups"]:
        raise ShapeError(codes.GROUPS_MISMATCH, f"`groups={a['groups']}` must divide the input channels ({shape[0]})",
                         help="shuffle into a number of groups that divides the channels")
    return shape


def _shuffle_build(ins, a):
    from torch import nn
    return nn.ChannelShuffle(a["groups"])


op("channel_shuffle", (Attr("groups", Int(), positional=True, doc="channel groups to interleave"),),
   infer=_shuffle_infer, build=_shuffle_build, kind=RESHAPE,
   eject=lambda ins, a: Eject(pycall("nn.ChannelShuffle", a["groups"])), label=lambda a: f"shuffle {a['groups']}",
   overwritable=True,  # a permutation: its backward reads nothing
   imports=(FromTorch("torch.nn.ChannelShuffle", lambda m: dict(groups=m.groups)),
            FromTorch("torchvision.models.shufflenetv2.channel_shuffle", lambda c: dict(groups=c.arg(1, "groups")))),
   doc="the channels of `groups` groups interleaved, ShuffleNet's shuffle (torch.nn.ChannelShuffle)",
   shape_doc="unchanged; C divisible by groups",
   examples=examples(("8x4x4", "channel_shuffle(2)"), ("6x3x3", "channel_shuffle(3)"), ("6x5", "channel_shuffle(2)"),
                     ("4x2x3x3", "channel_shuffle(2)")))
