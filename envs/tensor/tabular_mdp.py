"""Random tabular MDPs (the RL² paper's setting): 10 states, 5 actions, 10-step episodes,
transitions ~ Dirichlet(1), reward means ~ N(1, 1), rewards ~ N(mean, 1)."""

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
    normal_from_uniform,
)
from metarl.contracts import SPLITS
from metarl.errors import UsageError


@dataclass(frozen=True)
class TabularMDPTask(TaskBatch):
    """A batch of MDPs.

    `transitions [T, S, A, S]`: P(s' | s, a), rows non-negative and summing to 1 (within 1e-4).
    `reward_means [T, S, A]`: mean reward of taking a in s, finite; rewards are N(mean, 1).
    """

    transitions: torch.Tensor
    reward_means: torch.Tensor

    def __post_init__(self) -> None:
        check_task_tensor("TabularMDPTask.transitions", self.transitions, (None, None, None, None))
        t, s, a, s2 = self.transitions.shape
        if s2 != s:
            raise UsageError(
                f"TabularMDPTask.transitions: expected shape [T, S, A, S], got {[t, s, a, s2]}"
            )
        check_task_tensor("TabularMDPTask.reward_means", self.reward_means, (t, s, a))
        check_in_range("TabularMDPTask.transitions", self.transitions, 0.0, 1.0)
        row_err = (self.transitions.sum(-1) - 1.0).abs().max().item()
        if not row_err <= 1e-4:
            raise UsageError(
                f"TabularMDPTask.transitions: each row P(. | s, a) must sum to 1, off by {row_err:.3g}"
            )
        check_in_range("TabularMDPTask.reward_means", self.reward_means, -1e6, 1e6)


@dataclass
class TabularMDPConfig:
    num_states: int = 10
    """States S."""
    num_actions: int = 5
    """Actions A."""
    horizon: int = 10
    """Steps per episode."""


class TabularMDPDistribution:
    """P(. | s, a) ~ Dirichlet(1, ..., 1) and reward means ~ N(1, 1), independently per (s, a).
    Splits share this distribution (continuous tasks: held-out ones differ with probability 1;
    use separate generators per split)."""

    splits = SPLITS

    def __init__(
        self,
        num_states: int = 10,
        num_actions: int = 5,
        horizon: int = 10,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_states = check_positive_int("num_states", num_states)
        self.num_actions = check_positive_int("num_actions", num_actions)
        self.horizon = check_positive_int("horizon", horizon)
        self.device = torch.device(device)

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> TabularMDPTask:
        """`transitions [T, S, A, S]`, `reward_means [T, S, A]` on `self.device`."""
        check_sample_args(split, num_tasks, generator)
        s, a, dev = self.num_states, self.num_actions, generator.device
        # Dirichlet(1) = normalised Exp(1) draws; 1 - U lies in (0, 1], so the log is finite.
        e = -torch.log1p(
            -torch.rand(num_tasks, s, a, s, generator=generator, device=dev, dtype=torch.float64)
        )
        p = (e / e.sum(-1, keepdim=True)).float()
        means = 1.0 + torch.randn(num_tasks, s, a, generator=generator, device=dev)
        return TabularMDPTask(transitions=p.to(self.device), reward_means=means.to(self.device))

    def make_env(
        self, num_tasks: int, envs_per_task: int = 1, **kwargs: Any
    ) -> TabularMDPVectorEnv:
        return TabularMDPVectorEnv(
            num_envs=num_tasks * envs_per_task,
            envs_per_task=envs_per_task,
            num_states=self.num_states,
            num_actions=self.num_actions,
            horizon=self.horizon,
            device=kwargs.pop("device", self.device),
            **kwargs,
        )


def build_tabular_mdp(cfg: TabularMDPConfig, device: torch.device) -> TabularMDPDistribution:
    return TabularMDPDistribution(cfg.num_states, cfg.num_actions, cfg.horizon, device)


class TabularMDPVectorEnv(TensorVectorEnv):
    """Batched tabular MDPs: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: one-hot of the state, `Box(0, 1, (S,), float32)`; batched `[N, S]`.
    - Action: `Discrete(A)`; integers outside `[0, A)` are rejected.
    - Reward: `reward_means[s, a] + N(0, 1)` for the state the action was taken in (`[N]`).
    - Next state: drawn from `transitions[s, a]`.
    - Task: `TabularMDPTask` (see there); sizes must match `num_states`, `num_actions`.
    - Episode: starts in state 0; `horizon` steps (default 10) then `truncated=True`; never
      `terminated`. Trial: as many episodes as the caller wants on one task; a new task is a
      reset with `options={"tasks": ...}`.
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    task_type = TabularMDPTask

    def __init__(
        self,
        num_envs: int = 1,
        envs_per_task: int = 1,
        num_states: int = 10,
        num_actions: int = 5,
        horizon: int = 10,
        device: torch.device | str = "cpu",
        autoreset: bool = True,
        check_actions: bool = True,
    ) -> None:
        dist = TabularMDPDistribution(num_states, num_actions, horizon, device)
        self.num_states, self.num_actions, self.horizon = num_states, num_actions, horizon
        super().__init__(
            num_envs,
            envs_per_task,
            device,
            autoreset,
            check_actions,
            dist,
            spaces.Box(0.0, 1.0, (num_states,), np.float32),
            spaces.Discrete(num_actions),
        )
        self.state = torch.zeros(num_envs, dtype=torch.int64, device=self.device)  # [N]
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    def _check_env_tasks(self, tasks: TabularMDPTask) -> None:
        _, s, a, _ = tasks.transitions.shape
        if (s, a) != (self.num_states, self.num_actions):
            raise UsageError(
                f"TabularMDPTask.transitions: expected {self.num_states} states and {self.num_actions} "
                f"actions (num_states, num_actions), got {s} and {a}"
            )

    def _set_tasks(self, tasks: TabularMDPTask) -> None:
        # Cumulative rows once per task set, so a step is one gather and one comparison.
        self._cum = tasks.transitions.float().cumsum(-1)  # [T, S, A, S]
        self._means = tasks.reward_means.float()  # [T, S, A]

    def _obs(self) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.state, self.num_states).float()

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        self.state = torch.where(mask, 0, self.state)
        self._elapsed = torch.where(mask, 0, self._elapsed)
        return self._obs()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        u = self._uniform(0, 3)  # [N, 3]: next state, two for the Gaussian reward noise
        cum = self._cum[self.task_id, self.state, actions]  # [N, S]
        nxt = (cum <= u[:, :1]).sum(-1).clamp_(max=self.num_states - 1)
        reward = self._means[self.task_id, self.state, actions] + normal_from_uniform(
            u[:, 1], u[:, 2]
        )
        self.state = nxt
        self._elapsed = self._elapsed + 1
        truncated = self._elapsed >= self.horizon
        return self._obs(), reward, torch.zeros_like(truncated), truncated


class TabularMDPEnv(SingleEnvView):
    """Single-env view of `TabularMDPVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = TabularMDPVectorEnv
