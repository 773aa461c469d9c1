"""Pace family: how fast a trained task-inference run's agent goes for each commanded pace.

    python scripts/ti_pace_response.py RUN_DIR [--tasks 20] [--paces 0 0.5 1 1.5 2]

Takes `--tasks` held-out robots of the benchmark's draw (`bench/test` generator of the run's
seed), sets every robot's target pace to each value of `--paces` in turn and plays episode 1
with the run's own evaluation actor (oracle: the true task; learner: history only; blind: no
task), from the same initial states for every pace. Prints per pace the mean forward velocity
over the episode (HalfCheetah's qvel[0], the observation's 9th entry) and the mean return. A
policy that uses the pace goes faster when asked to; one that never learnt to run stays near
0 m/s whatever it is asked (results/task_inference_terrain_widened.md).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from _ti_run import load_task_inference, usage_error

VELOCITY = 8  # HalfCheetah observation: qpos[1:] (8 numbers), then qvel (qvel[0]: forward)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path, help="a task_inference run on the pace family")
    p.add_argument("--tasks", type=int, default=20, help="held-out robots (default 20)")
    p.add_argument("--paces", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args()
    if args.tasks < 1:
        usage_error("--tasks: give at least 1 held-out robot")
    run, tasks = load_task_inference(args.run_dir, args.tasks, args.threads)
    learner = run.learner
    if not hasattr(tasks, "velocity"):
        usage_error(f"{args.run_dir} is not on the pace family (task.goal: pace)")
    state = learner.eval_generator.get_state()
    for pace in args.paces:  # the same initial states and evaluation draws for every pace
        learner.eval_generator.set_state(state)
        paced = dataclasses.replace(tasks, velocity=torch.full_like(tasks.velocity, pace))
        traj = learner.adapt(paced, 0)  # episode 1, the run's evaluation actor
        ret = traj.returns_by_episode_index()[:, 0]  # [T]
        steps = traj.trials()
        valid = steps.mask > 0
        speed = steps.obs[..., VELOCITY][valid].mean().item()
        print(f"pace {pace:4.2f} m/s: mean velocity {speed:5.2f} m/s, return {ret.mean():8.1f}")


if __name__ == "__main__":
    main()
