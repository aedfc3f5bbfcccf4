"""Running a compiled module once, checking it against the static analysis.

`check_run` interprets the module's fx graph node by node (torch.fx.Interpreter) and compares
every tensor's shape with the shape netdsl inferred for that layer. A difference would be a
bug in a shape rule, so it is reported at the layer's place in the `.net` file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.fx


class RuntimeShapeError(RuntimeError):
    """torch produced a different shape than netdsl inferred (a bug in a shape rule)."""


class _ShapeChecker(torch.fx.Interpreter):
    """Runs a graph node by node, comparing each tensor's shape with `meta["netdsl"]["shape"]`."""

    def __init__(self, module: torch.fx.GraphModule, filename: str, graph: Optional[torch.fx.Graph] = None):
        super().__init__(module, graph=graph)
        self.filename = filename
        self.checked = 0
        self.mismatch = ""

    def run_node(self, node: torch.fx.Node) -> Any:
        result = super().run_node(node)
        info = node.meta.get("netdsl")
        if info is not None and isinstance(result, torch.Tensor):
            got, want = tuple(result.shape[1:]), tuple(info["shape"])
            if got != want:
                span = info["span"]
                self.mismatch = (
                    f"{self.filename}:{span.line}:{span.column}: layer `{info['layer']}`: torch computed "
                    f"{'×'.join(map(str, got))} where netdsl inferred {'×'.join(map(str, want))} "
                    "(a bug in netdsl's shape rule for this op; please report it)")
                raise RuntimeShapeError(self.mismatch)
            self.checked += node.op != "placeholder"  # layers (modules, bare ops' calls); the input is checked too
        return result


@dataclass
class CheckedRun:
    """What one checked pass gave: every output by name (heads included), how many layers'
    shapes were compared, and how long the (interpreted, so slower) pass took."""

    outputs: dict[str, torch.Tensor]
    layers_checked: int
    seconds: float


def example_input(network, batch: int = 1, device: Optional[torch.device] = None,
                  dtype: Optional[torch.dtype] = None, seed: int = 0) -> torch.Tensor:
    """Random input of the net's declared shape (seeded, so runs are repeatable)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *network.input_shape, generator=generator)
    return x.to(device=device, dtype=dtype)


def check_run(module, network, x: torch.Tensor) -> CheckedRun:
    """Run every layer of `module` (a `NetModule`), training-only heads included, on `x`,
    comparing each layer's output shape with the inferred one. Layers behave as in evaluation
    mode (no dropout, BatchNorm statistics left alone), whatever the module's mode."""
    mode = module.training
    module.eval()
    try:
        checker = _ShapeChecker(module, network.filename, graph=module._graphs[True])
        with torch.inference_mode():
            start = time.perf_counter()
            try:
                result = checker.run(x)
            except RuntimeShapeError:
                raise RuntimeShapeError(checker.mismatch) from None  # without fx's notes on the node
            _sync(x)
            seconds = time.perf_counter() - start
    finally:
        module.train(mode)
    values = [result] if isinstance(result, torch.Tensor) else list(result)
    return CheckedRun(dict(zip((o.name for o in network.outputs), values)), checker.checked, seconds)


def time_forward(module: torch.nn.Module, x: torch.Tensor, runs: int = 5, warmup: int = 1,
                 budget: float = 5.0) -> float:
    """Median seconds of `module(x)` under inference mode, after `warmup` untimed calls;
    fewer runs (at least one) where they would take more than `budget` seconds."""
    times = warm_times(module, x, runs, warmup, budget)
    return sorted(times)[len(times) // 2]


def warm_times(module: torch.nn.Module, x: torch.Tensor, runs: int = 5, warmup: int = 1,
               budget: float = 5.0) -> list[float]:
    """The seconds of each timed call of `time_forward` (its median is the middle one)."""
    times: list[float] = []
    began = time.perf_counter()
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            module(x)
            _sync(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
            if times and time.perf_counter() - began > budget:
                break
    return times


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
