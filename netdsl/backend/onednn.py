"""oneDNN's fused inference calls for the layers of a fused module (the `onednn` path of
`optimize="auto"`, CPU only).

torch's own modules run a convolution, then its activation, then a residual sum, each a pass over
memory, and hand oneDNN the weights in torch's order, which it reorders into its blocked layout
on every call. Knowing the whole graph, this pass runs

- each image convolution as one `torch.ops.mkldnn._convolution_pointwise` call with its weights
  reordered once, for the batch being optimised for (`OneDNNConv`): at batch 1 the reorder is
  most of the time of a small late-stage convolution (ResNet-18's 512-channel 3x3: 4.0 ms with
  torch's weights, 1.8 ms reordered);
- the activation that alone reads a convolution, and a sum of two that a convolution alone
  feeds (a residual), with the ReLU after it, in that same call;
- each linear layer (nn.Linear, `channel_linear`) as one `_linear_pointwise` call with its
  activation (`OneDNNLinear`).

oneDNN's call has a fixed cost of its own, about 50 µs on a 2-core AVX2 machine where torch's
convolution of a 1x1 image takes 15: MobileNetV3-Small's squeeze-and-excitation convolutions and
its 7x7 stages, 30 of its 46, run faster in torch's modules at batch 1 (EfficientNet-B0: 56 of 72).
So with `timed`, each layer keeps oneDNN's call only where it measured faster than the modules it
would replace, on inputs of the batch's size; the names of the layers that kept it
(`onednn_names`) are what `optimize="auto"` remembers, to rebuild the same module without timing
(`names=`).

The activations oneDNN computes, by its names for them, are the registry's to say
(`netdsl.ops.modules.onednn_post_op`). Inference only: oneDNN's calls have no backward.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable, Collection, Optional

import torch
import torch.fx
from torch import nn

from .fx import direct_calls
from .optimize import channels_last_safe

#: dtypes oneDNN's calls are used for; a convolution's reordered weights are float32 only.
LINEAR_DTYPES = (torch.float32, torch.bfloat16)


def available() -> bool:
    """Whether this torch has oneDNN's fused convolution and linear calls."""
    mkldnn = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(mkldnn, name) for name in ("_linear_pointwise", "_convolution_pointwise", "_reorder_convolution_weight"))


class OneDNNLinear(nn.Module):
    """A linear layer (or `channel_linear`, over dim 1) run by oneDNN's `_linear_pointwise` on
    the CPU, with the activation after it computed in the same call: ConvNeXt-T spends 77 % of
    a forward in its 36 linear layers, which torch's nn.Linear hands to MKL's GEMM; oneDNN's,
    with GELU fused in, takes 0.61-0.90 of the time of GEMM then GELU at its shapes (0.65 at
    batch 16)."""

    def __init__(self, linear: nn.Linear, post: tuple[str, list, str] = ("none", [], ""), channels: bool = False):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.activation, self.scalars, self.algorithm = post
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels:
            x = x.movedim(1, -1)
        y = torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.activation, self.scalars,
                                               self.algorithm)
        return y.movedim(-1, 1) if self.channels else y

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"in_features={inp}, out_features={out}, activation={self.activation}, channels={self.channels}"


