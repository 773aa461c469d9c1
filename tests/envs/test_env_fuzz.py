"""Every registered env id under bad and odd input: random, out-of-range, NaN, wrong-shape and
wrong-dtype actions, odd seeds, extreme task parameters. Each either works with finite
observations and rewards, or fails with one `UsageError` line; never a deeper traceback."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from envs.tensor import CartPoleTask, PendulumTask
from envs.tensor.registration import TENSOR_ENVS
from metarl.errors import UsageError

try:
    from envs.mujoco.registration import ENV_IDS as MUJOCO_IDS
except ImportError:  # MuJoCo extras not installed
    MUJOCO_IDS = {}

IDS = list(TENSOR_ENVS) + list(MUJOCO_IDS)
SHORT = {"metarl/Bandit-v0": {"horizon": 3}, "metarl/TabularMDP-v0": {"horizon": 3}}


def _one_line_usage_error(call) -> bool:
    """Run `call`; True if it raised a one-line UsageError, False if it returned."""
    try:
        call()
    except UsageError as err:
        assert str(err) and "\n" not in str(err), repr(err)
        return True
    return False


def _finite(x) -> bool:
    return bool(np.isfinite(np.asarray(x, dtype=np.float64)).all())


def _bad_actions(space: gymnasium.Space, rng: np.random.Generator) -> list:
    shape = space.shape or ()
    good = space.sample()
    bad = [
        np.full(shape, np.nan),  # NaN
        np.zeros((*shape, 2)),  # wrong shape
        np.zeros(shape, dtype=complex),  # complex
        np.zeros(shape, dtype=bool),  # bool
        torch.zeros(shape, dtype=torch.bool),
        "left",  # not a number at all
    ]
    if isinstance(space, gymnasium.spaces.Discrete):
        bad += [np.asarray(0.5), int(space.n), -1]  # float, just out of range
    else:
        bad += [np.full(shape, 1e6), -1e6 * np.ones(shape), (rng.standard_normal(shape) * 1e3)]
    return [good, *bad]


@pytest.mark.parametrize("env_id", IDS)
def test_odd_seeds_are_accepted_or_refused_in_one_line(env_id: str) -> None:
    env = gymnasium.make(env_id, **SHORT.get(env_id, {}))
    for seed in (-1, 1.5, "abc", True, None, [3]):
        assert _one_line_usage_error(lambda s=seed: env.reset(seed=s)) or seed is None
    obs, _ = env.reset(seed=np.int64(3))  # numpy integers are integers
    again, _ = env.reset(seed=3)
    assert np.array_equal(obs, again)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_bad_actions_fail_in_one_line_and_good_ones_stay_finite(env_id: str) -> None:
    rng = np.random.default_rng(0)
    env = gymnasium.make(env_id, **SHORT.get(env_id, {}))
    env.reset(seed=0)
    for _ in range(3):
        for action in _bad_actions(env.action_space, rng):
            result: list = []
            refused = _one_line_usage_error(lambda a=action, r=result: r.append(env.step(a)))
            if not refused:
                obs, reward, terminated, truncated, _ = result[0]
                assert _finite(obs) and _finite(reward), (env_id, action)
                if terminated or truncated:
                    env.reset()
    env.close()


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_batched_tensor_envs_refuse_bad_actions_in_one_line(env_id: str) -> None:
    vec = gymnasium.make_vec(env_id, num_envs=4, **SHORT.get(env_id, {}))
    vec.reset(seed=0)
    space = vec.single_action_space
    for action in _bad_actions(space, np.random.default_rng(1))[1:7]:
        batched = np.stack([np.asarray(action)] * 4) if not isinstance(action, str) else action
        assert _one_line_usage_error(lambda a=batched: vec.step(a)), (env_id, action)
    obs, reward, *_ = vec.step(torch.as_tensor(np.stack([space.sample() for _ in range(4)])))
    assert torch.isfinite(obs).all() and torch.isfinite(reward).all()


@pytest.mark.parametrize(
    "env_id, task_type", [("metarl/CartPoleVariant-v0", CartPoleTask), ("metarl/PendulumVariant-v0", PendulumTask)]
)  # fmt: skip
def test_physics_at_the_edges_of_their_ranges_stay_finite(env_id: str, task_type) -> None:
    """Every combination of smallest / largest accepted parameters, random actions."""
    names = list(task_type.PARAMS)
    corners = np.array(np.meshgrid(*[[0, 1]] * len(names))).reshape(len(names), -1).T
    values = {
        k: torch.tensor([d / 100 if c else hi for c in corners[:, i]], dtype=torch.float64)
        for i, (k, (d, hi)) in enumerate(task_type.PARAMS.items())
    }
    tasks = task_type(**values)
    n = tasks.num_tasks
    vec = gymnasium.make_vec(env_id, num_envs=n)
    obs, _ = vec.reset(seed=0, options={"tasks": tasks})
    space, rng = vec.single_action_space, np.random.default_rng(0)
    for _ in range(200):
        actions = torch.as_tensor(np.stack([space.sample() for _ in range(n)]))
        obs, reward, *_ = vec.step(actions)
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
    with pytest.raises(UsageError, match="default|lie in"):
        task_type(**{k: v * 0 + 1e-20 for k, v in values.items()})
    del rng
