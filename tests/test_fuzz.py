"""Mutation fuzzing, bounded: a fixed number of seeded mutations of every net in nets/, each of
which must end, within a second, in a valid net or in located errors (tests/fuzzing.py says
what counts as a failure). Inputs that once failed are kept in tests/fuzz_regressions/ with
the outcome they must have now. bench/fuzz.py runs the same for longer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import net_files
from fuzzing import BUDGET_S, cases, run

CASES_PER_FILE = 40
SEED = 20261125
REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
EXPECTED = json.loads((REGRESSIONS / "expected.json").read_text())


@pytest.mark.parametrize("path", net_files(), ids=lambda p: p.name)
def test_mutations_of_each_net_end_in_a_verdict_within_budget(path):
    outcomes = []
    for case in cases(path.name, path.read_bytes(), SEED, CASES_PER_FILE):
        outcome = run(case.data)
        assert outcome.failure is None, (case.name, case.mutations, case.data[:2000], outcome.failure)
        outcomes.append(outcome)
    assert len(outcomes) == CASES_PER_FILE
    assert max(o.seconds for o in outcomes) < BUDGET_S
    # the mutations must really produce both kinds of verdict, or the run proves little
    assert any(o.result == "ok" for o in outcomes) and any(o.result != "ok" for o in outcomes)


def test_every_regression_file_has_an_expected_outcome():
    assert sorted(p.name for p in REGRESSIONS.glob("*.net")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_regression(name):
    outcome = run((REGRESSIONS / name).read_bytes())
    assert outcome.failure is None, outcome.failure
    assert outcome.result == EXPECTED[name]
