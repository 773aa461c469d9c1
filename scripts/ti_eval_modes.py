"""Task inference: a trained run's episode-1 return with the policy's mode and with sampled
actions, on the held-out tasks of `scripts/bench_metarl.py` (`bench/test` generator of the
run's seed), whatever `learner.eval_deterministic` the run was trained with.

    python scripts/ti_eval_modes.py RUN_DIR [--tasks 200] [--threads 1]

Prints one line per mode: mean return of episode 1 and its 95% interval (1.96 std / sqrt(n)).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from _ti_run import load_task_inference, usage_error


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="a task_inference run directory")
    p.add_argument("--tasks", type=int, default=200, help="held-out tasks (default 200)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args()
    if args.tasks < 2:
        usage_error("--tasks: give at least 2 held-out tasks")
    run, tasks = load_task_inference(args.run_dir, args.tasks, args.threads)
    learner = run.learner
    for deterministic in (True, False):
        learner.cfg = dataclasses.replace(learner.cfg, eval_deterministic=deterministic)
        ret = learner.adaptation_curve(tasks, 0)[0]  # episode 1 of each task [T]
        ci = 1.96 * ret.std().item() / len(ret) ** 0.5
        name = "mode (deterministic)" if deterministic else "sampled"
        print(f"{name:>21}: {ret.mean().item():.2f} +- {ci:.2f} on {len(ret)} tasks")


if __name__ == "__main__":
    main()
