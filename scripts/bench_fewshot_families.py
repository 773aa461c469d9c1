"""Few-shot benchmark, model- and optimisation-based families: MANN against its black-box LSTM
baseline (accuracy by instance), Reptile (transductive and not), the cost of a Meta-SGD
meta-iteration on Omniglot, and the learned LSTM optimiser against tuned SGD / Adam / RMSprop.

Training goes through the CLI with the shipped configs; each row carries the command that
reproduces it. Budgets are wall-clock minutes (`train.max_minutes`) on this CPU, so each row
says how much training it had. A run directory that already holds results of the same
config is reused (delete it to retrain). Writes JSON and replaces its own section of
results/fewshot.md (between the markers), leaving the other sections alone.

    python scripts/bench_fewshot_families.py --out results/fewshot_families.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- families:begin -->", "<!-- families:end -->"

# Santoro et al. 2016, Table 1, Omniglot 5-way: instances 1st, 2nd, 3rd, 5th, 10th.
INSTANCES = (1, 2, 3, 5, 10)
SANTORO = {"mann": (36.4, 82.8, 91.0, 94.9, 98.1), "lstm": (24.4, 49.5, 55.3, 63.6, 62.5)}
# Nichol et al. 2018, Omniglot: with transduction (the targets) and without.
REPTILE = {"5w1s": 97.68, "5w5s": 99.48, "20w1s": 89.43, "20w5s": 97.12}
REPTILE_NON_TRANSDUCTIVE = {"5w1s": 95.39, "5w5s": 98.90, "20w1s": 88.14, "20w5s": 96.65}
METASGD = {"5w1s": 99.53, "5w5s": 99.93, "20w1s": 95.93, "20w5s": 98.97}  # Li et al. 2017


def run(cmd: list[str]) -> tuple[float, float]:
    """Run a command from the repo root; (wall seconds, peak resident MiB of the child)."""
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


def train(config: str, run_dir: Path, overrides: list[str]) -> tuple[dict, str, float]:
    """Train (or reuse a finished run of the same command); results.json, command, minutes."""
    cmd = metarl(
        "train", config, *overrides, "device=cpu", "--run-dir", str(run_dir), "--no-progress"
    )
    stamp = ROOT / run_dir / "bench_command.txt"
    results = ROOT / run_dir / "results.json"
    if not (results.exists() and stamp.exists() and stamp.read_text() == show(cmd)):
        seconds, _ = run(cmd)
        stamp.write_text(show(cmd))
    res = json.loads(results.read_text())
    return res, show(cmd), res["train_seconds"] / 60


def mann_rows(runs: Path, minutes: float) -> list[dict]:
    """MANN for `minutes`; the LSTM for as many episodes (iterations x 16 sequences)."""
    rows = []
    mann, cmd, mins = train(
        "omniglot_mann_5w",
        runs / "omniglot_mann_5w",
        [f"train.max_minutes={minutes}", "train.eval_interval=500"],
    )
    its = mann["iterations"]
    for name, res, command, m in (
        ("mann", mann, cmd, mins),
        (
            "lstm",
            *train(
                "omniglot_lstm_5w",
                runs / "omniglot_lstm_5w",
                [
                    f"train.iterations={its}",
                    f"train.max_minutes={minutes}",
                    "train.eval_interval=500",
                ],
            ),
        ),
    ):
        c = res["curve"]
        rows.append(
            {
                "method": name,
                "instances": {i: 100 * c["mean"][i - 1] for i in INSTANCES},
                "ci95": {i: 100 * c["ci95"][i - 1] for i in INSTANCES},
                "paper": dict(zip(INSTANCES, SANTORO[name], strict=True)),
                "episodes": res["iterations"] * 16,
                "iterations": res["iterations"],
                "train_minutes": m,
                "test_sequences": c["num_tasks"],
                "command": command,
            }
        )
    return rows


def reptile_rows(
    runs: Path,
    minutes: float,
    iterations: int,
    tasks: int,
    tasks_nt: int,
    inner_state: str,
    ways: int,
) -> list[dict]:
    """Reptile trained on `ways`-way tasks (epsilon annealed to 0 over the iterations that
    fit), tested 1-shot and 5-shot from the one run (the paper trains both shot settings
    alike: 10 training shots), in both test modes; `inner_state` fresh or carried (the
    learner's option; its own run directory)."""
    from metarl.seeding import make_generator
    from metarl.trainer import load_run

    config = f"omniglot_reptile_{ways}w1s"
    run_dir = runs / (config + ("_carried" if inner_state == "carried" else ""))
    overrides = [f"learner.inner_state={inner_state}"]  # explicit: the configs ship carried
    overrides += [
        f"train.max_minutes={minutes}",
        f"train.iterations={iterations}",
        f"learner.anneal_iterations={iterations}",
        "train.eval_interval=0",
        "eval.final_num_tasks=10",
    ]
    res, cmd, mins = train(config, run_dir, overrides)
    torch.set_num_threads(1)
    rows = []
    for shots in (1, 5):
        r = load_run(ROOT / run_dir, [f"task.shots={shots}"])
        steps = r.learner.cfg.eval_adapt_steps
        key = f"{ways}w{shots}s"
        for transductive, n in ((True, tasks), (False, tasks_nt)):
            gen = make_generator(r.cfg.seed, "eval/test", r.device)  # the tasks of `metarl eval`
            acc = []
            for _ in range(n // 10):
                ep = r.distribution.sample("test", 10, gen)
                acc.append(r.learner.query_accuracy(ep, steps, transductive, last_only=True)[-1])
            acc = torch.cat(acc)
            rows.append(
                {
                    "setting": f"{ways}-way {shots}-shot",
                    "ways": ways,
                    "transductive": transductive,
                    "inner_state": inner_state,
                    "accuracy": 100 * acc.mean().item(),
                    "ci95": 196 * acc.std().item() / len(acc) ** 0.5,
                    "test_episodes": len(acc),
                    "paper": (REPTILE if transductive else REPTILE_NON_TRANSDUCTIVE)[key],
                    "iterations": res["iterations"],
                    "train_minutes": mins,
                    "command": f"{cmd} && python scripts/bench_fewshot_families.py --only reptile "
                    f"--reptile-ways {ways} --reptile-inner-state {inner_state}",
                }
            )
    return rows


def metasgd_rows(repeats: int) -> list[dict]:
    """Seconds, FLOPs and memory of one second-order Meta-SGD meta-iteration, in-process."""
    import resource

    from torch.utils.flop_counter import FlopCounterMode

    from metarl.registry import load_config
    from metarl.trainer import build_run

    torch.set_num_threads(1)
    rows = []
    for setting, config in (("5w1s", "omniglot_maml_5w1s"), ("20w1s", "omniglot_maml_20w1s")):
        overrides = ["device=cpu", "learner.meta_sgd=true"]
        cfg = load_config(config, overrides)
        r = build_run(cfg, ROOT / "runs" / "unused")
        g = torch.Generator().manual_seed(0)
        times = []
        for i in range(repeats + 1):
            ep = r.distribution.sample("train", cfg.train.num_tasks, g)
            start = time.perf_counter()
            if i == 0:
                with FlopCounterMode(display=False) as fc:
                    r.learner.meta_step(ep)
                flops = fc.get_total_flops()
            else:
                r.learner.meta_step(ep)
                times.append(time.perf_counter() - start)
        med = statistics.median(times)
        rows.append(
            {
                "setting": setting,
                "num_tasks": cfg.train.num_tasks,
                "median_seconds": med,
                "gflop": flops / 1e9,
                "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "paper_iterations": cfg.train.iterations,
                "estimated_hours": med * cfg.train.iterations / 3600,
                "paper": METASGD[setting],
                "command": f"python scripts/bench_fewshot_families.py --only metasgd (metarl train {config} learner.meta_sgd=true)",
            }
        )
    return rows


def tuned_baselines(dist, steps: int, seed: int) -> dict[str, tuple[float, float]]:
    """Best learning rate of SGD / Adam / RMSprop on 16 tuning problems (median final loss)."""
    from metarl.learned_optimizer import TorchOptimizer, optimize
    from metarl.seeding import make_generator

    tune = dist.sample("val", 16, make_generator(seed, "bench/tune"))
    grid = [10 ** (k / 2) for k in range(-8, 2)]  # 1e-4 .. 3.16
    best = {}
    for name, cls in (
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("rmsprop", torch.optim.RMSprop),
    ):
        scores = []
        for lr in grid:
            final = optimize(tune, TorchOptimizer(cls, {"lr": lr}), steps)[-1]
            score = final.median().item()
            scores.append((score if score == score else float("inf"), lr))
        best[name] = min(scores)
    return best


def optimizer_rows(runs: Path, minutes: dict[str, float], seed: int = 0) -> list[dict]:
    """The learned optimiser of each family against tuned baselines, on held-out problems, in
    the family it was trained on and in variants it never saw."""
    from metarl.learned_optimizer import (
        OptimizeeConfig,
        OptimizeeDistribution,
        TorchOptimizer,
        load_lstm_optimizer,
        optimize,
    )
    from metarl.seeding import make_generator

    torch.set_num_threads(1)
    rows = []
    variants = {
        "quadratic": [
            ("trained family: 10-d, 100 steps", OptimizeeConfig("quadratic", dim=10), 100),
            (
                "more steps than unrolled: 10-d, 200 steps",
                OptimizeeConfig("quadratic", dim=10),
                200,
            ),
            ("larger: 30-d, 100 steps", OptimizeeConfig("quadratic", dim=30), 100),
        ],
        "mlp": [
            (
                "trained family: 20 sigmoid, 100 steps",
                OptimizeeConfig("mlp", hidden_sizes=[20]),
                100,
            ),
            ("more steps: 20 sigmoid, 200 steps", OptimizeeConfig("mlp", hidden_sizes=[20]), 200),
            ("wider: 40 sigmoid", OptimizeeConfig("mlp", hidden_sizes=[40]), 100),
            ("deeper: 20-20 sigmoid", OptimizeeConfig("mlp", hidden_sizes=[20, 20]), 100),
            (
                "other activation: 20 ReLU",
                OptimizeeConfig("mlp", hidden_sizes=[20], activation="relu"),
                100,
            ),
        ],
    }
    for family in minutes:
        config = f"{family}_lstm_optimizer"
        run_dir = runs / config
        _, cmd, mins = train(
            config, run_dir, [f"train.max_minutes={minutes[family]}", "train.iterations=100000"]
        )
        res = json.loads((ROOT / run_dir / "results.json").read_text())
        opt = load_lstm_optimizer(ROOT / run_dir)
        for label, ocfg, steps in variants[family]:
            dist = OptimizeeDistribution(ocfg, torch.device("cpu"))
            best = tuned_baselines(dist, steps, seed)
            n = 64 if family == "quadratic" else 32
            test = dist.sample("test", n, make_generator(seed, f"bench/test/{label}"))
            finals = {"lstm": optimize(test, opt, steps)[-1]}
            for name, (_, lr) in best.items():
                cls = {
                    "sgd": torch.optim.SGD,
                    "adam": torch.optim.Adam,
                    "rmsprop": torch.optim.RMSprop,
                }[name]
                finals[name] = optimize(test, TorchOptimizer(cls, {"lr": lr}), steps)[-1]
            med = {k: v.median().item() for k, v in finals.items()}
            rows.append(
                {
                    "family": family,
                    "problems": label,
                    "steps": steps,
                    "median_final_loss": med,
                    "tuned_lr": {k: v[1] for k, v in best.items()},
                    "lstm_beats_adam": med["lstm"] < med["adam"],
                    "lstm_wins_per_problem": (finals["lstm"] < finals["adam"])
                    .float()
                    .mean()
                    .item(),
                    "iterations": res["iterations"],
                    "train_minutes": mins,
                    "command": f"{cmd} && python scripts/bench_fewshot_families.py --only optimizer",
                }
            )
    return rows


def markdown(result: dict) -> str:
    lines = [
        BEGIN,
        f"## Model- and optimisation-based families ({result['date']}, {result['machine']})",
        "",
        f"Last written by `{result['command']}` (which reran only its sections); each row"
        " names the commands that reproduce it.",
        "",
    ]
    if result.get("mann"):
        head = " | ".join(
            f"{i}{'st' if i == 1 else 'nd' if i == 2 else 'rd' if i == 3 else 'th'}"
            for i in INSTANCES
        )
        lines += [
            "### MANN and the black-box LSTM, Omniglot 5-way, accuracy % by instance (test classes)",
            "",
            f"| method | {head} | 95% CI (widest) | paper ({head.replace(' |', ' /')}) | episodes | training | test sequences | command |",
            "| --- |" + " --- |" * len(INSTANCES) + " --- | --- | --- | --- | --- | --- |",
        ]
        for r in result["mann"]:
            inst = " | ".join(
                f"{r['instances'][str(i)] if str(i) in r['instances'] else r['instances'][i]:.1f}"
                for i in INSTANCES
            )
            paper = " / ".join(
                f"{v}" for v in (r["paper"].get(str(i), r["paper"].get(i)) for i in INSTANCES)
            )
            widest = max(r["ci95"].values())
            lines.append(
                f"| {r['method']} | {inst} | +-{widest:.1f} | {paper} | {r['episodes']} ({r['iterations']} it) "
                f"| {r['train_minutes']:.1f} min | {r['test_sequences']} | `{r['command']}` |"
            )
        lines.append("")
    if result.get("reptile"):
        lines += [
            "### Reptile, Omniglot (Vinyals split), test accuracy after 50 inner steps",
            "",
            "| setting | evaluation | accuracy % (95% CI) | test episodes | paper % | training | command |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        order = {"fresh": 0, "carried": 1}
        rows = sorted(  # by ways, inner state, shots, then transductive first
            result["reptile"],
            key=lambda r: (
                r.get("ways", 5),
                order.get(r.get("inner_state", "fresh"), 2),
                r["setting"],
                not r["transductive"],
            ),
        )
        for r in rows:
            mode = "transductive" if r["transductive"] else "non-transductive"
            mode += f", {r.get('inner_state', 'fresh')} inner state"
            lines.append(
                f"| {r['setting']} | {mode} | {r['accuracy']:.2f} +- {r['ci95']:.2f} | {r['test_episodes']} "
                f"| {r['paper']} | {r['iterations']} it, {r['train_minutes']:.1f} min | `{r['command']}` |"
            )
        lines.append("")
    if result.get("metasgd"):
        lines += [
            "### Meta-SGD on Omniglot: cost of one second-order meta-iteration on this CPU (1 thread)",
            "",
            "| setting | tasks | median s / it | GFLOP / it | peak MiB | paper's iterations | estimated training | paper % | command |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in result["metasgd"]:
            lines.append(
                f"| {r['setting']} | {r['num_tasks']} | {r['median_seconds']:.1f} | {r['gflop']:.0f} "
                f"| {r['peak_mib']:.0f} | {r['paper_iterations']} | {r['estimated_hours']:.0f} h "
                f"({r['estimated_hours'] / 24:.1f} days) | {r['paper']} | `{r['command']}` |"
            )
        lines.append("")
    if result.get("optimizer"):
        lines += [
            "### Learned LSTM optimiser against tuned SGD / Adam / RMSprop: median final loss on held-out problems (64 quadratics, 32 MLPs)",
            "",
            "| trained on | problems | steps | LSTM | Adam | RMSprop | SGD | LSTM < Adam (median) | LSTM wins per problem | training | command |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in result["optimizer"]:
            m, lr = r["median_final_loss"], r["tuned_lr"]
            lines.append(
                f"| {r['family']} | {r['problems']} | {r['steps']} | {m['lstm']:.3g} | {m['adam']:.3g} (lr {lr['adam']:.2g}) "
                f"| {m['rmsprop']:.3g} (lr {lr['rmsprop']:.2g}) | {m['sgd']:.3g} (lr {lr['sgd']:.2g}) "
                f"| {'yes' if r['lstm_beats_adam'] else 'no'} | {100 * r['lstm_wins_per_problem']:.0f}% "
                f"| {r['iterations']} it, {r['train_minutes']:.1f} min | `{r['command']}` |"
            )
        lines.append("")
    if result.get("notes"):
        lines += ["### Notes", "", result["notes"], ""]
    lines.append(END)
    return "\n".join(lines)


def write_section(md: Path, text: str) -> None:
    old = md.read_text() if md.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    new = pattern.sub(lambda _: text, old) if BEGIN in old else old.rstrip("\n") + "\n\n" + text
    md.write_text(new.rstrip("\n") + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--only", default="mann,reptile,metasgd,optimizer", help="comma-separated sections"
    )
    p.add_argument("--mann-minutes", type=float, default=28.0)
    p.add_argument("--reptile-minutes", type=float, default=14.0)
    p.add_argument(
        "--reptile-iterations", type=int, default=300, help="cap, and epsilon's annealing length"
    )
    p.add_argument("--reptile-tasks", type=int, default=80, help="transductive test episodes")
    p.add_argument(
        "--reptile-tasks-nt", type=int, default=30, help="non-transductive test episodes"
    )
    p.add_argument(
        "--reptile-inner-state",
        default="carried",
        choices=["fresh", "carried"],
        help="Reptile's learner.inner_state (the configs ship carried); its rows replace only "
        "the rows of that state and ways",
    )
    p.add_argument(
        "--reptile-ways",
        type=int,
        default=5,
        choices=[5, 20],
        help="train omniglot_reptile_{5,20}w1s and test it 1-shot and 5-shot",
    )
    p.add_argument("--metasgd-repeats", type=int, default=2)
    p.add_argument("--quadratic-minutes", type=float, default=5.0)
    p.add_argument("--mlp-minutes", type=float, default=6.0, help="0 skips a family")
    p.add_argument("--runs", default="runs/bench")
    p.add_argument("--out", default="results/fewshot_families.json")
    p.add_argument("--md", default="results/fewshot.md")
    p.add_argument("--notes", default=None, help="a file whose text becomes the Notes")
    args = p.parse_args()
    only, runs = set(args.only.split(",")), Path(args.runs)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    if only & {"mann", "reptile", "metasgd", "optimizer"}:  # a notes-only call keeps these
        result.update(
            command=shlex.join(["python", "scripts/bench_fewshot_families.py", *sys.argv[1:]]),
            date=time.strftime("%Y-%m-%d"),
            machine=f"{os.cpu_count()} CPU cores shared, no GPU",
        )

    def save() -> None:  # after every section, so a late failure keeps the earlier ones
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        write_section(Path(args.md), markdown(result))

    if args.notes:
        result["notes"] = Path(args.notes).read_text().strip()
    if "mann" in only:
        result["mann"] = mann_rows(runs, args.mann_minutes)
        save()
    if "reptile" in only:
        state, ways = args.reptile_inner_state, args.reptile_ways
        kept = [
            r
            for r in result.get("reptile", [])
            if (r.get("inner_state", "fresh"), r.get("ways", 5)) != (state, ways)
        ]
        result["reptile"] = kept + reptile_rows(
            runs,
            args.reptile_minutes,
            args.reptile_iterations,
            args.reptile_tasks,
            args.reptile_tasks_nt,
            state,
            ways,
        )
        save()
    if "metasgd" in only:
        result["metasgd"] = metasgd_rows(args.metasgd_repeats)
        save()
    if "optimizer" in only:
        minutes = {"quadratic": args.quadratic_minutes, "mlp": args.mlp_minutes}
        result["optimizer"] = optimizer_rows(runs, {k: v for k, v in minutes.items() if v > 0})
        save()
    save()
    print(markdown(result))


if __name__ == "__main__":
    main()
