"""Joins: several branches from one input, made into one tensor again."""

from __future__ import annotations

from .. import codes
from .channels import Sizes
from .spec import (JOIN, Attr, AttrError, CannotImport, Eject, FromTorch, Mark, ShapeError, TensorArg, examples, family,
                   fmt_shape)

op = family("join")


def _kind(shape) -> str:
    return {1: "a vector", 3: "an image"}.get(len(shape), f"a {len(shape)}-d tensor")


def _concat_infer(ins, a, what: str = "concat"):
    first = ins[0]
    for i, s in enumerate(ins):
        if len(s) != len(first):
            raise ShapeError(codes.CONCAT_MISMATCH, f"{what} branch {i + 1} outputs {_kind(s)} {fmt_shape(s)}, "
                             f"branch 1 {_kind(first)} {fmt_shape(first)}",
                             help="images and vectors cannot be joined; flatten every branch or none",
                             bad_inputs=(0, i))
        if s[1:] != first[1:]:
            raise ShapeError(codes.CONCAT_MISMATCH, f"{what} branch {i + 1} has spatial size {fmt_shape(s[1:])}, "
                             f"branch 1 has {fmt_shape(first[1:])}",
                             help="branches are joined along channels: every other dimension must agree",
                             bad_inputs=(0, i))
    return (sum(s[0] for s in ins),) + first[1:]


def _add_infer(ins, a):
    for i, s in enumerate(ins):
        if s != ins[0]:
            raise ShapeError(codes.ELEMENTWISE_MISMATCH, f"add branch {i + 1} has shape {fmt_shape(s)}, branch 1 has {fmt_shape(ins[0])}",
                             help="branches are summed element by element: their shapes must be equal",
                             bad_inputs=(0, i))
    return ins[0]


def _inputs(n: int) -> list[str]:
    return [f"{{x{i}}}" for i in range(n)]


def _concat_eject(ins, a):
    return Eject(call=f"torch.cat([{', '.join(_inputs(len(ins)))}], 1)")


def _operator_eject(operator: str):
    return lambda ins, a: Eject(call=f" {operator} ".join(_inputs(len(ins))))


def _from_cat(c):
    dim, tensors = c.arg(1, "dim", 0), c.arg(0, "tensors")
    rank = len(tensors[0].shape) if tensors and isinstance(tensors[0], TensorArg) and tensors[0].shape else None
    if dim != 1 and not (rank is not None and dim == -rank):
        raise CannotImport(f"a concatenation along dim {dim} (netdsl's concat joins the channels, dim 1)")
    return {}


def _tensors_only(what):
    def attrs(c):
        if len(c.args) != 2 or c.kwargs or not all(isinstance(x, TensorArg) for x in c.args):
            raise CannotImport(f"{what} of other than two tensors (netdsl's joins take only tensors)")
        return {}
    return attrs


def _concat_build(ins, a):
    from .modules import Concat
    return Concat()


def _add_build(ins, a):
    from .modules import Add
    return Add()


op("concat", (), infer=_concat_infer, build=_concat_build, eject=_concat_eject, kind=JOIN, join=True,
   mark=Mark("concat", "ellipse"),
   imports=(FromTorch("torch.cat", _from_cat), FromTorch("torch.concat", _from_cat),
            FromTorch("netdsl.ops.modules.Concat")),  # a compiled net's own join, imported again
   doc="branches joined along the channels", overwritable=True, shape_doc="channels summed, H and W equal",
   examples=examples(("3x8x8", "concat { conv(4, 1) | conv(6, 3, pad=1) }"), ("7", "concat { linear(4) | linear(5) }")))

