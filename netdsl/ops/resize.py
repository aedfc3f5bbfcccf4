"""Resizing: upsampling, pixel shuffle and padding, on sequences, images and volumes."""

from __future__ import annotations

import math

from .. import codes
from .spec import (POOL, RESHAPE, Attr, Bool, CannotImport, Choice, Eject, Factor, FromTorch, Int, Maybe, Pair,
                   ShapeError, axis_names, examples, family, fmt_value, pycall, spatial_name)
from .window import fmt_pair, needs_spatial

op = family("resize")

# The interpolating modes and the one rank each works on (torch's names); nearest works on any.
_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _upsample_infer(ins, a):
    (shape,) = ins
    rank = needs_spatial("upsample", shape)
    mode = a["mode"]
    if mode in _LINEAR and _LINEAR[mode] != rank:
        fits = {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]
        raise ShapeError(codes.WRONG_RANK, f"`mode={mode}` interpolates {spatial_name(_LINEAR[mode])}, but the input "
                         f"is {spatial_name(rank)} ({'x'.join(map(str, shape))})",
                         help=f"use `mode={fits}` or `mode=nearest` for {spatial_name(rank)}")
    if a["align_corners"] and mode not in _LINEAR:
        raise ShapeError(codes.OUT_OF_RANGE, f"`align_corners` applies to the interpolating modes only, not `{mode}`",
                         help="use `mode=" + {1: "linear", 2: "bilinear", 3: "trilinear"}[rank] + "`, or leave it out")
    if a["size"] is not None:
        if a["factor"] is not None:
            raise ShapeError(codes.OUT_OF_RANGE, "`upsample` takes a `factor` or a `size`, not both")
        return (shape[0], *a["size"])
    factor = _factors(a, rank)
    out = []
    for axis, name in enumerate(axis_names(rank)):
        n = math.floor(float(shape[1 + axis]) * factor[axis])  # torch's rule, in double precision
        if n < 1:
            raise ShapeError(codes.OUT_OF_RANGE, f"`factor={fmt_value(a['factor'])}` leaves no output along the {name} "
                             f"({shape[1 + axis]} times {factor[axis]:g} is below 1)")
        out.append(n)
    return (shape[0], *out)


def _factors(a, rank):
    f = 2 if a["factor"] is None else a["factor"]
    return f if isinstance(f, tuple) else (f,) * rank


def _upsample_build(ins, a):
    from torch import nn
    # As given, so that torch refuses what the shape rule refuses (a factor and a size both,
    # align_corners=true with nearest), but torch's None for the default of nearest
    factor = 2 if a["factor"] is None and a["size"] is None else a["factor"]
    align = a["align_corners"] if a["mode"] in _LINEAR else (a["align_corners"] or None)
    return nn.Upsample(size=a["size"], scale_factor=factor, mode=a["mode"], align_corners=align)


def _upsample_eject(ins, a):
    factor = 2 if a["factor"] is None and a["size"] is None else a["factor"]
    align = a["align_corners"] if a["mode"] in _LINEAR else (a["align_corners"] or None)
    return Eject(pycall("nn.Upsample", size=a["size"], scale_factor=factor, mode=a["mode"], align_corners=align,
                        defaults={"size": None, "scale_factor": None, "mode": "nearest", "align_corners": None}))


def _upsample_label(a):
    if a["size"] is not None:
        text = f"upsample {fmt_pair(a['size'])}"
    else:
        f = 2 if a["factor"] is None else a["factor"]
        text = "upsample ×" + ("×".join(f"{x:g}" for x in f) if isinstance(f, tuple) else f"{f:g}")
    return text if a["mode"] == "nearest" else f"{text} {a['mode']}"


def _from_upsample(m):
    size, factor = m.size, m.scale_factor
    return dict(size=tuple(size) if isinstance(size, (list, tuple)) else size,
                factor=tuple(factor) if isinstance(factor, (list, tuple)) else factor,
                mode=m.mode, align_corners=bool(m.align_corners))


def _from_pad(mode):
    def attrs(m):
        p = tuple(m.padding)  # torch's order: (left, right, top, bottom, ...), from the last axis
        if any(p[i] != p[i + 1] for i in range(0, len(p), 2)):
            raise CannotImport(f"padding {p} that differs between the sides (netdsl's pads each side alike)")
        if getattr(m, "value", 0) != 0:
            raise CannotImport(f"padding with the value {m.value} (netdsl's zero padding pads with 0)")
        return dict(amount=tuple(reversed(p[::2])), mode=mode)
    return attrs


