"""`optimize="auto"`: try the inference paths on the user's device, dtype and batch, keep the fastest.

The candidates, each an inference-only module over the same weights:

- `eager`: the compiled module as it is, in evaluation mode;
- `fuse`: BatchNorm folded, convolutions in channels_last (`netdsl.backend.optimize`);
- `onednn`: `fuse`, then convolutions and linear layers run by oneDNN's fused calls, with the
  activations and residual sums after them computed in the same call and the convolutions'
  weights laid out once for the batch (CPU, float32; bfloat16 linear layers: `onednn.onednn_layers`),
  each layer only where its call timed faster than torch's modules (a per-layer choice, whose
  layer names the cache remembers with the path);
- `mkldnn`: torch.fx's `optimize_for_inference` (CPU: oneDNN's blocked layouts kept between layers);
- `jit`: traced, `torch.jit.freeze` and `torch.jit.optimize_for_inference`;
- `compile`: `fuse` then `torch.compile`, only when the caller accepts its warm-up (`allow_compile`).

A candidate counts only if its outputs equal eager's within `TOLERANCE` of their largest magnitude;
one that fails to build or run is left out. They are timed in interleaved rounds (the order rotates,
so drift in the machine's load falls on all alike) and each one's fastest run decides: other work
on the machine only ever adds time, and on a 2-core VM the medians of the same two paths moved
by 70 % between runs while their fastest runs stayed within 2 % (ConvNeXt-T: `onednn` 93-95 ms,
`fuse` 99-100; medians 112-197). The choice is remembered
in a JSON file (data, never code) keyed by the net's content, device, dtype, batch and torch's
version, so a second compile goes straight to it; a cache file that is corrupt, not a regular file,
or not owned by this user is ignored (see `_read_cache`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Union

import torch

from .errors import CompileError, describe
from .export import plain_outputs

TOLERANCE = 1e-5
CANDIDATES = ("eager", "fuse", "onednn", "mkldnn", "jit", "compile")
CACHE_FORMAT = 1
_MAX_CACHE_BYTES = 8 << 20  # an entry with oneDNN's layer names takes up to a few KB
_MAX_ENTRIES = 512


def cache_path() -> Path:
    """Where choices are remembered: $NETDSL_CACHE_DIR, else $XDG_CACHE_HOME/netdsl, else ~/.cache/netdsl."""
    folder = os.environ.get("NETDSL_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "netdsl")
    return Path(folder) / "optimize-choices.json"


def content_key(network, device: torch.device, dtype: Optional[torch.dtype], batch: int) -> str:
    """The cache key: the net's source and parameters, where and how it runs, torch's version."""
    digest = hashlib.sha256()
    for part in (network.source, repr(sorted(network.params.items())), str(device),
                 str(dtype or torch.get_default_dtype()), str(batch), torch.__version__,
                 str(torch.get_num_threads())):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries, or {} where it is missing, corrupt, not a regular file, or could have
    been written by another user (its file or folder not ours, or writable by others)."""
    try:
        folder = os.stat(path.parent)
        if not _ours(folder):
            return {}
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _ours(st) or st.st_size > _MAX_CACHE_BYTES:
            return {}
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = json.loads(f.read(_MAX_CACHE_BYTES + 1))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    finally:
        os.close(fd)
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("choices"), dict):
        return {}
    return {k: v for k, v in data["choices"].items()
            if isinstance(k, str) and isinstance(v, dict) and v.get("path") in CANDIDATES and _layer_names(v) is not False}


def _layer_names(entry: dict[str, Any]) -> Union[list[str], None, Literal[False]]:
    """The entry's per-layer choice (`onednn`: layer names), None where it has none, False where
    it is not a list of strings (a corrupt entry)."""
    names = entry.get("layers")
    if names is None:
        return None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else False


def _ours(st: os.stat_result) -> bool:
    uid = getattr(os, "geteuid", lambda: st.st_uid)()
    return st.st_uid == uid and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> bool:
    """Remember `entry` under `key`, written beside the cache and renamed over it; False where
    it cannot be (a read-only home, a folder of another user): the choice is then made again."""
    try:
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        if not _ours(os.stat(path.parent)):
            return False
        choices = _read_cache(path)
        choices.pop(key, None)
        choices[key] = entry
        while len(choices) > _MAX_ENTRIES:  # the oldest first
            choices.pop(next(iter(choices)))
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": CACHE_FORMAT, "choices": choices}, f)
        os.replace(temporary, path)
        return True
    except OSError:
        return False


