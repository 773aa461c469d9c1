"""Task inference with privileged training (Humplik et al. 2019; RMA, Kumar et al. 2021).

Phase 1 (iterations `1..phase2_start`): a feed-forward policy `pi(a | obs, z)` and value
`V(obs, z)` conditioned on a task embedding `z = encoder(task.features())` (slope angle,
terrain profile, goal, arm probabilities: whatever the task batch holds), trained end to end
with PPO (`agents.optim.ppo_loss`, GAE per episode) on the training tasks.

Phase 2 (the iterations after): encoder and policy are frozen; an *adaptation module* -- a
temporal convolution over the last `history_length` steps of (observation, previous action,
previous reward, previous done) -- is regressed on `z` (MSE) from on-policy rollouts of the
policy driven by the module's *own* predictions, so it learns on the states it will see.
With `finetune_policy`, the same rollouts also train policy and value by PPO on the module's
predictions (the encoder stays frozen): where a short history cannot tell tasks apart (a goal
seen through a few distances), the policy learns to act so that it can.

At evaluation only the history reaches the agent: the actor (`HistoryActor`) is given the
step inputs of `agents.rollout.rollout` and nothing else; the task parameters are only used by
the env. The history window lives across the episodes of a trial (it is zeroed at trial start,
with a "valid" channel marking real steps), so budget = episodes of a trial, as for RL²:
curve row b is the return of episode b + 1. It adapts *inside* episode 1, so the headline is
budget 0 and `within_episode_curve` gives the return per window of `window` steps of
episode 1 (`results.json` `within_episode`, TensorBoard `final/window_*`).

`mode` makes the honest baselines from the same PPO, network and env steps:
- `blind`: the policy sees no task (`z` has width 0): what one gets without meta-learning;
- `oracle`: phase 1 for every iteration, evaluated with `z = encoder(task)` (task in obs);
- `learner`: phase 1, then phase 2; evaluated from history only.

Under `torchrun` (`agents.sharding`) each rank plays its tasks; PPO and the phase-2
regression draw one minibatch partition over the global index of the batch's valid steps on
every rank, weight each rank's loss by its share of the minibatch, sum the gradients before
clipping, and take the advantage mean / std and the value and observation normalisers'
statistics over the whole batch: every rank takes the one-process step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from torch import Tensor, nn

from agents.advantages import ValueNormalizer, gae
from agents.optim import PPO_TERMS, ppo_loss
from agents.policies import ValueMLP, check_head, make_mlp_policy, mlp
from agents.rollout import (
    ActorOutput,
    BatchedEnv,
    Trajectories,
    check_meta_rl,
    make_batched_env,
    normal_rows,
    rollout,
    sample_action,
    task_features,
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
from metarl.contracts import TaskBatchLike
from metarl.distributed import sync_grads_
from metarl.errors import UsageError
from metarl.seeding import make_generator, seeded


@dataclass
class TaskInferenceConfig:
    mode: Literal["learner", "blind", "oracle"] = "learner"
    """learner: phase 1 then phase 2, evaluated from history; blind: no task input; oracle:
    phase 1 only, evaluated with the true task embedding (the baselines)."""
    head: Literal["auto", "categorical", "gaussian"] = "auto"
    """Action distribution; auto picks categorical for Discrete and Gaussian for Box actions."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Policy and value MLP hidden sizes (input: observation and z)."""
    z_dim: int = 8
    """Width of the task embedding z."""
    encoder_hidden_sizes: list[int] = field(default_factory=lambda: [32])
    """Hidden sizes of the task encoder (task parameters -> z)."""
    adapter: Literal["conv", "gru"] = "conv"
    """The adaptation module: `conv`, temporal convolutions over the last `history_length`
    steps (RMA; for dynamics that reveal the task at every step, such as a slope); `gru`, a
    GRU over the whole trial so far (for tasks revealed by a few informative steps that must
    be remembered, such as a goal seen through distances: once the agent stops, a window of
    the last k steps no longer holds where it came from)."""
    belief: Literal["point", "sample"] = "point"
    """What the adaptation module outputs. `point`: z itself (RMA), regressed by squared
    error. `sample`: a Gaussian belief (mean, log-std) over the *standardised task
    parameters*, trained by its negative log-likelihood; the actor acts on
    `z = encoder(mean + std * eps)` with `eps ~ N(0, I)` drawn once per trial (posterior
    sampling that commits to its draw): where the history leaves the task ambiguous (a goal
    seen through its distance along a straight line is mirrored across it) the draw sends the
    agent off the mean, which tells the two apart, and as the belief narrows `z` tends to the
    mean. A point estimate there drives the agent to the mean of the candidates and keeps it
    on the line of ambiguity. The draw is part of the agent, so it is made at evaluation too
    (from the evaluation generator; `eval_deterministic` still takes the action's mode).
    Measured on 2-D navigation it did worse than `point` at every budget tried
    (results/ti_navigation_sweep.md): an option, not a default of any shipped config."""
    history_length: int = 32
    """k: steps of history the `conv` module sees (1 <= k <= horizon; `gru` sees them all)."""
    adapter_channels: int = 32
    """Channels of the adaptation module (convolutions, or the GRU's hidden state)."""
    phase2_start: int = 100
    """Iterations of phase 1; phase 2 runs from the next one (mode learner; < train.iterations)."""
    adapter_lr: float = 1e-3
    """Adam step size of the adaptation module (phase 2)."""
    adapter_epochs: int = 4
    """Passes over each phase-2 batch."""
    adapter_minibatch: Literal["steps", "trials"] = "steps"
    """What a phase-2 minibatch (`minibatches` per pass) is made of. `steps`: a random set of
    the batch's valid steps (the `gru` then runs over every trial for each minibatch: about
    `minibatches` times the compute of one pass). `trials`: a random set of whole trials, the
    GRU running over only those (`gru` only: a `conv` window is one step's input already)."""
    finetune_policy: bool = False
    """Phase 2 also trains policy and value by PPO on the adaptation module's z (the z the
    actor acted on), so the policy learns to act on what it can infer, exploring where the
    history is ambiguous; the encoder and the observation statistics stay frozen, so the
    regression target does not move. False: the policy is frozen in phase 2 (RMA)."""
    episodes_per_trial: int = 1
    """Episodes each env copy plays per iteration (the history lives across them)."""
    envs_per_task: int = 1
    """Env copies per training task."""
    horizon: int | None = None
    """Episode length (tensor tasks: their own; MuJoCo default 200)."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    outer_lr: float = 3e-4
    """Adam step size of PPO (policy, value, encoder)."""
    ppo_epochs: int = 10
    minibatches: int = 8
    """Minibatches of steps per PPO epoch."""
    clip_eps: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 0.5
    init_std: float = 1.0
    """Gaussian head: initial standard deviation."""
    normalize_obs: bool = True
    """Standardise observations with running statistics (phase 1; frozen in phase 2)."""
    normalize_values: bool = True
    """Standardise value targets (`agents.advantages.ValueNormalizer`)."""
    privileged_value: bool = False
    """The value function also sees the standardised task parameters (an asymmetric actor-
    critic: training only, since the value is not used to act). Where returns differ a lot
    between tasks (a pace to hold: standing still costs the pace every step) a value that
    cannot tell the tasks apart gives every action of a demanding task a negative advantage,
    which teaches standing still; this removes that bias for every mode, blind included (its
    *policy* still never sees the task). Phase 2 does not use the value (it needs
    `finetune_policy: false`), and evaluation never reads the task."""
    value_time: bool = False
    """The value function also sees the step's place in its episode (t / horizon). Episodes
    end at the horizon without a bootstrap (`agents.rollout`), so the return still to come
    depends on the steps left, which the observation does not hold; where every step pays a
    large task-dependent amount (a pace to hold) a value blind to time mis-credits early and
    late steps (Pardo et al. 2018, "Time limits in reinforcement learning"). The policy never
    sees it; training rollouts only, as `privileged_value` (needs `finetune_policy: false`)."""
    eval_deterministic: bool = True
    """Evaluate with the policy's mode (the same for learner, blind and oracle). False samples
    actions from the evaluation generator, as in training: the adaptation module learnt from
    histories of the sampled policy, and where the mode's straight path leaves the task
    ambiguous (2-D navigation) the samples step off it (results/ti_navigation_sweep.md)."""
    eval_trials_per_task: int = 1
    """Trials per held-out task in the adaptation curve (averaged)."""
    window: int = 20
    """Steps per window of the within-episode-1 return rows."""

    def check_run(self, run: Any) -> None:
        """Checks that need the whole run config (`metarl.registry.validate`)."""
        if self.mode == "learner" and self.phase2_start >= run.train.iterations:
            raise UsageError(
                f"learner.phase2_start={self.phase2_start} must be below train.iterations="
                f"{run.train.iterations}: phase 2 (the adaptation module) needs an iteration"
            )


class RunningNorm(nn.Module):
    """Running mean / variance of observations `[..., D]` (float64 buffers, checkpointed)."""

    count: Tensor  # buffers (registered below), typed for the checker
    mean: Tensor
    m2: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))

    def update(self, x: Tensor, rows: Rows | None = None) -> None:
        """Fold rows `x [S, D]` in (Chan et al.'s parallel variance); `rows`: `x` is this
        rank's part of a sharded batch (the whole batch's mean and spread are folded in)."""
        x = x.double()
        if rows is not None and rows.sharded:
            stats = torch.cat([x.new_full((1,), float(x.shape[0])), x.sum(0)])
            sum_(stats, rows)
            n, mean = int(stats[0]), stats[1:] / stats[0].clamp(min=1.0)
            spread = sum_(((x - mean) ** 2).sum(0), rows)
        else:
            n, mean = x.shape[0], x.mean(0)
            spread = ((x - mean) ** 2).sum(0) if n else mean
        if n == 0:
            return
        delta, total = mean - self.mean, self.count + n
        self.m2 += spread + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count.copy_(total)

    def forward(self, x: Tensor) -> Tensor:
        if self.count < 2:
            return x
        std = (self.m2 / (self.count - 1)).sqrt().clamp(min=1e-4)
        return ((x - self.mean.to(x.dtype)) / std.to(x.dtype)).clamp(-10.0, 10.0)


def windows_of(rows: Tensor, k: int) -> Tensor:
    """The window of the last `k` rows at every step of `rows [B, L, D]`, zero (not valid)
    before the trial's start: `[B, L, k, D]`."""
    padded = torch.cat([rows.new_zeros(rows.shape[0], k - 1, rows.shape[2]), rows], 1)
    return padded.unfold(1, k, 1).transpose(2, 3)


