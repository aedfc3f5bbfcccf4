"""Initialisation of a build's parameters: skipped where nothing would keep it, batched where it runs.

torch's layers initialise themselves in their constructors (`reset_parameters`): Conv2d and
Linear draw their weights and biases uniformly (`kaiming_uniform_(a=√5)`, `uniform_(±1/√fan_in)`),
BatchNorm fills ones and zeros. The draws are most of a build's time (GoogLeNet: about 80 % of
torchvision's constructor), and all of them are wasted when the values will be replaced:

- `skipped()`: under `init="meta"` (and `"none"`) no init function runs at all: the constructors'
  calls of `torch.nn.init` and of the tensors' fills come back at once, untouched;
- `deferred()` then `Draws.run()`: under `init="default"`, for nets of `DEFER_FROM` parameters or
  more (smaller ones are built as torch builds them), the constructors' uniform draws are
  recorded (the tensor and the bounds the init function would have computed, with torch's own
  formulas) and made afterwards in one pass, split over a fixed number of random streams that the
  CPU's threads draw at once (torch's CPU generator is one serial stream behind a lock). Each
  value follows the distribution torch's init gives it; the streams are seeded from torch's
  default generator, so `torch.manual_seed` still makes a build reproducible, whatever the number
  of threads. Fills (ones, zeros, constants) and every other init run as they come.

Both are torch function modes: they see the calls that torch dispatches to Python overrides,
which every function of `torch.nn.init` that draws and every Tensor method does.
"""

from __future__ import annotations

import functools
import inspect
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch.nn import init as nn_init
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

_CONSTRUCTORS = _device_constructors()  # the functions that torch.device's mode gives a device

# Random streams a deferred build draws from: fixed, so that the values depend on the seed only.
STREAMS = 4
# Below this many values the threads cost more than they save: torch's own stream, torch's own order.
_PARALLEL_FROM = 1 << 20
# Below this many parameters a build is not deferred at all: recording the draws puts a Python
# call in front of every torch call that builds a layer, which costs more than the threads save
# (EfficientNet-B0, 5.3 M: 32 ms deferred, 29 ms not; GoogLeNet, 13 M: 39 ms against 60).
DEFER_FROM = 8_000_000


def defers(params: int) -> bool:
    """Are the uniform draws of a build of `params` parameters deferred (`deferred`, `Draws`)?"""
    return params >= DEFER_FROM

_FILLS = frozenset({torch.Tensor.zero_, torch.Tensor.fill_, torch.Tensor.uniform_, torch.Tensor.normal_,
                    torch.Tensor.copy_, torch.Tensor.random_, torch.Tensor.bernoulli_,
                    torch.Tensor.exponential_, torch.Tensor.geometric_, torch.Tensor.log_normal_,
                    torch.Tensor.cauchy_})
_INITS = frozenset(getattr(nn_init, name) for name in dir(nn_init)
                   if name.endswith("_") and not name.startswith("_") and callable(getattr(nn_init, name)))


class skipped(TorchFunctionMode):
    """Within it, torch.nn.init's functions and tensors' fills do nothing: for modules built on
    the meta device, whose values do not exist, or whose memory weights will fill. With
    `device`, tensors are made there unless a call names a device, as under
    `with torch.device(device)`, which is a mode of its own: one mode is one call through
    Python per torch call, not two (a tenth of a build under meta)."""

    def __init__(self, device=None):
        super().__init__()
        self.device = None if device is None else torch.device(device)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _INITS or func in _FILLS:
            return args[0] if args else (kwargs or {}).get("tensor")
        kwargs = kwargs or {}
        if self.device is not None and func in _CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = self.device
        return func(*args, **kwargs)


class Draws:
    """The uniform draws a deferred build recorded: (tensor, low, high), in construction order."""

    def __init__(self) -> None:
        self.pending: list[tuple[torch.Tensor, float, float]] = []

    def run(self) -> None:
        """Make every recorded draw, in STREAMS streams seeded from torch's default generator."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        if sum(d[0].numel() for d in pending) < _PARALLEL_FROM:
            # A small build: drawn in construction order from torch's default generator, which
            # gives exactly the values torch's own constructors would (fills draw nothing).
            with torch.no_grad():
                for tensor, low, high in pending:
                    tensor.uniform_(low, high)
            return
        seeds = torch.randint(0, 2 ** 62, (STREAMS,), dtype=torch.int64).tolist()
        streams: list[list[tuple[torch.Tensor, float, float]]] = [[] for _ in range(STREAMS)]
        sizes = [0] * STREAMS
        for draw in sorted(pending, key=lambda d: -d[0].numel()):  # the largest first, each to the least loaded
            k = sizes.index(min(sizes))
            streams[k].append(draw)
            sizes[k] += draw[0].numel()

        def draw(k: int) -> None:
            generator = torch.Generator(device=streams[k][0][0].device).manual_seed(seeds[k])
            with torch.no_grad():
                for tensor, low, high in streams[k]:
                    tensor.uniform_(low, high, generator=generator)

        used = [k for k in range(STREAMS) if streams[k]]
        workers = min(len(used), torch.get_num_threads())
        on_cpu = all(d[0].device.type == "cpu" for d in pending)
        if workers <= 1 or not on_cpu:
            for k in used:
                draw(k)
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # each stream is serial anyway; the threads are the parallelism
        try:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(draw, used))
        finally:
            torch.set_num_threads(threads)


class deferred(TorchFunctionMode):
    """Within it, the uniform draws of torch.nn.init (`uniform_`, `kaiming_uniform_`) on
    tensors without grad history are recorded in `draws` instead of made; anything else, or a
    draw given its own generator, runs as it comes."""

    def __init__(self, draws: Draws):
        super().__init__()
        self.draws = draws

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is nn_init.uniform_ or func is nn_init.kaiming_uniform_:
            bounds = _bounds(func, args, kwargs)
            if bounds is not None:
                self.draws.pending.append((args[0] if args else kwargs["tensor"], *bounds))
                return self.draws.pending[-1][0]
        return func(*args, **kwargs)


@functools.cache
def _signature(func) -> inspect.Signature:
    return inspect.signature(func)


def _bounds(func, args: tuple, kwargs: dict[str, Any]):
    """(low, high) of the uniform draw that `func(*args, **kwargs)` would make, by torch's own
    formulas; None where it is not one to defer (its own generator, an empty tensor)."""
    try:  # the arguments as torch's own signature binds them, its defaults included
        call = _signature(func).bind(*args, **kwargs)
    except TypeError:
        return None
    call.apply_defaults()
    bound = call.arguments
    tensor = bound["tensor"]
    if bound["generator"] is not None or not isinstance(tensor, torch.Tensor) or tensor.numel() == 0:
        return None
    if not tensor.dtype.is_floating_point:
        return None
    if func is nn_init.uniform_:
        return float(bound["a"]), float(bound["b"])
    fan = nn_init._calculate_correct_fan(tensor, bound["mode"])
    gain = nn_init.calculate_gain(bound["nonlinearity"], bound["a"])
    limit = math.sqrt(3.0) * gain / math.sqrt(fan)
    return -limit, limit
