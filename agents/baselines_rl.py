"""Baselines beside MAML-RL in the adaptation-gap tables: oracle, fine-tuned multi-task, random.

- *Oracle*: the same policy and TRPO outer step, no inner step, with the task parameters
  appended to every observation (`task_in_obs`): it need not adapt, so it bounds what
  adaptation can reach with the same sample budget. For RL² and the memory policy the
  oracle is the same recurrent learner with `task_in_obs` (`agents.rl2.RL2Config`).
- *Multi-task, fine-tuned*: the same policy trained by TRPO on the mixture of training tasks
  without task information (no inner step while training), then adapted at test time with
  MAML's inner steps (same step size, same fresh episodes per step): pre-training without
  meta-learning, fine-tuned with the same adaptation experience.
- *Random*: uniformly random actions.

`gap_closure(pre, adapted, oracle) = (adapted - pre) / (oracle - pre)`: the share of the gap
between the unadapted policy and the oracle that adaptation closes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from gymnasium import spaces
from torch import Tensor

from agents.maml_rl import MAMLRLConfig
from agents.rollout import ActorOutput, make_batched_env, rollout
from metarl.contracts import MetaRLDistribution, TaskBatchLike


def oracle_config(cfg: MAMLRLConfig) -> MAMLRLConfig:
    """`cfg` as the task-conditioned oracle: task parameters observed, no inner step."""
    return replace(cfg, task_in_obs=True, adapt_steps=0, eval_adapt_steps=0)


def multitask_config(cfg: MAMLRLConfig) -> MAMLRLConfig:
    """`cfg` as the multi-task baseline: no inner step while training; test-time inner steps
    (`inner_lr`, `eval_adapt_steps`) stay as MAML's, so the curve is its fine-tuning."""
    return replace(cfg, adapt_steps=0, task_in_obs=False)


class RandomActor:
    """Uniform random actions over a Box or Discrete space, from an explicit generator."""

    def __init__(self, action_space: spaces.Space, generator: torch.Generator) -> None:
        self.space, self.generator = action_space, generator

    def initial_state(self, num_envs: int) -> None:
        return None

    def __call__(self, obs, prev_action, prev_reward, prev_done, state) -> ActorOutput:
        n, g = obs.shape[0], self.generator
        if isinstance(self.space, spaces.Discrete):
            action = torch.randint(int(self.space.n), (n,), generator=g, device=g.device)
        else:
            assert isinstance(self.space, spaces.Box)
            low = torch.as_tensor(self.space.low, device=obs.device)
            high = torch.as_tensor(self.space.high, device=obs.device)
            u = torch.rand(n, *low.shape, generator=g, device=g.device).to(obs.device)
            action = low + (high - low) * u
        zeros = obs.new_zeros(n)
        return ActorOutput(action, zeros, zeros, None)


def random_returns(
    distribution: MetaRLDistribution[Any],
    tasks: TaskBatchLike,
    episodes: int,
    generator: torch.Generator,
    horizon: int | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Mean undiscounted return `[T]` of `episodes` uniformly random episodes per task."""
    env = make_batched_env(distribution, tasks.num_tasks, episodes, device, horizon)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
    traj = rollout(env, tasks, RandomActor(env.action_space, generator), 1, seed)
    env.close()
    return traj.episode_returns().mean(1)


def gap_closure(pre: float, adapted: float, oracle: float) -> float:
    """`(adapted - pre) / (oracle - pre)`; NaN when the oracle is no better than `pre`."""
    gap = oracle - pre
    return (adapted - pre) / gap if gap > 0 else float("nan")
