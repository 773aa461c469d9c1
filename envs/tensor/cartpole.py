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
        rows = self._reset_rows(mask)
        if rows is None:
            fresh = -0.05 + 0.1 * self._uniform(1, 4, torch.float64)
            self.state = torch.where(mask[:, None], fresh, self.state)
        elif rows.numel():
            self.state[rows] = -0.05 + 0.1 * self._uniform(1, 4, torch.float64, rows)
        return self.state.float()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # CartPole-v1's arithmetic, written with in-place kernels on fresh temporaries.
        x, x_dot, theta, theta_dot = self.state.t().contiguous()  # each [N]
        force = (actions == 1).to(torch.float64).mul_(2 * FORCE_MAG).sub_(FORCE_MAG)
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (theta_dot * theta_dot).mul_(self._polemass_length).mul_(sin)
        temp = temp.add_(force).div_(self._total_mass)
        denom = (cos * cos).mul_(self._pole_mass).div_(self._total_mass)
        denom = denom.neg_().add_(4.0 / 3.0).mul_(self._length)
        theta_acc = (self._gravity * sin).sub_(cos * temp).div_(denom)
        x_acc = temp - (self._polemass_length * theta_acc).mul_(cos).div_(self._total_mass)
        self.state = torch.stack(
            [
                x.add_(x_dot * TAU),  # Euler, as CartPole-v1
                x_dot.add_(x_acc.mul_(TAU)),
                theta.add_(theta_dot * TAU),
                theta_dot.add_(theta_acc.mul_(TAU)),
            ],
            -1,
        )
        terminated = (x.abs() > X_LIMIT).logical_or_(theta.abs() > THETA_LIMIT)
        reward = torch.ones(self.num_envs, device=self.device)
        return self.state.float(), reward, terminated


CartPoleDistribution = CartPoleVectorEnv.distribution


class CartPoleVariantEnv(SingleEnvView):
    """Single-env view of `CartPoleVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = CartPoleVectorEnv
