"""Batched tensor task-distribution environments (see `envs.tensor.base` for the contract)."""

from envs.tensor.bandit import (
    BanditConfig,
    BanditDistribution,
    BanditEnv,
    BanditTask,
    BanditVectorEnv,
)
from envs.tensor.cartpole import (
    CartPoleConfig,
    CartPoleDistribution,
    CartPoleTask,
    CartPoleVariantEnv,
    CartPoleVectorEnv,
)
from envs.tensor.gridworld import (
    GridGameConfig,
    GridGameDistribution,
    GridGameEnv,
    GridGameVectorEnv,
    GridTask,
)
from envs.tensor.navigation import (
    Navigation2DConfig,
    Navigation2DDistribution,
    Navigation2DEnv,
    Navigation2DTask,
    Navigation2DVectorEnv,
)
from envs.tensor.pendulum import (
    PendulumConfig,
    PendulumDistribution,
    PendulumTask,
    PendulumVariantEnv,
    PendulumVectorEnv,
)
from envs.tensor.tabular_mdp import (
    TabularMDPConfig,
    TabularMDPDistribution,
    TabularMDPEnv,
    TabularMDPTask,
    TabularMDPVectorEnv,
)

FAMILIES = (
    BanditVectorEnv,
    TabularMDPVectorEnv,
    Navigation2DVectorEnv,
    GridGameVectorEnv,
    CartPoleVectorEnv,
    PendulumVectorEnv,
)
"""Every batched tensor family (for code and tests that go over all of them)."""

__all__ = [
    "FAMILIES",
    "BanditConfig", "BanditDistribution", "BanditEnv", "BanditTask", "BanditVectorEnv",
    "CartPoleConfig", "CartPoleDistribution", "CartPoleTask", "CartPoleVariantEnv", "CartPoleVectorEnv",
    "GridGameConfig", "GridGameDistribution", "GridGameEnv", "GridGameVectorEnv", "GridTask",
    "Navigation2DConfig", "Navigation2DDistribution", "Navigation2DEnv", "Navigation2DTask", "Navigation2DVectorEnv",
    "PendulumConfig", "PendulumDistribution", "PendulumTask", "PendulumVariantEnv", "PendulumVectorEnv",
    "TabularMDPConfig", "TabularMDPDistribution", "TabularMDPEnv", "TabularMDPTask", "TabularMDPVectorEnv",
]  # fmt: skip
