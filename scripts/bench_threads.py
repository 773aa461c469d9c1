"""The demo's training speed with 1 and 2 torch threads, on an idle CPU and beside one other
busy process (a Python spin loop): the case where torch's two intra-op threads wait on each
other. Prints a table, writes JSON (`--out`) and each row's command.

    python scripts/bench_threads.py --iterations 1500 --repeats 3 --out results/threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo_command(run_dir: Path, iterations: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "metarl",
        "train",
        "demo",
        f"train.iterations={iterations}",
        "train.eval_interval=0",
        f"train.checkpoint_interval={iterations}",
        "eval.final_num_tasks=10",
        "--threads",
        str(threads),
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]


def measure(iterations: int, threads: int, busy: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = demo_command(Path(tmp) / "run", iterations, threads)
            subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
            results = json.loads((Path(tmp) / "run" / "results.json").read_text())
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return results["iterations_per_second"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = []
    for busy in (False, True):
        for threads in (2, 1):
            speeds = []
            for _ in range(args.repeats):
                speeds.append(measure(args.iterations, threads, busy))
                print(f"threads={threads} busy={busy}: {speeds[-1]:.1f} it/s", flush=True)
            cmd = " ".join(demo_command(Path("runs/bench"), args.iterations, threads)[2:])
            rows.append(
                {
                    "threads": threads,
                    "other_busy_process": busy,
                    "iterations_per_second": speeds,
                    "median": statistics.median(speeds),
                    "command": ("(beside `python -c 'while True: pass'`) " if busy else "")
                    + f"python -m {cmd}",
                }
            )
    idle = {r["threads"]: r["median"] for r in rows if not r["other_busy_process"]}
    print(f"| threads | other busy process | it/s (median of {args.repeats}) | slowdown vs idle |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        slow = idle[r["threads"]] / r["median"]
        r["slowdown_vs_idle"] = slow
        busy = "yes" if r["other_busy_process"] else "no"
        print(f"| {r['threads']} | {busy} | {r['median']:.1f} | {slow:.2f}x |")
    for r in rows:
        print(f"- {r['command']}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
