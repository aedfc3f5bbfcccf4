"""Shape inference: every layer's output shape, parameter count and MACs, from the op
registry's rules, one layer at a time.

Lowering (netdsl/lower.py) infers each layer as soon as it makes it, so that what comes later
can use the shape (`in_channels` in a block's body, an `if` on the input's size): the layers
are made in topological order, each after the layers it reads, so their input shapes are known.

A layer whose inputs are unknown (an earlier error) is skipped silently, so one mistake is
reported once and not again by every layer after it.
"""

from __future__ import annotations

from .diagnostics import DiagnosticBag, Note
from .ir import Layer, Net
from .ops import ShapeError, fmt_shape


class ShapeInference:
    """Infers layers one by one into `bag`, reporting a mistake of one line once however many
    times blocks and repeats expand it."""

    def __init__(self, bag: DiagnosticBag):
        self.bag = bag
        self.reported: set[tuple] = set()

    def layer(self, layer: Layer) -> bool:
        """Set `shape`, `params` and `macs` of a layer whose inputs are inferred; shape stays None
        where unknown. False when this reported a new error."""
        spec, attrs = layer.op, layer.attrs
        if spec is None or attrs is None:
            return True
        ins = [i.shape for i in layer.inputs]
        if (not ins and not spec.source) or any(s is None for s in ins):
            return True
        try:
            # sizes per axis (`kernel=3`) made one per axis of this input, for every pass after
            attrs = layer.attrs = spec.resolve(ins, attrs)
            out = spec.infer(ins, attrs)
        except ShapeError as e:
            key = (e.code, layer.span)
            if key in self.reported:  # the same line, expanded again from another block call
                return True
            self.reported.add(key)
            self.bag.error(e.code, e.message, layer.span, notes=_input_notes(layer, e), help=e.help)
            return False
        layer.shape = out
        layer.params = spec.params(ins, attrs, out)
        layer.macs = spec.macs(ins, attrs, out)
        return True


def infer_shapes(net: Net, bag: DiagnosticBag) -> None:
    """Infer every layer of a net whose layers are not inferred yet (lowering infers them as
    it goes: this is for an IR made some other way)."""
    inference = ShapeInference(bag)
    for layer in net.layers.values():  # insertion order is topological (see lower.py)
        if layer.shape is None:
            inference.layer(layer)


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
