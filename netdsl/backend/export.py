"""Exports of a compiled module to formats that run without netdsl.

- `torchscript`: `torch.jit.script` of the generated forward, saved with `.save` (load with
  `torch.jit.load`);
- `exported`: a `torch.export` program with a dynamic batch dimension (`torch.export.load`);
- `onnx`: `torch.onnx.export` (needs the `onnx` extra: `pip install netdsl[onnx]`), batch dynamic.

Each exports the evaluation graph: deployment is what leaves netdsl.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import torch

from .fx import CompileError

FORMATS = {"torchscript": ".pt", "exported": ".pt2", "onnx": ".onnx"}


def export(module: torch.nn.Module, example: torch.Tensor, fmt: str, path: Union[str, os.PathLike]) -> Path:
    """Write `module` (put in evaluation mode) in format `fmt` to `path`; returns the path."""
    if fmt not in FORMATS:
        raise CompileError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
    path = Path(path)
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of TorchScript and the exporters
        if fmt == "torchscript":
            torch.jit.script(module).save(str(path))
        elif fmt == "exported":
            program = torch.export.export(module, (_batch_of_two(example),), dynamic_shapes={"x": {0: batch}})
            torch.export.save(program, path)
        else:
            try:
                import onnxscript  # noqa: F401  (torch's exporter needs it)
            except ImportError:
                raise CompileError("exporting ONNX needs the onnx extra: pip install 'netdsl[onnx]'") from None
            # One self-contained file, unless protobuf's 2 GB limit forces the weights out.
            external = sum(t.numel() * t.element_size() for t in module.state_dict().values()) >= 2**31
            torch.onnx.export(module, (_batch_of_two(example),), path, input_names=["x"],
                              dynamic_shapes={"x": {0: batch}}, dynamo=True, external_data=external,
                              verbose=False)
    return path


def _batch_of_two(x: torch.Tensor) -> torch.Tensor:
    # torch.export specialises sizes 0 and 1; an example batch of 2 keeps the batch symbolic.
    return torch.cat([x[:1], x[:1]]) if x.shape[0] != 2 else x
