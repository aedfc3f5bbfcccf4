"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NETS = ROOT / "nets"
# a small net with every construct the backend treats apart: a named scope, concat, add, a
# training-only head, dropout (tests/test_backend.py, tests/test_performance.py)
SMALL = """
net small(classes = 5) {
    input 3x16x16
    stem: { conv(8, 3, pad=1)  batchnorm  relu }
    concat { conv(4, 1) | maxpool(3, stride=1, pad=1)  conv(4, 1) }
    add { identity | conv(8, 3, pad=1)  batchnorm }
    relu
    aux: train head { global_avgpool  flatten  linear(classes) }
    global_avgpool  flatten  dropout(0.5)
    fc: linear(classes)
}
"""

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


def randomise(module, seed: int = 0):
    """Every floating parameter and buffer drawn at random (buffers positive: they may be
    variances), so that no check passes on an initialisation's ones and zeros (BatchNorm's
    statistics and affine parameters, say)."""
    import torch  # here: most tests never need it

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        for b in module.buffers():
            if b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
    return module


# torchvision's BasicBlock under torchvision's names (README, "Names that match PyTorch"): the
# naming forms' tests and eject's build ResNet-18 from it.
BASIC_BY_NAME = """\
block basic(planes, stride = 1) {
    add inline {
        conv1: conv(planes, 3, stride=stride, pad=1, bias=false)  bn1: batchnorm  relu: relu
        conv2: conv(planes, 3, pad=1, bias=false)  bn2: batchnorm
      | if stride != 1 or in_channels != planes {
            downsample: seq { conv(planes, 1, stride=stride, bias=false)  batchnorm }
        }
    }
    relu
}
"""
