"""netdsl: write a convolutional network as a short text file; check its shapes, count its
parameters and MACs, draw it, and compile it to a torch module.

    >>> import netdsl
    >>> net = netdsl.load("nets/googlenet.net", classes=10)
    >>> print(net.summary())

The pipeline, one module a stage: parser (text to `ast`), lower (to the IR, `ir`), shapes
(inference by the op registry, `ops`), then summary, render and the torch backend, all reading
the IR. Nothing but the backend imports torch.
"""

__all__ = ["Diagnostic", "NetDSLError", "Network", "from_torch", "load", "loads"]
__version__ = "0.1.0"

TYPE_CHECKING = False  # not typing's: importing typing would cost the command line's start-up
if TYPE_CHECKING:
    from .diagnostics import Diagnostic, NetDSLError
    from .backend.importer import from_torch
    from .network import Network, load, loads
del TYPE_CHECKING


def __getattr__(name: str):
    # The names above are imported on first use, so that importing `netdsl.cli` (what the
    # `netdsl` command does first) runs no netdsl code outside its main(): a Ctrl-C during
    # start-up then ends in one line too.
    if name in ("Diagnostic", "NetDSLError"):
        from . import diagnostics as module
    elif name in ("Network", "load", "loads"):
        from . import network as module
    elif name == "from_torch":  # netdsl import's Python side (imports torch)
        from .backend import importer as module
    else:
        raise AttributeError(f"module 'netdsl' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
