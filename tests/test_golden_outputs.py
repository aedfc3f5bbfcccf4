"""Every net in nets/ (and the examples) gives the same `summary --json`, the same DOT text at
several depths and the same diagnostics as when these golden files were written: refactors of
the IR, the registry or the renderer must not change what users see.

After a deliberate change of output, regenerate and review the diff:

    NETDSL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_outputs.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import netdsl
from conftest import ROOT, net_files

GOLDEN = Path(__file__).parent / "golden" / "nets"
FAILING = [ROOT / "examples" / "mistakes.net", *sorted((ROOT / "tests" / "diagnostics").glob("*.net"))]


def _outputs(path: Path) -> dict[str, str]:
    net = netdsl.load(path)
    return {
        "summary.json": net.summary().to_json() + "\n",
        "summary.txt": net.summary().table(depth=None) + "\n",
        "depth1.gv": net.to_dot(depth=1).source,
        "depth2.gv": net.to_dot(depth=2).source,
        "expanded.gv": net.to_dot(depth=None).source,
        "nofold-lr.gv": net.to_dot(depth=None, rankdir="LR", fold_activations=False).source,
        "repeats.gv": net.to_dot(depth=2, fold_repeats=True).source,
    }


def _failure_outputs(path: Path) -> dict[str, str]:
    from netdsl.render import failure_diagram

    with pytest.raises(netdsl.NetDSLError) as info:  # named relative to the checkout, wherever it is
        netdsl.loads(path.read_text(encoding="utf-8"), filename=str(path.relative_to(ROOT)))
    out = {"errors.txt": str(info.value) + "\n"}
    dot = failure_diagram(info.value, depth=None)
    if dot is not None:
        out["expanded.gv"] = dot.source
    return out


def _compare(stem: str, outputs: dict[str, str]) -> None:
    for suffix, text in outputs.items():
        path = GOLDEN / f"{stem}.{suffix}"
        if os.environ.get("NETDSL_UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"no golden file {path}: regenerate with NETDSL_UPDATE_GOLDEN=1"
        assert text == path.read_text(encoding="utf-8"), f"{path} differs; regenerate with NETDSL_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("path", net_files(), ids=lambda p: str(p.relative_to(ROOT / "nets")))
def test_net_outputs_unchanged(path):
    _compare(str(path.relative_to(ROOT / "nets").with_suffix("")).replace("/", "-"), _outputs(path))


@pytest.mark.parametrize("path", FAILING, ids=lambda p: p.stem)
def test_failing_outputs_unchanged(path):
    _compare("fail-" + path.stem, _failure_outputs(path))
