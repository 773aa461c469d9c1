"""MAML-RL (Finn et al. 2017) with a TRPO or a ProMP (Rothfuss et al. 2019) outer step.

    theta        = the policy's parameters (one set, shared by all tasks)
    support_0    = rollout(theta)                             # [T, E, H] per task
    theta'_t     = theta - inner_lr * grad L_pg(theta; support_t)   # metarl.inner_loop
    query        = rollout(theta'_t)
    outer step   : TRPO on the query surrogate of theta'(theta) (CG on Fisher-vector products
                   through the adaptation, backtracking under a KL bound), or ProMP (clipped
                   surrogate + a KL penalty on the inner step, several Adam steps).

Per-task parameters. The inner loop runs on parameters expanded to `[T, ...]`
(`metarl.inner_loop.expand_params`) and a loss that is the *sum* of the per-task losses, so
the gradient for task t's copy is task t's own gradient: the shared
`metarl.inner_loop.gradient_step` adapts every task at once, unchanged (the same trick as
few-shot MAML's `task_batching: vmap`; tested equal to a loop). The policy applies `[T, ...]`
parameters in one batched call (`policy.per_task`), so each env step of a rollout is one
forward for all tasks (`PerTaskActor`, an `agents.rollout.Actor`).

Inner losses: `agents.optim.reinforce_loss` (`reinforce`, MAML) or `agents.optim.lvc_loss`
against the sampling policy (`lvc`, ProMP: importance-weighted while ProMP's Adam steps move
theta), each reduced per task (`dims=(1, 2)`: a masked mean over the task's valid steps),
advantages from the linear feature baseline.

Budget = inner steps. The adaptation curve rolls out the policy after 0..K steps; the
episodes of step k are both row k of the curve and the support of step k + 1 (as MAML-RL).

Under `torchrun` (`agents.sharding`) each rank rolls out and adapts its own tasks (the
baseline is fitted per task, so it stays local); the outer step sums every rank's share:
TRPO's surrogate, its gradient, each Fisher-vector product and the line search's surrogates
and KLs (`agents.optim.trpo_step(reduce=...)`); ProMP's loss is weighted by the rank's share
of valid steps (clipped surrogate) and of tasks (inner KLs), its gradients summed before
Adam, and the inner KLs that adapt its penalty are the whole batch's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from agents.advantages import discounted_returns, gae, linear_feature_baseline, normalize
from agents.optim import (
    adapt_kl_coeff,
    detach_distribution,
    lvc_loss,
    masked_mean,
    pg_surrogate,
    promp_loss,
    reinforce_loss,
    trpo_step,
)
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy, make_mlp_policy
from agents.rollout import (
    ActorOutput,
    BatchedEnv,
    check_meta_rl,
    make_batched_env,
    rollout,
    sample_action,
)
from agents.sharding import Rows, full, global_mean, sum_, task_rows
from agents.video import record_episodes, side_by_side
from metarl import inner_loop
from metarl.config import (
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitInterval,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
)
from metarl.contracts import MetaRLDistribution, TaskBatchLike
from metarl.distributed import sync_grads_
from metarl.errors import NonFiniteError, UsageError
from metarl.inner_loop import Params, expand_params, named_params
from metarl.seeding import make_generator, seeded


@dataclass
class MAMLRLConfig:
    hidden_sizes: list[PositiveInt] = field(default_factory=lambda: [100, 100])
    """Policy MLP hidden sizes (MAML: 100-100 ReLU)."""
    activation: Literal["relu", "tanh"] = "relu"
    """Hidden activation of the policy."""
    head: Literal["auto", "gaussian", "categorical"] = "auto"
    """Action distribution; auto matches the action space."""
    init_std: PositiveFloat = 1.0
    """Initial standard deviation of a Gaussian policy."""
    episodes_per_task: PositiveInt = 20
    """Episodes per task per rollout (support and query each)."""
    horizon: PositiveInt | None = None
    """Episode length; None keeps the task's own (navigation: task.horizon; MuJoCo: 200)."""
    gamma: UnitInterval = 0.99
    """Discount."""
    gae_lambda: UnitInterval = 1.0
    """GAE lambda (1: discounted return minus the linear baseline, as MAML-RL)."""
    normalize_advantages: bool = True
    """Normalise advantages per task."""
    inner_loss: Literal["reinforce", "lvc"] = "reinforce"
    """Inner surrogate: vanilla policy gradient (MAML) or ProMP's low-variance curvature."""
    inner_lr: PositiveFloat = 0.1
    """Inner-loop step size (the initial one with `learn_inner_lr`)."""
    learn_inner_lr: bool = False
    """Meta-SGD: one step size per policy weight, initialised to `inner_lr` and meta-trained
    by the outer step (TRPO or ProMP) together with the policy."""
    adapt_steps: NonNegativeInt = 1
    """Inner steps during meta-training (each samples fresh support)."""
    eval_adapt_steps: NonNegativeInt = 1
    """Inner steps at which the headline return is read off the curve."""
    first_order: bool = False
    """Drop the second-order terms of the meta-gradient."""
    outer: Literal["trpo", "promp"] = "trpo"
    """Outer update."""
    max_kl: PositiveFloat = 0.01
    """TRPO: KL bound of the outer step."""
    cg_iters: PositiveInt = 10
    """TRPO: conjugate-gradient iterations."""
    fisher: Literal["first_order", "exact"] = "first_order"
    """TRPO: the metric of the conjugate-gradient solve. `exact`: the Hessian of the adapted
    policy's KL through the inner step, J^T F J with J = d theta'/d theta (pytorch-maml-rl);
    each product back-propagates through the inner step's second-order graph. `first_order`:
    J = I, the Fisher of the adapted policy itself: 4.7x cheaper products, 0.999 cosine to
    the exact ones on 2-D navigation (tested close). Either way the meta-gradient is the full
    second-order one and the line search checks the exact KL bound."""
    cg_damping: NonNegativeFloat = 1e-5
    """TRPO: damping added to the Fisher-vector products."""
    backtrack_ratio: OpenUnitInterval = 0.8
    """TRPO: line-search shrink factor."""
    max_backtracks: PositiveInt = 15
    """TRPO: line-search steps."""
    outer_lr: PositiveFloat = 1e-3
    """ProMP: Adam step size."""
    promp_steps: PositiveInt = 5
    """ProMP: Adam steps per meta-iteration on the same samples."""
    clip_eps: PositiveFloat = 0.3
    """ProMP: clipping range of the outer surrogate."""
    inner_kl_coeff: NonNegativeFloat = 5e-4
    """ProMP: initial penalty on the KL of each inner step."""
    target_inner_kl: PositiveFloat = 0.01
    """ProMP: the penalty adapts towards this inner KL (halve / double)."""
    adaptive_inner_kl: bool = True
    """ProMP: adapt the penalty; else keep inner_kl_coeff."""
    task_in_obs: bool = False
    """Append the task parameters to the observation (the oracle baseline)."""


