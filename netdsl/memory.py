"""The memory model: the bytes a net's tensors take, from the layer graph alone (no torch).

For a batch of B examples in a dtype of S bytes a value (float32 4, float16 and bfloat16 2,
float64 8):

- **parameters**: every learnable value × S (training heads included; `params_deploy` without
  them), and **buffers**: BatchNorm's running statistics × S, plus 8 bytes a counter;
- **gradients**: one per parameter, × S;
- **optimizer state**: SGD with momentum keeps one buffer per parameter (× S), Adam two
  (`exp_avg`, `exp_avg_sq`);
- **saved for backward** (a training step's forward, training heads included): the tensors the
  backward passes keep, each op's `saves` in the registry: conv and linear their input, ReLU
  its output, max pooling its input and int64 indices, dropout its mask (the input's dtype, as
  torch draws it on the CPU), BatchNorm its input and per-channel statistics, ... Each tensor's
  memory is counted once however many layers keep it (a ReLU's output that the next conv keeps
  too), and a layer working in place or returning a view shares its input's memory (but for
  an op whose backward reads the input it overwrites, `copies_input_in_place`: autograd keeps a
  copy of that input, a tensor of its own, as for in-place SiLU or Hardswish). A layer
  before the first one with parameters keeps nothing (nothing there requires grad). The input
  batch counts when the first layer keeps it;
- **peak of inference** (evaluation mode, training heads left out): the layers run in
  definition order, as the compiled forward runs them; a tensor lives from the layer that makes
  it until the compiled forward lets go of it, `release_points`: after the last layer that reads
  it, or, for a block's input, after the block (and the outputs to the end); a layer working in
  place (the backend's choice, `in_place_layers`) or returning its input or a view of it makes no
  tensor; while a layer runs, its inputs and its output are alive at once (an Inception concat
  holds its four branches and the joined result), plus the temporaries of an op made of several
  torch calls or that makes more than it returns (`scratch`: LRN; adaptive max pooling's int64
  indices). The input batch itself is the caller's and is not counted; the
  workspaces torch's kernels allocate and free inside one call (oneDNN's reorders, im2col) are
  not tensors of the net and are not counted either.

`bench/bench_memory.py` checks these numbers against torch's own measurement for every net in
`nets/`: the profiler's memory events for the peak, `saved_tensors_hooks` for what backward keeps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
OPTIMIZER_STATES = {"sgd": 1, "adam": 2}  # buffers per parameter: momentum; exp_avg and exp_avg_sq


def dtype_bytes(dtype: str) -> int:
    """Bytes a value of `dtype` (a name: "float32", "bfloat16", ...) takes."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r} (use one of {', '.join(DTYPE_BYTES)})") from None


def _ir(network):
    return getattr(network, "ir", network)


def in_place_layers(network) -> frozenset[str]:
    """The layers that may write their result over their (first) input, as torchvision's
    `ReLU(inplace=True)` and `out += identity` do: those whose input tensor nothing else reads
    (following layers that may pass their input's memory on, such as flatten or dropout) and
    whose producer's backward pass does not need it (the registry's `overwritable`). The backend
    switches `inplace` on for those of them whose module has it (`OpSpec.in_place`)."""
    net = _ir(network)
    return net.derived("in_place_layers", lambda: _in_place_layers(net))


def _in_place_layers(net) -> frozenset[str]:
    storage: dict[str, Any] = {}  # layer -> the layer whose memory its output may be
    readers: dict[str, int] = {}
    for layer in net:
        aliases = layer.op.aliases
        storage[layer.name] = storage[layer.inputs[0].name] if aliases else layer
        if not aliases:
            for source in layer.inputs:
                held = storage[source.name].name
                readers[held] = readers.get(held, 0) + 1
    for output in net.outputs:  # a tensor handed back to the caller is read too
        held = storage[output.layer.name].name
        readers[held] = readers.get(held, 0) + 1
    chosen = set()
    for layer in net:
        if layer.inputs:
            target = storage[layer.inputs[0].name]
            if target.op.overwritable and readers[target.name] == 1:
                chosen.add(layer.name)
    return frozenset(chosen)


