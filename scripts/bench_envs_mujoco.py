"""Throughput of the MuJoCo task families (CPU): env steps per second, medians of repeats.

1. Single envs: slope and terrain envs against plain HalfCheetah-v5 / Ant-v5 in the same run
   (target: step time at most 1.2x the plain env's).
2. The batched sampling path (`BatchedMujocoEnv`) against `gymnasium.vector.SyncVectorEnv`
   of the same single env at 8 and 32 copies (target: at least 2x).

    python scripts/bench_envs_mujoco.py --out results/envs_mujoco.json   # also writes .md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402

from envs.mujoco import register_mujoco_envs  # noqa: E402
from envs.mujoco.batched import BatchedMujocoEnv  # noqa: E402

SINGLE = [
    ("HalfCheetah-v5", None),
    ("metarl/HalfCheetahSlope-v0", "HalfCheetah-v5"),
    ("metarl/HalfCheetahTerrain-v0", "HalfCheetah-v5"),
    ("Ant-v5", None),
    ("metarl/AntSlope-v0", "Ant-v5"),
]
BATCHED = ["metarl/HalfCheetahSlope-v0", "metarl/AntSlope-v0"]
# The physics floor: bare `mj_step` (no Python env code) of the terrain model vs the plane.
RAW = [("HalfCheetah-v5", None), ("metarl/HalfCheetahTerrain-v0", "HalfCheetah-v5")]


def _actions(space: gym.spaces.Box, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n,) + space.shape
    return rng.uniform(space.low, space.high, shape).astype(np.float32) * 0.3


def _single_rate(env_id: str, steps: int) -> float:
    env = gym.make(env_id, max_episode_steps=None).unwrapped  # no wrappers: the physics cost
    kwargs = {"options": {"tasks": {"angle_deg": 5.0}}} if "Slope" in env_id else {}
    env.reset(seed=0, **kwargs)
    actions = _actions(env.action_space, steps, 0)
    start = time.perf_counter()
    for a in actions:
        _, _, term, _, _ = env.step(a)
        if term:
            env.reset()
    return steps / (time.perf_counter() - start)


def _raw_rate(env_id: str, steps: int) -> float:
    import mujoco

    env = gym.make(env_id, max_episode_steps=None).unwrapped
    env.reset(seed=0)
    m, d, n = env.model, env.data, env.frame_skip
    actions = _actions(env.action_space, steps, 0).astype(np.float64)
    start = time.perf_counter()
    for a in actions:
        d.ctrl[:] = a
        mujoco.mj_step(m, d, nstep=n)
    return steps / (time.perf_counter() - start)


def _vector_rate(vec: gym.vector.VectorEnv, steps: int, n: int) -> float:
    vec.reset(seed=0)
    actions = _actions(vec.single_action_space, steps * n, 1).reshape((steps, n, -1))
    start = time.perf_counter()
    for a in actions:  # both autoreset (BatchedMujocoEnv in the same step)
        vec.step(a)
    return steps * n / (time.perf_counter() - start)


def run(quick: bool = False) -> list[dict]:
    """Rows of {section, env, copies, steps_per_s, ratio, baseline}; medians of repeats."""
    register_mujoco_envs()
    repeats, steps = (2, 300) if quick else (7, 2000)
    rows: list[dict] = []
    medians: dict[str, float] = {}
    # Interleave the repeats so that load from other processes hits every env alike.
    samples: dict[str, list[float]] = {env_id: [] for env_id, _ in SINGLE}
    raw: dict[str, list[float]] = {env_id: [] for env_id, _ in RAW}
    for _ in range(repeats):
        for env_id, _ in SINGLE:
            samples[env_id].append(_single_rate(env_id, steps))
        for env_id, _ in RAW:
            raw[env_id].append(_raw_rate(env_id, steps))
    for env_id, base in SINGLE:
        medians[env_id] = statistics.median(samples[env_id])
        ratio = medians[base] / medians[env_id] if base else 1.0  # step-time ratio
        rows.append(
            {
                "section": "single",
                "env": env_id,
                "copies": 1,
                "steps_per_s": medians[env_id],
                "ratio": ratio,
                "baseline": base or "-",
                "target": "step time <= 1.2x" if base else "",
            }
        )
    raw_med = {env_id: statistics.median(v) for env_id, v in raw.items()}
    for env_id, base in RAW:
        rows.append(
            {
                "section": "mj_step only",
                "env": env_id,
                "copies": 1,
                "steps_per_s": raw_med[env_id],
                "ratio": raw_med[base] / raw_med[env_id] if base else 1.0,
                "baseline": base or "-",
                "target": "(physics floor)" if base else "",
            }
        )
    for env_id in BATCHED:
        for n in (8, 32, 128):
            vsteps = max(20, (steps // 4) // max(1, n // 8))
            if "Ant" in env_id:
                vsteps = max(10, vsteps // 4)
            batched = BatchedMujocoEnv(env_id, n, max_episode_steps=200)
            sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync")
            b_s, s_s = [], []
            for _ in range(repeats):
                b_s.append(_vector_rate(batched, vsteps, n))
                s_s.append(_vector_rate(sync, vsteps, n))
            b, s = statistics.median(b_s), statistics.median(s_s)
            rows.append(
                {
                    "section": "vector",
                    "env": f"SyncVectorEnv({env_id})",
                    "copies": n,
                    "steps_per_s": s,
                    "ratio": 1.0,
                    "baseline": "-",
                    "target": "",
                }
            )
            rows.append(
                {
                    "section": "vector",
                    "env": f"BatchedMujocoEnv({env_id})",
                    "copies": n,
                    "steps_per_s": b,
                    "ratio": b / s,
                    "baseline": "SyncVectorEnv",
                    "target": "speed-up >= 2x",
                }
            )
            sync.close()
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| section | env | copies | steps/s | ratio | vs | target |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["baseline"] != "-" else ""
        lines.append(
            f"| {r['section']} | {r['env']} | {r['copies']} | {r['steps_per_s']:,.0f} | {ratio} "
            f"| {r['baseline']} | {r['target']} |"
        )
    lines.append("")
    lines.append(
        "single: ratio = step time of the env / step time of the plain env (lower is better)."
    )
    lines.append(
        "mj_step only: the same ratio for bare `mujoco.mj_step` calls (height field vs plane):"
        " the part of the terrain env's cost that no Python change can remove."
    )
    lines.append(
        "vector: ratio = steps/s of BatchedMujocoEnv (default threads = CPU cores) / steps/s of"
        " SyncVectorEnv."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument(
        "--out", type=Path, default=None, help="write rows as JSON (and .md beside)"
    )
    args = parser.parse_args()
    rows = run(args.quick)
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "command": "python scripts/bench_envs_mujoco.py"
            + (" --quick" if args.quick else "")
            + f" --out {args.out}",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "rows": rows,
        }
        args.out.write_text(json.dumps(meta, indent=2))
        args.out.with_suffix(".md").write_text(f"`{meta['command']}`\n\n{table}\n")


if __name__ == "__main__":
    main()