# ---------------------------------------------------------------------------------------------
# per-task parameters

MLPPolicy = GaussianMLPPolicy | CategoricalMLPPolicy
PG_DIMS = (1, 2)  # per-task reduction of `[T, E, H]` step terms: one loss per task


def policy_dist(policy: MLPPolicy, params: Params, obs: Tensor) -> Distribution:
    """Per-task parameters `[T, ...]` applied to obs `[T, ..., O]` (`policy.per_task`)."""
    return policy.per_task(params, obs)


class PerTaskActor:
    """An `agents.rollout.Actor` for per-task parameters `[T, ...]`: one forward per step.

    Copies are task-major, so obs `[N, O]` reshapes to `[T, C, O]` (for the oracle the env
    has already appended the task parameters: `make_batched_env(..., task_in_obs=True)`).
    `rows`: the tasks' rows of a sharded meta-batch (`agents.rollout.sample_action`).
    """

    def __init__(
        self,
        policy: MLPPolicy,
        params: Params,
        generator: torch.Generator,
        deterministic: bool = False,
        rows: Rows | None = None,
    ) -> None:
        self.policy, self.generator = policy, generator
        self.deterministic, self.rows = deterministic, rows
        self.params = {k: v.detach() for k, v in params.items()}
        for value in self.params.values():
            _finite("policy parameters", value)
        self.num_tasks = next(iter(self.params.values())).shape[0]

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def __call__(self, obs, prev_action, prev_reward, prev_done, state) -> ActorOutput:
        dist = policy_dist(self.policy, self.params, obs.view(self.num_tasks, -1, obs.shape[-1]))
        action = sample_action(dist, self.generator, self.deterministic, self.rows)
        logp = dist.log_prob(action).flatten(0, 1)
        return ActorOutput(action.flatten(0, 1), logp, torch.zeros_like(logp), None)


