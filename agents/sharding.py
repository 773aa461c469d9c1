"""A rank's rows of a meta-batch, for the RL learners under `torchrun` (`metarl.distributed`).

The trainer gives each rank `tasks.select(shard(num_tasks))`: contiguous rows of the whole
meta-batch, inside `metarl.distributed.meta_batch(num_tasks)` (the meta-step, and each batch
of held-out tasks). An RL learner then makes its rank's part of the one-process computation:

- `task_rows(local_tasks)` says where those rows sit (`Rows`: start, count, total), from
  `metarl.distributed.batch_rows`: outside a `meta_batch` (one process, or a call on rank 0
  alone such as a video) the tasks are the whole batch;
- rollouts draw every random number for the *whole* batch and keep the rank's rows
  (`agents.rollout.sample_action`), and seed env copy `i` with `seed + global copy index`,
  so rolling out rows `a:b` gives rows `a:b` of the whole batch's rollout: the same random
  numbers and env seeds, discrete actions and episode flags to the bit, floats to rounding
  (BLAS may round a batched product over fewer rows differently in the last bit);
- every statistic over the batch goes through the helpers below (sums all-reduced, means
  weighted by local / global counts), so every rank takes the same outer step and equals the
  one-process step within float tolerance.

With one process `Rows.sharded` is false and every helper is the identity or the one-process
formula itself, so the one-process numbers do not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from agents.advantages import normalize
from metarl.distributed import all_reduce_, batch_rows


@dataclass(frozen=True)
class Rows:
    """Rows `[start, start + count)` of a batch of `total` (tasks, env copies or trials)."""

    start: int
    count: int
    total: int

    @property
    def sharded(self) -> bool:
        """Part of a larger batch (several ranks): statistics must be all-reduced."""
        return self.count < self.total

    @property
    def weight(self) -> float:
        """`count / total`: a mean over these rows times this, summed over ranks, is the
        mean over the whole batch (exactly 1.0 with one process)."""
        return self.count / self.total

    def scale(self, k: int) -> Rows:
        """The same rows with `k` sub-rows each (tasks -> their `k` env copies or trials)."""
        return Rows(self.start * k, self.count * k, self.total * k)

    def local(self, index: Tensor) -> Tensor:
        """Of global row indices `[M]`, the ones in these rows, as local indices (in order)."""
        keep = (index >= self.start) & (index < self.start + self.count)
        return index[keep] - self.start


def full(num: int) -> Rows:
    """A whole batch of `num` rows (one process, or a call no other rank takes part in)."""
    return Rows(0, num, num)


def task_rows(num_tasks: int) -> Rows:
    """Where this rank's `num_tasks` tasks sit in the batch being computed (all ranks' tasks
    in rank order; `metarl.distributed.meta_batch`); the whole batch outside one. When the
    rows are a shard, the learner's next steps are collectives: every rank takes them."""
    rows, total = batch_rows(num_tasks)
    return Rows(int(rows.start), num_tasks, total)


def sum_(t: Tensor, rows: Rows) -> Tensor:
    """`t` summed over ranks in place (the identity for a whole batch)."""
    return all_reduce_(t) if rows.sharded else t


def gather_counts(local: Tensor, rows: Rows) -> Tensor:
    """Per-row values `[count]` of every rank, as the whole batch's `[total]` (float64, on
    `local`'s device)."""
    out = torch.zeros(rows.total, dtype=torch.float64)
    out[rows.start : rows.start + rows.count] = local.detach().double().cpu()
    return sum_(out, rows).to(local.device)


def global_mean(values: dict[str, float], weight: float, rows: Rows) -> dict[str, float]:
    """Metrics that are means over this rank's part, as means over the whole batch: the sum
    over ranks of `weight * value` (`weight` = this rank's share; `values` as given when
    the batch is whole)."""
    if not rows.sharded or not values:
        return dict(values)
    keys = sorted(values)  # one order on every rank
    buf = torch.tensor([float(values[k]) * weight for k in keys], dtype=torch.float64)
    sum_(buf, rows)
    return {k: float(v) for k, v in zip(keys, buf.tolist(), strict=True)}


def normalize_over(x: Tensor, mask: Tensor | None, rows: Rows, eps: float = 1e-8) -> Tensor:
    """`agents.advantages.normalize(x, mask)` with the mean and population std of the whole
    batch (every rank's valid entries); exactly `normalize` for a whole batch."""
    if not rows.sharded:
        return normalize(x, mask, eps=eps)
    m = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    stats = torch.stack([(x * m).sum(), m.sum()]).double()
    sum_(stats, rows)
    mean = (stats[0] / stats[1].clamp(min=1.0)).to(x.dtype)
    sq = ((x - mean).pow(2) * m).sum().double().reshape(1)
    sum_(sq, rows)
    std = (sq[0] / stats[1].clamp(min=1.0)).sqrt().to(x.dtype)
    out = (x - mean) / (std + eps)
    return out if mask is None else out * m


def moments(x: Tensor, mask: Tensor | None, rows: Rows) -> tuple[float, float, float]:
    """`(count, sum, sum of squares)` of the valid entries of `x` over the whole batch, in
    float64 (for running normalisers)."""
    x = x.detach().double()
    m = torch.ones_like(x) if mask is None else mask.detach().to(x.dtype)
    stats = torch.stack([m.sum(), (x * m).sum(), (x.pow(2) * m).sum()])
    sum_(stats, rows)
    return float(stats[0]), float(stats[1]), float(stats[2])


def minibatches(
    perm: Tensor, chunks: int, rows: Rows, device: torch.device, weights: Tensor | None = None
) -> Iterator[tuple[Tensor, float]]:
    """The minibatches of `perm` (one permutation of the batch's `rows.total` rows, drawn
    alike on every rank), each as (this rank's rows of it, local indices on `device`; their
    share of the minibatch). The share is the fraction of its rows, or of its `weights`
    (`[total]`, e.g. valid steps per trial) where given; a whole batch: all rows, 1.0."""
    for chunk in perm.chunk(chunks):
        if not rows.sharded:
            yield chunk.to(device), 1.0
            continue
        local = rows.local(chunk)
        if weights is None:
            share = len(local) / len(chunk)
        else:
            w = weights.to(chunk.device)
            share = float(w[local + rows.start].sum() / w[chunk].sum().clamp(min=1.0))
        yield local.to(device), share


def sum_shares(sums: dict[str, float], rows: Rows) -> dict[str, float]:
    """Per-minibatch terms that were this rank's shares (`minibatches`), summed over ranks;
    `grad_norm`, taken after the gradients were summed, is already the whole batch's."""
    if not rows.sharded:
        return sums
    grad_norm = sums.pop("grad_norm", None)
    out = global_mean(sums, 1.0, rows)
    return out if grad_norm is None else {**out, "grad_norm": grad_norm}
