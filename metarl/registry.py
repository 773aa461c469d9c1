"""Component registry: `kind` names in a config -> (config dataclass, builder).

The table names modules lazily so importing metarl stays cheap and MuJoCo is only imported
when a MuJoCo task is asked for. An entry is either

- `"module:ConfigClass:build_function"`: `build(cfg, device)` for a task distribution,
  `build(cfg, distribution, device, seed)` for a learner; or
- `"module:FamilyClass"` (environment families): the class's `config_type` is the config and
  `FamilyClass.distribution(cfg, device=device)` the builder, so a family file needs no
  builder function of its own.

A new component is one file plus one line here, or no line at all: `register_distribution`
and `register_learner` add a kind at run time (a plugin, or a test's toy family). This module
also loads a whole run config (`load_config`): validating one needs the components.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch

from metarl.config import (
    RunConfig,
    apply_overrides,
    config_path,
    from_dict,
    load_yaml,
    renamed_key_hint,
)
from metarl.contracts import Learner, TaskDistribution
from metarl.errors import UsageError
from metarl.precision import check_precision

# kind -> "module:ConfigClass:build_function" or "module:FamilyClass"
DISTRIBUTIONS: dict[str, Any] = {
    "omniglot": "metarl.fewshot.tasks:OmniglotTaskConfig:build_omniglot",
    "image_folder": "metarl.fewshot.tasks:ImageFolderTaskConfig:build_image_folder",
    "sinusoid": "metarl.fewshot.sinusoid:SinusoidConfig:build_sinusoid",
    "optimizee": "metarl.learned_optimizer:OptimizeeConfig:build_optimizee",
    "bandit": "envs.tensor.bandit:BanditVectorEnv",
    "tabular_mdp": "envs.tensor.tabular_mdp:TabularMDPVectorEnv",
    "navigation2d": "envs.tensor.navigation:Navigation2DVectorEnv",
    "gridworld": "envs.tensor.gridworld:GridGameVectorEnv",
    "cartpole": "envs.tensor.cartpole:CartPoleVectorEnv",
    "pendulum": "envs.tensor.pendulum:PendulumVectorEnv",
    "half_cheetah_vel": "envs.mujoco.families:HalfCheetahVelConfig:HalfCheetahVelDistribution",
    "half_cheetah_dir": "envs.mujoco.families:HalfCheetahDirConfig:HalfCheetahDirDistribution",
    "ant_dir": "envs.mujoco.families:AntDirConfig:AntDirDistribution",
    "ant_goal": "envs.mujoco.families:AntGoalConfig:AntGoalDistribution",
    "slope": "envs.mujoco.families:SlopeConfig:SlopeDistribution",
    "terrain": "envs.mujoco.families:TerrainConfig:TerrainDistribution",
}

LEARNERS: dict[str, Any] = {
    "maml": "metarl.fewshot.maml:MAMLConfig:build_maml",
    "protonet": "metarl.fewshot.protonet:ProtoNetConfig:build_protonet",
    "matching": "metarl.fewshot.matching:MatchingConfig:build_matching",
    "relation": "metarl.fewshot.relation:RelationConfig:build_relation",
    "siamese": "metarl.fewshot.siamese:SiameseConfig:build_siamese",
    "mann": "metarl.fewshot.mann:MANNConfig:build_mann",
    "reptile": "metarl.fewshot.reptile:ReptileConfig:build_reptile",
    "lstm_optimizer": "metarl.learned_optimizer:LSTMOptimizerConfig:build_lstm_optimizer",
    "rl2": "agents.rl2:RL2Config:build_rl2",
    "maml_rl": "agents.maml_rl:MAMLRLConfig:build_maml_rl",
    "task_inference": "agents.task_inference:TaskInferenceConfig:build_task_inference",
}


def register_distribution(kind: str, entry: Any) -> None:
    """Add a task kind: an entry string as in `DISTRIBUTIONS`, a family class (with
    `config_type` and `distribution`), or a `(ConfigClass, build)` pair."""
    DISTRIBUTIONS[kind] = entry


def register_learner(kind: str, config_cls: type, build: Any) -> None:
    """Add a learner kind: its config dataclass and `build(cfg, distribution, device, seed)`."""
    LEARNERS[kind] = (config_cls, build)


def _resolve(table: dict[str, Any], kind: Any, what: str) -> tuple[type, Any]:
    if kind not in table:
        raise UsageError(
            f"{what}.kind {kind!r} is not known; choose one of {', '.join(sorted(table))}"
        )
    entry = table[kind]
    if isinstance(entry, tuple):
        return entry
    if isinstance(entry, type):
        return getattr(entry, "config_type"), _family_builder(entry)  # noqa: B009
    module, *names = entry.split(":")
    mod = importlib.import_module(module)
    if len(names) == 1:
        family = getattr(mod, names[0])
        return family.config_type, _family_builder(family)
    return getattr(mod, names[0]), getattr(mod, names[1])


def _family_builder(family: Any) -> Any:
    return lambda cfg, device: family.distribution(cfg, device=device)


def _section(data: dict[str, Any], table: dict[str, Any], what: str) -> tuple[Any, Any]:
    data = dict(data)
    if "kind" not in data:
        raise UsageError(f"{what}.kind is missing; choose one of {', '.join(sorted(table))}")
    kind = data.pop("kind")
    cls, build = _resolve(table, kind, what)
    for key in data:
        hint = renamed_key_hint(kind, key) if what == "learner" else ""
        if hint and key not in {f.name for f in dataclasses.fields(cls)}:
            raise UsageError(f"unknown config key {what}.{key}{hint}")
    return from_dict(cls, data, what), build


def _normalized(data: dict[str, Any], section: Any) -> dict[str, Any]:
    """`data` with each given value replaced by its parsed form (`'1e-3'` -> 0.001), so the
    config that is written and compared on resume holds numbers, not the strings typed."""
    return {k: (v if k == "kind" else getattr(section, k)) for k, v in data.items()}


def validate(cfg: RunConfig) -> None:
    """Validate the task and learner sections against their components' dataclasses (types
    and declared ranges), store their parsed values back into `cfg`, and run the learner
    config's `check_run(cfg)` where it has one (checks that need the whole run config)."""
    cfg.task = _normalized(cfg.task, _section(cfg.task, DISTRIBUTIONS, "task")[0])
    learner = _section(cfg.learner, LEARNERS, "learner")[0]
    cfg.learner = _normalized(cfg.learner, learner)
    check_precision(cfg.train.precision, cfg.learner.get("kind"))
    check_run = getattr(learner, "check_run", None)
    if callable(check_run):
        check_run(cfg)


def build_distribution(cfg: RunConfig, device: torch.device) -> TaskDistribution[Any]:
    section, build = _section(cfg.task, DISTRIBUTIONS, "task")
    return build(section, device)


def build_learner(
    cfg: RunConfig, distribution: TaskDistribution[Any], device: torch.device
) -> Learner[Any]:
    section, build = _section(cfg.learner, LEARNERS, "learner")
    return build(section, distribution, device, cfg.seed)


def load_config(name_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    """Load, override and validate a run config, including its task and learner sections."""
    data = apply_overrides(load_yaml(config_path(name_or_path)), overrides or [])
    cfg = from_dict(RunConfig, data, "")
    validate(cfg)
    return cfg
