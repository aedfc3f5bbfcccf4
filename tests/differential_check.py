"""The differential test's oracle: one net run every way netdsl offers, each compared with the
others and with the model of tests/random_nets.py. Shared by tests/test_differential.py (in
process) and bench/differential.py (each net in a child process).

`check(text)` returns a `Verdict`: "ok", "invalid" (netdsl refuses the net and so does the
model: not a failure, what a minimising step often makes), or the first failure, one of
`FAILURES`. `minimise(text, still_fails)` shrinks a failing net (delta debugging on its syntax
tree: items, branches, arguments, definitions dropped; constructs replaced by their contents;
numbers made smaller) while `still_fails(text)` holds.
"""

from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import netdsl
from netdsl import ast
from netdsl.diagnostics import NetDSLError
from netdsl.parser import parse

from random_nets import BATCH, Invalid, simulate, write

TOLERANCE = 1e-5   # max|a - b| <= TOLERANCE * max|b|, float32
LR = 0.01

FAILURES = {
    "refused": "netdsl refused a net that the model accepts",
    "accepted": "netdsl accepted a net that the model refuses",
    "model": "netdsl's layers, shapes, outputs or parameter counts differ from the model's",
    "compile": "Network.compile raised",
    "shapes": "a layer's shape at run time differs from the inferred one (check_run)",
    "run": "torch raised running a net that netdsl accepted",
    "outputs": "the outputs' names, number or shapes differ from the net's",
    "params": "the module's parameter count differs from the summary's",
    "interpreter": "the generated forward differs from the checked (interpreted) pass",
    "train": "the training step raised, or left a parameter or the input without a gradient",
    "nonfinite": "an output or a gradient is not finite (numerics: reported apart from netdsl's bugs)",
    "fuse": "optimize='fuse' raised",
    "fuse-differs": "optimize='fuse' gives other outputs than the module (the folding is wrong)",
    "channels-last-differs": "optimize='fuse' gives other outputs than the module, and so does the module with its "
                             "weights channels_last (torch's channels_last kernels)",
    "script": "torch.jit.script of the module raised",
    "script-differs": "the scripted module gives other outputs than the module",
    "loads-raised": "netdsl.loads raised something other than NetDSLError (a traceback)",
    "refusal-wrong": "the registry's shape rule refused a layer that torch runs (tests/random_nets.Refusal)",
    "crash": "the process died (a native crash)",
    "timeout": "the net took longer than its time limit",
    "generator": "the generator failed (tests/random_nets.py)",
    "oracle": "this file's own code raised (a bug in the test)",
}


@dataclass
class Verdict:
    kind: str                      # "ok", "invalid", or a key of FAILURES
    detail: str = ""
    codes: tuple[str, ...] = ()    # netdsl's error codes, when it refused the net
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.kind not in ("ok", "invalid")


class _Fail(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def _last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip().splitlines()[-1][:500]


def _listed(values) -> list:
    import torch
    return [values] if isinstance(values, torch.Tensor) else list(values)


def _close(got, want, reference=None, scales=None) -> Optional[str]:
    """None when `got` equals `want` (the module's outputs, float32), each output within
    TOLERANCE of its scale, the largest magnitude of the output and of the layers it is
    computed from (`scales`: an output that cancels to nearly 0 keeps the rounding of what it
    came from), plus what float32 rounding alone makes of this net: 8 times `want`'s distance
    from `reference`, the same module in float64 (a badly conditioned net, such as a
    normalisation of nearly constant values, magnifies rounding; a wrong result is far beyond
    both)."""
    import torch
    got, want = _listed(got), _listed(want)
    reference = want if reference is None else _listed(reference)
    if len(got) != len(want):
        return f"{len(got)} outputs where the module gives {len(want)}"
    for i, (a, b, r) in enumerate(zip(got, want, reference)):
        if a.shape != b.shape:
            return f"output {i + 1}: shape {tuple(a.shape)}, the module's {tuple(b.shape)}"
        a, b, r = a.double(), b.double(), r.double()
        finite = torch.isfinite(b)
        same = torch.equal(finite, torch.isfinite(a)) and torch.equal(a[~finite].nan_to_num(), b[~finite].nan_to_num())
        if not same:
            return f"output {i + 1}: not finite in other places (or other infinities) than the module's"
        a, b, r = a[finite], b[finite], r[finite]
        if not b.numel():
            continue
        diff = (a - b).abs().max().item()
        scale = max(b.abs().max().item(), scales[i] if scales else 0.0)
        rounding = (b - r).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).abs().max().item()
        allowed = TOLERANCE * scale + 8 * rounding
        if not diff <= allowed:
            return (f"output {i + 1}: max|a - b| = {diff:.3g} > {allowed:.3g} ({TOLERANCE:g} x scale "
                    f"{scale:.3g}, float32 rounding {rounding:.3g})")
    return None


