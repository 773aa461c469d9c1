"""Meta-iteration time on 1 and 2 processes (one core each, torchrun + gloo) for MAML on
Omniglot (5-way 1-shot, second order, 32 tasks) and MAML-TRPO on HalfCheetahVel (40 tasks),
and the time spent communicating. Prints a table, writes `results/scale.md` and `.json`;
every row carries the command that reproduces it.

    python scripts/bench_scale.py                 # the full measurement (idle cores!)
    python scripts/bench_scale.py --quick         # tiny budgets: checks the script, not speed

Each process is pinned to its own core (`sched_setaffinity`, rank r -> core r) with one torch
thread, so 1 process uses one core and 2 processes two. Every rank runs the trainer's own
`meta_iteration` (its shard of the meta-batch, gradients summed by the optimiser hooks);
rank 0's wall time per iteration is reported (median after a warm-up iteration), with:
- comm: seconds per iteration inside `metarl.distributed`'s collectives (gradient sums, and
  for MAML-TRPO its Fisher-vector products and line search); it includes waiting for the
  slower rank;
- all-reduce: one sum of the whole gradient buffer alone (ranks lined up by a barrier first),
  the pure transfer cost.
A learner that refuses to train on several processes gets the row "not distributed yet".
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

BENCHES: dict[str, dict[str, Any]] = {
    "maml_omniglot": {
        "title": "MAML Omniglot 5w1s, 2nd order, 32 tasks",
        "config": "omniglot_maml_5w1s",
        "overrides": [],
        "quick": ["learner.conv_channels=8", "train.num_tasks=4", "task.queries=2"],
        "iterations": 5,
    },
    "maml_trpo_halfcheetah": {
        "title": "MAML-TRPO HalfCheetahVel, 40 tasks",
        "config": "halfcheetah_vel_maml_trpo",
        "overrides": [],
        "quick": [
            "train.num_tasks=2",
            "learner.episodes_per_task=2",
            "learner.horizon=10",
            "learner.hidden_sizes=[8,8]",
        ],
        "iterations": 3,
    },
}


# -- one process of a measurement (run by torchrun, or directly for 1 process) ---------------
def worker(config: str, overrides: list[str], iterations: int, out: Path, pin: bool = True) -> None:
    """Time `iterations` meta-iterations (after one warm-up) of this rank; rank 0 writes `out`.
    `pin`: this process on core `RANK` alone."""
    import torch

    from metarl import distributed as dist
    from metarl.errors import UsageError
    from metarl.registry import load_config
    from metarl.trainer import build_run, check_distributable, distribute, meta_iteration

    rank = int(os.environ.get("RANK", "0"))
    if pin and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[rank % len(cores)]})
    torch.set_num_threads(1)
    cfg = load_config(config, ["device=cpu", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        world = dist.init_world(torch.device("cpu"))
        run = build_run(cfg, Path(tmp) / "run", threads=1)
        try:
            check_distributable(run.learner, cfg)
        except UsageError as exc:
            if world.is_main:
                out.write_text(json.dumps({"refused": str(exc)}))
            return
        hooks = distribute(run)
        seconds, comm = [], []
        for _ in range(iterations + 1):  # the first one warms up (lazy optimiser, caches)
            dist.barrier()
            before, started = dist.comm_seconds(), time.perf_counter()
            meta_iteration(run)
            seconds.append(time.perf_counter() - started)
            comm.append(dist.comm_seconds() - before)
        params = learner_params(run.learner)
        for p in params:  # a stand-in gradient: the buffer's size is what the transfer costs
            p.grad = torch.ones_like(p)
        transfer = []
        for _ in range(5):
            dist.barrier()
            started = time.perf_counter()
            dist.sync_grads_(params, 1.0)
            transfer.append(time.perf_counter() - started)
        for hook in hooks:
            hook.remove()
        if world.is_main:
            result = {
                "world_size": world.size,
                "seconds": seconds[1:],
                "comm_seconds": comm[1:],
                "allreduce_seconds": transfer,
                "grad_numel": sum(p.numel() for p in params),
            }
            out.write_text(json.dumps(result))
        dist.close_world()


def learner_params(learner: Any) -> list[Any]:
    """The parameters the meta-gradient is summed over: those of the learner's optimisers,
    else (TRPO steps without one) those of its modules (`model`, `policy`, ...)."""
    from torch import nn

    from metarl import distributed as dist

    params = [
        p for o in dist.learner_optimizers(learner) for g in o.param_groups for p in g["params"]
    ]
    if params:
        return params
    modules = [m for m in vars(learner).values() if isinstance(m, nn.Module)]
    return [p for m in modules for p in m.parameters() if p.requires_grad]


# -- the driver ---------------------------------------------------------------------------
def command(
    bench: str, procs: int, quick: bool, iterations: int, out: Path, port: int | None = None
) -> list[str]:
    """The worker's command line (`port` None: the one printed, without a port)."""
    b = BENCHES[bench]
    overrides = b["overrides"] + (b["quick"] if quick else [])
    worker_args = [
        "scripts/bench_scale.py",
        "--worker",
        b["config"],
        "--iterations",
        str(iterations),
        "--out",
        str(out),
        *[f"--set={o}" for o in overrides],
    ]
    if procs == 1:
        return [sys.executable, *worker_args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs)]
    if port is not None:
        launcher += ["--master-port", str(port)]
    return [*launcher, *worker_args]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(bench: str, procs: int, quick: bool, iterations: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = command(bench, procs, quick, iterations, out, _free_port())
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise SystemExit(
                f"bench_scale: {bench} on {procs} processes failed:\n" + "\n".join(tail)
            )
        result = json.loads(out.read_text())
    shown = command(bench, procs, quick, iterations, Path("OUT.json"))
    result["command"] = "OMP_NUM_THREADS=1 python " + shlex.join(shown[1:])
    return result


def row(bench: str, procs: int, r: dict[str, Any], base: float | None) -> dict[str, Any]:
    title = BENCHES[bench]["title"]
    if "refused" in r:
        return {
            "bench": bench,
            "title": title,
            "processes": procs,
            "refused": r["refused"],
            "command": r["command"],
        }
    median = statistics.median(r["seconds"])
    comm = statistics.median(r["comm_seconds"])
    return {
        "bench": bench,
        "title": title,
        "processes": procs,
        "median_seconds": median,
        "seconds": r["seconds"],
        "speedup": (base / median) if base else 1.0,
        "comm_seconds": comm,
        "comm_fraction": comm / median if median > 0 else 0.0,
        "allreduce_seconds": statistics.median(r["allreduce_seconds"]),
        "grad_numel": r["grad_numel"],
        "command": r["command"],
    }


def table(rows: list[dict[str, Any]], iterations: dict[str, int]) -> str:
    lines = [
        "| benchmark | processes | s / meta-iteration (median) | speed-up | comm s / it (share) "
        "| gradient all-reduce s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['title']} | {r['processes']} | not distributed yet | | | |")
            continue
        comm = f"{r['comm_seconds']:.4f} ({100 * r['comm_fraction']:.1f}%)"
        lines.append(
            f"| {r['title']} | {r['processes']} | {r['median_seconds']:.3f} "
            f"(of {iterations[r['bench']]}) | {r['speedup']:.2f}x | {comm} "
            f"| {r['allreduce_seconds']:.5f} ({r['grad_numel']} numbers) |"
        )
    lines.append("")
    lines += [f"- `{r['command']}`" for r in rows]
    refusals = {r["refused"] for r in rows if "refused" in r}
    lines += [f"- not distributed yet: {text}" for text in sorted(refusals)]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets (checks the script)")
    p.add_argument("--bench", action="append", choices=list(BENCHES), help="default: all")
    p.add_argument("--iterations", type=int, help="timed meta-iterations (default per bench)")
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "results" / "scale.json",
        help="JSON path; the table goes beside it as .md",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.set, args.iterations or 1, args.out)
        return
    benches = args.bench or list(BENCHES)
    iterations = {
        b: args.iterations or (2 if args.quick else BENCHES[b]["iterations"]) for b in benches
    }
    rows = []
    for bench in benches:
        one = measure(bench, 1, args.quick, iterations[bench])
        rows.append(row(bench, 1, one, None))
        two = measure(bench, 2, args.quick, iterations[bench])
        base = rows[-1].get("median_seconds")
        rows.append(row(bench, 2, two, base))
        print(f"{bench}: done", flush=True)
    text = table(rows, iterations)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"quick": args.quick, "rows": rows}, indent=2))
    args.out.with_suffix(".md").write_text(
        "# Scaling: 1 and 2 processes, one core each\n\n"
        + ("(--quick: tiny budgets, not a measurement)\n\n" if args.quick else "")
        + text
        + "\n"
    )


if __name__ == "__main__":
    main()