def works_in_place(network) -> set[str]:
    """The layers the compiled module runs in place: `in_place_layers` whose op can."""
    net = _ir(network)
    return {name for name in in_place_layers(net) if net.layers[name].op.in_place}


@dataclass(frozen=True)
class Memory:
    """A net's memory in bytes at a batch size and dtype (see the module docstring)."""

    dtype: str
    batch: int
    params: int          # training heads included
    params_deploy: int
    buffers: int
    gradients: int
    sgd_momentum: int    # optimizer state of SGD with momentum
    adam: int            # optimizer state of Adam
    saved: int           # activations saved for backward by a training forward
    peak: int            # the most activation bytes alive at once in inference
    input: int           # the input batch

    def training(self, optimizer: str = "adam") -> int:
        """Bytes of a training step: parameters, buffers, gradients, the optimizer's state, the
        input and the activations saved for backward (`optimizer` "sgd" or "adam")."""
        state = self.adam if optimizer == "adam" else self.sgd_momentum
        return self.params + self.buffers + self.gradients + state + self.input + self.saved

    def inference(self) -> int:
        """Bytes of an inference pass: deploy parameters, buffers, the input and the peak."""
        return self.params_deploy + self.buffers + self.input + self.peak

    def to_dict(self) -> dict:
        return {**asdict(self), "training_sgd": self.training("sgd"), "training_adam": self.training("adam"),
                "inference": self.inference()}


def memory(network, batch: int = 1, dtype: str = "float32") -> Memory:
    """The memory model of a checked `Network` (or its `ir.Net`) at `batch` in `dtype`."""
    net = _ir(network)
    size = dtype_bytes(dtype)
    train, deploy = net.totals(train=True).params, net.totals(train=False).params
    values = counters = 0
    for layer in net.body():
        v, c = layer.op.buffers([i.shape for i in layer.inputs], layer.attrs, layer.shape)
        values, counters = values + v, counters + c
    state = train * size
    return Memory(dtype, batch, train * size, deploy * size, values * size + 8 * counters, train * size,
                  OPTIMIZER_STATES["sgd"] * state, OPTIMIZER_STATES["adam"] * state,
                  saved_bytes(net, batch, size), peak_bytes(net, batch, size),
                  batch * size * math.prod(net.input_shape))


def release_points(layers) -> dict[str, int]:
    """value -> the index (in `layers`, which run in this order) of the layer after which the
    compiled forward lets go of it: its last reader, or, where that reader sits inside a scope
    the value came into from outside, the last layer of the outermost such scope. That is when
    eager PyTorch lets go of it: a module's caller holds the module's input until the module
    returns (torchvision's `x = stage(x)`), so a block's input outlives its first conv.

    Why not at the last reader, as fx would: glibc's malloc hands big freed blocks back to the
    kernel and faults them in again, and which blocks it keeps depends on the order of frees.
    Freeing a block's input early, EfficientNetV2-S at batch 4 took 25,744 minor page faults a
    forward against torchvision's 8,200, and 1.13 x its time; released as eager code releases
    them, 8,200 and 1.04 x. Values nothing reads are let go after the layer that makes them.
    `layers` are IR layers (dotted names, `inputs`); the outputs are the caller's business."""
    index = {layer.name: i for i, layer in enumerate(layers)}
    scope_end: dict[str, int] = {}  # dotted scope -> index of its last layer
    for i, layer in enumerate(layers):
        parts = layer.name.split(".")
        for k in range(1, len(parts)):
            scope_end[".".join(parts[:k])] = i
    release: dict[str, int] = {layer.name: i for i, layer in enumerate(layers)}
    for i, layer in enumerate(layers):
        reader = layer.name.split(".")[:-1]
        for source in layer.inputs:
            if source.name not in index:
                continue
            maker = source.name.split(".")[:-1]
            end = i
            for k in range(1, len(reader) + 1):
                if maker[:k] != reader[:k]:  # the outermost scope of the reader the value enters
                    end = max(i, scope_end[".".join(reader[:k])])
                    break
            release[source.name] = max(release[source.name], end)
    return release


