"""Weights in and out of a compiled module, safely.

Files are read only as data: `.safetensors` through safetensors, `.pt`/`.pth`/`.bin` through
`torch.load(weights_only=True)`, which unpickles tensors and plain containers and refuses
anything that would run code.

Tensors are matched to the module's state by name; those whose names do not match (weights
from torchvision, say, where netdsl names `inception3a.branch2.conv2` what torchvision calls
`inception3a.branch2.1.conv`) are matched by definition order (see `match_weights`: strictly,
else per shape where the two orders differ only in where some tensors of their own shapes
stand). Tensors paired by order must agree in the
last part of their names (`weight` with `weight`, never with `running_mean`). Every shape is
checked before anything is copied, so a mismatch leaves the module as it was. Only dense tensors are taken;
NaN or infinite values load, with a `NonFiniteWeightsWarning` naming the tensors that hold them
(a mapping assigned under `init="meta"` is the caller's own and is not read; see `load_weights`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping, Union

import torch
from torch import nn

from .errors import first_line

WeightsSource = Union[str, os.PathLike, Mapping[str, torch.Tensor]]
TORCH_SUFFIXES = (".pt", ".pth", ".bin")


class WeightsError(ValueError):
    """Weights that cannot be read or do not fit the net; the message names the first tensor
    that disagrees."""


class NonFiniteWeightsWarning(UserWarning):
    """Weights that hold NaN or infinite values: they load, and the net computes with them."""

# torch.load's notices about the sparse tensors it checks: such weights are refused anyway.
_SPARSE_NOTICES = r"(Validating sparse tensor invariants|Sparse \w+ tensor support is in beta)"


def read_weights(source: WeightsSource) -> dict[str, torch.Tensor]:
    """A state_dict from a path (safetensors or a torch state_dict file) or a mapping."""
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        from ..files import shown

        path = Path(source)
        try:
            is_file = path.is_file()
        except (OSError, ValueError) as e:  # a name too long, a NUL in it
            raise WeightsError(f"cannot read weights from {shown(path)}: {getattr(e, 'strerror', None) or e}") from None
        if not is_file:
            raise WeightsError(f"cannot read weights from {shown(path)}: no such file")
        if path.suffix == ".safetensors":
            from safetensors import SafetensorError
            from safetensors.torch import load_file
            try:
                state = load_file(path)
            except (SafetensorError, OSError) as e:
                raise WeightsError(f"{path} is not a readable safetensors file: {e}") from None
        elif path.suffix in TORCH_SUFFIXES:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", _SPARSE_NOTICES, UserWarning)
                    state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError (an empty file), ...
                raise WeightsError(f"{path} is not a state_dict that torch.load(weights_only=True) "
                                   f"accepts: {first_line(e)}") from None
            if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
                state = state["state_dict"]  # a training checkpoint: {"state_dict": ..., "epoch": ...}
        else:
            raise WeightsError(f"cannot read weights from {path}: use a .safetensors file "
                               f"or a state_dict saved with torch.save ({', '.join(TORCH_SUFFIXES)})")
    if not isinstance(state, Mapping):
        raise WeightsError(f"the weights are a {type(state).__name__}, not a state_dict (names to tensors)")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"the weights' entry `{key}` is a {type(value).__name__}, not a tensor")
        if value.is_meta:
            raise WeightsError(f"the weights' `{key}` is on the meta device: it has a shape but no values")
        if value.layout != torch.strided or value.is_quantized:  # load_state_dict copies only dense values
            layout = str(value.layout).removeprefix("torch.")
            kind = "quantized tensor" if value.is_quantized else f"sparse tensor ({layout})"
            raise WeightsError(f"the weights' `{key}` is a {kind}; netdsl loads dense tensors "
                               "(save `tensor.to_dense()` instead)")
    return dict(state)


def non_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in `state` that hold NaN or infinite values."""
    # On one thread: a sum is bound by memory, and torch's threads, where other processes hold
    # the cores, wait on each other at every call (20 times slower on a loaded 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [key for key, value in state.items() if value.is_floating_point() and not _finite(value)]
    finally:
        torch.set_num_threads(threads)


