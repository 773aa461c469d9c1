"""Atomic checkpoints: write a temporary file, fsync, then rename over the old one.

A run killed at any moment leaves either the previous checkpoint or the new one, never a
truncated file. Checkpoints hold only tensors and plain containers, so they load with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from metarl.errors import DataError


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file gets the same clear message
        raise DataError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); "
            f"delete it to start the run afresh"
        ) from None