op("upsample",
   (Attr("factor", Maybe(Factor()), None, doc="a number, or one per axis; 2 when no size is given"),
    Attr("size", Maybe(Pair()), None, doc="the output size instead, like 56x56"),
    Attr("mode", Choice(("nearest", "linear", "bilinear", "trilinear")), "nearest",
         doc="`nearest`, or `linear` for sequences, `bilinear` for images, `trilinear` for volumes"),
    Attr("align_corners", Bool(), False)),
   infer=_upsample_infer, build=_upsample_build, eject=_upsample_eject, kind=POOL, label=_upsample_label,
   doc="upsampling by a factor or to a size (torch.nn.Upsample)", overwritable=True,
   imports=(FromTorch("torch.nn.Upsample", _from_upsample),),
   shape_doc="C×H×W → C×fH×fW, or C×size", params_doc="0",
   examples=examples(("3x5x6", "upsample"), ("3x5x6", "upsample(factor=3, mode=bilinear)"),
                     ("2x7x5", "upsample(size=14x9, mode=bilinear, align_corners=true)"),
                     ("2x6x6", "upsample(factor=1.5)"), ("2x4x6", "upsample(factor=(2, 1.5), mode=bilinear)"),
                     ("3x10", "upsample(factor=2, mode=linear)"), ("3x10", "upsample(size=25)"),
                     ("2x3x4x5", "upsample(mode=trilinear)"), ("2x3x4x5", "upsample(factor=(1, 2, 2))"),
                     ("2x3x4x5", "upsample(size=(6, 8, 7), mode=trilinear, align_corners=true)")))


def _shuffle_infer(ins, a):
    (shape,) = ins
    needs_spatial("pixel_shuffle", shape, (2,))
    r = a["r"]
    if shape[0] % (r * r):
        raise ShapeError(codes.GROUPS_MISMATCH, f"`pixel_shuffle({r})` needs channels divisible by {r}² = {r * r}, "
                         f"got {shape[0]}", help="the channels become r×r blocks of pixels: give the layer before "
                                                f"a multiple of {r * r} channels")
    return (shape[0] // (r * r), shape[1] * r, shape[2] * r)


def _shuffle_build(ins, a):
    from torch import nn
    return nn.PixelShuffle(a["r"])


op("pixel_shuffle", (Attr("r", Int(), positional=True, doc="upscale factor"),),
   infer=_shuffle_infer, build=_shuffle_build, kind=RESHAPE,
   eject=lambda ins, a: Eject(pycall("nn.PixelShuffle", a["r"])), label=lambda a: f"pixel_shuffle {a['r']}",
   doc="channels rearranged into r×r blocks of pixels (torch.nn.PixelShuffle)", overwritable=True,
   imports=(FromTorch("torch.nn.PixelShuffle", lambda m: dict(r=m.upscale_factor)),),
   shape_doc="C·r²×H×W → C×rH×rW",
   examples=examples(("8x3x4", "pixel_shuffle(2)"), ("18x2x2", "pixel_shuffle(3)")))


_PAD_MODULES = {"zero": "ZeroPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad"}


def _pad_infer(ins, a):
    (shape,) = ins
    rank = needs_spatial("pad", shape)
    if a["mode"] == "reflect":
        for axis, name in enumerate(axis_names(rank)):
            if a["amount"][axis] >= shape[1 + axis]:
                raise ShapeError(codes.OUT_OF_RANGE, f"reflect padding {a['amount'][axis]} must be less than the "
                                 f"input {name} {shape[1 + axis]}",
                                 help="reflection mirrors the input without its edge: it can add at most size − 1; "
                                      "use `mode=replicate` or `mode=zero`")
    return (shape[0], *(n + 2 * p for n, p in zip(shape[1:], a["amount"])))


def _pad_amounts(a) -> tuple[int, ...]:
    # torch lists the padding from the last axis: (left, right, top, bottom, front, back)
    return tuple(p for p in reversed(a["amount"]) for _ in (0, 1))


def _pad_build(ins, a):
    from torch import nn
    return getattr(nn, f"{_PAD_MODULES[a['mode']]}{len(ins[0]) - 1}d")(_pad_amounts(a))


def _pad_eject(ins, a):
    return Eject(pycall(f"nn.{_PAD_MODULES[a['mode']]}{len(ins[0]) - 1}d", _pad_amounts(a)))


op("pad", (Attr("amount", Pair(min=0), positional=True, doc="added on each side, per axis"),
           Attr("mode", Choice(("zero", "reflect", "replicate")), "zero", doc="what the padding holds")),
   infer=_pad_infer, build=_pad_build, eject=_pad_eject, kind=RESHAPE,
   label=lambda a: f"pad {fmt_pair(a['amount']) if len(set(a['amount'])) > 1 else a['amount'][0]}"
                   + ("" if a["mode"] == "zero" else f" {a['mode']}"),
   doc="padding on each side (torch.nn.ZeroPad2d, ReflectionPad2d, ReplicationPad2d; 1d, 3d)", overwritable=True,
   imports=tuple(FromTorch(f"torch.nn.{cls}{r}d", _from_pad(mode))
                 for mode, cls in _PAD_MODULES.items() for r in (1, 2, 3)),
   # reflection_pad's and replication_pad's backward read their input; constant_pad_nd's nothing
   saves=lambda ins, a, out: () if a["mode"] == "zero" else ("in",),
   shape_doc="C×H×W → C×H+2p×W+2p",
   examples=examples(("3x5x6", "pad(1)"), ("3x5x6", "pad(2x1, mode=reflect)"), ("3x5x6", "pad((0, 3), mode=replicate)"),
                     ("2x9", "pad(3, mode=reflect)"), ("2x9", "pad(2)"), ("2x3x4x5", "pad(1, mode=replicate)"),
                     ("2x3x4x5", "pad((0, 1, 2), mode=reflect)"), ("2x3x4x5", "pad((1, 0, 2))")))
