"""What `netdsl compile` does, as a function: build, run once with every shape checked, time,
and optionally optimise, save and export. It returns a report (plain data, JSON-ready) that
the command line prints as text or JSON; warnings about the weights go to stderr as they come,
and into the report."""

from __future__ import annotations

import sys
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from ..limits import DEFAULT_MAX_PARAMS
from .budget import check_memory
from .errors import CompileError, describe, first_line
from .fx import compile_network, resolve_device, resolve_dtype
from .runtime import RuntimeShapeError, check_run, example_input, time_forward, warm_times

# Outputs of an optimised module must agree with the plain one to this fraction of their
# largest magnitude (float32; BatchNorm folding reorders a few multiplications).
OPTIMIZE_TOLERANCE = 1e-5


@dataclass
class CompileOptions:
    """The options of `netdsl compile`, as `compile_and_run` takes them."""

    device: str = "cpu"
    dtype: Optional[str] = None
    batch: int = 1
    weights: Optional[str] = None
    init: str = "default"
    max_params: int = DEFAULT_MAX_PARAMS
    optimize: Optional[str] = None
    save: Optional[str] = None
    export: Optional[str] = None
    output: Optional[str] = None
    # files never to be written over, as (what, path) pairs: the net's source, the weights read
    keep: Sequence[tuple[str, Any]] = ()


def compile_and_run(network, options: CompileOptions) -> dict[str, Any]:
    """Compile `network`, run it on random input of its declared shape and report."""
    from .export import FORMATS

    device, dtype = resolve_device(options.device), resolve_dtype(options.dtype)
    if options.init == "meta" and options.weights is None:
        raise CompileError("--init meta builds a module without memory; it can run only with --weights")
    export_path = None
    if options.export:
        export_path = Path(options.output or f"{network.name}{FORMATS[options.export]}")
    elif options.output:
        raise CompileError("-o names where --export writes; give --export too")
    _check_writable(options.save, export_path, options.keep)
    check_memory(network, device, dtype, init=options.init, weights=options.weights, batch=options.batch,
                 optimize=bool(options.optimize))

    start = time.perf_counter()
    with _weights_warnings() as notes, _torch_failures(network, device, dtype, "build"):
        module = compile_network(network, device, dtype, options.weights, options.init, options.max_params)
    build_seconds = time.perf_counter() - start

    params = {"train": _count(module, network, train=True), "deploy": _count(module, network, train=False)}
    expected = {"train": network.total_params(), "deploy": network.total_params(train=False)}
    if params != expected:  # would be a bug in a registry entry: say so rather than hide it
        raise RuntimeError(f"the module has {params} parameters but the summary counts {expected}")

    with _torch_failures(network, device, dtype):
        x = example_input(network, options.batch, device, dtype)
        run = check_run(module, network, x)
        module.eval()
        times = warm_times(module, x)
        forward_seconds = sorted(times)[len(times) // 2]
    report: dict[str, Any] = {
        "net": network.name,
        "device": str(device),
        "device_name": _device_name(device),
        "dtype": str(dtype or torch.get_default_dtype()).removeprefix("torch."),
        "init": options.init,
        "batch": options.batch,
        "params": params,
        "layers_checked": run.layers_checked,
        "outputs": [{"name": o.name, "shape": list(run.outputs[o.name].shape), "train_only": o.train_only}
                    for o in network.outputs],
        "seconds": {"build": build_seconds, "checked_pass": run.seconds, "forward": forward_seconds},
        "forward_runs": len(times),  # "forward" is the median of this many warm runs
        "macs": {"train": network.total_macs(), "deploy": network.total_macs(train=False),
                 "per": "example"},  # as the summary counts them: multiply by the batch for a pass
    }
    loaded = getattr(module, "_netdsl_loaded", None)
    if loaded is not None:
        from ..files import shown
        source = options.weights
        loaded["source"] = shown(source) if isinstance(source, (str, os.PathLike)) else "a mapping"
        report["weights"] = loaded
    if notes:
        report["warnings"] = notes
    if options.optimize:
        with _torch_failures(network, device, dtype, "optimise"):
            report["optimize"] = _optimize(module, x, options.optimize, network)
    if options.save:
        from .weights import save_weights
        with _torch_failures(network, device, dtype, "save"):
            report["saved"] = str(save_weights(module, options.save))
    if export_path is not None:
        from .export import export
        start = time.perf_counter()
        with _torch_failures(network, device, dtype, "export"):
            path = export(module, x, options.export, export_path)
        report["exported"] = {"format": options.export, "path": str(path), "seconds": time.perf_counter() - start}
    return report


def _check_writable(save: Optional[str], export_path: Optional[Path], keep: Sequence = ()) -> None:
    """Refuse, before any work, files that could not be written, would overwrite each other or
    would overwrite an input (`keep`: the net's source, the weights read)."""
    from ..files import WouldOverwrite, file_id, refuse_overwrite, shown
    from .files import check_destination

    paths = [Path(p) for p in (save, export_path) if p is not None]
    try:
        refuse_overwrite([(path, "give another path") for path in paths], keep)
    except WouldOverwrite as e:
        raise CompileError(str(e)) from None
    if len(paths) == 2 and (paths[0].resolve() == paths[1].resolve()
                            or (file_id(paths[0]) is not None and file_id(paths[0]) == file_id(paths[1]))):
        raise CompileError(f"--save and --export would both write {shown(paths[0])}; give -o another path")
    for path in paths:
        check_destination(path)  # devices, FIFOs, sockets, names over NAME_MAX: one line each
        folder = path.parent
        try:
            is_dir, has_folder = path.is_dir(), folder.is_dir()
            exists = path.exists()
        except (OSError, ValueError) as e:  # a name too long, a NUL in it
            raise CompileError(f"cannot write {shown(path)}: {getattr(e, 'strerror', None) or e}") from None
        if is_dir:
            raise CompileError(f"cannot write {shown(path)}: it is a folder")
        if not has_folder:
            raise CompileError(f"cannot write {shown(path)}: there is no folder {shown(folder)}")
        if not os.access(folder, os.W_OK) or (exists and not os.access(path, os.W_OK)):
            raise CompileError(f"cannot write {shown(path)}: permission denied")


@contextmanager
def _weights_warnings() -> Iterator[list[str]]:
    """Collects the NonFiniteWeightsWarnings of the block into the list it gives, printing
    each on stderr as the command line's own warnings are; other warnings pass on."""
    from .weights import NonFiniteWeightsWarning

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonFiniteWeightsWarning)
        try:
            yield notes
        finally:
            passed_on = []
            for w in caught:
                if issubclass(w.category, NonFiniteWeightsWarning):
                    notes.append(str(w.message))
                    print(f"netdsl: warning: {w.message}", file=sys.stderr)
                else:
                    passed_on.append(w)
    for w in passed_on:  # outside the block, under the caller's filters again
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


