"""The torch backend: a checked `Network` becomes a `torch.fx.GraphModule`.

This package is the only part of netdsl that imports torch (the op registry's builders apart),
and nothing imports it until `Network.compile` or `netdsl compile` asks for it.

- `fx`: the layer graph to an fx graph and a `NetModule` (one submodule per layer, named by
  its scope path; a straight-line generated `forward`); `outputs`: the named tuple of a net
  with several outputs; `errors`: what the backend raises;
- `weights`: reading safetensors / state_dict files and matching them to a module;
- `runtime`: running a module once while checking every shape against the static ones;
- `export`: TorchScript, `torch.export` and ONNX;
- `optimize`: inference rewrites (BatchNorm folding, channels_last, `torch.compile`);
- `budget`: the memory a build and a run need, checked against what is available first;
- `files`: destinations checked, files written beside them and renamed into place.
"""

from .errors import CompileError, UncompilableNet
from .fx import NetModule, compile_network
from .weights import WeightsError, load_weights, save_weights

__all__ = ["CompileError", "NetModule", "UncompilableNet", "WeightsError", "compile_network", "load_weights",
           "save_weights"]
