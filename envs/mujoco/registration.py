"""Gymnasium ids of the MuJoCo task families (entry points are imported lazily by name).

`gymnasium.make("metarl/HalfCheetahSlope-v0")` gives the single env (horizon 200 through
`TimeLimit`); `gymnasium.make_vec(id, num_envs=n)` gives `BatchedMujocoEnv` (same-step
autoreset, see `envs.mujoco.batched`); pass `vectorization_mode="sync"` for a `SyncVectorEnv`
instead.
"""

from __future__ import annotations

import gymnasium

HORIZON = 200

ENV_IDS: dict[str, str] = {
    "metarl/HalfCheetahVel-v0": "HalfCheetahVelEnv",
    "metarl/HalfCheetahDir-v0": "HalfCheetahDirEnv",
    "metarl/AntDir-v0": "AntDirEnv",
    "metarl/AntGoal-v0": "AntGoalEnv",
    "metarl/HalfCheetahSlope-v0": "HalfCheetahSlopeEnv",
    "metarl/AntSlope-v0": "AntSlopeEnv",
    "metarl/HalfCheetahUphill-v0": "HalfCheetahUphillEnv",
    "metarl/AntUphill-v0": "AntUphillEnv",
    "metarl/HalfCheetahTerrain-v0": "HalfCheetahTerrainEnv",
    "metarl/HalfCheetahTerrainPhysics-v0": "HalfCheetahTerrainPhysicsEnv",
    "metarl/HalfCheetahTerrainPace-v0": "HalfCheetahTerrainPaceEnv",
}


def _vector(env_id: str):  # noqa: ANN202 - a gymnasium VectorEnv factory
    def make(num_envs: int, **kwargs: object) -> object:
        from envs.mujoco.batched import BatchedMujocoEnv

        return BatchedMujocoEnv(env_id, num_envs, **kwargs)  # type: ignore[arg-type]

    return make


def register_mujoco_envs() -> None:
    """Register every MuJoCo family with Gymnasium (idempotent; imports no MuJoCo)."""
    for env_id, cls_name in ENV_IDS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point=f"envs.mujoco.locomotion:{cls_name}",
            vector_entry_point=_vector(env_id),
            max_episode_steps=HORIZON,
        )
