"""MAML-RL: the shared inner loop, meta-gradients, TRPO's KL bound, improvement, seeds, errors."""

from dataclasses import replace

import pytest
import torch

import metarl.inner_loop
from agents import maml_rl
from agents.maml_rl import (
    MAMLRLConfig,
    adapt_params,
    build_maml_rl,
    expand_params,
    inner_loss,
    mean_task_kl,
    policy_dist,
)
from agents.optim import fisher_vector_product, lvc_loss, reinforce_loss
from agents.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from envs.tensor import BanditDistribution, Navigation2DDistribution
from metarl.errors import NonFiniteError, UsageError
from metarl.fewshot.sinusoid import SinusoidConfig, SinusoidDistribution
from metarl.inner_loop import forward

CPU = torch.device("cpu")
SMALL = MAMLRLConfig(hidden_sizes=[16, 16], episodes_per_task=4)


def _nav(horizon: int = 10) -> Navigation2DDistribution:
    return Navigation2DDistribution(horizon=horizon)


def _tasks(dist, n=3, seed=0, split="train"):
    return dist.sample(split, n, torch.Generator().manual_seed(seed))


def _learner(cfg=SMALL, dist=None, seed=0):
    return build_maml_rl(cfg, dist or _nav(), CPU, seed)


def _support(learner, tasks):
    """One rollout of the unadapted policy on `tasks` (an RLBatch) and the leaf parameters."""
    theta = learner.theta()
    return learner.play(
        tasks, expand_params(theta, tasks.num_tasks), learner.train_generator
    ), theta


@pytest.mark.parametrize(
    "policy", [GaussianMLPPolicy(3, 2, (5, 4)), CategoricalMLPPolicy(3, 4, (5,))]
)
def test_per_task_policy_forward_equals_a_per_task_loop(policy):
    gen = torch.Generator().manual_seed(0)
    params = {
        k: v.detach() + 0.3 * torch.randn(4, *v.shape, generator=gen)
        for k, v in policy.named_parameters()
    }
    obs = torch.randn(4, 2, 5, 3, generator=gen)
    fast = policy_dist(policy, params, obs)
    actions = fast.sample()
    assert fast.batch_shape == (4, 2, 5)
    for t in range(4):
        one = forward(policy, {k: v[t] for k, v in params.items()}, obs[t])
        torch.testing.assert_close(fast.log_prob(actions)[t], one.log_prob(actions[t]))


def test_inner_step_goes_through_the_shared_inner_loop(monkeypatch):
    calls = []
    real = metarl.inner_loop.gradient_step

    def spy(*args, **kwargs):
        calls.append(args[2])  # the step size
        return real(*args, **kwargs)

    monkeypatch.setattr(metarl.inner_loop, "gradient_step", spy)
    assert maml_rl.inner_loop is metarl.inner_loop
    learner = _learner(replace(SMALL, inner_lr=0.37))
    learner.meta_step(_tasks(learner.distribution))
    assert calls and all(lr == 0.37 for lr in calls)
    n = len(calls)
    learner.adaptation_curve(_tasks(learner.distribution, 2, 1, "test"), 2)
    assert len(calls) == n + 2


def test_batched_inner_step_equals_per_task_adaptation():
    """Sum-of-task-losses on `[T, ...]` parameters = each task adapted alone."""
    learner = _learner()
    batch, theta = _support(learner, _tasks(learner.distribution))
    adapted = adapt_params(learner.policy, expand_params(theta, 3), [batch], SMALL)
    for t in range(3):

        def loss_t(p, t=t):
            logp = forward(learner.policy, p, batch.obs[t]).log_prob(batch.actions[t])
            return reinforce_loss(logp, batch.advantages[t], batch.mask[t])

        ref = metarl.inner_loop.adapt(theta, loss_t, 1, SMALL.inner_lr)
        for k in theta:
            torch.testing.assert_close(adapted[k][t], ref[k], rtol=1e-5, atol=1e-6)


def test_meta_gradient_reaches_initial_parameters_with_second_order_terms():
    learner = _learner()
    tasks = _tasks(learner.distribution)
    batch, theta = _support(learner, tasks)

    def query_loss(first_order):
        cfg = replace(SMALL, first_order=first_order)
        adapted = adapt_params(learner.policy, expand_params(theta, 3), [batch], cfg)
        return inner_loss(learner.policy, adapted, batch, "reinforce")

    second = torch.autograd.grad(query_loss(False), list(theta.values()))
    first = torch.autograd.grad(query_loss(True), list(theta.values()))
    assert all(g.abs().sum() > 0 for g in second)
    assert any(not torch.allclose(a, b) for a, b in zip(first, second, strict=True))


