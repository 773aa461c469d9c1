"""Tiny synthetic few-shot image tasks: each task draws fresh random binary class patterns,
so only a learner that adapts to the task can beat chance (no pattern recurs across tasks)."""

from __future__ import annotations

import torch

from metarl.fewshot.episode import Episode


def pattern_tasks(
    num_tasks: int,
    ways: int,
    shots: int,
    queries: int,
    generator: torch.Generator,
    side: int = 4,
    noise: float = 0.1,
) -> Episode:
    """`num_tasks` episodes of `[1, side, side]` images: a class is a random binary pattern,
    an item that pattern plus Gaussian noise; shot-major support and query, labels permuted."""
    t = num_tasks
    protos = (torch.rand(t, ways, 1, side, side, generator=generator) > 0.5).float()
    labels = torch.rand(t, ways, generator=generator).argsort(-1)

    def items(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = protos.unsqueeze(1).expand(t, k, ways, 1, side, side)
        x = x + noise * torch.randn(x.shape, generator=generator)
        return x.reshape(t, k * ways, 1, side, side), labels.repeat(1, k)

    sx, sy = items(shots)
    qx, qy = items(queries)
    return Episode(sx, sy, qx, qy, ways, shots)
