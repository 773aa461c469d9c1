"""The two contracts every run goes through: task distributions and learners.

A *task distribution* yields batches of tasks from named splits; a *learner* meta-trains on
them and adapts to new ones with a budget. The trainer (`metarl.trainer`) only ever talks to
these two protocols, so it never branches on domain or algorithm.

Budget: what a family adapts with -- gradient steps (MAML and kin), shots (metric learners),
episodes of experience (RL², memory policies). The *adaptation curve* is the per-task metric
after each budget 0..K.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

SPLITS = ("train", "val", "test")


@runtime_checkable
class TaskDistribution(Protocol):
    """A distribution over tasks with named splits, so held-out tasks are never trained on."""

    splits: tuple[str, ...]
    # Optional: `renderable = True` where a learner's `record(tasks) -> [F, H, W, 3]` uint8
    # can film behaviour on these tasks (the MuJoCo families); the trainer then logs a video
    # of adapted behaviour at the final evaluation (`eval.video`).

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> Any:
        """Draw `num_tasks` tasks of `split` using only `generator` for randomness.

        Returns a batch of tasks (a frozen dataclass of tensors with a leading task axis `T`),
        e.g. an `Episode` for few-shot learning or task parameters for meta-RL.
        """
        ...


@runtime_checkable
class Learner(Protocol):
    """One meta-learning algorithm. Owns its model(s), optimiser and its own generators."""

    metric: str  # name of the evaluation metric, e.g. "accuracy", "mse", "return"
    higher_is_better: bool
    budget_name: str  # what a budget counts: "steps", "shots" or "episodes"
    headline_budget: int  # the budget whose metric is the run's headline number

    def meta_step(self, tasks: Any) -> dict[str, float]:
        """One outer update on a batch of training tasks. Must include a finite `loss`."""
        ...

    def adapt(self, tasks: Any, budget: int) -> Any:
        """Adapt to `tasks` with `budget` (steps / shots / episodes); returns adapted state."""
        ...

    def evaluate(self, adapted: Any, tasks: Any) -> torch.Tensor:
        """Per-task metric `[T]` of the adapted state on the tasks' query data."""
        ...

    def adaptation_curve(self, tasks: Any, max_budget: int) -> torch.Tensor:
        """Per-task metric after each budget 0..B: `[B + 1, T]`, B <= max_budget.

        B is smaller when the tasks offer less budget (a 1-shot task has budgets 0 and 1).
        """
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def curve_by_adapting(learner: Learner, tasks: Any, max_budget: int) -> torch.Tensor:
    """Generic adaptation curve: adapt afresh for each budget. `[max_budget + 1, T]`.

    Learners whose adaptation is incremental (gradient steps, one RL² trial) compute the curve
    in one pass instead; this is the reference they must agree with.
    """
    rows = [learner.evaluate(learner.adapt(tasks, b), tasks) for b in range(max_budget + 1)]
    return torch.stack(rows)


def check_split(split: str, splits: tuple[str, ...]) -> None:
    from metarl.errors import UsageError

    if split not in splits:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(splits)}")
