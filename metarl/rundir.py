"""A run directory is owned by one process, and a run that never started leaves nothing.

`owned_run_dir` creates the folder, takes an exclusive `fcntl.flock` on `RUN_DIR/.lock` (the
holder's PID is written into it, so a second process is told who holds it), and releases it on
exit, also when the process dies: the kernel drops the lock with the file descriptor. If the
block fails before a checkpoint exists, what it created goes again (the whole folder when it
made the folder), so the corrected command starts clean.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metarl.errors import DataError, UsageError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of an existing `run_dir` for the block."""
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UsageError(
                f"run directory {run_dir} is in use by process {holder} (a metarl train, resume "
                f"or eval); wait for it to end, or choose another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def owned_run_dir(run_dir: Path, checkpoint: Path) -> Iterator[None]:
    """Create and lock `run_dir` for the block; on an exception while `checkpoint` does not
    exist, remove what the block created (the lock holder only, so a refused second process
    never removes the first one's files)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} is a file; choose a folder with --run-dir")
    made = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    before = set(run_dir.iterdir())
    with locked(run_dir):
        try:
            yield
        except BaseException:
            if not checkpoint.exists():
                _remove_new(run_dir, before, made)
            raise


def _remove_new(run_dir: Path, before: set[Path], made: bool) -> None:
    if made:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for path in set(run_dir.iterdir()) - before:
        if path.name == LOCK_NAME:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def read_results(path: Path, need_curve: bool = False) -> dict[str, Any]:
    """`results.json` as a dict; DataError (one line, what to do) when it is empty, cut short,
    not a mapping or, with `need_curve`, lacks the curve."""
    run_dir = path.parent
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = "is empty" if not path.stat().st_size else f"is not valid JSON ({exc})"
        raise DataError(
            f"{path} {reason}; delete it, then `metarl eval {run_dir}` writes it again"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a results mapping; delete it, then `metarl eval {run_dir}`")
    curve = data.get("curve")
    ok = isinstance(curve, dict) and {"budgets", "mean", "ci95", "split"} <= set(curve)
    if need_curve and not ok:
        raise DataError(
            f"{path} holds no adaptation curve; `metarl eval {run_dir}` writes it again"
        )
    return data
