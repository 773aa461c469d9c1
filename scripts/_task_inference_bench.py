"""Sections of `scripts/bench_metarl.py` for the task-inference learner (issue 12).

For each seed: the learner (`learner.mode=learner`: phase 1 PPO on [obs, encoder(task)],
phase 2 the adaptation module), then the task-blind policy (`mode=blind`: the same PPO and
network without the task) and the oracle (`mode=oracle`: phase 1 throughout, evaluated with
the true task embedding), both trained for the learner's number of iterations, i.e. on as
many env steps; and uniform random actions (no training). On the held-out tasks of each split
(one fixed draw per seed), episode 1's return (the learner adapts inside it: budget 0 is the
headline), episode 2's, and the return per window of steps of episode 1. Gap closure =
(learner - blind) / (oracle - blind) per seed; its mean and 95% CI over seeds (CI only with 2+
seeds).
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from agents.rollout import RandomActor, rollout
from agents.task_inference import window_returns
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.config import to_dict
from metarl.registry import load_config
from metarl.seeding import make_generator
from metarl.trainer import build_run, load_run, train


def _train(config: str, overrides: list[str]) -> tuple[Any, dict[str, Any], str]:
    over = ["device=cpu", "train.eval_interval=0", *overrides]
    cfg = load_config(config, over)
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench_{config}_"))
    results = train(cfg, run_dir, progress=False, final_eval=False)
    return load_run(run_dir), results, f"python -m metarl train {config} {' '.join(over)}"


def _continue(cfg: Any, run_dir: Path, iterations: int) -> dict[str, Any]:
    """Resume `run_dir` under `cfg` up to `iterations` (its config.yaml rewritten to match)."""
    cfg.train.iterations = iterations
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return train(cfg, run_dir, progress=False, final_eval=False)


def adopt_phase1(run_dir: Path, cfg: Any) -> None:
    """Make the oracle's phase-1 checkpoint in `run_dir` the learner's (`cfg`): phase 1 is the
    same computation in both modes, bit for bit (tests/agents/test_task_inference.py), but the
    trainer refuses a checkpoint whose stored config names another mode, so its config (and
    config.yaml) are rewritten to the learner's."""
    path = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    state["config"] = {**to_dict(cfg), "train": state["config"]["train"]}
    save_checkpoint(state, path)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(state["config"], sort_keys=False))


def _learner_and_oracle(config: str, overrides: list[str]) -> dict[str, tuple[Any, Any, str]]:
    """The learner and the oracle share phase 1 (iterations `1..phase2_start` are the same
    computation in both modes, bit for bit: tested), so it is trained once: the oracle runs to
    `phase2_start`, a copy of that run continues as the learner (phase 2), the original as
    the oracle (phase 1 throughout). Same numbers as two runs, `phase2_start` fewer iterations."""
    over = ["device=cpu", "train.eval_interval=0", *overrides]
    cfg_l = load_config(config, [*over, "learner.mode=learner"])
    cfg_o = load_config(config, [*over, "learner.mode=oracle"])
    total, start = cfg_l.train.iterations, cfg_l.learner["phase2_start"]
    oracle_dir = Path(tempfile.mkdtemp(prefix=f"bench_{config}_oracle_"))
    first = _continue(cfg_o, oracle_dir, start)
    learner_dir = Path(tempfile.mkdtemp(prefix=f"bench_{config}_learner_"))
    shutil.copytree(oracle_dir, learner_dir, dirs_exist_ok=True)
    adopt_phase1(learner_dir, cfg_l)
    out = {}
    for name, cfg, run_dir in (("learner", cfg_l, learner_dir), ("oracle", cfg_o, oracle_dir)):
        res = _continue(cfg, run_dir, total) if first["iterations"] == start else first
        res = {**res, "train_seconds": first["train_seconds"] + res["train_seconds"]}
        mode = f"learner.mode={cfg.learner['mode']}"
        out[name] = (
            load_run(run_dir),
            res,
            f"python -m metarl train {config} {' '.join(over)} {mode}",
        )
    return out


def _steps(run: Any, iterations: int) -> int:
    c, t = run.learner.cfg, run.cfg.train
    horizon = c.horizon or run.distribution.horizon
    return iterations * t.num_tasks * c.envs_per_task * c.episodes_per_trial * horizon


