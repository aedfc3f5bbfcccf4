"""Memory checked before the backend allocates: parameters, buffers, the example input and one
forward pass's activations against the memory the device has available.

Asked for more memory than there is, torch fails late and badly: a traceback from its
allocator, or, on a kernel that overcommits, a process the OOM killer ends after minutes of
paging. The estimate comes from the layer graph alone, so a net too large for the machine is
refused in one line before anything is allocated.

The estimate is a lower bound: what the tensors themselves take. torch's workspaces (oneDNN
reorders a convolution's input and output into blocked layouts), the allocators' caches and
fragmentation come on top: measured peaks of a checked pass on the CPU were 1.3 to 4 times the
activations counted (VGG16, ResNet18, GoogLeNet, AlexNet, LeNet). So the check refuses what
cannot fit, never what might, and a run near the limit may still fail in torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from .errors import CompileError, UncompilableNet

_NO_LIMIT = 1 << 60  # cgroup v1 reports "no limit" as a number near 2**63


@dataclass(frozen=True)
class NetFacts:
    """What the estimate needs to know of a net, as plain numbers and names."""

    name: str
    params: int  # learnable values, training heads included (the module holds them all)
    buffers: int  # values of BatchNorm's running statistics, two per channel
    counters: int  # int64 buffers (BatchNorm's num_batches_tracked), one each
    input_values: int  # values of one example
    # (name, inputs, output values per example, whether the output is its first input's memory), in order
    layers: tuple[tuple[str, tuple[str, ...], int, bool], ...]
    outputs: tuple[str, ...]  # the layers whose values the forward hands back


def net_facts(network) -> NetFacts:
    """What the memory check reads of `network`'s IR, in one place: every layer's op (its
    `aliases` flag, its `buffers` count), inputs and shape, the outputs, and the backend's choice
    of in-place layers. Derived once per net (`ir.Net.derived`)."""
    return network.ir.derived("net_facts", lambda: _net_facts(network))


def _net_facts(network) -> NetFacts:
    from .fx import in_place_layers

    in_place = in_place_layers(network)
    layers, buffers, counters = [], 0, 0
    for layer in network.ir.body():
        spec = layer.op
        shares = spec.aliases  # views (flatten) and pass-throughs (dropout in evaluation mode)
        if layer.name in in_place and not shares:
            shares = spec.in_place  # its module has torch's `inplace` (a test keeps the flag true to it)
        layers.append((layer.name, tuple(layer.input_names), math.prod(layer.shape), shares))
        values, count = spec.buffers([i.shape for i in layer.inputs], layer.attrs, layer.shape)
        buffers += values
        counters += count
    return NetFacts(network.name, network.total_params(), buffers, counters, math.prod(network.input_shape),
                    tuple(layers), tuple(o.layer.name for o in network.outputs))


@dataclass(frozen=True)
class Estimate:
    """Bytes a compiled net needs on its device: its parameters and buffers, an example batch,
    and the most activations one forward pass holds at once."""

    weights: int
    input: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.input + self.activations


def estimate(network, dtype: Optional[torch.dtype] = None, batch: int = 0) -> Estimate:
    """The memory `network` needs in `dtype` (None: torch's default) at `batch`."""
    return _estimate(net_facts(network), dtype, batch)


def _estimate(facts: NetFacts, dtype: Optional[torch.dtype], batch: int) -> Estimate:
    size = (dtype or torch.get_default_dtype()).itemsize
    weights = (facts.params + facts.buffers) * size + facts.counters * 8
    return Estimate(weights, batch * facts.input_values * size, _peak_activations(facts, batch * size))


def _peak_activations(facts: NetFacts, bytes_per_value: int) -> int:
    """The most bytes of layer outputs alive at once when the layers run in order: a layer
    working in place (or a view) adds nothing, and memory is freed after its last reader (as
    fx's generated code and Interpreter free it). The net's input is not counted."""
    if bytes_per_value == 0:  # no batch (a build alone): nothing to count
        return 0
    owner: dict[str, str] = {}  # layer -> the layer whose memory holds its output
    for name, inputs, _, shares in facts.layers:
        owner[name] = owner.get(inputs[0], inputs[0]) if shares else name
    last_read: dict[str, int] = {}
    for i, (name, inputs, _, _) in enumerate(facts.layers):
        for source in (*inputs, name):
            last_read[owner.get(source, source)] = i
    for name in facts.outputs:
        last_read[owner[name]] = len(facts.layers)
    alive: dict[str, int] = {}
    total = peak = 0
    for i, (name, inputs, values, shares) in enumerate(facts.layers):
        if not shares:
            alive[name] = values * bytes_per_value
            total += alive[name]
            peak = max(peak, total)  # the inputs are still held while the output is made
        for source in {owner.get(s, s) for s in (*inputs, name)}:
            if source in alive and last_read[source] <= i:
                total -= alive.pop(source)
    return peak


def check_memory(network, device: torch.device, dtype: Optional[torch.dtype] = None, *, init: str = "default",
                 weights: Any = None, batch: Optional[int] = None, optimize: bool = False) -> None:
    """Refuse, before anything is allocated, to build `network` on `device` (and, with
    `batch`, to run it on an example batch, keeping an optimised copy with `optimize`) where
    the estimate exceeds the memory available. Raises UncompilableNet when the parameters
    alone do not fit, CompileError when the batch does not."""
    if init == "meta" and isinstance(weights, Mapping) and device.type == "cpu" and not batch:
        return  # the caller's tensors are assigned, nothing is allocated
    facts = net_facts(network)
    need = _estimate(facts, dtype, batch or 0)
    # Modules are built in torch's default dtype and converted after; a weights file is read
    # into the CPU's memory first; the example batch is drawn on the CPU in float32.
    built = (facts.params + facts.buffers) * max((dtype or torch.get_default_dtype()).itemsize,
                                                 torch.get_default_dtype().itemsize) + facts.counters * 8
    shared = init == "meta" and isinstance(weights, Mapping) and device.type == "cpu"  # assigned, not copied
    if init == "meta" and weights is None or shared:
        built = 0
    weights_bytes = built + (need.weights if optimize else 0)
    drawn_elsewhere = device.type != "cpu" or (dtype or torch.float32) != torch.float32
    staging = (batch or 0) * facts.input_values * 4 if drawn_elsewhere else 0
    on_device = weights_bytes + need.input + need.activations + (staging if device.type == "cpu" else 0)
    available = available_bytes(device)
    if available is not None and on_device > available:
        _refuse(facts, device, batch, need, weights_bytes, on_device, available, optimize)
    if device.type != "cpu":
        on_cpu = staging + (need.weights if isinstance(weights, (str, os.PathLike)) else 0)
        available = available_bytes(torch.device("cpu"))
        if available is not None and on_cpu > available:
            _refuse(facts, torch.device("cpu"), batch, need, 0, on_cpu, available, optimize)


def _refuse(facts: NetFacts, device: torch.device, batch: Optional[int], need: Estimate, weights_bytes: int,
            total: int, available: int, optimize: bool) -> None:
    where = f"but {_bytes(available)} is available on {device}"
    if weights_bytes > available:
        copy = " and the copy --optimize makes" if optimize else ""
        raise UncompilableNet(
            f"{facts.name} has {facts.params:,} parameters ({_bytes(weights_bytes)} with its buffers{copy}), {where}; "
            "compile it on a device with more memory, or free some")
    per_example = (total - weights_bytes) / max(batch or 1, 1)
    fits = int((available - weights_bytes) // per_example) if per_example else 0
    hint = (f"use a smaller --batch (at most {fits:,} could fit)" if fits >= 1
            else "use a device with more memory, or free some")
    raise CompileError(
        f"{facts.name} at batch {batch:,} needs at least {_bytes(total)} (parameters and buffers "
        f"{_bytes(weights_bytes)}, input {_bytes(need.input)}, activations {_bytes(need.activations)}) "
        f"{where}; {hint}")


def available_bytes(device: torch.device) -> Optional[int]:
    """The memory that `device` can still give, in bytes; None where it cannot be told. On
    CUDA, what the driver has free plus what torch's allocator holds unused; on the CPU, the
    least of the system's available memory, the control group's limit and the address-space
    limit (`ulimit -v`)."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except RuntimeError:  # a driver that cannot tell: torch will say what is wrong when it allocates
            return None
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    found = [n for n in (_system_available(), _cgroup_available(), _address_space_left()) if n is not None]
    return max(0, min(found)) if found else None


def _system_available() -> Optional[int]:
    meminfo = _key_values(Path("/proc/meminfo"))
    if "MemAvailable" in meminfo:  # free memory plus the caches the kernel can drop, in kB
        return meminfo["MemAvailable"] * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on this system (macOS, Windows)
        return None


def _cgroup_available() -> Optional[int]:
    """What the process's memory control group (a container's limit) still allows, not
    counting the page cache it can reclaim."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy
            names = ("memory.max", "memory.current", "inactive_file")
            roots = [Path("/sys/fs/cgroup") / path.lstrip("/"), Path("/sys/fs/cgroup")]
        elif "memory" in controllers.split(","):  # v1
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
            roots = [Path("/sys/fs/cgroup/memory") / path.lstrip("/"), Path("/sys/fs/cgroup/memory")]
        else:
            continue
        for root in roots:  # inside a container the process's own path may not be mounted
            limit, usage = _number(root / names[0]), _number(root / names[1])
            if limit is not None and usage is not None:
                if limit >= _NO_LIMIT:
                    break
                return limit - usage + _key_values(root / "memory.stat").get(names[2], 0)
    return None


def _address_space_left() -> Optional[int]:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = _key_values(Path("/proc/self/status")).get("VmSize", 0) * 1024  # kB
    return soft - used


def _key_values(path: Path) -> dict[str, int]:
    """`Name: 123 kB` or `name 123` lines as numbers (the unit left out)."""
    found: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


def _number(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return _NO_LIMIT
    return int(text) if text.isdigit() else None


def _bytes(n: float) -> str:
    units = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
    k = min(int(math.log(max(n, 1), 1000)), len(units) - 1)
    return f"{n / 1000 ** k:.1f} {units[k]}"