def _scales(module, x, outputs) -> list[float]:
    """For each of `outputs`: the largest magnitude among the layers it is computed from."""
    import torch
    import torch.fx

    seen: dict[str, float] = {}

    class Magnitudes(torch.fx.Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            info = node.meta.get("netdsl")
            if info is not None and isinstance(value, torch.Tensor) and value.numel():
                seen[info["layer"]] = value.detach().abs().max().item()
            return value

    with torch.no_grad():
        Magnitudes(module, graph=module._graphs[module.training]).run(x)
    scales = []
    for o in outputs:
        stack, done, top = [o.layer], set(), 0.0
        while stack:
            layer = stack.pop()
            if layer.name not in done:
                done.add(layer.name)
                top = max(top, seen.get(layer.name, 0.0))
                stack.extend(layer.inputs)
        scales.append(top)
    return scales


def check(text: str, filename: str = "random.net") -> Verdict:
    """Every check of one net, in order; the first failure is the verdict."""
    start = time.perf_counter()
    try:
        _check(text, filename)
        verdict = Verdict("ok")
    except _Fail as f:
        verdict = Verdict(f.kind, f.detail)
    except _Refused as r:
        verdict = r.verdict
    except Exception:
        verdict = Verdict("oracle", traceback.format_exc()[-2000:])
    verdict.seconds = time.perf_counter() - start
    return verdict


class _Refused(Exception):
    def __init__(self, verdict: Verdict):
        self.verdict = verdict


def _check(text: str, filename: str) -> None:
    try:
        program = parse(text)
    except NetDSLError as e:
        raise _Refused(Verdict("invalid", "does not parse", tuple(sorted({d.code for d in e.diagnostics}))))
    try:
        model = simulate(program)
        model_error = None
    except Invalid as e:
        model, model_error = None, e
    try:
        net = netdsl.loads(text, filename)
    except NetDSLError as e:
        found = tuple(sorted({d.code for d in e.diagnostics}))
        if model_error is not None:
            raise _Refused(Verdict("invalid", str(model_error), found))
        raise _Refused(Verdict("refused", str(e).strip().splitlines()[0][:500], found))
    except Exception as e:
        raise _Fail("loads-raised", traceback.format_exc()[-2000:]) from e
    if model_error is not None:
        raise _Fail("accepted", f"the model refuses it: {model_error}")
    _compare_model(net, model)
    _run(net)


def _compare_model(net, model) -> None:
    layers = {name: net.layer(name).shape for name in ["input"] + net.layers}
    expected = {name: node.shape for name, node in model.layers.items()}
    if layers != expected:
        diff = sorted(set(layers.items()) ^ set(expected.items()))[:6]
        raise _Fail("model", f"layers (name, shape) in one but not the other: {diff}")
    outputs = [(o.name, o.layer.name, o.train_only) for o in net.outputs]
    wanted = [(name, node.name, train) for name, node, train in model.outputs]
    if outputs != wanted:
        raise _Fail("model", f"outputs {outputs}, the model's {wanted}")
    for train in (True, False):
        if net.total_params(train=train) != model.totals(train):
            raise _Fail("model", f"{'training' if train else 'deploy'} params {net.total_params(train=train):,}, "
                                 f"the model's {model.totals(train):,}")


def _run(net) -> None:
    import torch

    from netdsl.backend.export import plain_outputs
    from netdsl.backend.optimize import optimize
    from netdsl.backend.outputs import field_name
    from netdsl.backend.runtime import RuntimeShapeError, check_run, example_input

    torch.manual_seed(0)
    try:
        module = net.compile()
    except Exception as e:
        raise _Fail("compile", _last_line(e)) from None
    x = example_input(net, batch=BATCH)
    try:
        run = check_run(module, net, x)
    except RuntimeShapeError as e:
        raise _Fail("shapes", str(e)) from None
    except Exception as e:
        raise _Fail("run", _last_line(e)) from None
    if run.layers_checked != len(net.layers):
        raise _Fail("shapes", f"{run.layers_checked} layers checked of {len(net.layers)}")
    for o in net.outputs:
        got = run.outputs.get(o.name)
        if got is None or tuple(got.shape) != (BATCH, *o.layer.shape):
            raise _Fail("outputs", f"`{o.name}`: {None if got is None else tuple(got.shape)}, "
                                   f"inferred {(BATCH, *o.layer.shape)}")
    count = sum(p.numel() for p in module.parameters())
    # get_attr: a bare op's parameter (OpSpec.bare)
    deploy_layers = [n for n in module._graphs[False].nodes if n.op in ("call_module", "get_attr")]
    deploy = sum({id(p): p.numel() for n in deploy_layers  # once each: a join's module may hold a bare one
                  for p in ([module.get_parameter(n.target)] if n.op == "get_attr"
                            else module.get_submodule(n.target).parameters(recurse=False))}.values())
    if (count, deploy) != (net.total_params(), net.total_params(train=False)):
        raise _Fail("params", f"module {count:,} ({deploy:,} deploy), summary {net.total_params():,} "
                              f"({net.total_params(train=False):,} deploy)")

    deployed = [o for o in net.outputs if not o.train_only]
    module.eval()
    with torch.no_grad():
        try:
            eager = module(x)
        except Exception as e:
            raise _Fail("run", f"evaluation mode: {_last_line(e)}") from None
    checked = [run.outputs[o.name] for o in deployed]
    problem = _close(eager, checked)
    if problem:
        raise _Fail("interpreter", problem)

    module.train()
    x = x.clone().requires_grad_(True)   # a gradient to compute even when the net learns nothing
    try:
        out = module(x)
    except Exception as e:
        raise _Fail("run", f"training mode: {_last_line(e)}") from None
    outs = [out] if isinstance(out, torch.Tensor) else list(out)
    if len(outs) != len(net.outputs):
        raise _Fail("outputs", f"training mode returns {len(outs)} outputs, the net has {len(net.outputs)}")
    if len(outs) > 1 and tuple(out._fields) != tuple(_fields(net, field_name)):
        raise _Fail("outputs", f"fields {out._fields}, names {[o.name for o in net.outputs]}")
    for o, t in zip(net.outputs, outs):
        if tuple(t.shape) != (BATCH, *o.layer.shape):
            raise _Fail("outputs", f"training mode: `{o.name}` is {tuple(t.shape)}")
    params = list(module.parameters())
    try:
        loss = sum(t.float().square().mean() for t in outs)
        loss.backward()
        if params:
            torch.optim.SGD(params, lr=LR).step()
    except Exception as e:
        raise _Fail("train", _last_line(e)) from None
    if x.grad is None:
        raise _Fail("train", "the input has no gradient")
    if not torch.isfinite(x.grad).all():   # overflow (or a loss that is not finite): numerics
        raise _Fail("nonfinite", "the input's gradient is not finite"
                    + ("" if torch.isfinite(loss) else " (nor is the loss)"))
    x = x.detach()
    for name, p in module.named_parameters():
        if p.grad is None:
            raise _Fail("train", f"`{name}` has no gradient")
        if not torch.isfinite(p.grad).all():
            raise _Fail("nonfinite", f"`{name}`: a gradient is not finite")

    _settle_batchnorm(module)
    module.eval()
    with torch.no_grad():
        want = module(x)
        values = _listed(want)
        if not all(torch.isfinite(v).all() for v in values):
            raise _Fail("nonfinite", "an output in evaluation mode is not finite")
        reference = copy.deepcopy(module).double()(x.double())
        scales = _scales(module, x, deployed)
        try:
            fused = optimize(module, "fuse")
            got = fused(x)
        except Exception as e:
            raise _Fail("fuse", _last_line(e)) from None
        problem = _close(got, want, reference, scales)
        if problem:
            # Whose numbers are they? The same module with its weights channels_last, as fuse
            # stores them, but nothing folded: when it gives fuse's numbers, torch's channels_last
            # kernels differ from its contiguous ones; when not, the folding is wrong.
            laid_out = copy.deepcopy(module).to(memory_format=torch.channels_last)
            if _close(got, laid_out(x), reference, scales) is None:
                raise _Fail("channels-last-differs", problem)
            raise _Fail("fuse-differs", problem)
        try:
            scripted = torch.jit.script(plain_outputs(module))
            got = scripted(x)
        except Exception as e:
            raise _Fail("script", _last_line(e)) from None
        problem = _close(got, want, reference, scales)
        if problem:
            raise _Fail("script-differs", problem)


def _settle_batchnorm(module) -> None:
    """Running statistics for evaluation drawn well away from zero variance (means N(0, 1),
    variances 0.5 to 2): one training step on two examples leaves some variances near 0, and
    evaluation would then magnify float32 rounding by up to 1/sqrt(eps), which no comparison
    of outputs survives."""
    import torch

    generator = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=generator))


