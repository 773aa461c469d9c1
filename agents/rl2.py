"""RL² (Duan et al. 2016): a recurrent policy that learns to adapt inside its hidden state.

A *trial* is `n` episodes on one task; the policy sees `[obs, a_{t-1}, r_{t-1}, done_{t-1}]`
and keeps its state over the episode boundaries of a trial (it is reset only between trials,
see `agents.rollout`), so whatever it learnt about the task in episode 1 shapes episode 2.
The outer update is PPO over whole trials: one recurrent pass per trial from the initial
state, so the gradient flows through the full history that produced each action.

Advantages: GAE along the whole trial, *not* cut at episode ends inside it. The RL²
objective is the total return of the trial, so an action in episode 1 is credited with
what it revealed for episodes 2..n (exploration pays off later); the value bootstraps from
the next episode's first state across the boundary. Only the end of the trial stops it.

`policy: memory` swaps the GRU for `MemoryPolicy` (a controller with an external memory,
content-based reads, least-recently-used writes); everything else is the same.

Budget = episodes of experience: the adaptation curve is the mean return of episode
`b + 1` of a trial on held-out tasks, `b = 0..K` (row b: after b episodes on the task).

Under `torchrun` (`agents.sharding`) each rank plays its tasks' trials; PPO draws the one
minibatch partition over the global trial index on every rank, each rank's loss over its
trials is weighted by its share of the minibatch's valid steps, gradients are summed over
ranks before clipping, and the advantage mean / std and value-normaliser statistics are
those of the whole batch: every rank takes the one-process step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from agents.advantages import ValueNormalizer, gae
from agents.optim import PPO_TERMS, ppo_loss
from agents.policies import MemoryPolicy, RecurrentPolicy, check_head, make_recurrent_policy
from agents.rollout import (
    RecurrentActor,
    Trajectories,
    TrialBatch,
    check_meta_rl,
    make_batched_env,
    rollout,
)
from agents.sharding import (
    Rows,
    full,
    gather_counts,
    global_mean,
    minibatches,
    moments,
    normalize_over,
    sum_,
    sum_shares,
    task_rows,
)
from agents.video import record_episodes, side_by_side
from metarl.config import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
)
from metarl.contracts import MetaRLDistribution, TaskBatchLike
from metarl.distributed import sync_grads_
from metarl.errors import UsageError, deferred_finite_checks
from metarl.seeding import make_generator, seeded


@dataclass
class RL2Config:
    policy: Literal["gru", "memory"] = "gru"
    """Recurrent core: RL²'s GRU, or the memory-augmented policy (external memory)."""
    head: Literal["auto", "categorical", "gaussian"] = "auto"
    """Action distribution; auto picks categorical for Discrete and Gaussian for Box actions."""
    hidden_size: PositiveInt = 256
    """GRU units (RL²: 256), or the memory controller's units."""
    memory_slots: PositiveInt = 64
    """Memory policy: rows of the external memory."""
    memory_width: PositiveInt = 32
    """Memory policy: width of a memory row."""
    init_std: PositiveFloat = 1.0
    """Gaussian head: initial standard deviation."""
    episodes_per_trial: PositiveInt = 10
    """n: episodes per trial (the hidden state lives across them)."""
    trials_per_task: PositiveInt = 1
    """Parallel trials (env copies) per training task."""
    horizon: PositiveInt | None = None
    """Episode length: tensor tasks use task.horizon (this must match it if set); MuJoCo
    tasks end episodes after this many steps (default 200)."""
    gamma: UnitInterval = 0.99
    """Discount over the whole trial."""
    gae_lambda: UnitInterval = 0.95
    """GAE lambda (along the trial)."""
    reward_scale: PositiveFloat = 1.0
    """Rewards are multiplied by this for the update only (metrics stay unscaled). Keep the
    discounted returns within about +-10: larger value targets let the value loss dominate
    the clipped gradient of the shared trunk (navigation at scale 1 stayed below random), or
    set `normalize_values`."""
    outer_lr: PositiveFloat = 3e-4
    """Adam step size."""
    ppo_epochs: PositiveInt = 4
    """Passes over the batch of trials per meta-step."""
    minibatches: PositiveInt = 1
    """Minibatches of trials per PPO epoch (at most one trial each)."""
    clip_eps: PositiveFloat = 0.2
    """PPO clipping epsilon."""
    value_coef: NonNegativeFloat = 0.5
    """Weight of the value loss."""
    entropy_coef: NonNegativeFloat = 0.01
    """Weight of the entropy bonus (at the first meta-step, with `entropy_anneal_iterations`)."""
    entropy_coef_final: NonNegativeFloat | None = None
    """With `entropy_anneal_iterations`: the weight reached, linearly, after that many
    meta-steps and kept from then on (null: `entropy_coef` throughout)."""
    entropy_anneal_iterations: NonNegativeInt = 0
    """Meta-steps over which the entropy weight moves from `entropy_coef` to
    `entropy_coef_final` (0: no schedule)."""
    max_grad_norm: NonNegativeFloat = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    normalize_advantages: bool = True
    """Standardise advantages over the batch (valid steps only)."""
    eval_trials_per_task: PositiveInt = 1
    """Trials per held-out task in the adaptation curve (their returns are averaged)."""
    eval_deterministic: bool = False
    """Evaluate with the policy's mode instead of sampling (RL² evaluates stochastically)."""
    normalize_values: bool = False
    """Standardise value targets with running statistics (`agents.advantages.ValueNormalizer`):
    the value head predicts standardised returns, so no `reward_scale` needs choosing."""
    task_in_obs: bool = False
    """The oracle baseline: every observation ends with the task parameters, so the same
    recurrent policy and PPO, trained on the same env steps, need not infer the task."""


