"""Inference rewrites of a compiled module (`compile(optimize=...)`, `netdsl compile --optimize`).

- `fuse`: BatchNorm folded into the convolution (of any rank, transposed too) or linear layer
  before it (with or without its affine parameters; on the module's own graph, which is never
  traced again), and image convolution weights in channels_last memory order, which oneDNN and cuDNN convolve faster
  (except those torch crashes on or gets wrong in that order: see `channels_last_safe`);
- `compile`: `fuse`, then `torch.compile` (slow to warm up, fastest after).

`netdsl.backend.onednn` rewrites a fused module further for oneDNN's fused calls (a path of
`optimize="auto"`, CPU only).

Both levels give a module for inference only: evaluation mode, training-only heads left out, several
outputs as a plain tuple. Whatever torch or fx raise on the way is a CompileError of one line.
"""

from __future__ import annotations

import copy
from typing import Optional

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
        optimized = channels_last(fold_batchnorms(optimized))
        if level == "compile":
            optimized = torch.compile(optimized)
        else:
            from .fx import direct_calls
            direct_calls(optimized)
    except CompileError:
        raise
    except Exception as e:
        raise optimize_failure(type(module).__name__, level, e) from None
    return optimized


def optimize_failure(name: str, level: str, error: BaseException) -> CompileError:
    """The CompileError for torch failing to optimise (`torch.compile` fails at the first call)."""
    return CompileError(f"cannot optimise {name} ({level}): {describe(error)}; run without --optimize (optimize=None)")


def _fold_transposed(*args):
    return fuse_conv_bn_weights(*args, transpose=True)


# (layer, the BatchNorm after it, how to fold): convolutions of every rank, and linear layers.
_FOLDS = ((nn.Conv1d, nn.BatchNorm1d, fuse_conv_bn_weights), (nn.Conv2d, nn.BatchNorm2d, fuse_conv_bn_weights),
          (nn.Conv3d, nn.BatchNorm3d, fuse_conv_bn_weights), (nn.Linear, nn.BatchNorm1d, fuse_linear_bn_weights),
          (nn.ConvTranspose1d, nn.BatchNorm1d, _fold_transposed),
          (nn.ConvTranspose2d, nn.BatchNorm2d, _fold_transposed),
          (nn.ConvTranspose3d, nn.BatchNorm3d, _fold_transposed))


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
        if fold is _fold_transposed and layer.groups != 1:
            continue  # torch's folding scales a transposed weight's second axis, out/groups long: one group only
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


def channels_last(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """`module` with the weights of its image convolutions (nn.Conv2d, on 4-D batches) in
    channels_last order, in place; convolutions of sequences and volumes, and transposed ones,
    keep their order (channels_last is a 4-D layout, and oneDNN's channels_last_3d kernels were
    not checked as the 2-D ones were, below). A
    convolution torch cannot run in that order keeps its weights contiguous and gets its input
    made contiguous (the layer before may hand it channels_last values, and either operand in
    channels_last order makes torch pick its channels_last kernels)."""
    graph = module.graph
    for node in list(graph.nodes):
        if node.op == "call_module" and isinstance(module.get_submodule(node.target), nn.GroupNorm):
            # torch's channels_last GroupNorm kernel (CPU) computes the variance as E[x²] - E[x]²,
            # which cancels where a group's variance is small against its mean: up to 1e-3 off
            # (found by the differential test); the contiguous kernel is exact to 1e-6.
            _contiguous_input(graph, node)
            continue
        if node.op != "call_module" or not isinstance(conv := module.get_submodule(node.target), nn.Conv2d):
            continue
        size = _image_size(node.args[0])
        if size is not None and channels_last_safe(conv, size):
            conv.to(memory_format=torch.channels_last)
        else:
            _contiguous_input(graph, node)
    graph.lint()
    module.recompile()
    return module


def _contiguous_input(graph: torch.fx.Graph, node: torch.fx.Node) -> None:
    """Hand `node` its input in contiguous order (the layer before may give channels_last)."""
    with graph.inserting_before(node):
        dense = graph.call_method("contiguous", (node.args[0],))
    node.replace_input_with(node.args[0], dense)


def channels_last_safe(conv: nn.Conv2d, size: tuple[int, int]) -> bool:
    """Whether `conv`, on images of `size` (height, width), may run in channels_last order.

    torch 2.14's oneDNN convolutions (CPU) go wrong in channels_last order on two classes of
    convolutions that contiguous order gets right, found by running 77,400 random small ones
    (kernels, strides, padding, dilations, groups, images from 1x1 up, dtypes, threads) in
    subprocesses:

    - 298 segfaulted. Every one had an output position whose window lay wholly in the zero
      padding (those examined closely, an axis along which no window read any input at all:
      a small image, padding, and strides or dilations stepping over it). Kept out here: any
      convolution with such a position along either axis, a wider class than the crashes,
      which depend on oneDNN's choice of kernel;
    - 26 of the 21,548 compared in float32 computed wrong values, every one with a single
      input channel and an output one pixel wide. Kept out here: every convolution of one
      input channel, whose input channels_last order leaves as it was in memory anyway.

    Of the 47,028 outside both classes none crashed, and none of the 9,003 compared differed.
    Ordinary convolutions (padding up to half the window, images larger than the kernel,
    several input channels) are never in them."""
    if conv.in_channels == 1:
        return False
    if conv.padding == "valid":
        return True
    for axis in (0, 1):
        k, s, d = conv.kernel_size[axis], conv.stride[axis], conv.dilation[axis]
        if conv.padding == "same":  # torch pads the odd one of d * (k - 1) on the right
            left = d * (k - 1) // 2
            right = d * (k - 1) - left
        else:
            left = right = conv.padding[axis]
        if _window_reads_only_padding(size[axis], k, s, d, left, right):
            return False
    return True


def _window_reads_only_padding(n: int, k: int, s: int, d: int, left: int, right: int) -> bool:
    """Whether some window of a k-tap, stride-s, dilation-d convolution over n values padded
    by `left` and `right` has all its taps in the padding."""
    out = (n + left + right - d * (k - 1) - 1) // s + 1
    first_inside = -(-left // s)  # windows from here to last_inside lie wholly on the input
    last_inside = (n - 1 + left - d * (k - 1)) // s
    edges = set(range(min(first_inside, out))) | set(range(max(last_inside + 1, 0), out))
    for j in edges:  # at most a few near each border: as many as the padding is strides wide
        start = j * s - left
        first_tap = max(0, -(start // d))  # the first tap at or after the input's start (ceil(-start / d))
        last_tap = min(k - 1, (n - 1 - start) // d)
        if first_tap > last_tap:
            return True
    return False


def _image_size(node) -> Optional[tuple[int, int]]:
    """The static (height, width) of the values `node` gives, from the layer graph's shapes."""
    info = node.meta.get("netdsl") if isinstance(node, torch.fx.Node) else None
    shape = info and info.get("shape")
    return (shape[1], shape[2]) if shape and len(shape) == 3 else None
