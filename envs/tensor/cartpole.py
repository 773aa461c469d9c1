"""CartPole with per-task physics (pole length, pole mass, cart mass, gravity).

With the default parameters the dynamics, observations, rewards and termination are those of
Gymnasium's `CartPole-v1` (Euler integration, float64 state, float32 observations)."""

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
    check_positive_int,
    sample_physics,
)

# name -> (Gymnasium's default, largest accepted value); the smallest is default / 100.
PARAMS: dict[str, tuple[float, float]] = {
    "length": (0.5, 10.0),  # half the pole's length, metres
    "pole_mass": (0.1, 10.0),  # kg
    "cart_mass": (1.0, 100.0),  # kg
    "gravity": (9.8, 100.0),  # m/s^2
}
FORCE_MAG, TAU = 10.0, 0.02
THETA_LIMIT, X_LIMIT = 12 * 2 * math.pi / 360, 2.4


@dataclass(frozen=True)
class CartPoleTask(PhysicsTask):
    """A batch of physics settings, each `[T]` float: `length` (half pole length) in
    [0.005, 10], `pole_mass` in [0.001, 10], `cart_mass` in [0.01, 100], `gravity` in
    [0.098, 100] (see `PhysicsTask`)."""

    length: torch.Tensor
    pole_mass: torch.Tensor
    cart_mass: torch.Tensor
    gravity: torch.Tensor

    PARAMS = PARAMS


@dataclass(frozen=True)
class CartPoleConfig(PhysicsConfig):
    PARAMS = PARAMS
    vary: list[str] = field(default_factory=lambda: list(PARAMS))
    """Parameters that vary per task (the others stay at Gymnasium's defaults)."""
    horizon: int = 500
    """Steps per episode (CartPole-v1: 500)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("horizon", self.horizon)


class CartPoleVectorEnv(TensorVectorEnv[CartPoleConfig, CartPoleTask]):
    """Batched CartPole with per-task physics: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: `(x, x_dot, theta, theta_dot)`, `Box` as in CartPole-v1 (float32); `[N, 4]`.
    - Action: `Discrete(2)`: push left (0) or right (1) with 10 N; others are rejected.
    - Reward: 1 per step, including the step on which the pole falls (as CartPole-v1).
    - Task: `CartPoleTask` (length, pole_mass, cart_mass, gravity; ranges there).
    - Episode: starts at a state U[-0.05, 0.05]^4; `terminated=True` when |x| > 2.4 or
      |theta| > 12 degrees; `truncated=True` after `horizon` steps (500). Trial: episodes on one
      task until the caller resets with new tasks.
    - Autoreset: same-step (see `envs.tensor.base`).
    State is float64 so default-parameter dynamics match Gymnasium to float32 precision.
    """

    config_type = CartPoleConfig
    task_type = CartPoleTask

    @classmethod
    def spaces(cls, config: CartPoleConfig) -> tuple[spaces.Space, spaces.Space]:
        high = np.array([X_LIMIT * 2, np.inf, THETA_LIMIT * 2, np.inf], dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2)

    @classmethod
    def sample_tasks(
        cls, config: CartPoleConfig, split: str, num_tasks: int, generator: torch.Generator
    ) -> CartPoleTask:
        """Each field `[T]` float64 on the generator's device (see `sample_physics`)."""
        return sample_physics(CartPoleTask, config, split, num_tasks, generator)

    def _init_state(self) -> None:
        self.state = self._zeros(4, dtype=torch.float64)  # [N, 4]

    def _set_tasks(self, tasks: CartPoleTask) -> None:
        p = {k: getattr(tasks, k).to(torch.float64)[self.task_id] for k in PARAMS}  # each [N]
        self._length, self._pole_mass, self._gravity = p["length"], p["pole_mass"], p["gravity"]
        self._total_mass = p["pole_mass"] + p["cart_mass"]
        self._polemass_length = p["pole_mass"] * p["length"]

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        fresh = -0.05 + 0.1 * self._uniform(1, 4, torch.float64)
        self.state = torch.where(mask[:, None], fresh, self.state)
        return self.state.float()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = self.state.unbind(-1)
        force = torch.where(actions == 1, FORCE_MAG, -FORCE_MAG).to(torch.float64)
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + self._polemass_length * theta_dot**2 * sin) / self._total_mass
        theta_acc = (self._gravity * sin - cos * temp) / (
            self._length * (4.0 / 3.0 - self._pole_mass * cos**2 / self._total_mass)
        )
        x_acc = temp - self._polemass_length * theta_acc * cos / self._total_mass
        x, x_dot = x + TAU * x_dot, x_dot + TAU * x_acc  # Euler, as CartPole-v1
        theta, theta_dot = theta + TAU * theta_dot, theta_dot + TAU * theta_acc
        self.state = torch.stack([x, x_dot, theta, theta_dot], -1)
        terminated = (x < -X_LIMIT) | (x > X_LIMIT) | (theta < -THETA_LIMIT) | (theta > THETA_LIMIT)
        reward = torch.ones(self.num_envs, device=self.device)
        return self.state.float(), reward, terminated


CartPoleDistribution = CartPoleVectorEnv.distribution


class CartPoleVariantEnv(SingleEnvView):
    """Single-env view of `CartPoleVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = CartPoleVectorEnv
