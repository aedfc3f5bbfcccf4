"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NETS = ROOT / "nets"
LECTURE_NETS = ["lenet5", "alexnet", "vgg16", "vgg19", "googlenet"]


def net_files() -> list[Path]:
    return sorted(NETS.rglob("*.net"))


@pytest.fixture
def run_cli():
    """Run `python -m netdsl ARGS` in a subprocess; returns the CompletedProcess."""
    import subprocess

    def run(*args: str, cwd: Path = ROOT, input_text: str | None = None):
        return subprocess.run([sys.executable, "-m", "netdsl", *map(str, args)], cwd=cwd, input=input_text,
                              capture_output=True, text=True, timeout=300)
    return run
