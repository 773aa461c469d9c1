"""RL² and the memory-augmented policy learner: learning, exact repeats, resume, bad input."""

import pytest
import torch

from agents.rl2 import RL2Config, build_rl2
from agents.rollout import TrialBatch
from envs.tensor import BanditDistribution, GridGameDistribution, Navigation2DDistribution
from metarl import registry
from metarl.errors import UsageError
from metarl.registry import load_config

CPU = torch.device("cpu")


def _bandit_learner(seed=0, **kw):
    dist = BanditDistribution(num_arms=2, horizon=1)
    base = dict(hidden_size=16, episodes_per_trial=5, outer_lr=3e-3, ppo_epochs=2)
    return dist, build_rl2(RL2Config(**{**base, **kw}), dist, CPU, seed)


@pytest.fixture
def one_thread():
    """Tiny GRUs run fastest on one thread (and a shared CPU stays usable)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_rl2_beats_random_on_two_armed_bandits(one_thread):
    dist = BanditDistribution(num_arms=2, horizon=1)
    cfg = RL2Config(hidden_size=32, episodes_per_trial=10, outer_lr=3e-3, gamma=1.0, gae_lambda=0.3)
    learner = build_rl2(cfg, dist, CPU, seed=0)
    gen, test_gen = torch.Generator().manual_seed(0), torch.Generator().manual_seed(123)
    test = dist.sample("test", 500, test_gen)
    before = learner.adaptation_curve(test, 9).sum(0).mean().item()
    for _ in range(300):
        learner.meta_step(dist.sample("train", 64, gen))
    curve = learner.adaptation_curve(test, 9)  # [10, 500]: reward of pull b + 1
    after = curve.sum(0).mean().item()
    # Random play earns 5.0 in expectation (standard error here about 0.07).
    assert before < 5.25 and after > 5.45, (before, after)
    assert curve[5:].mean() > curve[0].mean() + 0.05  # it adapts within the trial


def test_task_in_obs_oracle_needs_no_experience(one_thread):
    """One pull per trial: a task-blind policy cannot beat 0.5 in expectation, the oracle
    (arm probabilities in its observation, `task_in_obs`) learns to pull the better arm."""
    dist = BanditDistribution(num_arms=2, horizon=1)
    test = dist.sample("test", 1000, torch.Generator().manual_seed(123))
    gap = (test.probs[:, 0] - test.probs[:, 1]).abs()
    best = test.probs.max(1).values.mean().item()  # 2/3 for uniform arms, here ~0.667
    scores = {}
    for seen in (False, True):
        cfg = RL2Config(hidden_size=16, episodes_per_trial=1, outer_lr=1e-2, task_in_obs=seen)
        learner = build_rl2(cfg, dist, CPU, seed=0)
        gen = torch.Generator().manual_seed(0)
        for _ in range(100):
            learner.meta_step(dist.sample("train", 64, gen))
        curve = learner.adaptation_curve(test, 0)[0]  # [1000]: the one pull's reward
        scores[seen] = curve.mean().item()
        if seen:  # it pulls the better arm where the arms differ clearly
            pulled = learner.adapt(test, 0).actions[:, 0, 0]  # [1000]
            clear = gap > 0.3
            picked_best = (pulled == test.probs.argmax(1))[clear].float().mean().item()
            assert picked_best > 0.9, picked_best
    assert abs(scores[False] - 0.5) < 0.06, scores  # standard error ~0.016
    assert scores[True] > best - 0.05 and scores[True] > scores[False] + 0.1, scores


@pytest.mark.parametrize("normalize_values", [False, True])
def test_seeded_runs_repeat_and_resume_exactly(normalize_values):
    def run(learner, dist, gen, steps):
        return [learner.meta_step(dist.sample("train", 4, gen)) for _ in range(steps)]

    dist, a = _bandit_learner(normalize_values=normalize_values)
    _, b = _bandit_learner(normalize_values=normalize_values)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    ma, mb = run(a, dist, ga, 3), run(b, dist, gb, 3)
    assert ma == mb
    # kill after 3 steps, rebuild from the state dict, go on: the same numbers as never stopping
    _, c = _bandit_learner(normalize_values=normalize_values)
    c.load_state_dict(b.state_dict())
    if normalize_values:
        assert c.value_norm.updates == 3
    gc = torch.Generator()
    gc.set_state(gb.get_state())
    assert run(a, dist, ga, 2) == run(c, dist, gc, 2)
    test = dist.sample("test", 3, torch.Generator().manual_seed(5))
    assert torch.equal(a.adaptation_curve(test, 4), c.adaptation_curve(test, 4))


def test_entropy_schedule_is_linear_then_flat_and_survives_resume():
    """The entropy weight goes 0.1 -> 0.02 linearly over 4 meta-steps, then stays; the loss
    uses it (one epoch, one minibatch: the logged loss is policy + value/2 - weight * entropy),
    and a learner rebuilt from a checkpoint goes on from the same point of the schedule."""
    kw = dict(entropy_coef=0.1, entropy_coef_final=0.02, entropy_anneal_iterations=4)
    dist, a = _bandit_learner(ppo_epochs=1, **kw)
    gen = torch.Generator().manual_seed(0)
    weights = []
    for _ in range(3):
        m = a.meta_step(dist.sample("train", 4, gen))
        weights.append(m["entropy_coef"])
        rebuilt = m["policy_loss"] + 0.5 * m["value_loss"] - m["entropy_coef"] * m["entropy"]
        assert rebuilt == pytest.approx(m["loss"], abs=1e-6)
    _, b = _bandit_learner(ppo_epochs=1, **kw)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        weights.append(b.meta_step(dist.sample("train", 4, gen))["entropy_coef"])
    assert weights == pytest.approx([0.1, 0.08, 0.06, 0.04, 0.02, 0.02])
    _, flat = _bandit_learner(entropy_coef=0.05)  # no schedule: the constant weight
    assert flat.meta_step(dist.sample("train", 4, gen))["entropy_coef"] == 0.05


def test_other_seed_other_numbers():
    dist, a = _bandit_learner(seed=0)
    _, b = _bandit_learner(seed=1)
    tasks = dist.sample("train", 4, torch.Generator().manual_seed(0))
    assert a.meta_step(tasks) != b.meta_step(tasks)


@pytest.mark.parametrize("policy", ["gru", "memory"])
def test_first_ppo_pass_replays_the_rollout_exactly(policy):
    """Recomputing the trial from the initial state gives the acting log-probs: ratio 1."""
    dist = GridGameDistribution(view_size=3, horizon=6)
    cfg = RL2Config(
        policy=policy, hidden_size=16, memory_slots=8, memory_width=8, episodes_per_trial=3
    )
    learner = build_rl2(cfg, dist, CPU, 0)
    learner.cfg.ppo_epochs = 1
    m = learner.meta_step(dist.sample("train", 3, torch.Generator().manual_seed(0)))
    assert m["approx_kl"] == pytest.approx(0.0, abs=1e-7) and m["clip_fraction"] == 0.0
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values())


def test_gae_runs_along_the_whole_trial():
    """Episode ends inside a trial do not cut the advantage; only the trial's end does."""
    _, learner = _bandit_learner(gamma=0.9, gae_lambda=1.0)
    r = torch.tensor([[1.0, 0.0, 2.0, 0.0]])  # 2 episodes of 2 steps, then 1 step of padding
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    dones = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    zeros = torch.zeros_like(r)
    tb = TrialBatch(zeros, zeros.long(), r, dones, zeros.bool(), mask, zeros, zeros)
    adv, ret = learner.advantages(tb)
    want = torch.tensor([[1.0 + 0.81 * 2.0, 0.9 * 2.0, 2.0, 0.0]])
    torch.testing.assert_close(adv, want)
    torch.testing.assert_close(ret, want)


