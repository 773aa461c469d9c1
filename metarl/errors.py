"""Errors that reach the user as one clear line.

`UsageError` is bad input (config, paths, flags): the CLI prints its message and exits with
code 2. `NonFiniteError` stops training on a NaN/inf loss, parameter, optimiser statistic or
held-out metric (exit code 1); every checkpoint written holds finite numbers only.
`RunInterrupted` is Ctrl-C during a run (exit code 130): its message says what was kept.
"""

from __future__ import annotations

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
    and what to change) instead of a constructor's traceback."""
    # Under torch.func transforms (vmap, grad) a value cannot steer Python control flow; the
    # same forward outside them (rollouts, the loop form) is checked.
    if torch._C._are_functorch_transforms_active():
        return tensor
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteError(f"non-finite {what}")
    return tensor