# ---------------------------------------------------------------------------------------------
# losses on processed trajectories


@dataclass(frozen=True)
class RLBatch:
    """One rollout, ready for the losses. obs `[T, E, H, O]` (the policy's input); actions
    `[T, E, H(, A)]`; log_probs (at sampling), advantages, mask `[T, E, H]`; returns `[T]`:
    mean undiscounted episode return per task; env_steps taken."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    advantages: Tensor
    mask: Tensor
    returns: Tensor
    env_steps: int


def process(traj: Any, cfg: MAMLRLConfig) -> RLBatch:
    """Advantages from the per-task linear feature baseline (MAML-RL), normalised per task."""
    obs = traj.obs
    returns = discounted_returns(traj.rewards, traj.dones, cfg.gamma)
    values = linear_feature_baseline(obs, returns, traj.mask)
    adv = gae(traj.rewards, values, traj.dones, cfg.gamma, cfg.gae_lambda) * traj.mask
    if cfg.normalize_advantages:
        adv = normalize(adv, traj.mask, dims=(1, 2))
    mean_return = traj.episode_returns().mean(1)
    return RLBatch(obs, traj.actions, traj.log_probs, adv, traj.mask, mean_return, traj.env_steps)


def inner_loss(
    policy: MLPPolicy, params: Params, batch: RLBatch, kind: str, dist: Distribution | None = None
) -> Tensor:
    """Sum over tasks of each task's policy-gradient loss at its parameters `[T, ...]`."""
    dist = policy_dist(policy, params, batch.obs) if dist is None else dist
    logp = dist.log_prob(batch.actions)
    if kind == "reinforce":
        per_task = reinforce_loss(logp, batch.advantages, batch.mask, PG_DIMS)
    else:  # lvc: importance-weighted against the sampling policy
        per_task = lvc_loss(logp, batch.advantages, batch.mask, PG_DIMS, batch.log_probs)
    return per_task.sum()


def mean_task_kl(old: Distribution, new: Distribution, mask: Tensor) -> Tensor:
    """`KL(old || new)` averaged over each task's valid steps, then over tasks: a scalar."""
    return masked_mean(kl_divergence(old, new), mask, PG_DIMS).mean()


def adapt_params(
    policy: MLPPolicy,
    params: Params,
    supports: list[RLBatch],
    cfg: MAMLRLConfig,
    step_sizes: Params | None = None,
) -> Params:
    """Per-task parameters `[T, ...]` after one inner step per support batch (shared loop);
    `step_sizes` (Meta-SGD, shaped like the unexpanded parameters) replace `cfg.inner_lr`."""
    lr: inner_loop.StepSizes = cfg.inner_lr if step_sizes is None else step_sizes
    for batch in supports:
        loss = inner_loss(policy, params, batch, cfg.inner_loss)
        params = inner_loop.gradient_step(params, loss, lr, cfg.first_order)
    return params


LR_PREFIX = "inner_lr/"  # Meta-SGD step sizes, next to the policy weights in one dict


def split_meta(p: Params) -> tuple[Params, Params | None]:
    """Policy weights and Meta-SGD step sizes (None without) of a meta-parameter dict."""
    weights = {k: v for k, v in p.items() if not k.startswith(LR_PREFIX)}
    lrs = {k[len(LR_PREFIX) :]: v for k, v in p.items() if k.startswith(LR_PREFIX)}
    return weights, (lrs or None)


