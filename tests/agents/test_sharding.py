"""Shard-invariant rollouts, in one process: rows a:b of a meta-batch rolled out alone are
rows a:b of the whole batch's rollout (discrete actions and flags to the bit, floats to
rounding), and the generator ends in the same state, so the next draw is the same on every
rank."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal

from agents.maml_rl import MAMLRLConfig, build_maml_rl, expand_params
from agents.rl2 import RL2Config, build_rl2
from agents.rollout import sample_action
from agents.sharding import Rows, full, global_mean, normalize_over, task_rows
from envs.tensor import BanditDistribution, Navigation2DDistribution, TabularMDPDistribution

CPU = torch.device("cpu")
FIELDS = ("obs", "actions", "rewards", "dones", "terminated", "mask", "log_probs", "values")


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_categorical_draws_are_torch_multinomial_number_for_number():
    probs = torch.softmax(torch.randn(4, 6, 5), -1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    ref = torch.multinomial(probs.reshape(-1, 5), 1, generator=g1).view(4, 6)
    assert torch.equal(sample_action(Categorical(probs=probs), g2), ref)
    assert torch.equal(g1.get_state(), g2.get_state())


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_a_shard_samples_its_rows_of_the_whole_batch(kind):
    x = torch.randn(7, 3)
    if kind == "categorical":

        def dist(rows):
            return Categorical(logits=x[rows])
    else:

        def dist(rows):
            return Independent(Normal(x[rows], x[rows].exp()), 1)

    whole_gen = torch.Generator().manual_seed(5)
    whole = sample_action(dist(slice(0, 7)), whole_gen)
    for a, b in [(0, 3), (3, 7), (2, 5)]:
        gen = torch.Generator().manual_seed(5)
        part = sample_action(dist(slice(a, b)), gen, rows=Rows(a, b - a, 7))
        assert torch.equal(part, whole[a:b])
        assert torch.equal(gen.get_state(), whole_gen.get_state())


def _same(got: torch.Tensor, want: torch.Tensor, name: str) -> None:
    """Integer and flag fields to the bit; floats to 1e-6: the noise is the same numbers, but
    a policy's matrix products on fewer rows may round differently in the last bit (BLAS
    blocking depends on the batch size), e.g. a GRU's value outputs."""
    if got.dtype.is_floating_point:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)
    else:
        assert torch.equal(got, want), name


def _same_rows(part, whole, a: int, b: int) -> None:
    for name in FIELDS:
        _same(getattr(part, name), getattr(whole, name)[a:b], name)
    assert torch.equal(part.trial_starts, whole.trial_starts[a:b])


RL2_FAMILIES = {
    "bandit": lambda: BanditDistribution(num_arms=3, horizon=1),
    "tabular": lambda: TabularMDPDistribution(num_states=3, num_actions=2, horizon=4),
}


@pytest.mark.parametrize("family", list(RL2_FAMILIES))
def test_rl2_rollout_of_a_shard_is_those_rows_of_the_whole_rollout(family):
    dist = RL2_FAMILIES[family]()
    cfg = RL2Config(hidden_size=8, episodes_per_trial=3, trials_per_task=2)
    learner = build_rl2(cfg, dist, CPU, seed=0)
    tasks = dist.sample("train", 5, torch.Generator().manual_seed(1))
    whole_gen = torch.Generator().manual_seed(2)
    whole = learner.play(tasks, 3, 2, whole_gen)
    for a, b in [(0, 3), (3, 5), (1, 2)]:
        gen = torch.Generator().manual_seed(2)
        part = learner.play(tasks.select(slice(a, b)), 3, 2, gen, rows=Rows(a, b - a, 5))
        _same_rows(part, whole, a, b)
        assert torch.equal(gen.get_state(), whole_gen.get_state())


def _maml_rows(learner, dist, n=5, seed=1):
    tasks = dist.sample("train", n, torch.Generator().manual_seed(seed))
    params = expand_params(learner.theta(), n)
    whole_gen = torch.Generator().manual_seed(2)
    whole = learner.play(tasks, params, whole_gen)
    for a, b in [(0, 3), (3, 5)]:
        gen = torch.Generator().manual_seed(2)
        local = {k: v[a:b] for k, v in params.items()}
        part = learner.play(tasks.select(slice(a, b)), local, gen, rows=Rows(a, b - a, n))
        for name in ("obs", "actions", "log_probs", "advantages", "mask", "returns"):
            _same(getattr(part, name), getattr(whole, name)[a:b], name)
        assert torch.equal(gen.get_state(), whole_gen.get_state())


def test_maml_trpo_rollout_of_a_shard_is_those_rows_of_the_whole_rollout():
    dist = Navigation2DDistribution(horizon=10)
    learner = build_maml_rl(MAMLRLConfig(hidden_sizes=[16], episodes_per_task=3), dist, CPU, 0)
    _maml_rows(learner, dist)


def test_mujoco_rollout_of_a_shard_is_those_rows_of_the_whole_rollout():
    pytest.importorskip("mujoco")
    from envs.mujoco import HalfCheetahVelDistribution, SlopeDistribution, register_mujoco_envs

    register_mujoco_envs()
    cfg = MAMLRLConfig(hidden_sizes=[8], episodes_per_task=2, horizon=4)
    dist = HalfCheetahVelDistribution()
    _maml_rows(build_maml_rl(cfg, dist, CPU, 0), dist)
    slope = SlopeDistribution()
    rl2 = build_rl2(RL2Config(hidden_size=8, episodes_per_trial=2, horizon=4), slope, CPU, 0)
    tasks = slope.sample("train", 3, torch.Generator().manual_seed(1))
    whole = rl2.play(tasks, 2, 1, torch.Generator().manual_seed(2))
    part = rl2.play(
        tasks.select(slice(1, 3)), 2, 1, torch.Generator().manual_seed(2), rows=Rows(1, 2, 3)
    )
    _same_rows(part, whole, 1, 3)


def test_one_process_helpers_are_the_identity():
    assert task_rows(4) == full(4) == Rows(0, 4, 4) and not full(4).sharded
    assert full(4).weight == 1.0
    x, mask = torch.randn(3, 5), (torch.rand(3, 5) > 0.3).float()
    from agents.advantages import normalize

    assert torch.equal(normalize_over(x, mask, full(3)), normalize(x, mask))
    assert global_mean({"a": 1.5}, 1.0, full(3)) == {"a": 1.5}
    rows = Rows(2, 3, 9)
    assert rows.sharded and rows.scale(2) == Rows(4, 6, 18)
    assert torch.equal(rows.local(torch.tensor([0, 4, 2, 8, 3])), torch.tensor([2, 0, 1]))
