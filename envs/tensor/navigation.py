"""2-D point navigation (the MAML paper's setting): reach a per-task goal in U[-0.5, 0.5]^2."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from envs.tensor.base import (
    SingleEnvView,
    TensorVectorEnv,
    check_in_range,
    check_positive_float,
    check_positive_int,
    check_task_tensor,
)
from metarl.errors import UsageError
from metarl.tasks import TaskBatch

MAX_GOAL = 1e3  # |goal| bound accepted in a task (finite and not absurd)


@dataclass(frozen=True)
class Navigation2DTask(TaskBatch):
    """A batch of goals. `goals [T, 2]`: finite, each coordinate within [-1000, 1000]."""

    goals: torch.Tensor

    def __post_init__(self) -> None:
        check_task_tensor("Navigation2DTask.goals", self.goals, (None, 2))
        check_in_range("Navigation2DTask.goals", self.goals, -MAX_GOAL, MAX_GOAL)


@dataclass(frozen=True)
class Navigation2DConfig:
    goal_range: float = 0.5
    """Goals are U[-goal_range, goal_range]^2."""
    max_action: float = 0.1
    """Actions are clipped to [-max_action, max_action] per coordinate."""
    horizon: int = 100
    """Steps per episode."""
    goal_radius: float = 0.01
    """The episode terminates once the distance to the goal is below this (0: never)."""

    def __post_init__(self) -> None:
        if check_positive_float("goal_range", self.goal_range) > MAX_GOAL:
            raise UsageError(f"goal_range: must lie in (0, {MAX_GOAL}], got {self.goal_range}")
        check_positive_float("max_action", self.max_action)
        check_positive_int("horizon", self.horizon)
        r = self.goal_radius
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1e3:
            raise UsageError(f"goal_radius: must lie in [0, 1000), got {r!r}")


class Navigation2DVectorEnv(TensorVectorEnv[Navigation2DConfig, Navigation2DTask]):
    """Batched 2-D navigation: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: the agent's position, `Box(-horizon * max_action, +..., (2,), float32)`
      (10 by default: the farthest reachable point); batched `[N, 2]`.
    - Action: a displacement, `Box(-max_action, max_action, (2,), float32)` (default 0.1).
      Values outside are clipped; NaN is rejected.
    - Reward: minus the Euclidean distance from the new position to the goal (`[N]`).
    - Task: `Navigation2DTask.goals [T, 2]`, U[-goal_range, goal_range]^2 in every split
      (continuous tasks: held-out goals differ with probability 1).
    - Episode: starts at the origin; `terminated=True` once the distance to the goal is below
      `goal_radius` (0.01, as in MAML; 0 disables it); `truncated=True` after `horizon` steps
      (100).
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    config_type = Navigation2DConfig
    task_type = Navigation2DTask

    @classmethod
    def spaces(cls, config: Navigation2DConfig) -> tuple[spaces.Space, spaces.Space]:
        bound = np.float32(config.horizon * config.max_action)  # farthest reachable
        m = config.max_action
        return spaces.Box(-bound, bound, (2,), np.float32), spaces.Box(-m, m, (2,), np.float32)

    @classmethod
    def sample_tasks(
        cls, config: Navigation2DConfig, split: str, num_tasks: int, generator: torch.Generator
    ) -> Navigation2DTask:
        """`goals [T, 2]` on the generator's device."""
        u = torch.rand(num_tasks, 2, generator=generator, device=generator.device)
        return Navigation2DTask(goals=(2 * u - 1) * config.goal_range)

    def _init_state(self) -> None:
        self.pos = self._zeros(2)  # [N, 2]

    def _set_tasks(self, tasks: Navigation2DTask) -> None:
        self._goals = tasks.goals.float()[self.task_id]  # [N, 2]

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        self.pos = self.pos.masked_fill(mask[:, None], 0.0)
        return self.pos.clone()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.pos = self.pos + actions
        d = self.pos - self._goals
        dist = torch.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        return self.pos.clone(), -dist, dist < self.config.goal_radius


Navigation2DDistribution = Navigation2DVectorEnv.distribution


class Navigation2DEnv(SingleEnvView):
    """Single-env view of `Navigation2DVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = Navigation2DVectorEnv
