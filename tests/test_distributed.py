"""`metarl.distributed` on a real gloo process group of 2 local processes."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from metarl import distributed as D
from metarl.errors import UsageError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("num_tasks,size", [(8, 2), (5, 2), (7, 3), (3, 3), (1, 1), (33, 4)])
def test_shard_covers_rows_once_in_rank_order(num_tasks: int, size: int) -> None:
    slices = [D.shard(num_tasks, D.World(r, size)) for r in range(size)]
    rows = [i for s in slices for i in range(num_tasks)[s]]
    assert rows == list(range(num_tasks))
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert sizes == D.shard_sizes(num_tasks, size)
    assert sum(D.local_weight(num_tasks, D.World(r, size)) for r in range(size)) == pytest.approx(1)


def test_shard_refuses_fewer_tasks_than_ranks() -> None:
    with pytest.raises(UsageError, match="num_tasks=1 is smaller than the 2 processes"):
        D.shard(1, D.World(1, 2))


def test_one_process_is_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert D.init_world(torch.device("cpu")) == D.World() and D.get_world().is_main
    t = torch.arange(6.0).reshape(2, 3)
    assert D.all_reduce_(t) is t and D.gather_rows(t, 2) is t
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 4.0)
    D.sync_grads_([p], 0.5)
    assert torch.equal(p.grad, torch.full((3,), 2.0))


def _worker(rank: int, size: int, port: int, queue: mp.Queue[object]) -> None:
    os.environ.update(
        WORLD_SIZE=str(size), RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    world = D.init_world(torch.device("cpu"))
    assert D.init_world(torch.device("cpu")) == world  # idempotent
    out: dict[str, object] = {"world": (world.rank, world.size)}
    # all_reduce_: in place SUM
    t = torch.tensor([1.0, 2.0]) * (rank + 1)
    out["sum"] = D.all_reduce_(t).tolist()
    # sync_grads_: weighted local means -> the global mean; None counts as zero; a parameter
    # no rank has a gradient for stays None. num_tasks = 5 rows, row i has gradient i + 1.
    a = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(3))
    c = torch.nn.Parameter(torch.zeros(1))
    rows = D.shard(5)
    local = torch.arange(5.0)[rows] + 1
    a.grad = torch.full((2, 2), float(local.mean()))
    b.grad = torch.ones(3) if rank == 0 else None
    D.sync_grads_([a, b, c], D.local_weight(5))
    out["a"] = a.grad.tolist()
    out["b"] = b.grad.tolist() if b.grad is not None else None
    out["c"] = c.grad
    # gather_rows: uneven rows along dim 0 and along dim -1 (curves [B + 1, tasks])
    mine = torch.arange(5.0)[rows]
    out["rows"] = D.gather_rows(mine[:, None].repeat(1, 2), 5).tolist()
    out["cols"] = D.gather_rows(mine[None, :].repeat(3, 1), 5, dim=-1).tolist()
    out["weighted"] = D.weighted_mean({"loss": float(local.mean())}, D.local_weight(5))
    before = D.comm_seconds()
    D.barrier()
    out["timed"] = D.comm_seconds() > before > 0
    D.close_world()
    queue.put((rank, out))


def test_collectives_on_gloo() -> None:
    size = 2  # 5 rows on 2 ranks: an uneven split (3 + 2)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = mp.spawn(
        _worker, args=(size, free_port(), queue), nprocs=size, join=True, start_method="spawn"
    )
    del procs
    results = dict(queue.get(timeout=30) for _ in range(size))
    rows = list(range(5))
    for rank, out in results.items():
        assert out["world"] == (rank, size)
        total = size * (size + 1) / 2
        assert out["sum"] == [total, 2 * total]
        assert out["a"] == [[3.0, 3.0], [3.0, 3.0]]  # mean of 1..5
        assert out["b"] == pytest.approx([D.local_weight(5, D.World(0, size))] * 3)  # rank 0's
        assert out["c"] is None
        assert out["rows"] == [[float(i), float(i)] for i in rows]
        assert out["cols"] == [[float(i) for i in rows]] * 3
        assert out["weighted"]["loss"] == pytest.approx(3.0)
        assert out["timed"] is True
