"""The sliding-window rule shared by conv and every pool (PyTorch's, ceil mode included), and
the checks and labels that go with it."""

from __future__ import annotations

import math
from typing import Optional

from .. import codes
from .spec import Shape, ShapeError, axis_names, fmt_shape, spatial_name


def needs_image(op: str, shape: Shape) -> None:
    if len(shape) != 3:
        raise ShapeError(codes.WRONG_RANK, f"`{op}` expects an image (C x H x W), got {fmt_shape(shape)}",
                         help="its input is a vector: from `flatten` or `linear`, or an input declared "
                              "with one size" if len(shape) == 1 else None)


def needs_spatial(op: str, shape: Shape, ranks: tuple[int, ...] = (1, 2, 3)) -> int:
    """The number of spatial axes of `shape` (1 for a sequence C x L, 2 for an image, 3 for a
    volume), or ShapeError (E404) when the op takes no such input. A vector gets the message
    it always had, images being what most nets feed a conv."""
    rank = len(shape) - 1
    if rank in ranks:
        return rank
    if ranks == (2,) or (len(shape) == 1 and 2 in ranks):
        needs_image(op, shape)  # raises: the shape is no image
    kinds = [f"{spatial_name(r)} ({'C x ' + ' x '.join(n[0].upper() if r > 1 else 'L' for n in axis_names(r))})"
             for r in ranks]
    listed = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]
    raise ShapeError(codes.WRONG_RANK, f"`{op}` expects {listed}, got {fmt_shape(shape)}")


def window_out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> Optional[int]:
    """Output length of a sliding window (conv and pools), or None when no window fits.
    This is PyTorch's rule: in ceil mode a last, partial window counts if it starts inside
    the input or the left padding; one that would start inside the right padding is dropped."""
    reach = size + 2 * p - d * (k - 1) - 1
    out = (reach + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out if out >= 1 else None


def padding_window(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> Optional[int]:
    """The first output position along one axis whose window reads padding only (every tap
    outside 0 .. size-1), or None when every window reads some of the input (or none fits).

    Window `o` has its taps at a, a+d, ..., a+(k-1)d with a = o*s - p. One that starts inside
    the input reads it; PyTorch keeps no window that starts in the right padding (window_out);
    so only the windows that start in the left padding (a < 0, o < p/s) can miss the input:
    either all their taps lie left of it (a + (k-1)d < 0: the first window's, if any), or the
    first tap at or right of 0, at `a mod d`, is already past its end (a mod d >= size).
    A 2-D window reads padding only where it does so along either axis.

    Exact for any arguments; it loops over at most min(p/s, d) windows. For pools, whose padding
    is at most half the kernel, it comes to this: only the first window can miss, and it does
    when p > 0 and (-p) mod d >= size (so the loop, reached only for size < d, is one window);
    without ceil mode that is kernel 2, pad 1 and a size of d - 1 (`maxpool(2, pad=1,
    dilation=3)` on a height of 2)."""
    out = window_out(size, k, s, p, d, ceil)
    if out is None or p <= 0:
        return None
    if p > (k - 1) * d:  # the first window's last tap, -p + (k-1)d, lies left of the input
        return 0
    if size >= d:  # a mod d < d <= size: every window's first tap at or right of 0 is inside
        return None
    left = min(out, -(-p // s))  # windows that start in the left padding
    period = d // math.gcd(s, d)  # a mod d repeats after this many windows
    if left >= period:  # every residue of -p modulo gcd(s, d) occurs: is the largest past the end?
        biggest = d - math.gcd(s, d) + (-p) % math.gcd(s, d)
        if biggest < size:
            return None
        left = period  # it occurs within the first period
    for o in range(left):
        if (o * s - p) % d >= size:
            return o
    return None


def windowed(op: str, shape: Shape, channels: int, kernel, stride, pad, dilation=None,
             ceil: bool = False) -> Shape:
    """The output shape of a windowed op on a sequence, an image or a volume (sizes per axis,
    as `per_axis` gives them), or ShapeError (E401) when no window fits along some axis."""
    rank = needs_spatial(op, shape)
    if pad == "same":
        return (channels,) + tuple(shape[1:])
    pad = (0,) * rank if pad == "valid" else pad
    dilation = (1,) * rank if dilation is None else dilation
    out = []
    for axis, name in enumerate(axis_names(rank)):
        n = window_out(shape[1 + axis], kernel[axis], stride[axis], pad[axis], dilation[axis], ceil)
        if n is None or n < 1:
            eff = dilation[axis] * (kernel[axis] - 1) + 1
            raise ShapeError(codes.WINDOW_TOO_LARGE, f"the {eff}-wide window of `{op}` does not fit the input {name} "
                             f"{shape[1 + axis]} padded by {pad[axis]} on each side",
                             help="use a smaller kernel or more padding, or check the layers before")
        out.append(n)
    return (channels, *out)


def fmt_pair(v) -> str:
    """A window size as a diagram writes it: `7×7`, `1×7`, `3×7×7`."""
    return "×".join(map(str, v)) if isinstance(v, tuple) else str(v)


def fmt_stride(stride) -> str:
    """`/2` after a kernel size for a stride of 2 on every axis, nothing for 1, `/1×2×2` otherwise."""
    if len(set(stride)) == 1:
        return "" if stride[0] == 1 else f"/{stride[0]}"
    return "/" + fmt_pair(stride)
