"""Compiled modules run under torch's own distributed engine: DistributedDataParallel with two
CPU processes on the gloo backend, as `torchrun --nproc-per-node 2` would start them."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import netdsl

from conftest import NETS

WORLD = 2
BATCH = 8  # per process


def _batch(seed: int):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(WORLD * BATCH, 1, 28, 28, generator=generator), torch.randint(0, 10, (WORLD * BATCH,),
                                                                                      generator=generator)


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        model = DistributedDataParallel(netdsl.load(NETS / "lenet5.net").compile())
        x, y = _batch(1)
        part = slice(rank * BATCH, (rank + 1) * BATCH)
        loss = torch.nn.functional.cross_entropy(model(x[part]), y[part])
        loss.backward()
        torch.save({k: p.grad for k, p in model.module.named_parameters()}, f"{out_dir}/grads{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_ddp_gradients_agree_across_processes_and_with_one_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    grads = [torch.load(tmp_path / f"grads{r}.pt", weights_only=True) for r in range(WORLD)]

    torch.manual_seed(0)
    single = netdsl.load(NETS / "lenet5.net").compile()
    x, y = _batch(1)
    torch.nn.functional.cross_entropy(single(x), y).backward()  # the whole batch in one process

    assert grads[0].keys() == dict(single.named_parameters()).keys()
    for name, p in single.named_parameters():
        assert torch.equal(grads[0][name], grads[1][name]), name  # all-reduced: identical on every rank
        assert torch.allclose(grads[0][name], p.grad, rtol=1e-4, atol=1e-6), name  # = one process, full batch
