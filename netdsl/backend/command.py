"""What `netdsl compile` does, as a function: build, run once with every shape checked, time,
and optionally optimise, save and export. It returns a report (plain data, JSON-ready) that
the command line prints as text or JSON."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .fx import CompileError, compile_network, resolve_device, resolve_dtype
from .runtime import check_run, example_input, time_forward

# Outputs of an optimised module must agree with the plain one to this fraction of their
# largest magnitude (float32; BatchNorm folding reorders a few multiplications).
OPTIMIZE_TOLERANCE = 1e-5


@dataclass
class CompileOptions:
    device: str = "cpu"
    dtype: Optional[str] = None
    batch: int = 1
    weights: Optional[str] = None
    init: str = "default"
    max_params: Optional[int] = None
    optimize: Optional[str] = None
    save: Optional[str] = None
    export: Optional[str] = None
    output: Optional[str] = None


def compile_and_run(network, options: CompileOptions) -> dict[str, Any]:
    """Compile `network`, run it on random input of its declared shape and report."""
    from ..network import DEFAULT_MAX_PARAMS

    device, dtype = resolve_device(options.device), resolve_dtype(options.dtype)
    if options.init == "meta" and options.weights is None:
        raise CompileError("--init meta builds a module without memory; it can run only with --weights")
    start = time.perf_counter()
    module = compile_network(network, device, dtype, options.weights, options.init,
                             options.max_params or DEFAULT_MAX_PARAMS)
    build_seconds = time.perf_counter() - start

    params = {"train": _count(module, network, train=True), "deploy": _count(module, network, train=False)}
    expected = {"train": network.total_params(), "deploy": network.total_params(train=False)}
    if params != expected:  # would be a bug in a registry entry: say so rather than hide it
        raise RuntimeError(f"the module has {params} parameters but the summary counts {expected}")

    x = example_input(network, options.batch, device, dtype)
    run = check_run(module, network, x)
    module.eval()
    report: dict[str, Any] = {
        "net": network.name,
        "device": str(device),
        "device_name": _device_name(device),
        "dtype": str(next(iter(module.state_dict().values())).dtype).removeprefix("torch."),
        "init": options.init,
        "batch": options.batch,
        "params": params,
        "layers_checked": run.layers_checked,
        "outputs": [{"name": o.name, "shape": list(run.outputs[o.name].shape), "train_only": o.train_only}
                    for o in network.outputs],
        "seconds": {"build": build_seconds, "checked_pass": run.seconds, "forward": time_forward(module, x)},
    }
    if options.optimize:
        report["optimize"] = _optimize(module, x, options.optimize)
    if options.save:
        from .weights import save_weights
        report["saved"] = str(save_weights(module, options.save))
    if options.export:
        from .export import FORMATS, export
        path = options.output or f"{network.name}{FORMATS.get(options.export, '')}"
        start = time.perf_counter()
        report["exported"] = {"format": options.export, "path": str(export(module, x, options.export, path)),
                              "seconds": time.perf_counter() - start}
    return report


def _count(module, network, train: bool) -> int:
    return sum(p.numel() for name in network.layers if train or not network.layer(name)["train_only"]
               for p in module.get_submodule(name).parameters())


def _optimize(module, x: torch.Tensor, level: str) -> dict[str, Any]:
    from .optimize import optimize

    start = time.perf_counter()
    fast = optimize(module, level)
    with torch.inference_mode():
        want, got = module(x), fast(x)  # the first call also warms torch.compile up
    seconds = time.perf_counter() - start
    error = (got.float() - want.float()).abs().max().item()
    scale = want.float().abs().max().item()
    base, optimised = time_forward(module, x), time_forward(fast, x)
    return {"level": level, "seconds": seconds, "forward": optimised, "speedup": base / optimised,
            "max_abs_diff": error, "within_tolerance": error <= OPTIMIZE_TOLERANCE * scale}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"