def test_lvc_inner_loss_equals_promp_lvc_at_the_sampling_parameters():
    learner = _learner()
    batch, theta = _support(learner, _tasks(learner.distribution))
    params = expand_params(theta, 3)
    ours = inner_loss(learner.policy, params, batch, "lvc")
    logp = policy_dist(learner.policy, params, batch.obs).log_prob(batch.actions)
    ref = sum(lvc_loss(logp[t], batch.advantages[t], batch.mask[t]) for t in range(3))
    torch.testing.assert_close(ours, ref)
    g1 = torch.autograd.grad(ours, list(theta.values()))
    g2 = torch.autograd.grad(
        inner_loss(learner.policy, params, batch, "reinforce"), list(theta.values())
    )
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fisher", ["first_order", "exact"])
def test_trpo_step_satisfies_the_kl_bound_on_sampled_data(fisher):
    cfg = replace(SMALL, max_kl=0.005, fisher=fisher)
    learner = _learner(cfg)
    tasks = _tasks(learner.distribution, 4)
    collected = learner.collect(tasks)
    supports, query, adapted = collected.supports, collected.query, collected.adapted
    with torch.no_grad():
        old = policy_dist(learner.policy, adapted, query.obs)
    before = {k: v.detach().clone() for k, v in learner.policy.named_parameters()}
    metrics = learner.outer_step(collected)
    assert metrics["trpo_accepted"] == 1.0
    after = learner.theta()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    new = adapt_params(learner.policy, expand_params(after, 4), supports, cfg)
    with torch.no_grad():
        kl = mean_task_kl(old, policy_dist(learner.policy, new, query.obs), query.mask)
    assert 0 < kl.item() <= cfg.max_kl * 1.001
    assert metrics["kl"] == pytest.approx(kl.item(), rel=1e-3)


def test_first_order_fisher_is_close_to_the_exact_hessian_of_the_adapted_kl():
    # The exact metric is the Hessian of KL(theta) = KL(pi_theta'(old) || pi_theta'(theta))
    # through the inner step, J^T F J with J = I - alpha H_support; the first-order one takes
    # J = I. With MAML's inner step size they nearly agree, but are not the same product.
    learner = _learner(replace(SMALL, episodes_per_task=8))
    tasks = _tasks(learner.distribution, 4)
    collected = learner.collect(tasks)
    supports, query, adapted = collected.supports, collected.query, collected.adapted
    with torch.no_grad():
        old = maml_rl.detach_distribution(policy_dist(learner.policy, adapted, query.obs))
    theta = learner.theta()

    def kl_with(first_order):
        cfg = replace(learner.cfg, first_order=first_order)

        def kl(p):
            new = adapt_params(learner.policy, expand_params(p, 4), supports, cfg)
            return mean_task_kl(old, policy_dist(learner.policy, new, query.obs), query.mask)

        return kl

    v = torch.randn(
        sum(t.numel() for t in theta.values()), generator=torch.Generator().manual_seed(3)
    )
    exact = fisher_vector_product(kl_with(False), theta, 0.0)(v)
    approx = fisher_vector_product(kl_with(True), theta, 0.0)(v)
    cosine = (exact @ approx / (exact.norm() * approx.norm())).item()
    assert cosine > 0.99
    assert not torch.allclose(exact, approx, rtol=1e-6, atol=0)  # the option changes something
    assert (v @ approx).item() > 0  # a metric: positive definite along v


def test_promp_step_runs_and_adapts_its_inner_kl_penalty():
    cfg = replace(SMALL, outer="promp", inner_loss="lvc", promp_steps=2)
    learner = _learner(cfg)
    before = [p.detach().clone() for p in learner.policy.parameters()]
    metrics = learner.meta_step(_tasks(learner.distribution))
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert metrics["inner_kl"] > 0 and learner.kl_coeffs[0] != cfg.inner_kl_coeff
    assert any(
        not torch.equal(a, b) for a, b in zip(before, learner.policy.parameters(), strict=True)
    )


def test_adaptation_curve_shapes_and_contract():
    learner = _learner()
    tasks = _tasks(learner.distribution, 2, 3, "test")
    curve = learner.adaptation_curve(tasks, 3)
    assert curve.shape == (4, 2) and torch.isfinite(curve).all()
    adapted = learner.adapt(tasks, 1)
    assert adapted["net.0.weight"].shape == (2, 16, 2)
    assert learner.evaluate(adapted, tasks).shape == (2,)
    assert (learner.budget_name, learner.metric, learner.higher_is_better) == (
        "steps",
        "return",
        True,
    )


