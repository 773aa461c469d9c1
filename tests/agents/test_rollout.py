"""The shared rollout sampler: equal to single-env loops; recurrent state across a trial."""

import gymnasium
import numpy as np
import pytest
import torch

from agents.policies import make_mlp_policy, make_recurrent_policy
from agents.rollout import (
    ActorOutput,
    MLPActor,
    RandomActor,
    RecurrentActor,
    make_batched_env,
    rollout,
    sample_action,
    task_features,
)
from envs.tensor import (
    BanditDistribution,
    GridGameDistribution,
    Navigation2DDistribution,
    TabularMDPDistribution,
)
from metarl.errors import UsageError
from metarl.seeding import seeded

DISTS = {
    "bandit": lambda: BanditDistribution(num_arms=3, horizon=1),
    "tabular": lambda: TabularMDPDistribution(4, 3, horizon=5),
    # a large goal radius so that episodes end early and leave padding
    "navigation": lambda: Navigation2DDistribution(goal_radius=0.15, horizon=12),
    "gridworld": lambda: GridGameDistribution(view_size=3, horizon=8),
}


def _policy(env, hidden=8):
    with seeded(0, "policy"):
        return make_recurrent_policy(env.observation_space, env.action_space, hidden_size=hidden)


def _single_loop(dist, tasks, policy, copies, episodes, seed):
    """Reference: each copy alone in a one-copy env without autoreset, stepped by hand."""
    out = []
    for i in range(tasks.num_tasks * copies):
        env = dist.make_env(1, 1, autoreset=False)
        obs, _ = env.reset(seed=seed + i, options={"tasks": tasks.select(i // copies)})
        hidden = policy.initial_state(1)
        disc = isinstance(env.single_action_space, gymnasium.spaces.Discrete)
        prev_a = torch.full((1,), -1) if disc else torch.zeros(1, 2)
        prev_r, prev_d = torch.zeros(1), torch.zeros(1)
        eps = []
        for _ in range(episodes):
            rec = []
            for _ in range(dist.horizon):
                o = obs.reshape(1, -1).float()
                with torch.no_grad():
                    d, v, hidden = policy.step(o, prev_a, prev_r, prev_d, hidden)
                a = sample_action(d, None, deterministic=True)
                obs, r, term, trunc, _ = env.step(a)
                done = bool(term[0] | trunc[0])
                rec.append((o[0], a[0], float(r[0]), done, d.log_prob(a)[0], v[0]))
                prev_a, prev_r, prev_d = a, r.float(), torch.tensor([float(done)])
                if done:
                    break
            obs, _ = env.reset()
            eps.append(rec)
        out.append(eps)
    return out


@pytest.mark.parametrize("name", list(DISTS))
def test_sampler_equals_loop_of_single_env_rollouts(name):
    dist = DISTS[name]()
    tasks = dist.sample("train", 2, torch.Generator().manual_seed(1))
    copies, episodes, seed = 2, 3, 11
    env = make_batched_env(dist, 2, copies)
    policy = _policy(env)
    traj = rollout(env, tasks, RecurrentActor(policy, None, deterministic=True), episodes, seed)
    h = dist.horizon
    assert traj.rewards.shape == (2, copies * episodes, h)
    ref = _single_loop(dist, tasks, policy, copies, episodes, seed)
    for i, eps in enumerate(ref):
        t, c = divmod(i, copies)
        for j, rec in enumerate(eps):
            e = c * episodes + j
            k = len(rec)
            assert traj.mask[t, e].tolist() == [1.0] * k + [0.0] * (h - k)
            assert traj.dones[t, e, k - 1] == 1 and traj.dones[t, e, : k - 1].sum() == 0
            for s, (o, a, r, _done, logp, v) in enumerate(rec):
                torch.testing.assert_close(traj.obs[t, e, s], o)
                torch.testing.assert_close(traj.actions[t, e, s], a.to(traj.actions.dtype))
                assert traj.rewards[t, e, s].item() == pytest.approx(r, abs=1e-6)
                torch.testing.assert_close(traj.log_probs[t, e, s], logp)
                torch.testing.assert_close(traj.values[t, e, s], v)
    if name == "navigation":
        assert traj.mask.mean() < 1  # the padding path was exercised
    assert traj.trial_starts.tolist() == [[True, False, False] * copies] * 2


def test_mujoco_sampler_equals_single_gymnasium_envs():
    from envs.mujoco import HalfCheetahVelDistribution, register_mujoco_envs

    register_mujoco_envs()
    dist = HalfCheetahVelDistribution()
    tasks = dist.sample("train", 2, torch.Generator().manual_seed(0))
    env = make_batched_env(dist, 2, 2, horizon=4)
    with seeded(0, "policy"):
        policy = make_mlp_policy(env.observation_space, env.action_space, hidden_sizes=(8,))
    traj = rollout(env, tasks, MLPActor(policy, None, deterministic=True), 2, seed=5)
    for i in range(4):
        single = gymnasium.make(dist.env_id, max_episode_steps=4)
        obs, _ = single.reset(seed=5 + i, options={"tasks": tasks.select(i // 2)})
        for j in range(2):
            for s in range(4):
                o = torch.as_tensor(obs, dtype=torch.float32)
                a = policy(o).base_dist.loc.detach()
                obs, r, term, trunc, _ = single.step(a.double().numpy())
                torch.testing.assert_close(traj.obs[i // 2, (i % 2) * 2 + j, s], o)
                assert traj.rewards[i // 2, (i % 2) * 2 + j, s].item() == pytest.approx(r, 1e-5)
            assert trunc
            obs, _ = single.reset()
    assert traj.mask.all()


@pytest.mark.parametrize("name", ["navigation", "gridworld", "mujoco"])
def test_task_in_obs_appends_each_copys_task_and_changes_nothing_else(name):
    if name == "mujoco":
        from envs.mujoco import SlopeDistribution, register_mujoco_envs

        register_mujoco_envs()
        dist, kw = SlopeDistribution(), {"horizon": 3}
    else:
        dist, kw = DISTS[name](), {}
    tasks = dist.sample("train", 3, torch.Generator().manual_seed(0))
    plain = make_batched_env(dist, 3, 2, **kw)
    seen = make_batched_env(dist, 3, 2, task_in_obs=True, **kw)
    feats = task_features(tasks)  # [3, P]
    assert seen.observation_space.shape == (plain.obs_dim + feats.shape[1],)

    def play(env):
        with seeded(0, "policy"):
            policy = make_recurrent_policy(plain.observation_space, env.action_space, hidden_size=4)
        actor = _BlindActor(RecurrentActor(policy, torch.Generator().manual_seed(3)), plain.obs_dim)
        return rollout(env, tasks, actor, 2, seed=7)

    a, b = play(plain), play(seen)
    d = plain.obs_dim
    torch.testing.assert_close(b.obs[..., :d], a.obs)  # same env, same actions, same obs
    torch.testing.assert_close(b.rewards, a.rewards)
    want = feats[:, None, None, :].expand(3, b.obs.shape[1], b.obs.shape[2], -1)
    torch.testing.assert_close(b.obs[..., d:] * b.mask[..., None], want * b.mask[..., None])
    with pytest.raises(UsageError, match="task features"):
        seen.reset(dist.sample("train", 2, torch.Generator().manual_seed(0)), 0)


class _BlindActor:
    """Feeds a wrapped actor only the first `d` observation columns (the env's own)."""

    def __init__(self, actor, d):
        self.actor, self.d = actor, d

    def initial_state(self, num_envs):
        return self.actor.initial_state(num_envs)

    def __call__(self, obs, prev_action, prev_reward, prev_done, state):
        return self.actor(obs[:, : self.d], prev_action, prev_reward, prev_done, state)


class _CountingActor:
    """An actor whose state counts the steps it has seen; it reports the count as its value."""

    def initial_state(self, num_envs):
        return torch.zeros(num_envs)

    def __call__(self, obs, prev_action, prev_reward, prev_done, state):
        n = obs.shape[0]
        return ActorOutput(torch.zeros(n, dtype=torch.int64), torch.zeros(n), state, state + 1)


def test_state_persists_across_episodes_and_resets_across_trials():
    dist = TabularMDPDistribution(3, 2, horizon=4)
    env = make_batched_env(dist, 2, 3)
    tasks = dist.sample("train", 2, torch.Generator().manual_seed(0))
    for call in range(2):  # each call is a new trial: the count starts again at 0
        traj = rollout(env, tasks, _CountingActor(), 5, seed=call)
        counts = traj.values.view(2, 3, 5 * 4)
        assert torch.equal(counts, torch.arange(20.0).expand(2, 3, 20))


def test_recurrent_policy_carries_hidden_state_over_episode_boundaries():
    dist = DISTS["navigation"]()
    env = make_batched_env(dist, 3, 2)
    policy = _policy(env, hidden=16)
    tasks = dist.sample("train", 3, torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(0)
    traj = rollout(env, tasks, RecurrentActor(policy, gen), 4, seed=0)
    assert traj.mask.mean() < 1
    tb = traj.trials()
    assert torch.equal(tb.mask.sum(1), traj.mask.view(6, -1).sum(1))
    prev = tb.previous(discrete=False)
    tm = [x.transpose(0, 1) for x in (tb.obs, *prev)]  # time-major [L, B]
    with torch.no_grad():
        dist_, values, _ = policy(*tm, policy.initial_state(6))
        # One GRU pass over the whole trial reproduces what the actor computed step by step...
        valid = tb.mask.transpose(0, 1).bool()
        logp = dist_.log_prob(tb.actions.transpose(0, 1))
        torch.testing.assert_close(logp[valid], tb.log_probs.transpose(0, 1)[valid])
        torch.testing.assert_close(values[valid], tb.values.transpose(0, 1)[valid])
        # ...and resetting the state at every episode start would not.
        reset = prev[2].transpose(0, 1).bool()
        _, values_reset, _ = policy(*tm, policy.initial_state(6), reset=reset)
    assert not torch.allclose(values_reset[valid], values[valid])


def test_stochastic_rollouts_repeat_with_the_same_seeds():
    dist = DISTS["gridworld"]()
    env = make_batched_env(dist, 2, 1)
    policy = _policy(env)
    tasks = dist.sample("train", 2, torch.Generator().manual_seed(0))
    a = rollout(env, tasks, RecurrentActor(policy, torch.Generator().manual_seed(3)), 2, seed=4)
    b = rollout(env, tasks, RecurrentActor(policy, torch.Generator().manual_seed(3)), 2, seed=4)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.rewards, b.rewards)


def test_sample_action_uses_the_generator():
    logits = torch.randn(1000, 3)
    d = torch.distributions.Categorical(logits=logits)
    x = sample_action(d, torch.Generator().manual_seed(0))
    y = sample_action(d, torch.Generator().manual_seed(0))
    assert torch.equal(x, y) and x.shape == (1000,)
    freq = np.bincount(x.numpy(), minlength=3) / 1000
    assert np.abs(freq - d.probs.mean(0).numpy()).max() < 0.06


def test_bad_inputs():
    dist = BanditDistribution(2, 1)
    env = make_batched_env(dist, 1, 1)
    with pytest.raises(UsageError, match="num_episodes"):
        rollout(env, dist.sample("train", 1, torch.Generator()), _CountingActor(), 0)
    with pytest.raises(UsageError, match="task.horizon"):
        make_batched_env(dist, 1, 1, horizon=5)
    with pytest.raises(UsageError, match="horizon"):
        make_batched_env(dist, 1, 1, horizon=0)
    from metarl.fewshot.sinusoid import SinusoidConfig, SinusoidDistribution

    with pytest.raises(UsageError, match="no environment"):
        make_batched_env(SinusoidDistribution(SinusoidConfig(), torch.device("cpu")), 1, 1)


def test_random_actor_draws_uniform_actions_in_the_space_reproducibly():
    box = gymnasium.spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 4.0]), dtype=np.float32)
    obs = torch.zeros(20_000, 3)

    def draw(space, seed):
        actor = RandomActor(space, torch.Generator().manual_seed(seed))
        return actor(obs, None, None, None, actor.initial_state(obs.shape[0])).action

    a = draw(box, 0)
    assert a.shape == (20_000, 2)
    assert (a[:, 0] >= -1).all() and (a[:, 0] <= 1).all() and (a[:, 1] >= 0).all()
    assert (a[:, 1] <= 4).all()
    # uniform: mean at the midpoint, variance width**2 / 12 (5 standard errors)
    assert torch.allclose(a.mean(0), torch.tensor([0.0, 2.0]), atol=5 * 2.0 / 12**0.5 / 141)
    assert torch.allclose(a.var(0), torch.tensor([4 / 12, 16 / 12]), rtol=0.05)
    assert torch.equal(a, draw(box, 0)) and not torch.equal(a, draw(box, 1))
    d = draw(gymnasium.spaces.Discrete(4), 0)
    assert d.dtype == torch.int64 and set(d.tolist()) == {0, 1, 2, 3}
    assert torch.allclose(torch.bincount(d) / 20_000.0, torch.full((4,), 0.25), atol=0.015)
    with pytest.raises(UsageError, match="bounded"):
        RandomActor(gymnasium.spaces.Box(-np.inf, np.inf, (2,)), torch.Generator())
