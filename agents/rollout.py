"""Rollouts, shared by every meta-RL learner (RL², memory policies, MAML-RL).

    env    = make_batched_env(distribution, num_tasks=T, envs_per_task=C, device=device)
             # any metarl.contracts.MetaRLDistribution: tensor and MuJoCo families alike
    actor  = RecurrentActor(policy, generator)        # or MLPActor / your own `Actor`
    traj   = rollout(env, tasks, actor, num_episodes=n, seed=s)   # Trajectories [T, C*n, H]

Layout. The env holds `N = T * C` copies, task-major (copy `i` plays task `i // C`). Each
copy plays `n` episodes in a row on its task; those `n` episodes are one *trial*. The result
is `[T, E, H, ...]` with `E = C * n` episodes per task, ordered copy-major (episode `e` of
task `t` is episode `e % n` of copy `t * C + e // n`), and `H` the episode horizon.

Reset contract (what resets what, and when):
- A call to `rollout` is a trial boundary for every copy: the env is reset with the tasks
  and `seed`, the actor's state is set to `actor.initial_state(N)` and the previous action,
  reward and done fed to the actor are "none" (action `-1` for discrete actions, zeros for
  continuous ones), 0 and 0. Nothing inside a call resets the actor's state.
- An episode ends at the step whose `terminated | truncated` is true (`dones[..., h] = 1`);
  the copy starts its next episode on the same task at once (same-step autoreset, the one
  behaviour of every env, see `metarl.contracts`). The next actor input carries the finished step's
  action and reward and `prev_done = 1`, so a recurrent actor knows an episode ended and
  keeps its memory of the task.
- An episode that ends before `H` steps leaves padding: `mask = 0`, zeros elsewhere.
  `terminated` marks absorbing ends (no bootstrap). Truncated ends are not bootstrapped
  either (the MAML-RL / RL² convention; the final observation is not kept).
- Copies that finished their `n` episodes keep stepping (their data is dropped) until every
  copy has finished: a batched env steps all copies or none.

Steps and devices. Each env step is ONE call of the actor on all `N` copies, and one path
for every env kind. Tensor envs (`envs.tensor`) live on `device` with the policy, so the
whole loop stays on the device; MuJoCo envs (`envs.mujoco.BatchedMujocoEnv`) step on the
CPU and only observations, actions and rewards cross. Observations are flattened to
`[N, obs_dim]` float32.

Task in the observation (`task_in_obs=True`, the oracle baselines): every observation row
is followed by its task's parameters (`task_features`), so a policy need not infer the task.

Randomness: env noise comes from `seed` (copy `i` is seeded `seed + i`, as in Gymnasium's
vector envs); action noise only from the actor's `torch.Generator`.

Shards (`torchrun`, `agents.sharding`): `rollout(..., rows=r)` plays tasks `r.start ..` of a
meta-batch of `r.total`, and gives those rows of the whole batch's rollout (the same random
numbers; floats up to the last-bit rounding of the policy's batched products): copy `i` is
seeded `seed + r.start * C + i` (its global index), actors built with `rows` draw the action
noise of the whole batch and keep their rows, and the all-finished check counts every rank's
copies (the generators then advance alike on every rank).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium
import numpy as np
import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal

from agents.sharding import Rows, sum_
from metarl.contracts import MetaRLDistribution, MetaVectorEnv, RenderableEnv, TaskBatchLike
from metarl.errors import UsageError, deferred_finite_checks

# ---------------------------------------------------------------------------------------------
# Environments: one adapter over every `MetaVectorEnv` (tensor and MuJoCo alike).


def task_features(tasks: TaskBatchLike) -> Tensor:
    """Task parameters as features `[T, P]` float32 (every field of the task dataclass)."""
    return tasks.features(torch.float32)


class BatchedEnv:
    """`N = num_tasks * envs_per_task` copies of one family, torch in/out on `device`.

    `reset(tasks, seed) -> obs [N, obs_dim]` starts a trial (new tasks, every copy).
    `step(actions) -> (obs [N, obs_dim], reward [N], terminated [N], truncated [N])`; a copy
    whose episode ends starts its next one in the same call (same-step autoreset, the
    contract of every `metarl.contracts.MetaVectorEnv`): the returned obs row is then its
    next first observation. Tensor envs answer in torch on their device, MuJoCo envs in numpy;
    one `torch.as_tensor` serves both.
    `task_dim > 0`: each obs row ends with its task's `task_features` (`[N, obs_dim]` then
    counts them; `observation_space` is widened to match).
    """

    def __init__(
        self, env: MetaVectorEnv, horizon: int, device: torch.device | str, task_dim: int = 0
    ) -> None:
        self.env, self.num_tasks, self.envs_per_task = env, env.num_tasks, env.envs_per_task
        self.num_envs = env.num_envs
        self.horizon, self.device = horizon, torch.device(device)
        self.observation_space: gymnasium.Space = env.single_observation_space
        self.action_space: gymnasium.Space = env.single_action_space
        self.discrete = isinstance(self.action_space, gymnasium.spaces.Discrete)
        # False for families that never end an episode before its horizon (bandits, tabular
        # MDPs, Pendulum): every copy then ends its trial at the same step, and `rollout`
        # needs no all-finished check (a device sync) to stop early.
        self.ends_early: bool = getattr(env, "terminates", True)
        self.env_obs_dim = int(math.prod(self.observation_space.shape or ()))
        self.task_dim = task_dim
        self._features: Tensor | None = None
        if task_dim:
            width = (self.env_obs_dim + task_dim,)
            self.observation_space = gymnasium.spaces.Box(-math.inf, math.inf, width)
        self.obs_dim = self.env_obs_dim + task_dim

    def _obs(self, obs: Any) -> Tensor:
        obs = torch.as_tensor(obs, device=self.device, dtype=torch.float32)
        obs = obs.reshape(self.num_envs, self.env_obs_dim)
        return obs if self._features is None else torch.cat([obs, self._features], dim=1)

    def reset(self, tasks: TaskBatchLike, seed: int | None) -> Tensor:
        if self.task_dim:
            feats = task_features(tasks).to(self.device)
            if feats.shape != (self.num_tasks, self.task_dim):
                raise UsageError(
                    f"task features {tuple(feats.shape)} do not match the env's "
                    f"({self.num_tasks}, {self.task_dim}): tasks from another distribution?"
                )
            self._features = feats.repeat_interleave(self.envs_per_task, dim=0)  # [N, P]
        obs, _ = self.env.reset(seed=seed, options={"tasks": tasks})
        return self._obs(obs)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        obs, reward, term, trunc, _ = self.env.step(actions)
        dev = self.device
        return (
            self._obs(obs),
            torch.as_tensor(reward, dtype=torch.float32, device=dev),
            torch.as_tensor(term, device=dev),
            torch.as_tensor(trunc, device=dev),
        )

    def render(self, i: int, width: int = 160, height: int = 120) -> np.ndarray:
        """Copy `i` as an RGB image `[height, width, 3]` uint8 (renderable families only)."""
        if not isinstance(self.env, RenderableEnv):
            raise UsageError(
                f"{type(self.env).__name__} has no renderer: videos need a MuJoCo task family"
            )
        return self.env.render_copy(i, width, height)

    def close(self) -> None:
        self.env.close()


def trajectory_bytes(
    distribution: MetaRLDistribution[Any], copies: int, steps: int, activations_per_step: int = 0
) -> int:
    """Bytes one task's rollout keeps: `copies` env copies for `steps` steps of observations,
    actions and 8 per-step numbers (reward, done, value, log-prob, advantage, return, masks),
    plus `activations_per_step` numbers per copy and step that the outer loss's autograd graph
    keeps; all float32. An estimate for the memory check (`metarl.resources.check_fits`)."""
    obs = math.prod(distribution.observation_space.shape or (1,))
    act = math.prod(distribution.action_space.shape or (1,))  # Discrete: one number
    return copies * steps * (obs + act + 8 + activations_per_step) * 4


def make_batched_env(
    distribution: MetaRLDistribution[Any],
    num_tasks: int,
    envs_per_task: int = 1,
    device: torch.device | str = "cpu",
    horizon: int | None = None,
    task_in_obs: bool = False,
) -> BatchedEnv:
    """A `BatchedEnv` of `num_tasks * envs_per_task` copies for a meta-RL task distribution.

    The env lives on `device` where the family allows (tensor families; MuJoCo steps on the
    CPU). `horizon`, if given, asks the family for that episode length (see
    `MetaRLDistribution.make_env`). `task_in_obs`: observations end with the task parameters
    (their width is read from one training task).
    """
    check_meta_rl(distribution, "this learner")
    if horizon is not None and (not isinstance(horizon, int) or horizon < 1):
        raise UsageError(f"horizon must be an integer >= 1, got {horizon!r}")
    task_dim = 0
    if task_in_obs:
        probe = distribution.sample("train", 1, torch.Generator().manual_seed(0))
        task_dim = int(task_features(probe).shape[1])  # a shape only: no run randomness used
    env = distribution.make_env(num_tasks, envs_per_task, device, horizon)
    if getattr(env, "check_actions", False):
        # An actor's actions are valid by construction (categorical samples lie in range, the
        # env clips Gaussian ones, a diverged policy is caught by `check_finite` on its
        # logits or mean): the tensor env's per-step range check would wait for the device.
        env.check_actions = False  # type: ignore[attr-defined]  # tensor envs only
    return BatchedEnv(env, horizon or distribution.horizon, device, task_dim)


def check_meta_rl(distribution: Any, learner: str) -> None:
    """One-line `UsageError` unless `distribution` is a meta-RL family (it has envs)."""
    if not isinstance(distribution, MetaRLDistribution):
        raise UsageError(
            f"{learner} plays episodes, but the task ({type(distribution).__name__}) has no "
            "environment to play them in; use an RL task: bandit, tabular_mdp, navigation2d, "
            "gridworld, cartpole, pendulum or a MuJoCo family"
        )


# ---------------------------------------------------------------------------------------------
# Actors: one batched policy call per env step.


@dataclass(frozen=True)
class ActorOutput:
    """action `[N]` int64 or `[N, A]` float; log_prob `[N]`; value `[N]`; state: next state."""

    action: Tensor
    log_prob: Tensor
    value: Tensor
    state: Any


class Actor(Protocol):
    """What `rollout` calls. `obs [N, obs_dim]`, `prev_action [N]` (int, `-1` = none) or
    `[N, A]`, `prev_reward [N]`, `prev_done [N]` float. Stateless actors return `None`
    state. Copies are task-major (`N = T * C`), so per-task parameters (MAML-RL) can
    reshape to `[T, C, ...]` for one vmapped forward."""

    def initial_state(self, num_envs: int) -> Any: ...

    def __call__(
        self, obs: Tensor, prev_action: Tensor, prev_reward: Tensor, prev_done: Tensor, state: Any
    ) -> ActorOutput: ...


class RandomActor:
    """Uniform actions over `action_space` (a single env's: `Discrete(n)` -> integers in
    `[0, n)`, `Box` -> uniform in `[low, high]`), drawn with `generator` on its device: the
    benchmarks' `random` row. log_prob and value are zeros (nothing is trained on them)."""

    def __init__(self, action_space: gymnasium.Space, generator: torch.Generator) -> None:
        if not isinstance(action_space, gymnasium.spaces.Discrete | gymnasium.spaces.Box):
            raise UsageError(f"RandomActor: expected a Discrete or Box space, got {action_space}")
        if isinstance(action_space, gymnasium.spaces.Box) and not action_space.is_bounded():
            raise UsageError(f"RandomActor: the action space must be bounded, got {action_space}")
        self.space, self.generator = action_space, generator

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def __call__(self, obs, prev_action, prev_reward, prev_done, state) -> ActorOutput:
        n, g = obs.shape[0], self.generator
        if isinstance(self.space, gymnasium.spaces.Discrete):
            high = int(self.space.n)
            action = torch.randint(0, high, (n,), generator=g, device=g.device).to(obs.device)
        else:
            low = torch.as_tensor(self.space.low, dtype=torch.float32)
            width = torch.as_tensor(self.space.high, dtype=torch.float32) - low
            u = torch.rand(n, *low.shape, generator=g, device=g.device)
            action = (low.to(u.device) + width.to(u.device) * u).to(obs.device)
        zeros = torch.zeros(n, device=obs.device)
        return ActorOutput(action, zeros, zeros, None)


