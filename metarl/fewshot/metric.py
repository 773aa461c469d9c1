"""What the metric learners (Matching, Relation, Siamese networks) share.

Each of them embeds a task's support and query together (batch norm with that task's own
statistics, as ProtoNet and MAML do), scores every query against the support, and reads its
adaptation curve off one embedding: budget k uses the first k shots of the shot-major support;
budget 0 is chance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
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


class MetricLearner:
    """What the metric learners share, given `self.model`, `self.cfg` and
    `_task(tasks, t, k) -> [Q, N]` (task t's query scores from its first k shots per class):

    - the curve over shots (`adapt`, `evaluate`, `adaptation_curve`; 0 shots is chance);
    - `meta_step` over the tasks of a meta-batch, given `_task_loss(tasks, t) -> (loss,
      scores)` (Siamese networks train on pairs and write their own);
    - Adam on `self.model` with the `lr_schedule` of `self.cfg` (outer_lr, lr_decay_every,
      lr_decay), built on first use so `metarl adapt` never pays the optimiser's import
      (about a second of start-up), and one checkpoint layout (`model`, `optimizer`,
      `scheduler`, `generators` from `_generators()`).
    """

    budget_name = "shots"
    distributed = True  # per-task losses over a shard of the tasks (metarl.distributed)

    model: Any  # an nn.Module (a ModuleDict in Matching and Relation)
    cfg: Any

    def _task(self, tasks: Episode, t: int, k: int) -> Tensor:
        raise NotImplementedError

    def _task_loss(self, tasks: Episode, t: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _meta_tasks(self, tasks: Episode) -> Iterable[int]:
        """The tasks of a meta-step, in order (a learner with its own random draws per task
        may also move its generator for the tasks other ranks compute)."""
        return range(tasks.num_tasks)

    def _generators(self) -> dict[str, torch.Generator]:
        """The learner's own generators, checkpointed by name (none by default)."""
        return {}

    def meta_step(self, tasks: Episode) -> dict[str, float]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        n = tasks.num_tasks
        loss_sum, acc_sum = 0.0, 0.0
        for t in self._meta_tasks(tasks):
            loss, scores = self._task_loss(tasks, t)
            (loss / n).backward()
            loss_sum += loss.item()
            acc_sum += (scores.argmax(-1) == tasks.query_y[t]).float().mean().item()
        self.optimizer.step()
        self.scheduler.step()
        return {
            "loss": loss_sum / n,
            "accuracy": acc_sum / n,
            "lr": float(self.scheduler.get_last_lr()[0]),
        }

    def adapt(self, tasks: Episode, budget: int) -> Tensor:
        """Query class scores `[T, Q*N, N]` from the first `budget` shots (0 shots: all equal)."""
        check_budget(tasks, budget)
        with torch.no_grad():
            if budget == 0:
                return torch.zeros(*tasks.query_y.shape, tasks.ways, device=tasks.query_x.device)
            return torch.stack([self._task(tasks, t, budget) for t in range(tasks.num_tasks)])

    def evaluate(self, adapted: Tensor, tasks: Episode) -> Tensor:
        return (adapted.argmax(-1) == tasks.query_y).float().mean(-1)

    def adaptation_curve(self, tasks: Episode, max_budget: int) -> Tensor:
        self.model.train()  # per-task batch statistics, as in training (no running stats exist)
        return shots_curve(tasks, max_budget, lambda t, k: self._task(tasks, t, k))

    @functools.cached_property
    def _optim(self) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.StepLR]:
        opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.outer_lr)
        return opt, lr_schedule(opt, self.cfg.lr_decay_every, self.cfg.lr_decay)

    @property
    def optimizer(self) -> torch.optim.Adam:
        return self._optim[0]

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.StepLR:
        return self._optim[1]

    def load_model(self, state: dict[str, Any]) -> None:
        """Only the network of a checkpoint's learner state (for prediction)."""
        self.model.load_state_dict(state["model"])

    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        if self._generators():
            state["generators"] = {k: g.get_state() for k, g in self._generators().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for k, g in self._generators().items():
            g.set_state(state["generators"][k])