def _fields(net, field_name) -> list[str]:
    import collections
    names = [field_name(o.name) for o in net.outputs]
    return list(collections.namedtuple("T", names, rename=True)._fields)


def check_refusals(refusals) -> Verdict:
    """Whether torch refuses each layer the registry refused: building its module, or running
    it on a batch of the input shape, must raise, or give an empty tensor (a transposed
    convolution whose padding eats its whole output: torch returns a size of 0 where netdsl,
    which has no empty tensors, refuses the layer)."""
    import torch

    from netdsl.ops import REGISTRY

    for r in refusals:
        spec = REGISTRY[r.op]
        try:
            module = spec.build([list(s) for s in r.in_shapes], r.attrs)
            with torch.no_grad():
                out = module(torch.randn(BATCH, *r.in_shapes[0]))
        except Exception:
            continue
        if out.numel() == 0 and r.code == "E401":
            continue
        return Verdict("refusal-wrong", f"{r.code} {r.message}: torch runs {r.op} {r.attrs} on "
                       f"{'x'.join(map(str, r.in_shapes[0]))}, giving {'x'.join(map(str, out.shape[1:]))}")
    return Verdict("ok")


# --- minimising ------------------------------------------------------------------------------

def _chunks(items: tuple) -> Iterator[tuple]:
    """`items` with a run of them left out: halves first, then quarters, ..., then single ones."""
    n = len(items)
    size = n // 2
    while size >= 1:
        for i in range(0, n, size):
            yield items[:i] + items[i + size:]
        size //= 2


