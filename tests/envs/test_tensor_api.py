"""Batched tensor envs: Gymnasium API, batched == loop of single envs, seeding, bad input."""

from __future__ import annotations

import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers the ids)
from envs.tensor import (
    BanditTask,
    BanditVectorEnv,
    CartPoleTask,
    GridTask,
    Navigation2DTask,
    Navigation2DVectorEnv,
    PendulumTask,
    TabularMDPTask,
)
from envs.tensor.registration import TENSOR_ENVS
from metarl.contracts import MetaRLDistribution, TaskDistribution
from metarl.errors import UsageError

# Short horizons so a few dozen steps cross several episode boundaries.
SHORT = {
    "metarl/Bandit-v0": {"horizon": 5},
    "metarl/TabularMDP-v0": {},
    "metarl/Navigation2D-v0": {"horizon": 15, "goal_radius": 0.05},
    "metarl/GridGame-v0": {"horizon": 12},
    "metarl/CartPoleVariant-v0": {"horizon": 30},
    "metarl/PendulumVariant-v0": {"horizon": 15},
}


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_check_env_passes(env_id: str) -> None:
    env = gymnasium.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # style advice (e.g. Pendulum's +-2 torque), not errors
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_make_vec_gives_batched_env_with_documented_contract(env_id: str) -> None:
    env = gymnasium.make_vec(env_id, num_envs=6, envs_per_task=3)
    _, _, batched = TENSOR_ENVS[env_id]
    assert type(env).__name__ == batched
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert (env.num_envs, env.num_tasks) == (6, 2)
    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and tuple(obs.shape) == env.observation_space.shape
    assert info == {}
    assert env.tasks.num_tasks == 2
    actions = torch.as_tensor(env.action_space.sample())
    obs, reward, term, trunc, info = env.step(actions)
    assert reward.shape == term.shape == trunc.shape == (6,)
    assert reward.dtype == torch.float32 and term.dtype == trunc.dtype == torch.bool
    assert set(info) == {"final_obs", "_final_obs"}