class OneDNNConv(nn.Module):
    """An image convolution run by oneDNN's `_convolution_pointwise`, its weights reordered once
    into oneDNN's layout for inputs of `input_size` (any other size is still right: oneDNN
    reorders again where it must), with the activation after it and, with `binary`, a sum with
    a second input (and an activation after the sum) computed in the same call. `weight` and
    `bias` stay the module's parameters, in torch's order, for `state_dict`."""

    def __init__(self, conv: nn.Conv2d, input_size: list[int], post: tuple[str, list, str] = ("none", [], ""),
                 binary: Optional[str] = None):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.padding = list(_padding(conv))
        self.stride, self.dilation, self.groups = list(conv.stride), list(conv.dilation), conv.groups
        self.activation, self.scalars, self.algorithm = post
        self.binary = binary
        self.input_size = list(input_size)
        self._pack()

    def _pack(self) -> None:
        with torch.no_grad():
            self.packed = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight.detach(), self.padding, self.stride, self.dilation, self.groups, self.input_size)
        # The call's overload and every argument but the inputs, found once: a small convolution
        # at batch 1 takes tens of microseconds, and each attribute of a Module is a lookup in Python.
        conv = torch.ops.mkldnn._convolution_pointwise
        if self.binary is None:
            self._call = conv.default
            self._args = (self.packed, self.bias, self.padding, self.stride, self.dilation, self.groups,
                          self.activation, self.scalars, self.algorithm)
        else:
            self._call = conv.binary
            self._args = (self.packed, self.bias, self.padding, self.stride, self.dilation, self.groups, self.binary,
                          None, None if self.activation == "none" else self.activation, self.scalars, self.algorithm)

    def forward(self, x: torch.Tensor, other: Optional[torch.Tensor] = None) -> torch.Tensor:
        if other is None:
            return self._call(x, *self._args)
        return self._call(x, other, *self._args)

    # oneDNN's opaque tensors can be neither copied nor pickled: a copy reorders its own weights.
    def __deepcopy__(self, memo):
        copied = self.__class__.__new__(self.__class__)
        memo[id(self)] = copied
        copied.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return copied

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("packed", "_call", "_args")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._pack()

    def extra_repr(self) -> str:
        out, inp, *kernel = self.weight.shape
        sum_ = f", then {self.binary}" if self.binary else ""
        return (f"{inp * self.groups}, {out}, kernel_size={tuple(kernel)}, stride={tuple(self.stride)}, "
                f"padding={tuple(self.padding)}, groups={self.groups}{sum_}, activation={self.activation}")


