"""Random tabular MDPs (the RL² paper's setting): 10 states, 5 actions, 10-step episodes,
transitions ~ Dirichlet(1), reward means ~ N(1, 1), rewards ~ N(mean, 1)."""

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
    normal_from_uniform,
)
from metarl.errors import UsageError
from metarl.tasks import TaskBatch


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


@dataclass(frozen=True)
class TabularMDPConfig:
    num_states: int = 10
    """States S."""
    num_actions: int = 5
    """Actions A."""
    horizon: int = 10
    """Steps per episode."""

    def __post_init__(self) -> None:
        check_positive_int("num_states", self.num_states)
        check_positive_int("num_actions", self.num_actions)
        check_positive_int("horizon", self.horizon)


class TabularMDPVectorEnv(TensorVectorEnv[TabularMDPConfig, TabularMDPTask]):
    """Batched tabular MDPs: `num_envs = num_tasks * envs_per_task` copies.

    - Observation: one-hot of the state, `Box(0, 1, (S,), float32)`; batched `[N, S]`.
    - Action: `Discrete(A)`; integers outside `[0, A)` are rejected.
    - Reward: `reward_means[s, a] + N(0, 1)` for the state the action was taken in (`[N]`).
    - Next state: drawn from `transitions[s, a]`.
    - Task: `TabularMDPTask` (see there); sizes must match `num_states`, `num_actions`. Every
      split draws P(. | s, a) ~ Dirichlet(1, ..., 1) and reward means ~ N(1, 1), independently
      per (s, a) (continuous tasks: held-out ones differ with probability 1).
    - Episode: starts in state 0; `horizon` steps (default 10) then `truncated=True`; never
      `terminated`.
    - Autoreset: same-step (see `envs.tensor.base`).
    """

    config_type = TabularMDPConfig
    task_type = TabularMDPTask
    terminates = False

    @classmethod
    def spaces(cls, config: TabularMDPConfig) -> tuple[spaces.Space, spaces.Space]:
        obs = spaces.Box(0.0, 1.0, (config.num_states,), np.float32)
        return obs, spaces.Discrete(config.num_actions)

    @classmethod
    def sample_tasks(
        cls, config: TabularMDPConfig, split: str, num_tasks: int, generator: torch.Generator
    ) -> TabularMDPTask:
        """`transitions [T, S, A, S]`, `reward_means [T, S, A]` on the generator's device."""
        s, a, dev = config.num_states, config.num_actions, generator.device
        # Dirichlet(1) = normalised Exp(1) draws; 1 - U lies in (0, 1], so the log is finite.
        e = -torch.log1p(
            -torch.rand(num_tasks, s, a, s, generator=generator, device=dev, dtype=torch.float64)
        )
        p = (e / e.sum(-1, keepdim=True)).float()
        means = 1.0 + torch.randn(num_tasks, s, a, generator=generator, device=dev)
        return TabularMDPTask(transitions=p, reward_means=means)

    def _init_state(self) -> None:
        self.state = self._zeros(dtype=torch.int64)  # [N]
        self._eye = torch.eye(self.config.num_states, device=self.device)  # [S, S]

    def _check_env_tasks(self, tasks: TabularMDPTask) -> None:
        _, s, a, _ = tasks.transitions.shape
        c = self.config
        if (s, a) != (c.num_states, c.num_actions):
            raise UsageError(
                f"TabularMDPTask.transitions: expected {c.num_states} states and {c.num_actions} "
                f"actions (num_states, num_actions), got {s} and {a}"
            )

    def _set_tasks(self, tasks: TabularMDPTask) -> None:
        # Cumulative rows once per task set, so a step is one gather and one comparison; the
        # tables are flat over (task, state, action), indexed by one row number per copy
        # (`index_select` / `take` on one index are several times faster than indexing
        # `[T, S, A, S]` with three index tensors).
        s = self.config.num_states
        self._cum = tasks.transitions.float().cumsum(-1).reshape(-1, s)  # [T * S * A, S]
        self._means = tasks.reward_means.float().reshape(-1)  # [T * S * A]
        self._task_row = self.task_id * (s * self.config.num_actions)  # [N]

    def _obs(self) -> torch.Tensor:
        return self._eye.index_select(0, self.state)  # [N, S]: one-hot rows

    def _reset_envs(self, mask: torch.Tensor) -> torch.Tensor:
        self.state = self.state.masked_fill(mask, 0)
        return self._obs()

    def _step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = self._uniform(0, 3)  # [N, 3]: next state, two for the Gaussian reward noise
        row = self._task_row + self.state * self.config.num_actions + actions  # [N]
        cum = self._cum.index_select(0, row)  # [N, S]
        nxt = (cum <= u[:, :1]).sum(-1).clamp_(max=self.config.num_states - 1)
        reward = self._means.take(row) + normal_from_uniform(u[:, 1], u[:, 2])
        self.state = nxt
        return self._obs(), reward, torch.zeros_like(nxt, dtype=torch.bool)


TabularMDPDistribution = TabularMDPVectorEnv.distribution


class TabularMDPEnv(SingleEnvView):
    """Single-env view of `TabularMDPVectorEnv` (numpy in/out); same spaces, reward and task."""

    vector_cls = TabularMDPVectorEnv
