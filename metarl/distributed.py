"""Meta-batches split across processes on `torch.distributed` (launched by `torchrun`).

Every rank draws the *whole* meta-batch of `num_tasks` tasks from the run's train generator
(identical on all ranks), keeps its contiguous rows `tasks.select(shard(num_tasks))`, computes
their loss, and the meta-gradients are combined before the optimiser steps:

    world = init_world(device)                 # from torchrun's env (WORLD_SIZE, RANK, ...)
    rows = shard(num_tasks)                    # e.g. 5 tasks on 2 ranks: [0:3] and [3:5]
    loss = local_mean_loss(tasks.select(rows)) # mean over this rank's rows
    loss.backward()
    sync_grads_(params, weight=(rows.stop - rows.start) / num_tasks)  # the global mean
    optimizer.step()                           # identical on every rank

The trainer does this once for every learner: `attach_grad_sync` puts `sync_grads_` in a step
pre-hook of the learner's optimisers, and `meta_batch(num_tasks)` tells a learner that draws
its own random numbers where its rows sit in the batch (`batch_rows`), so its draws equal one
process's. A learner that needs the summed gradient before its step (to clip its global norm)
calls `clip_grad_norm_` or `sync_grads_` itself; the hook does not sum those again.

With one process (no `WORLD_SIZE`, or 1) every function is the identity (`sync_grads_` only
scales by `weight`, which is then 1), so the one-process path does not change.

Gloo on CPU, NCCL on CUDA, chosen from the training device. The process-group timeout
(`METARL_DIST_TIMEOUT` seconds, default 300) bounds how long a rank waits for a peer that
hangs; a failed collective raises `RankLost` (one line, no traceback in the CLI). Time spent
inside the collectives is summed in `comm_seconds()` (the scaling benchmark's communication
column).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from metarl.errors import RankLost, StoppedByRank0, UsageError

TIMEOUT_ENV = "METARL_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory."""
        return self.rank == 0


_world = World()
_comm_seconds = 0.0
_batch: tuple[slice, int] | None = None  # the meta-batch being computed: (rows, num_tasks)
_synced: set[int] = set()  # ids of parameters whose gradients sync_grads_ already summed


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"environment variable {name}={text!r} is not an integer") from None


def timeout_seconds() -> float:
    """The process-group timeout: `METARL_DIST_TIMEOUT` seconds (default 300)."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds")
    return value


def init_world(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment (`WORLD_SIZE`, `RANK`,
    `MASTER_ADDR`, `MASTER_PORT`, `LOCAL_RANK`); gloo when `device` is a CPU, NCCL on CUDA
    (each rank on GPU `LOCAL_RANK`). Idempotent. `World()` when `WORLD_SIZE` is unset or 1."""
    global _world
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        _world = World()
        return _world
    if dist.is_available() and dist.is_initialized():
        _world = World(dist.get_rank(), dist.get_world_size())
        return _world
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed; run with one process")
    rank = _env_int("RANK", 0)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    try:
        dist.init_process_group(
            backend, rank=rank, world_size=size, timeout=timedelta(seconds=timeout_seconds())
        )
    except (RuntimeError, ValueError) as exc:
        raise RankLost(
            f"rank {rank} of {size} could not join the process group ({_first_line(exc)}); "
            f"check MASTER_ADDR/MASTER_PORT (torchrun --rdzv-endpoint) and that every rank started"
        ) from None
    _world = World(dist.get_rank(), dist.get_world_size())
    return _world


def close_world() -> None:
    """Leave the process group (end of a run, tests); the world is one process again."""
    global _world
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _world = World()


def get_world() -> World:
    """The current world (`World()` until `init_world` joined a group of several)."""
    return _world


def shard(num_tasks: int, world: World | None = None) -> slice:
    """The contiguous rows `[start, stop)` of a meta-batch of `num_tasks` this rank computes.

    Sizes differ by at most 1, the first `num_tasks % size` ranks taking the extra row, and the
    slices of all ranks cover `0..num_tasks` once in rank order. UsageError when there are
    fewer tasks than ranks (a rank would have nothing to compute)."""
    w = world or _world
    if num_tasks < w.size:
        raise UsageError(
            f"train.num_tasks={num_tasks} is smaller than the {w.size} processes; every process "
            f"needs a task: raise train.num_tasks to at least {w.size} or use fewer processes"
        )
    base, extra = divmod(num_tasks, w.size)
    start = w.rank * base + min(w.rank, extra)
    return slice(start, start + base + (1 if w.rank < extra else 0))


def shard_sizes(num_tasks: int, size: int) -> list[int]:
    """Rows of every rank, in rank order (`shard` of each rank of a world of `size`)."""
    return [_len(shard(num_tasks, World(r, size))) for r in range(size)]


def local_weight(num_tasks: int, world: World | None = None) -> float:
    """This rank's share of the meta-batch, `local_tasks / num_tasks`: the `weight` that makes
    a mean over local rows, summed over ranks, the mean over the whole meta-batch."""
    return _len(shard(num_tasks, world)) / num_tasks


