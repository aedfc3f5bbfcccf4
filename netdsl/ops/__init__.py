"""The op registry: every layer kind of the language, declared once.

An `OpSpec` (netdsl/ops/spec.py) holds everything netdsl knows about one op: its attributes
(types, defaults, which may be given positionally), its shape rule, its parameter and MAC
counts, the torch module it compiles to, how a diagram draws it, its backend flags, its
documentation and the examples the registry-wide tests run it on. Nothing outside this package
names a particular op. Adding a layer kind is one entry in its family's file; the tests
(tests/test_registry.py, tests/test_ops.py), the README's op table and the diagram follow.

Conventions, stated once:
- shapes are per example, without the batch dimension: images are (C, H, W), vectors (C,);
- params are learnable parameters, biases included; BatchNorm counts 2*C (its running
  statistics are buffers, not parameters);
- MACs are the multiply-accumulates of conv and linear layers only (bias additions, pools,
  activations and normalisation are not counted); FLOPs = 2 * MACs;
- a layer's tensors are its module's, under the layer's name (`conv1.weight`), except for an op
  declared `bare`, whose one tensor is the layer itself (`layer_scale`), as a bare nn.Parameter
  of the enclosing module is in torch.

torch is imported inside the builders only, so checking and summarising never load it.
"""

from __future__ import annotations

from .spec import (KINDS, REGISTRY, REQUIRED, Attr, AttrError, Bool, Dims, Eject, Example, Float, Int, Kind, Mark,
                   OpSpec, Pair, Shape, ShapeError, Symbol, fmt_shape, fmt_value, register)
from .window import window_out

# The family files register their ops on import, in this order (the registry's order, which
# the README's op table follows).
from . import io, conv, pool, resize, linear, activation, norm, channels, join  # noqa: E402,F401,I001  # isort: skip
from .io import INPUT  # noqa: E402

__all__ = ["REGISTRY", "REQUIRED", "Attr", "AttrError", "Bool", "Dims", "Eject", "Example", "Float", "Int", "Kind",
           "KINDS", "Mark", "OpSpec", "Pair", "Shape", "ShapeError", "Symbol", "fmt_shape", "fmt_value",
           "register", "window_out", "INPUT"]