def _noise(like: Tensor, rows: Rows | None) -> Tensor:
    """An uninitialised buffer for the whole batch's noise (`rows.total` along dim 0, else
    `like`'s shape); `_rows` then cuts this shard's rows out of the filled buffer."""
    shape = like.shape if rows is None else (rows.total, *like.shape[1:])
    return torch.empty(shape, dtype=like.dtype, device=like.device)


def _rows(noise: Tensor, rows: Rows | None) -> Tensor:
    return noise if rows is None else noise[rows.start : rows.start + rows.count]


def normal_rows(like: Tensor, generator: torch.Generator | None, rows: Rows | None) -> Tensor:
    """Standard normal noise shaped like `like` `[N, ...]`; `rows`: `like` holds rows
    `rows.start ..` of a batch of `rows.total`, whose noise is drawn whole and cut, so a
    shard's draws are the whole batch's on its rows (as `sample_action`)."""
    return _rows(_noise(like, rows).normal_(generator=generator), rows)


def sample_action(
    dist: Distribution,
    generator: torch.Generator | None,
    deterministic: bool = False,
    rows: Rows | None = None,
) -> Tensor:
    """Draw from a categorical or independent-Gaussian policy output with an explicit generator.

    `deterministic` takes the mode (argmax / mean). Categorical: `[B]` int64; Gaussian `[B, A]`.
    Categorical draws are `argmax(p / q)` with `q ~ Exp(1)`: `torch.multinomial`'s own
    one-sample algorithm, number for number (tested), written out so that `rows` can cut it.
    `rows`: the distribution's first axis holds rows `rows.start ..` of a batch of
    `rows.total`; the noise of the whole batch is drawn and these rows kept, so a shard's
    actions are the whole batch's actions on its rows (`agents.sharding`).
    """
    if isinstance(dist, Categorical):
        if deterministic:
            return dist.logits.argmax(-1)
        probs = dist.probs
        q = _noise(probs, rows).exponential_(1, generator=generator)
        return (probs / _rows(q, rows)).argmax(-1)
    base = dist.base_dist if isinstance(dist, Independent) else dist
    if not isinstance(base, Normal):
        raise UsageError(f"cannot sample a {type(dist).__name__}; expected Categorical or Normal")
    if deterministic:
        return base.loc.detach()
    return (base.loc + base.scale * normal_rows(base.loc, generator, rows)).detach()