def _build(module: torch.nn.Module, path: str, x: torch.Tensor,
           layers: Optional[list[str]] = None) -> torch.nn.Module:
    """The candidate `path` of `module` (which is left as it was); `onednn`: with oneDNN's calls
    for the `layers` named, or, without names, where they time faster."""
    from .optimize import optimize

    if path == "eager":
        return plain_outputs(copy.deepcopy(module).eval())
    if path == "fuse":
        return optimize(module, "fuse")
    if path == "compile":
        return optimize(module, "compile")
    if path == "onednn":
        from . import onednn
        if x.device.type != "cpu" or x.dtype not in onednn.LINEAR_DTYPES or not onednn.available():
            raise CompileError("oneDNN's fused calls are for float32 and bfloat16 on the CPU")
        fused = onednn.onednn_layers(optimize(module, "fuse"), batch=x.shape[0], timed=layers is None, names=layers)
        if not any(isinstance(m, (onednn.OneDNNConv, onednn.OneDNNLinear)) for m in fused.modules()):
            raise CompileError("no layer of the net takes a oneDNN call (none can, or none is faster): the same as fuse")
        return fused
    plain = plain_outputs(copy.deepcopy(module).eval())
    graph_module = torch.fx.GraphModule(plain, copy.deepcopy(plain.graph), type(module).__name__)
    if path == "mkldnn":
        if x.device.type != "cpu" or x.dtype != torch.float32:
            raise CompileError("oneDNN layouts are for float32 on the CPU")
        from torch.fx.experimental.optimization import optimize_for_inference
        return optimize_for_inference(graph_module)
    if path == "jit":
        import warnings
        # torch deprecates TorchScript in favour of torch.compile; it still is the fastest path
        # on some nets (VGG16 at batch 1), and the warnings would reach the user's stderr.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(graph_module, (x,), check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    raise CompileError(f"unknown path {path!r}")


def _leaves(value) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_leaves
    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


def _error(got, want) -> float:
    """max|a - b| / max|b| over every output (inf where the shapes differ)."""
    got, want = _leaves(got), _leaves(want)
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want)):
        return float("inf")
    scale = max((w.float().abs().max().item() for w in want), default=0.0) or 1.0
    return max((g.float().to_dense() - w.float()).abs().max().item() / scale for g, w in zip(got, want))


def _run(fn: Callable, x: torch.Tensor) -> Callable[[], float]:
    def once() -> float:
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        with torch.inference_mode():
            fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        return time.perf_counter() - start
    return once


def choose(module: torch.nn.Module, network, x: torch.Tensor, *, allow_compile: bool = False,
           budget: float = 6.0, use_cache: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The fastest candidate for `x`'s device, dtype and batch whose outputs equal eager's, and
    a report: the path chosen, every candidate's fastest forward seconds (None: left out, with
    why), the speed-up over eager, whether the choice came from the cache. `budget` bounds the
    seconds spent timing (at least three runs of each)."""
    dtype = x.dtype
    key = content_key(network, x.device, dtype, x.shape[0]) + (":compile" if allow_compile else "")
    where = cache_path()
    remembered = _read_cache(where).get(key) if use_cache else None
    if remembered is not None:
        try:
            chosen = _build(module, remembered["path"], x, _layer_names(remembered))
            with torch.inference_mode():
                if _error(chosen(x), module.eval()(x)) <= TOLERANCE:
                    return chosen, {**remembered, "cached": True}
        except Exception:  # torch changed under the cache: choose again
            pass
    paths = [p for p in CANDIDATES if p != "compile" or allow_compile]
    with torch.inference_mode():
        want = module.eval()(x)
    built: dict[str, torch.nn.Module] = {}
    left_out: dict[str, str] = {}
    for path in paths:
        try:
            candidate = _build(module, path, x)
            with torch.inference_mode():
                error = max(_error(candidate(x), want) for _ in range(2))  # the second call: jit's optimised one
            if error > TOLERANCE:
                left_out[path] = f"outputs differ by {error:.1e} of their magnitude"
                continue
            built[path] = candidate
        except Exception as e:  # a path torch cannot take for this net: left out, never fatal
            left_out[path] = describe(e)
    runners = {path: _run(m, x) for path, m in built.items()}
    times: dict[str, list[float]] = {p: [] for p in runners}
    started, rounds = time.perf_counter(), 0
    while rounds < 3 or (rounds < 15 and time.perf_counter() - started < budget):
        order = list(runners)
        order = order[rounds % len(order):] + order[:rounds % len(order)]
        for path in order:
            times[path].append(runners[path]())
        rounds += 1
    fastest = {p: min(t) for p, t in times.items()}
    best = min(fastest, key=fastest.get)
    report = {"path": best, "forward": fastest[best], "speedup": fastest["eager"] / fastest[best],
              "candidates": {p: fastest.get(p) for p in paths}, "left_out": left_out, "rounds": rounds,
              "device": str(x.device), "dtype": str(dtype).removeprefix("torch."), "batch": int(x.shape[0]),
              "torch": torch.__version__}
    if best == "onednn":
        from .onednn import onednn_names
        report["layers"] = onednn_names(built[best])
    if use_cache:
        report["remembered"] = _write_cache(where, key, report)
    return built[best], {**report, "cached": False}