def _len(s: slice) -> int:
    return int(s.stop) - int(s.start)


def _first_line(exc: BaseException) -> str:
    """The gist of a backend error: its first line, without gloo's source location and
    advice (`[.../pair.cc:537] Read error ...: Connection reset by peer. This is ...`)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = re.sub(r"^\[[^\]]*\]\s*", "", line)
    return line.split(". This is typically")[0].strip()


def _comm_device(t: torch.Tensor) -> torch.device:
    """Where the backend reduces: the current CUDA device for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _collective(what: str, fn: object, *args: object) -> None:
    """Run one collective, timing it and turning a lost peer into `RankLost`."""
    global _comm_seconds
    started = time.perf_counter()
    try:
        fn(*args)  # type: ignore[operator]
    except (RuntimeError, ValueError) as exc:  # DistBackendError and timeouts are RuntimeErrors
        raise RankLost(
            f"rank {_world.rank} of {_world.size} lost the other processes during {what} "
            f"({_first_line(exc)}): one of them died, was killed or is stuck"
        ) from None
    finally:
        _comm_seconds += time.perf_counter() - started


def all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` (any shape) over ranks in place and return it; the identity with one process."""
    if _world.size == 1:
        return t
    where = _comm_device(t)
    if t.device == where and t.is_contiguous():
        _collective("all_reduce", dist.all_reduce, t)
        return t
    buf = t.detach().to(where).contiguous()
    _collective("all_reduce", dist.all_reduce, buf)
    t.copy_(buf)
    return t


def weighted_mean(values: dict[str, float], weight: float) -> dict[str, float]:
    """Sum over ranks of `weight * value` per key: with `weight = local_weight(num_tasks)` and
    each value a mean over this rank's rows, the mean over the whole meta-batch."""
    if _world.size == 1 or not values:
        return dict(values)
    keys = list(values)
    buf = torch.tensor([float(values[k]) * weight for k in keys], dtype=torch.float64)
    all_reduce_(buf)
    return {k: float(v) for k, v in zip(keys, buf.tolist(), strict=True)}


def sync_grads_(params: Iterable[torch.Tensor], weight: float) -> None:
    """`p.grad *= weight`, then the sum over ranks, for every parameter, in one flat buffer.

    A missing gradient counts as zero; a parameter gets a (summed) gradient if any rank had
    one, and keeps `grad = None` only when no rank did, so optimisers skip exactly the
    parameters one process would skip. With `weight = local_tasks / num_tasks` a mean over
    local tasks becomes the mean over the meta-batch. With one process: the scaling only."""
    params = [p for p in params]
    if _world.size == 1:
        if weight != 1.0:
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(weight)
        return
    if not params:
        return
    ref = next((p.grad for p in params if p.grad is not None), params[0])
    where = _comm_device(ref)
    dtype = torch.promote_types(ref.dtype, torch.float32)
    sizes = [p.numel() for p in params]
    flat = torch.zeros(sum(sizes) + len(params), dtype=dtype, device=where)
    offset = 0
    for i, (p, n) in enumerate(zip(params, sizes, strict=True)):
        if p.grad is not None:
            flat[offset : offset + n].copy_(p.grad.reshape(-1))
            flat[sum(sizes) + i] = 1.0  # "this rank has a gradient for p"
        offset += n
    flat[: sum(sizes)].mul_(weight)
    _collective("sync_grads_", dist.all_reduce, flat)
    _synced.update(id(p) for p in params)
    offset = 0
    for i, (p, n) in enumerate(zip(params, sizes, strict=True)):
        if float(flat[sum(sizes) + i]) > 0:
            value = flat[offset : offset + n].view_as(p).to(device=p.device, dtype=p.dtype)
            if p.grad is None:
                p.grad = value.clone()
            else:
                p.grad.copy_(value)
        offset += n


def gather_rows(t: torch.Tensor, num_rows: int, dim: int = 0) -> torch.Tensor:
    """Every rank's rows of a batch of `num_rows`, concatenated in rank order along `dim`.

    `t` holds this rank's `shard(num_rows)` rows along `dim` (default 0: `[rows, ...]`; an
    adaptation curve `[B + 1, tasks]` passes `dim=-1`); the result has `num_rows` there, on
    `t`'s device, equal on every rank. Uneven shards are padded for the transfer and cut
    again. The identity with one process."""
    if _world.size == 1:
        return t
    dim = dim % t.dim()
    sizes = shard_sizes(num_rows, _world.size)
    if t.shape[dim] != sizes[_world.rank]:
        raise ValueError(
            f"gather_rows: rank {_world.rank} holds {t.shape[dim]} rows along dim {dim}, "
            f"shard({num_rows}) gives it {sizes[_world.rank]}"
        )
    where = _comm_device(t)
    moved = t.detach().movedim(dim, 0).to(where)
    padded = torch.zeros((max(sizes), *moved.shape[1:]), dtype=moved.dtype, device=where)
    padded[: moved.shape[0]].copy_(moved)
    parts = [torch.empty_like(padded) for _ in range(_world.size)]
    _collective("gather_rows", dist.all_gather, parts, padded)
    rows = torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)], dim=0)
    return rows.movedim(0, dim).to(t.device)


@contextlib.contextmanager
def meta_batch(num_tasks: int) -> Iterator[slice]:
    """The block computes this rank's rows `shard(num_tasks)` of a batch of `num_tasks`
    (the trainer's meta-step, one batch of held-out tasks): `batch_rows` and `batch_weight`
    answer for it. Yields the rows."""
    global _batch
    rows, before = shard(num_tasks), _batch
    _batch = (rows, num_tasks)
    try:
        yield rows
    finally:
        _batch = before


def batch_rows(local: int) -> tuple[slice, int]:
    """`(rows, num_tasks)`: where this rank's `local` tasks sit in the whole batch being
    computed, and its size. A learner that draws its own random numbers per task draws them
    for all `num_tasks` (identically on every rank) and keeps `rows`, so the draws equal one
    process's. Outside `meta_batch` (or for another number of tasks): `(slice(0, local),
    local)`, i.e. the learner's batch is the whole batch."""
    if _batch is not None and _len(_batch[0]) == local:
        return _batch
    return slice(0, local), local


def batch_weight() -> float:
    """This rank's share `local / num_tasks` of the batch being computed (1 outside one)."""
    if _batch is None:
        return 1.0
    return _len(_batch[0]) / _batch[1]


def clip_grad_norm_(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` on the *global* gradient: with several ranks the
    gradients (local means) are first combined by `sync_grads_(params, batch_weight())`, so
    the norm is the one of the whole meta-batch and every rank clips alike; the optimiser
    hook of `attach_grad_sync` then does not sum them again. Returns the total norm."""
    params = [p for p in params]
    if _world.size > 1:
        sync_grads_(params, batch_weight())
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def learner_optimizers(learner: Any) -> list[torch.optim.Optimizer]:
    """The optimisers whose steps change a learner's parameters: `learner.optimizers()`
    when it defines it, else `[learner.optimizer]` when it has one, else none."""
    if hasattr(learner, "optimizers"):
        return list(learner.optimizers())
    opt = getattr(learner, "optimizer", None)
    return [opt] if isinstance(opt, torch.optim.Optimizer) else []


def _optimizer_params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


def attach_grad_sync(optimizers: Iterable[torch.optim.Optimizer], weight: float) -> list[Any]:
    """Before every `step()` of each optimiser, sum its parameters' gradients over ranks with
    `sync_grads_(params, weight)` (weight: this rank's share of the meta-batch) -- the one place
    gradients are combined for every learner that steps an optimiser. Gradients a learner
    already combined itself (`sync_grads_`, `clip_grad_norm_`) since their last backward are
    not summed twice. Nothing is attached with one process. Returns the hook handles."""
    if _world.size == 1:
        return []
    handles: list[Any] = []
    for opt in optimizers:
        params = _optimizer_params(opt)

        def before_step(
            o: Any, args: Any, kwargs: Any, params: list[torch.Tensor] = params
        ) -> None:
            if not all(id(p) in _synced for p in params):
                sync_grads_(params, weight)
            _synced.difference_update(id(p) for p in params)

        handles.append(opt.register_step_pre_hook(before_step))
        for p in params:  # a new backward makes a gradient local again
            if p.requires_grad:
                handles.append(p.register_post_accumulate_grad_hook(_forget))
    return handles


def _forget(p: torch.Tensor) -> None:
    _synced.discard(id(p))


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` (any picklable value, tensors included) on every rank; other ranks pass
    anything (None). The identity with one process."""
    if _world.size == 1:
        return obj
    box = [obj if _world.is_main else None]
    _collective("broadcast", dist.broadcast_object_list, box, 0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (nothing with one process); `RankLost` if one is gone."""
    if _world.size > 1:
        _collective("barrier", dist.barrier)


def comm_seconds() -> float:
    """Seconds spent inside this module's collectives since the start (or the last reset)."""
    return _comm_seconds


def reset_comm_seconds() -> None:
    global _comm_seconds
    _comm_seconds = 0.0


__all__ = [
    "World",
    "RankLost",
    "StoppedByRank0",
    "init_world",
    "close_world",
    "get_world",
    "shard",
    "shard_sizes",
    "local_weight",
    "all_reduce_",
    "weighted_mean",
    "sync_grads_",
    "gather_rows",
    "barrier",
    "meta_batch",
    "batch_rows",
    "batch_weight",
    "clip_grad_norm_",
    "learner_optimizers",
    "attach_grad_sync",
    "broadcast_object",
    "comm_seconds",
    "reset_comm_seconds",
]
