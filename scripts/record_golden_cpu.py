"""Add this CPU's bit-exact records to the golden files of the seed tests (`tests/golden.py`).

Run it only on a commit whose tests pass on a CPU that already has records: the runs then
compute what the guarded code computes, and this CPU's curves are recorded beside the others.
    OMP_NUM_THREADS=1 python scripts/record_golden_cpu.py
    OMP_NUM_THREADS=2 python scripts/record_golden_cpu.py   (a CPU's curves may differ by threads)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metarl.cli import main  # noqa: E402
from tests.golden import cpu_kind, equals_a_record  # noqa: E402

DATA = ROOT / "tests" / "data"


def record_runs(path: Path) -> None:
    golden = json.loads(path.read_text())
    for name, run in golden["runs"].items():
        with tempfile.TemporaryDirectory() as tmp:
            args = [run["config"], *golden["tiny"], *run["overrides"], "--run-dir", tmp]
            if main(["train", *args, "--no-progress"]) != 0:
                raise SystemExit(f"{path.name}: {name} did not train")
            curve = json.loads((Path(tmp) / "results.json").read_text())["curve"]
        if not equals_a_record(curve, run):
            run.setdefault("other_cpus", []).append(
                {"cpu": cpu_kind(), "mean": curve["mean"], "ci95": curve["ci95"]}
            )
            print(f"{path.name}: {name}: recorded for {cpu_kind()}")
    path.write_text(json.dumps(golden, indent=1) + "\n")


def record_format_1() -> None:
    path = DATA / "v1" / "other_cpus.json"
    others = json.loads(path.read_text()) if path.exists() else {}
    for name in ("navigation_maml_trpo", "bandit_rl2", "sinusoid_maml"):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / name
            shutil.copytree(DATA / "v1" / name, run_dir)
            recorded = json.loads((run_dir / "results.json").read_text())["curve"]
            out = Path(tmp) / "eval.json"
            if main(["eval", str(run_dir), "--out", str(out)]) != 0:
                raise SystemExit(f"format 1: {name} did not evaluate")
            got = json.loads(out.read_text())["curve"]
        run = {**recorded, "other_cpus": others.get(name, [])}
        if not equals_a_record(got, run, ("mean",)):
            others.setdefault(name, []).append({"cpu": cpu_kind(), "mean": got["mean"]})
            print(f"format 1: {name}: recorded for {cpu_kind()}")
    path.write_text(json.dumps(others, indent=1) + "\n")


if __name__ == "__main__":
    for golden in ("golden_v1.json", "golden_sync_free.json"):
        record_runs(DATA / golden)
    record_format_1()
