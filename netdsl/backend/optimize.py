"""Inference rewrites of a compiled module (`compile(optimize=...)`, `netdsl compile --optimize`).

- `fuse`: BatchNorm folded into the convolution or linear layer before it (with or without
  its affine parameters; on the module's own graph, which is never traced again), and
  parameters in channels_last memory order, which oneDNN and cuDNN convolve faster;
- `compile`: `fuse`, then `torch.compile` (slow to warm up, fastest after).

Both give a module for inference only: evaluation mode, training-only heads left out, several
outputs as a plain tuple. Whatever torch or fx raise on the way is a CompileError of one line.
"""

from __future__ import annotations

import copy

import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

from .errors import CompileError, describe
from .export import plain_outputs

LEVELS = ("fuse", "compile")


def optimize(module: torch.nn.Module, level: str = "fuse") -> torch.nn.Module:
    """An optimised copy of `module` for inference; the original is left as it was. Several
    outputs come as a plain tuple. Raises CompileError, in one line, where torch cannot."""
    if level not in LEVELS:
        raise CompileError(f"unknown optimisation {level!r} (use one of {', '.join(LEVELS)})")
    try:
        plain = plain_outputs(copy.deepcopy(module).eval())
        # A plain GraphModule of the evaluation graph: a NetModule's train() would bring back
        # the graph with the BatchNorm layers folded away.
        optimized = torch.fx.GraphModule(plain, copy.deepcopy(plain.graph), type(module).__name__)
        optimized = fold_batchnorms(optimized).to(memory_format=torch.channels_last)
        if level == "compile":
            optimized = torch.compile(optimized)
    except CompileError:
        raise
    except Exception as e:
        raise optimize_failure(type(module).__name__, level, e) from None
    return optimized


def optimize_failure(name: str, level: str, error: BaseException) -> CompileError:
    """The CompileError for torch failing to optimise (`torch.compile` fails at the first call)."""
    return CompileError(f"cannot optimise {name} ({level}): {describe(error)}; run without --optimize (optimize=None)")


_FOLDS = ((nn.Conv2d, nn.BatchNorm2d, fuse_conv_bn_weights), (nn.Linear, nn.BatchNorm1d, fuse_linear_bn_weights))


def fold_batchnorms(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """`module` with each BatchNorm that alone reads a convolution's or a linear layer's output
    folded into that layer's weights and bias, in place (evaluation mode: running statistics).
    The graph is the module's own: tracing it again would lose the shapes its nodes carry and
    fail on any module fx cannot trace."""
    graph = module.graph
    for node in list(graph.nodes):
        source = node.args[0] if node.op == "call_module" and node.args else None
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1):
            continue
        layer, norm = module.get_submodule(source.target), module.get_submodule(node.target)
        fold = next((f for a, b, f in _FOLDS if type(layer) is a and type(norm) is b), None)
        if fold is None or norm.running_mean is None or norm.running_var is None:
            continue
        # Without affine parameters BatchNorm scales by 1 and shifts by 0.
        weight = norm.weight if norm.weight is not None else torch.ones_like(norm.running_var)
        bias = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
        fused = copy.deepcopy(layer)
        fused.weight, fused.bias = fold(layer.weight, layer.bias, norm.running_mean, norm.running_var, norm.eps,
                                        weight, bias)
        parent, _, leaf = source.target.rpartition(".")
        setattr(module.get_submodule(parent), leaf, fused)
        node.replace_all_uses_with(source)
        graph.erase_node(node)
        module.delete_submodule(node.target)
    graph.lint()
    module.recompile()
    return module
