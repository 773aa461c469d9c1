"""Meta-RL benchmark: one table per task family, written to results/metarl.md and .json.

    .venv/bin/python scripts/bench_metarl.py --quick            # minutes on a laptop CPU
    .venv/bin/python scripts/bench_metarl.py --sections bandits --iterations 400

Each row: method, return at each budget (or the trial total) with a 95% confidence interval
over held-out test tasks and seeds, env steps used in training, training wall-clock, env
steps per second, and the command that reproduces it. Baselines are computed by our own code
(`agents.bandit_baselines`) on the same test tasks; published numbers stand beside them.

Adding a family: write `def <family>_rows(args) -> list[dict]` and add it to `SECTIONS`.
A row is a dict with at least `family`, `method`, `mean`, `ci95`; see `_row`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling helper modules

import _task_inference_bench as ti  # noqa: E402

from agents import bandit_baselines as bb  # noqa: E402
from metarl.registry import load_config  # noqa: E402
from metarl.seeding import make_generator  # noqa: E402
from metarl.trainer import load_run, train  # noqa: E402

RL2_PAPER = {  # Duan et al. 2016, tables 1 and 2: total reward over the trial
    ("bandit", 10, 5): 6.7,
    ("bandit", 10, 10): 6.7,
    ("bandit", 100, 5): 78.7,
    ("bandit", 100, 10): 83.5,
    ("tabular", 10): 156.2,
    ("tabular", 25): 445.7,
    ("tabular", 50): 936.1,
}


def ci95(x: torch.Tensor) -> float:
    x = x.double().flatten()
    return 1.96 * x.std().item() / math.sqrt(x.numel()) if x.numel() > 1 else 0.0


def _row(family: str, method: str, totals: torch.Tensor, **extra: Any) -> dict[str, Any]:
    return {
        "family": family,
        "method": method,
        "mean": totals.double().mean().item(),
        "ci95": ci95(totals),
        "n": totals.numel(),
        **extra,
    }


def train_rl2(config: str, overrides: list[str], seed: int) -> tuple[Any, dict[str, Any], str]:
    """Train a shipped config through the engine; returns (run, train results, command)."""
    over = ["device=cpu", f"seed={seed}", "train.eval_interval=0", *overrides]
    cfg = load_config(config, over)
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench_{config}_"))
    results = train(cfg, run_dir, progress=False, final_eval=False)
    command = f"python -m metarl train {config} {' '.join(over)}"
    return load_run(run_dir), results, command


TTT_MARKS = (15, 30, 60)  # minutes at which time_to_target reports the validation total


def time_to_target(
    run_dir: Path,
    target: float,
    steps_per_iteration: int,
    marks: tuple[int, ...] = TTT_MARKS,
    run_seconds: float | None = None,
) -> dict[str, Any]:
    """Time to target of an RL² run trained with `train.eval_interval` > 0, read from its
    TensorBoard file: at every in-training evaluation the trial total on the validation
    tasks (the sum of the `adapt/return_episodes_*` curve, so `eval.max_budget` must be
    `n - 1`) against wall-clock since the run started (evaluations included) and env steps.

    Returns `ttt_seconds` / `ttt_env_steps` (the first evaluation with total >= `target`, or
    None), `total_at_<m>min` (the last evaluation at or before m minutes, None if the run
    ended earlier: its last evaluation, or `run_seconds` of training when given, before 98% of
    m minutes) and the whole `ttt_history` of (seconds, env steps, total).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = [t for t in acc.Tags()["scalars"] if t.startswith("adapt/return_episodes_")]
    if not tags:
        raise ValueError(f"{run_dir} has no in-training evaluations (set train.eval_interval)")
    start = acc.FirstEventTimestamp()
    by_step: dict[int, list[float]] = {}
    wall: dict[int, float] = {}
    for tag in tags:
        seen = set()
        for e in acc.Scalars(tag):  # the first event of a step: a final evaluation comes later
            if e.step not in seen:
                seen.add(e.step)
                by_step.setdefault(e.step, []).append(e.value)
                wall[e.step] = max(wall.get(e.step, 0.0), e.wall_time - start)
    history = [
        (wall[step], step * steps_per_iteration, sum(values))
        for step, values in sorted(by_step.items())
        if len(values) == len(tags)
    ]
    hit = next((h for h in history if h[2] >= target), None)
    out: dict[str, Any] = {
        "ttt_target": target,
        "ttt_seconds": None if hit is None else hit[0],
        "ttt_env_steps": None if hit is None else hit[1],
        "ttt_history": history,
    }
    for m in marks:
        before = [h for h in history if h[0] <= 60 * m]
        ran = max(history[-1][0] if history else 0.0, run_seconds or 0.0)
        ran_long_enough = ran >= 60 * m * 0.98
        out[f"total_at_{m}min"] = before[-1][2] if before and ran_long_enough else None
    return out


