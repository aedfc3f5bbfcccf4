"""The public entry points: `load` and `loads` run the pipeline (parse, lower, infer shapes)
and return a checked `Network`, or raise one `NetDSLError` carrying every diagnostic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Optional

from . import codes, ir, parser
from .ast import Span
from .diagnostics import Diagnostic, DiagnosticBag, NetDSLError
from .limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_LAYERS, DEFAULT_MAX_PARAMS
from .lower import lower
from .ops import INPUT


class Network:
    """A parsed and checked network: the public face over its IR (`ir`, a `netdsl.ir.Net`).

    `layer(name)` is one `netdsl.ir.Layer` (op, attrs, inputs, users, span, shape, params,
    MACs); `layers` names them in definition order; `scopes` maps each scope's dotted path to
    its `netdsl.ir.Scope`; `outputs[0]` is the main output, the rest are heads. `graph` is the
    same net as a networkx.DiGraph (node data: `netdsl.ir.Layer.data()`; edge data `index`,
    which input of the target it is), built on first use.
    """

    def __init__(self, net: ir.Net, source: str, filename: str):
        self.ir = net
        self.source = source
        self.filename = filename
        self._nx = None

    @property
    def name(self) -> str:
        return self.ir.name

    @property
    def params(self) -> dict[str, Any]:
        """The net's parameters as this check bound them (`classes`: 1000)."""
        return self.ir.params

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.ir.input_shape

    @property
    def scopes(self) -> dict[str, ir.Scope]:
        return self.ir.scopes

    @property
    def outputs(self) -> list[ir.Output]:
        return self.ir.outputs

    @property
    def graph(self):
        """The layer graph as a networkx.DiGraph (built on first use)."""
        if self._nx is None:
            self._nx = self.ir.to_networkx()
        return self._nx

    @property
    def layers(self) -> list[str]:
        """Layer names in definition order (the input is not a layer)."""
        return [layer.name for layer in self.ir.body()]

    def layer(self, name: str) -> ir.Layer:
        """One layer (or the input, `layer("input")`)."""
        return self.ir.layers[name]

    def describe(self, name: str) -> str:
        """A layer as the language writes it, defaults left out: `conv(64, 7x7, stride=2, pad=3)`."""
        return self.ir.layers[name].describe()

    def total_params(self, train: bool = True) -> int:
        """Learnable parameters; with `train=False`, without training-only heads."""
        return self.ir.totals(train).params

    def total_macs(self, train: bool = True) -> int:
        return self.ir.totals(train).macs

    def summary(self, batch: int = 1):
        """Per-layer shapes, parameters, MACs and activation memory, with totals."""
        from .summary import Summary
        return Summary.of(self, batch)

    def compile(self, device: Any = "cpu", dtype: Any = None, weights: Any = None, init: str = "default", *,
                optimize: Optional[str] = None, max_params: int = DEFAULT_MAX_PARAMS):
        """The net as a torch module: a `torch.fx.GraphModule` with one submodule per layer,
        named by its scope path (`state_dict` keys like `inception3a.branch2.conv2.weight`),
        and a generated straight-line `forward` (see `module.code`).

        In training mode (torch's default) a net with training-only heads returns a named
        tuple of every output (`out.fc`, `out.aux1`); in evaluation mode only the main output
        and any deploy heads.

        - `device`: `"cpu"`, `"cuda"`, `"cuda:1"`, `"auto"` (CUDA when present) or a torch.device;
        - `dtype`: None (float32), a torch dtype or its name (`"float16"`, `"bfloat16"`);
        - `weights`: a `.safetensors` file, a `.pt`/`.pth` state_dict (read with
          `torch.load(weights_only=True)`) or a mapping of names to tensors. Keys match by
          name, the rest by definition order; every shape is checked before anything is
          loaded (`netdsl.backend.WeightsError` names the first tensor that disagrees);
        - `init`: `"default"` (each torch layer's own initialisation), `"none"` (memory is
          allocated, values are undefined: for weights loaded afterwards) or `"meta"` (nothing
          allocated: with `weights`, the fastest way to load a net, which takes the weights'
          tensors as they are, shared with a mapping passed in (whose values are then not read:
          no NaN check), as torch's `load_state_dict(assign=True)` does; without, a module on
          the meta device, for inspecting shapes or `to_empty()` later);
        - `optimize`: None, `"fuse"` or `"compile"`: an inference-only module (see
          `netdsl.backend.optimize`); `"auto"`: the fastest of the inference paths for this
          device and dtype at batch 1 whose outputs equal eager's (torch.compile left out: see
          `netdsl.backend.autotune.choose` for other batches and for it), remembered per net;
        - `max_params`: nets with more parameters are refused before anything is allocated.

        Raises `netdsl.backend.CompileError` for options it cannot honour (no CUDA, say).
        """
        from .backend import compile_network
        from .backend.optimize import optimize as optimize_module

        module = compile_network(self, device, dtype, weights, init, max_params)
        if optimize == "auto":
            from .backend.autotune import choose
            from .backend.runtime import example_input
            parameter = next(module.parameters(), None)
            x = example_input(self, 1, parameter.device if parameter is not None else None,
                              parameter.dtype if parameter is not None else None)
            return choose(module, self, x)[0]
        return module if optimize is None else optimize_module(module, optimize)

    def eject(self) -> str:
        """The net as a standalone PyTorch source file (a string): it imports torch, never netdsl,
        and holds one `nn.Module` class per block definition (its parameters `__init__`'s; a block
        that cannot be one class gets one per distinct structure of its instances) and one for
        the net, named in CamelCase (`resnet18` is `Resnet18`). Its `state_dict` keys are
        `compile()`'s, so either loads the other's weights, and its outputs are the compiled
        module's in evaluation and training mode (a named tuple with the training-only heads);
        the net's forward lines end with the shape each gives. `netdsl eject FILE -o model.py`
        writes it; see netdsl.eject."""
        from .eject import eject
        return eject(self)

    def diff(self, other: "Network"):
        """How `other` differs from this net: layers added, removed, renamed and changed, per
        scope, with the deltas of shapes, parameters and MACs (a `netdsl.diff.NetDiff`;
        `print()` it, or `.to_dict()`; `.equal` when the architectures are the same). See
        netdsl/diff.py for how layers are paired."""
        from .diff import diff
        return diff(self, other)

    def to_dot(self, depth: Optional[int] = 1, rankdir: str = "TB", *, fold_activations: bool = True,
               fold_repeats: bool = False, max_nodes: Optional[int] = None, **figure):
        """The diagram as a `graphviz.Digraph`; `str()` or `.source` is the DOT text. `depth` as in
        `summary` (None: every layer), `rankdir` "TB" (top to bottom) or "LR"; `max_nodes` refuses
        larger diagrams (`netdsl.render.DiagramTooLarge`) before writing them; `columns=` and
        `legend=` as `netdsl.render.to_digraph`; see netdsl.render."""
        from .render import diagram
        return diagram(self, depth=depth, rankdir=rankdir, fold_activations=fold_activations,
                       fold_repeats=fold_repeats, max_nodes=max_nodes, **figure)

    def render(self, path: os.PathLike | str, depth: Optional[int] = 1, rankdir: str = "TB", **options) -> Path:
        """Write the diagram to `path`, in the format its extension names (.svg, .png, .pdf, or
        .gv for DOT text); needs Graphviz's `dot` for all but .gv. Returns the path."""
        from .render import MAX_NODES, output_format, save

        # a picture is refused before its DOT is written when dot would not be given it anyway
        bound = options.pop("max_nodes", MAX_NODES) if output_format(path) is not None else None
        return save(self.to_dot(depth, rankdir, max_nodes=bound, **options), path,
                    max_nodes=bound if bound is not None else MAX_NODES)

    def _repr_svg_(self) -> Optional[str]:
        """The diagram, inline in a Jupyter notebook (None without Graphviz: the notebook
        falls back to the text repr)."""
        from .render import GraphvizFailed, GraphvizMissing, svg
        try:
            return svg(self.to_dot())
        except (GraphvizMissing, GraphvizFailed):
            return None

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        return f"<Network {self.name}: input {shape}, {len(self.layers)} layers, {self.total_params():,} params>"


