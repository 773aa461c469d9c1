"""The batch of few-shot tasks that a few-shot task distribution yields."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Episode:
    """T few-shot tasks as tensors on the training device.

    Classification: `support_x` `[T, K*N, C, H, W]`, `support_y` `[T, K*N]` (int64 in 0..N-1),
    `query_x` `[T, Q*N, C, H, W]`, `query_y` `[T, Q*N]`. Regression: `x` `[T, K, 1]`, `y`
    `[T, K, 1]` (float), `ways == 1`.

    Support is *shot-major*: item `i` is shot `i // ways` of its class, so the first `k * ways`
    items hold exactly `k` shots of every class -- a shots budget is a prefix
    (`Episode.first_shots`). Labels are a fresh random permutation of the classes per task.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    ways: int
    shots: int

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def first_shots(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Support restricted to its first `k` shots per class: `[T, k*N, ...]`, `[T, k*N]`."""
        n = k * self.ways
        return self.support_x[:, :n], self.support_y[:, :n]

    def __len__(self) -> int:
        return self.num_tasks

    def select(self, index: int | slice | torch.Tensor) -> Episode:
        """A sub-batch of tasks, as `metarl.tasks.TaskBatch.select`: an int keeps the task
        axis (`T = 1`); a slice or an index tensor selects several."""
        if isinstance(index, int):
            index = slice(index % self.num_tasks, index % self.num_tasks + 1)
        return Episode(
            self.support_x[index],
            self.support_y[index],
            self.query_x[index],
            self.query_y[index],
            self.ways,
            self.shots,
        )