def _owners(layers, in_place: set[str], training: bool) -> dict[str, str]:
    """layer -> the layer whose tensor holds its output (itself, unless it shares its input's)."""
    owner: dict[str, str] = {}
    for layer in layers:
        op = layer.op
        shares = (op.aliases and not (training and op.copies_in_training)) or layer.name in in_place
        first = layer.inputs[0].name if layer.inputs else layer.name
        owner[layer.name] = owner.get(first, first) if shares else layer.name
    return owner


def _scratch_bytes(scratch, batch: int, size: int) -> int:
    """Bytes of an op's `scratch`: values per example in the net's dtype, or (values per example,
    bytes per value) pairs, 0 bytes meaning the net's dtype."""
    if isinstance(scratch, int):
        return scratch * batch * size
    return sum(values * (each or size) * batch for values, each in scratch)


def peak_bytes(network, batch: int = 1, size: int = 4, *, trace: Optional[list] = None) -> int:
    """The most bytes of activations alive at once in an inference pass (see the module
    docstring); with `trace`, appends (layer, bytes alive while it runs) for each layer."""
    net = _ir(network)
    layers = [layer for layer in net.body() if not layer.train_only]
    owner = _owners(layers, works_in_place(net), training=False)
    per_value = batch * size
    last_read: dict[str, int] = {}
    for name, i in release_points(layers).items():
        key = owner.get(name, name)
        last_read[key] = max(last_read.get(key, i), i)
    for output in net.outputs:
        if not output.train_only:
            last_read[owner[output.layer.name]] = len(layers)
    released: dict[int, list[str]] = {}
    for key, i in last_read.items():
        released.setdefault(i, []).append(key)
    alive: dict[str, int] = {}
    total = peak = 0
    for i, layer in enumerate(layers):
        if owner[layer.name] == layer.name:
            alive[layer.name] = math.prod(layer.shape) * per_value
            total += alive[layer.name]
        ins = [i_.shape for i_ in layer.inputs]
        busy = total + _scratch_bytes(layer.op.scratch(ins, layer.attrs, layer.shape), batch, size)  # inputs still held
        peak = max(peak, busy)
        if trace is not None:
            trace.append((layer.name, busy))
        for source in released.get(i, ()):
            if source in alive:
                total -= alive.pop(source)
    return peak


def saved_bytes(network, batch: int = 1, size: int = 4) -> int:
    """Bytes of the activations a training forward keeps for backward (see the module
    docstring), training heads included."""
    net = _ir(network)
    layers = list(net.body())
    in_place = works_in_place(net)
    owner = _owners(layers, in_place, training=True)
    kept: dict[str, int] = {}  # tensor (its owner layer) -> values
    extra = 0  # bytes of tensors ops make for themselves (indices, masks, statistics)
    grad: dict[str, bool] = {}  # whether a layer's output requires grad: autograd records nothing else
    for layer in layers:
        grad[layer.name] = layer.params > 0 or any(grad.get(i.name, False) for i in layer.inputs)
        if not grad[layer.name]:  # before the first parameter (a pool on the input): nothing kept
            continue
        copies = layer.op.copies_input_in_place and layer.name in in_place
        for item in layer.op.saves([i.shape for i in layer.inputs], layer.attrs, layer.shape):
            if item == "in" and copies:  # autograd's copy of the input the layer overwrites
                extra += batch * size * math.prod(layer.inputs[0].shape)
                continue
            if item == "in":
                refs = layer.inputs[:1]
            elif item == "ins":
                refs = layer.inputs
            elif item == "out":
                refs = [layer]
            else:
                values, each, *once = item
                extra += values * (each or size) * (1 if once else batch)
                continue
            for ref in refs:
                held = net.layers[owner.get(ref.name, ref.name)]
                kept[held.name] = math.prod(held.shape)
    return batch * sum(kept.values()) * size + extra
