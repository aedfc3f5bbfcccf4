"""Exports of a compiled module to formats that run without netdsl.

- `torchscript`: `torch.jit.script` of the generated forward, saved with `.save` (load with
  `torch.jit.load`);
- `exported`: a `torch.export` program with a dynamic batch dimension, 1 to 65,536
  (`torch.export.load`);
- `onnx`: `torch.onnx.export` (needs the `onnx` extra: `pip install netdsl[onnx]`), batch dynamic.

Each exports the evaluation graph (deployment is what leaves netdsl); several outputs become a
plain tuple, in the net's order.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path
from typing import Union

import torch

from .errors import CompileError, describe, first_line
from .files import check_destination, replacing, write_file
from .outputs import outputs

FORMATS = {"torchscript": ".pt", "exported": ".pt2", "onnx": ".onnx"}
MAX_BATCH = 1 << 16  # the exported programs' batch dimension runs from 1 to this


def plain_outputs(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """`module`'s current graph returning a plain tuple where it returns named outputs (every
    exporter and TorchScript take tuples); the submodules are shared, not copied."""
    graph = copy.deepcopy(module.graph)
    result = graph.output_node()
    call = result.args[0]
    if not (isinstance(call, torch.fx.Node) and call.op == "call_function" and call.target is outputs):
        return module
    result.args = (tuple(call.args[1:]),)
    graph.erase_node(call)
    return torch.fx.GraphModule(module, graph, type(module).__name__)


def output_names(module: torch.fx.GraphModule) -> list[str]:
    """The names of the outputs `module`'s current graph returns."""
    call = module.graph.output_node().args[0]
    if isinstance(call, torch.fx.Node) and call.op == "call_function" and call.target is outputs:
        return list(call.args[0])
    return ["output"]


def export(module: torch.nn.Module, example: torch.Tensor, fmt: str, path: Union[str, os.PathLike]) -> Path:
    """Write `module` (put in evaluation mode) in format `fmt` to `path`; returns the path. The
    file replaces `path` only once complete (a failed write leaves an old file as it was).
    Raises CompileError, in one line, where torch cannot export or write it."""
    if fmt not in FORMATS:
        raise CompileError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
    path = check_destination(path)
    name = type(module).__name__
    try:
        module.eval()
        names = output_names(module)
        module = plain_outputs(module)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices of TorchScript and the exporters
            _export(module, example, fmt, path, names)
    except CompileError:
        raise
    except OSError as e:
        raise CompileError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
    except Exception as e:  # TorchScript's frontend, torch.export's and ONNX's errors, fx's alike
        raise CompileError(f"cannot export {name} as {fmt}: {describe(e)}; "
                           "try another export format (--export)") from None
    return path


def _export(module: torch.fx.GraphModule, example: torch.Tensor, fmt: str, path: Path, names: list[str]) -> None:
    if fmt == "torchscript":
        scripted = torch.jit.script(module)
        write_file(path, lambda file: torch.jit.save(scripted, file))  # a file object: torch writes from Python
    elif fmt == "exported":
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        program = torch.export.export(module, (_batch_of_two(example),), dynamic_shapes={"x": {0: batch}})
        # Into memory first: torch.export.save aborts the process when a write to a file fails.
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        write_file(path, lambda file: file.write(buffer.getbuffer()))
    else:
        try:
            import onnxscript  # noqa: F401  (torch's exporter needs it)
        except ImportError:
            raise CompileError("exporting ONNX needs the onnx extra: pip install 'netdsl[onnx]'") from None
        # One self-contained file, unless protobuf's 2 GB limit forces the weights out.
        external = sum(t.numel() * t.element_size() for t in module.state_dict().values()) >= 2**31
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        with replacing(path) as temporary:  # the file, and its external data beside it
            torch.onnx.export(module, (_batch_of_two(example),), temporary, input_names=["x"], output_names=names,
                              dynamic_shapes={"x": {0: batch}}, dynamo=True, external_data=external,
                              verbose=False)


def _batch_of_two(x: torch.Tensor) -> torch.Tensor:
    # torch.export specialises sizes 0 and 1; an example batch of 2 keeps the batch symbolic.
    return torch.cat([x[:1], x[:1]]) if x.shape[0] != 2 else x
