"""Few-shot benchmark: Omniglot (Vinyals split) accuracy of ProtoNet and MAML, sinusoid MSE,
and the cost of a second-order MAML meta-iteration.

Each row trains with the shipped config through the CLI (the exact command is in the row),
then tests on 1000 episodes of the Vinyals test split with a 95% confidence interval. Training
budgets are wall-clock minutes (`train.max_minutes`), because the papers' iteration counts
(e.g. 60,000 second-order MAML iterations) take days on a 2-core CPU; the table says what
budget each row had. Prints a markdown table and writes JSON.

    python scripts/bench_fewshot.py --out results/fewshot.json --md results/fewshot.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (config to train, [(eval ways, eval shots, paper accuracy %)]). ProtoNet trains one
# 60-way model per shot count and tests it 5- and 20-way, as Snell et al. did.
PAPER = "Snell et al. 2017 / Finn et al. 2017"
PROTONET = [
    ("omniglot_protonet_5w1s", [(5, 1, 98.8), (20, 1, 96.0)]),
    ("omniglot_protonet_5w5s", [(5, 5, 99.7), (20, 5, 98.9)]),
]
MAML = [
    ("omniglot_maml_5w1s", [(5, 1, 98.7)]),
    ("omniglot_maml_5w5s", [(5, 5, 99.9)]),
    ("omniglot_maml_20w1s", [(20, 1, 95.8)]),
    ("omniglot_maml_20w5s", [(20, 5, 98.9)]),
]
SINUSOID_PAPER = {1: 0.67, 5: 0.38, 10: 0.35}  # upper bounds of the targets


def run(cmd: list[str]) -> tuple[float, float]:
    """Run a command; returns (wall seconds, peak resident memory of the child in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"command failed ({status}): {shlex.join(cmd)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def metarl(*args: str) -> list[str]:
    return [sys.executable, "-m", "metarl", *args]


def show(cmd: list[str]) -> str:
    return shlex.join(["metarl", *cmd[3:]])


def omniglot_rows(configs, minutes: float, runs: Path, episodes: int) -> list[dict]:
    rows = []
    for config, settings in configs:
        run_dir = runs / config
        train = metarl(
            "train",
            config,
            f"train.max_minutes={minutes}",
            "eval.final_num_tasks=100",
            "--run-dir",
            str(run_dir),
            "--no-progress",
        )
        seconds, peak = run(train)
        trained = json.loads((ROOT / run_dir / "results.json").read_text())
        for ways, shots, paper in settings:
            out = run_dir / f"test_{ways}w{shots}s.json"
            ev = metarl(
                "eval",
                str(run_dir),
                f"task.ways={ways}",
                f"task.shots={shots}",
                f"eval.final_num_tasks={episodes}",
                "eval.final_split=test",
                "--out",
                str(out),
            )
            run(ev)
            res = json.loads((ROOT / out).read_text())
            rows.append(
                {
                    "method": trained["name"].split("_")[1],
                    "setting": f"{ways}-way {shots}-shot",
                    "accuracy": 100 * res["headline"]["mean"],
                    "ci95": 100 * res["headline"]["ci95"],
                    "budget": res["headline"]["budget"],
                    "paper": paper,
                    "iterations": trained["iterations"],
                    "train_minutes": seconds / 60,
                    "iterations_per_second": trained["iterations_per_second"],
                    "peak_mib": peak,
                    "command": f"{show(train)} && {show(ev)}",
                }
            )
    return rows


def sinusoid_rows(runs: Path, minutes: float) -> list[dict]:
    run_dir = runs / "sinusoid_maml"
    cmd = metarl(
        "train",
        "sinusoid_maml",
        f"train.max_minutes={minutes}",
        "--run-dir",
        str(run_dir),
        "--no-progress",
    )
    seconds, peak = run(cmd)
    res = json.loads((ROOT / run_dir / "results.json").read_text())
    curve = res["curve"]
    return [
        {
            "steps": k,
            "mse": curve["mean"][k],
            "ci95": curve["ci95"][k],
            "target": SINUSOID_PAPER[k],
            "iterations": res["iterations"],
            "train_minutes": seconds / 60,
            "peak_mib": peak,
            "command": show(cmd),
        }
        for k in (1, 5, 10)
    ]


def maml_step_rows(repeats: int) -> list[dict]:
    """Second-order MAML 5w1s, 32 tasks: our learner vs a plain per-task loop, in subprocesses."""
    rows = []
    for impl in ("metarl", "plain"):
        cmd = [sys.executable, str(Path(__file__).with_name("_maml_step.py")), impl, str(repeats)]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"Written by `python scripts/bench_fewshot.py` ({result['date']}, {result['machine']}); "
        "a section re-runs alone with `--only SECTION` and each row names the commands that "
        "reproduce it.",
        "",
    ]
    if result.get("omniglot"):
        lines += [
            "## Omniglot, Vinyals split, test accuracy",
            "",
            "| method | setting | accuracy % (95% CI) | test episodes | paper % | training budget | meta-it/s | peak MiB | command |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in result["omniglot"]:
            lines.append(
                f"| {r['method']} | {r['setting']} | {r['accuracy']:.2f} +- {r['ci95']:.2f} "
                f"| {r.get('episodes', '')} | {r['paper']} "
                f"| {r['iterations']} it, {r['train_minutes']:.1f} min | {r['iterations_per_second']:.2f} "
                f"| {r['peak_mib']:.0f} | `{r['command']}` |"
            )
        lines.append("")
    if result.get("sinusoid"):
        lines += [
            "## Sinusoid regression, 5-shot, MAML, 1000 test tasks",
            "",
            "| inner steps | MSE (95% CI) | target (at most) | training budget | command |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in result["sinusoid"]:
            lines.append(
                f"| {r['steps']} | {r['mse']:.3f} +- {r['ci95']:.3f} | {r['target']} "
                f"| {r['iterations']} it, {r['train_minutes']:.1f} min | `{r['command']}` |"
            )
        lines.append("")
    if result.get("maml_step"):
        lines += [
            "## Second-order MAML meta-iteration, Omniglot 5-way 1-shot, 32 tasks, CPU",
            "",
            "| implementation | median s / meta-iteration | peak MiB |",
            "| --- | --- | --- |",
        ]
        for r in result["maml_step"]:
            lines.append(f"| {r['impl']} | {r['median_seconds']:.2f} | {r['peak_mib']:.0f} |")
        lines.append("")
    if result.get("notes"):
        lines += ["## Notes", "", result["notes"], ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--only",
        default="sinusoid,maml_step,protonet,maml",
        help="comma-separated sections: sinusoid, maml_step, protonet, maml",
    )
    p.add_argument("--protonet-minutes", type=float, default=15.0)
    p.add_argument("--maml-minutes", type=float, default=20.0)
    p.add_argument(
        "--maml-configs",
        default="omniglot_maml_5w1s",
        help="which MAML configs to train (comma-separated; each takes --maml-minutes)",
    )
    p.add_argument("--sinusoid-minutes", type=float, default=30.0)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5, help="MAML step timing repeats")
    p.add_argument("--runs", default="runs/bench")
    p.add_argument("--out", default="results/fewshot.json")
    p.add_argument("--md", default="results/fewshot.md")
    args = p.parse_args()
    only, runs = set(args.only.split(",")), Path(args.runs)  # relative to ROOT, the cwd of runs
    result = {
        "command": shlex.join(["python", "scripts/bench_fewshot.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
    }
    out = Path(args.out)
    if out.exists():  # keep sections not re-run this time
        result = {**json.loads(out.read_text()), **result}
    if "sinusoid" in only:
        result["sinusoid"] = sinusoid_rows(runs, args.sinusoid_minutes)
    if "maml_step" in only:
        result["maml_step"] = maml_step_rows(args.repeats)
    if "protonet" in only or "maml" in only:
        keep = [
            r
            for r in result.get("omniglot", [])
            if not (
                ("protonet" in only and r["method"] == "protonet")
                or ("maml" in only and r["method"] == "maml")
            )
        ]
        new = []
        if "protonet" in only:
            new += omniglot_rows(PROTONET, args.protonet_minutes, runs, args.episodes)
        if "maml" in only:
            chosen = set(args.maml_configs.split(","))
            new += omniglot_rows(
                [c for c in MAML if c[0] in chosen], args.maml_minutes, runs, args.episodes
            )
        result["omniglot"] = keep + new
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    text = markdown(result)
    Path(args.md).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
