"""HalfCheetahTerrainPhysics / Pace: the task's friction, payload and motor strengths reach the
physics (and only from the compiled defaults, never compounding), they change what the same
actions do, the pace reward is -|v - pace| - 0.05 |a|^2, the family's draws keep the plain
terrain's profiles, and bad tasks fail in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from envs.mujoco.families import TerrainConfig, TerrainDistribution  # noqa: E402
from envs.mujoco.locomotion import (  # noqa: E402
    HalfCheetahTerrainPhysicsEnv,
)
from envs.mujoco.tasks import PHYSICS_DIM, TerrainPaceTask, TerrainPhysicsTask  # noqa: E402
from metarl.errors import UsageError  # noqa: E402

GEARS = np.array([120.0, 90.0, 60.0, 120.0, 60.0, 30.0])  # Gymnasium's half_cheetah.xml


def _task(**physics: object) -> dict[str, object]:
    flat = dict(HalfCheetahTerrainPhysicsEnv.default_task)
    return {**flat, **physics}


def _distance(env: HalfCheetahTerrainPhysicsEnv, task: dict[str, object], steps: int = 60) -> float:
    """x travelled under one fixed bang-bang gait from one seeded start."""
    env.reset(seed=0, options={"tasks": task})
    x0 = float(env.data.qpos[0])
    t = np.arange(steps)[:, None]
    acts = np.sign(np.sin(0.9 * t + np.arange(6)[None, :])).astype(np.float32)
    for a in acts:
        env.step(a)
    return float(env.data.qpos[0]) - x0


def test_physics_written_from_the_defaults_and_never_compounded() -> None:
    env = HalfCheetahTerrainPhysicsEnv()
    mass0, inertia0 = float(env.model.body_mass[1]), env.model.body_inertia[1].copy()
    strengths = [0.5, 1.0, 0.25, 2.0, 0.0, 1.5]
    task = _task(friction=0.25, payload=4.0, motor_strength=strengths)
    for _ in range(2):  # the same task twice: the same model, not scaled twice
        env.reset(seed=0, options={"tasks": task})
        np.testing.assert_allclose(env.model.geom_friction[:, 0], 0.1)
        assert env.model.body_mass[1] == pytest.approx(mass0 + 4.0)
        np.testing.assert_allclose(env.model.body_inertia[1], inertia0 * (mass0 + 4.0) / mass0)
        np.testing.assert_allclose(env.model.actuator_gear[:, 0], GEARS * strengths)
    env.reset(seed=0, options={"tasks": _task()})  # back to the Gymnasium cheetah
    np.testing.assert_allclose(env.model.geom_friction[:, 0], 0.4)
    assert env.model.body_mass[1] == pytest.approx(mass0)
    np.testing.assert_allclose(env.model.actuator_gear[:, 0], GEARS)


def test_each_physical_parameter_changes_what_the_same_gait_does() -> None:
    env = HalfCheetahTerrainPhysicsEnv()
    base = _distance(env, _task())
    assert _distance(env, _task()) == base  # deterministic given the seed
    # No motor torque at all: the cheetah only settles from its reset pose.
    dead = _distance(env, _task(motor_strength=[0.0] * 6))
    assert abs(dead) < 0.2 < abs(base)
    for change in ({"friction": 0.1}, {"payload": 10.0}, {"motor_strength": [0.3] * 6}):
        assert abs(_distance(env, _task(**change)) - base) > 0.05, change


def test_family_keeps_the_terrain_profiles_and_its_held_out_bands() -> None:
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    plain = TerrainDistribution().sample("test_beyond", 64, g())
    dist = TerrainDistribution(TerrainConfig(physics=True))
    assert dist.env_id == "metarl/HalfCheetahTerrainPhysics-v0"
    tb = dist.sample("test_beyond", 64, g())
    feats = tb.features(torch.float64)
    assert feats.shape == (64, 3 + 3 * 3 + PHYSICS_DIM)
    torch.testing.assert_close(feats[:, :-PHYSICS_DIM], plain.features(torch.float64))
    assert ((tb.friction >= 0.05) & (tb.friction <= 0.1)).all()
    assert ((tb.payload >= 10) & (tb.payload <= 15)).all()
    assert ((tb.motor_strength < 0.2).sum(dim=1) == 1).all()  # exactly one motor beyond
    train = dist.sample("train", 256, g())
    assert train.friction.min() >= 0.1 and train.friction.max() <= 1.0
    assert train.payload.min() >= 0 and train.payload.max() <= 10
    assert train.motor_strength.min() >= 0.2 and train.motor_strength.max() <= 1.0


def test_pace_reward_is_the_distance_to_the_pace_less_the_control_cost() -> None:
    dist = TerrainDistribution(TerrainConfig(physics=True, goal="pace"))
    assert dist.env_id == "metarl/HalfCheetahTerrainPace-v0"
    tasks = dist.sample("train", 3, torch.Generator().manual_seed(1))
    assert ((tasks.velocity >= 0) & (tasks.velocity <= 2)).all()
    feats = tasks.features(torch.float64)
    assert feats.shape == (3, 12 + PHYSICS_DIM + 1)
    torch.testing.assert_close(feats[:, -1], tasks.velocity)
    env = dist.make_env(3)
    env.reset(seed=0, options={"tasks": tasks})
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, (3, 6)).astype(np.float32)
        _, reward, *_, info = env.step(a)
        v = info["x_velocity"]
        want = -np.abs(v - tasks.velocity.numpy()) - 0.05 * np.sum(np.square(a), axis=1)
        np.testing.assert_allclose(reward, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        env.models[2].actuator_gear[:, 0], GEARS * tasks.motor_strength[2].numpy()
    )
    # The same robots with a fixed default robot: physics false keeps friction, payload, gear.
    plain = TerrainDistribution(TerrainConfig(goal="pace")).sample(
        "test_beyond", 8, torch.Generator()
    )
    assert (plain.friction == 1).all() and (plain.payload == 0).all()
    assert (plain.motor_strength == 1).all()
    assert ((plain.velocity >= 2) & (plain.velocity <= 2.5)).all()


def test_bad_physics_tasks_fail_in_one_line() -> None:
    with pytest.raises(UsageError, match="motor_strength must have shape \\[T, 6\\]"):
        TerrainPhysicsTask.coerce(_task(motor_strength=[1.0] * 5))
    with pytest.raises(UsageError, match="friction must be in \\[0.01, 2\\]"):
        TerrainPhysicsTask.coerce(_task(friction=0.0))
    with pytest.raises(UsageError, match="payload must be in \\[0, 20\\]"):
        TerrainPhysicsTask.coerce(_task(payload=-1.0))
    with pytest.raises(UsageError, match="velocity must be in \\[-5, 5\\]"):
        TerrainPaceTask.coerce({**_task(), "velocity": 7.0})
    with pytest.raises(UsageError, match="goal must be 'forward' or 'pace'"):
        TerrainConfig(goal="uphill")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="physics must be true or false"):
        TerrainConfig(physics="yes")  # type: ignore[arg-type]