def test_meta_training_improves_adapted_return_on_navigation():
    """A little MAML-TRPO on short-horizon navigation: post-adaptation > pre-adaptation."""
    dist = _nav(horizon=20)
    cfg = MAMLRLConfig(hidden_sizes=[32, 32], episodes_per_task=10, max_kl=0.02)
    learner = build_maml_rl(cfg, dist, CPU, 0)
    held_out = _tasks(dist, 10, 7, "test")
    start = learner.adaptation_curve(held_out, 1).mean(1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(8):
        learner.meta_step(dist.sample("train", 10, gen))
    end = learner.adaptation_curve(held_out, 1).mean(1)
    assert end[1] > end[0] + 1.0, (start, end)  # one inner step helps
    assert end[1] > start[1] + 1.0, (start, end)  # meta-training helped


def test_seeded_runs_repeat_and_resume_gives_the_same_numbers():
    dist = _nav()
    cfg = replace(SMALL, outer="promp", inner_loss="lvc", promp_steps=2)

    def run(learner, n, seed=0):
        gen = torch.Generator().manual_seed(seed)
        out = [learner.meta_step(dist.sample("train", 3, gen)) for _ in range(n)]
        return out, gen

    a, b = build_maml_rl(cfg, dist, CPU, 5), build_maml_rl(cfg, dist, CPU, 5)
    ma, _ = run(a, 2)
    mb, gen = run(b, 1)
    state = {k: v for k, v in b.state_dict().items()}
    c = build_maml_rl(cfg, dist, CPU, 5)
    c.load_state_dict(state)
    mc = c.meta_step(dist.sample("train", 3, gen))
    assert ma[0] == mb[0] and ma[1] == mc
    for p, q in zip(a.policy.parameters(), c.policy.parameters(), strict=True):
        assert torch.equal(p, q)
    tasks = _tasks(dist, 2, 9, "test")
    assert torch.equal(a.adaptation_curve(tasks, 1), c.adaptation_curve(tasks, 1))
    other = build_maml_rl(cfg, dist, CPU, 6)
    assert run(other, 1)[0][0] != ma[0]


@pytest.mark.parametrize("outer", ["trpo", "promp"])
def test_meta_sgd_step_sizes_are_meta_trained_used_and_checkpointed(outer):
    cfg = replace(SMALL, learn_inner_lr=True, outer=outer, max_kl=0.05)
    dist = _nav()
    learner = build_maml_rl(cfg, dist, CPU, 0)
    assert set(learner.step_sizes) == {k for k, _ in learner.policy.named_parameters()}
    assert all(torch.all(v == cfg.inner_lr) for v in learner.step_sizes.values())
    # the adapted parameters are theta - alpha * grad, with alpha the learned tensors
    tasks = _tasks(dist)
    batch, theta = _support(learner, tasks)
    alpha = {k: torch.rand_like(v) for k, v in theta.items()}
    adapted = adapt_params(learner.policy, expand_params(theta, 3), [batch], cfg, alpha)
    grads = torch.autograd.grad(
        inner_loss(learner.policy, expand_params(theta, 3), batch, "reinforce"),
        list(theta.values()),
    )
    for (k, t), g in zip(theta.items(), grads, strict=True):
        torch.testing.assert_close(adapted[k].sum(0), 3 * t - alpha[k] * g)  # summed over tasks
    # one outer step moves the step sizes away from their initial value
    before = {k: v.detach().clone() for k, v in learner.step_sizes.items()}
    learner.meta_step(dist.sample("train", 3, torch.Generator().manual_seed(1)))
    assert any(not torch.equal(before[k], v) for k, v in learner.step_sizes.items())
    # they are part of the learner's state
    other = build_maml_rl(cfg, dist, CPU, 1)
    other.load_state_dict(learner.state_dict())
    for k, v in learner.step_sizes.items():
        assert torch.equal(other.step_sizes[k], v)
    assert build_maml_rl(SMALL, dist, CPU, 0).step_sizes is None  # MAML: a fixed inner_lr


def test_oracle_sees_the_task_parameters():
    learner = _learner(replace(SMALL, task_in_obs=True))
    assert learner.policy.obs_dim == 4  # position + goal
    batch, _ = _support(learner, _tasks(learner.distribution))
    torch.testing.assert_close(batch.obs[1, 2, 0, 2:], _tasks(learner.distribution).goals[1])


def test_non_finite_loss_raises(monkeypatch):
    learner = _learner()
    with torch.no_grad():
        learner.policy.net[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError):
        learner.meta_step(_tasks(learner.distribution))


@pytest.mark.parametrize(
    "changes, dist, match",
    [
        (
            {"head": "gaussian"},
            BanditDistribution(num_arms=3, horizon=5),
            "Gaussian policy needs a Box",
        ),
        ({"horizon": 0}, None, "horizon must be >= 1"),
        ({"episodes_per_task": 0}, None, "episodes_per_task"),
        ({"clip_eps": 1.5}, None, "clip_eps"),
        ({"horizon": 50}, None, "differs from the task's episode length"),
        ({}, SinusoidDistribution(SinusoidConfig(), CPU), "no environment"),
    ],
)
def test_bad_config_is_one_line_usage_error(changes, dist, match):
    with pytest.raises(UsageError, match=match) as err:
        _learner(replace(SMALL, **changes), dist)
    assert "\n" not in str(err.value)


def test_baselines_random_policy_and_gap_closure():
    from agents.baselines_rl import gap_closure, multitask_config, oracle_config, random_returns

    dist = _nav()
    returns = random_returns(dist, _tasks(dist, 2), 3, torch.Generator().manual_seed(0))
    assert returns.shape == (2,) and (returns < 0).all()
    assert gap_closure(-40.0, -20.0, -10.0) == pytest.approx(2 / 3)
    assert gap_closure(-10.0, -5.0, -20.0) != gap_closure(-10.0, -5.0, -20.0)  # NaN: no gap
    oracle, multitask = oracle_config(SMALL), multitask_config(SMALL)
    assert oracle.task_in_obs and oracle.adapt_steps == 0
    assert multitask.adapt_steps == 0 and multitask.inner_lr == SMALL.inner_lr
