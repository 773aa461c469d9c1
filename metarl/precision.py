"""Mixed precision for the few-shot learners: `train.precision: fp32 | bf16`.

`bf16` runs every learner call the trainer makes (`meta_step`, and the adaptation curves of
evaluation) under `torch.autocast(device_type, dtype=torch.bfloat16)`: matrix products and
convolutions compute in bfloat16, reductions, losses and the parameters (and the optimiser
state) stay in float32. bfloat16 has float32's exponent range, so no loss scaling is needed.
This is the one place it happens; no learner carries its own autocast.

Only the few-shot learners take it (`AUTOCAST_LEARNERS`); the RL learners (rollouts, PPO,
TRPO's conjugate gradient and line search) and the learned optimiser train in float32, and a
config asking for bf16 there is refused once, when it is loaded (`check_precision`).
Measured on CPU against fp32 (tests/test_precision.py): see the README's "GPU" section.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from metarl.errors import UsageError

AUTOCAST_LEARNERS = ("maml", "protonet", "matching", "relation", "siamese", "mann", "reptile")
"""Learner kinds that run under bf16 autocast (every few-shot classifier and regressor)."""


def check_precision(precision: str, learner_kind: Any) -> None:
    """One-line `UsageError` when `precision` is bf16 for a learner that does not take it."""
    if precision == "bf16" and learner_kind not in AUTOCAST_LEARNERS:
        raise UsageError(
            f"train.precision=bf16 is not supported by learner.kind {learner_kind!r} (it trains "
            f"in fp32); use train.precision=fp32, or one of: {', '.join(AUTOCAST_LEARNERS)}"
        )


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The context every learner call of the trainer runs in: bf16 autocast on `device`'s
    type for `precision == "bf16"`, nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
