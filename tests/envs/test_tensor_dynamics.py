"""Batched tensor envs honour their tasks: statistics, geometry, game rules, physics."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import torch

from envs.tensor import (
    BanditTask,
    BanditVectorEnv,
    CartPoleDistribution,
    CartPoleTask,
    CartPoleVariantEnv,
    GridGameDistribution,
    GridGameVectorEnv,
    GridTask,
    Navigation2DTask,
    Navigation2DVectorEnv,
    PendulumDistribution,
    PendulumTask,
    PendulumVariantEnv,
    TabularMDPDistribution,
    TabularMDPVectorEnv,
)
from envs.tensor.gridworld import (
    EMPTY,
    GOAL,
    KEY,
    LOCKED,
    OBJ_A,
    OBJ_B,
    SPLIT_VARIANTS,
    WALL,
    make_grid_tasks,
)


def test_bandit_empirical_means_converge_to_arm_probabilities() -> None:
    probs = torch.tensor([[0.1, 0.35, 0.5, 0.8, 0.95]])
    env = BanditVectorEnv(num_envs=2000, envs_per_task=2000, num_arms=5)
    env.reset(seed=0, options={"tasks": BanditTask(probs=probs)})
    arms = torch.arange(2000) % 5
    total = torch.zeros(2000)
    for _ in range(100):
        total += env.step(arms)[1]
    means = torch.stack([total[arms == k].mean() / 100 for k in range(5)])
    # 40,000 pulls per arm: binomial std <= 0.0025, so 0.01 is four standard deviations.
    torch.testing.assert_close(means, probs[0], atol=0.01, rtol=0)


def test_tabular_mdp_transition_frequencies_and_rewards_match_the_task() -> None:
    dist = TabularMDPDistribution()
    task = dist.sample("train", 1, torch.Generator().manual_seed(3))
    env = TabularMDPVectorEnv(num_envs=2048, envs_per_task=2048)
    obs, _ = env.reset(seed=1, options={"tasks": task})
    assert bool((obs.argmax(-1) == 0).all()), "episodes start in state 0"
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(10, 5, 10)
    reward_sum = torch.zeros(10, 5)
    for _ in range(60):
        s = obs.argmax(-1)
        a = torch.randint(0, 5, (2048,), generator=gen)
        obs, r, _, trunc, info = env.step(a)
        s_next = torch.where(trunc, info["final_obs"].argmax(-1), obs.argmax(-1))
        counts.index_put_((s, a, s_next), torch.ones(2048), accumulate=True)
        reward_sum.index_put_((s, a), r, accumulate=True)
    visits = counts.sum(-1)
    seen = visits >= 400
    assert seen.sum() >= 20
    freq = counts / visits.clamp(min=1)[..., None]
    err = (freq - task.transitions[0]).abs()[seen]
    assert err.max() < 0.08, err.max()  # std <= 0.025 at 400 visits
    mean_err = (reward_sum / visits.clamp(min=1) - task.reward_means[0]).abs()[seen]
    assert mean_err.max() < 0.25, mean_err.max()  # reward noise N(0, 1): std <= 0.05


def test_tabular_mdp_episodes_last_horizon_steps() -> None:
    env = TabularMDPVectorEnv(num_envs=3, horizon=10)
    env.reset(seed=0)
    truncs = torch.stack([env.step(torch.zeros(3, dtype=torch.long))[3] for _ in range(30)])
    assert torch.equal(truncs.nonzero()[:, 0].unique(), torch.tensor([9, 19, 29]))


def test_navigation_reward_is_minus_distance_and_goal_terminates() -> None:
    goals = torch.tensor([[0.3, -0.2], [-0.3, 0.25]])  # both reached on step 3
    env = Navigation2DVectorEnv(num_envs=4, envs_per_task=2, goal_radius=0.01)
    env.reset(seed=0, options={"tasks": Navigation2DTask(goals=goals)})
    gen = torch.Generator().manual_seed(0)
    pos = torch.zeros(4, 2)
    per_copy_goal = goals.repeat_interleave(2, 0)
    for _ in range(10):
        a = 0.3 * torch.randn(4, 2, generator=gen)  # partly outside +-0.1: clipped
        obs, r, term, _, _ = env.step(a)
        pos = pos + a.clamp(-0.1, 0.1)
        torch.testing.assert_close(obs, pos)
        torch.testing.assert_close(r, -(pos - per_copy_goal).norm(dim=-1))
        assert not term.any()
    # Walking straight at the goal ends the episode inside the radius.
    env.reset(options={"tasks": Navigation2DTask(goals=goals)})
    for _ in range(10):
        d = (per_copy_goal - env.pos).clamp(-0.1, 0.1)
        obs, r, term, trunc, info = env.step(d)
        if term.all():
            break
    assert term.all() and (r > -0.01).all()
    assert torch.equal(obs, torch.zeros(4, 2))  # same-step autoreset: back at the origin
    torch.testing.assert_close(info["final_obs"], per_copy_goal)


# --- gridworld --------------------------------------------------------------------------------
def _open_task(
    cells: dict[tuple[int, int], int], values: tuple[float, float] = (1.0, -1.0)
) -> GridTask:
    grid = torch.full((1, 9, 9), WALL, dtype=torch.int64)
    grid[:, 1:-1, 1:-1] = EMPTY
    for (r, c), code in cells.items():
        grid[0, r, c] = code
    return GridTask(
        grid, torch.tensor([[1, 1]]), torch.tensor([values]), torch.zeros(1, dtype=torch.int64)
    )


UP, RIGHT, DOWN, LEFT = (torch.tensor([a]) for a in range(4))


def test_grid_payoff_rule_decides_which_object_pays() -> None:
    for values in ((1.0, -1.0), (-1.0, 1.0)):
        env = GridGameVectorEnv(num_envs=1)
        env.reset(seed=0, options={"tasks": _open_task({(1, 2): OBJ_A, (2, 1): OBJ_B}, values)})
        assert env.step(RIGHT)[1].item() == values[0]  # collect A
        assert env.step(LEFT)[1].item() == 0.0
        assert env.step(RIGHT)[1].item() == 0.0  # A was removed
        env.step(LEFT)
        assert env.step(DOWN)[1].item() == values[1]  # collect B
        env.reset()  # objects come back at the next episode
        assert env.step(RIGHT)[1].item() == values[0]


def test_grid_key_door_rule_locks_the_goal_until_the_key_is_held() -> None:
    env = GridGameVectorEnv(num_envs=1)
    obs, _ = env.reset(seed=0, options={"tasks": _open_task({(1, 2): LOCKED, (2, 1): KEY})})
    obs, r, term, *_ = env.step(RIGHT)
    assert (r.item(), term.item()) == (0.0, False) and env.pos.tolist() == [[1, 1]]  # bumped
    assert obs[0, 6].sum() == 0  # no key yet
    obs, r, *_ = env.step(DOWN)
    assert r.item() == 0.0 and bool(obs[0, 6].eq(1).all())  # key plane lights up
    env.step(UP)
    _, r, term, *_ = env.step(RIGHT)
    assert (r.item(), term.item()) == (1.0, True)
    # An open goal (key-door off) is entered at once.
    env.reset(options={"tasks": _open_task({(1, 2): GOAL})})
    _, r, term, *_ = env.step(RIGHT)
    assert (r.item(), term.item()) == (1.0, True)


def test_grid_view_is_egocentric_and_partial() -> None:
    env = GridGameVectorEnv(num_envs=1, view_size=5)
    obs, _ = env.reset(seed=0, options={"tasks": _open_task({(1, 3): OBJ_A, (7, 7): GOAL})})
    assert obs.shape == (1, 7, 5, 5)
    walls = obs[0, 0]
    assert bool(walls[:2].eq(1).all()) and bool(walls[:, :2].eq(1).all())  # border + outside
    assert obs[0, OBJ_A - 1, 2, 4] == 1  # A two cells to the right of the centre
    assert obs[0, GOAL - 1].sum() == 0  # the far goal is out of view
    obs, *_ = env.step(RIGHT)
    assert obs[0, OBJ_A - 1, 2, 3] == 1  # the view moved with the agent


def test_grid_layouts_and_rules_differ_as_documented() -> None:
    gen = torch.Generator().manual_seed(0)
    tasks = make_grid_tasks(torch.arange(16).repeat_interleave(8), gen)
    grid, variant = tasks.grid, tasks.variant
    layout, key_door, payoff = variant // 4, (variant // 2) % 2, variant % 2
    inner_walls = (grid[:, 1:-1, 1:-1] == WALL).sum((1, 2))
    assert bool((inner_walls[layout == 0] == 0).all())  # open
    assert bool((inner_walls[layout == 1] == 6).all())  # a 7-cell column minus one gap
    assert bool((grid[layout == 1][:, 1:-1, 4] == WALL).sum(1).eq(6).all())
    assert bool((inner_walls[layout == 2] == 12).all())  # two 7-cell rows minus one gap each
    assert bool((inner_walls[layout == 3] == 9).all())  # a 13-cell cross minus four gaps
    has = lambda code: (grid == code).flatten(1).any(1)  # noqa: E731
    assert torch.equal(has(LOCKED), key_door == 1) and torch.equal(has(KEY), key_door == 1)
    assert torch.equal(has(GOAL), key_door == 0)
    assert bool(has(OBJ_A).all() and has(OBJ_B).all())
    assert torch.equal(tasks.object_values[:, 0] > 0, payoff == 0)
    assert torch.equal(tasks.object_values.sum(1), torch.zeros(128))


def test_grid_splits_hold_out_variants_but_cover_every_factor() -> None:
    train, val, test = (set(SPLIT_VARIANTS[s]) for s in ("train", "val", "test"))
    assert len(train) == 8 and len(val) == 4 and len(test) == 4
    assert not (train & val or train & test or val & test)
    assert {v // 4 for v in train} == set(range(4)) and {v % 4 for v in train} == set(range(4))
    dist = GridGameDistribution()
    for split, allowed in (("train", train), ("val", val), ("test", test)):
        got = set(dist.sample(split, 200, torch.Generator().manual_seed(1)).variant.tolist())
        assert got == allowed


def test_grid_every_sampled_game_is_solvable() -> None:
    """Breadth-first search from the start reaches the goal, both objects and the key."""
    tasks = GridGameDistribution().sample("train", 64, torch.Generator().manual_seed(2))
    for t in range(64):
        grid = tasks.grid[t].tolist()
        frontier, seen = [tuple(tasks.start[t].tolist())], set()
        while frontier:
            r, c = frontier.pop()
            if (r, c) in seen or grid[r][c] == WALL:
                continue
            seen.add((r, c))
            frontier += [(r + dr, c + dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        targets = {(r, c) for r in range(9) for c in range(9) if grid[r][c] not in (EMPTY, WALL)}
        assert targets <= seen


# --- physics against Gymnasium's own envs -----------------------------------------------------
def _cartpole_reference(task: CartPoleTask) -> gymnasium.Env:
    ref = gymnasium.make("CartPole-v1").unwrapped
    ref.length, ref.masspole, ref.masscart, ref.gravity = (
        float(task.length[0]), float(task.pole_mass[0]), float(task.cart_mass[0]), float(task.gravity[0])
    )  # fmt: skip
    ref.total_mass = ref.masspole + ref.masscart
    ref.polemass_length = ref.masspole * ref.length
    return ref


def test_cartpole_matches_gymnasium_step_for_step() -> None:
    sampled = CartPoleDistribution().sample("train", 2, torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    for task in (CartPoleTask.default(), sampled.select(0), sampled.select(1)):
        env = CartPoleVariantEnv()
        ref = _cartpole_reference(task)
        for episode in range(3):
            obs, _ = env.reset(seed=episode, options={"tasks": task})
            ref.reset(seed=0)
            ref.state = env.vec.state[0].numpy().copy()
            for _ in range(500):
                a = int(rng.integers(2))
                obs, r, term, trunc, _ = env.step(a)
                ref_obs, ref_r, ref_term, _, _ = ref.step(a)
                np.testing.assert_allclose(obs, ref_obs, rtol=1e-6, atol=1e-6)
                assert (r, term) == (ref_r, ref_term)
                if term or trunc:
                    break
            assert term, "random actions topple the pole well before 500 steps"


def test_cartpole_test_split_lies_outside_the_training_range() -> None:
    dist = CartPoleDistribution(train_scale=2.0, test_scale=3.0)
    train = dist.sample("train", 500, torch.Generator().manual_seed(0))
    test = dist.sample("test", 500, torch.Generator().manual_seed(0))
    ratio_train, ratio_test = train.length / 0.5, test.length / 0.5
    assert bool(((ratio_train >= 0.5) & (ratio_train <= 2.0)).all())
    assert bool(
        (
            ((ratio_test >= 1 / 3) & (ratio_test <= 0.5))
            | ((ratio_test >= 2.0) & (ratio_test <= 3.0))
        ).all()
    )
    assert (ratio_test < 1).any() and (ratio_test > 1).any()


def test_pendulum_matches_gymnasium_step_for_step() -> None:
    sampled = PendulumDistribution().sample("test", 1, torch.Generator().manual_seed(0))
    rng = np.random.default_rng(1)
    for task in (PendulumTask.default(), sampled):
        env = PendulumVariantEnv()
        ref = gymnasium.make("Pendulum-v1").unwrapped
        ref.m, ref.l = float(task.mass[0]), float(task.length[0])
        obs, _ = env.reset(seed=3, options={"tasks": task})
        ref.reset(seed=0)
        ref.state = env.vec.state[0].numpy().copy()
        for t in range(200):
            a = rng.uniform(-3, 3, size=(1,)).astype(np.float32)  # partly outside: both clip
            obs, r, term, trunc, _ = env.step(a)
            ref_obs, ref_r, *_ = ref.step(a)
            np.testing.assert_allclose(obs, ref_obs, rtol=1e-5, atol=1e-5)
            assert math.isclose(r, ref_r, rel_tol=1e-5, abs_tol=1e-5)
            assert not term and trunc == (t == 199)


def test_pendulum_heavier_longer_pole_swings_slower() -> None:
    """From the same state with no torque, angular acceleration is 3g/(2l) sin(theta)."""
    tasks = PendulumTask(mass=torch.tensor([1.0, 1.0]), length=torch.tensor([1.0, 2.0]))
    env = PendulumVariantEnv().vec.__class__(num_envs=2, envs_per_task=1)
    env.reset(seed=0, options={"tasks": tasks})
    env.state = torch.tensor([[0.5, 0.0], [0.5, 0.0]], dtype=torch.float64)
    env.step(torch.zeros(2, 1))
    expected = 3 * 10.0 / (2 * torch.tensor([1.0, 2.0], dtype=torch.float64)) * math.sin(0.5) * 0.05
    torch.testing.assert_close(env.state[:, 1], expected)
