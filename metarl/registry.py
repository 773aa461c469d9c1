"""Component registry: `kind` names in a config -> (config dataclass, builder).

The table names modules lazily so importing metarl stays cheap and MuJoCo is only imported
when a MuJoCo task is asked for. A distribution builder is `build(cfg, device)`; a learner
builder is `build(cfg, distribution, device, seed)`.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from metarl.config import RunConfig, from_dict
from metarl.errors import UsageError

# kind -> "module:ConfigClass:build_function"
DISTRIBUTIONS: dict[str, str] = {
    "omniglot": "metarl.fewshot.tasks:OmniglotTaskConfig:build_omniglot",
    "image_folder": "metarl.fewshot.tasks:ImageFolderTaskConfig:build_image_folder",
    "sinusoid": "metarl.fewshot.sinusoid:SinusoidConfig:build_sinusoid",
    "optimizee": "metarl.learned_optimizer:OptimizeeConfig:build_optimizee",
    "bandit": "envs.tensor.bandit:BanditConfig:build_bandit",
    "tabular_mdp": "envs.tensor.tabular_mdp:TabularMDPConfig:build_tabular_mdp",
    "navigation2d": "envs.tensor.navigation:Navigation2DConfig:build_navigation2d",
    "gridworld": "envs.tensor.gridworld:GridGameConfig:build_gridworld",
    "cartpole": "envs.tensor.cartpole:CartPoleConfig:build_cartpole",
    "pendulum": "envs.tensor.pendulum:PendulumConfig:build_pendulum",
    "half_cheetah_vel": "envs.mujoco.tasks:HalfCheetahVelConfig:build_half_cheetah_vel",
    "half_cheetah_dir": "envs.mujoco.tasks:HalfCheetahDirConfig:build_half_cheetah_dir",
    "ant_dir": "envs.mujoco.tasks:AntDirConfig:build_ant_dir",
    "ant_goal": "envs.mujoco.tasks:AntGoalConfig:build_ant_goal",
    "slope": "envs.mujoco.tasks:SlopeConfig:build_slope",
    "terrain": "envs.mujoco.tasks:TerrainConfig:build_terrain",
}

LEARNERS: dict[str, str] = {
    "maml": "metarl.fewshot.maml:MAMLConfig:build_maml",
    "protonet": "metarl.fewshot.protonet:ProtoNetConfig:build_protonet",
    "mann": "metarl.fewshot.mann:MANNConfig:build_mann",
    "reptile": "metarl.fewshot.reptile:ReptileConfig:build_reptile",
    "lstm_optimizer": "metarl.learned_optimizer:LSTMOptimizerConfig:build_lstm_optimizer",
    "rl2": "agents.rl2:RL2Config:build_rl2",
    "maml_rl": "agents.maml_rl:MAMLRLConfig:build_maml_rl",
}


def _resolve(table: dict[str, str], kind: Any, what: str) -> tuple[type, Any]:
    if kind not in table:
        raise UsageError(
            f"{what}.kind {kind!r} is not known; choose one of {', '.join(sorted(table))}"
        )
    module, cls_name, fn_name = table[kind].split(":")
    mod = importlib.import_module(module)
    return getattr(mod, cls_name), getattr(mod, fn_name)


def _section(data: dict[str, Any], table: dict[str, str], what: str) -> tuple[Any, Any]:
    data = dict(data)
    if "kind" not in data:
        raise UsageError(f"{what}.kind is missing; choose one of {', '.join(sorted(table))}")
    cls, build = _resolve(table, data.pop("kind"), what)
    return from_dict(cls, data, what), build


def validate(cfg: RunConfig) -> None:
    """Validate the task and learner sections against their components' dataclasses."""
    _section(cfg.task, DISTRIBUTIONS, "task")
    _section(cfg.learner, LEARNERS, "learner")


def build_distribution(cfg: RunConfig, device: torch.device) -> Any:
    section, build = _section(cfg.task, DISTRIBUTIONS, "task")
    return build(section, device)


def build_learner(cfg: RunConfig, distribution: Any, device: torch.device) -> Any:
    section, build = _section(cfg.learner, LEARNERS, "learner")
    return build(section, distribution, device, cfg.seed)
