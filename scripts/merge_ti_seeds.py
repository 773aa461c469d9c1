"""Merge per-seed task-inference benchmark JSONs (`bench_metarl.py --sections ti_* --seeds S
--out DIR/ti_sS`, one process per seed so that seeds run in parallel) into one table with the
per-seed gap closure, share of the oracle and their mean over seeds, and the untrained random
row where the JSONs hold one ("-" where not).

The oracle's margin over the blind policy is also given relative to |oracle|; a closure whose
margin is under 15% is marked (the issue's rule: such a family has little to show). The share
of the oracle (learner / oracle) is given only where the oracle's return is positive: for
negative returns (costs) the ratio reads backwards.

    python scripts/merge_ti_seeds.py results/ti_s0.json results/ti_s1.json ... --out results/X.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

METHODS = ("task inference", "blind", "oracle")
RANDOM = "random"
SMALL_GAP = 0.15
"""An oracle margin over the blind policy below this share of |oracle| is marked."""


def _method(row: dict) -> str:
    return next(m for m in (*METHODS, RANDOM) if row["method"].startswith(m))


def _fmt(row: dict | None) -> str:
    return "-" if row is None else f"{row['mean']:.1f}"


def merge(paths: list[Path]) -> str:
    per: dict[str, dict[str, dict[int, dict]]] = {}  # family -> method -> seed -> row
    argv = []
    for path in paths:
        data = json.loads(path.read_text())
        argv.append(" ".join(data["argv"]))
        for row in data["rows"]:
            (seed,) = row["seeds"]
            per.setdefault(row["family"], {}).setdefault(_method(row), {})[seed] = row
    lines = ["# Task inference over seeds (one benchmark process per seed)", ""]
    for family, methods in per.items():
        seeds = sorted(methods["oracle"])
        lines += [
            f"## {family}",
            "",
            "| seed | task inference | blind | oracle | oracle - blind | gap closure | share of oracle "
            "| random |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        closures, shares = [], []
        randoms = methods.get(RANDOM, {})
        for s in seeds:
            ti, b, o = (methods[m][s]["mean"] for m in METHODS)
            closure = (ti - b) / (o - b) if o > b else float("nan")
            closures.append(closure)
            margin = (o - b) / abs(o) if o != 0 else float("nan")
            c = "undefined (blind >= oracle)" if math.isnan(closure) else f"{closure:.2f}"
            if not math.isnan(closure) and margin < SMALL_GAP:
                c += f" (gap under {SMALL_GAP:.0%})"
            share = "-"
            if o > 0:
                shares.append(ti / o)
                share = f"{ti / o:.0%}"
            lines.append(
                f"| {s} | {ti:.1f} | {b:.1f} | {o:.1f} | {o - b:+.1f} ({margin:+.0%}) "
                f"| {c} | {share} | {_fmt(randoms.get(s))} |"
            )
        mean = {m: statistics.mean(methods[m][s]["mean"] for s in seeds) for m in METHODS}
        defined = [c for c in closures if not math.isnan(c)]
        lines += [
            f"| mean of {len(seeds)} | {mean['task inference']:.1f} | {mean['blind']:.1f} "
            f"| {mean['oracle']:.1f} | {mean['oracle'] - mean['blind']:+.1f} "
            f"| {len(defined)} of {len(seeds)} seeds defined"
            + (f" (mean {statistics.mean(defined):.2f})" if defined else "")
            + (f" | {statistics.mean(shares):.0%} (min {min(shares):.0%}) " if shares else " | - ")
            + (
                f"| {statistics.mean(randoms[s]['mean'] for s in seeds):.1f} |"
                if all(s in randoms for s in seeds)
                else "| - |"
            ),
            "",
        ]
    lines += ["Commands:", *[f"- `python {a}`" for a in argv], ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsons", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    md = merge(args.jsons)
    args.out.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
