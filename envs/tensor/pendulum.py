"""Pendulum swing-up with per-task physics (mass, length).

With the default parameters (m = 1 kg, l = 1 m, g = 10) the dynamics, observations and rewards
are those of Gymnasium's `Pendulum-v1` (float64 state, float32 observations)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from gymnasium import spaces

from envs.tensor.base import (
    PhysicsConfig,
    PhysicsTask,
    SingleEnvView,
    TensorVectorEnv,
    check_positive_float,
    check_positive_int,
    sample_physics,
)
from metarl.errors import UsageError

PARAMS: dict[str, tuple[float, float]] = {"mass": (1.0, 100.0), "length": (1.0, 100.0)}
MAX_SPEED, MAX_TORQUE, DT = 8.0, 2.0, 0.05


@dataclass(frozen=True)
class PendulumTask(PhysicsTask):
    """A batch of pendulums: `mass [T]` in [0.01, 100] kg and `length [T]` in [0.01, 100] m."""

    mass: torch.Tensor
    length: torch.Tensor

    PARAMS = PARAMS


@dataclass(frozen=True)
class PendulumConfig(PhysicsConfig):
    PARAMS = PARAMS
    vary: list[str] = field(default_factory=lambda: list(PARAMS))
    """Parameters that vary per task (mass, length); the others stay at 1."""
    gravity: float = 10.0
    """Gravity, shared by all tasks (Pendulum-v1: 10)."""
    horizon: int = 200
    """Steps per episode (Pendulum-v1: 200)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if check_positive_float("gravity", self.gravity) > 100.0:
            raise UsageError(f"gravity: must lie in (0, 100], got {self.gravity}")
        check_positive_int("horizon", self.horizon)


class PendulumVectorEnv(TensorVectorEnv[PendulumConfig, PendulumTask]):
    """Batched Pendulum with per-task mass and length: `num_envs = num_tasks * envs_per_task`.

    - Observation: `(cos theta, sin theta, theta_dot)`, `Box([-1, -1, -8], [1, 1, 8])` float32;
      batched `[N, 3]`.
    - Action: torque, `Box(-2, 2, (1,), float32)`; values outside are clipped (as Pendulum-v1),
      NaN is rejected.
    - Reward: `-(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)`, from the state
      before the step (as Pendulum-v1).
    - Task: `PendulumTask` (mass, length; ranges there); gravity is an env setting (10).
    - Episode: starts at theta ~ U[-pi, pi], theta_dot ~ U[-1, 1]; never `terminated`;
      `truncated=True` after `horizon` steps (200). Trial: episodes on one task until the caller
      resets with new tasks.
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    config_type = PendulumConfig
    task_type = PendulumTask
    terminates = False

    @classmethod
    def spaces(cls, config: PendulumConfig) -> tuple[spaces.Space, spaces.Space]:
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32), spaces.Box(
            -MAX_TORQUE, MAX_TORQUE, (1,), np.float32
        )

    @classmethod
    def sample_tasks(
        cls, config: PendulumConfig, split: str, num_tasks: int, generator: torch.Generator
    ) -> PendulumTask:
        """Each field `[T]` float64 on the generator's device (see `sample_physics`)."""
        return sample_physics(PendulumTask, config, split, num_tasks, generator)

    def _init_state(self) -> None:
        self.state = self._zeros(2, dtype=torch.float64)  # [N, 2]

    def _set_tasks(self, tasks: PendulumTask) -> None:
        m = tasks.mass.to(torch.float64)[self.task_id]  # [N]
        length = tasks.length.to(torch.float64)[self.task_id]
        # theta_dot'' = gain_g * sin(theta) + gain_u * u: the per-copy factors once per task set
        self._gain_g = 3 * float(self.config.gravity) / (2 * length)  # [N]
        self._gain_u = 3.0 / (m * length**2)  # [N]

    def _obs(self) -> torch.Tensor:
        th, thdot = self.state.unbind(-1)
        return torch.stack([torch.cos(th), torch.sin(th), thdot], -1).float()

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        rows = self._reset_rows(mask)
        if rows is None or rows.numel():
            u = self._uniform(1, 2, torch.float64, rows)
            fresh = torch.stack([(2 * u[:, 0] - 1) * math.pi, 2 * u[:, 1] - 1], -1)
            if rows is None:
                self.state = torch.where(mask[:, None], fresh, self.state)
            else:
                self.state = self.state.clone()  # the caller may hold the old state
                self.state[rows] = fresh
        return self._obs()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        th, thdot = self.state.unbind(-1)
        u = actions[:, 0].to(torch.float64)  # already clipped to [-2, 2]
        th_norm = torch.remainder(th + math.pi, 2 * math.pi) - math.pi
        costs = th_norm**2 + 0.1 * thdot**2 + 0.001 * u**2
        new_thdot = thdot + (self._gain_g * torch.sin(th) + self._gain_u * u) * DT
        new_thdot = new_thdot.clamp(-MAX_SPEED, MAX_SPEED)
        self.state = torch.stack([th + new_thdot * DT, new_thdot], -1)
        return self._obs(), (-costs).float(), torch.zeros_like(th, dtype=torch.bool)


PendulumDistribution = PendulumVectorEnv.distribution


class PendulumVariantEnv(SingleEnvView):
    """Single-env view of `PendulumVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = PendulumVectorEnv
