"""The trainer: one loop for every learner and every task distribution.

    tasks   = distribution.sample("train", num_tasks, generator)
    metrics = learner.meta_step(tasks)
    every eval_interval:      curve = adaptation_curve(learner, held-out tasks, budgets 0..K)
    every checkpoint_interval: atomic checkpoint (learner, generator, iteration)

It owns devices, seeding, the progress bar, TensorBoard, the evaluation schedule, checkpoints
and resume, and never branches on domain or algorithm.

Under `torchrun` (see `metarl.distributed`) every rank draws the whole meta-batch, computes
its rows `shard(num_tasks)`, and the optimiser hooks of `attach_grad_sync` sum the gradients
so every rank steps alike; logged metrics are the means over the whole meta-batch. Rank 0
alone takes the run directory's lock and writes into it (config, TensorBoard, checkpoints,
results, figures); it reads the checkpoint on resume and sends it to the others.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from metarl import distributed as dist
from metarl import registry
from metarl.checkpoint import (
    atomic_write_bytes,
    atomic_write_text,
    first_mismatch,
    load_checkpoint,
    non_finite_entries,
    save_checkpoint,
)
from metarl.config import (
    RunConfig,
    apply_overrides,
    diff_configs,
    from_dict,
    load_yaml,
    migrate_config,
    to_dict,
)
from metarl.contracts import Learner, TaskDistribution
from metarl.errors import DataError, EveryRankError, NonFiniteError, RunInterrupted, UsageError
from metarl.evaluation import adaptation_curve, format_curve, within_episode_curve
from metarl.logger import BY_BUDGET, RunLogger, encode_gif, save_curve_png
from metarl.precision import autocast
from metarl.resources import check_fits, choose_threads
from metarl.rundir import owned_run_dir, read_results
from metarl.seeding import make_generator


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "device cuda was asked for but no CUDA GPU is visible; use device=cpu or auto"
        )
    return torch.device(name)


@dataclass
class Run:
    """Everything a run is made of, built from its config."""

    cfg: RunConfig
    run_dir: Path
    device: torch.device
    distribution: TaskDistribution[Any]
    learner: Learner[Any]
    generator: torch.Generator  # draws the training tasks
    iteration: int = 0
    saved_iteration: int | None = None  # iteration of the checkpoint on disk, if any
    progress: bool | None = False  # evaluation progress bars (None: on a terminal)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    def state(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "learner": self.learner.state_dict(),
            "generators": {"train_tasks": self.generator.get_state()},
            "config": to_dict(self.cfg),
        }

    def kept(self) -> str:
        """What a stopped run leaves, as a phrase with the real paths."""
        if self.saved_iteration is None:
            return "no checkpoint had been written yet, so nothing was kept"
        return (
            f"the last good checkpoint {self.checkpoint_path} (iteration {self.saved_iteration}) "
            f"is intact: `metarl resume {self.run_dir}`"
        )

    def save(self) -> None:
        """Write the checkpoint, refusing (NonFiniteError) if any parameter or optimiser
        statistic is NaN or infinite, so every checkpoint on disk holds finite numbers."""
        state = self.state()
        bad = list(non_finite_entries(state["learner"]))
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise NonFiniteError(
                f"non-finite learner.{bad[0]}{more} at iteration {self.iteration}; training "
                f"stopped before checkpointing it and {self.kept()}; lower learner.outer_lr "
                f"or learner.inner_lr and run again"
            )
        main = dist.get_world().is_main
        try:
            if main:
                save_checkpoint(state, self.checkpoint_path)
            self.saved_iteration = self.iteration
        except BaseException:  # e.g. Ctrl-C / SIGTERM just before or after the rename
            if main:
                self.saved_iteration = self._iteration_on_disk()
            raise

    def _iteration_on_disk(self) -> int | None:
        """The iteration of the checkpoint file as it is now (None: none, or unreadable)."""
        try:
            return int(load_checkpoint(self.checkpoint_path)["iteration"])
        except (OSError, DataError, KeyError, TypeError, ValueError):
            return None

    def restore(self, state: dict[str, Any] | None = None) -> None:
        """Load the checkpoint (or `state`, the checkpoint rank 0 read) after checking it
        against this run (names, shapes, types)."""
        path = self.checkpoint_path
        state = load_checkpoint(path) if state is None else state
        fix = (
            "train into a new --run-dir, or restore the config.yaml the checkpoint was trained with"
        )
        expected = {k: v for k, v in self.state().items() if k != "config"}
        loaded = {k: v for k, v in state.items() if k not in ("config", "format")}
        mismatch = first_mismatch(expected, loaded)
        if mismatch is None and not isinstance(state.get("iteration"), int):
            mismatch = "its iteration is not an integer"
        if mismatch is None and isinstance(state.get("config"), dict):
            mine = to_dict(self.cfg)
            trained = {k: state["config"].get(k) for k in ("seed", "learner")}
            diffs = diff_configs(trained, {k: mine[k] for k in trained})
            if diffs:
                mismatch = f"it was written by another run ({'; '.join(diffs)})"
        if mismatch:
            raise DataError(
                f"checkpoint {path} does not fit the run's config.yaml: {mismatch}; {fix}"
            )
        try:
            self.learner.load_state_dict(state["learner"])
            self.generator.set_state(state["generators"]["train_tasks"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"checkpoint {path} does not fit the run's config.yaml ({reason}); {fix}"
            ) from None
        self.iteration = self.saved_iteration = state["iteration"]

    def evaluate(self, split: str, num_tasks: int) -> dict[str, Any]:
        """The adaptation curve on `num_tasks` tasks of `split`; NonFiniteError when a budget's
        mean is NaN or infinite (adaptation diverged)."""
        e = self.cfg.eval
        curve = adaptation_curve(
            self.learner,
            self.distribution,
            split,
            num_tasks,
            e.max_budget,
            e.batch_tasks,
            self.cfg.seed,
            self.device,
            progress=self.progress,
            precision=self.cfg.train.precision,
        )
        bad = [
            b for b, m in zip(curve["budgets"], curve["mean"], strict=True) if not math.isfinite(m)
        ]
        if bad:
            span = f"{bad[0]}-{bad[-1]}" if bad == list(range(bad[0], bad[-1] + 1)) else bad
            kept = (
                "no checkpoint had been written yet"
                if self.saved_iteration is None
                else f"the checkpoint {self.checkpoint_path} (iteration {self.saved_iteration}) "
                "is kept"
            )
            raise NonFiniteError(
                f"non-finite held-out {curve['metric']} at {curve['budget_name']} {span} "
                f"({split} tasks, iteration {self.iteration}): adaptation diverges; {kept}; "
                f"lower learner.inner_lr (or learner.outer_lr) and train again"
            )
        return curve


def build_run(cfg: RunConfig, run_dir: Path, threads: int | None = None) -> Run:
    device = resolve_device(cfg.device)
    distribution = registry.build_distribution(cfg, device)
    for split in ("train", cfg.eval.split, cfg.eval.final_split):
        if split not in distribution.splits:
            raise UsageError(
                f"split {split!r} is not offered by task.kind "
                f"{cfg.task.get('kind')!r}; choose one of {', '.join(distribution.splits)}"
            )
    learner = registry.build_learner(cfg, distribution, device)
    choose_threads(learner, threads)
    generator = make_generator(cfg.seed, "train_tasks", device)
    return Run(cfg, run_dir, device, distribution, learner, generator)


def prepare_run_dir(cfg: RunConfig, run_dir: Path) -> bool:
    """Check `run_dir` can take this run. Returns True when it holds a checkpoint of the same
    config (resume). A config.yaml without a checkpoint (a run that never checkpointed) does
    not block: the new run replaces it."""
    config_file = run_dir / "config.yaml"
    has_checkpoint = (run_dir / "checkpoints" / "last.pt").exists()
    if not has_checkpoint:
        return False
    if not config_file.exists():
        raise UsageError(
            f"run directory {run_dir} holds a checkpoint but no config.yaml; restore the "
            f"config.yaml or pick another --run-dir"
        )
    diffs = diff_configs(migrate_config(load_yaml(config_file)), to_dict(cfg))
    if diffs:
        raise UsageError(
            f"run directory {run_dir} holds a run with a different config "
            f"({'; '.join(diffs)}); pick another --run-dir or use the same config"
        )
    return True


def write_config(cfg: RunConfig, run_dir: Path) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_run(run_dir: Path, overrides: list[str] | None = None, threads: int | None = None) -> Run:
    """Rebuild a run from its directory (config.yaml and the last checkpoint).

    `overrides` may change how it is evaluated (`task.*` and `eval.*` keys, e.g. `task.ways=20`
    to test a checkpoint on 20-way tasks), never what was trained.
    """
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise UsageError(
            f"{run_dir} is not a run directory (no config.yaml); give the folder `metarl train` wrote"
        )
    for text in overrides or []:
        if not text.startswith(("task.", "eval.")):
            raise UsageError(
                f"override {text!r}: only task.* and eval.* keys can change at evaluation"
            )
    data = migrate_config(load_yaml(config_file))  # tags refused, never run
    data = apply_overrides(data, overrides or [])
    cfg = from_dict(RunConfig, data, "")
    registry.validate(cfg)
    run = build_run(cfg, run_dir, threads)
    if not run.checkpoint_path.exists():
        raise UsageError(f"{run_dir} has no checkpoint yet (checkpoints/last.pt); train it first")
    run.restore()
    return run


def _check_finite(metrics: dict[str, float], step: int, run: Run) -> None:
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteError(
            f"non-finite {', '.join(f'meta/{k}={v}' for k, v in bad.items())} at "
            f"iteration {step}; training stopped and {run.kept()}; lower learner.outer_lr "
            f"or learner.inner_lr and run again"
        )


def _postfix(metrics: dict[str, float], learner: Any, limit: int = 3) -> dict[str, str]:
    """At most `limit` metrics for the progress bar (the learner's metric and the loss first),
    so the bar itself keeps its width."""
    first = [k for k in (getattr(learner, "metric", None), "loss") if k in metrics]
    keys = (first + [k for k in metrics if k not in first])[:limit]
    return {k: f"{metrics[k]:.3g}" for k in keys}


def join_world(cfg: RunConfig) -> dist.World:
    """Join the processes torchrun started (one process: `World()`), after the check every
    rank makes alike before anything is written: the meta-batch must give each rank a task."""
    size = dist._env_int("WORLD_SIZE", 1)
    if size > 1:
        dist.shard(cfg.train.num_tasks, dist.World(0, size))  # UsageError: fewer tasks than ranks
    return dist.init_world(resolve_device(cfg.device))


def check_distributable(learner: Any, cfg: RunConfig) -> None:
    """UsageError under torchrun unless the learner declares `distributed = True`: its
    meta-step on a shard of the tasks, with the engine's gradient sums, equals one process's
    (tested per learner in tests/test_distributed_train.py)."""
    if dist.get_world().size > 1 and not getattr(learner, "distributed", False):
        raise EveryRankError(
            f"learner.kind {cfg.learner.get('kind')} does not train on several processes yet "
            f"(its meta-step is not proven equal to one process's when its tasks are split); "
            f"run it without torchrun (one process)"
        )


def distribute(run: Run) -> list[Any]:
    """Under torchrun, make the run's optimisers step on gradients summed over the ranks
    (`attach_grad_sync`, weight: this rank's share of `train.num_tasks`). Returns the hook
    handles (none with one process)."""
    return dist.attach_grad_sync(
        dist.learner_optimizers(run.learner), dist.local_weight(run.cfg.train.num_tasks)
    )


class _Told:
    """Whether rank 0 has told the other ranks how the run starts (see `_agree`)."""

    done = False


def _agree(run: Run, state: dict[str, Any] | None, told: _Told) -> bool:
    """Rank 0 sends the checkpoint it read (None: a fresh run) and every other rank restores
    it, so they never read the run directory. Returns True when resuming."""
    world = dist.get_world()
    if world.size == 1:
        return state is not None
    verdict = dist.broadcast_object({"resuming": state is not None, "state": state})
    told.done = True
    if verdict.get("stopped") is not None:  # rank 0 could not start; it says why
        raise dist.StoppedByRank0(verdict["stopped"])
    if not world.is_main and verdict["resuming"]:
        run.restore(verdict["state"])
    return bool(verdict["resuming"])


def _tell_stopped(exc: BaseException, told: _Told) -> None:
    """Rank 0 failed before telling the others how to start: tell them to stop (quietly,
    with its exit code) instead of leaving them to the process-group timeout."""
    world = dist.get_world()
    if isinstance(exc, EveryRankError):  # the others raised it too: nobody waits
        return
    if world.size > 1 and world.is_main and not told.done:
        code = 2 if isinstance(exc, (UsageError, OSError)) else 1
        with contextlib.suppress(dist.RankLost):
            dist.broadcast_object({"stopped": code})


def train(
    cfg: RunConfig,
    run_dir: Path,
    progress: bool | None = None,
    final_eval: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Meta-train (resuming from `run_dir` if it holds the same run); returns results.json.

    The run directory is locked for the whole call; if it fails before its first checkpoint,
    what it wrote is removed again (see `metarl.rundir`). Under torchrun every rank calls it;
    rank 0 alone locks, reads and writes the run directory."""
    world = join_world(cfg)
    main = world.is_main
    checkpoint = run_dir / "checkpoints" / "last.pt"
    told = _Told()
    try:
        with owned_run_dir(run_dir, checkpoint) if main else contextlib.nullcontext():
            resuming = main and prepare_run_dir(cfg, run_dir)
            if main and (run_dir / "results.json").exists():
                read_results(run_dir / "results.json")  # fail now, not after training
            run = build_run(cfg, run_dir, threads)
            check_distributable(run.learner, cfg)
            run.progress = progress if main else False
            state = load_checkpoint(run.checkpoint_path) if resuming else None
            if state is not None:
                run.restore(state)
            elif main:  # a run that never checkpointed: its charts would overlap the new ones
                for old in run_dir.glob("events.out.tfevents.*"):
                    old.unlink()
                shutil.rmtree(run_dir / BY_BUDGET, ignore_errors=True)
            t, e = cfg.train, cfg.eval
            check_fits(
                run.learner,
                run.distribution,
                [("train.num_tasks", "train", t.num_tasks)]
                + [
                    ("eval.batch_tasks", split, min(e.batch_tasks, n))
                    for split, n in ((e.split, e.num_tasks), (e.final_split, e.final_num_tasks))
                ],
                cfg.seed,
                run.device,
            )
            _agree(run, state, told)
            if main:
                write_config(cfg, run_dir)
            hooks = distribute(run)
            try:
                return _loop(run, progress if main else False, final_eval)
            finally:
                for hook in hooks:
                    hook.remove()
    except BaseException as exc:
        _tell_stopped(exc, told)
        raise


def _loop(run: Run, progress: bool | None, final_eval: bool) -> dict[str, Any]:
    cfg, t = run.cfg, run.cfg.train
    logger = (
        RunLogger(run.run_dir, run.learner.metric, run.learner.budget_name)
        if dist.get_world().is_main
        else None
    )
    start, started = run.iteration, time.perf_counter()
    bar = tqdm(
        total=t.iterations,
        initial=start,
        desc=cfg.name,
        unit="it",
        dynamic_ncols=True,
        disable=(not progress) if progress is not None else None,
    )
    finished = False
    try:
        while run.iteration < t.iterations:
            step = run.iteration + 1
            try:
                metrics = meta_iteration(run)
            except NonFiniteError as exc:  # raised inside a learner (e.g. policy logits)
                raise NonFiniteError(
                    f"{exc} at iteration {step}; training stopped and {run.kept()}; lower "
                    f"learner.outer_lr or learner.inner_lr and run again"
                ) from None
            metrics = combine_metrics(metrics, t.num_tasks)
            _check_finite(metrics, step, run)
            run.iteration = step
            bar.update(1)
            bar.set_postfix(_postfix(metrics, run.learner), refresh=False)
            if step % t.log_interval == 0 and logger is not None:
                logger.scalars("meta", metrics, step)
                elapsed = time.perf_counter() - started
                logger.scalars("time", {"iterations_per_second": (step - start) / elapsed}, step)
            if t.eval_interval and step % t.eval_interval == 0:
                curve = run.evaluate(cfg.eval.split, cfg.eval.num_tasks)
                if logger is not None:
                    logger.curve(curve, step)
            out_of_time = t.max_minutes > 0 and _any_rank(
                time.perf_counter() - started > 60 * t.max_minutes
            )
            if step % t.checkpoint_interval == 0 or step == t.iterations or out_of_time:
                run.save()
            if out_of_time:
                bar.write(
                    f"stopping at iteration {step}: train.max_minutes={t.max_minutes} reached"
                )
                break
        finished = True
    except dist.RankLost as exc:
        raise dist.RankLost(f"{exc}; training stopped and {run.kept()}") from None
    except KeyboardInterrupt:
        raise RunInterrupted(f"interrupted at iteration {run.iteration}; {run.kept()}") from None
    finally:
        bar.close()
        if not finished and logger is not None:  # close the event file before the clean-up
            logger.close()
    seconds = time.perf_counter() - started
    results = {
        "name": cfg.name,
        "iterations": run.iteration,
        "train_seconds": seconds,
        "iterations_per_second": (run.iteration - start) / seconds if seconds > 0 else 0.0,
    }
    try:
        if final_eval:
            results = final_evaluation(run, logger, extra=results)
    except dist.RankLost as exc:
        raise dist.RankLost(f"{exc} in the final evaluation; {run.kept()}") from None
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted during the final evaluation; {run.kept()} (resuming evaluates it)"
        ) from None
    finally:
        if logger is not None:
            logger.close()
    return results


def meta_iteration(run: Run) -> dict[str, float]:
    """One outer update on a fresh meta-batch of `train.num_tasks` tasks from the run's train
    generator. Under torchrun every rank draws the whole batch and steps on its rows
    `shard(num_tasks)` (the optimiser hooks sum the gradients); the metrics it returns are this
    rank's (means over its rows: `combine_metrics` makes them the batch's)."""
    n = run.cfg.train.num_tasks
    tasks = run.distribution.sample("train", n, run.generator)
    with dist.meta_batch(n) as rows, autocast(run.cfg.train.precision, run.device):
        return run.learner.meta_step(_local(tasks, rows))  # autocast: bf16, few-shot only


def _local(tasks: Any, rows: slice) -> Any:
    """This rank's rows of the meta-batch (the whole batch with one process)."""
    if dist.get_world().size == 1:
        return tasks
    if not hasattr(tasks, "select"):
        raise EveryRankError(
            f"the tasks of this task.kind ({type(tasks).__name__}) cannot be split across "
            f"processes (no select); run it without torchrun"
        )
    return tasks.select(rows)


def combine_metrics(metrics: dict[str, float], num_tasks: int) -> dict[str, float]:
    """The means over the whole meta-batch of each rank's metrics (means over its rows, so
    `sum_r share_r * value_r`), in one collective: every rank then logs and checks alike.
    Unchanged with one process."""
    return dist.weighted_mean(metrics, dist.local_weight(num_tasks))


def _any_rank(flag: bool) -> bool:
    """True on every rank when it is True on any (e.g. out of time by its own clock)."""
    if dist.get_world().size == 1:
        return flag
    buf = torch.tensor([float(flag)])
    return bool(dist.all_reduce_(buf).item() > 0)


def record_video(run: Run, logger: RunLogger | None, split: str) -> Path | None:
    """Film one task of `split` before and after adaptation when the learner can
    (`learner.record`) and the tasks are renderable: `adapted.gif` in the run dir
    (`adapted_<split>.gif` for another split than the final one) and, with a logger,
    TensorBoard `adapt/video` (`adapt/video_<split>`). Returns the GIF's path, or None."""
    renderable = getattr(run.distribution, "renderable", False)
    if not (run.cfg.eval.video and renderable and hasattr(run.learner, "record")):
        return None
    gen = make_generator(run.cfg.seed, f"video/{split}", run.device)
    try:
        frames = run.learner.record(run.distribution.sample(split, 1, gen))
    except Exception as exc:  # an optional extra: a missing GL library must not fail the run
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"metarl: warning: no video of adapted behaviour ({reason}); headless rendering "
            "needs EGL (MUJOCO_GL=egl) or a display; eval.video=false skips it",
            file=sys.stderr,
        )
        return None
    suffix = "" if split == run.cfg.eval.final_split else f"_{split}"
    if logger is not None:  # logs the GIF and returns it: encoded once
        gif = logger.video(f"adapt/video{suffix}", frames, run.iteration)
    else:
        gif = encode_gif(frames)
    path = run.run_dir / f"adapted{suffix}.gif"
    atomic_write_bytes(path, gif)
    return path


