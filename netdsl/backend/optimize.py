"""Inference rewrites of a compiled module (`compile(optimize=...)`, `netdsl compile --optimize`).

- `fuse`: BatchNorm folded into the convolution before it (torch.fx's own `fuse` pass), and
  parameters in channels_last memory order, which oneDNN and cuDNN convolve faster;
- `compile`: `fuse`, then `torch.compile` (slow to warm up, fastest after).

Both give a module for inference only: evaluation mode, training-only heads left out, several
outputs as a plain tuple.
"""

from __future__ import annotations

import copy

import torch
from torch.fx.experimental.optimization import fuse

from .errors import CompileError
from .export import plain_outputs

LEVELS = ("fuse", "compile")


def optimize(module: torch.nn.Module, level: str = "fuse") -> torch.nn.Module:
    """An optimised copy of `module` for inference; the original is left as it was. Several
    outputs come as a plain tuple."""
    if level not in LEVELS:
        raise CompileError(f"unknown optimisation {level!r} (use one of {', '.join(LEVELS)})")
    optimized = plain_outputs(copy.deepcopy(module).eval())
    _give_affine(optimized)
    optimized = fuse(optimized, inplace=True)  # folds Conv2d + BatchNorm2d pairs; needs evaluation mode
    optimized = optimized.to(memory_format=torch.channels_last)
    if level == "compile":
        optimized = torch.compile(optimized)
    return optimized


def _give_affine(module: torch.nn.Module) -> None:
    """BatchNorm without affine parameters given the identity ones (weight 1, bias 0), which
    compute the same: torch's fold of Linear + BatchNorm1d (`fuse_linear_bn_weights`) multiplies
    by the weight without checking for None, as its Conv + BatchNorm fold does."""
    for bn in module.modules():
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) and bn.weight is None:
            bn.weight = torch.nn.Parameter(torch.ones_like(bn.running_mean), requires_grad=False)
            bn.bias = torch.nn.Parameter(torch.zeros_like(bn.running_mean), requires_grad=False)
            bn.affine = True
