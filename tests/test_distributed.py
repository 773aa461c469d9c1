"""`metarl.distributed` without a process group: `shard`, and the one-process identities. The
collectives on a real 2-process gloo group are checked in the same two processes as the
trainer (`tests/test_distributed_train.py::test_collectives_on_gloo`), to start them once."""

from __future__ import annotations

import socket

import pytest
import torch

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


def test_meta_batch_rows_outside_and_inside_a_batch() -> None:
    assert D.batch_rows(4) == (slice(0, 4), 4) and D.batch_weight() == 1.0
    with D.meta_batch(5) as rows:
        assert rows == slice(0, 5) and D.batch_rows(5) == (slice(0, 5), 5)
        assert D.batch_rows(2) == (slice(0, 2), 2)  # another batch size: its own whole batch
        assert D.batch_weight() == 1.0
    assert D.batch_rows(5) == (slice(0, 5), 5)


def test_a_bad_timeout_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(D.TIMEOUT_ENV, "soon")
    with pytest.raises(UsageError, match="METARL_DIST_TIMEOUT='soon' must be a positive number"):
        D.timeout_seconds()
    monkeypatch.setenv(D.TIMEOUT_ENV, "2.5")
    assert D.timeout_seconds() == 2.5
