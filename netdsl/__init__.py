"""netdsl: write a convolutional network as a short text file; check its shapes, count its
parameters and MACs, draw it, and compile it to a torch module.

    >>> import netdsl
    >>> net = netdsl.load("nets/googlenet.net", classes=10)
    >>> print(net.summary())

The pipeline, one module a stage: parser (text to `ast`), lower (to the IR, `ir`), shapes
(inference by the op registry, `ops`), then summary, render and the torch backend, all reading
the IR. Nothing but the backend imports torch.
"""

from .diagnostics import Diagnostic, NetDSLError
from .network import Network, load, loads

__all__ = ["Diagnostic", "NetDSLError", "Network", "load", "loads"]
__version__ = "0.1.0"