def _smaller_exprs(e: ast.Expr) -> Iterator[ast.Expr]:
    if isinstance(e, ast.IntLit) and e.value > 1:
        yield ast.IntLit(1)
        if e.value > 2:
            yield ast.IntLit(e.value // 2)
    elif isinstance(e, ast.BinOp):
        yield e.left
        yield e.right
    elif isinstance(e, ast.TupleLit):
        yield e.items[0]
    elif isinstance(e, ast.ShapeLit) and len(e.dims) == 2:
        yield ast.IntLit(e.dims[0])
        yield ast.IntLit(e.dims[1])
    elif isinstance(e, ast.Neg):
        yield e.operand


def _args_variants(args: tuple) -> Iterator[tuple]:
    for i in range(len(args)):
        yield args[:i] + args[i + 1:]
    for i, a in enumerate(args):
        for e in _smaller_exprs(a.value):
            yield args[:i] + (replace(a, value=e),) + args[i + 1:]


def _item_variants(item) -> Iterator[list]:
    """Smaller versions of one item, each a list of items to put in its place."""
    if isinstance(item, ast.InputDecl):
        return
    if isinstance(item, (ast.Group, ast.Repeat)):
        yield list(item.body)
    if isinstance(item, ast.Join):
        for branch in item.branches:
            yield list(branch)
        if len(item.branches) > 2:
            for i in range(len(item.branches)):
                yield [replace(item, branches=item.branches[:i] + item.branches[i + 1:])]
    if getattr(item, "label", None) is not None:
        yield [replace(item, label=None)]
    if isinstance(item, ast.Call):
        for args in _args_variants(item.args):
            yield [replace(item, args=args)]
    elif isinstance(item, ast.Join):
        for i, branch in enumerate(item.branches):
            for smaller in _list_variants(branch):
                yield [replace(item, branches=item.branches[:i] + (smaller,) + item.branches[i + 1:])]
    elif isinstance(item, ast.Repeat):
        for e in _smaller_exprs(item.count):
            yield [replace(item, count=e)]
        for smaller in _list_variants(item.body):
            yield [replace(item, body=smaller)]
    elif isinstance(item, ast.Group):
        for smaller in _list_variants(item.body):
            yield [replace(item, body=smaller)]
    elif isinstance(item, ast.Head):
        if item.source is not None:
            yield [replace(item, source=None)]
        if item.train_only:
            yield [replace(item, train_only=False)]
        if isinstance(item.body, ast.Call):
            for args in _args_variants(item.body.args):
                yield [replace(item, body=replace(item.body, args=args))]
        else:
            for smaller in _list_variants(item.body):
                yield [replace(item, body=smaller)]


def _list_variants(items: tuple) -> Iterator[tuple]:
    keep = 1 if items and isinstance(items[0], ast.InputDecl) else 0
    head, rest = items[:keep], items[keep:]
    for smaller in _chunks(rest):
        yield head + smaller
    for i, item in enumerate(rest):
        for new in _item_variants(item):
            yield head + rest[:i] + tuple(new) + rest[i + 1:]


def variants(program: ast.Program) -> Iterator[ast.Program]:
    """Every one-step smaller version of `program`, the biggest steps first."""
    defs = program.definitions
    for i, d in enumerate(defs):
        if isinstance(d, ast.BlockDef):
            yield replace(program, definitions=defs[:i] + defs[i + 1:])
    for i, d in enumerate(defs):
        for body in _list_variants(d.body):
            yield replace(program, definitions=defs[:i] + (replace(d, body=body),) + defs[i + 1:])
        for j, p in enumerate(d.params):
            yield replace(program, definitions=defs[:i] + (replace(d, params=d.params[:j] + d.params[j + 1:]),)
                          + defs[i + 1:])
            if p.default is not None:
                for e in _smaller_exprs(p.default):
                    params = d.params[:j] + (replace(p, default=e),) + d.params[j + 1:]
                    yield replace(program, definitions=defs[:i] + (replace(d, params=params),) + defs[i + 1:])


def minimise(text: str, still_fails: Callable[[str], bool], budget: int = 500,
             seconds: float = 600.0) -> tuple[str, int]:
    """The smallest text found (greedily) for which `still_fails` holds, and how many
    candidates were tried. Texts are written in the canonical layout (random_nets.write)."""
    program = parse(text)
    best = write(program)
    if best != text and not still_fails(best):
        best = text  # the layout matters (it should not): keep the original
        return best, 1
    tried, start, seen = 0, time.perf_counter(), {best}
    improved = True
    while improved and tried < budget and time.perf_counter() - start < seconds:
        improved = False
        for candidate in variants(program):
            cand = write(candidate)
            if cand in seen:
                continue
            seen.add(cand)
            tried += 1
            if still_fails(cand):
                program, best, improved = candidate, cand, True
                break
            if tried >= budget or time.perf_counter() - start > seconds:
                break
    return best, tried
