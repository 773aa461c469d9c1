"""`metarl adapt` start-to-answer time in a fresh process: a 20-class support folder and 20 query
images (Omniglot characters of the Vinyals test split written as the official 105x105 PNGs,
one drawing per class for support and another for query). Each command runs `--repeats`
times; the table gives medians, beside the bare interpreter and `import torch` alone, and the
accuracy of the answers (query folders name the truth). Prints a markdown table, writes JSON.

    python scripts/bench_adapt.py --runs runs/bench/omniglot_protonet_5w1s runs/bench/omniglot_matching_1shot
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_folders(root: Path, classes: int) -> tuple[Path, Path]:
    """support/<char>/0.png and query/<char>/1.png for `classes` Vinyals test characters."""
    from metarl.fewshot.omniglot import read_alphabets, resolve_data_dir

    data = resolve_data_dir(None)
    split = (data / "splits" / "vinyals" / "test.txt").read_text().split()
    chars = sorted({line.rsplit("/", 1)[0] for line in split})[::20][:classes]
    ev = np.load(data / "images_evaluation.npz")["images"]  # True = white paper
    first_id = {a: f for a, _, f, _ in read_alphabets(data)}
    support, query = root / "support", root / "query"
    for char in chars:
        alphabet, c = char.split("/")
        row = first_id[alphabet] + int(c[9:]) - 1 - 965  # evaluation ids start at 965
        for folder, drawing in ((support, 0), (query, 1)):
            (folder / char.replace("/", "_")).mkdir(parents=True, exist_ok=True)
            Image.fromarray(ev[row, drawing].astype(np.uint8) * 255).save(
                folder / char.replace("/", "_") / f"{drawing}.png"
            )
    return support, query


def timed(cmd: list[str], repeats: int) -> tuple[float, list[float], float]:
    """Median wall seconds, every wall time, and the median CPU seconds (user + system) of
    the child: on a shared machine CPU time says what the command costs, wall time what a
    person waits."""
    times, cpu = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), times, statistics.median(cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="trained run directories")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="results/adapt.json")
    p.add_argument("--md", default="results/adapt.md")
    args = p.parse_args()
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        support, query = write_folders(Path(tmp), args.classes)
        for label, cmd in (
            ("python -c pass", [py, "-c", "pass"]),
            ("python -c 'import torch'", [py, "-c", "import torch"]),
        ):
            median, times, cpu = timed(cmd, args.repeats)
            rows.append(
                {"what": label, "median_seconds": median, "seconds": times, "cpu_seconds": cpu}
            )
        for run_dir in args.runs:
            csv_out = Path(tmp) / "pred.csv"
            cmd = [py, "-m", "metarl", "adapt", run_dir, "--support", str(support),
                   "--query", str(query), "--out", str(csv_out)]  # fmt: skip
            median, times, cpu = timed(cmd, args.repeats)
            preds = list(csv.DictReader(csv_out.open()))
            right = sum(Path(r["query"]).parent.name == r["class"] for r in preds)
            rows.append({
                "what": f"metarl adapt {run_dir}",
                "median_seconds": median,
                "seconds": times,
                "cpu_seconds": cpu,
                "accuracy": right / len(preds),
                "command": shlex.join(["metarl", "adapt", run_dir, "--support", "SUPPORT", "--query", "QUERY"]),
            })  # fmt: skip
    result = {
        "command": shlex.join(["python", "scripts/bench_adapt.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} CPU cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')}, load average {os.getloadavg()[0]:.1f}",
        "classes": args.classes,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    lines = [
        f"Written by `{result['command']}` ({result['date']}, {result['machine']}): a "
        f"{args.classes}-class support folder (one Omniglot PNG per class) and {args.classes} "
        f"query images, each command a fresh process, median of {args.repeats}.",
        "",
        "| what | median wall s | all runs, wall s | median CPU s | accuracy of the answers |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        acc = f"{100 * r['accuracy']:.0f}%" if "accuracy" in r else ""
        runs = ", ".join(f"{t:.2f}" for t in r["seconds"])
        lines.append(
            f"| {r['what']} | {r['median_seconds']:.2f} | {runs} | {r['cpu_seconds']:.2f} | {acc} |"
        )
    text = "\n".join(lines)
    Path(args.md).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