def _ci(x: list[float]) -> float:
    v = torch.tensor(x, dtype=torch.float64)
    return 1.96 * v.std().item() / math.sqrt(len(x)) if len(x) > 1 else float("nan")


RANDOM = "random (uniform actions)"


def random_row(run: Any, tasks: Any, seed: int) -> dict[str, Any]:
    """The `random` row on `tasks`: one episode of uniform actions per evaluation copy, on
    the learner's own evaluation env (no training: 0 env steps)."""
    c = run.learner.cfg
    env = run.learner._env(tasks.num_tasks, c.eval_trials_per_task)
    actor = RandomActor(env.action_space, make_generator(seed, "bench/random"))
    trial = rollout(env, tasks, actor, 1, seed)
    episode1 = trial.returns_by_episode_index()[:, 0]  # [T]
    return {
        "episode1": episode1.mean().item(),
        "episode2": float("nan"),
        "episode1_tasks": episode1.tolist(),
        "windows": window_returns(trial, c.window).mean(1).tolist(),
        "iterations": 0,
        "env_steps": 0,
        "train_seconds": 0.0,
        "command": "agents.rollout.RandomActor (uniform actions, no training)",
    }


def _random_only_rows(
    family: str, config: str, args: argparse.Namespace, splits: tuple[str, ...], budget: list[str]
) -> list[dict[str, Any]]:
    """`--ti-random-only`: the random row alone, on the held-out tasks the full benchmark
    draws for each seed (same generators), from an untrained run of the same config."""
    rows = []
    for split in splits:
        seeds = []
        for seed in args.seeds:
            over = ["device=cpu", "train.eval_interval=0", f"seed={seed}", *budget]
            run = build_run(load_config(config, over), Path(tempfile.mkdtemp(prefix="bench_")))
            gen = make_generator(seed, f"bench/{split}")
            tasks = run.distribution.sample(split, args.test_tasks, gen)
            seeds.append(random_row(run, tasks, seed))
        tasks_ep1 = torch.tensor([v for s in seeds for v in s["episode1_tasks"]])
        rows.append(
            {
                "family": f"task inference {family} ({split})",
                "method": RANDOM,
                "mean": sum(s["episode1"] for s in seeds) / len(seeds),
                "ci95": 1.96 * tasks_ep1.double().std().item() / math.sqrt(tasks_ep1.numel()),
                "n": tasks_ep1.numel(),
                "windows": [
                    sum(w) / len(seeds) for w in zip(*(s["windows"] for s in seeds), strict=True)
                ],
                "env_steps": 0,
                "train_seconds": 0.0,
                "env_steps_per_s": 0.0,
                "command": seeds[0]["command"],
                "seeds": list(args.seeds),
                "per_seed": [s["episode1"] for s in seeds],
            }
        )
    return rows


