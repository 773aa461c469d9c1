"""Where the time of one RL² meta-step goes, and its whole-loop throughput, on one CPU thread.

Builds a shipped RL² config's learner (same network), runs warm-up meta-steps, then times
`--steps` meta-steps split into rollout (`play`), advantage estimation and the PPO update,
and reports env steps per second of the whole loop (median over meta-steps). With
`--cprofile N` it also prints the top-N functions by cumulative time of one meta-step.

    python scripts/profile_rl2.py bandit_rl2_k5_n100 tabular_rl2_n10 [--steps 5] [--json F]
        [--variant ""] [--variant learner.ppo_epochs=2,learner.minibatches=2] [--cprofile 30]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metarl import registry  # noqa: E402
from metarl.seeding import make_generator  # noqa: E402


def build(config: str, overrides: list[str], device: str = "cpu") -> tuple[Any, Any, int]:
    cfg = registry.load_config(config, [f"device={device}", *overrides])
    dist = registry.build_distribution(cfg, torch.device(device))
    learner = registry.build_learner(cfg, dist, torch.device(device))
    return learner, dist, int(cfg.train.num_tasks)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # the loop queues kernels without waiting: time what ran
        torch.cuda.synchronize(device)


def one_step(learner: Any, dist: Any, num_tasks: int, gen: torch.Generator) -> dict[str, float]:
    tasks = dist.sample("train", num_tasks, gen)
    c, dev = learner.cfg, learner.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    t0 = time.perf_counter()
    traj = learner.play(tasks, c.episodes_per_trial, c.trials_per_task, learner.train_generator)
    _sync(dev)
    t1 = time.perf_counter()
    tb = traj.trials()
    learner.advantages(tb)
    _sync(dev)
    t2 = time.perf_counter()
    learner._ppo(tb)
    _sync(dev)
    t3 = time.perf_counter()
    extra = (
        {"cuda_max_mib": torch.cuda.max_memory_allocated(dev) / 2**20} if dev.type == "cuda" else {}
    )
    return {
        **extra,
        "rollout_s": t1 - t0,
        "advantages_s": t2 - t1,  # trials() + GAE (the PPO update computes GAE once more)
        "ppo_s": t3 - t2,
        "total_s": t3 - t0,
        "env_steps": float(traj.env_steps),
    }


def profile(
    config: str,
    overrides: list[str],
    variants: list[list[str]],
    steps: int,
    top: int,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Median timings of each variant (extra overrides) of `config`, timed round-robin (one
    meta-step of each in turn), so every variant sees the same machine load."""
    built = [build(config, [*overrides, *v], device) for v in variants]
    gens = [make_generator(0, "profile/tasks", device) for _ in variants]
    for (learner, dist, num_tasks), gen in zip(built, gens, strict=True):
        one_step(learner, dist, num_tasks, gen)  # warm-up
    rows: list[list[dict[str, float]]] = [[] for _ in variants]
    for _ in range(steps):
        for i, ((learner, dist, num_tasks), gen) in enumerate(zip(built, gens, strict=True)):
            rows[i].append(one_step(learner, dist, num_tasks, gen))
    out = []
    for r in rows:
        med = {k: statistics.median(x[k] for x in r) for k in r[0]}
        med["env_steps_per_s"] = statistics.median(x["env_steps"] / x["total_s"] for x in r)
        out.append(med)
    if top:
        learner, dist, num_tasks = built[0]
        prof = cProfile.Profile()
        prof.enable()
        one_step(learner, dist, num_tasks, gens[0])
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(top)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--steps", type=int, default=5, help="timed meta-steps (median)")
    parser.add_argument("--cprofile", type=int, default=0, help="print the top N by own time")
    parser.add_argument("--override", action="append", default=[], help="section.key=value")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="extra overrides of one variant, comma-separated (repeat; the first is the "
        "baseline of the speed-up column), e.g. learner.ppo_epochs=2,learner.minibatches=2",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="cuda adds a CUDA max column"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    variants = [v.split(",") if v else [] for v in args.variant] or [[]]
    out = {}
    cuda = args.device == "cuda"
    print(
        "| config | variant | rollout s | trials + GAE s | PPO update s | meta-step s "
        "| env steps | env steps/s | vs first |" + (" CUDA max MiB |" if cuda else "")
    )
    print(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        + (" ---: |" if cuda else "")
    )
    for name in args.configs:
        meds = profile(name, args.override, variants, args.steps, args.cprofile, args.device)
        out[name] = {" ".join(v) or "shipped": m for v, m in zip(variants, meds, strict=True)}
        for v, m in zip(variants, meds, strict=True):
            print(
                f"| {name} | {' '.join(v) or 'shipped'} | {m['rollout_s']:.3f} | "
                f"{m['advantages_s']:.3f} | {m['ppo_s']:.3f} | {m['total_s']:.3f} | "
                f"{m['env_steps']:,.0f} | {m['env_steps_per_s']:,.0f} | "
                f"{m['env_steps_per_s'] / meds[0]['env_steps_per_s']:.2f}x |"
                + (f" {m['cuda_max_mib']:,.0f} |" if cuda else ""),
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv[1:], "rows": out}, indent=2))


if __name__ == "__main__":
    main()
