"""torch's own measurement of a compiled net's memory, to check netdsl's memory model
(netdsl/memory.py) against: tests/test_memory.py and bench/bench_memory.py use it.

- `inference_peak`: one forward in evaluation mode under torch.profiler with
  `profile_memory=True`; every allocation and free the profiler records, in time order, gives
  the bytes alive. An allocation freed before the top-level torch call that made it returns is
  that kernel's workspace (oneDNN's reorders, im2col), not a tensor of the net, and is set
  apart (`workspace` says how large its peak was with it).
- `saved_for_backward`: one training forward under `torch.autograd.graph.saved_tensors_hooks`:
  the memory of every tensor autograd keeps, each storage once, parameters and buffers left out.
  On CUDA the same, through the caching allocator's events.
- `cuda_peak`: `torch.cuda.max_memory_allocated` over one forward, less what was allocated
  before it (parameters, the input): cuDNN's workspaces and max pooling's indices included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Peak:
    tensors: int     # the most bytes of tensors alive at once, workspaces set apart
    workspace: int   # the same with the kernels' workspaces counted in


def inference_peak(module: torch.nn.Module, x: torch.Tensor) -> Peak:
    """The peak bytes of one inference forward of `module` on `x`, on `x`'s device (the CPU, or
    CUDA through its caching allocator), as the profiler saw it."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    module.eval()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.device.type == "cuda" else [])
    with torch.inference_mode():
        module(x)  # the first call sets things up (oneDNN primitives, cuDNN plans) that later calls reuse
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        with profile(activities=activities, profile_memory=True) as prof:
            module(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
    events: list[tuple[int, int, int, int]] = []  # (time, address, bytes: + allocated, - freed, top-level call)

    def walk(event, root: int) -> None:
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == x.device.type:
            f = event.extra_fields
            events.append((event.start_time_ns, f.ptr, f.alloc_size, root))
        for child in event.children:
            walk(child, root)

    for i, root in enumerate(prof.profiler.kineto_results.experimental_event_tree()):
        walk(root, i)
    events.sort()
    made: dict[int, tuple[int, int]] = {}
    scratch: set[tuple[int, int]] = set()  # (address, time) of allocations freed inside their call
    for t, ptr, n, root in events:
        if n > 0:
            made[ptr] = (root, t)
        elif ptr in made:
            born, at = made.pop(ptr)
            if born == root:
                scratch.add((ptr, at))
    live: dict[int, int] = {}
    total = peak = raw = raw_peak = 0
    for t, ptr, n, _ in events:
        raw += n
        raw_peak = max(raw_peak, raw)
        if n > 0:
            if (ptr, t) not in scratch:
                live[ptr] = n
                total += n
                peak = max(peak, total)
        elif ptr in live:
            total -= live.pop(ptr)
    return Peak(peak, raw_peak)


def saved_for_backward(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward in one training forward of `module`."""
    own = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    module.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    del out
    return sum(kept.values())


def cuda_peak(module: torch.nn.Module, x: torch.Tensor) -> int:
    """The most bytes torch's CUDA allocator held during one inference forward, beyond what it
    held before (the parameters, the input)."""
    module.eval()
    device = x.device
    with torch.inference_mode():
        module(x)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        module(x)
        torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
