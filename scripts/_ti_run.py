"""Shared by the task-inference evaluation scripts: load a trained run and its benchmark draw of
held-out tasks, or stop with the CLI's one-line usage error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import torch

from metarl.errors import UsageError
from metarl.seeding import make_generator
from metarl.trainer import load_run


def usage_error(message: str) -> NoReturn:
    """One line on stderr and exit code 2, as the CLI's usage errors."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load_task_inference(run_dir: Path, num_tasks: int, threads: int) -> tuple[Any, Any]:
    """(the run, `num_tasks` held-out tasks of `scripts/bench_metarl.py`'s draw: the `test`
    split from the `bench/test` generator of the run's seed), with `threads` torch threads."""
    torch.set_num_threads(threads)
    try:
        run = load_run(run_dir)
    except UsageError as err:
        usage_error(str(err))
    learner: Any = run.learner
    if not hasattr(learner.cfg, "eval_deterministic") or not hasattr(
        learner, "within_episode_curve"
    ):
        usage_error(f"{run_dir} is not a task_inference run")
    gen = make_generator(run.cfg.seed, "bench/test", run.device)
    return run, run.distribution.sample("test", num_tasks, gen)
