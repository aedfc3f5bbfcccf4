"""Normalisation: local response, batch, group, layer and instance normalisation, and layer scale."""

from __future__ import annotations

import math
import operator

from .. import codes
from .spec import (NORM, Attr, Bool, CannotImport, Eject, Float, FromTorch, Int, ShapeError, examples, family,
                   fmt_shape, pycall)
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
   infer=_lrn_infer, build=_lrn_build, kind=NORM,
   eject=lambda ins, a: Eject(pycall("nn.LocalResponseNorm", a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"],
                                     defaults={"alpha": 1e-4, "beta": 0.75, "k": 1.0})),
   label=lambda a: f"lrn {a['size']}",
   saves=_lrn_saves, scratch=lambda ins, a, out: 2 * math.prod(out),
   doc="local response normalisation across channels (torch.nn.LocalResponseNorm)", shape_doc="C×H×W, unchanged",
   imports=(FromTorch("torch.nn.LocalResponseNorm", lambda m: dict(size=m.size, alpha=m.alpha, beta=m.beta, k=m.k)),),
   examples=examples(("8x6x6", "lrn(5)"), ("4x5x5", "lrn(3, alpha=0.001, beta=0.5, k=2)")))


def _from_bn(m):
    if not m.track_running_stats or m.momentum is None:
        raise CannotImport("a BatchNorm without running statistics or with a cumulative average (momentum=None)")
    return dict(eps=m.eps, momentum=m.momentum, affine=m.affine)


def _bn_infer(ins, a):
    if not 1 <= len(ins[0]) <= 4:
        raise ShapeError(codes.WRONG_RANK, f"`batchnorm` expects a vector, a sequence, an image or a volume, "
                         f"got {fmt_shape(ins[0])}")
    return ins[0]


def _bn_build(ins, a):
    from torch import nn
    # BatchNorm1d takes both N x C (vectors) and N x C x L (sequences)
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(ins[0])]
    return cls(ins[0][0], a["eps"], a["momentum"], a["affine"])


def _bn_eject(ins, a):
    return Eject(pycall(f"nn.BatchNorm{max(len(ins[0]) - 1, 1)}d", ins[0][0], eps=a["eps"], momentum=a["momentum"],
                        affine=a["affine"], defaults={"eps": 1e-5, "momentum": 0.1, "affine": True}))


# eps above 0: torch's batch_norm refuses 0 in training ("eps must be positive during training")
op("batchnorm", (Attr("eps", Float(above=True), 1e-5), Attr("momentum", Float(0.0, 1.0), 0.1),
                 Attr("affine", Bool(), True)),
   infer=_bn_infer, build=_bn_build, eject=_bn_eject, kind=NORM,
   params=lambda ins, a, out: 2 * ins[0][0] if a["affine"] else 0,
   buffers=lambda ins, a, out: (2 * ins[0][0], 1),  # running mean and variance; num_batches_tracked
   doc="batch normalisation (torch.nn.BatchNorm2d; 1d on vectors and sequences, 3d on volumes)", overwritable=True,
   imports=tuple(FromTorch(f"torch.nn.BatchNorm{r}d", _from_bn) for r in (1, 2, 3)),
   saves=lambda ins, a, out: ("in", (2 * ins[0][0], 4, "once")),  # and each channel's mean and 1/std, float32
   shape_doc="unchanged (any rank up to volumes)", params_doc="2·C if affine",
   examples=examples(("8x5x5", "batchnorm"), ("6x3x3", "batchnorm(eps=0.001, affine=false)"), ("12", "batchnorm"),
                     ("12", "batchnorm(affine=false)"), ("6x10", "batchnorm"), ("4x3x5x5", "batchnorm"),
                     ("4x3x5x5", "batchnorm(momentum=0.2, affine=false)")))


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
   infer=_gn_infer, build=_gn_build, kind=NORM,
   eject=lambda ins, a: Eject(pycall("nn.GroupNorm", a["groups"], ins[0][0], eps=a["eps"], affine=a["affine"],
                                     defaults={"eps": 1e-5, "affine": True})),
   label=lambda a: f"groupnorm {a['groups']}",
   params=lambda ins, a, out: 2 * ins[0][0] if a["affine"] else 0,
   doc="group normalisation over channel groups, per example (torch.nn.GroupNorm)",
   imports=(FromTorch("torch.nn.GroupNorm", lambda m: dict(groups=m.num_groups, eps=m.eps, affine=m.affine)),),
   saves=lambda ins, a, out: ("in", (2 * a["groups"], 0)),  # and each group's mean and 1/std
   shape_doc="unchanged; C divisible by groups", params_doc="2·C if affine",
   examples=examples(("8x5x5", "groupnorm(4)"), ("6x3x3", "groupnorm(3, eps=0.001, affine=false)"),
                     ("12", "groupnorm(2)"),
                     ("6x10", "groupnorm(3)"), ("4x2x3x3", "groupnorm(2)")))


