"""What the metric learners (Matching, Relation, Siamese networks) share.

Each of them embeds a task's support and query together (batch norm with that task's own
statistics, as ProtoNet and MAML do), scores every query against the support, and reads its
adaptation curve off one embedding: budget k uses the first k shots of the shot-major support;
budget 0 is chance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from metarl.errors import UsageError
from metarl.fewshot.episode import Episode


def embed_together(encoder: nn.Module, support_x: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
    """Embeddings of support `[S, C, H, W]` and query `[Q, C, H, W]` from one forward pass."""
    z = encoder(torch.cat([support_x, query_x]))
    return z[: support_x.shape[0]], z[support_x.shape[0] :]


def shots_curve(tasks: Episode, max_budget: int, logits_of: Callable[[int, int], Tensor]) -> Tensor:
    """Accuracy after 0..min(max_budget, shots) shots: `[B + 1, T]`.

    `logits_of(t, k)` gives task t's query scores `[Q, N]` from its first k shots per class.
    """
    budgets = min(max_budget, tasks.shots)
    rows = torch.empty(budgets + 1, tasks.num_tasks, device=tasks.query_x.device)
    rows[0] = 1.0 / tasks.ways  # no shots: every class equally likely
    with torch.no_grad():
        for t in range(tasks.num_tasks):
            for k in range(1, budgets + 1):
                pred = logits_of(t, k).argmax(-1)
                rows[k, t] = (pred == tasks.query_y[t]).float().mean()
    return rows


def check_budget(tasks: Episode, budget: int) -> None:
    if budget > tasks.shots:
        raise UsageError(f"budget {budget} exceeds the {tasks.shots} shots of these tasks")


def check_image_task(distribution: Any, kind: str) -> tuple[int, int, int]:
    """The `[C, H, W]` input shape of an image classification task, else a clear error."""
    shape = tuple(distribution.input_shape)
    if getattr(distribution, "loss", "cross_entropy") != "cross_entropy" or len(shape) != 3:
        raise UsageError(
            f"learner.kind {kind} needs an image classification task (omniglot or image_folder)"
        )
    return shape


def lr_schedule(optimizer: torch.optim.Optimizer, every: int, factor: float):
    """Step-size decay by `factor` every `every` meta-iterations (0: constant)."""
    return torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=max(every, 1), gamma=factor if every else 1.0
    )