def test_curve_and_adapt_evaluate_shapes():
    dist = Navigation2DDistribution(horizon=5)
    learner = build_rl2(RL2Config(hidden_size=8, episodes_per_trial=2), dist, CPU, 0)
    tasks = dist.sample("val", 3, torch.Generator().manual_seed(0))
    assert learner.adaptation_curve(tasks, 3).shape == (4, 3)
    assert learner.evaluate(learner.adapt(tasks, 1), tasks).shape == (3,)
    assert learner.headline_budget == 1 and learner.budget_name == "episodes"


def _build(name, *overrides):
    cfg = load_config(name, ["device=cpu", *overrides])
    dist = registry.build_distribution(cfg, CPU)
    return registry.build_learner(cfg, dist, CPU)


@pytest.mark.parametrize(
    "overrides", [[], ["learner.reward_scale=1.0", "learner.normalize_values=true"]]
)
def test_shipped_navigation_config_learns_to_reach_the_goal(one_thread, overrides):
    """The shipped navigation_rl2 settings, reward scale included, learn to walk to a goal
    they are given (`task_in_obs`) within 30 iterations; so do unscaled rewards with value
    normalisation. Unscaled returns alone (reward_scale 1) let the value loss swamp the
    clipped gradient: that policy stayed worse than random."""
    from agents.baselines_rl import random_returns

    over = ["learner.task_in_obs=true", "task.horizon=30", "seed=0", *overrides]
    learner = _build("navigation_rl2", *over)
    dist = learner.distribution
    test = dist.sample("test", 100, torch.Generator().manual_seed(123))
    rand = random_returns(dist, test, 1, torch.Generator().manual_seed(0)).mean().item()
    before = learner.adaptation_curve(test, 0)[0].mean().item()
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        learner.meta_step(dist.sample("train", 32, gen))
    after = learner.adaptation_curve(test, 0)[0].mean().item()
    assert after > before + 5 and after > rand + 4, (before, rand, after)


def test_bad_inputs_are_one_line_usage_errors():
    cases = [
        (("bandit_rl2_k5_n10", "learner.head=gaussian"), "Gaussian"),
        (("bandit_rl2_k5_n10", "learner.horizon=0"), "horizon"),
        (("bandit_rl2_k5_n10", "learner.horizon=5"), "task.horizon"),
        (("bandit_rl2_k5_n10", "learner.episodes_per_trial=0"), "episodes_per_trial"),
        (("bandit_rl2_k5_n10", "learner.entropy_anneal_iterations=10"), "entropy_coef_final"),
        (("bandit_rl2_k5_n10", "learner.entropy_anneal_iterations=-1"), "anneal"),
        (("navigation_rl2", "learner.head=categorical"), "categorical"),
        (("sinusoid_maml", "learner={kind: rl2}"), "no environment"),
    ]
    for args, match in cases:
        with pytest.raises(UsageError, match=match) as err:
            _build(*args)
        assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="horizon"):
        load_config("bandit_rl2_k5_n10", ["task.horizon=0"]) and _build(
            "bandit_rl2_k5_n10", "task.horizon=0"
        )
