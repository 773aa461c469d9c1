"""Errors that reach the user as one clear line.

`UsageError` is bad input (config, paths, flags): the CLI prints its message and exits with
code 2. `NonFiniteError` stops training on a NaN/inf loss; the last good checkpoint stays.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user. The message says what was wrong and how to fix it."""


class DataError(UsageError):
    """Missing, corrupt or mis-shaped data. The message names the file and how to get it."""


class NonFiniteError(RuntimeError):
    """A loss or statistic became NaN or infinite; training stops before checkpointing it."""
