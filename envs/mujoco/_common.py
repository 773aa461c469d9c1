"""Process-wide MuJoCo setup and the input checks shared by the single and batched envs."""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

import numpy as np
import torch

from envs.checks import check_action_dtype

# Importing `metarl` (here for its errors) selects headless EGL rendering before `mujoco` is
# imported, unless the user chose a GL backend or has a display (`metarl/__init__.py`).
from envs.mujoco.tasks import MujocoTask
from metarl.errors import UsageError

import mujoco  # isort: skip  (after metarl: MuJoCo reads MUJOCO_GL when first imported)

log = logging.getLogger("envs.mujoco")


def _route_warning(message: str) -> None:
    # MuJoCo's default handler prints and appends to MUJOCO_LOG.TXT in the cwd; we log instead.
    # The `settotalmass` deprecation (Gymnasium's half_cheetah.xml) is noise for users: debug.
    level = logging.DEBUG if "deprecated" in message else logging.WARNING
    log.log(level, "MuJoCo: %s", message)


mujoco.set_mju_user_warning(_route_warning)


@functools.lru_cache(maxsize=16)
def _zeros(n: int) -> np.ndarray:
    z = np.zeros(n)
    z.flags.writeable = False
    return z


def check_actions(
    actions: Any, low: np.ndarray, high: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Validate and clip actions; returns a new float64 array of `shape` (`[nu]` or `[B, nu]`).

    `actions`: a numpy array, a torch tensor (any device) or a nested list. Contract: wrong
    shapes and NaN/inf are rejected with `UsageError`; finite actions outside the Box are
    clipped to it (as MuJoCo's `ctrlrange` would), and the control cost is paid on the
    clipped action.
    """
    if isinstance(actions, torch.Tensor):
        actions = actions.detach().cpu().numpy()  # then float64 below (exact from float32)
    if not (type(actions) is np.ndarray and actions.dtype.kind == "f"):  # not the fast path
        check_action_dtype(actions, discrete=False)
    if type(actions) is np.ndarray and actions.shape == shape:
        a = actions.astype(np.float64)  # fast path (every step): a fresh float64 copy
    else:
        try:
            a = np.array(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError(f"action must be numeric of shape {list(shape)}") from None
        if a.shape != shape:
            raise UsageError(f"action must have shape {list(shape)}; got {list(a.shape)}")
    # a . 0 is 0 for finite a and NaN as soon as one entry is NaN or +-inf (one BLAS call).
    if not math.isfinite(np.dot(a.reshape(-1), _zeros(a.size))):
        raise UsageError(
            f"action must be finite (no NaN/inf); valid range [{low.min():g}, {high.max():g}]"
        )
    np.maximum(a, low, out=a)  # == np.clip(a, low, high) for finite a, without its overhead
    np.minimum(a, high, out=a)
    return a


def task_option(
    options: dict[str, Any] | None,
    task_cls: type[MujocoTask],
    allowed: tuple[str, ...] = ("tasks",),
) -> MujocoTask | None:
    """The validated task batch of `options["tasks"]`, or None; unknown keys are rejected."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise UsageError(f"reset options must be a dict with keys {', '.join(allowed)}")
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise UsageError(
            f"unknown reset option {unknown[0]!r}; valid options: {', '.join(allowed)}"
        )
    if options.get("tasks") is None:
        return None
    return task_cls.coerce(options["tasks"])