def _run_batched_vs_single(env_id: str, steps: int = 40) -> None:
    kwargs = SHORT[env_id]
    num_tasks, per_task, seed = 2, 2, 11
    vec = gymnasium.make_vec(
        env_id, num_envs=num_tasks * per_task, envs_per_task=per_task, **kwargs
    )
    tasks = vec.distribution(vec.config).sample(
        "train", num_tasks, torch.Generator().manual_seed(5)
    )
    singles = [gymnasium.make(env_id, **kwargs).unwrapped for _ in range(vec.num_envs)]
    obs_b, _ = vec.reset(seed=seed, options={"tasks": tasks})
    obs_s = [
        e.reset(seed=seed + n, options={"tasks": tasks.select(n // per_task)})[0]
        for n, e in enumerate(singles)
    ]
    np.testing.assert_array_equal(obs_b.numpy(), np.stack(obs_s))
    vec.action_space.seed(3)
    episodes_ended = 0
    for _ in range(steps):
        actions = vec.action_space.sample()
        obs_b, rew_b, term_b, trunc_b, info = vec.step(torch.as_tensor(actions))
        for n, env in enumerate(singles):
            obs, rew, term, trunc, _ = env.step(actions[n])
            assert (
                rew == rew_b[n].item() and term == term_b[n].item() and trunc == trunc_b[n].item()
            )
            if term or trunc:
                episodes_ended += 1
                assert info["_final_obs"][n]
                np.testing.assert_array_equal(info["final_obs"][n].numpy(), obs)
                obs, _ = env.reset()  # same task, stream continues: equals the same-step autoreset
            np.testing.assert_array_equal(obs_b[n].numpy(), obs)
    assert episodes_ended >= 2, "the comparison must cross episode boundaries"


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_batched_equals_loop_of_single_envs_number_for_number(env_id: str) -> None:
    _run_batched_vs_single(env_id)


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_seeded_resets_repeat_and_seeds_differ(env_id: str) -> None:
    env = gymnasium.make_vec(env_id, num_envs=4, envs_per_task=2, **SHORT[env_id])

    def rollout(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs0, _ = env.reset(seed=seed)
        env.action_space.seed(0)
        obs, rewards = [obs0], []
        for _ in range(20):
            o, r, *_ = env.step(torch.as_tensor(env.action_space.sample()))
            obs.append(o)
            rewards.append(r)
        first = next(
            f for f in ("probs", "transitions", "goals", "grid", "length") if hasattr(env.tasks, f)
        )
        return torch.stack(obs), torch.stack(rewards), getattr(env.tasks, first)

    a, b, c = rollout(1), rollout(1), rollout(2)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[2], c[2]), "a different seed samples different tasks"


def test_unseeded_reset_keeps_tasks_and_continues_the_stream() -> None:
    env = BanditVectorEnv(num_envs=4, envs_per_task=2, num_arms=3)
    env.reset(seed=0)
    probs = env.tasks.probs.clone()
    first = torch.stack([env.step(torch.zeros(4, dtype=torch.long))[1] for _ in range(30)])
    env.reset()
    assert torch.equal(env.tasks.probs, probs)  # a trial continues until new tasks are passed
    second = torch.stack([env.step(torch.zeros(4, dtype=torch.long))[1] for _ in range(30)])
    assert not torch.equal(first, second)


def test_copies_of_one_task_share_it_and_draw_independent_noise() -> None:
    env = BanditVectorEnv(num_envs=6, envs_per_task=3, num_arms=2)
    tasks = BanditTask(probs=torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    env.reset(seed=0, options={"tasks": tasks})
    rewards = torch.stack([env.step(torch.ones(6, dtype=torch.long))[1] for _ in range(50)])
    assert torch.equal(rewards[:, 3:], torch.ones(50, 3))  # task 1 owns copies 3..5
    assert not torch.equal(rewards[:, 0], rewards[:, 1])  # copies of task 0 are independent


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_distributions_meet_the_engine_contract(env_id: str) -> None:
    vec1 = gymnasium.make_vec(env_id, num_envs=1)
    dist = vec1.distribution(vec1.config)
    assert isinstance(dist, TaskDistribution) and dist.splits == ("train", "val", "test")
    for split in dist.splits:
        tasks = dist.sample(split, 3, torch.Generator().manual_seed(0))
        assert tasks.num_tasks == 3
    again = dist.sample("train", 3, torch.Generator().manual_seed(0))
    first = dist.sample("train", 3, torch.Generator().manual_seed(0))
    assert all(
        torch.equal(getattr(first, f), getattr(again, f)) for f in first.__dataclass_fields__
    )
    env = dist.make_env(num_tasks=2, envs_per_task=2)
    obs, _ = env.reset(
        seed=0, options={"tasks": dist.sample("test", 2, torch.Generator().manual_seed(1))}
    )
    assert obs.shape[0] == 4
    with pytest.raises(UsageError, match="split"):
        dist.sample("holdout", 1, torch.Generator())
    with pytest.raises(UsageError, match="num_tasks"):
        dist.sample("train", 0, torch.Generator())


@pytest.mark.parametrize(
    "kind, params",
    [
        ("bandit", {"num_arms": 10}),
        ("tabular_mdp", {}),
        ("navigation2d", {}),
        ("gridworld", {}),
        ("cartpole", {"vary": ["length"]}),
        ("pendulum", {}),
    ],
)
def test_registry_builds_meta_rl_distributions(kind: str, params: dict) -> None:
    from metarl import registry
    from metarl.config import RunConfig

    cfg = RunConfig(task={"kind": kind, **params}, learner={"kind": "rl2"})
    dist = registry.build_distribution(cfg, torch.device("cpu"))
    assert isinstance(dist, MetaRLDistribution)
    tasks = dist.sample("val", 2, torch.Generator().manual_seed(0))
    assert tasks.num_tasks == len(tasks) == 2 and tasks.features().shape[0] == 2
    env = dist.make_env(2, 3)
    assert (env.num_envs, env.num_tasks, env.envs_per_task) == (6, 2, 3)
    assert env.single_observation_space == dist.observation_space
    assert env.single_action_space == dist.action_space
    obs, _ = env.reset(seed=0, options={"tasks": tasks})
    assert obs.shape == (6, *dist.observation_space.shape)
    with pytest.raises(UsageError, match="task.horizon"):
        dist.make_env(2, 1, horizon=dist.horizon + 1)


# --- bad input --------------------------------------------------------------------------------
BAD_TASKS = [
    (lambda: BanditTask(probs=torch.zeros(2, 0)), "BanditTask.probs"),  # zero arms
    (lambda: BanditTask(probs=torch.tensor([[0.5, 1.5]])), r"BanditTask.probs.*\[0.0, 1.0\]"),
    (lambda: BanditTask(probs=torch.tensor([[float("nan")]])), "BanditTask.probs"),
    (lambda: Navigation2DTask(goals=torch.tensor([[float("nan"), 0.0]])), "Navigation2DTask.goals"),
    (lambda: Navigation2DTask(goals=torch.zeros(3)), r"Navigation2DTask.goals.*shape"),
    (
        lambda: TabularMDPTask(
            transitions=torch.full((1, 2, 1, 2), 0.7), reward_means=torch.zeros(1, 2, 1)
        ),
        "sum to 1",
    ),
    (lambda: _cartpole(length=-0.5), r"CartPoleTask.length.*\[0.005, 10.0\]"),
    (lambda: _cartpole(pole_mass=1e-20), r"CartPoleTask.pole_mass.*\[0.001, 10.0\]"),
    (lambda: _cartpole(gravity=float("inf")), "CartPoleTask.gravity"),
    (lambda: PendulumTask(mass=torch.zeros(1), length=torch.ones(1)), r"PendulumTask.mass.*\[0.01"),
    (lambda: _grid(border=0), "border"),
    (lambda: _grid(start=(4, 0)), "GridTask.start"),
]


def _cartpole(**overrides: float) -> CartPoleTask:
    values = {k: torch.full((2,), v, dtype=torch.float64) for k, v in
              {"length": 0.5, "pole_mass": 0.1, "cart_mass": 1.0, "gravity": 9.8, **overrides}.items()}  # fmt: skip
    return CartPoleTask(**values)


def _grid(border: int = 1, start: tuple[int, int] = (1, 1)) -> GridTask:
    grid = torch.ones(1, 9, 9, dtype=torch.int64)
    grid[:, 1:-1, 1:-1] = 0
    grid[0, 0, 4] = border
    return GridTask(
        grid, torch.tensor([start]), torch.tensor([[1.0, -1.0]]), torch.zeros(1, dtype=torch.int64)
    )


@pytest.mark.parametrize("make,match", BAD_TASKS)
def test_out_of_range_tasks_are_rejected_with_the_parameter_named(make, match) -> None:  # noqa: ANN001
    with pytest.raises(UsageError, match=match):
        make()


def test_bad_env_arguments_options_and_actions() -> None:
    with pytest.raises(UsageError, match="num_arms"):
        BanditVectorEnv(num_envs=2, num_arms=0)
    with pytest.raises(UsageError, match="multiple of envs_per_task"):
        BanditVectorEnv(num_envs=5, envs_per_task=2)
    env = BanditVectorEnv(num_envs=4, envs_per_task=2, num_arms=3)
    with pytest.raises(UsageError, match="before reset"):
        env.step(torch.zeros(4, dtype=torch.long))
    with pytest.raises(UsageError, match="only valid option is 'tasks'"):
        env.reset(seed=0, options={"task": None})
    with pytest.raises(UsageError, match="expected 2 tasks"):
        env.reset(options={"tasks": BanditTask(probs=torch.rand(3, 3))})
    with pytest.raises(UsageError, match="expected 3 arms"):
        env.reset(options={"tasks": BanditTask(probs=torch.rand(2, 4))})
    with pytest.raises(UsageError, match="expected a BanditTask"):
        env.reset(options={"tasks": Navigation2DTask(goals=torch.zeros(2, 2))})
    with pytest.raises(UsageError, match="seed"):
        env.reset(seed=-1)
    env.reset(seed=0)
    with pytest.raises(UsageError, match=r"expected shape \[4\]"):
        env.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(UsageError, match=r"\[0, 2\], got 3"):
        env.step(torch.tensor([0, 1, 2, 3]))
    with pytest.raises(UsageError, match="integers"):
        env.step(torch.zeros(4))
    nav = Navigation2DVectorEnv(num_envs=2)
    nav.reset(seed=0)
    with pytest.raises(UsageError, match="NaN"):
        nav.step(torch.tensor([[0.0, float("nan")], [0.0, 0.0]]))
    with pytest.raises(UsageError, match=r"expected shape \[2, 2\]"):
        nav.step(torch.zeros(2, 3))
    with pytest.raises(gymnasium.error.Error):
        gymnasium.make("metarl/NoSuchEnv-v0")


def test_box_actions_outside_the_space_are_clipped() -> None:
    nav = Navigation2DVectorEnv(num_envs=2, goal_radius=0.0)
    nav.reset(seed=0)
    obs, *_ = nav.step(torch.tensor([[5.0, -5.0], [0.05, -1e9]]))
    torch.testing.assert_close(obs, torch.tensor([[0.1, -0.1], [0.05, -0.1]]))
    assert math.isclose(nav.single_action_space.high[0], 0.1, rel_tol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_cuda_equals_cpu(env_id: str) -> None:  # pragma: no cover - GPU only
    runs = []
    for device in ("cpu", "cuda"):
        env = gymnasium.make_vec(
            env_id, num_envs=8, envs_per_task=2, device=device, **SHORT[env_id]
        )
        env.reset(seed=4)
        env.action_space.seed(0)
        out = [env.step(torch.as_tensor(env.action_space.sample()))[1].cpu() for _ in range(20)]
        runs.append(torch.stack(out))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-5, atol=1e-5)
