"""Train LeNet-5, compiled from `nets/lenet5.net`, to read handwritten digits.

The data is scikit-learn's bundled digits set (1,797 scans of 8x8 pixels, shipped inside the
package: nothing is downloaded), scaled up to the 28x28 input LeNet-5 expects and standardised.
A seeded, stratified fifth of it is held out. The net is the lecture's, sigmoids and average
pools included; a plain PyTorch loop trains it with Adam for 20 epochs, and it reaches 97-99%
held-out accuracy (seeds 0-9) in 10-20 seconds on one CPU thread.

    pip install 'netdsl[examples]'
    python examples/train_lenet_digits.py                       # 20 epochs, seed 0, CPU
    python examples/train_lenet_digits.py --seed 3 --device auto --save lenet5.safetensors

The saved weights load back into the same net: `netdsl.load("nets/lenet5.net").compile(weights=PATH)`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import netdsl
from netdsl.backend import CompileError
from netdsl.backend.weights import save_weights

NET = Path(__file__).resolve().parent.parent / "nets" / "lenet5.net"
EPOCHS = 20  # the docstring's number; tests/test_examples.py holds them together
BATCH = 32
LEARNING_RATE = 5e-3
HELD_OUT = 0.2
SIDE = 28  # LeNet-5's input is 1x28x28


@dataclass
class Split:
    """Standardised images (N x 1 x 28 x 28) and labels, for training and held out."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def digits(seed: int, held_out: float = HELD_OUT) -> Split:
    """The digits at 28x28, split by `seed` with every class in proportion on both sides, and
    standardised with the training images' mean and deviation (the held-out ones stay unseen)."""
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1)  # N x 1 x 8 x 8, values 0-16
    images = F.interpolate(images, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    labels = torch.tensor(data.target)
    train, test = train_test_split(torch.arange(len(labels)), test_size=held_out, random_state=seed,
                                   stratify=data.target)
    mean, std = images[train].mean(), images[train].std()
    return Split((images[train] - mean) / std, labels[train], (images[test] - mean) / std, labels[test])


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.inference_mode():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train(epochs: int = EPOCHS, seed: int = 0, device: str = "cpu", batch: int = BATCH,
          lr: float = LEARNING_RATE, quiet: bool = False, save: Optional[Path] = None) -> float:
    """Train a fresh LeNet-5 on the digits and return its held-out accuracy (0 to 1).
    Everything random (split, initial weights, batch order) follows `seed`."""
    split = digits(seed)
    torch.manual_seed(seed)
    model = netdsl.load(NET, classes=10).compile(device=device)
    where = next(model.parameters()).device
    train_x, train_y = split.train_x.to(where), split.train_y.to(where)
    test_x, test_y = split.test_x.to(where), split.test_y.to(where)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)

    test_acc = 0.0
    progress = tqdm(range(epochs), desc="lenet5", unit="epoch", disable=quiet)
    for _ in progress:
        model.train()
        total_loss, correct = 0.0, 0
        for idx in torch.randperm(len(train_y), generator=order).split(batch):
            idx = idx.to(where)
            logits = model(train_x[idx])
            loss = F.cross_entropy(logits, train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(dim=1) == train_y[idx]).sum().item()
        test_acc = accuracy(model, test_x, test_y)
        progress.set_postfix(loss=f"{total_loss / len(train_y):.3f}", train=f"{correct / len(train_y):.3f}",
                             held_out=f"{test_acc:.3f}")
    if save is not None:
        save_weights(model, save)
    return test_acc


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Train LeNet-5 (nets/lenet5.net) on scikit-learn's digits.")
    ap.add_argument("--epochs", type=int, default=EPOCHS, help=f"passes over the training set (default {EPOCHS})")
    ap.add_argument("--seed", type=int, default=0, help="seeds the split, the initial weights and the batches")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                    help="auto: CUDA when present, else the CPU (default cpu)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for torch (default 1: a net this small gains little from more, and on a "
                         "busy machine threads that wait for each other make it many times slower)")
    ap.add_argument("--save", type=Path, metavar="PATH", help="write the trained weights (.safetensors or .pt)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        ap.error("--epochs and --threads must be at least 1")

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        acc = train(args.epochs, args.seed, args.device, quiet=args.quiet, save=args.save)
    except CompileError as e:  # CUDA asked for but absent, say
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    epochs = f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}"
    print(f"held-out accuracy {acc:.2%} after {epochs} in {seconds:.1f} s (seed {args.seed})")
    if args.save:
        print(f"weights saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