def task_inference_rows(
    family: str, config: str, args: argparse.Namespace, splits: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Rows for `family` from the shipped `config` (module docstring)."""
    minutes = args.minutes or (1.0 if args.quick else 20.0)
    # the user's --override (not --quick's RL² keys)
    extra = getattr(args, "user_override", getattr(args, "override", []))
    budget = [f"train.max_minutes={minutes}", *extra]
    if args.ti_iterations:
        budget.append(f"train.iterations={args.ti_iterations}")
    if args.ti_phase2:
        budget.append(f"learner.phase2_start={args.ti_phase2}")
    if args.quick:
        budget += ["train.num_tasks=4", "learner.ppo_epochs=2"]
        if "navigation" not in config:  # tensor families keep their own horizon
            budget.append("learner.horizon=50")
    if getattr(args, "ti_random_only", False):
        return _random_only_rows(family, config, args, splits, budget)
    per_seed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for seed in args.seeds:
        both = _learner_and_oracle(config, [f"seed={seed}", *budget])
        learner = both["learner"]
        iters = both["oracle"][1]["iterations"]
        same = [f"seed={seed}", *budget, f"train.iterations={iters}"]
        runs = {
            "task inference (history only)": learner,
            "blind (same PPO, no task)": _train(config, [*same, "learner.mode=blind"]),
            "oracle (task embedding)": both["oracle"],
        }
        for split in splits:
            gen = make_generator(seed, f"bench/{split}")
            tasks = learner[0].distribution.sample(split, args.test_tasks, gen)
            for method, (run, res, cmd) in runs.items():
                with torch.no_grad():
                    curve = run.learner.adaptation_curve(tasks, 1)  # [2, T]
                    windows = run.learner.within_episode_curve(tasks)  # [W, T]
                per_seed.setdefault((split, method), []).append(
                    {
                        "episode1": curve[0].mean().item(),
                        "episode2": curve[1].mean().item(),
                        "episode1_tasks": curve[0].tolist(),
                        "windows": windows.mean(1).tolist(),
                        "iterations": res["iterations"],
                        "env_steps": _steps(run, res["iterations"]),
                        "train_seconds": res["train_seconds"],
                        "command": cmd,
                    }
                )
            per_seed.setdefault((split, RANDOM), []).append(random_row(learner[0], tasks, seed))
    rows = []
    for split in splits:
        label = f"task inference {family} ({split})"
        blind = per_seed[(split, "blind (same PPO, no task)")]
        oracle = per_seed[(split, "oracle (task embedding)")]
        for (sp, method), seeds in per_seed.items():
            if sp != split:
                continue
            ep1 = [s["episode1"] for s in seeds]
            tasks_ep1 = torch.tensor([v for s in seeds for v in s["episode1_tasks"]])
            row: dict[str, Any] = {
                "family": label,
                "method": method,
                "mean": sum(ep1) / len(ep1),
                "ci95": 1.96 * tasks_ep1.double().std().item() / math.sqrt(tasks_ep1.numel()),
                "n": tasks_ep1.numel(),
                "episode2": sum(s["episode2"] for s in seeds) / len(seeds),
                "windows": [
                    sum(w) / len(seeds) for w in zip(*(s["windows"] for s in seeds), strict=True)
                ],
                "env_steps": seeds[0]["env_steps"],
                "train_seconds": sum(s["train_seconds"] for s in seeds) / len(seeds),
                "command": seeds[0]["command"],
                "seeds": list(args.seeds),
            }
            row["env_steps_per_s"] = row["env_steps"] / max(row["train_seconds"], 1e-9)
            if method.startswith("task inference"):
                closures = [
                    (s["episode1"] - b["episode1"]) / (o["episode1"] - b["episode1"])
                    if o["episode1"] > b["episode1"]
                    else float("nan")
                    for s, b, o in zip(seeds, blind, oracle, strict=True)
                ]
                ratio = [s["episode1"] / o["episode1"] for s, o in zip(seeds, oracle, strict=True)]
                row["gap_closure"] = sum(closures) / len(closures)
                row["gap_closure_ci95"] = _ci(closures)
                row["gap_closure_per_seed"] = closures
                # learner / oracle reads backwards for costs (negative returns): left out there
                positive = all(o["episode1"] > 0 for o in oracle)
                row["share_of_oracle"] = sum(ratio) / len(ratio) if positive else float("nan")
                row["method"] = f"{method}; gap closure {row['gap_closure']:.2f}" + (
                    f" (CI {row['gap_closure_ci95']:.2f})"
                    + (f", {row['share_of_oracle']:.0%} of oracle" if positive else "")
                )
            rows.append(row)
    return rows


def halfcheetah_slope_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The flagship: unseen slopes inside the training range (test) and beyond (test_beyond)."""
    splits = ("test", "test_beyond")
    return task_inference_rows(
        "halfcheetah_slope", args.ti_config or "halfcheetah_slope_task_inference", args, splits
    )


def terrain_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    return task_inference_rows("terrain", "terrain_task_inference", args, ("test", "test_beyond"))


def terrain_physics_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Terrain widened with per-task friction, payload and motor strengths (RMA-style)."""
    splits = ("test", "test_beyond")
    return task_inference_rows("terrain_physics", "terrain_physics_task_inference", args, splits)


def terrain_pace_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Terrain, physics and a target pace that only the reward reveals."""
    splits = ("test", "test_beyond")
    return task_inference_rows("terrain_pace", "terrain_pace_task_inference", args, splits)


def ant_slope_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    return task_inference_rows(
        "ant_slope", "ant_slope_task_inference", args, ("test", "test_beyond")
    )


def navigation_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    return task_inference_rows("navigation", "navigation_task_inference", args, ("test",))


SECTIONS = {
    "ti_halfcheetah_slope": halfcheetah_slope_rows,
    "ti_terrain": terrain_rows,
    "ti_terrain_physics": terrain_physics_rows,
    "ti_terrain_pace": terrain_pace_rows,
    "ti_ant_slope": ant_slope_rows,
    "ti_navigation": navigation_rows,
}