def loads(text: str, /, filename: str = "<string>", *, max_layers: int = DEFAULT_MAX_LAYERS,
          max_bytes: int = DEFAULT_MAX_BYTES, **params: Any) -> Network:
    """Parse and check a network from text. Other keyword arguments override the net's
    parameters (`loads(text, classes=10)`): numbers, booleans, tuples of ints, or strings for
    bare words (`pad="same"`). Raises `NetDSLError` listing every mistake. Text longer than
    `max_bytes` characters is refused (E104)."""
    if len(text) > max_bytes:
        raise _too_large(f"the text is {len(text):,} characters, over the limit of {max_bytes:,}", filename)
    return _check(text.removeprefix("\ufeff"), filename, params, max_layers)


def load(path: os.PathLike | str, /, *, max_layers: int = DEFAULT_MAX_LAYERS, max_bytes: int = DEFAULT_MAX_BYTES,
         **params: Any) -> Network:
    """Parse and check the network in the file at `path`; see `loads`. A file larger than
    `max_bytes` is refused (E104) without being read."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large(f"the file is {size:,} bytes, over the limit of {max_bytes:,}", str(path))
    with path.open("rb") as f:
        text = read_source(f, str(path), max_bytes)
    return _check(text, str(path), params, max_layers)


def read_limited(stream: BinaryIO, max_bytes: int) -> bytes:
    """At most `max_bytes + 1` bytes of `stream`, in chunks: one read of that size would
    allocate it up front, and fail for limits near the largest index."""
    chunks, total = [], 0
    while total <= max_bytes:
        chunk = stream.read(min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_source(stream: BinaryIO, filename: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The text of a .net file from a binary stream (a file, standard input), reading at most
    one byte past `max_bytes`, so a huge file (or an endless stream) is refused (E104) quickly."""
    data = read_limited(stream, max_bytes)
    if len(data) > max_bytes:
        raise _too_large(f"the file is larger than the limit of {max_bytes:,} bytes", filename)
    return decode(data, filename)