def _positions(shape) -> int:
    return math.prod(shape[1:])


def _from_ln(m):
    if len(m.normalized_shape) != 1 or getattr(m, "bias", True) is None and m.weight is not None:
        raise CannotImport(f"a LayerNorm over {tuple(m.normalized_shape)} "
                           "(netdsl's normalises the channels, with a bias)")
    return dict(eps=m.eps, affine=m.elementwise_affine)


def _ln_build(ins, a):
    from torch import nn
    if len(ins[0]) == 1:
        return nn.LayerNorm(ins[0][0], a["eps"], a["affine"])
    from .modules import ChannelLayerNorm
    return ChannelLayerNorm(ins[0][0], a["eps"], a["affine"])


def _ln_eject(ins, a):
    cls, helpers = ("nn.LayerNorm", ()) if len(ins[0]) == 1 else ("ChannelLayerNorm", ("ChannelLayerNorm",))
    return Eject(pycall(cls, ins[0][0], eps=a["eps"], elementwise_affine=a["affine"],
                        defaults={"eps": 1e-5, "elementwise_affine": True}), helpers=helpers)


op("layernorm", (Attr("eps", Float(above=True), 1e-5), Attr("affine", Bool(), True)),
   infer=lambda ins, a: ins[0], build=_ln_build, eject=_ln_eject, kind=NORM,
   params=lambda ins, a, out: 2 * ins[0][0] if a["affine"] else 0,
   # layer_norm's backward reads its input and statistics, not its output
   overwritable=True, saves=lambda ins, a, out: ("in", (2 * math.prod(ins[0][1:]), 4)),  # mean and 1/std, float32
   imports=(FromTorch("torch.nn.LayerNorm", _from_ln), FromTorch("torchvision.models.convnext.LayerNorm2d", _from_ln),
            FromTorch("netdsl.ops.modules.ChannelLayerNorm", _from_ln),
            FromTorch("torch.nn.LayerNorm", _from_ln, channels_last=True)),
   doc="layer normalisation over the channels at every position, per example (torchvision's ConvNeXt "
       "LayerNorm2d: channels moved last, torch.nn.LayerNorm, moved back); over the features of a vector",
   shape_doc="unchanged, any rank", params_doc="2·C if affine",
   examples=examples(("8x5x5", "layernorm"), ("6x3x3", "layernorm(eps=1e-6, affine=false)"), ("12", "layernorm"),
                     ("12", "layernorm(affine=false)"), ("4x10", "layernorm"), ("3x2x4x4", "layernorm")))


def _in_infer(ins, a):
    shape = ins[0]
    if len(shape) not in (2, 3, 4):
        raise ShapeError(codes.WRONG_RANK,
                         f"`instancenorm` expects a sequence, an image or a volume, got {fmt_shape(shape)}",
                         help="it normalises each channel over its positions; a vector has none (try `layernorm`)")
    if _positions(shape) == 1:  # torch refuses it in training: there is nothing to normalise over
        raise ShapeError(codes.WRONG_RANK,
                         f"`instancenorm` needs more than one position per channel, got {fmt_shape(shape)}",
                         help="normalise before the spatial size shrinks to 1, or use `layernorm`")
    return shape


