"""MuJoCo locomotion task distributions: velocity, direction, goal, slope and terrain.

- `tasks`: task dataclasses (`VelocityTask`, ..., `TerrainTask`), their distributions with named
  splits, and the config/builder pairs for `metarl.registry`.
- `locomotion`: the single Gymnasium envs (task applied by `reset(options={"task": ...})`).
- `batched`: `BatchedMujocoEnv`, many tasks x copies per call, equal to the single envs.
- `registration`: `register_mujoco_envs()` for the `metarl/...-v0` ids.

Importing this package routes MuJoCo's warnings to the `envs.mujoco` logger (nothing is
written to the working directory) and selects EGL for headless rendering when `MUJOCO_GL`
is unset and there is no display.
"""

from envs.mujoco import _common  # noqa: F401  (MuJoCo setup before anything imports mujoco)
from envs.mujoco.registration import ENV_IDS, register_mujoco_envs
from envs.mujoco.tasks import (
    AntDirDistribution,
    AntGoalDistribution,
    DirectionTask,
    GoalTask,
    HalfCheetahDirDistribution,
    HalfCheetahVelDistribution,
    HeadingTask,
    SlopeDistribution,
    SlopeTask,
    TerrainDistribution,
    TerrainTask,
    VelocityTask,
)

__all__ = [
    "ENV_IDS",
    "AntDirDistribution",
    "AntGoalDistribution",
    "DirectionTask",
    "GoalTask",
    "HalfCheetahDirDistribution",
    "HalfCheetahVelDistribution",
    "HeadingTask",
    "SlopeDistribution",
    "SlopeTask",
    "TerrainDistribution",
    "TerrainTask",
    "VelocityTask",
    "register_mujoco_envs",
]
