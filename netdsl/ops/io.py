"""The net's input: an op like any other, with no input of its own and the declared shape as
its output (the backend makes it the module's argument)."""

from __future__ import annotations

from .spec import INPUT_KIND, Attr, Dims, examples, family

op = family("input")

INPUT = op("input", (Attr("shape", Dims(), positional=True, doc="the sizes of one example"),),
           infer=lambda ins, a: tuple(a["shape"]), build=None, kind=INPUT_KIND, source=True,
           label=lambda a: "input", doc="the net's input, declared first: `input 3x224x224` (an image C×H×W; `input 10` a vector, "
               "`input 1x16000` a sequence C×L, `input 3x16x112x112` a volume C×D×H×W)", shape_doc="→ its shape",
           examples=examples(("3x8x8", "identity"), ("6", "identity"), ("2x10", "identity"),
                             ("2x3x4x5", "identity")))