def _leaves(params: Params) -> Params:
    return {k: v.detach().requires_grad_(True) for k, v in params.items()}


def _finite(name: str, value: Tensor) -> None:
    if not torch.isfinite(value).all():
        raise NonFiniteError(f"MAML-RL {name} is not finite ({value.flatten()[0].item()})")


# ---------------------------------------------------------------------------------------------
# the learner


@dataclass(frozen=True)
class Collected:
    """The experience of one meta-iteration: `supports[i]` (inner step i's rollout) played by
    `samplers[i]` (per-task parameters `[T, ...]`), then the `query` rollout of `adapted`."""

    supports: list[RLBatch]
    samplers: list[Params]
    query: RLBatch
    adapted: Params

    @property
    def env_steps(self) -> int:
        return sum(b.env_steps for b in self.supports) + self.query.env_steps


class MAMLRL:
    """MAML-RL learner; `budget` is the number of inner gradient steps (each with fresh data).

    `meta_step(tasks)` = `collect(tasks)` (support and query rollouts) then
    `outer_step(collected)` (TRPO or ProMP); `play(tasks, params, generator)` is one rollout.
    """

    budget_name = "steps"
    distributed = True  # meta_step / curves take a shard of the batch (agents.sharding)
    metric = "return"
    higher_is_better = True

    def __init__(
        self,
        cfg: MAMLRLConfig,
        policy: MLPPolicy,
        distribution: MetaRLDistribution[Any],
        device: torch.device,
        seed: int,
    ) -> None:
        self.cfg, self.policy, self.distribution = cfg, policy.to(device), distribution
        self.device = torch.device(device)
        self.headline_budget = cfg.eval_adapt_steps
        self.train_generator = make_generator(seed, "maml_rl/train_actions", device)
        self.eval_generator = make_generator(seed, "maml_rl/eval_actions", device)
        self.step_sizes: Params | None = None
        if cfg.learn_inner_lr:
            self.step_sizes = {
                k: torch.full_like(v, cfg.inner_lr).requires_grad_(True)
                for k, v in self.policy.named_parameters()
            }
        self.optimizer = (
            torch.optim.Adam(list(self._meta_params().values()), lr=cfg.outer_lr)
            if cfg.outer == "promp"
            else None
        )
        self.kl_coeffs = [cfg.inner_kl_coeff] * cfg.adapt_steps
        self.env_steps = 0
        self._envs: dict[int, BatchedEnv] = {}

    # -- experience -------------------------------------------------------------------------
    def _env(self, num_tasks: int) -> BatchedEnv:
        if num_tasks not in self._envs:
            self._envs[num_tasks] = make_batched_env(
                self.distribution,
                num_tasks,
                self.cfg.episodes_per_task,
                self.device,
                self.cfg.horizon,
                self.cfg.task_in_obs,
            )
        return self._envs[num_tasks]

    def play(
        self,
        tasks: TaskBatchLike,
        params: Params,
        generator: torch.Generator,
        rows: Rows | None = None,
    ) -> RLBatch:
        """Roll out per-task parameters `[T, ...]`: `episodes_per_task` episodes per task;
        `rows`: the tasks' rows of a sharded meta-batch (`agents.sharding`)."""
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
        actor = PerTaskActor(self.policy, params, generator, rows=rows)
        env = self._env(tasks.num_tasks)
        traj = rollout(env, tasks, actor, num_episodes=1, seed=seed, rows=rows)
        return process(traj, self.cfg)

    def theta(self) -> Params:
        """The policy's parameters as fresh leaves (detached copies that require grad)."""
        return _leaves(named_params(self.policy))

    def _meta_params(self) -> Params:
        """What the outer step trains: the policy weights and the Meta-SGD step sizes."""
        lrs = {LR_PREFIX + k: v for k, v in (self.step_sizes or {}).items()}
        return {**named_params(self.policy), **lrs}

    def collect(self, tasks: TaskBatchLike, rows: Rows | None = None) -> Collected:
        """Supports (one per inner step, each played by the parameters adapted so far), then
        the query rollout of the adapted parameters, with the training generator."""
        params = expand_params(self.theta(), tasks.num_tasks)
        supports, samplers = [], []
        gen = self.train_generator
        for _ in range(self.cfg.adapt_steps):
            supports.append(self.play(tasks, params, gen, rows))
            samplers.append(params)
            params = self._inner_step(params, supports[-1])
        return Collected(supports, samplers, self.play(tasks, params, gen, rows), params)

    # -- outer steps ------------------------------------------------------------------------
    def meta_step(self, tasks: TaskBatchLike) -> dict[str, float]:
        """Sample support and query for each task, then one TRPO or ProMP outer update.
        Under `torchrun`, a collective: `tasks` are this rank's rows of the meta-batch."""
        rows = task_rows(tasks.num_tasks)
        c = self.collect(tasks, rows)
        env_steps = int(sum_(torch.tensor([c.env_steps], dtype=torch.int64), rows))
        self.env_steps += env_steps  # training experience only (not evaluation)
        metrics = self.outer_step(c, rows)
        pre = c.supports[0].returns if c.supports else c.query.returns
        means = {"return_pre": pre.mean().item(), "return_post": c.query.returns.mean().item()}
        metrics.update(global_mean(means, rows.weight, rows), env_steps=float(env_steps))
        return metrics

    def outer_step(self, collected: Collected, rows: Rows | None = None) -> dict[str, float]:
        """One TRPO or ProMP update of the meta-parameters on `collected` experience;
        `rows`: its tasks' rows of a sharded meta-batch (the update is the whole batch's)."""
        rows = rows or full(collected.query.returns.shape[0])
        with torch.no_grad():
            old = detach_distribution(
                policy_dist(self.policy, collected.adapted, collected.query.obs)
            )
        if self.cfg.outer == "trpo":
            return self._trpo(collected.supports, collected.query, old, rows)
        return self._promp(collected.supports, collected.samplers, collected.query, old, rows)

    def _trpo(
        self, supports: list[RLBatch], query: RLBatch, old: Distribution, rows: Rows
    ) -> dict[str, float]:
        num_tasks, share = query.returns.shape[0], rows.weight  # share: 1.0 unsharded
        old_logp = old.log_prob(query.actions)
        cache: list[Any] = [None, None]  # the line search asks surrogate and KL of one dict

        def adapted_dist(p: Params) -> Distribution:
            if cache[0] is not p:
                w, lrs = split_meta(p)
                params = adapt_params(
                    self.policy, expand_params(w, num_tasks), supports, self.cfg, lrs
                )
                cache[:] = [p, policy_dist(self.policy, params, query.obs)]
            return cache[1]

        def surrogate(p: Params) -> Tensor:  # this rank's share of the mean over tasks
            logp = adapted_dist(p).log_prob(query.actions)
            surr = pg_surrogate(logp, old_logp, query.advantages, query.mask, PG_DIMS)
            return surr.mean() * share

        def kl(p: Params) -> Tensor:
            value = mean_task_kl(old, adapted_dist(p), query.mask) * share
            if not rows.sharded:  # sharded: trpo_step rejects a non-finite summed KL
                _finite("KL", value)
            return value

        first_order = dataclasses.replace(self.cfg, first_order=True)

        def fisher_kl(p: Params) -> Tensor:  # J = I: the inner gradient taken as constant
            w, lrs = split_meta(p)
            params = adapt_params(
                self.policy, expand_params(w, num_tasks), supports, first_order, lrs
            )
            dist = policy_dist(self.policy, params, query.obs)
            return mean_task_kl(old, dist, query.mask) * share

        c = self.cfg
        meta = self._meta_params()
        result = trpo_step(
            meta,
            surrogate,
            kl,
            c.max_kl,
            c.cg_damping,
            c.cg_iters,
            c.backtrack_ratio,
            c.max_backtracks,
            fisher_kl_fn=fisher_kl if c.fisher == "first_order" else None,
            reduce=(lambda t: sum_(t, rows)) if rows.sharded else None,
        )
        with torch.no_grad():
            for k, v in meta.items():
                v.copy_(result.params[k])
        return {
            "loss": -result.surrogate_after,
            "kl": result.kl,
            "trpo_accepted": float(result.accepted),
            "step_fraction": result.step_fraction,
        }

    def _promp(
        self,
        supports: list[RLBatch],
        samplers: list[Params],
        query: RLBatch,
        old: Distribution,
        rows: Rows,
    ) -> dict[str, float]:
        assert self.optimizer is not None
        old_logp = old.log_prob(query.actions)
        # This rank's shares: of the valid query steps (the clipped surrogate is a mean over
        # them) and of the tasks (each inner KL is a mean over tasks); 1.0 unsharded.
        step_share, task_share = 1.0, rows.weight
        if rows.sharded:
            mine = query.mask.sum().double().reshape(1).cpu()
            step_share = float(mine) / float(sum_(mine.clone(), rows))
        with torch.no_grad():
            pre_dists = [
                detach_distribution(policy_dist(self.policy, p, b.obs))
                for p, b in zip(samplers, supports, strict=True)
            ]
        num_tasks = query.returns.shape[0]
        for _ in range(self.cfg.promp_steps):
            params = expand_params(named_params(self.policy), num_tasks)
            kls = []
            for batch, pre in zip(supports, pre_dists, strict=True):
                dist = policy_dist(self.policy, params, batch.obs)
                kls.append(mean_task_kl(pre, dist, batch.mask))
                loss = inner_loss(self.policy, params, batch, self.cfg.inner_loss, dist)
                params = inner_loop.gradient_step(params, loss, self._lr(), self.cfg.first_order)
            logp = policy_dist(self.policy, params, query.obs).log_prob(query.actions)
            logp = torch.where(query.mask > 0, logp, old_logp)
            terms = promp_loss(
                logp, old_logp, query.advantages, kls, self.kl_coeffs, self.cfg.clip_eps, query.mask
            )
            loss = terms["loss"]
            if rows.sharded:  # this rank's share of the loss; the gradients are then summed
                loss = terms["clip_loss"] * step_share
                if kls:
                    loss = loss + terms["kl_penalty"] * task_share
                _finite("ProMP loss", sum_(loss.detach().reshape(1).clone(), rows))
            else:
                _finite("ProMP loss", loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if rows.sharded:
                sync_grads_(self._meta_params().values(), 1.0)
            self.optimizer.step()
        kl_now = torch.stack([k.detach() for k in kls]) if kls else torch.zeros(0)
        inner_kl = (
            sum_((kl_now * task_share).double().cpu(), rows).tolist()
            if rows.sharded
            else [k.item() for k in kls]
        )
        _finite("inner KL", torch.tensor(inner_kl))
        if self.cfg.adaptive_inner_kl:
            self.kl_coeffs = [
                adapt_kl_coeff(eta, kl, self.cfg.target_inner_kl)
                for eta, kl in zip(self.kl_coeffs, inner_kl, strict=True)
            ]
        metrics = {"loss": terms["loss"].item(), "kl": terms["approx_kl"].item()}
        metrics["clip_fraction"] = terms["clip_fraction"].item()
        if rows.sharded:  # the whole batch's: step means by step share, the KL penalty by task
            penalty = float(terms["kl_penalty"].detach()) * task_share if kls else 0.0
            means = global_mean(metrics, step_share, rows)
            own = float(terms["clip_loss"].detach()) * step_share + penalty
            loss_sum = sum_(torch.tensor([own], dtype=torch.float64), rows)
            metrics = {**means, "loss": float(loss_sum)}
        if inner_kl:
            metrics.update(inner_kl=inner_kl[0], inner_kl_coeff=self.kl_coeffs[0])
        return metrics

    # -- learner contract -------------------------------------------------------------------
    def _inner_step(self, params: Params, batch: RLBatch) -> Params:
        """One detached first-order inner step (sampling-time adaptation and evaluation)."""
        with torch.enable_grad():
            loss = inner_loss(self.policy, params, batch, self.cfg.inner_loss)
            _finite("inner loss", loss)
            return _leaves(inner_loop.gradient_step(params, loss, self._lr(), True))

    def _lr(self) -> inner_loop.StepSizes:
        return self.cfg.inner_lr if self.step_sizes is None else self.step_sizes

    def _adaptation(
        self, tasks: TaskBatchLike, budget: int, last: bool, rows: Rows | None = None
    ) -> tuple[Params, list[Tensor]]:
        """Parameters after `budget` steps and each rollout's return `[T]` (the adapted
        policy's too if `last`); `rows`: the tasks' rows of a sharded held-out batch."""
        if budget < 0:
            raise UsageError(f"adaptation budget must be >= 0 inner steps, got {budget}")
        params = expand_params(self.theta(), tasks.num_tasks)
        returns = []
        for _ in range(budget):
            batch = self.play(tasks, params, self.eval_generator, rows)
            returns.append(batch.returns)
            params = self._inner_step(params, batch)
        if last:
            returns.append(self.play(tasks, params, self.eval_generator, rows).returns)
        return params, returns

    def adapt(self, tasks: TaskBatchLike, budget: int) -> Params:
        """Per-task parameters `[T, ...]` after `budget` inner steps, each on fresh episodes."""
        return self._adaptation(tasks, budget, last=False)[0]

    def evaluate(self, adapted: Params, tasks: TaskBatchLike) -> Tensor:
        """Mean undiscounted episode return `[T]` of fresh episodes with the adapted policy."""
        return self.play(tasks, adapted, self.eval_generator).returns

    def adaptation_curve(self, tasks: TaskBatchLike, max_budget: int) -> Tensor:
        """Mean query return after 0..max_budget inner steps: `[max_budget + 1, T]`. Under
        `torchrun`, a collective: each rank's tasks are its rows of the held-out batch."""
        if max_budget < 0:
            raise UsageError(f"adaptation budget must be >= 0 inner steps, got {max_budget}")
        rows = task_rows(tasks.num_tasks)
        return torch.stack(self._adaptation(tasks, max_budget, True, rows)[1])

    def record(self, tasks: TaskBatchLike, width: int = 160, height: int = 120) -> np.ndarray:
        """Video `[F, H, 2W, 3]` uint8 of one episode on task 0: the meta-learned policy
        before adaptation (left) beside the policy after `eval_adapt_steps` inner steps on
        fresh support episodes (right); mean actions. Renderable (MuJoCo) families only."""
        task = tasks.select(0)
        c = self.cfg
        env = make_batched_env(self.distribution, 1, 1, self.device, c.horizon, c.task_in_obs)
        rng_state = self.eval_generator.get_state()  # recording leaves evaluation unchanged
        try:
            clips = []
            g = self.eval_generator
            seed = int(torch.randint(2**31 - 1, (1,), generator=g, device=g.device))
            for params in (expand_params(self.theta(), 1), self.adapt(task, self.headline_budget)):
                actor = PerTaskActor(self.policy, params, self.eval_generator, True)
                clips += record_episodes(env, task, actor, 1, [0], 2, width, height, seed)
            return side_by_side(clips)
        finally:
            self.eval_generator.set_state(rng_state)
            env.close()

    def bytes_per_task(self, probe: TaskBatchLike) -> int:
        """Memory one task of a meta-batch needs (the up-front check of `metarl.resources`): the
        pre- and post-adaptation rollouts (`adapt_steps + 1` of `episodes_per_task` episodes),
        each with the policy's activations (2 numbers per hidden unit and step) that the outer
        loss differentiates through."""
        from agents.rollout import trajectory_bytes
        from metarl.resources import tensor_bytes

        c = self.cfg
        horizon = c.horizon or self.distribution.horizon
        rollouts = max(c.adapt_steps, c.eval_adapt_steps) + 1
        per_rollout = trajectory_bytes(
            self.distribution, c.episodes_per_task, horizon, 2 * sum(c.hidden_sizes)
        )
        return tensor_bytes(probe) + rollouts * per_rollout

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": self.policy.state_dict(),
            "generators": {
                "train": self.train_generator.get_state(),
                "eval": self.eval_generator.get_state(),
            },
            "kl_coeffs": list(self.kl_coeffs),
            "env_steps": self.env_steps,
        }
        if self.step_sizes is not None:
            state["step_sizes"] = {k: v.detach().clone() for k, v in self.step_sizes.items()}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["model"])
        self.train_generator.set_state(state["generators"]["train"])
        self.eval_generator.set_state(state["generators"]["eval"])
        self.kl_coeffs = [float(k) for k in state["kl_coeffs"]]
        self.env_steps = int(state["env_steps"])
        if self.step_sizes is not None:
            with torch.no_grad():
                for k, v in self.step_sizes.items():
                    v.copy_(state["step_sizes"][k])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])