def _finite(tensor: torch.Tensor, chunk: int = 1 << 24) -> bool:
    # First the sum, one read of the values and no allocation: a NaN or an infinity in the
    # tensor makes it NaN or infinite, so a finite sum proves them all finite (a sum that
    # overflows is checked value by value). Checking each value makes a boolean tensor as large
    # as its input (so in chunks), and took 90 % of a meta build with weights.
    flat = tensor.detach().reshape(-1)
    if bool(torch.isfinite(flat.sum(dtype=torch.float64 if flat.dtype == torch.float64 else None))):
        return True
    return all(bool(torch.isfinite(flat[i:i + chunk]).all()) for i in range(0, flat.numel(), chunk))


def match_weights(module: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` renamed to the module's keys: by name where names agree, the rest by order.
    Raises WeightsError at the first tensor whose shape disagrees or that has no partner."""
    return match_state(module.state_dict(), state)[0]


def match_state(current: Mapping[str, torch.Tensor],
                state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """`match_weights` for the module's state_dict `current` (tensors on the meta device do: only
    shapes and dtypes are read), and how many of the tensors matched by order were out of place (matched
    per shape; 0 where the order held strictly).

    The tensors left after matching by name are matched by order, the net's i-th to the
    weights' i-th, where every pair has the same shape, kind of number (floating point or
    integer) and last name part (`weight`, `running_mean`: see `_same_role`). Where that strict
    sequence breaks, because the weights' model registers some tensors elsewhere (a block that
    holds a scale of its own before its layers' tensors, where the net's stands after them), they
    are matched per shape: the k-th tensor
    of each shape (and kind) in the weights goes to the k-th of that shape in the net. That is
    accepted only

    - where both hold the same tensors counted per shape (the same multiset of shapes), and
    - where no tensor out of place shares its shape with a tensor in place. A tensor is in
      place if it belongs to every longest run of tensors that the per-shape pairing keeps in
      the same order on both sides; the others are out of place (the blocks' scales).

    Matching per shape assumes what matching by order assumes, that tensors of one shape come
    in the same order on both sides, and drops the assumption that every tensor stands at the
    same place. It cannot tell two tensors of the same shape apart: had a tensor moved past
    another of its shape (a C-vector registered before a conv whose bias is a C-vector too),
    pairing per shape would give each the other's values. The second condition refuses exactly
    that kind of doubt: a moved C-vector among C-vectors that stay is refused, as is any order
    that two same-shaped tensors could explain by either one having moved. Where the strict
    sequence holds, it is used as it is (per shape would pair the same)."""
    ours = {k: v.shape for k, v in current.items()}
    matched: dict[str, torch.Tensor] = {}
    for key in ours:
        if key in state:
            _same_kind(key, current[key], key, state[key])
            matched[key] = state[key]
    rest_ours = [k for k in ours if k not in matched]
    rest_theirs = [k for k in state if k not in ours]
    position = {k: i for i, k in enumerate(ours, 1)}
    moved = 0
    try:
        for mine, theirs in zip(rest_ours, rest_theirs):
            _same_kind(mine, current[mine], theirs, state[theirs], position=position[mine])
            _same_role(mine, theirs, f"matching by order, tensor {position[mine]}: ")
        if len(rest_ours) != len(rest_theirs):
            n = min(len(rest_ours), len(rest_theirs))
            if len(rest_ours) > n:
                key = rest_ours[n]
                raise WeightsError(f"the weights have no tensor for the net's `{key}` ({_shape(ours[key])}): "
                                   f"the net has {len(ours)} tensors, the weights {len(state)}")
            key = rest_theirs[n]
            raise WeightsError(f"the weights' `{key}` ({_shape(state[key].shape)}) has no place in the net: "
                               f"the net has {len(ours)} tensors, the weights {len(state)}")
        pairs = list(zip(rest_ours, rest_theirs))
    except WeightsError as strict:
        pairs, moved, why = _per_shape(current, rest_ours, state, rest_theirs)
        if why:
            raise WeightsError(f"{strict}; matching per shape fails too: {why}") from None
        try:
            for mine, theirs in pairs:
                _same_role(mine, theirs)
        except WeightsError as e:
            raise WeightsError(f"{strict}; matching per shape fails too: {e}") from None
    matched.update((mine, state[theirs]) for mine, theirs in pairs)
    return {k: matched[k] for k in ours}, moved  # the module's order


def _per_shape(current: Mapping[str, torch.Tensor], ours: list[str], state: Mapping[str, torch.Tensor],
               theirs: list[str]) -> tuple[list[tuple[str, str]], int, str]:
    """The pairs of `ours` and `theirs` matched per shape (see `match_state`), how many were out of
    place, and why not ('' where accepted)."""
    def kind(t: torch.Tensor) -> tuple:
        return (tuple(t.shape), t.is_floating_point())

    def described(k: tuple) -> str:
        return f"{_shape(k[0])} {'floating-point' if k[1] else 'integer'}"

    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(ours):
        groups.setdefault(kind(current[key]), []).append(i)
    counts: dict[tuple, int] = {}
    for key in theirs:
        counts[kind(state[key])] = counts.get(kind(state[key]), 0) + 1
    for k in list(groups) + [k for k in counts if k not in groups]:
        if len(groups.get(k, ())) != counts.get(k, 0):
            return [], 0, (f"the net has {len(groups.get(k, ()))} {described(k)} tensors, "
                           f"the weights {counts.get(k, 0)}")
    taken = {k: 0 for k in groups}
    target = []  # target[j]: the index in `ours` of the weights' j-th tensor
    for key in theirs:
        k = kind(state[key])
        target.append(groups[k][taken[k]])
        taken[k] += 1
    kept = _in_every_longest_run(target)
    out = [j for j in range(len(target)) if not kept[j]]
    stays = {kind(state[theirs[j]]) for j in range(len(target)) if kept[j]}
    for j in out:
        k = kind(state[theirs[j]])
        if k in stays:
            here = next(i for i in range(len(target)) if kept[i] and kind(state[theirs[i]]) == k)
            return [], 0, (f"the weights' `{theirs[j]}` ({_shape(k[0])}) is out of place but their "
                           f"`{theirs[here]}`, of the same shape, is in place: which of them moved is ambiguous")
    return [(ours[target[j]], theirs[j]) for j in range(len(target))], len(out), ""


def _in_every_longest_run(values: list[int]) -> list[bool]:
    """For each of `values` (distinct), whether it belongs to every longest increasing
    subsequence: in one (the longest run ending there and the one starting there add up to the
    longest) and the only such value at its length."""
    import bisect

    def ending(seq: list[int]) -> list[int]:
        tails: list[int] = []
        lengths = []
        for v in seq:
            i = bisect.bisect_left(tails, v)
            tails[i:i + 1] = [v]
            lengths.append(i + 1)
        return lengths

    before = ending(values)
    after = ending([-v for v in reversed(values)])[::-1]
    longest = max(before, default=0)
    on = [b + a - 1 == longest for b, a in zip(before, after)]
    at: dict[int, int] = {}
    for b, o in zip(before, on):
        if o:
            at[b] = at.get(b, 0) + 1
    return [o and at[b] == 1 for b, o in zip(before, on)]


def load_weights(module: nn.Module, source: WeightsSource, assign: bool = False) -> dict:
    """Read `source` and load it into `module` (all or nothing: every name, shape and kind of
    number is checked first; NaN or infinite values load, with a NonFiniteWeightsWarning
    naming the tensors). With `assign`, the tensors replace the module's (which may live on
    the meta device) instead of being copied in, as torch's `load_state_dict(assign=True)`
    does: tensors of a mapping in the module's dtype are then shared with the caller (the
    fast path `init="meta"` is for; pass copies to keep them apart), and their values are not
    read (no NaN check: the caller's own tensors, and reading them would cost more than the
    whole load, AlexNet's 61 M values 9 ms against 4 ms). Returns what was loaded:
    `tensors`, `values`, how many tensors were matched `by_name` and `by_order`, and of those
    by order how many were out of place and so matched per shape (`per_shape`; 0 where the
    order held tensor by tensor; see `match_state` for the rule)."""
    read = read_weights(source)
    current = module.state_dict(keep_vars=True)  # shapes and dtypes only: no detached copies
    state, moved = match_state(current, read)
    by_name = sum(1 for key in state if key in read)
    loaded = {"tensors": len(state), "values": sum(v.numel() for v in state.values()), "by_name": by_name,
              "by_order": len(state) - by_name, "per_shape": moved}
    shared = assign and isinstance(source, Mapping)
    bad = [] if shared else non_finite(read)
    if bad:
        names = ", ".join(f"`{k}`" for k in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"the weights hold NaN or infinite values in {len(bad)} tensor{'s' * (len(bad) > 1)}: {names}",
                      NonFiniteWeightsWarning, stacklevel=2)
    if assign:
        # The module's own dtypes rule: a float64 file does not make a float32 net float64.
        state = {k: v.to(current[k].dtype) for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=assign)
    return loaded


def save_weights(module: nn.Module, path: Union[str, os.PathLike]) -> Path:
    """Write the module's state_dict: safetensors for `.safetensors`, else `torch.save`. The
    file replaces `path` only once complete (a failed write leaves an old file as it was)."""
    from .files import check_destination, replacing, write_file

    path = Path(path)
    if path.suffix != ".safetensors" and path.suffix not in TORCH_SUFFIXES:
        raise WeightsError(f"cannot save weights as {path.name}: use .safetensors, {', '.join(TORCH_SUFFIXES)}")
    check_destination(path, WeightsError)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    from safetensors import SafetensorError
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file
            with replacing(path) as temporary:
                save_file(state, temporary)
        else:
            write_file(path, lambda file: torch.save(state, file))
    except OSError as e:
        raise WeightsError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
    except (RuntimeError, SafetensorError) as e:
        raise WeightsError(f"cannot write {path}: {first_line(e)}") from None
    return path


def _same_kind(mine: str, ours: torch.Tensor, theirs: str, tensor: torch.Tensor, position: int = 0) -> None:
    """The same shape, and numbers of the same kind (floating point or integer), which loading
    may convert between precisions but not across."""
    where = f"matching by order, tensor {position}: " if position else ""
    if tuple(tensor.shape) != tuple(ours.shape):
        raise WeightsError(f"{where}the net's `{mine}` is {_shape(ours.shape)} but the weights' `{theirs}` "
                           f"is {_shape(tensor.shape)}")
    if tensor.is_floating_point() != ours.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise WeightsError(f"{where}the net's `{mine}` holds {_kind(ours)} numbers but the weights' `{theirs}` "
                           f"is {str(tensor.dtype).removeprefix('torch.')}")


def _same_role(mine: str, theirs: str, where: str = "") -> None:
    """Tensors paired by order must play the same part in their layers: the same last name
    component (`weight`, `bias`, `running_mean` ...). Shapes alone cannot tell a BatchNorm's
    `weight` from its `running_mean`, so an order slip between them would load silently wrong."""
    if mine.rpartition(".")[2] != theirs.rpartition(".")[2]:
        raise WeightsError(f"{where}the net's `{mine}` would take the weights' "
                           f"`{theirs}`, but their names disagree in their last part "
                           f"(`{mine.rpartition('.')[2]}` against `{theirs.rpartition('.')[2]}`); give the "
                           "net's layers the weights' names so that they load by name")


def _kind(tensor: torch.Tensor) -> str:
    return "floating-point" if tensor.is_floating_point() else "integer"


def _shape(shape) -> str:
    return "×".join(map(str, shape)) if len(shape) else "a scalar"
