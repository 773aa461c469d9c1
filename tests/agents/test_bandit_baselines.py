import functools

import pytest
import torch

from agents.bandit_baselines import (
    epsilon_greedy,
    gittins,
    gittins_indices,
    greedy,
    greedy_mdp,
    plan,
    psrl,
    random_bandit,
    random_mdp,
    sample_beta,
    sample_dirichlet,
    sample_gamma,
    thompson_sampling,
    ucb1,
)
from metarl.errors import UsageError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _easy_bandits(b=200, k=5, seed=0):
    """One arm pays 0.9, the others 0.1, at a random position per task."""
    g = _gen(seed)
    best = torch.randint(0, k, (b,), generator=g)
    probs = torch.full((b, k), 0.1)
    probs[torch.arange(b), best] = 0.9
    return probs


def test_gamma_beta_dirichlet_moments():
    g = _gen()
    for a in (0.3, 1.0, 4.0):
        x = sample_gamma(torch.full((40000,), a), g)
        assert abs(x.mean().item() - a) < 0.05 * max(a, 1)
        assert abs(x.var().item() - a) < 0.1 * max(a, 1)
    beta = sample_beta(torch.full((40000,), 2.0), torch.full((40000,), 5.0), g)
    assert abs(beta.mean().item() - 2 / 7) < 0.01
    d = sample_dirichlet(torch.tensor([1.0, 2.0, 3.0]).expand(20000, 3), g)
    torch.testing.assert_close(d.sum(-1), torch.ones(20000))
    torch.testing.assert_close(d.mean(0), torch.tensor([1 / 6, 2 / 6, 3 / 6]), atol=0.01, rtol=0)


def test_ucb1_and_thompson_regret_far_below_random():
    probs = _easy_bandits()
    n = 100
    optimum = n * probs.amax(-1).mean().item()

    def regret(fn, **kw):
        return optimum - fn(probs, n, _gen(1), **kw).mean().item()

    r_random = regret(random_bandit)
    assert r_random > 50  # 100 * (0.9 - 0.26)
    assert regret(thompson_sampling) < 0.2 * r_random
    assert regret(ucb1) < 0.4 * r_random  # textbook c = 1 explores a lot at n = 100
    assert regret(ucb1, c=0.3) < 0.2 * r_random
    assert regret(epsilon_greedy, epsilon=0.1) < 0.5 * r_random
    assert regret(gittins, discount=0.9) < 0.2 * r_random
    assert regret(greedy) < r_random


@pytest.mark.parametrize(
    "fn",
    [
        random_bandit,
        ucb1,
        thompson_sampling,
        epsilon_greedy,
        greedy,
        functools.partial(gittins, discount=0.8),
    ],
)
def test_bandit_baselines_repeat_with_a_seed(fn):
    probs = torch.rand(16, 3, generator=_gen(5))
    a = fn(probs, 20, _gen(7))
    b = fn(probs, 20, _gen(7))
    assert a.shape == (16,)
    assert torch.equal(a, b)
    assert ((a >= 0) & (a <= 20)).all()


def test_gittins_indices_match_published_values():
    table = gittins_indices(10, 0.9)
    # Gittins, Glazebrook & Weber (2011), Bernoulli arm with a uniform prior, discount 0.9
    assert abs(table[0, 0].item() - 0.7029) < 2e-4
    s = torch.arange(11.0).view(-1, 1)
    f = torch.arange(11.0).view(1, -1)
    mean = (1 + s) / (2 + s + f)
    valid = (s + f) <= 10
    assert (table[valid] >= mean[valid] - 1e-6).all()  # exploration bonus is never negative
    assert (table[1:, 0] > table[:-1, 0]).all()  # more successes, higher index
    assert torch.isnan(table[~valid]).all()
    # discount 0: no future, the index is the posterior mean
    myopic = gittins_indices(5, 0.0)
    v5 = (s[:6] + f[:, :6]) <= 5
    torch.testing.assert_close(myopic[v5], mean[:6, :6][v5].double(), atol=1e-3, rtol=0)


def test_plan_is_backward_induction():
    # one task, 2 states, 2 actions: action 1 in state 0 moves to state 1, which pays 1 forever
    p = torch.zeros(1, 2, 2, 2)
    p[0, 0, 0, 0] = 1.0
    p[0, 0, 1, 1] = 1.0
    p[0, 1, :, 1] = 1.0
    r = torch.tensor([[[0.5, 0.0], [1.0, 1.0]]])
    q = plan(p, r, 3)
    # 3 steps left in state 0: stay (0.5 + V2(0) = 0.5 + max(0.5 + 0.5, 0 + 1)) vs move
    # (0 + V2(1) = 2)
    torch.testing.assert_close(q[0, 0, 0], torch.tensor([1.5, 2.0]))
    torch.testing.assert_close(q[2, 0, 0], torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(q[0, 0, 1], torch.tensor([3.0, 3.0]))


def _random_mdps(b=48, s=5, a=3, seed=0):
    g = _gen(seed)
    p = sample_dirichlet(torch.ones(b, s, a, s), g)
    r = 1.0 + torch.randn(b, s, a, generator=g)
    return p, r


def test_psrl_and_greedy_beat_random_on_tabular_mdps():
    p, r = _random_mdps()
    n = 10
    rand = random_mdp(p, r, n, _gen(1)).mean().item()
    post = psrl(p, r, n, _gen(1)).mean().item()
    cert = greedy_mdp(p, r, n, _gen(1)).mean().item()
    # oracle: the optimal policy of the true MDP, from state 0
    oracle = n * plan(p, r, 10)[0, :, 0].amax(-1).mean().item()
    assert abs(rand - n * 10 * 1.0) < 15  # random earns about the prior mean reward per step
    assert post > rand + 0.4 * (oracle - rand)
    assert cert > rand + 0.4 * (oracle - rand)
    assert post < oracle + 10 and cert < oracle + 10


def test_tabular_baselines_repeat_and_accept_an_initial_distribution():
    p, r = _random_mdps(b=6)
    init = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2])
    for fn in (random_mdp, psrl, greedy_mdp):
        a = fn(p, r, 3, _gen(9), episode_length=4, initial_dist=init)
        assert torch.equal(a, fn(p, r, 3, _gen(9), episode_length=4, initial_dist=init))
        assert a.shape == (6,)


def test_bad_input():
    probs = torch.rand(4, 3)
    with pytest.raises(UsageError, match="horizon"):
        ucb1(probs, 0, _gen())
    with pytest.raises(UsageError):
        thompson_sampling(torch.rand(4), 5, _gen())
    with pytest.raises(UsageError):
        epsilon_greedy(probs, 5, _gen(), epsilon=2.0)
    with pytest.raises(UsageError):
        random_bandit(probs * 3, 5, _gen())
    p, r = _random_mdps(b=2)
    with pytest.raises(UsageError):
        psrl(p, r[:, :, :2], 3, _gen())
    with pytest.raises(UsageError):
        psrl(p, r, 0, _gen())
    with pytest.raises(UsageError):
        sample_gamma(torch.zeros(3), _gen())