class RL2:
    """RL² learner (`policy: gru`) and memory-augmented policy learner (`policy: memory`)."""

    metric = "return"
    distributed = True  # meta_step / curves take a shard of the batch (agents.sharding)
    higher_is_better = True
    budget_name = "episodes"

    def __init__(
        self,
        cfg: RL2Config,
        distribution: MetaRLDistribution[Any],
        policy: RecurrentPolicy | MemoryPolicy,
        device: torch.device | str,
        seed: int,
    ) -> None:
        self.cfg, self.distribution, self.device = cfg, distribution, torch.device(device)
        self.policy = policy.to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.outer_lr)
        self.headline_budget = cfg.episodes_per_trial - 1
        self.train_generator = make_generator(seed, "rl2/train", self.device)
        self.eval_generator = make_generator(seed, "rl2/eval", self.device)
        self._envs: dict[tuple[int, int], Any] = {}
        self.discrete = None
        self.value_norm = ValueNormalizer() if cfg.normalize_values else None
        self.meta_steps = 0  # meta-steps taken: the entropy schedule's clock

    def entropy_weight(self) -> float:
        """The entropy bonus's weight at the current meta-step (linear schedule)."""
        c = self.cfg
        if c.entropy_coef_final is None or c.entropy_anneal_iterations <= 0:
            return c.entropy_coef
        frac = min(self.meta_steps / c.entropy_anneal_iterations, 1.0)
        return c.entropy_coef + frac * (c.entropy_coef_final - c.entropy_coef)

    # -- experience -------------------------------------------------------------------------
    def _env(self, num_tasks: int, copies: int) -> Any:
        key = (num_tasks, copies)
        if key not in self._envs:
            c = self.cfg
            env = make_batched_env(
                self.distribution, num_tasks, copies, self.device, c.horizon, c.task_in_obs
            )
            self._envs[key] = env
        return self._envs[key]

    def play(
        self,
        tasks: TaskBatchLike,
        episodes: int,
        copies: int,
        gen: torch.Generator,
        deterministic: bool = False,
        rows: Rows | None = None,
    ) -> Trajectories:
        """One trial of `episodes` episodes on `copies` env copies per task (a rollout);
        `rows`: the tasks' rows of a sharded meta-batch (`agents.sharding`)."""
        env = self._env(tasks.num_tasks, copies)
        self.discrete = env.discrete
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device))
        self.policy.eval()
        rows = rows or full(tasks.num_tasks)
        actor = RecurrentActor(self.policy, gen, deterministic, rows.scale(copies))
        return rollout(env, tasks, actor, episodes, seed, rows=rows)

    # -- the outer update -------------------------------------------------------------------
    def advantages(self, tb: TrialBatch) -> tuple[Tensor, Tensor]:
        """GAE over each trial `[B, L]`, `done` only at the trial's last valid step: the
        advantages and the value targets (returns), both `[B, L]`, zero on padding."""
        mask = tb.mask
        last = (mask.sum(1).long() - 1).clamp(min=0)
        trial_end = torch.zeros_like(mask).scatter_(1, last[:, None], 1.0)
        values = tb.values if self.value_norm is None else self.value_norm.denormalize(tb.values)
        values = values * mask
        adv = gae(
            tb.rewards * self.cfg.reward_scale,
            values,
            trial_end,
            self.cfg.gamma,
            self.cfg.gae_lambda,
            dim=1,
        )
        adv = adv * mask
        return adv, adv + values

    def _ppo(self, tb: TrialBatch, rows: Rows | None = None) -> dict[str, Tensor]:
        """PPO epochs over the trials `[B, L]`; `rows`: they are these trial rows of a
        sharded batch (every statistic is then the whole batch's, module docstring).
        Returns each loss term per update, stacked `[U]`, on the device (this rank's shares
        when sharded): reading them is the caller's one host sync."""
        c = self.cfg
        rows = rows or full(tb.mask.shape[0])
        adv, returns = self.advantages(tb)
        if c.normalize_advantages:
            adv = normalize_over(adv, tb.mask, rows)
        if self.value_norm is not None:  # the value head learns standardised targets
            if rows.sharded:
                self.value_norm.update_moments(*moments(returns, tb.mask, rows))
            else:
                self.value_norm.update(returns, tb.mask)
            returns = self.value_norm.normalize(returns) * tb.mask
        prev = tb.previous(bool(self.discrete))
        b = rows.total
        chunks = min(c.minibatches, b)  # a small meta-batch gets fewer minibatches
        # Valid steps of every trial of the batch: each minibatch's loss is a mean over them.
        steps = gather_counts(tb.mask.sum(1), rows) if rows.sharded else None
        self.policy.train()
        terms_per_update: dict[str, list[Tensor]] = {}
        for _ in range(c.ppo_epochs):
            perm = torch.randperm(
                b, generator=self.train_generator, device=self.train_generator.device
            )
            for idx, share in minibatches(perm, chunks, rows, self.device, steps):
                self.optimizer.zero_grad(set_to_none=True)
                terms = self._minibatch(tb, prev, adv, returns, idx, share)
                if rows.sharded:
                    sync_grads_(self.policy.parameters(), 1.0)
                if c.max_grad_norm > 0:
                    norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), c.max_grad_norm)
                    terms["grad_norm"] = norm
                self.optimizer.step()
                for k, v in terms.items():
                    terms_per_update.setdefault(k, []).append(v.detach())
        return {k: torch.stack(v) for k, v in terms_per_update.items()}

    def _minibatch(
        self,
        tb: TrialBatch,
        prev: tuple[Tensor, Tensor, Tensor],
        adv: Tensor,
        returns: Tensor,
        idx: Tensor,
        share: float,
    ) -> dict[str, Tensor]:
        """PPO terms of the trials `idx` (backpropagated), each times `share`: this rank's
        part of the minibatch's valid steps (1.0 unsharded; no trials here: zeros)."""
        c = self.cfg
        if len(idx) == 0:
            zero = torch.zeros((), device=self.device)
            return dict.fromkeys(PPO_TERMS, zero)

        def tm(x: Tensor) -> Tensor:  # time-major [L, b, ...]
            return x[idx].transpose(0, 1)

        dist, values, _ = self.policy(
            tm(tb.obs), *(tm(x) for x in prev), self.policy.initial_state(len(idx))
        )
        terms = ppo_loss(
            dist.log_prob(tm(tb.actions)),
            tm(tb.log_probs),
            tm(adv),
            c.clip_eps,
            tm(tb.mask),
            values=values,
            returns=tm(returns),
            entropy=dist.entropy(),
            value_coef=c.value_coef,
            entropy_coef=self.entropy_weight(),
        )
        if share != 1.0:
            terms = {k: v * share for k, v in terms.items()}
        terms["loss"].backward()
        return terms

    # -- learner contract -------------------------------------------------------------------
    def meta_step(self, tasks: TaskBatchLike) -> dict[str, float]:
        """Play one trial per copy on each task, then PPO epochs over the trials.

        Host syncs: the trial's env seed (one int), the value normaliser's statistics (with
        `normalize_values`), the deferred finite checks and the metrics, each read once per
        meta-step; the rollout and PPO loops never wait for the device."""
        c = self.cfg
        rows = task_rows(tasks.num_tasks)  # this rank's rows of the meta-batch
        trials = rows.scale(c.trials_per_task)
        with deferred_finite_checks():
            traj = self.play(
                tasks, c.episodes_per_trial, c.trials_per_task, self.train_generator, rows=rows
            )
            terms = self._ppo(traj.trials(), trials)
        weight = self.entropy_weight()  # the one this meta-step used
        self.meta_steps += 1
        returns = traj.returns_by_episode_index()  # [T, n]
        summary = [returns.sum(1).mean(), returns[:, 0].mean(), returns[:, -1].mean()]
        values = torch.cat([*terms.values(), torch.stack(summary)]).tolist()  # one read
        metrics: dict[str, float] = {}
        at = 0
        for k, v in terms.items():
            # the mean over updates, summed in Python floats as before (same numbers)
            metrics[k] = sum(values[at : at + len(v)], 0.0) / len(v)
            at += len(v)
        metrics = sum_shares(metrics, trials)  # this rank's shares -> the whole batch's
        names = ("trial_return", "first_episode_return", "last_episode_return")
        metrics.update(global_mean(dict(zip(names, values[at:], strict=True)), rows.weight, rows))
        metrics["env_steps"] = float(traj.env_steps)
        metrics["entropy_coef"] = weight
        if rows.sharded:  # every rank's steps
            metrics["env_steps"] = float(sum_(torch.tensor([metrics["env_steps"]]), rows))
        return metrics

    def adapt(self, tasks: TaskBatchLike, budget: int) -> Trajectories:
        """A trial of `budget + 1` episodes: `budget` of experience, then the evaluated one."""
        if budget < 0:
            raise UsageError(f"budget must be >= 0 episodes, got {budget}")
        return self._trial(tasks, budget, None)

    def _trial(self, tasks: TaskBatchLike, budget: int, rows: Rows | None) -> Trajectories:
        c = self.cfg
        return self.play(
            tasks,
            budget + 1,
            c.eval_trials_per_task,
            self.eval_generator,
            c.eval_deterministic,
            rows,
        )

    def evaluate(self, adapted: Trajectories, tasks: TaskBatchLike) -> Tensor:
        """Return of the trial's last episode per task `[T]` (mean over its trials)."""
        return adapted.returns_by_episode_index()[:, -1]

    def adaptation_curve(self, tasks: TaskBatchLike, max_budget: int) -> Tensor:
        """`[max_budget + 1, T]`: row b = mean return of episode b + 1, all in one trial.
        Under `torchrun`, a collective: each rank's tasks are its rows of the held-out batch."""
        if max_budget < 0:
            raise UsageError(f"budget must be >= 0 episodes, got {max_budget}")
        trial = self._trial(tasks, max_budget, task_rows(tasks.num_tasks))
        return trial.returns_by_episode_index().T

    def record(self, tasks: TaskBatchLike, width: int = 160, height: int = 120) -> np.ndarray:
        """Video `[F, H, 2W, 3]` uint8 of one trial on task 0: its first episode (left,
        no experience of the task yet) beside its last (right, after `episodes_per_trial - 1`
        episodes of it in memory). MuJoCo families only."""
        task, n = tasks.select(0), self.cfg.episodes_per_trial
        env = make_batched_env(
            self.distribution, 1, 1, self.device, self.cfg.horizon, self.cfg.task_in_obs
        )
        rng_state = self.eval_generator.get_state()  # recording leaves evaluation unchanged
        try:
            self.policy.eval()
            actor = RecurrentActor(self.policy, self.eval_generator, self.cfg.eval_deterministic)
            episodes = [0, n - 1] if n > 1 else [0]
            g = self.eval_generator
            seed = int(torch.randint(2**31 - 1, (1,), generator=g, device=g.device))
            clips = record_episodes(env, task, actor, n, episodes, 2, width, height, seed)
            return side_by_side(clips)
        finally:
            self.eval_generator.set_state(rng_state)
            env.close()

    def bytes_per_task(self, probe: TaskBatchLike) -> int:
        """Memory one task of a meta-batch needs (the up-front check of `metarl.resources`): its
        trials' trajectories, plus about 6 numbers per hidden unit and step that PPO's backward
        through the recurrent core keeps (gates, candidate and state)."""
        from agents.rollout import trajectory_bytes
        from metarl.resources import tensor_bytes

        c = self.cfg
        steps = c.episodes_per_trial * (c.horizon or self.distribution.horizon)
        copies = max(c.trials_per_task, c.eval_trials_per_task)
        return tensor_bytes(probe) + trajectory_bytes(
            self.distribution, copies, steps, 6 * c.hidden_size
        )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": {
                "train": self.train_generator.get_state(),
                "eval": self.eval_generator.get_state(),
            },
            "value_norm": None if self.value_norm is None else self.value_norm.state_dict(),
        }
        if self.cfg.entropy_anneal_iterations > 0:  # the schedule's clock, only where one runs
            state["meta_steps"] = self.meta_steps  # (so checkpoints without one keep their keys)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_generator.set_state(state["generators"]["train"])
        self.eval_generator.set_state(state["generators"]["eval"])
        if self.value_norm is not None and state.get("value_norm") is not None:
            self.value_norm.load_state_dict(state["value_norm"])
        self.meta_steps = int(state.get("meta_steps", 0))


