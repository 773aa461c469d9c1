"""2-D point navigation (the MAML paper's setting): reach a per-task goal in U[-0.5, 0.5]^2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from envs.tensor.base import (
    SingleEnvView,
    TaskBatch,
    TensorVectorEnv,
    check_in_range,
    check_positive_float,
    check_positive_int,
    check_sample_args,
    check_task_tensor,
)
from metarl.contracts import SPLITS
from metarl.errors import UsageError

MAX_GOAL = 1e3  # |goal| bound accepted in a task (finite and not absurd)


@dataclass(frozen=True)
class Navigation2DTask(TaskBatch):
    """A batch of goals. `goals [T, 2]`: finite, each coordinate within [-1000, 1000]."""

    goals: torch.Tensor

    def __post_init__(self) -> None:
        check_task_tensor("Navigation2DTask.goals", self.goals, (None, 2))
        check_in_range("Navigation2DTask.goals", self.goals, -MAX_GOAL, MAX_GOAL)


@dataclass
class Navigation2DConfig:
    goal_range: float = 0.5
    """Goals are U[-goal_range, goal_range]^2."""
    max_action: float = 0.1
    """Actions are clipped to [-max_action, max_action] per coordinate."""
    horizon: int = 100
    """Steps per episode."""
    goal_radius: float = 0.01
    """The episode terminates once the distance to the goal is below this (0: never)."""


class Navigation2DDistribution:
    """Goals U[-goal_range, goal_range]^2. Splits share this distribution (continuous tasks:
    held-out goals differ with probability 1; use separate generators per split)."""

    splits = SPLITS

    def __init__(
        self,
        goal_range: float = 0.5,
        max_action: float = 0.1,
        horizon: int = 100,
        goal_radius: float = 0.01,
        device: torch.device | str = "cpu",
    ) -> None:
        self.goal_range = check_positive_float("goal_range", goal_range)
        if self.goal_range > MAX_GOAL:
            raise UsageError(f"goal_range: must lie in (0, {MAX_GOAL}], got {goal_range}")
        self.max_action = check_positive_float("max_action", max_action)
        self.horizon = check_positive_int("horizon", horizon)
        if (
            isinstance(goal_radius, bool)
            or not isinstance(goal_radius, (int, float))
            or not 0 <= goal_radius < 1e3
        ):
            raise UsageError(f"goal_radius: must lie in [0, 1000), got {goal_radius!r}")
        self.goal_radius = float(goal_radius)
        self.device = torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> Navigation2DTask:
        """`goals [T, 2]` on `self.device`."""
        check_sample_args(split, num_tasks, generator)
        u = torch.rand(num_tasks, 2, generator=generator, device=generator.device)
        return Navigation2DTask(goals=((2 * u - 1) * self.goal_range).to(self.device))

    def make_env(
        self, num_tasks: int, envs_per_task: int = 1, **kwargs: Any
    ) -> Navigation2DVectorEnv:
        return Navigation2DVectorEnv(
            num_envs=num_tasks * envs_per_task,
            envs_per_task=envs_per_task,
            goal_range=self.goal_range,
            max_action=self.max_action,
            horizon=self.horizon,
            goal_radius=self.goal_radius,
            device=kwargs.pop("device", self.device),
            **kwargs,
        )


def build_navigation2d(cfg: Navigation2DConfig, device: torch.device) -> Navigation2DDistribution:
    return Navigation2DDistribution(
        cfg.goal_range, cfg.max_action, cfg.horizon, cfg.goal_radius, device
    )


class Navigation2DVectorEnv(TensorVectorEnv):
    """Batched 2-D navigation: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: the agent's position, `Box(-horizon * max_action, +..., (2,), float32)`
      (10 by default: the farthest reachable point); batched `[N, 2]`.
    - Action: a displacement, `Box(-max_action, max_action, (2,), float32)` (default 0.1).
      Values outside are clipped; NaN is rejected.
    - Reward: minus the Euclidean distance from the new position to the goal (`[N]`).
    - Task: `Navigation2DTask.goals [T, 2]`, sampled U[-0.5, 0.5]^2 by default.
    - Episode: starts at the origin; `terminated=True` once the distance to the goal is below
      `goal_radius` (0.01, as in MAML; 0 disables it); `truncated=True` after `horizon` steps
      (100). Trial: as many episodes as the caller wants on one goal; a new goal is a reset with
      `options={"tasks": ...}`.
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    task_type = Navigation2DTask

    def __init__(
        self,
        num_envs: int = 1,
        envs_per_task: int = 1,
        goal_range: float = 0.5,
        max_action: float = 0.1,
        horizon: int = 100,
        goal_radius: float = 0.01,
        device: torch.device | str = "cpu",
        autoreset: bool = True,
        check_actions: bool = True,
    ) -> None:
        dist = Navigation2DDistribution(goal_range, max_action, horizon, goal_radius, device)
        self.horizon, self.goal_radius = horizon, float(goal_radius)
        bound = np.float32(horizon * max_action)  # farthest reachable from the origin
        super().__init__(
            num_envs,
            envs_per_task,
            device,
            autoreset,
            check_actions,
            dist,
            spaces.Box(-bound, bound, (2,), np.float32),
            spaces.Box(-max_action, max_action, (2,), np.float32),
        )
        self.pos = torch.zeros(num_envs, 2, device=self.device)  # [N, 2]
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    def _set_tasks(self, tasks: Navigation2DTask) -> None:
        self._goals = tasks.goals.float()[self.task_id]  # [N, 2]

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        self.pos = torch.where(mask[:, None], 0.0, self.pos)
        self._elapsed = torch.where(mask, 0, self._elapsed)
        return self.pos.clone()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.pos = self.pos + actions
        d = self.pos - self._goals
        dist = torch.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
        self._elapsed = self._elapsed + 1
        terminated = dist < self.goal_radius
        truncated = self._elapsed >= self.horizon
        return self.pos.clone(), -dist, terminated, truncated


class Navigation2DEnv(SingleEnvView):
    """Single-env view of `Navigation2DVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = Navigation2DVectorEnv