def _too_large(message: str, filename: str) -> NetDSLError:
    # about the file as a whole: located by its name alone, no line of it is shown
    diag = Diagnostic(codes.FILE_TOO_LARGE, message,
                      help="a net is a few kilobytes; raise the limit with `max_bytes=` or `--max-bytes` "
                           "if this really is one")
    return NetDSLError([diag], "", filename)


def decode(data: bytes, filename: str) -> str:
    """The text of a .net file's bytes: UTF-8, a leading byte-order mark dropped; anything
    else is diagnosed (E103) at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        line_start = data.rfind(b"\n", 0, e.start) + 1
        # columns count characters, as everywhere else: what precedes the bad byte is valid UTF-8
        col = len(data[line_start:e.start].decode("utf-8-sig")) + 1
        diag = Diagnostic(codes.NOT_TEXT, f"the file is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                          Span(line, col, line, col + 1), help="save it as UTF-8 text")
        shown = data.decode("utf-8-sig", errors="replace")  # the excerpt shows the bad byte as �
        raise NetDSLError([diag], shown, filename) from None


def _check(text: str, filename: str, overrides: Mapping[str, Any], max_layers: int) -> Network:
    if max_layers < 1:
        raise ValueError(f"max_layers must be at least 1, got {max_layers}")
    key = (text, filename, tuple(sorted(overrides.items())), max_layers)
    try:
        net = _CHECKED.get(key)
    except TypeError:  # an override that cannot be a key (a list): checked every time
        return _pipeline(text, filename, overrides, max_layers)
    if net is not None:
        return Network(net, text, filename)
    network = _pipeline(text, filename, overrides, max_layers)
    if len(network.ir.layers) <= _CHECKED_MAX_LAYERS:
        _CHECKED[key] = network.ir
    while len(_CHECKED) > _CHECKED_SIZE:
        del _CHECKED[next(iter(_CHECKED))]  # the oldest: a dict keeps insertion order
    return network


# Checked nets by what decides them (text, file name, overrides, layer budget): loading a file
# again in one process, as a sweep that builds a net per trial or a notebook cell does, reuses its IR, which
# nothing changes after the check. A file that fails is checked again each time (its errors are
# not kept). A few nets only, of a real net's size: an editor's server checks a new text on every
# key, and a generated net of 100,000 layers would stay in memory after it.
_CHECKED: dict[tuple, ir.Net] = {}
_CHECKED_SIZE = 8
_CHECKED_MAX_LAYERS = 5_000  # torchvision's largest nets have about 1,000


@ir.without_gc  # a third of the time on large nets, and superlinear, with the collector on
def _pipeline(text: str, filename: str, overrides: Mapping[str, Any], max_layers: int) -> Network:
    program, syntax_errors, damage = parser.parse_recovering(text)
    if program is None:
        raise NetDSLError(syntax_errors, text, filename)
    bag = DiagnosticBag()
    lowered = None
    try:
        # lowering infers each layer's shape as it makes it (netdsl/shapes.py)
        lowered = lower(program, bag, overrides, max_layers, damage)
    except RecursionError:
        bag.error(codes.NET_TOO_LARGE, "the net is nested too deeply to check",
                  help="flatten some of its nesting (blocks within blocks, branches within branches)")
    if syntax_errors:
        # the parts that parsed, checked: their mistakes join the syntax errors, but not what
        # only the cut parts would have settled (a label, the input, the one net), and the
        # partial net of a repaired text is not the file's
        kept = [d for d in bag.items if not _settled_by_cut_parts(d, damage)]
        raise NetDSLError(syntax_errors + kept, text, filename, bag.truncated)
    if bag:
        raise NetDSLError(bag.items, text, filename, bag.truncated, partial=lowered)
    return Network(lowered, text, filename)


def _settled_by_cut_parts(d: Diagnostic, damage: parser.Damage) -> bool:
    """Could the parts cut out after a syntax error have made this report wrong?"""
    if d.code == codes.INPUT_DECLARATION:
        return damage.may_define(INPUT.name)  # the declaration's keyword is the op's name
    if d.code == codes.NOT_ONE_NET:
        return damage.cut_definition
    if d.code == codes.UNDEFINED_NAME and d.message.startswith("no layer `"):
        # a layer or scope that may have been labelled in a cut part
        return damage.may_define(d.message.split("`")[1].split(".")[0])
    return False