def save_task_figure(run: Run) -> Path | None:
    """`tasks.png`: held-out tasks before and after adaptation, where the task distribution
    draws one (`distribution.task_figure(learner, generator) -> PNG bytes or None`, e.g. the
    sinusoid's curves before and after 1 and 10 steps). Returns its path, or None."""
    figure = getattr(run.distribution, "task_figure", None)
    if figure is None:
        return None
    png = figure(run.learner, make_generator(run.cfg.seed, "figure/tasks", run.device))
    if png is None:
        return None
    path = run.run_dir / "tasks.png"
    path.write_bytes(png)
    return path


def final_evaluation(
    run: Run,
    logger: RunLogger | None = None,
    split: str | None = None,
    num_tasks: int | None = None,
    extra: dict[str, Any] | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Evaluate on the final split; write results.json and curves.png into the run dir
    (atomically), and the curve to TensorBoard's `final/` tags.

    With `out`, the results go to that JSON file instead and curves.png is left alone.
    """
    e = run.cfg.eval
    main = dist.get_world().is_main
    path = out or run.run_dir / "results.json"
    previous = read_results(path) if main and path.exists() and out is None else {}
    curve = run.evaluate(split or e.final_split, num_tasks or e.final_num_tasks)
    if logger is not None:
        logger.curve(curve, run.iteration, prefix="final")
    b = min(run.learner.headline_budget, len(curve["mean"]) - 1)
    results = {
        "name": run.cfg.name,
        "iteration": run.iteration,
        "curve": curve,
        "headline": {"budget": b, "mean": curve["mean"][b], "ci95": curve["ci95"][b]},
    }
    if hasattr(run.learner, "within_episode_curve"):  # learners that adapt inside episode 1
        within = within_episode_curve(
            run.learner,
            run.distribution,
            split or e.final_split,
            num_tasks or e.final_num_tasks,
            e.batch_tasks,
            run.cfg.seed,
            run.device,
        )
        results["within_episode"] = within
        if logger is not None:  # the final split's rows, beside the final curve
            values = {f"window_{i}": m for i, m in enumerate(within["mean"])}
            logger.scalars("final", values, run.iteration)
    previous.update(extra or {})
    previous.update(results)
    if not main:  # rank 0 writes the results, figures and video
        return previous
    atomic_write_text(path, json.dumps(previous, indent=2))
    video = record_video(run, logger, split or e.final_split)
    if video is not None:
        previous["video"] = video.name
        atomic_write_text(path, json.dumps(previous, indent=2))
    if out is not None:
        return previous
    figure = save_task_figure(run)
    if figure is not None:
        previous["figure"] = figure.name
        path.write_text(json.dumps(previous, indent=2))
    save_curve_png(curve, run.run_dir / "curves.png", f"{run.cfg.name}: {curve['split']}")
    return previous


__all__ = [
    "train",
    "join_world",
    "meta_iteration",
    "distribute",
    "combine_metrics",
    "load_run",
    "final_evaluation",
    "format_curve",
    "build_run",
    "Run",
]
