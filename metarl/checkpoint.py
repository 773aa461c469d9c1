"""Atomic files: write a temporary file, fsync, then rename over the old one.

A run killed at any moment leaves either the previous file or the new one, never a truncated
file, and a failed write (a full disk, a read-only folder) leaves no temporary file behind.
Checkpoints, `results.json`, `config.yaml` and figures are all written this way. Checkpoints
hold only tensors and plain containers, so they load with `torch.load(..., weights_only=True)`,
and they are checked against the run they are loaded into before any tensor is copied.

Format. A checkpoint says its `format`. Format 2 (this version): every learner's state holds
`model`, `optimizer` and `generators` (`{"train", "eval"}`); the config's learner sections use
`conv_channels` / `hidden_sizes`. Format 1 (no `format` key; RL² and MAML-RL wrote `policy`,
MAML-RL `generator` / `eval_generator`) is migrated on load, with its config.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from metarl.config import migrate_config
from metarl.errors import DataError

FORMAT = 2


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically. A failure raises OSError and leaves `path` as it
    was and no temporary file (the temporary name is unique, so two writers never share it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Serialise `state` in memory, then write it atomically. A full disk or an unwritable
    folder raises DataError naming the file; the previous checkpoint stays."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        kept = "the previous checkpoint is intact" if path.exists() else "no checkpoint was kept"
        raise DataError(
            f"could not write checkpoint {path} ({exc.strerror or exc}); {kept}; free disk "
            f"space or make the folder writable, then `metarl resume {path.parent.parent}`"
        ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file gets the same clear message
        raise DataError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); "
            f"delete it to start the run afresh"
        ) from None
    if not isinstance(state, dict):
        raise DataError(
            f"checkpoint {path} holds a {type(state).__name__}, not a metarl checkpoint; "
            f"delete it to start the run afresh"
        )
    return migrate_checkpoint(state, path)


def migrate_checkpoint(state: Any, path: Path) -> dict[str, Any]:
    """A loaded checkpoint in the current format (format 1 is converted; see the module)."""
    fmt = state.get("format", 1)
    if fmt == FORMAT or not isinstance(state.get("learner"), dict):
        return state  # not ours to fix: the run's shape check names what is wrong
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


def non_finite_entries(state: Any, prefix: str = "") -> Iterator[str]:
    """Names (dotted paths) of the floating-point tensors in a nested state that hold NaN or
    infinity: model parameters, optimiser moments, running statistics."""
    if isinstance(state, torch.Tensor):
        if (state.is_floating_point() or state.is_complex()) and not bool(
            torch.isfinite(state).all()
        ):
            yield prefix
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from non_finite_entries(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from non_finite_entries(value, f"{prefix}.{i}" if prefix else str(i))


def first_mismatch(expected: Any, got: Any, prefix: str = "") -> str | None:
    """The first difference in names or tensor shapes between a state built from the config
    (`expected`) and a loaded one, as a phrase; None when they match. Lists (e.g. an optimiser's
    param groups) and values other than tensors and mappings are compared by type only."""
    where = prefix or "the checkpoint"
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{where} is a {type(got).__name__}, expected a tensor"
        if expected.shape != got.shape:
            return f"{where} has shape {list(got.shape)}, the config builds {list(expected.shape)}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} is a {type(got).__name__}, expected a mapping"
        if not expected:  # filled as training goes (an optimiser's state): nothing to compare
            return None
        missing = [k for k in expected if k not in got]
        if missing:
            return f"the checkpoint lacks {'.'.join(filter(None, [prefix, str(missing[0])]))}"
        extra = [k for k in got if k not in expected]
        if extra:
            name = ".".join(filter(None, [prefix, str(extra[0])]))
            return f"the checkpoint has {name}, which the config does not build"
        for key, value in expected.items():
            found = first_mismatch(value, got[key], f"{prefix}.{key}" if prefix else str(key))
            if found:
                return found
        return None
    if isinstance(expected, (list, tuple)) and not isinstance(got, (list, tuple)):
        return f"{where} is a {type(got).__name__}, expected a list"
    return None
