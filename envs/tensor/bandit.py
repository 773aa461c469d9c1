"""Bernoulli multi-armed bandits (the RL² paper's setting): k arms, p ~ U[0, 1] per arm per task."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from envs.tensor.base import (
    SingleEnvView,
    TensorVectorEnv,
    check_in_range,
    check_positive_int,
    check_task_tensor,
)
from metarl.errors import UsageError
from metarl.tasks import TaskBatch


@dataclass(frozen=True)
class BanditTask(TaskBatch):
    """A batch of bandit tasks. `probs [T, k]`: success probability of each arm, in [0, 1]."""

    probs: torch.Tensor

    def __post_init__(self) -> None:
        check_task_tensor("BanditTask.probs", self.probs, (None, None))
        check_in_range("BanditTask.probs", self.probs, 0.0, 1.0)


@dataclass(frozen=True)
class BanditConfig:
    num_arms: int = 5
    """Arms per bandit (k >= 1)."""
    horizon: int = 100
    """Pulls per episode (RL² counts each pull as an episode: use horizon=1 and a trial of n)."""

    def __post_init__(self) -> None:
        check_positive_int("num_arms", self.num_arms)
        check_positive_int("horizon", self.horizon)


class BanditVectorEnv(TensorVectorEnv[BanditConfig, BanditTask]):
    """Batched Bernoulli bandits: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: `Box(0, 1, (1,), float32)`, always 0 (a bandit has no state; agents such as
      RL² see the previous action and reward instead). Batched: `[N, 1]` torch float32.
    - Action: `Discrete(num_arms)`, the arm to pull; integers outside `[0, k)` are rejected.
    - Reward: 1 with the pulled arm's probability, else 0 (`[N]` float32).
    - Task: `BanditTask.probs [T, k]`, each in [0, 1]; `num_arms >= 1`. All splits draw
      p ~ U[0, 1] i.i.d. per arm (continuous tasks: held-out ones differ from training ones with
      probability 1; callers keep them apart with separate generators per split).
    - Episode: `horizon` pulls (default 100; RL²'s one-pull episodes are `horizon=1`), then
      `truncated=True`; never `terminated`.
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    config_type = BanditConfig
    task_type = BanditTask
    terminates = False

    @classmethod
    def spaces(cls, config: BanditConfig) -> tuple[spaces.Space, spaces.Space]:
        return spaces.Box(0.0, 1.0, (1,), np.float32), spaces.Discrete(config.num_arms)

    @classmethod
    def sample_tasks(
        cls, config: BanditConfig, split: str, num_tasks: int, generator: torch.Generator
    ) -> BanditTask:
        """`probs [T, k]` ~ U[0, 1] on the generator's device."""
        p = torch.rand(num_tasks, config.num_arms, generator=generator, device=generator.device)
        return BanditTask(probs=p)

    def _init_state(self) -> None:
        self._obs = self._zeros(1)

    def _check_env_tasks(self, tasks: BanditTask) -> None:
        if tasks.probs.shape[1] != self.config.num_arms:
            raise UsageError(
                f"BanditTask.probs: expected {self.config.num_arms} arms (num_arms), "
                f"got {tasks.probs.shape[1]}"
            )

    def _set_tasks(self, tasks: BanditTask) -> None:
        self._probs = tasks.probs.float()[self.task_id]  # [N, k]

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        return self._obs.clone()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = self._uniform(0, 1)[:, 0]
        p = self._probs.gather(1, actions[:, None])[:, 0]
        reward = (u < p).float()
        return self._obs.clone(), reward, torch.zeros_like(reward, dtype=torch.bool)


BanditDistribution = BanditVectorEnv.distribution


class BanditEnv(SingleEnvView):
    """Single-env view of `BanditVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = BanditVectorEnv