def rl2_trial_totals(run: Any, tasks: Any, episodes: int) -> torch.Tensor:
    """Total return of one trial of `episodes` per test task `[T]`."""
    with torch.no_grad():
        return run.learner.adaptation_curve(tasks, episodes - 1).sum(0)


def _training_steps(cfg: Any, results: dict[str, Any], horizon: int) -> int:
    lc = cfg.learner
    per_iter = cfg.train.num_tasks * lc.get("trials_per_task", 1) * lc["episodes_per_trial"]
    return int(results["iterations"] * per_iter * horizon)


def _wanted(args: argparse.Namespace, n: int) -> bool:
    return not args.trial_lengths or n in args.trial_lengths


def rl2_seed_runs(
    args: argparse.Namespace, config: str, n: int, paper: float
) -> tuple[torch.Tensor, list[Any], dict[str, Any]]:
    """Train `config` once per seed and play one trial of `n` episodes on each seed's test
    tasks: (trial totals `[seeds * test_tasks]`, the test tasks per seed, the row's info)."""
    totals, tasks_all = [], []
    info: dict[str, Any] = {}
    ttt_runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        over = [f"train.iterations={args.iterations}", *args.override]
        if args.eval_every:
            over.append(f"train.eval_interval={args.eval_every}")
        run, res, cmd = train_rl2(config, over, seed)
        gen = make_generator(seed, "bench/test")
        tasks = run.distribution.sample("test", args.test_tasks, gen)
        totals.append(rl2_trial_totals(run, tasks, n))
        tasks_all.append(tasks)
        steps = _training_steps(run.cfg, res, run.distribution.horizon)
        if args.eval_every:
            per_iter = _training_steps(run.cfg, {"iterations": 1}, run.distribution.horizon)
            ttt = time_to_target(
                run.run_dir, 0.9 * paper, per_iter, run_seconds=res["train_seconds"]
            )
            ttt_runs.append({"seed": seed, **ttt})
        info = {
            "env_steps": steps,
            "train_seconds": res["train_seconds"],
            "env_steps_per_s": steps / res["train_seconds"],
            "command": f"{cmd}  (then {args.test_tasks} test tasks, seeds {args.seeds})",
            "paper": paper,
        }
    if ttt_runs:
        info["time_to_target"] = ttt_runs
    return torch.cat(totals), tasks_all, info


def bandit_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    pairs = [(10, 5), (10, 10), (100, 5), (100, 10)]
    for n, k in [
        (n, k) for n, k in pairs if _wanted(args, n) and (not args.arms or k in args.arms)
    ]:
        fam = f"bandits n={n} k={k}"
        paper = RL2_PAPER[("bandit", n, k)]
        totals, tasks_all, info = rl2_seed_runs(args, f"bandit_rl2_k{k}_n{n}", n, paper)
        rows.append(_row(fam, "RL² (ours)", totals, **info))
        probs = torch.cat([t.probs for t in tasks_all])
        g = torch.Generator().manual_seed(0)
        baselines: dict[str, Callable[..., torch.Tensor]] = {
            "random": bb.random_bandit,
            "greedy": bb.greedy,
            "epsilon-greedy (0.1)": bb.epsilon_greedy,
            "UCB1": bb.ucb1,
            "Thompson sampling": bb.thompson_sampling,
            "Gittins": bb.gittins,
        }
        for name, fn in baselines.items():
            rows.append(_row(fam, name, fn(probs, n, g), command="agents.bandit_baselines"))
    return rows


