"""Input checks every environment applies at its boundary, tensor and MuJoCo alike.

- Seeds: `None`, or an integer >= 0 (a Python int or a numpy integer; not a bool).
- Actions: real numbers for `Box` spaces (integers are converted, complex and bool are
  rejected), integers for `Discrete` spaces (floats, complex and bool are rejected).
Each failure is one `metarl.errors.UsageError` line naming the value and what is allowed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from metarl.errors import UsageError


def check_seed(seed: Any) -> int | None:
    """`seed` as a Python int (or None); a one-line `UsageError` for anything else."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed: must be an integer >= 0 or None, got {seed!r}")
    return int(seed)


def _kind(actions: Any) -> str:
    """numpy's dtype kind of `actions` ('b' bool, 'i'/'u' integer, 'f' float, 'c' complex, ...)."""
    if isinstance(actions, torch.Tensor):
        if actions.dtype == torch.bool:
            return "b"
        if actions.dtype.is_complex:
            return "c"
        return "f" if actions.dtype.is_floating_point else "i"
    return np.asarray(actions).dtype.kind


def check_action_dtype(actions: Any, discrete: bool, n: int | None = None) -> None:
    """Reject action dtypes the space cannot take (see the module docstring)."""
    kind = _kind(actions)
    if discrete and kind not in "iu":
        raise UsageError(f"actions: expected integers in [0, {(n or 0) - 1}], got dtype {kind!r}")
    if not discrete and kind not in "iuf":
        what = {"b": "bool", "c": "complex"}.get(kind, repr(kind))
        raise UsageError(f"actions: expected real numbers, got dtype {what}")
