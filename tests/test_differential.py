"""Differential test: random valid nets (tests/random_nets.py), each compiled and run every way
netdsl offers (tests/differential_check.py says how): netdsl accepts it and names and shapes
it as the generator's model does; every layer's runtime shape is the inferred one
(`check_run`); the module's parameters are the summary's; the generated forward equals the
checked pass; a training step runs (every output, backward, SGD) with finite gradients;
`optimize="fuse"` and `torch.jit.script` give the module's outputs; and torch refuses the
layers the registry's shape rules refused while the net was generated. 200 seeded nets, then every
minimised failure kept in tests/differential_regressions/. bench/differential.py is the long
run (each net in a child process, failures minimised and written there).

The nets run in this process. The known native crashes of torch are kept out of it: the
generator avoids them (the switches at the top of tests/random_nets.py), and a regression file
that falls in one of them runs in a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

import random_nets
from differential_check import FAILURES, check, check_refusals
from netdsl.ops import REGISTRY, REQUIRED, Bool
from netdsl.parser import parse

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),
              pytest.mark.filterwarnings("ignore:The TorchScript type system:UserWarning"),
              pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")]

COUNT = 200
SEED = 20261202
REGRESSIONS = Path(__file__).parent / "differential_regressions"
TESTS = Path(__file__).parent

CONSTRUCTS = ["join", "labelled join", "block", "block call", "block called with different arguments",
              "block parameter default", "block calling a block", "repeat", "labelled repeat",
              "repeat count from a parameter", "head", "train head", "head from", "head from a dotted name",
              "head of one call", "group", "net parameter", "parameter arithmetic",
              "label like an automatic name", "a layer on a vector"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The nets are tiny: a second thread only waits for the first (and, on a busy machine,
    # for its time slice), which made the run six times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus() -> list[random_nets.RandomNet]:
    return [random_nets.generate(SEED + i) for i in range(COUNT)]


def test_the_nets_cover_every_op_attribute_and_construct(corpus):
    seen: Counter = Counter()
    for net in corpus:
        seen.update(set(net.features))
    missing = []
    for name, spec in REGISTRY.items():
        if spec.source:
            continue
        missing += [f"op:{name}"] if not seen[f"op:{name}"] else []
        for attr in spec.attrs:
            wanted = [f"attr:{name}.{attr.name}"]
            if isinstance(attr.type, Bool):
                wanted += [f"attr:{name}.{attr.name}=true", f"attr:{name}.{attr.name}=false"]
            wanted += [f"attr:{name}.{attr.name}={s}" for s in getattr(attr.type, "symbols", ())]
            missing += [w for w in wanted if not seen[w] and not (attr.default is REQUIRED and w == wanted[0])]
        if spec.join:
            missing += [f"vector {name}"] if not seen[f"vector {name}"] else []
    missing += [c for c in CONSTRUCTS if not seen[c]]
    assert not missing, f"never generated in {COUNT} nets: {missing}"


def test_the_generator_avoids_the_known_crashes_and_netdsl_refuses_none(corpus):
    for net in corpus:
        assert not net.model.crash_classes, (net.seed, net.model.crash_classes)


@pytest.mark.parametrize("index", range(COUNT))
def test_random_net(corpus, index):
    net = corpus[index]
    verdict = check(net.text, f"{net.name}.net")
    assert verdict.kind == "ok", f"{FAILURES.get(verdict.kind, verdict.kind)}: {verdict.detail}\n" \
                                 f"{verdict.codes or ''}\n{net.text}"
    judged = check_refusals(net.refusals)  # the layers the registry refused on the way: torch refuses them too
    assert judged.kind == "ok", judged.detail


# --- the minimised failures of long runs ----------------------------------------------------

def regressions() -> list[Path]:
    return sorted(REGRESSIONS.glob("*.net"))


def header(path: Path) -> dict[str, str]:
    """`# key: value` lines at the top of a regression file: kind (what failed), status (open or
    fixed), expect (for a fixed one: its verdict now, `ok` unless said), found, detail."""
    fields = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        fields[key.strip()] = value.strip()
    return fields


def run_isolated(path: Path) -> tuple[str, str]:
    """The verdict of one file, checked in a child process (it may crash)."""
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import torch; torch.set_num_threads(1); "
            "from differential_check import check; v = check(open(sys.argv[3]).read(), sys.argv[3]); "
            "print(json.dumps([v.kind, v.detail]))")
    done = subprocess.run([sys.executable, "-c", code, str(TESTS.parent), str(TESTS), str(path)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode < 0:
        return "crash", f"signal {-done.returncode}"
    if done.returncode != 0:
        return "oracle", done.stderr[-2000:]
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def test_every_regression_says_what_it_is():
    for path in regressions():
        fields = header(path)
        assert fields.get("kind") in FAILURES and fields.get("status") in ("open", "fixed"), path.name


@pytest.mark.parametrize("path", regressions(), ids=lambda p: p.name)
def test_regression(path):
    """A fixed failure must stay fixed; an open one must still fail (until it is fixed: then
    mark the file `status: fixed`)."""
    fields = header(path)
    text = path.read_text()
    try:
        crashes = random_nets.simulate(parse(text)).crash_classes & random_nets.NATIVE_CRASHES
    except random_nets.Invalid:
        crashes = set()
    if crashes or fields["kind"] in ("crash", "timeout"):
        kind, detail = run_isolated(path)
    else:
        verdict = check(text, path.name)
        kind, detail = verdict.kind, verdict.detail
    if fields["status"] == "fixed":
        expect = fields.get("expect", "ok")   # `invalid`: fixed by netdsl refusing the net
        assert kind == expect, f"{path.name} fails again: {kind}: {detail}"
    elif kind == "ok":
        pytest.fail(f"{path.name} no longer fails ({fields['kind']}): mark it `status: fixed`")
    else:
        pytest.xfail(f"open: {fields['kind']}: {fields.get('detail', '')}")