class RecurrentActor:
    """A `RecurrentPolicy` / `MemoryPolicy` as an `Actor` (no gradient); `rows`: its env
    copies' rows of a sharded batch (`sample_action`)."""

    def __init__(
        self,
        policy: Any,
        generator: torch.Generator | None,
        deterministic: bool = False,
        rows: Rows | None = None,
    ):
        self.policy, self.generator, self.deterministic = policy, generator, deterministic
        self.rows = rows

    def initial_state(self, num_envs: int) -> Any:
        return self.policy.initial_state(num_envs)

    @torch.no_grad()
    def __call__(self, obs, prev_action, prev_reward, prev_done, state) -> ActorOutput:
        dist, value, state = self.policy.step(obs, prev_action, prev_reward, prev_done, state)
        action = sample_action(dist, self.generator, self.deterministic, self.rows)
        return ActorOutput(action, dist.log_prob(action), value, state)


class MLPActor:
    """An MLP policy (`obs -> dist`) as an `Actor`; `value_fn(obs) -> [N]` or zeros; `rows`
    as for `RecurrentActor`."""

    def __init__(
        self,
        policy: Any,
        generator,
        value_fn=None,
        deterministic: bool = False,
        rows: Rows | None = None,
    ):
        self.policy, self.generator, self.value_fn = policy, generator, value_fn
        self.deterministic, self.rows = deterministic, rows

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def __call__(self, obs, prev_action, prev_reward, prev_done, state) -> ActorOutput:
        dist = self.policy(obs)
        action = sample_action(dist, self.generator, self.deterministic, self.rows)
        value = self.value_fn(obs) if self.value_fn is not None else obs.new_zeros(obs.shape[0])
        return ActorOutput(action, dist.log_prob(action), value, None)


