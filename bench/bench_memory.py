"""netdsl's memory model (netdsl/memory.py) against torch's own measurement, for every net in
nets/ (netdsl/backend/measure.py says how torch is measured). Prints a table; exits 1 where a
figure is more than 10 % off.

    .venv/bin/python bench/bench_memory.py [--batch B] [NET ...]

Columns: the peak of inference (model, profiler with kernels' workspaces set apart, ratio, and
the profiler's raw peak with the workspaces counted in), and the activations saved for backward
by a training forward (model, saved_tensors_hooks, ratio). With CUDA, also the peak of the
profiler's CUDA allocations (workspaces apart) and `torch.cuda.max_memory_allocated` (which
counts cuDNN's workspaces and max pooling's indices).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import netdsl  # noqa: E402
from netdsl.backend.measure import cuda_peak, inference_peak, saved_for_backward  # noqa: E402
from netdsl.memory import memory  # noqa: E402

TOLERANCE = 0.10


def measure(path: Path, batch: int) -> dict:
    net = netdsl.load(path)
    model = memory(net, batch)
    torch.manual_seed(0)
    module = net.compile()
    x = torch.randn(batch, *net.input_shape)
    peak = inference_peak(module, x)
    row = {"net": str(path.relative_to(ROOT)), "peak": model.peak, "measured_peak": peak.tensors,
           "with_workspace": peak.workspace, "saved": model.saved, "measured_saved": saved_for_backward(module, x)}
    if torch.cuda.is_available():
        on_gpu, xc = net.compile(device="cuda"), x.cuda()
        row["cuda_tensors"] = inference_peak(on_gpu, xc).tensors
        row["cuda_peak"] = cuda_peak(on_gpu, xc)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nets", nargs="*", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    paths = [p.resolve() for p in args.nets] or sorted((ROOT / "nets").rglob("*.net"))
    kib = lambda n: f"{n / 1024:,.0f}"  # noqa: E731
    print(f"batch {args.batch}, float32, KiB; ratio = model / torch")
    width = max(len(str(p.relative_to(ROOT))) for p in paths)
    print(f"{'net':{width}} {'peak':>8} {'torch':>8} {'ratio':>6} {'+work':>8}   {'saved':>8} {'torch':>8} {'ratio':>6}"
          + ("  cuda: profiler (ratio), max_memory_allocated" if torch.cuda.is_available() else ""))
    bad = 0
    for path in paths:
        r = measure(path, args.batch)
        ratios = (r["peak"] / r["measured_peak"], r["saved"] / r["measured_saved"])
        bad += any(abs(q - 1) > TOLERANCE for q in ratios)
        cuda = ""
        if "cuda_peak" in r:
            ratios += (r["peak"] / r["cuda_tensors"],)
            cuda = f"  {kib(r['cuda_tensors'])} ({ratios[2]:.3f}), allocator {kib(r['cuda_peak'])}"
        print(f"{r['net']:{width}} {kib(r['peak']):>8} {kib(r['measured_peak']):>8} {ratios[0]:6.3f} "
              f"{kib(r['with_workspace']):>8}   {kib(r['saved']):>8} {kib(r['measured_saved']):>8} "
              f"{ratios[1]:6.3f}{cuda}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
