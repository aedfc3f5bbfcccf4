"""The few torch modules netdsl needs that torch.nn lacks: joins of several branches.
Imported only by op builders, so nothing else loads torch.

Joins take their branches as one list (the compiled graph passes `[a, b, c]`) rather than as
`*xs`, because TorchScript cannot compile variadic arguments."""

from __future__ import annotations

from typing import List

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