def _padding(conv: nn.Conv2d) -> Optional[tuple[int, int]]:
    """`conv`'s padding as two numbers, or None where oneDNN's call cannot pad as torch does
    (`padding="same"` with an odd total, which torch puts on the right; other padding modes)."""
    if conv.padding_mode != "zeros":
        return None
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        totals = [d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation)]
        return None if any(t % 2 for t in totals) else tuple(t // 2 for t in totals)
    return tuple(conv.padding)


def onednn_layers(module: torch.fx.GraphModule, batch: int = 1, *, timed: bool = False,
                  names: Optional[Collection[str]] = None) -> torch.fx.GraphModule:
    """`module` (a fused one: `optimize(..., "fuse")`) with its float32 image convolutions and
    its float32 or bfloat16 linear layers on the CPU run by oneDNN's fused calls, in place; the
    activations and sums they compute leave the graph, and so do the layers that are the
    identity in evaluation (nn.Identity, dropout, drop-path). `batch`: the batch whose inputs
    the convolutions' weights are laid out for. `timed`: a layer keeps oneDNN's call only where
    it runs faster than torch's modules it replaces, timed on random inputs of the batch's size.
    `names`: only the layers of these names (fx targets, as `onednn_names` lists them) may."""
    choice = _Choice(batch, timed, None if names is None else frozenset(names))
    _drop_identities(module)
    _fuse_convolutions(module, choice)
    _fuse_linears(module, choice)
    module.graph.lint()
    module.delete_all_unused_submodules()  # the emptied containers of dropped layers
    return direct_calls(module, hooks=False)  # an inference module: its layers' hooks are not called


def onednn_names(module: nn.Module) -> list[str]:
    """The names of the layers of `module` that run oneDNN's calls, in order: what
    `onednn_layers(..., names=)` takes to make the same choices again."""
    return [name for name, layer in module.named_modules() if isinstance(layer, (OneDNNConv, OneDNNLinear))]


class _Choice:
    """Which layers take oneDNN's call: those named, if names are given; of those, with
    `timed`, the ones whose call is faster than the torch modules it replaces."""

    # Timing stops after this many rounds, or after the first round past this many seconds:
    # enough for calls of tens of microseconds, and a few calls of a compute-bound one.
    ROUNDS, SECONDS = 15, 0.03

    def __init__(self, batch: int, timed: bool, names: Optional[frozenset]):
        self.batch, self.timed, self.names = batch, timed, names

    def allowed(self, name: str) -> bool:
        return self.names is None or name in self.names

    def keeps(self, module: torch.fx.GraphModule, chain: list[torch.fx.Node], layer: nn.Module,
              reads: list[torch.fx.Node], dtype: torch.dtype) -> bool:
        """Whether `layer`, called with the values of `reads`, is to take the place of `chain`."""
        if not self.timed:
            return True
        shapes = [_shape(node) for node in reads]
        if any(shape is None for shape in shapes) or any(node.kwargs for node in chain):
            return True  # nothing to time it on: as untimed
        samples = {node: _sample([self.batch, *shape], dtype) for node, shape in zip(reads, shapes)}
        inputs = [samples[node] for node in reads]  # a residual of the convolution's own input: one tensor
        original = _chain_call(module, chain, samples)
        return _faster(lambda: layer(*inputs), original, self.ROUNDS, self.SECONDS)


def _sample(size: list[int], dtype: torch.dtype) -> torch.Tensor:
    """Random values in the layout the fused module hands a layer: channels_last images."""
    x = torch.randn(size, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _chain_call(module: torch.fx.GraphModule, chain: list[torch.fx.Node],
                inputs: dict[torch.fx.Node, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """A call of the modules of `chain` in order, as the graph calls them, on `inputs` (the
    values of the nodes the chain reads). Each call's arguments are looked up by position,
    prepared once, so that timing it costs what the graph's own calls cost."""
    index = {node: i for i, node in enumerate(inputs)}
    for node in chain:
        index[node] = len(index)
    steps = []
    for node in chain:
        parts = [(False, index[a]) if isinstance(a, torch.fx.Node) else (True, [index[b] for b in a])
                 for a in node.args]
        steps.append((module.get_submodule(node.target), parts))
    first = list(inputs.values())

    def call() -> torch.Tensor:
        values = first + [None] * len(steps)
        at = len(first)
        for layer, parts in steps:
            values[at] = layer(*[[values[j] for j in i] if many else values[i] for many, i in parts])
            at += 1
        return values[-1]
    return call


def _faster(candidate: Callable[[], object], original: Callable[[], object], rounds: int, seconds: float) -> bool:
    """Whether `candidate`'s fastest call beats `original`'s, in interleaved rounds after a
    first call of each (which makes oneDNN's primitives): up to `rounds` of them, and none more
    once `seconds` have passed. Calls that take longer than `seconds` each are compute-bound,
    where the first calls tell: no rounds. The fastest: load on the machine only adds time."""
    best = [math.inf, math.inf]
    calls = (candidate, original)

    def time_call(i: int) -> None:
        start = time.perf_counter()
        calls[i]()
        best[i] = min(best[i], time.perf_counter() - start)

    with torch.inference_mode():
        time_call(0), time_call(1)
        started, done = time.perf_counter(), 0
        while done < rounds and min(best) < seconds and (done == 0 or time.perf_counter() - started < seconds):
            for i in ((0, 1) if done % 2 == 0 else (1, 0)):
                time_call(i)
            done += 1
    return best[0] < best[1]


def _module(module: torch.fx.GraphModule, node: torch.fx.Node) -> Optional[nn.Module]:
    return module.get_submodule(node.target) if node.op == "call_module" else None


def _sole_user(node: torch.fx.Node) -> Optional[torch.fx.Node]:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _post_op(module: torch.fx.GraphModule, node: torch.fx.Node, reads: torch.fx.Node, after_sum: bool = False):
    """oneDNN's (name, scalars, algorithm) for `node`, where it is an activation whose one input
    is `reads` (a sum: `after_sum`) that oneDNN computes; else None."""
    from ..ops.modules import onednn_post_op
    layer = _module(module, node)
    if layer is None or node.args != (reads,) or node.kwargs:
        return None
    return onednn_post_op(layer, after_sum)


def _replace(module: torch.fx.GraphModule, chain: list[torch.fx.Node], by: torch.fx.Node,
             layer: Optional[nn.Module] = None) -> None:
    """Route the uses of the last node of `chain` to `by` and remove `chain` with its modules;
    `layer`, where given, takes the place of the first node's module (`by` calls it by that name)."""
    chain[-1].replace_all_uses_with(by)
    by.meta = dict(chain[-1].meta)
    for node in reversed(chain):
        module.graph.erase_node(node)
        if node.op == "call_module" and (layer is None or node is not chain[0]):
            module.delete_submodule(node.target)
    if layer is not None:
        parent, _, leaf = chain[0].target.rpartition(".")
        setattr(module.get_submodule(parent), leaf, layer)


def _drop_identities(module: torch.fx.GraphModule) -> None:
    from ..ops.modules import identity_in_evaluation
    for node in list(module.graph.nodes):
        layer = _module(module, node)
        if layer is not None and identity_in_evaluation(layer) and \
                len(node.args) == 1 and isinstance(node.args[0], torch.fx.Node) and not node.kwargs:
            _replace(module, [node], node.args[0])


def _fuse_convolutions(module: torch.fx.GraphModule, choice: _Choice) -> None:
    from ..ops.modules import onednn_binary_op
    graph = module.graph
    for node in list(graph.nodes):
        conv = None if _erased(node) else _module(module, node)
        if type(conv) is not nn.Conv2d or conv.weight.dtype != torch.float32 or conv.weight.device.type != "cpu" \
                or not choice.allowed(node.target):
            continue
        shape = _shape(node.args[0]) if len(node.args) == 1 else None
        if shape is None or len(shape) != 3 or _padding(conv) is None or not channels_last_safe(conv, shape[1:]):
            continue
        chain, post, binary, other = [node], ("none", [], ""), None, None
        user = _sole_user(node)
        if user is not None and (p := _post_op(module, user, node)) is not None:
            chain, post = [node, user], p
        elif user is not None and (join := _module(module, user)) is not None and \
                (other := _other_input(user, node)) is not None and (binary := onednn_binary_op(join)) is not None:
            chain = [node, user]
            after = _sole_user(user)
            if after is not None and (p := _post_op(module, after, user, after_sum=True)) is not None:
                chain, post = [node, user, after], p
        reads = [node.args[0]] if binary is None else [node.args[0], other]
        layer = OneDNNConv(conv, [choice.batch, *shape], post, binary)
        if not choice.keeps(module, chain, layer, reads, torch.float32):
            continue
        with graph.inserting_before(chain[-1]):  # where the join's other input is known too
            fused = graph.call_module(node.target, tuple(reads))
        _replace(module, chain, fused, layer)


def _other_input(join: torch.fx.Node, node: torch.fx.Node) -> Optional[torch.fx.Node]:
    """The input besides `node` of `join`, a join of exactly two inputs of `node`'s shape (so
    nothing broadcasts), or None."""
    if len(join.args) != 1 or join.kwargs or not isinstance(join.args[0], (list, tuple)) or len(join.args[0]) != 2:
        return None
    a, b = join.args[0]
    other = b if a is node else a
    if other is node or not isinstance(other, torch.fx.Node) or _shape(other) != _shape(node):
        return None
    return other


def _fuse_linears(module: torch.fx.GraphModule, choice: _Choice) -> None:
    from ..ops.modules import ChannelLinear
    graph = module.graph
    for node in list(graph.nodes):
        linear = None if _erased(node) else _module(module, node)
        if type(linear) not in (nn.Linear, ChannelLinear) or linear.weight.device.type != "cpu" or \
                linear.weight.dtype not in LINEAR_DTYPES or not choice.allowed(node.target):
            continue
        chain, post = [node], ("none", [], "")
        user = _sole_user(node)
        if user is not None and (p := _post_op(module, user, node)) is not None:
            chain, post = [node, user], p
        layer = OneDNNLinear(linear, post, channels=type(linear) is ChannelLinear)
        if len(node.args) != 1 or not choice.keeps(module, chain, layer, list(node.args), linear.weight.dtype):
            continue
        with graph.inserting_before(chain[-1]):
            fused = graph.call_module(node.target, node.args)
        _replace(module, chain, fused, layer)


def _erased(node: torch.fx.Node) -> bool:
    return getattr(node, "_erased", False)


def _shape(node) -> Optional[tuple[int, ...]]:
    """The static shape (without the batch) of the values `node` gives, from the layer graph."""
    info = node.meta.get("netdsl") if isinstance(node, torch.fx.Node) else None
    shape = info and info.get("shape")
    return tuple(shape) if shape else None