@contextmanager
def _torch_failures(network, device: torch.device, dtype: Optional[torch.dtype], doing: str = "run") -> Iterator[None]:
    """torch failing to build or run a checked net is the platform's limit (no kernel for a
    dtype on this device, out of memory) or the disk's, not the net's: one line, with what to
    try. Any exception of torch, fx or the exporters becomes one, since the command line
    prints no tracebacks; netdsl's own errors pass."""
    from .weights import WeightsError

    try:
        yield
    except (CompileError, WeightsError, RuntimeShapeError):
        raise
    except OSError as e:
        if doing not in ("save", "export"):
            raise CompileError(f"torch could not {doing} {network.name} on {device}: {describe(e)}") from None
        raise CompileError(f"cannot write: {e.strerror or first_line(e)}") from None
    except Exception as e:
        hint = ""
        if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(e):
            hint = "; try a smaller --batch" if doing == "run" else "; it does not fit in the memory there is"
        elif dtype in (torch.float16, torch.bfloat16) and device.type == "cpu":
            hint = "; half precision on the CPU lacks some ops: use float32 there, or a CUDA device"
        message = first_line(e) if type(e) is RuntimeError else describe(e)  # torch's plain errors need no type
        raise CompileError(f"torch could not {doing} {network.name} on {device}: {message}{hint}") from None


def _count(module, network, train: bool) -> int:
    # recurse=False: a labelled join's module also holds its branches, counted as layers of their
    # own; a bare op's layer is its one parameter, which may sit on such a module (once, by identity)
    counted = {id(p): p.numel() for name in network.layers if train or not network.layer(name).train_only
               for p in ([module.get_parameter(name)] if network.layer(name).op.bare is not None
                         else module.get_submodule(name).parameters(recurse=False))}
    return sum(counted.values())


def _optimize(module, x: torch.Tensor, level: str, network=None) -> dict[str, Any]:
    from torch.utils._pytree import tree_leaves

    from .optimize import optimize, optimize_failure

    start = time.perf_counter()
    chosen = None
    if level == "auto":
        from .autotune import choose
        fast, chosen = choose(module, network, x)
    else:
        fast = optimize(module, level)
    try:  # torch.compile compiles at the first call, and fails there if it does
        with torch.inference_mode():
            want, got = tree_leaves(module(x)), tree_leaves(fast(x))  # the first call also warms torch.compile up
        seconds = time.perf_counter() - start
        error = max((g.float() - w.float()).abs().max().item() for g, w in zip(got, want))
        scale = max(w.float().abs().max().item() for w in want)
        base, optimised = time_forward(module, x), time_forward(fast, x)
    except Exception as e:
        raise optimize_failure(type(module).__name__, level, e) from None
    report = {"level": level, "seconds": seconds, "forward": optimised, "speedup": base / optimised,
              "max_abs_diff": error, "within_tolerance": error <= OPTIMIZE_TOLERANCE * scale}
    if chosen is not None:  # what auto chose, each candidate's time, whether it was remembered
        report.update(chosen=chosen["path"], cached=chosen["cached"], candidates=chosen.get("candidates"),
                      left_out=chosen.get("left_out"))
        if "layers" in chosen:  # onednn: the layers whose oneDNN call timed faster
            report["layers"] = chosen["layers"]
    return report


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"
