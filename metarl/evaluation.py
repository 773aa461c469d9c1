"""Adaptation curves: the metric after each budget 0..K on held-out tasks, with 95% CIs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from metarl import distributed as dist
from metarl.contracts import TaskDistribution
from metarl.precision import autocast
from metarl.seeding import make_generator


def split_columns(fn: Callable[[Any], torch.Tensor], tasks: Any) -> torch.Tensor:
    """`fn(tasks) -> [R, T]` (one column per task), computed under torchrun on this rank's
    share of the tasks and gathered, so every rank gets the columns one process computes.
    A batch with fewer tasks than ranks (or tasks that cannot be split) is computed whole."""
    world = dist.get_world()
    n = len(tasks)
    if world.size == 1 or n < world.size or not hasattr(tasks, "select"):
        return fn(tasks)
    with dist.meta_batch(n) as rows:
        local = fn(tasks.select(rows)).detach()
    return dist.gather_rows(local, n, dim=-1)


def summarize(values: torch.Tensor) -> dict[str, Any]:
    """Mean and 95% confidence half-width per budget of per-task metrics `[B + 1, T]`.

    The interval is the normal approximation 1.96 * std / sqrt(T), the convention of the
    few-shot literature (e.g. 1000 test episodes).
    """
    values = values.double()
    num = values.shape[1]
    std = values.std(dim=1, unbiased=True) if num > 1 else torch.zeros(values.shape[0])
    return {
        "budgets": list(range(values.shape[0])),
        "mean": values.mean(dim=1).tolist(),
        "ci95": (1.96 * std / math.sqrt(num)).tolist(),
        "num_tasks": num,
    }


def adaptation_curve(
    learner: Any,
    distribution: TaskDistribution[Any],
    split: str,
    num_tasks: int,
    max_budget: int,
    batch_tasks: int,
    seed: int,
    device: torch.device,
    progress: bool | None = False,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Evaluate `learner` on `num_tasks` tasks of `split`, drawn in batches of `batch_tasks`.

    The tasks come from a generator seeded only by the run seed and the split, so every
    evaluation of a run (and of a resumed run) sees the same held-out tasks and never
    consumes the training generators. `progress`: a bar over the tasks (None: on a terminal).
    `precision`: `train.precision`; bf16 runs the learner's curve under autocast
    (`metarl.precision`). Under torchrun each batch is split across the ranks and gathered
    (`split_columns`).
    """
    if num_tasks < 1 or batch_tasks < 1:
        raise ValueError(f"num_tasks={num_tasks} and batch_tasks={batch_tasks} must be >= 1")
    gen = make_generator(seed, f"eval/{split}", device)
    cols = []
    done = 0
    bar = tqdm(
        total=num_tasks,
        desc=f"eval {split}",
        unit="task",
        leave=False,
        dynamic_ncols=True,
        disable=(not progress) if progress is not None else None,
    )
    with bar:
        while done < num_tasks:
            n = min(batch_tasks, num_tasks - done)
            tasks = distribution.sample(split, n, gen)
            with autocast(precision, device):
                col = split_columns(lambda ts: learner.adaptation_curve(ts, max_budget), tasks)
            cols.append(col.detach().cpu())
            done += n
            bar.update(n)
    rows = min(c.shape[0] for c in cols)
    curve = summarize(torch.cat([c[:rows] for c in cols], dim=1))
    curve.update(split=split, metric=learner.metric, budget_name=learner.budget_name)
    return curve


def within_episode_curve(
    learner: Any,
    distribution: TaskDistribution[Any],
    split: str,
    num_tasks: int,
    batch_tasks: int,
    seed: int,
    device: torch.device,
) -> dict[str, Any]:
    """`learner.within_episode_curve(tasks) -> [W, T]` (return per window of steps of episode
    1, for learners that adapt inside it) on the same held-out tasks as `adaptation_curve`."""
    gen = make_generator(seed, f"eval/{split}", device)
    cols, done = [], 0
    while done < num_tasks:
        n = min(batch_tasks, num_tasks - done)
        tasks = distribution.sample(split, n, gen)
        cols.append(split_columns(learner.within_episode_curve, tasks).cpu())
        done += n
    curve = summarize(torch.cat(cols, dim=1))
    window = getattr(getattr(learner, "cfg", None), "window", 1)
    curve.update(split=split, metric=learner.metric, budget_name="window", window_steps=window)
    return curve


def format_curve(curve: dict[str, Any]) -> str:
    """The curve as a plain-text table."""
    name, metric = curve["budget_name"], curve["metric"]
    lines = [f"{name:>6} | {metric:>10} | 95% CI", "-" * 32]
    for b, m, c in zip(curve["budgets"], curve["mean"], curve["ci95"], strict=True):
        lines.append(f"{b:>6} | {m:>10.4f} | +-{c:.4f}")
    return "\n".join(lines)
