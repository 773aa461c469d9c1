"""MuJoCo task families: env checker, task honoured, batched == single (same-step autoreset
== single envs reset by hand), the MetaRLDistribution contract, seeding, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")
gym = pytest.importorskip("gymnasium")

from envs.mujoco import batched, register_mujoco_envs  # noqa: E402
from envs.mujoco.batched import BatchedMujocoEnv  # noqa: E402
from envs.mujoco.families import (  # noqa: E402
    AntGoalConfig,
    AntGoalDistribution,
    HalfCheetahVelConfig,
    HalfCheetahVelDistribution,
    SlopeConfig,
    SlopeDistribution,
    TerrainConfig,
    TerrainDistribution,
)
from envs.mujoco.locomotion import (  # noqa: E402
    TERRAIN_X,
    AntDirEnv,
    AntGoalEnv,
    AntUphillEnv,
    HalfCheetahDirEnv,
    HalfCheetahSlopeEnv,
    HalfCheetahTerrainEnv,
    HalfCheetahUphillEnv,
    HalfCheetahVelEnv,
)
from envs.mujoco.registration import ENV_IDS  # noqa: E402
from envs.mujoco.tasks import (  # noqa: E402
    DirectionTask,
    GoalTask,
    HeadingTask,
    SlopeTask,
    TerrainTask,
    VelocityTask,
)
from metarl.errors import UsageError  # noqa: E402

register_mujoco_envs()

_FLAT = {  # a flat TerrainTask as a mapping of its fields
    "ramp_start": 0.0,
    "ramp_length": 0.0,
    "ramp_grade": 0.0,
    "hill_center": [0.0],
    "hill_height": [0.0],
    "hill_width": [1.0],
}


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_env_checker_passes(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 200
    env.close()


def _passive_dx(angle: float, steps: int = 40) -> float:
    env = HalfCheetahSlopeEnv(task={"angle_deg": angle})
    env.reset(seed=0)
    x0 = env.data.qpos[0]
    for _ in range(steps):
        env.step(np.zeros(6))
    return float(env.data.qpos[0] - x0)


def test_passive_cheetah_slides_downhill_on_both_signs_not_on_flat() -> None:
    # The floor rises along +x for a positive angle, so downhill is -x.
    assert _passive_dx(10.0) < -0.15
    assert _passive_dx(-10.0) > 0.15
    assert abs(_passive_dx(0.0)) < 0.05


def test_slope_sets_rotated_gravity() -> None:
    env = HalfCheetahSlopeEnv()
    env.reset(options={"tasks": SlopeTask(torch.tensor([20.0], dtype=torch.float64))})
    g = env.model.opt.gravity
    assert np.isclose(np.linalg.norm(g), 9.81) and g[0] < 0 and g[1] == 0
    assert np.isclose(np.degrees(np.arctan2(-g[0], -g[2])), 20.0)


def _roll(env, actions: np.ndarray):
    out = []
    for a in actions:
        x_before = env.data.qpos[0]
        xy_before = env.data.xpos[1, :2].copy()
        _, r, *_ = env.step(a)
        out.append((r, x_before, xy_before))
    return out


def test_velocity_and_direction_rewards_by_hand() -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (5, 6))
    for cls, task, fwd in [
        (HalfCheetahVelEnv, {"velocity": 1.3}, lambda v: -abs(v - 1.3)),
        (HalfCheetahDirEnv, {"direction": -1.0}, lambda v: -v),
    ]:
        env = cls()
        env.reset(seed=1, options={"tasks": task})
        for a in actions:
            x0 = env.data.qpos[0]
            _, r, *_ = env.step(a)
            v = (env.data.qpos[0] - x0) / 0.05
            assert r == pytest.approx(fwd(v) - 0.05 * np.sum(a**2), abs=1e-12)


def test_uphill_rewards_climbing_whichever_way_the_floor_rises() -> None:
    # The same physics as HalfCheetahSlope (same gravity, same states for the same actions);
    # only the reward's sign follows the slope: +v_x on a floor rising along +x, -v_x
    # along -x. The Ant's uphill term is the same, beside its healthy and cost terms.
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (6, 6))
    for angle in (8.0, -8.0, 0.0):
        task = {"tasks": {"angle_deg": angle}}
        up, slope = HalfCheetahUphillEnv(), HalfCheetahSlopeEnv()
        up.reset(seed=2, options=task)
        slope.reset(seed=2, options=task)
        np.testing.assert_array_equal(up.model.opt.gravity, slope.model.opt.gravity)
        for a in actions:
            o_up, r_up, *_ = up.step(a)
            o_slope, r_slope, _, _, info = slope.step(a)
            np.testing.assert_array_equal(o_up, o_slope)
            v = info["x_velocity"]
            assert r_slope == pytest.approx(v - 0.1 * np.sum(a**2), abs=1e-12)
            assert r_up == pytest.approx((-v if angle < 0 else v) - 0.1 * np.sum(a**2), abs=1e-12)
    ant = AntUphillEnv(task={"angle_deg": -12.0})
    ant.reset(seed=0)
    for a in rng.uniform(-1, 1, (4, 8)):
        x0 = ant.data.xpos[1, 0]
        _, r, *_ = ant.step(a)
        v = (ant.data.xpos[1, 0] - x0) / ant.dt
        costs = 0.5 * np.sum(a**2) + 5e-4 * np.sum(np.clip(ant.data.cfrc_ext[1:], -1, 1) ** 2)
        assert r == pytest.approx(-v + 1.0 - costs, abs=1e-12)


def test_slope_goal_picks_the_env_and_is_checked() -> None:
    assert SlopeDistribution(SlopeConfig(goal="uphill")).env_id == "metarl/HalfCheetahUphill-v0"
    assert SlopeDistribution(SlopeConfig(robot="ant", goal="uphill")).env_id == (
        "metarl/AntUphill-v0"
    )
    with pytest.raises(UsageError, match="goal must be 'forward' or 'uphill'"):
        SlopeConfig(goal="down")  # type: ignore[arg-type]


def test_ant_direction_and_goal_rewards_by_hand() -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (5, 8))
    angle = 2.0
    env = AntDirEnv(task={"angle": angle})
    env.reset(seed=0)
    for a in actions:
        xy0 = env.data.xpos[1, :2].copy()
        _, r, term, _, info = env.step(a)
        v = (env.data.xpos[1, :2] - xy0) / env.dt
        costs = 0.5 * np.sum(a**2) + 5e-4 * np.sum(np.clip(env.data.cfrc_ext[1:], -1, 1) ** 2)
        assert r == pytest.approx(v @ [np.cos(angle), np.sin(angle)] + 1.0 - costs, abs=1e-12)
    env = AntGoalEnv()
    env.reset(seed=0, options={"tasks": {"goal": [-1.0, 2.0]}})
    for a in actions:
        _, r, *_ = env.step(a)
        dist = np.abs(env.data.xpos[1, :2] - [-1.0, 2.0]).sum()
        costs = 0.5 * np.sum(a**2) + 5e-4 * np.sum(np.clip(env.data.cfrc_ext[1:], -1, 1) ** 2)
        assert r == pytest.approx(-dist + 1.0 - costs, abs=1e-12)


def _contact_z(env) -> np.ndarray:
    return np.array([env.data.contact[i].pos[2] for i in range(env.data.ncon)])


def test_terrain_changes_hfield_and_contact_heights() -> None:
    env = HalfCheetahTerrainEnv()
    env.reset(seed=0)
    flat = env.model.hfield_data.copy()
    for _ in range(30):
        env.step(np.zeros(6))
    z_flat = _contact_z(env)
    hill = {
        "ramp_start": 0.0,
        "ramp_length": 0.0,
        "ramp_grade": 0.0,
        "hill_center": [0.0],
        "hill_height": [0.4],
        "hill_width": [4.0],
    }
    env.reset(seed=0, options={"tasks": hill})
    assert not np.array_equal(env.model.hfield_data, flat)
    for _ in range(30):
        env.step(np.zeros(6))
    z_hill = _contact_z(env)
    assert len(z_flat) and len(z_hill)
    assert np.abs(z_flat).max() < 0.05
    assert z_hill.min() > 0.2  # standing on the hill, not the base level


def test_terrain_profile_matches_formula() -> None:
    p = np.array([5.0, 4.0, 0.1, 20.0, 0.3, 2.0])
    h = TerrainTask.heights(p, np.array([0.0, 7.0, 9.0, 12.0, 20.0, 21.0]))
    np.testing.assert_allclose(h, [0.0, 0.2, 0.4, 0.4, 0.7, 0.4 + 0.15])


def _batched_vs_singles(
    env_id: str, tasks, n: int, steps: int, horizon: int, actions
) -> tuple[np.ndarray, np.ndarray]:
    """Step a `BatchedMujocoEnv` (same-step autoreset) and `n` single `gymnasium.make(id)`
    envs reset by hand right after each finished episode -- the old contract, where the
    caller reset finished copies with `reset(options={"reset_mask": done})` -- and assert
    equal observations, final observations, rewards and flags. `actions(t) -> [n, nu]`.
    Returns the terminated and truncated flags `[steps, n]`."""
    per = n // (tasks.num_tasks if tasks is not None else 1)
    vec = BatchedMujocoEnv(env_id, n, max_episode_steps=horizon, envs_per_task=per)
    assert (vec.num_tasks, vec.envs_per_task) == (n // per, per)
    obs, _ = vec.reset(seed=7, options={"tasks": tasks} if tasks is not None else None)
    singles = [gym.make(env_id, max_episode_steps=horizon) for _ in range(n)]
    rows = []
    for i, env in enumerate(singles):
        opts = {"tasks": tasks.select(i // per)} if tasks is not None else None
        rows.append(env.reset(seed=7 + i, options=opts)[0])
    np.testing.assert_array_equal(obs, np.stack(rows))
    flags = []
    for t in range(steps):
        a = actions(t)
        obs, rew, term, trunc, info = vec.step(a)
        np.testing.assert_array_equal(info["_final_obs"], term | trunc)
        for i, env in enumerate(singles):
            o, r, te, tr, _ = env.step(a[i])
            assert rew[i] == r and term[i] == te and trunc[i] == tr
            if te or tr:  # the old contract: the caller resets the finished copy at once
                np.testing.assert_array_equal(info["final_obs"][i], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
        flags.append((term, trunc))
    return np.stack([f[0] for f in flags]), np.stack([f[1] for f in flags])


@pytest.mark.parametrize(
    "env_id,task",
    [
        ("metarl/HalfCheetahSlope-v0", SlopeTask(torch.tensor([-8.0, 12.0], dtype=torch.float64))),
        (
            "metarl/HalfCheetahUphill-v0",
            SlopeTask(torch.tensor([-8.0, 12.0], dtype=torch.float64)),
        ),
        ("metarl/AntUphill-v0", SlopeTask(torch.tensor([-8.0, 12.0], dtype=torch.float64))),
        (
            "metarl/HalfCheetahTerrain-v0",
            TerrainDistribution().sample("train", 2, torch.Generator().manual_seed(0)),
        ),
        (
            "metarl/HalfCheetahTerrainPhysics-v0",
            TerrainDistribution(TerrainConfig(physics=True)).sample(
                "test_beyond", 2, torch.Generator().manual_seed(0)
            ),
        ),
        (
            "metarl/HalfCheetahTerrainPace-v0",
            TerrainDistribution(TerrainConfig(physics=True, goal="pace")).sample(
                "train", 2, torch.Generator().manual_seed(0)
            ),
        ),
        ("metarl/AntGoal-v0", None),
        ("metarl/HalfCheetahVel-v0", VelocityTask(torch.tensor([0.5, 1.7], dtype=torch.float64))),
        ("metarl/HalfCheetahDir-v0", DirectionTask(torch.tensor([1.0, -1.0], dtype=torch.float64))),
        ("metarl/AntDir-v0", HeadingTask(torch.tensor([0.3, 2.5], dtype=torch.float64))),
    ],
)
def test_batched_equals_loop_of_single_envs(env_id: str, task) -> None:
    n, horizon = 4, 20
    rng = np.random.default_rng(0)
    nu = gym.spec(env_id).make().action_space.shape[0]
    acts = rng.uniform(-1.5, 1.5, (25, n, nu)).astype(np.float32)  # partly clipped
    term, trunc = _batched_vs_singles(env_id, task, n, 25, horizon, lambda t: acts[t])
    if "Cheetah" in env_id:  # every copy truncated at step 20, then autoreset
        assert not term.any() and trunc[horizon - 1].all() and trunc.sum() == n


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahSlope-v0", "metarl/AntSlope-v0"])
def test_same_step_autoreset_equals_resetting_by_hand(env_id: str) -> None:
    # Bang-bang actions make the Ant jump out of its healthy height range within a few
    # steps: episodes that terminate early, autoreset in the same step; a 12-step horizon
    # truncates the others. Numbers equal single envs reset by hand, bit for bit.
    n, steps, horizon = 4, 40, 12
    tasks = SlopeTask(torch.tensor([-15.0, 6.0], dtype=torch.float64))
    rng = np.random.default_rng(3)
    nu = 8 if "Ant" in env_id else 6
    acts = np.sign(rng.uniform(-1, 1, (steps, n, nu))).astype(np.float32)
    term, trunc = _batched_vs_singles(
        env_id, tasks, n, steps, horizon, lambda t: torch.from_numpy(acts[t])
    )
    assert trunc.any()
    if "Ant" in env_id:
        lengths = np.diff(np.flatnonzero(term[:, 0] | trunc[:, 0]), prepend=-1) + 1
        assert term.sum() >= 2 and (lengths < horizon).any()  # early terminations


def test_torch_actions_equal_double_numpy_actions() -> None:
    a = torch.rand(2, 4, 6, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    envs = [BatchedMujocoEnv("metarl/HalfCheetahVel-v0", 4) for _ in range(2)]
    for env in envs:
        env.reset(seed=1)
    for t in range(2):
        x = envs[0].step(a[t])
        y = envs[1].step(a[t].detach().cpu().double().numpy())
        for u, v in zip(x[:4], y[:4], strict=True):
            np.testing.assert_array_equal(u, v)


def test_family_is_a_meta_rl_distribution() -> None:
    from metarl.contracts import SPLITS, MetaRLDistribution, MetaVectorEnv, RenderableEnv

    dist = SlopeDistribution(SlopeConfig(robot="ant"))
    assert isinstance(dist, MetaRLDistribution) and dist.renderable and dist.horizon == 200
    assert dist.splits == (*SPLITS, "test_beyond") and HalfCheetahVelDistribution().splits is SPLITS
    env = dist.make_env(3, envs_per_task=2)
    assert isinstance(env, MetaVectorEnv) and isinstance(env, RenderableEnv)
    assert (env.num_envs, env.num_tasks, env.envs_per_task) == (6, 3, 2)
    assert env.max_episode_steps == 200 and dist.make_env(1, horizon=7).max_episode_steps == 7
    single = gym.make(dist.env_id)
    assert dist.observation_space == single.observation_space == env.single_observation_space
    assert dist.action_space == single.action_space == env.single_action_space
    tasks = dist.sample("test", 3, torch.Generator().manual_seed(0))
    obs, _ = env.reset(seed=0, options={"tasks": tasks})
    assert obs.shape == (6, 105) and torch.equal(env.tasks.angle_deg, tasks.angle_deg)
    with pytest.raises(UsageError, match="expected 3 tasks"):
        env.reset(options={"tasks": tasks.select(slice(0, 2))})
    with pytest.raises(UsageError, match="envs_per_task must be a positive integer"):
        dist.make_env(2, envs_per_task=0)
    with pytest.raises(UsageError, match="horizon must be a positive integer"):
        dist.make_env(2, horizon=-1)
    with pytest.raises(UsageError, match="num_tasks must be a positive integer"):
        dist.sample("train", 0, torch.Generator())
    with pytest.raises(UsageError, match="takes a SlopeConfig"):
        SlopeDistribution(AntGoalConfig())  # type: ignore[arg-type]


def test_task_batches_slice_flatten_and_validate_on_creation() -> None:
    goals = GoalTask(torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]], dtype=torch.float64))
    one = goals.select(-2)
    assert one.num_tasks == len(one) == 1 and one.goal.tolist() == [[-3.0, 0.5]]
    np.testing.assert_array_equal(goals.features(torch.float64).numpy(), goals.goal.numpy())
    terrain = TerrainDistribution().sample("train", 2, torch.Generator().manual_seed(0))
    row = terrain.features(torch.float64)[1]
    assert row.shape == (3 + 3 * 3,) and row[3:6].tolist() == terrain.hill_center[1].tolist()
    with pytest.raises(UsageError, match="task index 3 out of range"):
        goals.select(3)
    with pytest.raises(UsageError, match="angle_deg must be in"):
        SlopeTask(torch.tensor([0.0, 31.0], dtype=torch.float64))
    with pytest.raises(UsageError, match="velocity must be in \\[-5, 5\\]"):
        VelocityTask.coerce({"velocity": 6.0})
    with pytest.raises(UsageError, match="hill_width must be in"):
        TerrainTask.coerce({**_FLAT, "hill_width": [0.1]})


@pytest.mark.parametrize("env_id", ["metarl/AntSlope-v0", "metarl/HalfCheetahTerrain-v0"])
def test_threaded_batched_equals_serial(env_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Threads step disjoint chunks of copies; any thread count gives the same numbers, also
    # with copies reset by hand or autoreset (at step 12) in the middle of a chunk.
    monkeypatch.setattr(batched, "MIN_CHUNK", {"half_cheetah": 1, "ant": 1})  # thread 5 copies
    n = 5
    envs = [BatchedMujocoEnv(env_id, n, max_episode_steps=12, num_threads=k) for k in (1, 2, 3)]
    outs = [env.reset(seed=3)[0] for env in envs]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    rng = np.random.default_rng(1)
    nu = envs[0].single_action_space.shape[0]
    truncated = np.zeros(n, dtype=bool)
    for t in range(16):
        a = rng.uniform(-1, 1, (n, nu))
        if t == 8:  # restart copies 1 and 3 only
            mask = np.array([False, True, False, True, False])
            seeds = [None, 9, None, 10, None]
            outs = [env.reset(seed=seeds, options={"reset_mask": mask})[0] for env in envs]
            for o in outs[1:]:
                np.testing.assert_array_equal(o, outs[0])
        steps = [env.step(a) for env in envs]
        for other in steps[1:]:
            for x, y in zip(steps[0][:4], other[:4], strict=False):
                np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(steps[0][4]["final_obs"], other[4]["final_obs"])
        truncated |= steps[0][3]
    assert truncated.any()
    for env in envs:
        env.close()
    with pytest.raises(UsageError, match="num_threads must be a positive integer"):
        BatchedMujocoEnv(env_id, 2, num_threads=0)


def test_default_thread_count_follows_torch() -> None:
    # A run given one thread (OMP_NUM_THREADS=1) steps its physics on one core too.
    old = torch.get_num_threads()
    try:
        for k in (1, 2):
            torch.set_num_threads(k)
            env = BatchedMujocoEnv("metarl/HalfCheetahSlope-v0", 16)
            assert env.num_threads == min(k, os.cpu_count() or 1)
            env.close()
    finally:
        torch.set_num_threads(old)


def test_terrain_elevation_scale_follows_the_task() -> None:
    env = HalfCheetahTerrainEnv()
    compiled = 2.0  # TERRAIN_DEPTH + TERRAIN_HEIGHT: the compiled bounding box
    task = TerrainDistribution().sample("test_beyond", 3, torch.Generator().manual_seed(2))
    for i in range(3):
        env.reset(seed=0, options={"tasks": task.select(i)})
        h = TerrainTask.heights(task.select(i).features(torch.float64)[0].numpy(), TERRAIN_X)
        scale = env.model.hfield_size[0, 2]
        assert 0 < scale <= compiled
        row = env.model.hfield_data[: len(TERRAIN_X)].astype(np.float64)
        np.testing.assert_allclose(row * scale - 1.0, h, atol=1e-6)  # base level at z = -1


def test_batched_partial_reset_and_make_vec() -> None:
    vec = gym.make_vec("metarl/HalfCheetahDir-v0", num_envs=3)
    assert isinstance(vec.unwrapped, BatchedMujocoEnv) and vec.unwrapped.max_episode_steps == 200
    obs, _ = vec.reset(seed=0)
    before = obs.copy()
    for _ in range(3):
        obs, *_ = vec.step(np.zeros((3, 6), dtype=np.float32))
    obs, _ = vec.reset(seed=[0, None, None], options={"reset_mask": np.array([True, False, False])})
    np.testing.assert_array_equal(obs[0], before[0])
    assert not np.array_equal(obs[1], before[1])


def test_seeded_resets_repeat() -> None:
    def run(seed: int) -> np.ndarray:
        env = gym.make("metarl/HalfCheetahVel-v0")
        obs = [env.reset(seed=seed)[0]]
        obs += [env.step(np.full(6, 0.3, dtype=np.float32))[0] for _ in range(5)]
        return np.stack(obs)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_distributions_splits_and_generators() -> None:
    dist = SlopeDistribution()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = dist.sample("train", 2000, g()).angle_deg
    torch.testing.assert_close(a, dist.sample("train", 2000, g()).angle_deg)
    assert a.abs().max() <= 10 and ((a.abs() >= 2.5) & (a.abs() <= 3.5)).sum() == 0
    assert ((a.abs() >= 6.5) & (a.abs() <= 7.5)).sum() == 0 and (a < 0).any() and (a > 0).any()
    v = dist.sample("val", 100, g()).angle_deg.abs()
    assert ((v >= 2.5) & (v <= 3.5)).all()
    t = dist.sample("test", 100, g()).angle_deg.abs()
    assert ((t >= 6.5) & (t <= 7.5)).all()
    b = dist.sample("test_beyond", 100, g()).angle_deg.abs()
    assert ((b >= 12) & (b <= 20)).all()
    tb = TerrainDistribution().sample("test_beyond", 50, g())
    assert (tb.ramp_grade.abs() >= 0.12).all() and (tb.hill_height.abs() >= 0.2).all()
    with pytest.raises(UsageError, match="unknown split"):
        dist.sample("nope", 1, g())


def test_registry_builds_the_families_from_old_config_keys() -> None:
    from metarl import registry
    from metarl.config import from_dict
    from metarl.registry import load_config

    cfg = load_config("ant_slope_rl2", ["task.beyond_band_deg=[11, 15]"])
    dist = registry.build_distribution(cfg, torch.device("cpu"))
    assert isinstance(dist, SlopeDistribution) and dist.env_id == "metarl/AntSlope-v0"
    assert dist.config.beyond_band_deg == (11.0, 15.0)
    b = dist.sample("test_beyond", 100, torch.Generator().manual_seed(0)).angle_deg.abs()
    assert ((b >= 11) & (b <= 15)).all()
    section = from_dict(SlopeConfig, {"robot": "ant", "beyond_band_deg": [11, 15]}, "task")
    assert SlopeDistribution(section, torch.device("cpu")).env_id == "metarl/AntSlope-v0"
    goals = AntGoalDistribution(AntGoalConfig(), torch.device("cpu")).sample(
        "train", 500, torch.Generator().manual_seed(1)
    )
    assert goals.goal.norm(dim=1).max() <= 3.0 and goals.goal.shape == (500, 2)
    vel = HalfCheetahVelDistribution(HalfCheetahVelConfig(), "cpu").sample(
        "val", 100, torch.Generator().manual_seed(1)
    )
    assert vel.velocity.min() >= 0 and vel.velocity.max() <= 2
    for kind in ("slope", "terrain", "half_cheetah_vel", "half_cheetah_dir", "ant_dir", "ant_goal"):
        assert kind in registry.DISTRIBUTIONS


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: SlopeConfig(robot="cat"), "robot must be 'half_cheetah' or 'ant'"),  # type: ignore[arg-type]
        (lambda: _load_task({"robot": "cat"}), "task.robot: 'cat' is not valid"),
        (lambda: _load_task({"val_band_deg": [5.0, 50.0]}), "slope bands must satisfy"),
        (lambda: _load_task({"speed": 1.0}), "unknown config key task.speed"),
        (lambda: AntGoalConfig(radius=0.0), "radius must be in"),
        (lambda: HalfCheetahVelConfig(low=1.0, high=0.5), "velocity range must satisfy"),
    ],
)
def test_bad_family_config_is_one_line_usage_error_at_load(make, match) -> None:
    with pytest.raises(UsageError, match=match) as err:
        make()
    assert "\n" not in str(err.value)


def _load_task(data: dict) -> SlopeConfig:
    from metarl.config import from_dict

    return from_dict(SlopeConfig, data, "task")


@pytest.mark.parametrize(
    "make,options,match",
    [
        (
            HalfCheetahSlopeEnv,
            {"tasks": {"angle_deg": 90.0}},
            "angle_deg must be in \\|angle_deg\\| < 30",
        ),
        (AntGoalEnv, {"tasks": {"goal": [float("nan"), 0.0]}}, "goal must be finite"),
        (HalfCheetahVelEnv, {"speed": 1.0}, "unknown reset option 'speed'"),
        (HalfCheetahVelEnv, {"task": {"velocity": 1.0}}, "unknown reset option 'task'"),
        (HalfCheetahDirEnv, {"tasks": {"direction": 0.5}}, "direction must be"),
        (
            HalfCheetahVelEnv,
            {"tasks": VelocityTask(torch.ones(2, dtype=torch.float64))},
            "a single env takes one task",
        ),
        (
            lambda: BatchedMujocoEnv("metarl/HalfCheetahVel-v0", 2),
            {"task": {"velocity": 1.0}},
            "unknown reset option 'task'; valid options: tasks, reset_mask",
        ),
    ],
)
def test_bad_task_input_is_one_line_usage_error(make, options, match) -> None:
    env = make()
    with pytest.raises(UsageError, match=match) as err:
        env.reset(options=options)
    assert "\n" not in str(err.value)


def test_bad_actions() -> None:
    env = HalfCheetahVelEnv()
    env.reset(seed=0)
    with pytest.raises(UsageError, match="finite"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0]))
    with pytest.raises(UsageError, match="shape \\[6\\]"):
        env.step(np.zeros(5))
    with pytest.raises(UsageError, match="finite"), np.errstate(invalid="ignore"):
        env.step(np.array([0, 0, 0, 0, 0, -np.inf]))
    with pytest.raises(UsageError, match="finite"):
        env.step([0.0, 0.0, float("nan"), 0.0, 0.0, 0.0])  # a list takes the slow path
    batched = BatchedMujocoEnv("metarl/HalfCheetahVel-v0", 2)
    batched.reset(seed=0)
    with pytest.raises(UsageError, match="shape \\[2, 6\\]"):
        batched.step(np.zeros(6))
    # Out-of-box actions are clipped: same transition and reward as the clipped action.
    a, b = HalfCheetahVelEnv(), HalfCheetahVelEnv()
    a.reset(seed=0), b.reset(seed=0)
    oa, ra, *_ = a.step(np.full(6, 5.0))
    ob, rb, *_ = b.step(np.full(6, 1.0))
    np.testing.assert_array_equal(oa, ob)
    assert ra == rb
    with pytest.raises(UsageError, match="multiple of the number of tasks"):
        BatchedMujocoEnv("metarl/HalfCheetahSlope-v0", 3, tasks={"angle_deg": [0.0, 1.0]})
    with pytest.raises(UsageError, match="multiple of envs_per_task"):
        BatchedMujocoEnv("metarl/HalfCheetahSlope-v0", 3, envs_per_task=2)
    with pytest.raises(UsageError, match="expected 2 tasks"):
        BatchedMujocoEnv("metarl/HalfCheetahSlope-v0", 4, envs_per_task=2).reset(
            options={"tasks": SlopeTask(torch.zeros(4, dtype=torch.float64))}
        )
    with pytest.raises(UsageError, match="call reset\\(\\) before step"):
        BatchedMujocoEnv("metarl/HalfCheetahSlope-v0", 2).step(np.zeros((2, 6)))


def test_no_mujoco_log_in_cwd(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    gym.make("HalfCheetah-v5").reset(seed=0)
    HalfCheetahTerrainEnv().reset(seed=0)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_rgb_array_render_headless() -> None:
    env = gym.make("metarl/HalfCheetahTerrain-v0", render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as exc:  # no EGL/GL on this machine
        pytest.skip(f"headless OpenGL unavailable: {type(exc).__name__}: {exc}")
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert frame.std() > 1.0  # not blank
    hill = TerrainDistribution().sample("test_beyond", 1, torch.Generator().manual_seed(0))
    env.reset(options={"tasks": hill})  # re-uploads the height field to the open context
    assert env.render().shape == (48, 64, 3)
    env.close()
    assert TERRAIN_X[0] < 0
