"""Errors that reach the user as one clear line.

`UsageError` is bad input (config, paths, flags): the CLI prints its message and exits with
code 2. `NonFiniteError` stops training on a NaN/inf loss, parameter, optimiser statistic or
held-out metric (exit code 1); every checkpoint written holds finite numbers only.
`RunInterrupted` is Ctrl-C during a run (exit code 130): its message says what was kept.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch


class UsageError(ValueError):
    """Bad input from the user. The message says what was wrong and how to fix it."""


class EveryRankError(UsageError):
    """A UsageError every torchrun rank raises alike (the same config on each): rank 0 alone
    prints it."""


class DataError(UsageError):
    """Missing, corrupt or mis-shaped data. The message names the file and how to get it."""


class NonFiniteError(RuntimeError):
    """A loss or statistic became NaN or infinite; training stops before checkpointing it."""


class RankLost(RuntimeError):
    """Under torchrun, a collective failed: another rank died, was killed or stopped answering
    within the process-group timeout (exit code 1; the last checkpoint is intact)."""


class StoppedByRank0(Exception):
    """Rank 0 could not start the run and printed why; another rank stops quietly with its
    exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"rank 0 stopped the run (exit code {code})")
        self.code = code


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message names the checkpoint that was kept (or that none was)."""


def check_finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """`tensor` unchanged if it holds only finite numbers, else NonFiniteError naming `what`.

    Learners call it on the inputs of distribution constructors (policy logits, means), so a
    diverged update ends in the engine's one-line stop (which adds the iteration, what was kept
    and what to change) instead of a constructor's traceback.

    Inside `deferred_finite_checks()` it does not wait for the device: it folds "all finite"
    into a flag on the device and returns the tensor with non-finite entries replaced by 0
    (the same tensor, bit for bit, when all are finite), so sampling from it cannot fail;
    the error is raised once, when the block ends."""
    # Under torch.func transforms (vmap, grad) a value cannot steer Python control flow; the
    # same forward outside them (rollouts, the loop form) is checked.
    if torch._C._are_functorch_transforms_active():
        return tensor
    pending = _PENDING.get()
    if pending is not None:
        ok = torch.isfinite(tensor)
        flag = ok.all()
        pending[what] = flag if what not in pending else pending[what].logical_and_(flag)
        return torch.where(ok, tensor, 0.0)
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteError(f"non-finite {what}")
    return tensor


_PENDING: contextvars.ContextVar[dict[str, torch.Tensor] | None] = contextvars.ContextVar(
    "metarl_pending_finite_checks", default=None
)


@contextlib.contextmanager
def deferred_finite_checks() -> Iterator[None]:
    """A block whose `check_finite` calls stay on the device (no host sync per call): one
    read of the gathered flags when the block ends raises the NonFiniteError the first
    failed check would have. Rollouts and the RL² update run in one (a step loop that never
    waits for the GPU); a block inside another joins it, so the outermost reads once."""
    if _PENDING.get() is not None:
        yield
        return
    pending: dict[str, torch.Tensor] = {}
    token = _PENDING.set(pending)
    try:
        yield
    finally:
        _PENDING.reset(token)
    if pending:
        flags = torch.stack(list(pending.values())).tolist()  # the block's one host sync
        bad = [what for what, ok in zip(pending, flags, strict=True) if not ok]
        if bad:
            raise NonFiniteError(f"non-finite {bad[0]}")