class AdaptationModule(nn.Module):
    """History `[N, k, D]` -> output `[N, O]` (`Agent.z_of` makes z of it): a per-step linear
    embedding, two temporal convolutions (kernel 5, same padding) along the k steps, then a
    linear read-out of all k positions (as RMA's 1-D convolution over the recent states and
    actions)."""

    def __init__(self, step_dim: int, k: int, channels: int, z_dim: int) -> None:
        super().__init__()
        self.k = k
        self.embed = nn.Sequential(nn.Linear(step_dim, channels), nn.ReLU())
        self.conv = nn.Sequential(
            nn.Conv1d(channels, channels, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, padding=2),
            nn.ReLU(),
        )
        self.out = nn.Linear(channels * k, z_dim)

    def forward(self, history: Tensor) -> Tensor:
        h = self.embed(history).transpose(1, 2)  # [N, C, k]
        return self.out(self.conv(h).flatten(1))

    def initial_state(self, num_envs: int, step_dim: int, device) -> Tensor:
        """An empty window `[N, k, D]` (all rows not valid)."""
        return torch.zeros(num_envs, self.k, step_dim, device=device)

    def step(self, row: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One step: `row [N, D]` joins the window `state [N, k, D]`; returns the output
        `[N, O]` and the new window."""
        window = torch.cat([state[:, 1:], row[:, None]], 1)
        return self(window), window

    def sequence(self, rows: Tensor) -> Tensor:
        """The output at every step of trials `rows [B, L, D]` (from an empty window):
        `[B, L, O]`."""
        return self(windows_of(rows, self.k).flatten(0, 1)).view(*rows.shape[:2], -1)


class RecurrentAdaptationModule(nn.Module):
    """Trial so far -> output `[N, O]`: a per-step linear embedding and a GRU whose state
    carries the whole history of the trial (zero at its start), then a linear read-out
    (`adapter: gru`)."""

    def __init__(self, step_dim: int, channels: int, z_dim: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(step_dim, channels), nn.ReLU())
        self.gru = nn.GRU(channels, channels, batch_first=True)
        self.out = nn.Linear(channels, z_dim)

    def initial_state(self, num_envs: int, step_dim: int, device) -> Tensor:
        """The GRU's state at trial start `[N, C]`."""
        return torch.zeros(num_envs, self.gru.hidden_size, device=device)

    def step(self, row: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One step: `row [N, D]`, `state [N, C]` -> the output `[N, O]` and the new state."""
        y, h = self.gru(self.embed(row)[:, None], state[None].contiguous())
        return self.out(y[:, 0]), h[0]

    def sequence(self, rows: Tensor) -> Tensor:
        """The output at every step of trials `rows [B, L, D]` (from the zero state):
        `[B, L, O]`."""
        y, _ = self.gru(self.embed(rows))
        return self.out(y)


class Agent(nn.Module):
    """Everything the learner trains: policy, value, task encoder, adaptation module, norms."""

    def __init__(self, cfg: TaskInferenceConfig, obs_space, act_space, task_dim: int) -> None:
        super().__init__()
        obs_dim = int(math.prod(obs_space.shape or ()))
        self.discrete = isinstance(act_space, gymnasium.spaces.Discrete)
        self.act_dim = int(act_space.n) if self.discrete else int(math.prod(act_space.shape))
        z_dim = 0 if cfg.mode == "blind" else cfg.z_dim
        self.z_dim, self.k = z_dim, cfg.history_length
        wide = gymnasium.spaces.Box(-math.inf, math.inf, (obs_dim + z_dim,))
        head = check_head(cfg.head, act_space)
        kwargs = {"init_std": cfg.init_std} if head == "gaussian" else {}
        self.policy = make_mlp_policy(wide, act_space, head, cfg.hidden_sizes, **kwargs)
        self.privileged = cfg.privileged_value and task_dim > 0
        self.value_time = cfg.value_time
        self.critic_dim = (task_dim if self.privileged else 0) + int(cfg.value_time)
        self.value = ValueMLP(obs_dim + z_dim + self.critic_dim, cfg.hidden_sizes)
        self.obs_norm = RunningNorm(obs_dim)
        self.task_norm = RunningNorm(max(task_dim, 1))
        self.encoder = mlp([max(task_dim, 1), *cfg.encoder_hidden_sizes, max(z_dim, 1)])
        self.step_dim = obs_dim + self.act_dim + 3  # obs, prev action, reward, done, valid
        self.recurrent, self.belief = cfg.adapter == "gru", cfg.belief
        self.task_dim = max(task_dim, 1)
        out = 2 * self.task_dim if cfg.belief == "sample" else max(z_dim, 1)
        self.adapter: AdaptationModule | RecurrentAdaptationModule = (
            RecurrentAdaptationModule(self.step_dim, cfg.adapter_channels, out)
            if self.recurrent
            else AdaptationModule(self.step_dim, self.k, cfg.adapter_channels, out)
        )

    def embed(self, features: Tensor) -> Tensor:
        """Task parameters `[T, P]` -> z `[T, z_dim]` (privileged: training and oracle only)."""
        return torch.tanh(self.encoder(self.task_norm(features)))

    def z_of(self, out: Tensor, eps: Tensor | None = None) -> Tensor:
        """The adaptation module's output `[..., O]` -> z `[..., z_dim]`: `point`, tanh of
        it; `sample`, the z of the draw `mean + std * eps` (`eps [..., P]`) of its belief."""
        if self.belief == "point":
            return torch.tanh(out)
        mean, log_std = belief_params(out)
        assert eps is not None, "belief: sample needs the trial's draw eps"
        return torch.tanh(self.encoder(mean + log_std.exp() * eps))

    def step_features(self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, prev_done):
        """One history row per step `[..., step_dim]` from the rollout's inputs (raw obs)."""
        if self.discrete:
            a = nn.functional.one_hot(prev_action.clamp(min=0), self.act_dim).float()
            a = a * (prev_action >= 0).unsqueeze(-1).float()
        else:
            a = prev_action.float().clamp(-10.0, 10.0)
        extra = [prev_reward.clamp(-10.0, 10.0), prev_done, torch.ones_like(prev_reward)]
        return torch.cat([self.obs_norm(obs), a, torch.stack(extra, -1)], -1)

    def critic_input(self, task: Tensor | None, time: Tensor | None) -> Tensor | None:
        """What only the value sees `[N, critic_dim]`: the standardised task parameters (of
        raw `task [N, P]`; `privileged_value`), then the step's place in its episode (`time
        [N]` in [0, 1); `value_time`). None when the value sees nothing more."""
        parts = [self.task_norm(task)] if self.privileged and task is not None else []
        parts += [time[..., None]] if self.value_time and time is not None else []
        return torch.cat(parts, -1) if parts else None

    def dist_value(
        self, obs: Tensor, z: Tensor | None, critic: Tensor | None = None
    ) -> tuple[Any, Tensor]:
        """The action distribution and value at `obs [N, O]` given z `[N, z_dim]` (None:
        blind) and the value's own inputs `critic` (`critic_input`; None where the agent has
        some: the value is not wanted, zeros are returned for it)."""
        x = (
            self.obs_norm(obs)
            if z is None or self.z_dim == 0
            else torch.cat([self.obs_norm(obs), z], -1)
        )
        if self.critic_dim == 0:
            return self.policy(x), self.value(x)
        if critic is None:
            return self.policy(x), x.new_zeros(x.shape[:-1])
        return self.policy(x), self.value(torch.cat([x, critic], -1))


def belief_params(out: Tensor) -> tuple[Tensor, Tensor]:
    """A `sample` module's output `[..., 2P]` -> mean and log-std `[..., P]` of its Gaussian
    belief over the standardised task parameters (log-std clamped to [-6, 2])."""
    mean, log_std = out.chunk(2, -1)
    return mean, log_std.clamp(-6.0, 2.0)


def belief_nll(out: Tensor, target: Tensor) -> Tensor:
    """Negative log-likelihood (less the constant) of `target [N, P]` under the belief
    `out [N, 2P]`, summed over P: `[N]`."""
    mean, log_std = belief_params(out)
    return (0.5 * ((target - mean) / log_std.exp()).pow(2) + log_std).sum(-1)


class HistoryActor:
    """The evaluation-time agent (and phase 2's): z from the history of the trial only.

    State: the adaptation module's (`conv`: the window `[N, k, step_dim]`, zero -- not valid --
    at the start of a trial; `gru`: its hidden state `[N, C]`, zero then), with `belief:
    sample` the trial's draw `eps [N, P]` beside it. `rows`: the copies' rows of a sharded
    batch (`agents.rollout.sample_action`)."""

    def __init__(
        self,
        agent: Agent,
        generator: torch.Generator | None,
        deterministic: bool,
        rows: Rows | None = None,
    ):
        self.agent, self.generator, self.deterministic = agent, generator, deterministic
        self.rows = rows

    def initial_state(self, num_envs: int) -> Tensor | tuple[Tensor, Tensor]:
        a, p = self.agent, next(self.agent.parameters())
        state = a.adapter.initial_state(num_envs, a.step_dim, p.device)
        if a.belief == "point":
            return state
        eps = normal_rows(p.new_empty(num_envs, a.task_dim), self.generator, self.rows)
        return state, eps

    @torch.no_grad()
    def __call__(self, obs, prev_action, prev_reward, prev_done, state) -> ActorOutput:
        a = self.agent
        row = a.step_features(obs, prev_action, prev_reward, prev_done)
        if a.belief == "point":
            out, state = a.adapter.step(row, state)
            z = a.z_of(out)
        else:
            out, inner = a.adapter.step(row, state[0])
            z, state = a.z_of(out, state[1]), (inner, state[1])
        dist, value = a.dist_value(obs, z)
        action = sample_action(dist, self.generator, self.deterministic, self.rows)
        return ActorOutput(action, dist.log_prob(action), value, state)


class TaskActor:
    """Phase 1 and the oracle (z from the task rows `[N, z_dim]`), or blind (`z = None`);
    `rows` as for `HistoryActor`. `critic` (training rollouts of an agent whose value has
    inputs of its own): the value is computed, from the rows' task parameters `task [N, P]`
    and the step's place in its episode of `horizon` steps (counted in the state `[N]`, from
    0 after each `prev_done`); otherwise it is left at zeros where it would need them."""

    def __init__(
        self,
        agent: Agent,
        z: Tensor | None,
        generator,
        deterministic: bool,
        rows=None,
        critic: bool = False,
        task: Tensor | None = None,
        horizon: int = 1,
    ) -> None:
        self.agent, self.z, self.generator, self.deterministic = agent, z, generator, deterministic
        self.rows, self.critic, self.task, self.horizon = rows, critic, task, horizon

    def initial_state(self, num_envs: int) -> Tensor | None:
        if not self.critic:
            return None
        return torch.zeros(num_envs, device=next(self.agent.parameters()).device)

    @torch.no_grad()
    def __call__(self, obs, prev_action, prev_reward, prev_done, state) -> ActorOutput:
        critic, step = None, None
        if self.critic:
            step = state * (1.0 - prev_done)  # this step's index in its episode
            critic = self.agent.critic_input(self.task, step / self.horizon)
        dist, value = self.agent.dist_value(obs, self.z, critic)
        action = sample_action(dist, self.generator, self.deterministic, self.rows)
        return ActorOutput(action, dist.log_prob(action), value, None if step is None else step + 1)


def history_rows(agent: Agent, traj: Trajectories) -> tuple[Tensor, Tensor]:
    """Every step's history row, as `HistoryActor` built it: `[B, L, step_dim]` for the
    trials `[B, L]` (`Trajectories.trials`, valid steps first), and their mask `[B, L]`."""
    tb = traj.trials()
    return agent.step_features(tb.obs, *tb.previous(agent.discrete)), tb.mask


def history_windows(agent: Agent, traj: Trajectories) -> tuple[Tensor, Tensor]:
    """Every step's history window (`conv`), as `HistoryActor` saw it: `[B, L, k, step_dim]`
    for the trials `[B, L]` (`Trajectories.trials`, valid steps first), and their mask."""
    rows, mask = history_rows(agent, traj)  # [B, L, D]
    return windows_of(rows, agent.k), mask


def window_returns(traj: Trajectories, window: int) -> Tensor:
    """Return per window of `window` steps of each trial's *first* episode, averaged over a
    task's trials: `[ceil(H / window), T]` (row i sums steps `[i w, (i + 1) w)`)."""
    first = traj.trial_starts[0]  # [E] (the same for every task)
    r = (traj.rewards * traj.mask)[:, first]  # [T, trials, H]
    h = r.shape[-1]
    pad = (-h) % window
    r = torch.cat([r, r.new_zeros(*r.shape[:2], pad)], -1)
    return r.view(*r.shape[:2], -1, window).sum(-1).mean(1).T


class TaskInference:
    """The task-inference learner (module docstring); `mode` gives the blind / oracle rows."""

    metric = "return"
    distributed = True  # meta_step / curves take a shard of the batch (agents.sharding)
    higher_is_better = True
    budget_name = "episodes"
    headline_budget = 0

    def __init__(self, cfg, distribution, agent: Agent, device, seed: int) -> None:
        self.cfg, self.distribution, self.device = cfg, distribution, torch.device(device)
        self.agent = agent.to(self.device)
        a = self.agent
        ppo_params = [*a.policy.parameters(), *a.value.parameters(), *a.encoder.parameters()]
        self.optimizer = torch.optim.Adam(ppo_params, lr=cfg.outer_lr)
        self.adapter_optimizer = torch.optim.Adam(a.adapter.parameters(), lr=cfg.adapter_lr)
        self.train_generator = make_generator(seed, "task_inference/train", self.device)
        self.eval_generator = make_generator(seed, "task_inference/eval", self.device)
        self.value_norm = ValueNormalizer() if cfg.normalize_values else None
        self.iteration = 0
        self._envs: dict[tuple[int, int], BatchedEnv] = {}

    @property
    def phase(self) -> int:
        """1 or 2: the phase of the *next* iteration."""
        c = self.cfg
        return 2 if c.mode == "learner" and self.iteration >= c.phase2_start else 1

    def _env(self, num_tasks: int, copies: int) -> BatchedEnv:
        if (num_tasks, copies) not in self._envs:
            env = make_batched_env(
                self.distribution, num_tasks, copies, self.device, self.cfg.horizon
            )
            self._envs[(num_tasks, copies)] = env
        return self._envs[(num_tasks, copies)]

    def _z(self, tasks: TaskBatchLike) -> Tensor | None:
        """Privileged z `[T, z_dim]` (None when blind)."""
        if self.agent.z_dim == 0:
            return None
        return self.agent.embed(task_features(tasks).to(self.device))

    def actor(
        self,
        tasks: TaskBatchLike,
        copies: int,
        history: bool,
        gen,
        deterministic=False,
        rows: Rows | None = None,
        training: bool = False,
    ):
        """History-driven (`history=True`: phase 2, the learner at evaluation) or task actor;
        `rows`: the tasks' rows of a sharded batch; `training`: a training rollout (a value with
        inputs of its own, `privileged_value` / `value_time`, is computed then, never at
        evaluation)."""
        copy_rows = None if rows is None else rows.scale(copies)
        if history:
            return HistoryActor(self.agent, gen, deterministic, copy_rows)
        z = self._z(tasks)
        z_rows = None if z is None else z.detach().repeat_interleave(copies, 0)
        critic = training and self.agent.critic_dim > 0
        task = None
        if critic and self.agent.privileged:
            task = task_features(tasks).to(self.device).repeat_interleave(copies, 0)
        horizon = self._env(tasks.num_tasks, copies).horizon
        return TaskActor(self.agent, z_rows, gen, deterministic, copy_rows, critic, task, horizon)

    def play(
        self, tasks, episodes, copies, gen, history, deterministic=False, rows=None, training=False
    ) -> Trajectories:
        """A trial of `episodes` episodes on `copies` copies per task; `rows`: the tasks'
        rows of a sharded batch (`agents.sharding`; a collective then); `training` as for
        `actor`."""
        env = self._env(tasks.num_tasks, copies)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device))
        actor = self.actor(tasks, copies, history, gen, deterministic, rows, training)
        return rollout(env, tasks, actor, episodes, seed, rows=rows)

    # -- phase 1: PPO on the task-conditioned policy ----------------------------------------
    def _ppo(
        self,
        tasks: TaskBatchLike,
        traj: Trajectories,
        rows: Rows,
        inferred: Tensor | None = None,
    ) -> dict[str, float]:
        """PPO on the batch; `inferred` `[N, z_dim]` (phase 2 with `finetune_policy`): the z
        the history actor acted on at each valid step (then the encoder and the observation
        statistics are left as they are)."""
        c, a = self.cfg, self.agent
        t, e, h = traj.rewards.shape
        values = (
            traj.values if self.value_norm is None else self.value_norm.denormalize(traj.values)
        )
        adv = gae(traj.rewards, values * traj.mask, traj.dones, c.gamma, c.gae_lambda, dim=2)
        adv = adv * traj.mask
        returns = adv + values * traj.mask
        if self.value_norm is not None:
            if rows.sharded:
                self.value_norm.update_moments(*moments(returns, traj.mask, rows))
            else:
                self.value_norm.update(returns, traj.mask)
            returns = self.value_norm.normalize(returns)
        valid = traj.mask.reshape(-1) > 0
        task_of = torch.arange(t, device=self.device).view(t, 1, 1).expand(t, e, h).reshape(-1)
        obs = traj.obs.reshape(t * e * h, -1)[valid]
        act = traj.actions.reshape(t * e * h, *traj.actions.shape[3:])[valid]
        old, task_of = traj.log_probs.reshape(-1)[valid], task_of[valid]
        adv, returns = adv.reshape(-1)[valid], returns.reshape(-1)[valid]
        steps = self._step_rows(traj, rows)  # the valid steps' rows of the batch's
        adv = normalize_over(adv, None, steps)
        feats = task_features(tasks).to(self.device)
        time = (torch.arange(h, device=self.device) / h).expand(t, e, h).reshape(-1)[valid]
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        sums: dict[str, float] = {}
        count, n = 0, steps.total
        for _ in range(c.ppo_epochs):
            perm = torch.randperm(
                n, generator=self.train_generator, device=self.train_generator.device
            )
            for idx, share in minibatches(perm, min(c.minibatches, n), steps, self.device):
                self.optimizer.zero_grad(set_to_none=True)
                terms = dict.fromkeys(PPO_TERMS, torch.zeros((), device=self.device))
                if len(idx):
                    z: Tensor | None = None
                    if inferred is not None:
                        z = inferred[idx]
                    elif a.z_dim > 0:
                        z = a.embed(feats)[task_of[idx]]
                    critic = a.critic_input(feats[task_of[idx]], time[idx])
                    dist, v = a.dist_value(obs[idx], z, critic)
                    terms = ppo_loss(
                        dist.log_prob(act[idx]), old[idx], adv[idx], c.clip_eps,
                        values=v, returns=returns[idx], entropy=dist.entropy(),
                        value_coef=c.value_coef, entropy_coef=c.entropy_coef,
                    )  # fmt: skip
                    if share != 1.0:
                        terms = {k: val * share for k, val in terms.items()}
                    terms["loss"].backward()
                if steps.sharded:
                    sync_grads_(params, 1.0)
                if c.max_grad_norm > 0:
                    terms["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm)
                self.optimizer.step()
                for k, val in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(val.detach())
                count += 1
        if c.normalize_obs and inferred is None:  # after the update: the actor's statistics
            a.obs_norm.update(obs, steps)
        return {k: v / count for k, v in sum_shares(sums, steps).items()}

    def _step_rows(self, traj: Trajectories, rows: Rows) -> Rows:
        """This rank's valid steps (task-major) as rows of the whole batch's valid steps."""
        if not rows.sharded:
            return full(int(traj.mask.sum()))
        per_task = gather_counts(traj.mask.sum((1, 2)), rows).cpu()
        start = int(per_task[: rows.start].sum())
        mine = int(per_task[rows.start : rows.start + rows.count].sum())
        return Rows(start, mine, int(per_task.sum()))

    # -- phase 2: regress the adaptation module on z ------------------------------------------
    def _valid_windows(self, traj: Trajectories) -> tuple[Tensor, Tensor]:
        """The module's input and the trials' mask `[B, L]`: `conv`, the history window of
        every valid step `[N, k, D]` (trial-major, time order within a trial: the order of
        `_ppo`'s steps); `gru`, the trials' rows `[B, L, D]`."""
        if self.agent.recurrent:
            return history_rows(self.agent, traj)
        windows, mask = history_windows(self.agent, traj)  # [B, L, k, D], [B, L]
        return windows.reshape(-1, *windows.shape[2:])[mask.reshape(-1) > 0], mask

    def _infer(self, x: Tensor, mask: Tensor, idx: Tensor | None = None) -> Tensor:
        """The module's output at the valid steps `[N, O]` (or at `idx` of them) from
        `_valid_windows`' input (the GRU runs over the whole trials)."""
        if self.agent.recurrent:
            out = self.agent.adapter.sequence(x).flatten(0, 1)[mask.reshape(-1) > 0]
            return out if idx is None else out[idx]
        return self.agent.adapter(x if idx is None else x[idx])

    def _regress(
        self, tasks: TaskBatchLike, traj: Trajectories, rows: Rows, x: Tensor, mask: Tensor
    ) -> dict[str, float]:
        """Regress the adaptation module on z at the valid steps (`x`: `_valid_windows`')."""
        c, a = self.cfg, self.agent
        with torch.no_grad():  # z, or the standardised task parameters the belief is over
            feats = task_features(tasks).to(self.device)
            target = a.embed(feats) if a.belief == "point" else a.task_norm(feats)  # [T, z|P]
        b, length = mask.shape
        target = target.repeat_interleave(b // tasks.num_tasks, 0)[:, None].expand(b, length, -1)
        by_trials = c.adapter_minibatch == "trials"
        if by_trials:  # whole trials, weighted by their valid steps; the GRU sees only them
            units = rows.scale(b // tasks.num_tasks)
            counts: Tensor | None = gather_counts(mask.sum(1), units).to(torch.float64)
        else:  # the valid steps, in `_valid_windows`' order
            units, counts = self._step_rows(traj, rows), None
            y = target.reshape(b * length, -1)[mask.reshape(-1) > 0]
        losses = []
        for _ in range(c.adapter_epochs):
            perm = torch.randperm(
                units.total, generator=self.train_generator, device=self.train_generator.device
            )
            for idx, share in minibatches(
                perm, min(c.minibatches, units.total), units, self.device, counts
            ):
                self.adapter_optimizer.zero_grad(set_to_none=True)
                loss = torch.zeros((), device=self.device)
                if len(idx):
                    if by_trials:
                        valid = mask[idx] > 0
                        out, want = a.adapter.sequence(x[idx])[valid], target[idx][valid]
                    else:
                        out, want = self._infer(x, mask, idx), y[idx]
                    if a.belief == "point":
                        loss = (a.z_of(out) - want).pow(2).sum(-1).mean()
                    else:
                        loss = belief_nll(out, want).mean()
                    loss = loss * share if share != 1.0 else loss
                    loss.backward()
                if units.sharded:
                    sync_grads_(a.adapter.parameters(), 1.0)
                self.adapter_optimizer.step()
                losses.append(float(loss.detach()))
        if units.sharded:  # each was this rank's share of a minibatch's loss
            losses = sum_(torch.tensor(losses, dtype=torch.float64), units).tolist()
        name = "z_mse" if a.belief == "point" else "belief_nll"  # of the first / last minibatch
        return {"loss": sum(losses) / len(losses), f"{name}_first": losses[0], name: losses[-1]}

    def _finetune(
        self, tasks: TaskBatchLike, traj: Trajectories, rows: Rows, x: Tensor, mask: Tensor
    ) -> dict[str, float]:
        """Phase-2 PPO of policy and value on the adaptation module's z (`finetune_policy`)
        from `_valid_windows`' input `x` (what the actor saw)."""
        with torch.no_grad():
            inferred = self.agent.z_of(self._infer(x, mask))
        return self._ppo(tasks, traj, rows, inferred)

    # -- learner contract -------------------------------------------------------------------
    def meta_step(self, tasks: TaskBatchLike) -> dict[str, float]:
        """Phase 1: a PPO update; phase 2: a regression of the adaptation module on z."""
        c = self.cfg
        phase = self.phase
        rows = task_rows(tasks.num_tasks)  # this rank's rows of the meta-batch
        gen = self.train_generator
        traj = self.play(
            tasks, c.episodes_per_trial, c.envs_per_task, gen, phase == 2, rows=rows, training=True
        )
        if phase == 1:
            metrics = self._ppo(tasks, traj, rows)
        else:
            x, mask = self._valid_windows(traj)
            metrics = {}
            if c.finetune_policy:  # on the z the actor used: before the module's update
                ft = self._finetune(tasks, traj, rows, x, mask)
                metrics = {f"finetune_{k}": v for k, v in ft.items()}
            metrics.update(self._regress(tasks, traj, rows, x, mask))
        self.iteration += 1
        means = {"episode_return": float(traj.episode_returns().mean())}
        metrics.update(
            phase=float(phase),
            **global_mean(means, rows.weight, rows),
            env_steps=float(sum_(torch.tensor([float(traj.env_steps)]), rows)),
        )
        return metrics

    def _evaluate_play(
        self, tasks: TaskBatchLike, episodes: int, rows: Rows | None = None
    ) -> Trajectories:
        c = self.cfg
        return self.play(
            tasks, episodes, c.eval_trials_per_task, self.eval_generator,
            c.mode == "learner", c.eval_deterministic, rows,
        )  # fmt: skip

    def adapt(self, tasks: TaskBatchLike, budget: int) -> Trajectories:
        """A trial of `budget + 1` episodes: `budget` of experience, then the evaluated one."""
        if budget < 0:
            raise UsageError(f"budget must be >= 0 episodes, got {budget}")
        return self._evaluate_play(tasks, budget + 1)

    def evaluate(self, adapted: Trajectories, tasks: TaskBatchLike) -> Tensor:
        """Return of the trial's last episode per task `[T]`."""
        return adapted.returns_by_episode_index()[:, -1]

    def adaptation_curve(self, tasks: TaskBatchLike, max_budget: int) -> Tensor:
        """`[max_budget + 1, T]`: row b = return of episode b + 1 of one trial. Under
        `torchrun`, a collective: each rank's tasks are its rows of the held-out batch."""
        if max_budget < 0:
            raise UsageError(f"budget must be >= 0 episodes, got {max_budget}")
        trial = self._evaluate_play(tasks, max_budget + 1, task_rows(tasks.num_tasks))
        return trial.returns_by_episode_index().T

    def within_episode_curve(self, tasks: TaskBatchLike) -> Tensor:
        """Return per window of `window` steps of episode 1 `[W, T]` (evaluation actor); a
        collective under `torchrun`, as `adaptation_curve`."""
        trial = self._evaluate_play(tasks, 1, task_rows(tasks.num_tasks))
        return window_returns(trial, self.cfg.window)

    def record(self, tasks: TaskBatchLike, width: int = 160, height: int = 120) -> np.ndarray:
        """Video `[F, H, 2W, 3]`: the first `window` steps of episode 1 on task 0 (left, before
        the task is inferred) beside the rest of that episode (right, after), MuJoCo only."""
        task, c = tasks.select(0), self.cfg
        env = make_batched_env(self.distribution, 1, 1, self.device, c.horizon)
        rng_state = self.eval_generator.get_state()
        try:
            actor = self.actor(
                task, 1, c.mode == "learner", self.eval_generator, c.eval_deterministic
            )
            (clip,) = record_episodes(env, task, actor, 1, [0], 2, width, height)
            split = min(max(c.window, c.history_length) // 2, len(clip) - 1)
            return side_by_side([clip[:split], clip[split:]])
        finally:
            self.eval_generator.set_state(rng_state)
            env.close()

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "adapter_optimizer": self.adapter_optimizer.state_dict(),
            "generators": {
                "train": self.train_generator.get_state(),
                "eval": self.eval_generator.get_state(),
            },
            "value_norm": None if self.value_norm is None else self.value_norm.state_dict(),
            "iteration": self.iteration,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.agent.state_dict()
        for key, value in state["model"].items():
            if key in mine and mine[key].shape != value.shape:
                raise UsageError(
                    f"checkpoint tensor {key} has shape {tuple(value.shape)}, this config makes "
                    f"{tuple(mine[key].shape)}: resume with the config the run was trained with"
                )
        self.agent.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.adapter_optimizer.load_state_dict(state["adapter_optimizer"])
        self.train_generator.set_state(state["generators"]["train"])
        self.eval_generator.set_state(state["generators"]["eval"])
        if self.value_norm is not None and state.get("value_norm") is not None:
            self.value_norm.load_state_dict(state["value_norm"])
        self.iteration = int(state["iteration"])


def check_config(cfg: TaskInferenceConfig, horizon: int) -> None:
    """One-line `UsageError`s for settings that cannot work."""
    ints = ["z_dim", "adapter_channels", "adapter_epochs", "episodes_per_trial", "envs_per_task"]
    ints += ["ppo_epochs", "minibatches", "eval_trials_per_task", "window"]
    for name in ints:
        if getattr(cfg, name) < 1:
            raise UsageError(f"learner.{name} must be >= 1, got {getattr(cfg, name)}")
    if not 1 <= cfg.history_length <= horizon:
        raise UsageError(
            f"learner.history_length must lie in [1, {horizon}] (the episode horizon), "
            f"got {cfg.history_length}"
        )
    if cfg.adapter_minibatch == "trials" and cfg.adapter != "gru":
        raise UsageError(
            "learner.adapter_minibatch=trials needs learner.adapter=gru (a conv window is one "
            "step's input: its minibatches of steps cost no more)"
        )
    if (cfg.privileged_value or cfg.value_time) and cfg.finetune_policy:
        name = "privileged_value" if cfg.privileged_value else "value_time"
        raise UsageError(
            f"learner.{name} needs learner.finetune_policy=false (phase 2's history actor "
            "computes no value of its own inputs, so its rollouts carry none to fine-tune with)"
        )
    if cfg.belief == "sample" and cfg.finetune_policy:
        raise UsageError(
            "learner.finetune_policy needs learner.belief=point (with belief=sample the z the "
            "actor used depends on its trial's draw, which the rollout does not keep)"
        )
    if cfg.phase2_start < 0:
        raise UsageError(f"learner.phase2_start must be >= 0 iterations, got {cfg.phase2_start}")
    for name in ("gamma", "gae_lambda"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise UsageError(f"learner.{name} must be in [0, 1], got {getattr(cfg, name)}")
    if not 0.0 < cfg.clip_eps < 1.0:
        raise UsageError(f"learner.clip_eps must be in (0, 1), got {cfg.clip_eps}")
    if min(cfg.outer_lr, cfg.adapter_lr, cfg.init_std) <= 0:
        raise UsageError("learner.outer_lr, adapter_lr and init_std must be > 0")


def build_task_inference(cfg: TaskInferenceConfig, distribution: Any, device, seed: int):
    check_meta_rl(distribution, "learner.kind task_inference")
    probe = make_batched_env(distribution, 1, 1, "cpu", cfg.horizon)
    obs_space, act_space, horizon = probe.observation_space, probe.action_space, probe.horizon
    probe.close()
    check_config(cfg, horizon)
    # Task-feature statistics from a fixed draw of training tasks (no run randomness used).
    probe_tasks = distribution.sample("train", 256, torch.Generator().manual_seed(0))
    feats = task_features(probe_tasks).cpu()
    task_dim = int(feats.shape[1])
    if task_dim == 0 and cfg.mode != "blind":
        raise UsageError(
            f"task.kind {type(distribution).__name__} has no task parameters to encode "
            "(its tasks' features() are empty); use learner.mode=blind or another family"
        )
    try:
        check_head(cfg.head, act_space)
    except UsageError as err:
        raise UsageError(f"learner.head: {err}") from None
    with seeded(seed, "model"):
        agent = Agent(cfg, obs_space, act_space, task_dim)
    if task_dim:
        agent.task_norm.update(feats)
    return TaskInference(cfg, distribution, agent, device, seed)
