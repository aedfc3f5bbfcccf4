"""The few torch modules netdsl needs that torch.nn lacks: joins of several branches.
Imported only by op builders, so nothing else loads torch.

Joins take their branches as one list (the compiled graph passes `[a, b, c]`) rather than as
`*xs`, because TorchScript cannot compile variadic arguments."""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import nn


class Concat(nn.Module):
    """Concatenates its inputs along the channels (dim 1, after the batch)."""

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Add(nn.Module):
    """Sums its inputs element by element; with `inplace`, into the first of them (as
    torchvision's ResNet does `out += identity`), which nothing else may read afterwards."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out.add_(x) if self.inplace else out + x
        return out

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Mul(nn.Module):
    """Multiplies its inputs element by element, broadcasting sizes of 1 (a squeeze-and-excitation
    branch's C×1×1 scales times the C×H×W features)."""

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


# --- modules over the channels of every position ------------------------------------------------
# torchvision's ConvNeXt moves the channels last (`permute(0, 2, 3, 1)`), applies LayerNorm or
# Linear over them and moves them back. These do the same, one op at a time, so that each is
# numerically the same as torchvision's. Moving the channels is a view: a layer after another
# finds its input already channels-last in memory (the view the previous one gave back), so
# `permute` costs no copy between them (the measurements are in netdsl/ops/norm.py).

class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels (dim 1) at every position, as torchvision's `LayerNorm2d`
    (weight and bias shaped [C]); any rank of at least 3 with the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class ChannelLinear(nn.Linear):
    """nn.Linear over the channels (dim 1) at every position: weight [out, C], as ConvNeXt's
    `nn.Linear` layers between its permutes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


class Scale(nn.Module):
    """A learnt scale per channel (layer scale, CaiT and ConvNeXt): `weight` is shaped C×1×1 for
    images (torchvision's `CNBlock.layer_scale`), C for vectors, and broadcasts over positions.
    The `scale` op is `bare`: a compiled net keeps only this module's `weight`, as a parameter
    named by the layer, and multiplies by it in its graph, as `forward` does here."""

    def __init__(self, shape: list[int], init: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full(shape, init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x  # torchvision's order: `layer_scale * block(input)`


class DropPath(nn.Module):
    """Stochastic depth, per example: torchvision.ops.StochasticDepth(p, "row"), the same random
    draws in the same order. In training each example's whole input is zeroed with probability
    `p` and the others scaled by 1 / (1 - p); in evaluation (or with p = 0) the input itself."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.dim() - 1)
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Narrow(nn.Module):
    """Channels `start` to `start + length` of its input: a view, as `x.chunk(2, dim=1)` gives
    ShuffleNetV2 (what `split` hands each branch)."""

    def __init__(self, start: int, length: int):
        super().__init__()
        self.start, self.length = start, length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(1, self.start, self.length)

    def extra_repr(self) -> str:
        return f"start={self.start}, length={self.length}"


class GELU(nn.GELU):
    """torch.nn.GELU, computed in channels-last order where its input is a channels-last view
    (what `channel_linear` and `layernorm` hand on): torch's CPU GELU takes its oneDNN kernel
    only for contiguous memory, and otherwise a slower one (a third slower on ConvNeXt's shapes)
    that also rounds differently. Moving the channels last makes the view contiguous, so this
    runs the kernel torchvision's ConvNeXt runs on its permuted tensors, with the same values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2 and not x.is_contiguous():
            last = x.movedim(1, -1)
            if last.is_contiguous():
                return torch.nn.functional.gelu(last, approximate=self.approximate).movedim(-1, 1)
        return torch.nn.functional.gelu(x, approximate=self.approximate)


def _global_pool(base: type) -> type:
    return type(base.__name__.replace("Adaptive", "Global"), (base,), {
        "__module__": __name__, "__qualname__": base.__name__.replace("Adaptive", "Global"),
        "__doc__": f"torch.nn.{base.__name__}(1), as `global_avgpool`/`global_maxpool` build it: a class of its "
                   "own so that `netdsl import` tells it from an `adaptive_avgpool(1)` (a summary names the op)."})


GlobalAvgPool1d, GlobalAvgPool2d, GlobalAvgPool3d, GlobalMaxPool1d, GlobalMaxPool2d, GlobalMaxPool3d = (
    _global_pool(b) for b in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                              nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d))


# The activations oneDNN's fused calls (`torch.ops.mkldnn._linear_pointwise`, `_convolution_pointwise`)
# compute after a linear layer or convolution, by oneDNN's names for them, with their scalars and
# algorithm (the backend's `onednn.onednn_layers`).
_ONEDNN_POST_OPS: dict[type, Callable[[nn.Module], tuple[str, list, str]]] = {
    nn.ReLU: lambda m: ("relu", [], ""),
    nn.GELU: lambda m: ("gelu", [], m.approximate),
    GELU: lambda m: ("gelu", [], m.approximate),
    nn.SiLU: lambda m: ("swish", [], ""),
    nn.Sigmoid: lambda m: ("sigmoid", [], ""),
    nn.Tanh: lambda m: ("tanh", [], ""),
    nn.Hardswish: lambda m: ("hardswish", [], ""),
    nn.Hardsigmoid: lambda m: ("hardsigmoid", [], ""),
    nn.LeakyReLU: lambda m: ("leaky_relu", [m.negative_slope], ""),
    nn.ReLU6: lambda m: ("hardtanh", [0.0, 6.0], ""),
}


# Modules that hand on their input unchanged in evaluation: an inference-only rewrite may drop them.
_IDENTITIES_IN_EVALUATION = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                             DropPath)


def identity_in_evaluation(layer: nn.Module) -> bool:
    """Whether `layer` returns its input itself in evaluation mode (identity, dropout, drop-path)."""
    return type(layer) in _IDENTITIES_IN_EVALUATION


# The joins of two same-shaped inputs that oneDNN's convolution call computes with its output
# (`_convolution_pointwise.binary`), by its names for them.
_ONEDNN_BINARY_OPS: dict[type, str] = {Add: "add"}


def onednn_binary_op(layer: nn.Module) -> Optional[str]:
    """oneDNN's name for the join `layer` of a convolution's output and another of its shape, or
    None where its convolution call cannot compute it."""
    return _ONEDNN_BINARY_OPS.get(type(layer))


# After a convolution's sum with another input, oneDNN's call computes only a ReLU ("Unary Fusion
# behavior undefined" for the others).
_ONEDNN_AFTER_SUM = (nn.ReLU,)


def onednn_post_op(layer: nn.Module, after_sum: bool = False) -> Optional[tuple[str, list, str]]:
    """oneDNN's (name, scalars, algorithm) for the activation `layer`, or None where its fused
    calls cannot compute it (`after_sum`: after a convolution's sum with another input)."""
    describe = _ONEDNN_POST_OPS.get(type(layer))
    if describe is None or (after_sum and type(layer) not in _ONEDNN_AFTER_SUM):
        return None
    return describe(layer)