# ---------------------------------------------------------------------------------------------
# Trajectories and the rollout loop.


@dataclass(frozen=True)
class Trajectories:
    """Experience of `T` tasks, `E` episodes per task, horizon `H` (see the module docstring).

    obs `[T, E, H, obs_dim]` (the actor's input at each step); actions `[T, E, H]` int64 or
    `[T, E, H, A]`; rewards, log_probs, values `[T, E, H]` float; dones `[T, E, H]` float,
    1 at the last step of each episode (terminated or truncated); terminated `[T, E, H]`
    bool (absorbing end); mask `[T, E, H]` float, 1 = a real step; trial_starts `[T, E]`
    bool, true for the first episode of each trial (every `episodes_per_trial`-th).
    env_steps: env steps taken by the call (all copies, dropped ones included).
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    dones: Tensor
    terminated: Tensor
    mask: Tensor
    log_probs: Tensor
    values: Tensor
    trial_starts: Tensor
    episodes_per_trial: int
    env_steps: int

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_episodes(self) -> int:
        return self.rewards.shape[1]

    @property
    def horizon(self) -> int:
        return self.rewards.shape[2]

    def episode_returns(self) -> Tensor:
        """Undiscounted return of each episode `[T, E]`."""
        return (self.rewards * self.mask).sum(-1)

    def returns_by_episode_index(self) -> Tensor:
        """Mean return of the i-th episode of a trial over the task's trials `[T, n]`."""
        t, e = self.rewards.shape[:2]
        n = self.episodes_per_trial
        return self.episode_returns().view(t, e // n, n).mean(1)

    def trials(self) -> TrialBatch:
        """The experience as one sequence per trial, padding moved to the end of it.

        Row `b = t * C + c` is copy `c` of task `t`; each field is `[B, L]` (obs `[B, L, D]`)
        with `L = n * H`. The valid steps of a trial keep their order and come first, so a
        recurrent policy run over `[L]` sees exactly what it saw while acting.
        """
        t, e, h = self.rewards.shape
        n = self.episodes_per_trial
        b, length = t * e // n, n * h

        def seq(x: Tensor) -> Tensor:
            return x.reshape(b, length, *x.shape[3:])

        mask = seq(self.mask)
        # Stable sort puts valid steps first in time order (a no-op without padding).
        order = torch.sort((mask == 0).to(torch.int8), dim=1, stable=True).indices

        def pack(x: Tensor) -> Tensor:
            x = seq(x)
            idx = order.view(b, length, *([1] * (x.dim() - 2))).expand_as(x)
            return x.gather(1, idx)

        return TrialBatch(
            obs=pack(self.obs),
            actions=pack(self.actions),
            rewards=pack(self.rewards),
            dones=pack(self.dones),
            terminated=pack(self.terminated),
            mask=pack(self.mask),
            log_probs=pack(self.log_probs),
            values=pack(self.values),
        )


@dataclass(frozen=True)
class TrialBatch:
    """Trials as sequences `[B, L, ...]` (B = T * C trials, L = n * H steps, padding last)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    dones: Tensor
    terminated: Tensor
    mask: Tensor
    log_probs: Tensor
    values: Tensor

    def previous(self, discrete: bool) -> tuple[Tensor, Tensor, Tensor]:
        """The recurrent inputs `(prev_action, prev_reward, prev_done)`, `[B, L(, A)]`: each
        field shifted by one step, "none" / 0 / 0 at the start of the trial (as in `rollout`)."""
        if discrete:
            first = torch.full_like(self.actions[:, :1], -1)
        else:
            first = torch.zeros_like(self.actions[:, :1])
        prev_action = torch.cat([first, self.actions[:, :-1]], 1)
        prev_reward = torch.cat([torch.zeros_like(self.rewards[:, :1]), self.rewards[:, :-1]], 1)
        prev_done = torch.cat([torch.zeros_like(self.dones[:, :1]), self.dones[:, :-1]], 1)
        return prev_action, prev_reward, prev_done


def rollout(
    env: BatchedEnv,
    tasks: TaskBatchLike,
    actor: Actor,
    num_episodes: int,
    seed: int | None = None,
    on_step: Callable[[Tensor, Tensor], None] | None = None,
    rows: Rows | None = None,
) -> Trajectories:
    """Play one trial of `num_episodes` episodes on every copy of `env`, set to `tasks`.

    tasks: a batch of `env.num_tasks` tasks. Returns `Trajectories` `[T, C * n, H, ...]`.
    At most `n * H` env steps per copy; stops early once every copy has finished its trial.
    `on_step(ep [N], t [N])`, if given, is called before each step with every copy's episode
    index inside the trial and step inside the episode (e.g. to render a frame).
    `rows`: `tasks` are these task rows of a sharded meta-batch (module docstring; give the
    actor the same rows, scaled to its axis); every rank of the batch must call together.
    """
    if not isinstance(num_episodes, int) or num_episodes < 1:
        raise UsageError(f"num_episodes must be an integer >= 1, got {num_episodes!r}")
    n, h, num, dev = num_episodes, env.horizon, env.num_envs, env.device
    sharded = rows is not None and rows.sharded
    if sharded and seed is not None:
        assert rows is not None
        seed = seed + rows.start * env.envs_per_task  # copy i: seed + its global index
    with deferred_finite_checks():  # the policy's finite checks: read once, after the loop
        obs = env.reset(tasks, seed)
        state = actor.initial_state(num)
        if env.discrete:
            prev_action = torch.full((num,), -1, dtype=torch.int64, device=dev)
        else:
            prev_action = torch.zeros(num, *(env.action_space.shape or ()), device=dev)
        prev_reward = torch.zeros(num, device=dev)
        prev_done = torch.zeros(num, device=dev)
        ep = torch.zeros(num, dtype=torch.int64, device=dev)  # episode index inside the trial
        t = torch.zeros(num, dtype=torch.int64, device=dev)  # step inside the episode
        steps: list[tuple[Tensor, ...]] = []
        # Stopping early needs the host to read `ep` (a device sync): only for families whose
        # episodes can end before the horizon, and then at most once per `max(h, 32)` steps.
        check_every = max(h, 32) if getattr(env, "ends_early", True) else n * h
        for k in range(n * h):
            if on_step is not None:
                on_step(ep, t)
            out = actor(obs, prev_action, prev_reward, prev_done, state)
            live = ep < n
            next_obs, reward, term, trunc = env.step(out.action)
            done = term | trunc | (t + 1 >= h)
            steps.append(
                (obs, out.action, reward, done, term, out.log_prob, out.value, ep, t, live)
            )
            obs, state = next_obs, out.state
            prev_action, prev_reward, prev_done = out.action, reward, done.float()
            t = torch.where(done, 0, t + 1)
            ep = ep + done.long()
            if (k + 1) % check_every == 0 and k + 1 < n * h and _all_finished(ep, n, rows):
                break
        return _assemble(steps, env, n)


def _all_finished(ep: Tensor, n: int, rows: Rows | None) -> bool:
    """Every copy (of every rank, for a sharded batch) has played its `n` episodes."""
    if rows is None or not rows.sharded:
        return bool((ep >= n).all())
    left = (ep < n).sum().reshape(1).cpu()
    return int(sum_(left, rows)) == 0


def _assemble(steps: list[tuple[Tensor, ...]], env: BatchedEnv, n: int) -> Trajectories:
    """Scatter the per-step records `[K, N]` into `[T, C * n, H]` at (copy, episode, step)."""
    fields = [torch.stack(x) for x in zip(*steps, strict=True)]  # each [K, N, ...]
    obs, act, rew, done, term, logp, val, ep, t, live = fields
    num, h, dev = env.num_envs, env.horizon, env.device
    # Flat slot of (copy, episode, step) in a `[num * n * h]` buffer; steps of copies past
    # their trial go to one extra slot that is dropped (a scatter, so no `nonzero` sync).
    copy = torch.arange(num, device=dev).expand_as(ep)
    slot = torch.where(live, (copy * n + ep) * h + t, num * n * h).flatten()

    def put(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        rest = x.shape[2:]
        buf = torch.zeros(num * n * h + 1, *rest, dtype=dtype or x.dtype, device=dev)
        buf[slot] = x.reshape(-1, *rest).to(buf.dtype)
        tt, c = env.num_tasks, env.envs_per_task
        return buf[:-1].view(tt, c * n, h, *rest)

    mask = put(torch.ones_like(rew))
    trial_starts = (torch.arange(env.envs_per_task * n, device=dev) % n == 0).expand(
        env.num_tasks, -1
    )
    return Trajectories(
        obs=put(obs),
        actions=put(act),
        rewards=put(rew),
        dones=put(done, torch.float32),
        terminated=put(term),
        mask=mask,
        log_probs=put(logp),
        values=put(val),
        trial_starts=trial_starts.clone(),
        episodes_per_trial=n,
        env_steps=len(steps) * num,
    )
