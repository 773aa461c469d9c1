"""The contracts every run goes through: task batches, task distributions, learners, and
the meta-RL seam between environment families and RL learners.

A *task distribution* yields batches of tasks from named splits; a *learner* meta-trains on
them and adapts to new ones with a budget. The trainer (`metarl.trainer`) only ever talks to
these protocols, so it never branches on domain or algorithm.

Budget: what a family adapts with -- gradient steps (MAML and kin), shots (metric learners),
episodes of experience (RL², memory policies). The *adaptation curve* is the per-task metric
after each budget 0..K.

The meta-RL seam
----------------
Every RL learner meets every environment family (batched tensor envs and MuJoCo alike)
through `MetaRLDistribution` and the `MetaVectorEnv` it makes:

    tasks = distribution.sample("train", T, generator)          # a TaskBatch, T tasks
    env   = distribution.make_env(T, E, device)                 # N = T * E copies
    obs, _ = env.reset(seed=s, options={"tasks": tasks})        # a trial starts: new tasks
    obs, reward, terminated, truncated, info = env.step(actions)

- Copies are task-major: copy `n` plays task `n // E`.
- `reset(options={"tasks": tasks})` is the only way to change tasks; the only reset key.
- Autoreset is Gymnasium's `AutoresetMode.SAME_STEP` for every env: a copy whose episode
  ends (`terminated | truncated`) is reset inside the same `step`, on the same task; the
  returned observation row is its next first observation, and the finished one is in
  `info["final_obs"]` where `info["_final_obs"]`.
- `step` takes actions as a torch tensor (or an array) `[N, *action_shape]`; observations,
  rewards and flags come back as tensors or arrays of `[N, ...]`: tensor envs return torch
  on their device, MuJoCo envs numpy on the CPU (the sampler moves both with one
  `torch.as_tensor`).
- `horizon` is the family's episode length; `make_env(..., horizon=h)` asks for another
  where the family allows it (MuJoCo families: any; tensor families: only their own, set by
  `task.horizon`), else a `UsageError`.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

import gymnasium
import numpy as np
import torch

SPLITS = ("train", "val", "test")

TaskT = TypeVar("TaskT")
TaskT_co = TypeVar("TaskT_co", covariant=True)
TaskT_contra = TypeVar("TaskT_contra", contravariant=True)
BatchT = TypeVar("BatchT", bound="TaskBatchLike")


@runtime_checkable
class TaskBatchLike(Protocol):
    """A batch of `T` tasks: tensors with a leading task axis (`metarl.tasks.TaskBatch`)."""

    @property
    def num_tasks(self) -> int: ...

    def __len__(self) -> int: ...

    def select(self: BatchT, index: int | slice | torch.Tensor) -> BatchT:
        """A sub-batch; an int keeps the task axis (`T = 1`)."""
        ...

    def to(self: BatchT, device: torch.device | str) -> BatchT: ...

    def features(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The task parameters as one tensor `[T, P]`."""
        ...


@runtime_checkable
class TaskDistribution(Protocol[TaskT_co]):
    """A distribution over tasks with named splits, so held-out tasks are never trained on."""

    splits: tuple[str, ...]

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> TaskT_co:
        """Draw `num_tasks` tasks of `split` using only `generator` for randomness.

        Returns a batch of tasks (a frozen dataclass of tensors with a leading task axis `T`),
        e.g. an `Episode` for few-shot learning or a `TaskBatch` for meta-RL.
        """
        ...


@runtime_checkable
class MetaVectorEnv(Protocol):
    """A Gymnasium `VectorEnv` of `num_tasks * envs_per_task` copies (see the module doc)."""

    num_envs: int
    num_tasks: int
    envs_per_task: int
    single_observation_space: gymnasium.Space
    single_action_space: gymnasium.Space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]: ...

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]: ...

    def close(self) -> None: ...


@runtime_checkable
class RenderableEnv(Protocol):
    """The optional recording capability of a `MetaVectorEnv` (the MuJoCo families)."""

    def render_copy(self, i: int, width: int = 160, height: int = 120) -> np.ndarray:
        """Copy `i` as an RGB image `[height, width, 3]` uint8."""
        ...


@runtime_checkable
class MetaRLDistribution(TaskDistribution[TaskT_co], Protocol[TaskT_co]):
    """A task distribution whose tasks are played in environments (every meta-RL family).

    `renderable`: its envs are `RenderableEnv`s, so learners can film adapted behaviour.
    """

    horizon: int
    observation_space: gymnasium.Space
    action_space: gymnasium.Space
    renderable: bool

    def make_env(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: torch.device | str | None = None,
        horizon: int | None = None,
    ) -> MetaVectorEnv:
        """A vector env of `num_tasks * envs_per_task` copies, tasks set at `reset`."""
        ...


@runtime_checkable
class Learner(Protocol[TaskT_contra]):
    """One meta-learning algorithm. Owns its model(s), optimiser and its own generators.

    Its `state_dict()` holds `model` (module state), `optimizer`, and `generators`
    (`{"train": ..., "eval": ...}`) where it owns generators, plus what else it needs.
    """

    metric: str  # name of the evaluation metric, e.g. "accuracy", "mse", "return"
    higher_is_better: bool
    budget_name: str  # what a budget counts: "steps", "shots" or "episodes"
    headline_budget: int  # the budget whose metric is the run's headline number

    def meta_step(self, tasks: TaskT_contra) -> dict[str, float]:
        """One outer update on a batch of training tasks. Must include a finite `loss`."""
        ...

    def adapt(self, tasks: TaskT_contra, budget: int) -> Any:
        """Adapt to `tasks` with `budget` (steps / shots / episodes); returns adapted state."""
        ...

    def evaluate(self, adapted: Any, tasks: TaskT_contra) -> torch.Tensor:
        """Per-task metric `[T]` of the adapted state on the tasks' query data."""
        ...

    def adaptation_curve(self, tasks: TaskT_contra, max_budget: int) -> torch.Tensor:
        """Per-task metric after each budget 0..B: `[B + 1, T]`, B <= max_budget.

        B is smaller when the tasks offer less budget (a 1-shot task has budgets 0 and 1).
        """
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def curve_by_adapting(learner: Learner[TaskT], tasks: TaskT, max_budget: int) -> torch.Tensor:
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
