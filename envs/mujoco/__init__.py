"""MuJoCo locomotion task distributions: velocity, direction, goal, slope and terrain (with
per-task physics and pace).

- `tasks`: the task batches (`VelocityTask`, ..., `TerrainTask`: `metarl.tasks.TaskBatch`es).
- `families`: one `MujocoFamily` base; each family is its frozen config (`SlopeConfig`, ...),
  its task sampling and its env id: `SlopeDistribution(SlopeConfig(robot="ant"))`, also the
  `metarl.registry` builder. `make_env` gives a `BatchedMujocoEnv`.
- `locomotion`: the single Gymnasium envs (task applied by `reset(options={"tasks": ...})`).
- `batched`: `BatchedMujocoEnv`, many tasks x copies per call, equal to the single envs;
  same-step autoreset.
- `registration`: `register_mujoco_envs()` for the `metarl/...-v0` ids.

Importing this package routes MuJoCo's warnings to the `envs.mujoco` logger (nothing is
written to the working directory) and selects EGL for headless rendering when `MUJOCO_GL`
is unset and there is no display.
"""

from envs.mujoco import _common  # noqa: F401  (MuJoCo setup before anything imports mujoco)
from envs.mujoco.batched import BatchedMujocoEnv
from envs.mujoco.families import (
    AntDirConfig,
    AntDirDistribution,
    AntGoalConfig,
    AntGoalDistribution,
    HalfCheetahDirConfig,
    HalfCheetahDirDistribution,
    HalfCheetahVelConfig,
    HalfCheetahVelDistribution,
    MujocoFamily,
    SlopeConfig,
    SlopeDistribution,
    TerrainConfig,
    TerrainDistribution,
)
from envs.mujoco.registration import ENV_IDS, register_mujoco_envs
from envs.mujoco.tasks import (
    DirectionTask,
    GoalTask,
    HeadingTask,
    SlopeTask,
    TerrainPaceTask,
    TerrainPhysicsTask,
    TerrainTask,
    VelocityTask,
)

__all__ = [
    "ENV_IDS",
    "AntDirConfig",
    "AntDirDistribution",
    "AntGoalConfig",
    "AntGoalDistribution",
    "BatchedMujocoEnv",
    "DirectionTask",
    "GoalTask",
    "HalfCheetahDirConfig",
    "HalfCheetahDirDistribution",
    "HalfCheetahVelConfig",
    "HalfCheetahVelDistribution",
    "HeadingTask",
    "MujocoFamily",
    "SlopeConfig",
    "SlopeDistribution",
    "SlopeTask",
    "TerrainConfig",
    "TerrainDistribution",
    "TerrainPaceTask",
    "TerrainPhysicsTask",
    "TerrainTask",
    "VelocityTask",
    "register_mujoco_envs",
]
