"""The trainer: one loop for every learner and every task distribution.

    tasks   = distribution.sample("train", num_tasks, generator)
    metrics = learner.meta_step(tasks)
    every eval_interval:      curve = adaptation_curve(learner, held-out tasks, budgets 0..K)
    every checkpoint_interval: atomic checkpoint (learner, generator, iteration)

It owns devices, seeding, the progress bar, TensorBoard, the evaluation schedule, checkpoints
and resume, and never branches on domain or algorithm.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from metarl import registry
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.config import (
    RunConfig,
    apply_overrides,
    diff_configs,
    from_dict,
    migrate_config,
    to_dict,
)
from metarl.contracts import Learner, TaskDistribution
from metarl.errors import NonFiniteError, UsageError
from metarl.evaluation import adaptation_curve, format_curve, within_episode_curve
from metarl.logger import RunLogger, encode_gif, save_curve_png
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

    def save(self) -> None:
        save_checkpoint(self.state(), self.checkpoint_path)

    def restore(self) -> None:
        state = load_checkpoint(self.checkpoint_path)
        self.learner.load_state_dict(state["learner"])
        self.generator.set_state(state["generators"]["train_tasks"])
        self.iteration = int(state["iteration"])

    def evaluate(self, split: str, num_tasks: int) -> dict[str, Any]:
        e = self.cfg.eval
        return adaptation_curve(
            self.learner,
            self.distribution,
            split,
            num_tasks,
            e.max_budget,
            e.batch_tasks,
            self.cfg.seed,
            self.device,
        )


def build_run(cfg: RunConfig, run_dir: Path) -> Run:
    device = resolve_device(cfg.device)
    distribution = registry.build_distribution(cfg, device)
    for split in ("train", cfg.eval.split, cfg.eval.final_split):
        if split not in distribution.splits:
            raise UsageError(
                f"split {split!r} is not offered by task.kind "
                f"{cfg.task.get('kind')!r}; choose one of {', '.join(distribution.splits)}"
            )
    learner = registry.build_learner(cfg, distribution, device)
    generator = make_generator(cfg.seed, "train_tasks", device)
    return Run(cfg, run_dir, device, distribution, learner, generator)


def prepare_run_dir(cfg: RunConfig, run_dir: Path) -> bool:
    """Write `config.yaml`, or check it matches for a resume. Returns True when resuming."""
    config_file = run_dir / "config.yaml"
    new = to_dict(cfg)
    if config_file.exists():
        old = migrate_config(yaml.safe_load(config_file.read_text()))
        diffs = diff_configs(old, new)
        if diffs:
            raise UsageError(
                f"run directory {run_dir} holds a run with a different config "
                f"({'; '.join(diffs)}); pick another --run-dir or use the same config"
            )
        return (run_dir / "checkpoints" / "last.pt").exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(new, sort_keys=False))
    return False


def load_run(run_dir: Path, overrides: list[str] | None = None) -> Run:
    """Rebuild a run from its directory (config.yaml and the last checkpoint).

    `overrides` may change how it is evaluated (`task.*` and `eval.*` keys, e.g. `task.ways=20`
    to test a checkpoint on 20-way tasks), never what was trained.
    """
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        raise UsageError(
            f"{run_dir} is not a run directory (no config.yaml); give the folder `metarl train` wrote"
        )
    for text in overrides or []:
        if not text.startswith(("task.", "eval.")):
            raise UsageError(
                f"override {text!r}: only task.* and eval.* keys can change at evaluation"
            )
    data = migrate_config(yaml.safe_load(config_file.read_text()))
    data = apply_overrides(data, overrides or [])
    cfg = from_dict(RunConfig, data, "")
    registry.validate(cfg)
    run = build_run(cfg, run_dir)
    if not run.checkpoint_path.exists():
        raise UsageError(f"{run_dir} has no checkpoint yet (checkpoints/last.pt); train it first")
    run.restore()
    return run


def _check_finite(metrics: dict[str, float], step: int, run: Run) -> None:
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        kept = (
            f"the last good checkpoint {run.checkpoint_path} is intact"
            if run.checkpoint_path.exists()
            else "no checkpoint had been written yet"
        )
        raise NonFiniteError(
            f"non-finite {', '.join(f'meta/{k}={v}' for k, v in bad.items())} at "
            f"iteration {step}; training stopped and {kept}; lower learner.outer_lr "
            f"or learner.inner_lr and run again"
        )


def train(
    cfg: RunConfig, run_dir: Path, progress: bool | None = None, final_eval: bool = True
) -> dict[str, Any]:
    """Meta-train (resuming from `run_dir` if it holds the same run); returns results.json."""
    resuming = prepare_run_dir(cfg, run_dir)
    run = build_run(cfg, run_dir)
    if resuming:
        run.restore()
    t = cfg.train
    logger = RunLogger(run_dir, run.learner.metric, run.learner.budget_name)
    start, started = run.iteration, time.perf_counter()
    bar = tqdm(
        total=t.iterations,
        initial=start,
        desc=cfg.name,
        unit="it",
        dynamic_ncols=True,
        disable=(not progress) if progress is not None else None,
    )
    try:
        while run.iteration < t.iterations:
            tasks = run.distribution.sample("train", t.num_tasks, run.generator)
            metrics = run.learner.meta_step(tasks)
            step = run.iteration + 1
            _check_finite(metrics, step, run)
            run.iteration = step
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
            if step % t.log_interval == 0:
                logger.scalars("meta", metrics, step)
                elapsed = time.perf_counter() - started
                logger.scalars("time", {"iterations_per_second": (step - start) / elapsed}, step)
            if t.eval_interval and step % t.eval_interval == 0:
                curve = run.evaluate(cfg.eval.split, cfg.eval.num_tasks)
                logger.curve(curve, step)
            out_of_time = t.max_minutes > 0 and time.perf_counter() - started > 60 * t.max_minutes
            if step % t.checkpoint_interval == 0 or step == t.iterations or out_of_time:
                run.save()
            if out_of_time:
                bar.write(
                    f"stopping at iteration {step}: train.max_minutes={t.max_minutes} reached"
                )
                break
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    results = {
        "name": cfg.name,
        "iterations": run.iteration,
        "train_seconds": seconds,
        "iterations_per_second": (run.iteration - start) / seconds if seconds > 0 else 0.0,
    }
    if final_eval:
        results = final_evaluation(run, logger, extra=results)
    logger.close()
    return results


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
    path.write_bytes(gif)
    return path


def final_evaluation(
    run: Run,
    logger: RunLogger | None = None,
    split: str | None = None,
    num_tasks: int | None = None,
    extra: dict[str, Any] | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Evaluate on the final split; write results.json and curves.png into the run dir.

    With `out`, the results go to that JSON file instead and curves.png is left alone.
    """
    e = run.cfg.eval
    curve = run.evaluate(split or e.final_split, num_tasks or e.final_num_tasks)
    if logger is not None:
        logger.curve(curve, run.iteration)
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
        if logger is not None:
            values = {f"window_{i}": m for i, m in enumerate(within["mean"])}
            logger.scalars("adapt", values, run.iteration)
    path = out or run.run_dir / "results.json"
    previous = json.loads(path.read_text()) if path.exists() and out is None else {}
    previous.update(extra or {})
    previous.update(results)
    path.write_text(json.dumps(previous, indent=2))
    video = record_video(run, logger, split or e.final_split)
    if video is not None:
        previous["video"] = video.name
        path.write_text(json.dumps(previous, indent=2))
    if out is not None:
        return previous
    save_curve_png(curve, run.run_dir / "curves.png", f"{run.cfg.name}: {curve['split']}")
    return previous


__all__ = ["train", "load_run", "final_evaluation", "format_curve", "build_run", "Run"]