def check_config(cfg: MAMLRLConfig) -> None:
    """One-line `UsageError` for settings that cannot work."""
    checks = [
        (cfg.horizon is None or cfg.horizon >= 1, f"learner.horizon must be >= 1 (or null), got {cfg.horizon}"),
        (cfg.episodes_per_task >= 1, f"learner.episodes_per_task must be >= 1, got {cfg.episodes_per_task}"),
        (len(cfg.hidden_sizes) >= 1 and min(cfg.hidden_sizes) >= 1, f"learner.hidden_sizes needs sizes >= 1, got {cfg.hidden_sizes}"),
        (cfg.adapt_steps >= 0 and cfg.eval_adapt_steps >= 0, "learner.adapt_steps and eval_adapt_steps must be >= 0"),
        (cfg.inner_lr >= 0, f"learner.inner_lr must be >= 0, got {cfg.inner_lr}"),
        (0 <= cfg.gamma <= 1 and 0 <= cfg.gae_lambda <= 1, "learner.gamma and gae_lambda must lie in [0, 1]"),
        (cfg.init_std > 0, f"learner.init_std must be > 0, got {cfg.init_std}"),
        (cfg.max_kl > 0 and cfg.cg_iters >= 1, "learner.max_kl must be > 0 and cg_iters >= 1"),
        (0 < cfg.backtrack_ratio < 1, f"learner.backtrack_ratio must lie in (0, 1), got {cfg.backtrack_ratio}"),
        (cfg.max_backtracks >= 1, f"learner.max_backtracks must be >= 1, got {cfg.max_backtracks}"),
        (cfg.outer_lr > 0 and cfg.promp_steps >= 1, "learner.outer_lr must be > 0 and promp_steps >= 1"),
        (0 < cfg.clip_eps < 1, f"learner.clip_eps must lie in (0, 1), got {cfg.clip_eps}"),
        (cfg.inner_kl_coeff >= 0 and cfg.target_inner_kl > 0, "learner.inner_kl_coeff must be >= 0 and target_inner_kl > 0"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def build_maml_rl(cfg: MAMLRLConfig, distribution: Any, device: torch.device, seed: int) -> MAMLRL:
    check_config(cfg)
    check_meta_rl(distribution, "learner.kind maml_rl")
    probe = make_batched_env(distribution, 1, 1, "cpu", cfg.horizon, cfg.task_in_obs)
    obs_space, action_space = probe.observation_space, probe.action_space  # spaces only
    probe.close()
    activation = {"relu": nn.ReLU, "tanh": nn.Tanh}[cfg.activation]
    kwargs: dict[str, Any] = {"activation": activation}
    if not isinstance(action_space, spaces.Discrete):
        kwargs["init_std"] = cfg.init_std
    with seeded(seed, "policy"):
        policy = make_mlp_policy(
            obs_space, action_space, cfg.head, tuple(cfg.hidden_sizes), **kwargs
        )
    return MAMLRL(cfg, policy, distribution, device, seed)
