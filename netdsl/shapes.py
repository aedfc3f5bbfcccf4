"""Shape inference: every layer's output shape, parameter count and MACs, from the op
registry's rules, in one pass over the IR in topological order.

A layer whose inputs are unknown (an earlier error) is skipped silently, so one mistake is
reported once and not again by every layer after it.
"""

from __future__ import annotations

from .diagnostics import DiagnosticBag, Note
from .ir import Layer, Net
from .ops import ShapeError, fmt_shape


def infer_shapes(net: Net, bag: DiagnosticBag) -> None:
    """Set `shape`, `params` and `macs` on every layer; shape stays None where unknown."""
    reported: set[tuple] = set()
    for layer in net.layers.values():  # insertion order is topological (see lower.py)
        spec, attrs = layer.op, layer.attrs
        if spec is None or attrs is None:
            continue
        ins = [i.shape for i in layer.inputs]
        if (not ins and not spec.source) or any(s is None for s in ins):
            continue
        try:
            # sizes per axis (`kernel=3`) made one per axis of this input, for every pass after
            attrs = layer.attrs = spec.resolve(ins, attrs)
            out = spec.infer(ins, attrs)
        except ShapeError as e:
            key = (e.code, layer.span)
            if key in reported:  # the same line, expanded again from another block call
                continue
            reported.add(key)
            bag.error(e.code, e.message, layer.span, notes=_input_notes(layer, e), help=e.help)
            continue
        layer.shape = out
        layer.params = spec.params(ins, attrs, out)
        layer.macs = spec.macs(ins, attrs, out)


def _input_notes(layer: Layer, err: ShapeError) -> list[Note]:
    """Point at the layers that produced the offending inputs."""
    inputs = layer.inputs
    picked = err.bad_inputs or range(len(inputs))
    notes = []
    if layer.site is not None:  # a layer of a block: which use of the block it is
        notes.append(Note(f"in `{layer.name}`, from the use of the block here", layer.site[1]))
    elif layer.scope is not None:
        notes.append(Note(f"in `{layer.name}`"))
    for i in dict.fromkeys(picked):
        src = inputs[i]
        label = f"branch {i + 1} ends with" if len(inputs) > 1 else "its input comes from"
        notes.append(Note(f"{label} `{src.name}`, which outputs {fmt_shape(src.shape)}", src.span))
    return notes
