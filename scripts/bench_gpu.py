"""The GPU path's benchmark sections, each in a fresh process with its own timeout.

    python scripts/bench_gpu.py                      # on a GPU machine (what gpu_check.sh runs)
    python scripts/bench_gpu.py --device cpu --quick # tiny sizes on the CPU (tested)
        [--sections env,rl2,maml,protonet,ddp] [--budget 300] [--out results/gpu.md]

Sections (targets of issue 15, for an H100/H200-class GPU):
- env:      bandit tensor env, 4096 tasks x 4096 copies (halved until it fits): env steps/s
- rl2:      the RL² bandit training loop (rollout + PPO, k=5, n=10, GRU 256) on the device
            with the tensor env, over the same loop on the CPU with Gymnasium's SyncVectorEnv
            of single bandit envs: ratio of env steps/s
- maml:     second-order MAML, Omniglot 5-way 1-shot, 32 tasks: median seconds per
            meta-iteration
- protonet: ProtoNet, Omniglot 60-way training episodes: median iterations/s
- ddp:      with two GPUs, a tiny MAML run in one process and with
            `torchrun --nproc-per-node 2 -m metarl train ...`: the final checkpoints'
            parameters compared with torch.allclose (skipped with fewer GPUs, or reported as
            "skipped: torchrun path failed: <first line>" when that path fails)
Every row carries CUDA peak memory and the section's wall time ("-" on the CPU) and the
command that reproduces it. Prints the table, writes it (markdown) and the rows (JSON).
The total stays within `--budget` seconds: each section's timeout is the smaller of its own
limit and what is left.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _cuda_stats import mib, timed  # noqa: E402

# section -> (what the number is, target, direction, timeout in seconds)
SECTIONS: dict[str, tuple[str, float, str, float]] = {
    "env": ("bandit env steps/s", 1e7, ">=", 60),
    "rl2": ("RL² loop vs SyncVectorEnv (x)", 100.0, ">=", 120),
    "maml": ("MAML 2nd-order 5w1s, 32 tasks: s/iteration", 0.1, "<=", 90),
    "protonet": ("ProtoNet 60-way: iterations/s", 50.0, ">=", 60),
    "ddp": ("1 vs 2 GPUs: max abs param difference", 0.0, "allclose", 150),
}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _omniglot(args: argparse.Namespace) -> list[str]:
    return [f"task.data_dir={args.data_dir}"] if args.data_dir else []


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- sections (each runs in its own process and returns its row's measurements) ------------


def env_section(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from envs.tensor import BanditVectorEnv

    tasks, copies, steps = (64, 64, 20) if args.quick else (4096, 4096, 50)
    while True:
        try:
            env = BanditVectorEnv(
                num_envs=tasks * copies,
                envs_per_task=copies,
                device=device,
                check_actions=False,
                num_arms=5,
            )
            env.reset(seed=0)
            g = torch.Generator(device).manual_seed(0)
            actions = torch.randint(0, 5, (env.num_envs,), generator=g, device=device)
            for _ in range(3):  # warm-up (and the memory of a step)
                env.step(actions)
            break
        except torch.cuda.OutOfMemoryError:
            if copies == 1:
                raise
            copies //= 2
            torch.cuda.empty_cache()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(actions)
    _sync(device)
    rate = env.num_envs * steps / (time.perf_counter() - start)
    return {"number": rate, "detail": f"{tasks} tasks x {copies} copies, {steps} steps"}


def _rl2_rate(learner: Any, dist: Any, num_tasks: int, device: torch.device, reps: int) -> float:
    from metarl.seeding import make_generator

    gen = make_generator(0, "bench/gpu_rl2", device)
    learner.meta_step(dist.sample("train", num_tasks, gen))  # warm-up
    rates = []
    for _ in range(reps):
        tasks = dist.sample("train", num_tasks, gen)
        _sync(device)
        start = time.perf_counter()
        steps = learner.meta_step(tasks)["env_steps"]
        _sync(device)
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def rl2_section(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from bench_metarl import SyncVectorBandits

    from metarl import registry

    ours_tasks, peer_tasks, reps = (16, 4, 1) if args.quick else (4096, 256, 3)
    small = ["learner.hidden_size=32"] if args.quick else []
    cfg = registry.load_config("bandit_rl2_k5_n10", [f"device={device.type}", *small])
    dist = registry.build_distribution(cfg, device)
    ours = _rl2_rate(registry.build_learner(cfg, dist, device), dist, ours_tasks, device, reps)
    cpu = torch.device("cpu")
    cpu_cfg = registry.load_config("bandit_rl2_k5_n10", ["device=cpu", *small])
    cpu_dist = registry.build_distribution(cpu_cfg, cpu)
    peer = registry.build_learner(cpu_cfg, cpu_dist, cpu)
    peer._envs[(peer_tasks, 1)] = SyncVectorBandits(5, 1, peer_tasks, 1)
    peer_rate = _rl2_rate(peer, cpu_dist, peer_tasks, cpu, reps)
    return {
        "number": ours / peer_rate,
        "detail": (
            f"{ours:,.0f} env steps/s ({ours_tasks} tasks on {device.type}) vs "
            f"{peer_rate:,.0f} (SyncVectorEnv, {peer_tasks} tasks, CPU, "
            f"{torch.get_num_threads()} threads)"
        ),
    }


def _median_step_seconds(run: Any, num_tasks: int, reps: int, device: torch.device) -> float:
    batches = [run.distribution.sample("train", num_tasks, run.generator) for _ in range(reps + 2)]
    times = []
    for i, tasks in enumerate(batches):
        _sync(device)
        start = time.perf_counter()
        run.learner.meta_step(tasks)  # returns floats: the step has finished
        _sync(device)
        if i >= 2:  # two warm-up iterations (kernel selection, lazy optimiser state)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def maml_section(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from metarl.registry import load_config
    from metarl.trainer import build_run

    num_tasks, reps = (2, 2) if args.quick else (32, 10)
    small = ["learner.conv_channels=8"] if args.quick else []
    over = [f"device={device.type}", "learner.first_order=false", *small, *_omniglot(args)]
    run = build_run(load_config("omniglot_maml_5w1s", over), None)  # type: ignore[arg-type]
    sec = _median_step_seconds(run, num_tasks, reps, device)
    return {"number": sec, "detail": f"{num_tasks} tasks, median of {reps}"}


def protonet_section(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from metarl.registry import load_config
    from metarl.trainer import build_run

    ways, reps = (10, 2) if args.quick else (60, 30)
    over = [f"device={device.type}", f"task.train_ways={ways}", *_omniglot(args)]
    run = build_run(load_config("omniglot_protonet_5w1s", over), None)  # type: ignore[arg-type]
    sec = _median_step_seconds(run, 1, reps, device)
    return {"number": 1.0 / sec, "detail": f"{ways}-way 1-shot 5 queries, median of {reps}"}


DDP_CONFIG = "sinusoid_maml"
DDP_OVERRIDES = [
    "train.iterations=4",
    "train.num_tasks=4",
    "train.eval_interval=0",
    "train.checkpoint_interval=4",
    "eval.final_num_tasks=4",
    "eval.batch_tasks=4",
    "eval.max_budget=1",
]


def _first_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1].strip() if lines else "no output"


def ddp_section(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if gpus < 2:
        return {"skipped": f"skipped: needs 2 CUDA GPUs, this machine has {gpus}"}
    over = [*DDP_OVERRIDES, "device=cuda"]
    out = Path(tempfile.mkdtemp(prefix="metarl_ddp_"))
    base = [sys.executable, "-m", "metarl", "train", DDP_CONFIG, *over, "--no-progress"]
    one = subprocess.run([*base, "--run-dir", str(out / "one")], capture_output=True, text=True)
    if one.returncode != 0:
        return {"skipped": f"skipped: 1-process run failed: {_first_line(one.stderr)}"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    two = subprocess.run(
        [*launcher, "-m", "metarl", "train", DDP_CONFIG, *over, "--no-progress"]
        + ["--run-dir", str(out / "two")],
        capture_output=True,
        text=True,
    )
    if two.returncode != 0:
        return {"skipped": f"skipped: torchrun path failed: {_first_line(two.stderr)}"}
    a, b = (
        torch.load(out / d / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        for d in ("one", "two")
    )
    ma, mb = a["learner"]["model"], b["learner"]["model"]
    if sorted(ma) != sorted(mb):
        return {"number": float("inf"), "met": False, "detail": "different parameter names"}
    diff = max(float((ma[k].double() - mb[k].double()).abs().max()) for k in ma)
    close = all(torch.allclose(ma[k], mb[k], rtol=1e-5, atol=1e-6) for k in ma)
    return {"number": diff, "met": close, "detail": f"{DDP_CONFIG}, allclose={close}"}


RUNNERS = {
    "env": env_section,
    "rl2": rl2_section,
    "maml": maml_section,
    "protonet": protonet_section,
    "ddp": ddp_section,
}


def command(name: str, args: argparse.Namespace) -> str:
    if name == "ddp":
        over = " ".join([*DDP_OVERRIDES, "device=cuda"])
        return f"torchrun --nproc-per-node 2 -m metarl train {DDP_CONFIG} {over} (vs 1 process)"
    quick = " --quick" if args.quick else ""
    return f"python scripts/bench_gpu.py --sections {name} --device {args.device}{quick}"


def child(args: argparse.Namespace) -> None:
    """Run one section here and print its row as the last line of stdout (JSON)."""
    torch.set_num_threads(args.threads)
    device = _device(args.device)
    with timed(device) as t:
        row = RUNNERS[args.child](args, device)
    row.update(seconds=t.seconds, cuda_max_mib=t.cuda_max_mib)
    print(json.dumps(row))


def run_section(name: str, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    what, target, direction, _ = SECTIONS[name]
    row: dict[str, Any] = {"section": name, "what": what, "target": target, "direction": direction}
    row["command"] = command(name, args)
    cmd = [sys.executable, __file__, "--child", name, "--device", args.device]
    cmd += ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        return {**row, "number": None, "met": False, "note": f"timed out after {timeout:.0f} s"}
    row["seconds"] = time.perf_counter() - start
    if proc.returncode != 0:
        note = f"failed: {_first_line(proc.stderr)}"
        return {**row, "number": None, "met": False, "note": note}
    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    if "skipped" in row:
        return {**row, "number": None, "met": None, "note": row.pop("skipped")}
    if args.quick:  # tiny sizes: a number, not a verdict on the target
        row["met"] = None
    elif "met" not in row:
        n = row["number"]
        row["met"] = n >= target if direction == ">=" else n <= target
    return row


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"


def _seconds(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def markdown(rows: list[dict[str, Any]], device: str, quick: bool) -> str:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
    lines = [
        "# GPU check",
        "",
        f"Device: {device} ({name}), torch {torch.__version__}"
        + (", --quick (tiny sizes: not the targets' sizes)" if quick else "")
        + ". Each section ran in a fresh process; CUDA max = `torch.cuda.max_memory_allocated`.",
        "",
        "| section | number | target | met? | CUDA max MiB | time s | command |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        target = (
            "allclose" if r["direction"] == "allclose" else f"{r['direction']} {_fmt(r['target'])}"
        )
        met = {True: "yes", False: "no", None: "-"}[r.get("met")]
        number = _fmt(r.get("number")) if r.get("number") is not None else r.get("note", "-")
        detail = f" ({r['detail']})" if r.get("detail") else ""
        lines.append(
            f"| {r['section']}: {r['what']} | {number}{detail} | {target} | {met} | "
            f"{mib(r.get('cuda_max_mib'))} | {_seconds(r.get('seconds'))} | `{r['command']}` |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke run)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    p.add_argument("--budget", type=float, default=300.0, help="seconds for all sections")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per section")
    p.add_argument("--data-dir", default=None, help="Omniglot folder (default: the usual search)")
    p.add_argument("--out", default=str(ROOT / "results" / "gpu.md"))
    p.add_argument("--json", default=None, help="rows as JSON (default: --out with .json)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        print(f"bench_gpu: unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: --device cuda but torch sees no CUDA GPU; use --device cpu")
        return 2
    deadline = time.perf_counter() + args.budget
    rows = []
    for name in names:
        left = deadline - time.perf_counter()
        rows.append(run_section(name, args, min(SECTIONS[name][3], left)))
        print(f"bench_gpu: {name}: {rows[-1].get('note') or _fmt(rows[-1].get('number'))}")
    text = markdown(rows, str(_device(args.device)), args.quick)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    Path(args.json or out.with_suffix(".json")).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
