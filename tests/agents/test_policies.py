import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import functional_call

from agents.policies import (
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    MemoryPolicy,
    RecurrentPolicy,
    ValueMLP,
    make_mlp_policy,
    make_recurrent_policy,
)
from metarl.errors import UsageError

_leaves = torch.utils._pytree.tree_leaves


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_categorical_log_prob_is_log_softmax():
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(4, 3, hidden_sizes=(8,))
    obs = torch.randn(5, 4, generator=_gen())
    actions = torch.tensor([0, 1, 2, 1, 0])
    logits = policy.net(obs)
    expected = logits[torch.arange(5), actions] - torch.logsumexp(logits, -1)
    torch.testing.assert_close(policy(obs).log_prob(actions), expected)


def test_gaussian_log_prob_is_the_normal_density():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, hidden_sizes=(8,), init_std=0.5)
    obs = torch.randn(6, 3, generator=_gen())
    actions = torch.randn(6, 2, generator=_gen(1))
    mean, std = policy.net(obs), torch.full((2,), 0.5)
    expected = (-0.5 * ((actions - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(
        -1
    )
    dist = policy(obs)
    torch.testing.assert_close(dist.log_prob(actions), expected)
    assert dist.batch_shape == (6,) and dist.event_shape == (2,)
    # the log-std is state independent
    torch.testing.assert_close(dist.base_dist.scale, torch.full((6, 2), 0.5))


def _stat(dist):
    """A tensor that moves with every parameter: probabilities, or the Gaussian mean."""
    return dist.probs if isinstance(dist, torch.distributions.Categorical) else dist.mean


@pytest.mark.parametrize("cls,adim", [(CategoricalMLPPolicy, 3), (GaussianMLPPolicy, 2)])
def test_functional_call_with_modified_params(cls, adim):
    torch.manual_seed(0)
    policy = cls(4, adim, hidden_sizes=(8,))
    obs = torch.randn(5, 4, generator=_gen())
    params = dict(policy.named_parameters())
    base = _stat(policy(obs))
    torch.testing.assert_close(_stat(functional_call(policy, params, (obs,))), base)
    shifted = {k: v + 0.1 for k, v in params.items()}
    assert not torch.allclose(_stat(functional_call(policy, shifted, (obs,))), base)
    # the module itself is untouched, and gradients reach every functional param
    torch.testing.assert_close(_stat(policy(obs)), base)
    leaf = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    dist = functional_call(policy, leaf, (obs,))
    actions = torch.zeros(5, dtype=torch.long) if adim == 3 else torch.zeros(5, 2)
    loss = dist.log_prob(actions).sum() + _stat(dist).pow(2).sum()
    grads = torch.autograd.grad(loss, list(leaf.values()))
    assert all(g.abs().sum() > 0 for g in grads)


def _sequence_inputs(t, b, obs_dim, n_actions, seed=0):
    g = _gen(seed)
    obs = torch.randn(t, b, obs_dim, generator=g)
    act = torch.randint(-1, n_actions, (t, b), generator=g)
    rew = torch.randn(t, b, generator=g)
    done = (torch.rand(t, b, generator=g) < 0.2).float()
    return obs, act, rew, done


@pytest.mark.parametrize("cls", [RecurrentPolicy, MemoryPolicy])
def test_step_by_step_equals_sequence(cls):
    torch.manual_seed(0)
    kw = (
        {"hidden_size": 16}
        if cls is RecurrentPolicy
        else {"hidden_size": 16, "slots": 6, "width": 4, "heads": 2}
    )
    policy = cls(3, 4, "categorical", **kw)
    obs, act, rew, done = _sequence_inputs(7, 5, 3, 4)
    state0 = policy.initial_state(5)
    dist, value, final = policy(obs, act, rew, done, state0)
    assert dist.batch_shape == (7, 5) and value.shape == (7, 5)
    state = state0
    for t in range(7):
        d, v, state = policy.step(obs[t], act[t], rew[t], done[t], state)
        torch.testing.assert_close(d.logits, dist.logits[t], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v, value[t], atol=1e-5, rtol=1e-5)
    for a, b in zip(_leaves(state), _leaves(final), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [RecurrentPolicy, MemoryPolicy])
def test_hidden_state_persists_unless_reset(cls):
    torch.manual_seed(0)
    kw = (
        {"hidden_size": 16}
        if cls is RecurrentPolicy
        else {"hidden_size": 16, "slots": 6, "width": 4}
    )
    policy = cls(3, 2, "gaussian", **kw)
    g = _gen(3)
    obs = torch.randn(6, 4, 3, generator=g)
    act = torch.randn(6, 4, 2, generator=g)
    rew = torch.randn(6, 4, generator=g)
    done = torch.zeros(6, 4)
    # a mid-sequence reset for rows 0 and 2 before step 3 (a trial boundary)
    reset = torch.zeros(6, 4, dtype=torch.bool)
    reset[3, [0, 2]] = True
    dist, value, _ = policy(obs, act, rew, done, policy.initial_state(4), reset)
    # reset rows, from step 3 on, equal a fresh run started at step 3
    fresh, fresh_v, _ = policy(obs[3:], act[3:], rew[3:], done[3:], policy.initial_state(4))
    rows = [0, 2]
    torch.testing.assert_close(dist.mean[3:, rows], fresh.mean[:, rows], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(value[3:, rows], fresh_v[:, rows], atol=1e-5, rtol=1e-5)
    # rows that were not reset remember steps 0..2: they differ from a fresh start
    assert not torch.allclose(value[3:, [1, 3]], fresh_v[:, [1, 3]], atol=1e-4)
    # and a run without any reset equals the reset run on the untouched rows
    _, value_nr, _ = policy(obs, act, rew, done, policy.initial_state(4))
    torch.testing.assert_close(value_nr[:, [1, 3]], value[:, [1, 3]], atol=1e-5, rtol=1e-5)
    # step-level reset: mask False keeps the state, mask True restores the initial state
    _, _, s = policy.step(obs[0], act[0], rew[0], done[0], policy.initial_state(4))
    kept = _leaves(policy.reset(s, torch.zeros(4, dtype=torch.bool)))
    cleared = _leaves(policy.reset(s, torch.ones(4, dtype=torch.bool)))
    init = _leaves(policy.initial_state(4))
    assert any(not torch.equal(a, b) for a, b in zip(_leaves(s), init, strict=True))
    for a, b in zip(kept, _leaves(s), strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(cleared, init, strict=True):
        torch.testing.assert_close(a, b)


def test_previous_action_encoding():
    policy = RecurrentPolicy(2, 3, "categorical", hidden_size=4)
    x = policy.encode(
        torch.zeros(3, 2),
        torch.tensor([-1, 0, 2]),
        torch.tensor([0.5, 1.0, 2.0]),
        torch.tensor([0.0, 1.0, 0.0]),
    )
    expected_act = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 0, 1]])
    torch.testing.assert_close(x[:, 2:5], expected_act)
    torch.testing.assert_close(x[:, 5], torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(x[:, 6], torch.tensor([0.0, 1.0, 0.0]))


def test_recurrent_functional_call_and_value_mlp():
    torch.manual_seed(0)
    policy = RecurrentPolicy(3, 2, hidden_size=8)
    obs, act, rew, done = _sequence_inputs(4, 2, 3, 2)
    h0 = policy.initial_state(2)
    params = {k: v + 0.05 for k, v in policy.named_parameters()}
    _, v_mod, _ = functional_call(policy, params, (obs, act, rew, done, h0))
    _, v, _ = policy(obs, act, rew, done, h0)
    assert not torch.allclose(v, v_mod)
    assert ValueMLP(3)(obs).shape == (4, 2)


def test_factories_and_bad_input():
    box = gym.spaces.Box(-1, 1, (3,), np.float32)
    disc = gym.spaces.Discrete(4)
    assert isinstance(make_mlp_policy(box, disc), CategoricalMLPPolicy)
    assert isinstance(make_mlp_policy(box, gym.spaces.Box(-1, 1, (2,))), GaussianMLPPolicy)
    assert isinstance(
        make_recurrent_policy(box, disc, "memory", hidden_size=8, slots=4, width=4), MemoryPolicy
    )
    with pytest.raises(UsageError, match="Gaussian"):
        make_mlp_policy(box, disc, head="gaussian")
    with pytest.raises(UsageError, match="categorical"):
        make_recurrent_policy(box, box, head="categorical")
    with pytest.raises(UsageError):
        CategoricalMLPPolicy(3, 1)
    with pytest.raises(UsageError):
        RecurrentPolicy(3, 2, "beta")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        make_recurrent_policy(box, disc, kind="lstm")  # type: ignore[arg-type]