def _in_saves(ins, a, out):
    # instance_norm runs batch_norm on the batch viewed as one example of B·C channels: it keeps
    # that view of the input, each channel's mean and 1/std (float32), and the affine weight and
    # the running mean and variance repeated B times (`weight.repeat(b)`, in the net's dtype)
    channels = ins[0][0]
    repeated = (1 if a["affine"] else 0) + (2 if a["track"] else 0)
    return ("in", (2 * channels, 4)) + (((repeated * channels, 0),) if repeated else ())


def _in_eject(ins, a):
    return Eject(pycall(f"nn.InstanceNorm{len(ins[0]) - 1}d", ins[0][0], eps=a["eps"], momentum=a["momentum"],
                        affine=a["affine"], track_running_stats=a["track"],
                        defaults={"eps": 1e-5, "momentum": 0.1, "affine": False, "track_running_stats": False}))


def _in_build(ins, a):
    from torch import nn
    cls = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[len(ins[0]) - 2]
    return cls(ins[0][0], a["eps"], a["momentum"], a["affine"], a["track"])


op("instancenorm", (Attr("eps", Float(above=True), 1e-5), Attr("momentum", Float(0.0, 1.0), 0.1),
                    Attr("affine", Bool(), False),
                    Attr("track", Bool(), False, doc="keep running statistics for evaluation")),
   infer=_in_infer, build=_in_build, eject=_in_eject, kind=NORM,
   params=lambda ins, a, out: 2 * ins[0][0] if a["affine"] else 0,
   buffers=lambda ins, a, out: (2 * ins[0][0], 1) if a["track"] else (0, 0),
   overwritable=True,  # batch_norm's backward, which instance_norm runs, reads its input and statistics
   saves=_in_saves,
   doc="each channel normalised over its positions, per example (torch.nn.InstanceNorm2d, 1d, 3d)",
   imports=tuple(FromTorch(f"torch.nn.InstanceNorm{r}d", lambda m: dict(eps=m.eps, momentum=m.momentum or 0.1,
                                                                         affine=m.affine, track=m.track_running_stats))
                 for r in (1, 2, 3)),
   shape_doc="unchanged (sequences, images, volumes)", params_doc="2·C if affine",
   examples=examples(("4x5x5", "instancenorm"), ("6x3x3", "instancenorm(affine=true, track=true)"),
                     ("3x4x4", "instancenorm(eps=0.001, affine=true)"), ("4x10", "instancenorm(affine=true)"),
                     ("3x2x3x3", "instancenorm(track=true)")))


def _scale_build(ins, a):
    from .modules import Scale
    shape = ins[0]
    return Scale([shape[0]] + [1] * (len(shape) - 1), a["init"])


op("scale", (Attr("init", Float(min=-math.inf), 1e-6, positional=True, doc="the initial scale"),),
   infer=lambda ins, a: ins[0], build=_scale_build, kind=NORM,
   eject=lambda ins, a: Eject(call="{w} * {x0}",  # as `bare`: the parameter, then its product
                              parameter=pycall("torch.full", [ins[0][0]] + [1] * (len(ins[0]) - 1), a["init"])),
   label=lambda a: "scale",
   params=lambda ins, a, out: ins[0][0],
   # a bare parameter, as torchvision's CNBlock holds it: `features.1.0.layer_scale`, no `.weight`
   bare=operator.mul,  # `layer_scale * x`, torchvision's order
   # the tensor's values are the weights' (loaded): the init is the registry's default
   imports=(FromTorch("torch.nn.Parameter"),),
   overwritable=True,  # a product's backward reads its factors, not the product
   saves=lambda ins, a, out: ("in",),
   doc="a learnt scale per channel, layer scale (torchvision's CNBlock.layer_scale: C×1×1 for images), "
       "held as a bare parameter named by the layer (`layer_scale`, not `layer_scale.weight`)",
   params_doc="C", examples=examples(("8x5x5", "scale"), ("6x3x3", "scale(0.5)"), ("12", "scale(1e-6)"),
                                         ("4x10", "scale(2)"), ("3x2x3x3", "scale")))
