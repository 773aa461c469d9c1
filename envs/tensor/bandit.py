"""Bernoulli multi-armed bandits (the RL² paper's setting): k arms, p ~ U[0, 1] per arm per task."""

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
    check_positive_int,
    check_sample_args,
    check_task_tensor,
)
from metarl.contracts import SPLITS
from metarl.errors import UsageError


@dataclass(frozen=True)
class BanditTask(TaskBatch):
    """A batch of bandit tasks. `probs [T, k]`: success probability of each arm, in [0, 1]."""

    probs: torch.Tensor

    def __post_init__(self) -> None:
        check_task_tensor("BanditTask.probs", self.probs, (None, None))
        check_in_range("BanditTask.probs", self.probs, 0.0, 1.0)


@dataclass
class BanditConfig:
    num_arms: int = 5
    """Arms per bandit (k >= 1)."""
    horizon: int = 100
    """Pulls per episode (RL² counts each pull as an episode: use horizon=1 and a trial of n)."""


class BanditDistribution:
    """Arm probabilities i.i.d. U[0, 1]. Splits share this distribution: tasks are continuous, so
    held-out tasks differ from training ones with probability 1; callers keep them apart by using
    separate generators per split."""

    splits = SPLITS

    def __init__(
        self, num_arms: int = 5, horizon: int = 100, device: torch.device | str = "cpu"
    ) -> None:
        self.num_arms = check_positive_int("num_arms", num_arms)
        self.horizon = check_positive_int("horizon", horizon)
        self.device = torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> BanditTask:
        """`num_tasks` tasks; `probs [T, k]` on `self.device`."""
        check_sample_args(split, num_tasks, generator)
        p = torch.rand(num_tasks, self.num_arms, generator=generator, device=generator.device)
        return BanditTask(probs=p.to(self.device))

    def make_env(self, num_tasks: int, envs_per_task: int = 1, **kwargs: Any) -> BanditVectorEnv:
        return BanditVectorEnv(
            num_envs=num_tasks * envs_per_task,
            envs_per_task=envs_per_task,
            num_arms=self.num_arms,
            horizon=self.horizon,
            device=kwargs.pop("device", self.device),
            **kwargs,
        )


def build_bandit(cfg: BanditConfig, device: torch.device) -> BanditDistribution:
    return BanditDistribution(cfg.num_arms, cfg.horizon, device)


class BanditVectorEnv(TensorVectorEnv):
    """Batched Bernoulli bandits: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: `Box(0, 1, (1,), float32)`, always 0 (a bandit has no state; agents such as
      RL² see the previous action and reward instead). Batched: `[N, 1]` torch float32.
    - Action: `Discrete(num_arms)`, the arm to pull; integers outside `[0, k)` are rejected.
    - Reward: 1 with the pulled arm's probability, else 0 (`[N]` float32).
    - Task: `BanditTask.probs [T, k]`, each in [0, 1]; `num_arms >= 1`.
    - Episode: `horizon` pulls (default 100; RL²'s one-pull episodes are `horizon=1`), then `truncated=True`; never `terminated`.
      Trial: as many episodes as the caller wants on one task; a new task is a reset with
      `options={"tasks": ...}`.
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    task_type = BanditTask

    def __init__(
        self,
        num_envs: int = 1,
        envs_per_task: int = 1,
        num_arms: int = 5,
        horizon: int = 100,
        device: torch.device | str = "cpu",
        autoreset: bool = True,
        check_actions: bool = True,
    ) -> None:
        dist = BanditDistribution(num_arms, horizon, device)
        self.num_arms, self.horizon = num_arms, horizon
        super().__init__(
            num_envs,
            envs_per_task,
            device,
            autoreset,
            check_actions,
            dist,
            spaces.Box(0.0, 1.0, (1,), np.float32),
            spaces.Discrete(num_arms),
        )
        self._obs = torch.zeros(num_envs, 1, device=self.device)
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    def _check_env_tasks(self, tasks: BanditTask) -> None:
        if tasks.probs.shape[1] != self.num_arms:
            raise UsageError(
                f"BanditTask.probs: expected {self.num_arms} arms (num_arms), got {tasks.probs.shape[1]}"
            )

    def _set_tasks(self, tasks: BanditTask) -> None:
        self._probs = tasks.probs.float()[self.task_id]  # [N, k]

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        self._elapsed = torch.where(mask, 0, self._elapsed)
        return self._obs.clone()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        u = self._uniform(0, 1)[:, 0]
        p = self._probs.gather(1, actions[:, None])[:, 0]
        reward = (u < p).float()
        self._elapsed = self._elapsed + 1
        truncated = self._elapsed >= self.horizon
        return self._obs.clone(), reward, torch.zeros_like(truncated), truncated


class BanditEnv(SingleEnvView):
    """Single-env view of `BanditVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = BanditVectorEnv
