"""Shape inference: every layer's output shape, parameter count and MACs, from the op
registry's rules, in one pass over the graph in topological order.

A layer whose inputs are unknown (an earlier error) is skipped silently, so one mistake is
reported once and not again by every layer after it.
"""

from __future__ import annotations

from .diagnostics import DiagnosticBag, Note
from .graph import LayerGraph
from .ops import REGISTRY, ShapeError, fmt_shape


def infer_shapes(graph: LayerGraph, bag: DiagnosticBag) -> None:
    """Set `shape`, `params` and `macs` on every node; shape is None where unknown."""
    reported: dict[tuple, int] = {}
    nodes = graph.nodes
    for name, data in nodes.items():  # insertion order is topological (see lower.py)
        data["shape"], data["params"], data["macs"] = None, 0, 0
        if data["op"] == "input":
            data["shape"] = tuple(data["attrs"]["shape"])
            continue
        if data["attrs"] is None:
            continue
        ins = [nodes[i]["shape"] for i in data["inputs"]]
        if not ins or any(s is None for s in ins):
            continue
        spec = REGISTRY[data["op"]]
        attrs = data["attrs"]
        try:
            out = spec.infer(ins, attrs)
        except ShapeError as e:
            key = (e.code, data["span"])
            if key in reported:  # the same line, expanded again from another block call
                continue
            reported[key] = 1
            bag.error(e.code, e.message, data["span"], notes=_input_notes(graph, name, e), help=e.help)
            continue
        data["shape"] = out
        data["params"] = spec.params(ins, attrs, out)
        data["macs"] = spec.macs(ins, attrs, out)


def _input_notes(graph: LayerGraph, name: str, err: ShapeError) -> list[Note]:
    """Point at the layers that produced the offending inputs."""
    node = graph.nodes[name]
    inputs = node["inputs"]
    picked = err.bad_inputs or range(len(inputs))
    notes = []
    if node["site"] is not None:  # a layer of a block: which use of the block it is
        notes.append(Note(f"in `{name}`, from the use of the block here", node["site"][1]))
    elif "." in name:
        notes.append(Note(f"in `{name}`"))
    for i in dict.fromkeys(picked):
        src = graph.nodes[inputs[i]]
        label = f"branch {i + 1} ends with" if len(inputs) > 1 else "its input comes from"
        notes.append(Note(f"{label} `{inputs[i]}`, which outputs {fmt_shape(src['shape'])}", src["span"]))
    return notes
