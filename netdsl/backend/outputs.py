"""The named tuple a net with several outputs returns: `NetOutputs(fc=..., aux1=..., aux2=...)`.

The generated forward calls the module-level function `outputs`, not a class made for the
net, so the code imports like any other and results pickle across processes (through
`outputs` again). Output names become field names: `b1.h` reads `b1_h`.
"""

from __future__ import annotations

import collections
import keyword
import re
from typing import Any

_TYPES: dict[tuple[str, ...], type] = {}


def field_name(name: str) -> str:
    """An output's name as a Python identifier: dots and other marks become `_`."""
    field = re.sub(r"\W", "_", name).lstrip("_") or "output"
    return f"{field}_" if keyword.iskeyword(field) or field[0].isdigit() else field


def outputs_type(names: tuple[str, ...]) -> type:
    """The named tuple class for outputs with these names (one class per set of names)."""
    cls = _TYPES.get(names)
    if cls is None:
        # rename=True: two names that read alike as fields (`a.b`, `a_b`) get positional ones
        base = collections.namedtuple("NetOutputs", [field_name(n) for n in names], rename=True)
        cls = type("NetOutputs", (base,), {
            "__slots__": (), "__module__": __name__,
            "__reduce__": lambda self: (outputs, (names, *self)),
        })
        _TYPES[names] = cls
    return cls


def outputs(names: tuple[str, ...], *values: Any) -> tuple:
    """The outputs `values` as a named tuple with fields after `names`."""
    return outputs_type(names)(*values)
