"""Few-shot benchmark: Omniglot (Vinyals split) accuracy of ProtoNet, MAML, Matching, Relation
and Siamese networks, Lake's 20-way within-alphabet one-shot protocol, sinusoid MSE, and the
cost of a second-order MAML meta-iteration.

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
# The metric family: one 1-shot run per learner serves all four Vinyals settings. Paper
# numbers: Matching Networks and Siamese networks as Vinyals et al. 2016 report them
# (Siamese re-implemented there), Relation Networks from Sung et al. 2018.
METRIC = {
    "matching": (
        "omniglot_matching_1shot",
        [(5, 1, 98.1), (20, 1, 93.8), (5, 5, 98.9), (20, 5, 98.5)],
    ),
    "relation": (
        "omniglot_relation_1shot",
        [(5, 1, 99.6), (20, 1, 97.6), (5, 5, 99.8), (20, 5, 99.1)],
    ),
    "siamese": (
        "omniglot_siamese_1shot",
        [(5, 1, 96.7), (20, 1, 88.0), (5, 5, 98.4), (20, 5, 96.5)],
    ),
}
# Lake's protocol (background set only, 20-way within-alphabet one-shot): Koch et al.'s Siamese
# networks 92.0% (8.0% error); people 95.5%. The same run is also tested on the Vinyals test
# split, which lies inside the evaluation set and so is unseen too.
LAKE_PAPER = 92.0
VINYALS_FROM_LAKE = ["task.split=vinyals", "task.within_alphabet=false"]


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


# Where `scripts/bench_fewshot_families.py`'s section of the same markdown file begins: from
# there on (its section and the notes written after it) the file is kept as it is.
FAMILIES_BEGIN = "<!-- families:begin -->"
REUSE_ONLY = False  # --reuse-only: tabulate what earlier runs measured, run nothing new


def time_to(run_dir: Path, tag: str, threshold: float) -> tuple[float | None, int | None]:
    """Minutes (from the run's first event) and iteration at which TensorBoard scalar `tag`
    first reached `threshold` during training; (None, None) when it never did."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return None, None
    start = acc.FirstEventTimestamp()
    for event in acc.Scalars(tag):
        if event.value >= threshold:
            return (event.wall_time - start) / 60, event.step
    return None, None


def train_once(config: str, minutes: float, runs: Path, overrides: list[str] | None = None):
    """Train `config` into runs/<config> unless a finished run is already there (then its
    results.json gives the training time). Returns (run dir, train command, minutes, peak MiB)."""
    run_dir = runs / config
    done = ROOT / run_dir / "results.json"
    if done.exists():  # the command that trained it: its budget is in its config.yaml
        import yaml

        minutes = yaml.safe_load((ROOT / run_dir / "config.yaml").read_text())["train"][
            "max_minutes"
        ]
    cmd = metarl(
        "train",
        config,
        f"train.max_minutes={minutes}",
        "eval.final_num_tasks=100",
        *(overrides or []),
        "--run-dir",
        str(run_dir),
        "--no-progress",
    )
    if done.exists() and "train_seconds" in json.loads(done.read_text()):
        trained = json.loads(done.read_text())
        peak = (
            json.loads((ROOT / run_dir / "peak.json").read_text())["peak_mib"]
            if (ROOT / run_dir / "peak.json").exists()
            else float("nan")
        )
        return run_dir, cmd, trained["train_seconds"] / 60, peak
    if REUSE_ONLY:
        return None
    seconds, peak = run(cmd)
    (ROOT / run_dir / "peak.json").write_text(json.dumps({"peak_mib": peak}))
    return run_dir, cmd, seconds / 60, peak


def eval_row(
    run_dir: Path, name: str, ways: int, shots: int, episodes: int, extra: list[str], tag: str
) -> tuple[dict, list[str]]:
    out = run_dir / f"test_{tag}.json"
    queries = 5 if ways > 5 else 15
    ev = metarl(
        "eval",
        str(run_dir),
        f"task.ways={ways}",
        f"task.shots={shots}",
        f"task.queries={queries}",
        f"eval.max_budget={shots}",
        f"eval.final_num_tasks={episodes}",
        "eval.final_split=test",
        *extra,
        "--out",
        str(out),
    )
    if (ROOT / out).exists():  # measured already (an interrupted benchmark, run again)
        res = json.loads((ROOT / out).read_text())
        if res["curve"]["num_tasks"] >= episodes:
            return res, ev
    if REUSE_ONLY:
        return None, ev
    run(ev)
    return json.loads((ROOT / out).read_text()), ev


def metric_rows(
    learners: list[str], minutes: float, runs: Path, episodes: int, lake: bool, other: int
) -> list[dict]:
    """Vinyals-split rows (lake=False) or Lake-protocol rows (lake=True) of the metric learners."""
    rows = []
    for learner in learners:
        config, settings = METRIC[learner]
        if lake:
            config = f"omniglot_{learner}_lake"
            settings = [(20, 1, LAKE_PAPER, [], "lake 20-way 1-shot within alphabet")] + [
                (w, k, p, VINYALS_FROM_LAKE, f"{w}-way {k}-shot (Vinyals test)")
                for w, k, p in settings[:2]
            ]
        else:
            settings = [(w, k, p, [], f"{w}-way {k}-shot") for w, k, p in settings]
        trained_run = train_once(config, minutes, runs)
        if trained_run is None:  # --reuse-only and never trained
            continue
        run_dir, train, train_minutes, peak = trained_run
        trained = json.loads((ROOT / run_dir / "results.json").read_text())
        t97, it97 = (
            (None, None) if lake else time_to(ROOT / run_dir, "adapt/accuracy_shots_01", 0.97)
        )
        for ways, shots, paper, extra, label in settings:
            tag = f"{ways}w{shots}s" + ("_vinyals" if extra else "")
            headline = (ways, shots, bool(extra)) == ((20, 1, False) if lake else (5, 1, False))
            n = episodes if headline else other
            res, ev = eval_row(run_dir, learner, ways, shots, n, extra, tag)
            if res is None:  # --reuse-only and never measured
                continue
            row = {
                "method": learner,
                "setting": label,
                "accuracy": 100 * res["headline"]["mean"],
                "ci95": 100 * res["headline"]["ci95"],
                "episodes": res["curve"]["num_tasks"],
                "budget": res["headline"]["budget"],
                "paper": paper,
                "iterations": trained["iterations"],
                "train_minutes": train_minutes,
                "iterations_per_second": trained["iterations_per_second"],
                "peak_mib": peak,
                "command": f"{show(train)} && {show(ev)}",
            }
            if not lake and (ways, shots) == (5, 1):
                row["minutes_to_97"], row["iteration_to_97"] = t97, it97
            rows.append(row)
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


def maml_step_rows(repeats: int, device: str = "cpu") -> list[dict]:
    """Second-order MAML 5w1s, 32 tasks: our learner vs a plain per-task loop, in subprocesses."""
    rows = []
    for impl in ("metarl", "plain"):
        cmd = [sys.executable, str(Path(__file__).with_name("_maml_step.py")), impl, str(repeats)]
        cmd += [device] if device != "cpu" else []
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
    for key, title in (
        ("metric", "## Metric learners, Omniglot, Vinyals split, test accuracy"),
        ("lake", "## Lake et al.'s one-shot protocol: trained on the background set only"),
    ):
        if not result.get(key):
            continue
        lines += [
            title,
            "",
            "| method | setting | accuracy % (95% CI) | test episodes | paper % | training | 5w1s >= 97% after | meta-it/s | command |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in result[key]:
            t97 = ""
            if "minutes_to_97" in r:
                t97 = (
                    "not reached"
                    if r["minutes_to_97"] is None
                    else f"{r['minutes_to_97']:.1f} min (it {r['iteration_to_97']})"
                )
            lines.append(
                f"| {r['method']} | {r['setting']} | {r['accuracy']:.2f} +- {r['ci95']:.2f} "
                f"| {r['episodes']} | {r['paper']} | {r['iterations']} it, {r['train_minutes']:.1f} min "
                f"| {t97} | {r['iterations_per_second']:.2f} | `{r['command']}` |"
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
        cuda = any("cuda_max_mib" in r for r in result["maml_step"])  # a --device cuda run
        lines += [
            "## Second-order MAML meta-iteration, Omniglot 5-way 1-shot, 32 tasks, "
            + ("CUDA" if cuda else "CPU"),
            "",
            "| implementation | median s / meta-iteration | peak MiB |"
            + (" CUDA max MiB |" if cuda else ""),
            "| --- | --- | --- |" + (" --- |" if cuda else ""),
        ]
        for r in result["maml_step"]:
            extra = f" {r['cuda_max_mib']:.0f} |" if cuda else ""
            lines.append(
                f"| {r['impl']} | {r['median_seconds']:.2f} | {r['peak_mib']:.0f} |" + extra
            )
        lines.append("")
    if result.get("notes"):
        lines += ["## Notes", "", result["notes"], ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--only",
        default="sinusoid,maml_step,protonet,maml,metric,lake",
        help="comma-separated sections: sinusoid, maml_step, protonet, maml, metric, lake",
    )
    p.add_argument(
        "--learners",
        default="matching,relation,siamese",
        help="metric learners of the metric and lake sections (comma-separated)",
    )
    p.add_argument("--metric-minutes", type=float, default=25.0, help="training per metric run")
    p.add_argument(
        "--episodes-other",
        type=int,
        default=None,
        help="test episodes of the metric learners' other settings than the headline one "
        "(5-way 1-shot; Lake's 20-way); default --episodes",
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
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="device of the maml_step section"
    )
    p.add_argument("--runs", default="runs/bench")
    p.add_argument("--out", default="results/fewshot.json")
    p.add_argument("--md", default="results/fewshot.md")
    p.add_argument(
        "--reuse-only",
        action="store_true",
        help="metric and lake sections: only tabulate the runs and tests already measured",
    )
    args = p.parse_args()
    global REUSE_ONLY
    REUSE_ONLY = args.reuse_only
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
        result["maml_step"] = maml_step_rows(args.repeats, args.device)
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
    for section, lake in (("metric", False), ("lake", True)):
        if section in only:
            chosen = args.learners.split(",")
            keep = [r for r in result.get(section, []) if r["method"] not in chosen]
            other = args.episodes_other or args.episodes
            new = metric_rows(chosen, args.metric_minutes, runs, args.episodes, lake, other)
            result[section] = sorted(keep + new, key=lambda r: list(METRIC).index(r["method"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    text = markdown(result)
    md = Path(args.md)
    old = md.read_text() if md.exists() else ""
    if FAMILIES_BEGIN in old:  # bench_fewshot_families.py's block and what follows it: kept
        text = text.rstrip("\n") + "\n\n" + old[old.index(FAMILIES_BEGIN) :].rstrip("\n")
    md.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
