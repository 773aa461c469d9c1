"""Gymnasium registration of the batched tensor envs under the `metarl/` namespace.

`gymnasium.make("metarl/Bandit-v0")` gives the single-env view (numpy in/out);
`gymnasium.make_vec("metarl/Bandit-v0", num_envs=64, envs_per_task=8)` gives the batched env
(torch tensors) through its `vector_entry_point`. Keyword arguments go to the constructors.
"""

from __future__ import annotations

import gymnasium

# id -> module under envs.tensor, single-env class, batched class
TENSOR_ENVS: dict[str, tuple[str, str, str]] = {
    "metarl/Bandit-v0": ("bandit", "BanditEnv", "BanditVectorEnv"),
    "metarl/TabularMDP-v0": ("tabular_mdp", "TabularMDPEnv", "TabularMDPVectorEnv"),
    "metarl/Navigation2D-v0": ("navigation", "Navigation2DEnv", "Navigation2DVectorEnv"),
    "metarl/GridGame-v0": ("gridworld", "GridGameEnv", "GridGameVectorEnv"),
    "metarl/CartPoleVariant-v0": ("cartpole", "CartPoleVariantEnv", "CartPoleVectorEnv"),
    "metarl/PendulumVariant-v0": ("pendulum", "PendulumVariantEnv", "PendulumVectorEnv"),
}


def register_tensor_envs() -> None:
    """Register every id in `TENSOR_ENVS` (idempotent). Episodes end inside the envs, so no
    `TimeLimit` is added."""
    for env_id, (module, single, batched) in TENSOR_ENVS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point=f"envs.tensor.{module}:{single}",
            vector_entry_point=f"envs.tensor.{module}:{batched}",
        )
