"""Throughput of the batched tensor envs against the fastest CPU peer and SyncVectorEnv.

For every `metarl/*` tensor env and 1, 64 and 4096 copies: env steps per second of the batched
env (CPU, and CUDA when present); of the fastest CPU peer with the same per-copy task
parameters (Gymnasium's native numpy vector env where one exists -- CartPole-v1 with
`vectorization_mode="vector_entry_point"` --, else the plain numpy vectorised implementation
of the same dynamics in `scripts/_numpy_peers.py`); and of a `gymnasium.vector.SyncVectorEnv`
of the single-env view. All measured in the same run, one CPU thread, ours and the peer
interleaved repeat by repeat, medians. SyncVectorEnv at 4096 copies is slow, so it is timed
over a fixed small number of steps. If `scripts/bench_envs_mujoco.py` exists, its section is
appended.

    python scripts/bench_envs.py --out results/envs.json --md results/envs.md [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import envs  # noqa: E402,F401  (registers the ids)
from envs.tensor.registration import TENSOR_ENVS  # noqa: E402
from scripts._cuda_stats import mib, timed  # noqa: E402
from scripts._numpy_peers import NUMPY_PEERS  # noqa: E402

GYM_PEERS = {"metarl/CartPoleVariant-v0": "CartPole-v1"}

TARGET_IDS = ("metarl/Bandit-v0", "metarl/TabularMDP-v0", "metarl/Navigation2D-v0")


def _actions(space: gymnasium.Space, count: int, device: torch.device) -> list[torch.Tensor]:
    space.seed(0)
    return [torch.as_tensor(space.sample(), device=device) for _ in range(count)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timer(step, copies: int, seconds: float, device: torch.device):
    """`step(i)` calls; returns `rate()`: env steps/s of one timed block (length from a probe)."""
    for i in range(20):  # warm-up, and a step-time estimate
        step(i)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(20):
        step(i)
    _sync(device)
    per_step = (time.perf_counter() - t0) / 20
    steps = max(20, min(20_000, int(seconds / max(per_step, 1e-7))))

    def rate() -> float:
        _sync(device)
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        _sync(device)
        return copies * steps / (time.perf_counter() - t0)

    return rate


def batched_stepper(env_id: str, copies: int, device: torch.device):
    env = gymnasium.make_vec(env_id, num_envs=copies, device=device)
    env.reset(seed=0)
    acts = _actions(env.action_space, 16, device)
    return lambda i: env.step(acts[i % 16])


def peer_stepper(env_id: str, copies: int) -> tuple[str, Any]:
    """(peer name, step function) of the fastest CPU peer of `env_id`."""
    if env_id in GYM_PEERS:
        gid = GYM_PEERS[env_id]
        env = gymnasium.make_vec(gid, num_envs=copies, vectorization_mode="vector_entry_point")
        env.reset(seed=0)
        env.action_space.seed(0)
        acts = [env.action_space.sample() for _ in range(16)]
        return f"gymnasium {gid} vector_entry_point", lambda i: env.step(acts[i % 16])
    peer = NUMPY_PEERS[env_id](copies)
    space = gymnasium.vector.utils.batch_space(
        gymnasium.make(env_id, disable_env_checker=True).action_space, copies
    )
    space.seed(0)
    acts = [space.sample() for _ in range(16)]
    return f"numpy {type(peer).__name__}", lambda i: peer.step(acts[i % 16])


def bench_sync(env_id: str, copies: int, repeats: int, seconds: float) -> tuple[float, int]:
    """Median env steps per second of SyncVectorEnv over `copies` single-env views."""
    env = gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make(env_id, disable_env_checker=True) for _ in range(copies)]
    )
    env.reset(seed=0)
    env.action_space.seed(0)
    acts = [env.action_space.sample() for _ in range(4)]
    t0 = time.perf_counter()
    env.step(acts[0])
    per_step = time.perf_counter() - t0
    steps = max(3, min(5_000, int(seconds / max(per_step, 1e-7))))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            env.step(acts[i % 4])
        rates.append(copies * steps / (time.perf_counter() - t0))
    env.close()
    return statistics.median(rates), steps


def run(
    quick: bool, copies_list: tuple[int, ...] | None = None, env_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    copies_list = copies_list or ((1, 64, 1024) if quick else (1, 64, 4096))
    repeats = 3 if quick else 7
    seconds = 0.05 if quick else 0.25
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    cpu = torch.device("cpu")
    for env_id in env_ids or TENSOR_ENVS:
        for copies in copies_list:
            sync_sps, sync_steps = bench_sync(env_id, copies, min(repeats, 3), seconds)
            peer_name, peer_step = peer_stepper(env_id, copies)
            peer_rate = _timer(peer_step, copies, seconds, cpu)
            for device in devices:
                with timed(device) as block:  # CUDA rows: the block's wall time and peak memory
                    ours = _timer(batched_stepper(env_id, copies, device), copies, seconds, device)
                    ours_r, peer_r = [], []
                    for _ in range(repeats):  # interleaved: both see the same machine load
                        ours_r.append(ours())
                        peer_r.append(peer_rate())
                sps, peer_sps = statistics.median(ours_r), statistics.median(peer_r)
                row = {
                    "env": env_id,
                    "device": device.type,
                    "copies": copies,
                    "batched_steps_per_s": sps,
                    "peer": peer_name,
                    "peer_steps_per_s": peer_sps,
                    "peer_ratio": sps / peer_sps,
                    "sync_steps_per_s": sync_sps,
                    "sync_steps_timed": sync_steps,
                    "ratio": sps / sync_sps,
                }
                if device.type == "cuda":
                    row.update(seconds=block.seconds, cuda_max_mib=block.cuda_max_mib)
                rows.append(row)
                print(
                    f"{env_id:28s} {device.type:4s} {copies:5d}  batched {sps:12.0f}/s  "
                    f"peer {peer_sps:12.0f}/s x{sps / peer_sps:5.2f}  "
                    f"sync {sync_sps:10.0f}/s  x{sps / sync_sps:8.1f}",
                    flush=True,
                )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    cuda = any(r["device"] == "cuda" for r in rows)  # CUDA columns only where CUDA ran
    lines = [
        "| env | device | copies | batched steps/s | fastest CPU peer | peer steps/s | vs peer "
        "| SyncVectorEnv steps/s (CPU) | vs SyncVectorEnv |"
        + (" CUDA max MiB | time s |" if cuda else ""),
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
        + (" ---: | ---: |" if cuda else ""),
    ]
    for r in rows:
        extra = ""
        if cuda:
            secs = f"{r['seconds']:.1f}" if "seconds" in r else "-"
            extra = f" {mib(r.get('cuda_max_mib'))} | {secs} |"
        lines.append(
            f"| {r['env']} | {r['device']} | {r['copies']} | {r['batched_steps_per_s']:,.0f} | "
            f"{r['peer']} | {r['peer_steps_per_s']:,.0f} | {r['peer_ratio']:.2f}x | "
            f"{r['sync_steps_per_s']:,.0f} | {r['ratio']:,.1f}x |" + extra
        )
    checks = []
    for r in rows:
        if r["copies"] == 4096 and r["device"] == "cpu":
            ok = "met" if r["peer_ratio"] >= 1.0 else "NOT met"
            checks.append(
                f"- {r['env']} at 4096 copies on CPU: {r['peer_ratio']:.2f}x the fastest CPU "
                f"peer ({r['peer']}) (target >= 1.0x: {ok})"
            )
        if r["env"] in TARGET_IDS and r["copies"] == 4096 and r["device"] == "cpu":
            ok = "met" if r["ratio"] >= 50 else "NOT met"
            checks.append(
                f"- {r['env']} at 4096 copies on CPU: {r['ratio']:,.0f}x SyncVectorEnv (target >= 50x: {ok})"
            )
        if r["env"] in TARGET_IDS and r["copies"] == 4096 and r["device"] == "cuda":
            ok = "met" if r["batched_steps_per_s"] >= 1e6 else "NOT met"
            checks.append(
                f"- {r['env']} at 4096 copies on CUDA: {r['batched_steps_per_s']:,.0f} steps/s (target >= 1e6: {ok})"
            )
    return "\n".join(lines + [""] + checks)


def _mujoco_section(quick: bool) -> tuple[list[dict[str, Any]], str] | None:
    path = ROOT / "scripts" / "bench_envs_mujoco.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench_envs_mujoco", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.run(quick)
    return rows, module.markdown(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1, 64, 1024 copies; fewer, shorter repeats"
    )
    parser.add_argument("--out", type=Path, default=None, help="write rows as JSON here")
    parser.add_argument("--md", type=Path, default=None, help="write the markdown report here")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (SyncVectorEnv uses one)"
    )
    parser.add_argument("--no-mujoco", action="store_true", help="skip the MuJoCo section")
    parser.add_argument("--copies", type=int, nargs="+", default=None, help="copies to time")
    parser.add_argument("--envs", nargs="+", default=None, help="env ids (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python scripts/bench_envs.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = run(args.quick, tuple(args.copies) if args.copies else None, args.envs)
    header = (
        f"# Environment throughput\n\nCommand: `{command}`\n\n"
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"gymnasium {gymnasium.__version__}, torch threads {args.threads}"
        f"{', CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ', no CUDA'}.\n"
        "Env steps per second (copies x steps / wall time), median of repeats; the fastest CPU peer "
        "is Gymnasium's native numpy vector env where one exists, else the numpy implementation of "
        "the same dynamics in `scripts/_numpy_peers.py` (per-copy task parameters, same-step "
        "autoreset), timed interleaved with ours; SyncVectorEnv runs the single-env view of the "
        "same dynamics on the CPU.\n\n## Batched tensor envs\n\n"
    )
    text = header + markdown(rows) + "\n"
    result: dict[str, Any] = {"command": command, "tensor": rows}
    mujoco = None if args.no_mujoco else _mujoco_section(args.quick)
    if mujoco is not None:
        result["mujoco"] = mujoco[0]
        text += "\n## MuJoCo envs\n\n" + mujoco[1] + "\n"
    print()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)


if __name__ == "__main__":
    main()