op("add", (), infer=_add_infer, build=_add_build, eject=_operator_eject("+"), kind=JOIN, join=True,
   mark=Mark("+", "circle"),
   imports=tuple(FromTorch(f, _tensors_only("a sum"))
                 for f in ("operator.add", "operator.iadd", "torch.add", "Tensor.add"))
   + (FromTorch("netdsl.ops.modules.Add"),),
   doc="branches summed element by element (residual connections)", overwritable=True, in_place=True,
   shape_doc="equal shapes, unchanged",
   examples=examples(("3x8x8", "add { identity | conv(3, 3, pad=1) }"),
                     ("3x8x8", "add { conv(3, 1) | conv(3, 3, pad=1) relu }")))  # the sum in place


def _mul_infer(ins, a):
    out = list(ins[0])
    for i, s in enumerate(ins):
        if len(s) != len(out):
            raise ShapeError(codes.ELEMENTWISE_MISMATCH, f"mul branch {i + 1} outputs {_kind(s)} {fmt_shape(s)}, "
                             f"branch 1 {_kind(ins[0])} {fmt_shape(ins[0])}",
                             help="branches are multiplied element by element: give them the same dimensions",
                             bad_inputs=(0, i))
        for d, (x, y) in enumerate(zip(out, s)):
            if x != y and 1 not in (x, y):
                raise ShapeError(codes.ELEMENTWISE_MISMATCH, f"mul branch {i + 1} has shape {fmt_shape(s)}, which does "
                                 f"not broadcast with {fmt_shape(tuple(out))}: sizes {x} and {y}",
                                 help="each size must be equal, or 1 where one side is repeated (C×1×1 times C×H×W)",
                                 bad_inputs=(0, i))
            out[d] = max(x, y)
    return tuple(out)


def _mul_build(ins, a):
    from .modules import Mul
    return Mul()


op("mul", (), infer=_mul_infer, build=_mul_build, eject=_operator_eject("*"), kind=JOIN, join=True,
   mark=Mark("×", "circle"),
   imports=tuple(FromTorch(f, _tensors_only("a product"))
                 for f in ("operator.mul", "operator.imul", "torch.mul", "Tensor.mul"))
   + (FromTorch("netdsl.ops.modules.Mul"),),
   doc="branches multiplied element by element, sizes of 1 broadcast (squeeze-and-excitation)", overwritable=True,
   saves=lambda ins, a, out: ("ins",),
   shape_doc="equal shapes, or 1 where one side repeats", examples=examples(
       ("4x6x6", "mul { identity | global_avgpool conv(2, 1) relu conv(4, 1) sigmoid }"),
       ("5", "mul { identity | linear(5) sigmoid }")))


def _split_fork(a, index: int, count: int) -> tuple[str, dict]:
    sizes = a["sizes"]
    if sizes and len(sizes) != count:
        raise AttrError(codes.SPLIT_SIZES, f"`split` gives {len(sizes)} size{'s' if len(sizes) != 1 else ''} "
                        f"({', '.join(map(str, sizes))}) for {count} branches")
    return "chunk", {"index": index, "parts": sizes or count}


op("split", (Attr("sizes", Sizes(), (), positional=True, rest=True, doc="channels per branch; equal parts if none"),),
   infer=lambda ins, a: _concat_infer(ins, a, "split"), build=_concat_build, eject=_concat_eject, kind=JOIN, join=True,
   mark=Mark("concat", "ellipse"), fork=_split_fork, overwritable=True,
   label=lambda a: "split " + "/".join(map(str, a["sizes"])) if a["sizes"] else "split",
   doc="the input's channels cut into parts, one per branch (equal, or of the sizes given), and the "
       "branches' outputs joined along the channels (ShuffleNetV2's `x.chunk(2, dim=1)` … `torch.cat`)",
   shape_doc="channels split, then summed; H and W equal",
   examples=examples(("8x6x6", "split { identity | conv(4, 3, pad=1) relu }"),
                     ("8x6x6", "split(2, 6) { conv(3, 1) | conv(5, 1) }"),
                     ("12", "split { linear(3) | identity | linear(5) }"),
                     ("6x10", "split(2, 4) { channel_linear(3) | relu }"),
                     ("4x2x3x3", "split { channel_linear(3) gelu | identity }")))