def check_config(cfg: RL2Config) -> None:
    """One-line `UsageError`s for settings that cannot work."""
    ints = {
        "episodes_per_trial": cfg.episodes_per_trial,
        "trials_per_task": cfg.trials_per_task,
        "eval_trials_per_task": cfg.eval_trials_per_task,
        "hidden_size": cfg.hidden_size,
        "ppo_epochs": cfg.ppo_epochs,
        "minibatches": cfg.minibatches,
    }
    for name, value in ints.items():
        if value < 1:
            raise UsageError(f"learner.{name} must be >= 1, got {value}")
    if cfg.horizon is not None and cfg.horizon < 1:
        raise UsageError(f"learner.horizon must be >= 1 steps (or null), got {cfg.horizon}")
    for name in ("gamma", "gae_lambda"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise UsageError(f"learner.{name} must be in [0, 1], got {getattr(cfg, name)}")
    if not 0.0 < cfg.clip_eps < 1.0:
        raise UsageError(f"learner.clip_eps must be in (0, 1), got {cfg.clip_eps}")
    if cfg.entropy_anneal_iterations > 0 and cfg.entropy_coef_final is None:
        raise UsageError(
            "learner.entropy_anneal_iterations needs learner.entropy_coef_final (the weight "
            "to anneal to); set it, or set entropy_anneal_iterations: 0"
        )
    if cfg.outer_lr <= 0 or cfg.reward_scale <= 0 or cfg.init_std <= 0:
        raise UsageError("learner.outer_lr, reward_scale and init_std must be > 0")


def build_rl2(cfg: RL2Config, distribution: Any, device: torch.device, seed: int) -> RL2:
    check_config(cfg)
    check_meta_rl(distribution, "learner.kind rl2")
    probe = make_batched_env(distribution, 1, 1, "cpu", cfg.horizon, cfg.task_in_obs)
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    try:
        head = check_head(cfg.head, act_space)
    except UsageError as err:
        raise UsageError(f"learner.head: {err}") from None
    kwargs: dict[str, Any] = {"hidden_size": cfg.hidden_size, "init_std": cfg.init_std}
    if cfg.policy == "memory":
        kwargs.update(slots=cfg.memory_slots, width=cfg.memory_width)
    with seeded(seed, "model"):
        policy = make_recurrent_policy(
            obs_space, act_space, "gru" if cfg.policy == "gru" else "memory", head, **kwargs
        )
    return RL2(cfg, distribution, policy, device, seed)