def tabular_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in [n for n in (10, 25, 50) if _wanted(args, n)]:
        fam = f"tabular MDPs n={n}"
        paper = RL2_PAPER[("tabular", n)]
        totals, tasks_all, info = rl2_seed_runs(args, f"tabular_rl2_n{n}", n, paper)
        rows.append(_row(fam, "RL² (ours)", totals, **info))
        p = torch.cat([t.transitions for t in tasks_all])
        r = torch.cat([t.reward_means for t in tasks_all])
        g = torch.Generator().manual_seed(0)
        for name, fn in {"random": bb.random_mdp, "greedy": bb.greedy_mdp, "PSRL": bb.psrl}.items():
            rows.append(_row(fam, name, fn(p, r, n, g), command="agents.bandit_baselines"))
    return rows


class SyncVectorBandits:
    """The sampler's `BatchedEnv` interface over Gymnasium's `SyncVectorEnv` of single
    `BanditEnv` views (numpy in/out, one Python env per copy): the reference loop."""

    def __init__(self, num_arms: int, horizon: int, num_tasks: int, copies: int):
        from envs.tensor import BanditEnv

        self.num_tasks, self.envs_per_task = num_tasks, copies
        self.num_envs, self.horizon, self.device = num_tasks * copies, horizon, torch.device("cpu")
        fns = [lambda: BanditEnv(num_arms=num_arms, horizon=horizon)] * self.num_envs
        self.vec = gymnasium.vector.SyncVectorEnv(
            fns, autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP
        )
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self.discrete, self.obs_dim = True, 1

    def reset(self, tasks: Any, seed: int | None) -> torch.Tensor:
        for i, env in enumerate(self.vec.envs):
            env.reset(seed=seed + i, options={"tasks": tasks.select(i // self.envs_per_task)})
        obs, _ = self.vec.reset()  # unseeded: every copy keeps its task
        return torch.as_tensor(obs, dtype=torch.float32).view(self.num_envs, 1)

    def step(self, actions: torch.Tensor, restart: Any = None) -> tuple[torch.Tensor, ...]:
        obs, r, term, trunc, _ = self.vec.step(actions.numpy())
        return (
            torch.as_tensor(obs, dtype=torch.float32).view(self.num_envs, 1),
            torch.as_tensor(r, dtype=torch.float32),
            torch.as_tensor(term),
            torch.as_tensor(trunc),
        )


def throughput_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The whole RL² bandit training loop (rollout + PPO): tensor env vs SyncVectorEnv."""
    from metarl import registry

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    num_tasks, reps = (256, 3) if args.quick else (1024, 5)
    over = [f"device={device.type}", f"train.num_tasks={num_tasks}", *args.override]
    cfg = load_config("bandit_rl2_k5_n10", over)
    rows = []
    for backend in ("tensor env on " + device.type, "gymnasium SyncVectorEnv"):
        # SyncVectorEnv steps numpy envs on the CPU: its learner lives there too
        dev = device if backend.startswith("tensor") else torch.device("cpu")
        dist = registry.build_distribution(cfg, dev)
        learner = registry.build_learner(cfg, dist, dev)
        if backend.startswith("gymnasium"):
            learner._envs[(num_tasks, 1)] = SyncVectorBandits(5, 1, num_tasks, 1)
        gen = make_generator(0, "bench/throughput", dev)
        learner.meta_step(dist.sample("train", num_tasks, gen))  # warm-up
        steps, start = 0, time.perf_counter()
        for _ in range(reps):
            steps += int(learner.meta_step(dist.sample("train", num_tasks, gen))["env_steps"])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        sec = time.perf_counter() - start
        rows.append(
            {
                "family": "RL² bandit training loop (k=5, n=10, GRU 256)",
                "method": backend,
                "env_steps": steps,
                "train_seconds": sec,
                "env_steps_per_s": steps / sec,
                "command": f"scripts/bench_metarl.py --sections throughput {'--quick' if args.quick else ''}",
            }
        )
    rows[0]["speedup"] = rows[0]["env_steps_per_s"] / rows[1]["env_steps_per_s"]
    return rows


# --- MAML-RL: adaptation-gap closure against an oracle and a fine-tuned multi-task policy ------

GAP_TARGETS = {  # (family, held-out split): gap closure after one inner step
    ("navigation", "test"): 0.8,
    ("halfcheetah_vel", "test"): 0.7,
    ("halfcheetah_slope", "test"): 0.7,  # unseen slopes inside the training range
    ("halfcheetah_slope", "test_beyond"): 0.5,  # unseen slopes beyond it
    ("ant_slope", "test"): 0.7,
    ("ant_slope", "test_beyond"): 0.5,
}


def train_maml_rl(config: str, overrides: list[str], seed: int) -> tuple[Any, dict[str, Any], str]:
    """Train a shipped MAML-RL config (or a baseline of it) through the engine."""
    over = ["device=cpu", f"seed={seed}", "train.eval_interval=0", *overrides]
    cfg = load_config(config, over)
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench_{config}_"))
    results = train(cfg, run_dir, progress=False, final_eval=False)
    return load_run(run_dir), results, f"python -m metarl train {config} {' '.join(over)}"


def maml_rl_gap_rows(
    family: str,
    config: str,
    budget: list[str],
    minutes: float,
    args: argparse.Namespace,
    splits: tuple[str, ...] = ("test",),
) -> list[dict[str, Any]]:
    """MAML-TRPO vs the oracle (task in the observation) and the multi-task policy fine-tuned
    with the same inner step, on the held-out tasks of each of `splits`; one inner step.

    MAML trains for `minutes` (wall-clock cap, `budget` overrides on top of the shipped
    config); the two baselines train with the same number of env steps (2x the iterations:
    they sample no support). `args.override` holds RL² keys and is not applied here.
    """
    from agents.baselines_rl import gap_closure, random_returns

    samples: dict[tuple[str, str], list[torch.Tensor]] = {}
    info: dict[str, dict[str, Any]] = {}

    def record(split: str, name: str, values: torch.Tensor, run: Any, res: Any, cmd: str) -> None:
        samples.setdefault((split, name), []).append(values)
        steps = int(run.learner.env_steps)
        info[name] = {
            "env_steps": steps,
            "train_seconds": res["train_seconds"],
            "env_steps_per_s": steps / res["train_seconds"],
            "command": cmd,
        }

    for seed in args.seeds:
        cap = [f"train.max_minutes={minutes}", *budget]
        run, res, cmd = train_maml_rl(config, cap, seed)
        same = [
            f"train.iterations={2 * res['iterations']}",
            f"train.max_minutes={minutes}",
            *budget,
        ]
        oracle = ["learner.task_in_obs=true", "learner.adapt_steps=0", "learner.eval_adapt_steps=0"]
        run_o, res_o, cmd_o = train_maml_rl(config, [*same, *oracle], seed)
        run_m, res_m, cmd_m = train_maml_rl(config, [*same, "learner.adapt_steps=0"], seed)
        for split in splits:
            gen = make_generator(seed, f"bench/{split}")
            tasks = run.distribution.sample(split, args.test_tasks, gen)
            curve = run.learner.adaptation_curve(tasks, 1)
            record(split, "MAML-TRPO, pre-adaptation", curve[0], run, res, cmd)
            record(split, "MAML-TRPO, adapted (1 step)", curve[1], run, res, cmd)
            oracle_curve = run_o.learner.adaptation_curve(tasks, 0)
            record(split, "oracle (task in obs)", oracle_curve[0], run_o, res_o, cmd_o)
            curve_m = run_m.learner.adaptation_curve(tasks, 1)
            record(split, "multi-task, pre-adaptation", curve_m[0], run_m, res_m, cmd_m)
            record(split, "multi-task, fine-tuned (1 step)", curve_m[1], run_m, res_m, cmd_m)
            episodes, horizon = run.learner.cfg.episodes_per_task, run.learner.cfg.horizon
            gen = make_generator(seed, f"bench/random/{split}")
            rand = random_returns(run.distribution, tasks, episodes, gen, horizon)
            samples.setdefault((split, "random"), []).append(rand)
            info["random"] = {"command": "agents.baselines_rl.random_returns"}

    rows = []
    for split in splits:
        mean = {
            name: torch.cat(v).double().mean().item()
            for (sp, name), v in samples.items()
            if sp == split
        }
        target = GAP_TARGETS[(family, split)]
        oracle_mean = mean["oracle (task in obs)"]
        closure = {
            "MAML-TRPO, adapted (1 step)": gap_closure(
                mean["MAML-TRPO, pre-adaptation"], mean["MAML-TRPO, adapted (1 step)"], oracle_mean
            ),
            "multi-task, fine-tuned (1 step)": gap_closure(
                mean["multi-task, pre-adaptation"],
                mean["multi-task, fine-tuned (1 step)"],
                oracle_mean,
            ),
        }
        label = f"MAML-RL {family}" + (f" ({split})" if len(splits) > 1 else "")
        for (sp, name), values in samples.items():
            if sp != split:
                continue
            method = name
            if name in closure:
                method += f"; gap closure {closure[name]:.2f} (target >= {target})"
            rows.append(_row(label, method, torch.cat(values), **info[name]))
            if name in closure:
                rows[-1]["gap_closure"] = closure[name]
    return rows


def navigation_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """2-D navigation (the MAML paper's task and settings: 20 tasks x 20 episodes of 100
    steps, inner step 0.1) with a 64-64 policy instead of 100-100 and 8 minutes of MAML
    training (~1/4 of the paper's 500 iterations on this CPU); quick: 10 x 10, 2 minutes."""
    budget = ["learner.hidden_sizes=[64,64]"]
    if args.quick:
        budget += ["train.num_tasks=10", "learner.episodes_per_task=10"]
    minutes = args.minutes or (2.0 if args.quick else 8.0)
    return maml_rl_gap_rows("navigation", "navigation_maml_trpo", budget, minutes, args)


def halfcheetah_vel_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """HalfCheetahVel (target velocity U[0, 2]): MAML's 40 tasks x 20 episodes of 200 steps cut
    to 20 x 10 of 100 and a 64-64 policy so that 8 minutes buy ~100 meta-iterations on
    this CPU (the paper ran ~500 of the full size); quick: 10 x 5, 2 minutes."""
    minutes = args.minutes or (2.0 if args.quick else 8.0)
    budget = _cheetah_budget(args)
    return maml_rl_gap_rows("halfcheetah_vel", "halfcheetah_vel_maml_trpo", budget, minutes, args)


def _cheetah_budget(args: argparse.Namespace) -> list[str]:
    """MAML's 40 x 20 episodes of 200 steps cut to 20 x 10 of 100 (quick: 10 x 5), 64-64."""
    size = (
        ["train.num_tasks=10", "learner.episodes_per_task=5"]
        if args.quick
        else ["train.num_tasks=20", "learner.episodes_per_task=10"]
    )
    return ["learner.hidden_sizes=[64,64]", "learner.horizon=100", *size]


def halfcheetah_slope_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """HalfCheetah slopes: train on [-10, 10] degrees minus held-out bands; closure on unseen
    slopes inside the range (|angle| in [6.5, 7.5], split test) and beyond it ([12, 20],
    test_beyond). Budget cut as for HalfCheetahVel (20 x 10 of 100, 64-64) for this CPU."""
    minutes = args.minutes or (2.0 if args.quick else 8.0)
    splits = ("test", "test_beyond")
    return maml_rl_gap_rows(
        "halfcheetah_slope",
        "halfcheetah_slope_maml_trpo",
        _cheetah_budget(args),
        minutes,
        args,
        splits,
    )


def ant_slope_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Ant slopes, MAML-TRPO: the HalfCheetah-slope protocol and budget cut on the Ant (about
    7x slower to simulate, so a fraction of the iterations in the same minutes)."""
    minutes = args.minutes or (2.0 if args.quick else 8.0)
    splits = ("test", "test_beyond")
    budget = _cheetah_budget(args)
    return maml_rl_gap_rows("ant_slope", "ant_slope_maml_trpo", budget, minutes, args, splits)


# --- RL² and the memory policy: a trial's first episode against its last ----------------------


def rl2_gap_rows(
    family: str,
    methods: dict[str, str],
    budget: list[str],
    minutes: float,
    args: argparse.Namespace,
    splits: tuple[str, ...] = ("test",),
) -> list[dict[str, Any]]:
    """Each recurrent learner of `methods` (label -> shipped config) trains for `minutes`
    (`budget` overrides on top). On the held-out tasks of each split: the return of a trial's
    first episode (no experience of the task yet) and of its last (after `n - 1` episodes of
    it), beside the oracle -- the first config with the task parameters in its observation
    (`learner.task_in_obs`), trained on as many env steps -- and random actions. Gap closure
    = (last - first) / (oracle's last - first), NaN where the oracle is not above the first
    episode by more than its 95% CI (no gap to close). `args.override` is not applied here.
    """
    from agents.baselines_rl import gap_closure, random_returns

    samples: dict[tuple[str, str], list[torch.Tensor]] = {}
    info: dict[str, dict[str, Any]] = {}
    adapted: dict[str, str] = {}  # adapted row -> its first-episode row

    def record(split: str, name: str, values: torch.Tensor, row_info: dict[str, Any]) -> None:
        samples.setdefault((split, name), []).append(values)
        info[name] = row_info

    def run_info(run: Any, res: dict[str, Any], cmd: str) -> dict[str, Any]:
        horizon = run.learner.cfg.horizon or run.distribution.horizon
        steps = _training_steps(run.cfg, res, horizon)
        sec = res["train_seconds"]
        return {
            "env_steps": steps,
            "train_seconds": sec,
            "env_steps_per_s": steps / sec,
            "command": cmd,
        }

    for seed in args.seeds:
        trained = []
        for label, config in methods.items():
            run, res, cmd = train_rl2(config, [f"train.max_minutes={minutes}", *budget], seed)
            trained.append((label, run, res, cmd))
        label0, run0, res0, _ = trained[0]
        same = [f"train.iterations={res0['iterations']}", f"train.max_minutes={minutes}"]
        oracle = train_rl2(methods[label0], [*same, *budget, "learner.task_in_obs=true"], seed)
        for split in splits:
            gen = make_generator(seed, f"bench/{split}")
            tasks = run0.distribution.sample(split, args.test_tasks, gen)
            for label, run, res, cmd in trained:
                n = run.learner.cfg.episodes_per_trial
                with torch.no_grad():
                    curve = run.learner.adaptation_curve(tasks, n - 1)  # [n, T]
                row = run_info(run, res, cmd)
                first, last = f"{label}, episode 1", f"{label}, episode {n}"
                record(split, first, curve[0], row)
                record(split, last, curve[-1], row)
                adapted[last] = first
            run_o, res_o, cmd_o = oracle
            n = run_o.learner.cfg.episodes_per_trial
            with torch.no_grad():
                curve_o = run_o.learner.adaptation_curve(tasks, n - 1)
            row_o = run_info(run_o, res_o, cmd_o)
            record(split, f"oracle (task in obs), episode {n}", curve_o[-1], row_o)
            gen = make_generator(seed, f"bench/random/{split}")
            horizon = run0.learner.cfg.horizon
            rand = random_returns(run0.distribution, tasks, 1, gen, horizon)
            record(split, "random", rand, {"command": "agents.baselines_rl.random_returns"})

    rows = []
    for split in splits:
        mean = {
            n: torch.cat(v).double().mean().item() for (sp, n), v in samples.items() if sp == split
        }
        oracle_mean = next(v for k, v in mean.items() if k.startswith("oracle"))
        label = family + (f" ({split})" if len(splits) > 1 else "")
        for (sp, name), values in samples.items():
            if sp != split:
                continue
            method, extra = name, {}
            if name in adapted:
                first = torch.cat(samples[(split, adapted[name])])
                closure = gap_closure(mean[adapted[name]], mean[name], oracle_mean)
                if oracle_mean - mean[adapted[name]] < ci95(first):
                    closure = float("nan")  # the oracle is within noise of episode 1
                method, extra = f"{name}; gap closure {closure:.2f}", {"gap_closure": closure}
            rows.append(_row(label, method, torch.cat(values), **info[name], **extra))
    return rows


def _rl2_minutes(args: argparse.Namespace) -> float:
    return args.minutes or (1.5 if args.quick else 8.0)


def gridworld_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Gridworld game variants (test: variant combinations never trained on), trials of 3
    episodes: RL² (GRU 256) and the memory-augmented policy; quick: 16 games per iteration."""
    methods = {"RL² (GRU 256)": "gridworld_rl2", "memory policy": "gridworld_memory"}
    budget = ["train.num_tasks=16"] if args.quick else []
    return rl2_gap_rows("RL² gridworld games", methods, budget, _rl2_minutes(args), args)


def navigation_rl2_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """2-D navigation with RL² (trials of 2 episodes; the MAML section's tasks and seed)."""
    budget = ["train.num_tasks=16"] if args.quick else []
    methods = {"RL² (GRU 128)": "navigation_rl2"}
    return rl2_gap_rows("RL² navigation", methods, budget, _rl2_minutes(args), args)


def _rl2_mujoco_budget(args: argparse.Namespace) -> list[str]:
    return ["train.num_tasks=4", "learner.horizon=50"] if args.quick else []


def halfcheetah_slope_rl2_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """HalfCheetah slopes with RL² (trials of 2 episodes of 200 steps): unseen slopes inside
    the training range (test) and beyond it (test_beyond)."""
    return rl2_gap_rows(
        "RL² halfcheetah_slope",
        {"RL² (GRU 128)": "halfcheetah_slope_rl2"},
        _rl2_mujoco_budget(args),
        _rl2_minutes(args),
        args,
        ("test", "test_beyond"),
    )


def terrain_rl2_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """HalfCheetah on height-field terrain with RL² (trials of 2 episodes): unseen terrains."""
    methods = {"RL² (GRU 128)": "terrain_rl2"}
    budget = _rl2_mujoco_budget(args)
    return rl2_gap_rows("RL² terrain", methods, budget, _rl2_minutes(args), args)


SECTIONS: dict[str, Callable[[argparse.Namespace], list[dict[str, Any]]]] = {
    "bandits": bandit_rows,
    "tabular": tabular_rows,
    "throughput": throughput_rows,
    "navigation": navigation_rows,
    "halfcheetah_vel": halfcheetah_vel_rows,
    "halfcheetah_slope": halfcheetah_slope_rows,
    "ant_slope": ant_slope_rows,
    "gridworld": gridworld_rows,
    "navigation_rl2": navigation_rl2_rows,
    "halfcheetah_slope_rl2": halfcheetah_slope_rl2_rows,
    "terrain_rl2": terrain_rl2_rows,
    **ti.SECTIONS,  # the task-inference learner beside its blind and oracle policies
}


def to_markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Meta-RL benchmark",
        "",
        f"`{' '.join(sys.argv)}` on {torch.get_num_threads()} CPU thread(s)"
        f"{' + ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}; "
        f"RL² budget {args.iterations} meta-iterations per run, seeds {args.seeds}, "
        f"{args.test_tasks} held-out test tasks per seed. Totals are the summed reward of one "
        "trial; CI = 1.96 std / sqrt(n) over (task, seed).",
        "",
    ]
    for fam in dict.fromkeys(r["family"] for r in rows):
        lines += [f"## {fam}", ""]
        lines += [
            "| method | total return | 95% CI | paper | env steps | wall-clock s | env steps/s | command |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in (r for r in rows if r["family"] == fam):

            def f(key: str, fmt: str, r: dict[str, Any] = r) -> str:
                return format(r[key], fmt) if key in r else ""

            method = r["method"] + (f" ({r['speedup']:.1f}x)" if "speedup" in r else "")
            lines.append(
                f"| {method} | {f('mean', '.2f')} | {f('ci95', '.2f')} | {f('paper', '')} | "
                f"{f('env_steps', ',')} | {f('train_seconds', '.1f')} | "
                f"{f('env_steps_per_s', ',.0f')} | `{r.get('command', '')}` |"
            )
        lines.append("")
        lines += _ttt_lines([r for r in rows if r["family"] == fam])
    return "\n".join(lines)


def _ttt_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The time-to-target table of a family's RL² row (with `--eval-every`), one line a seed."""
    runs = [t for r in rows for t in r.get("time_to_target", [])]
    if not runs:
        return []
    marks = " | ".join(f"total at {m} min" for m in TTT_MARKS)
    lines = [
        f"Time to target (90% of the paper, {runs[0]['ttt_target']:.2f}; validation tasks, "
        "wall-clock includes the in-training evaluations):",
        "",
        f"| seed | wall-clock to target s | env steps to target | {marks} |",
        "| --- | ---: | ---: |" + " ---: |" * len(TTT_MARKS),
    ]

    def fmt(v: Any, spec: str) -> str:
        return "not reached" if v is None else format(v, spec)

    for t in runs:
        at = " | ".join(
            "-" if t[f"total_at_{m}min"] is None else f"{t[f'total_at_{m}min']:.2f}"
            for m in TTT_MARKS
        )
        lines.append(
            f"| {t['seed']} | {fmt(t['ttt_seconds'], '.0f')} | {fmt(t['ttt_env_steps'], ',')} "
            f"| {at} |"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run in minutes")
    p.add_argument("--iterations", type=int, default=None, help="meta-iterations per RL² run")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--test-tasks", type=int, default=None)
    p.add_argument("--override", nargs="*", default=[], help="extra config overrides")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument(
        "--trial-lengths",
        type=int,
        nargs="+",
        default=None,
        help="bandits / tabular: only the configs with these trial lengths n (default: all)",
    )
    p.add_argument(
        "--arms",
        type=int,
        nargs="+",
        default=None,
        help="bandits: only the configs with these arm counts k (default: all)",
    )
    p.add_argument(
        "--minutes", type=float, default=None, help="MAML-RL sections: training minutes per run"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="RL² bandits / tabular: evaluate every N meta-iterations during training and "
        "report time to 90%% of the paper and the total at 15 / 30 / 60 minutes",
    )
    p.add_argument("--ti-iterations", type=int, default=None, help="task inference: iterations")
    p.add_argument("--ti-phase2", type=int, default=None, help="task inference: phase2_start")
    p.add_argument("--ti-config", default=None, help="task inference flagship: another config")
    p.add_argument(
        "--ti-random-only",
        action="store_true",
        help="task inference: only the random row (no training), on the same held-out tasks",
    )
    p.add_argument("--out", default="results/metarl")
    args = p.parse_args(argv)
    if args.iterations is None:
        args.iterations = 30 if args.quick else 300
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1]
    if args.test_tasks is None:
        args.test_tasks = 200 if args.quick else 500
    if args.quick:
        args.user_override = list(args.override)  # what task inference applies (no RL² keys)
        args.override = ["train.num_tasks=64", "learner.hidden_size=64", *args.override]
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for name in args.sections:
        started = time.perf_counter()
        rows += SECTIONS[name](args)
        print(f"[{name}] {time.perf_counter() - started:.0f}s", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = to_markdown(rows, args)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"argv": sys.argv, "rows": rows}, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
