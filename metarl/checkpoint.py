"""Atomic checkpoints: write a temporary file, fsync, then rename over the old one.

A run killed at any moment leaves either the previous checkpoint or the new one, never a
truncated file. Checkpoints hold only tensors and plain containers, so they load with
`torch.load(..., weights_only=True)`.

Format. A checkpoint says its `format`. Format 2 (this version): every learner's state holds
`model`, `optimizer` and `generators` (`{"train", "eval"}`); the config's learner sections use
`conv_channels` / `hidden_sizes`. Format 1 (no `format` key; RL² and MAML-RL wrote `policy`,
MAML-RL `generator` / `eval_generator`) is migrated on load, with its config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from metarl.config import migrate_config
from metarl.errors import DataError

FORMAT = 2


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    state = {"format": FORMAT, **state}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file gets the same clear message
        raise DataError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); "
            f"delete it to start the run afresh"
        ) from None
    return migrate_checkpoint(state, path)


def migrate_checkpoint(state: Any, path: Path) -> dict[str, Any]:
    """A loaded checkpoint in the current format (format 1 is converted; see the module)."""
    if not isinstance(state, dict) or not isinstance(state.get("learner"), dict):
        raise DataError(f"checkpoint {path} is not a metarl checkpoint; delete it or its run dir")
    fmt = state.get("format", 1)
    if fmt == FORMAT:
        return state
    if fmt != 1:
        raise DataError(
            f"checkpoint {path} has format {fmt}, newer than this metarl reads ({FORMAT}); "
            "upgrade metarl to resume or evaluate it"
        )
    learner = dict(state["learner"])
    if "policy" in learner:
        learner["model"] = learner.pop("policy")
    if "generator" in learner:
        learner["generators"] = {
            "train": learner.pop("generator"),
            "eval": learner.pop("eval_generator"),
        }
    config = migrate_config(state["config"]) if "config" in state else None
    return {**state, "format": FORMAT, "learner": learner, "config": config}
