"""scripts/bench_scale.py --quick: real 1- and 2-process measurements, the table and JSON."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "scripts/bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_maml_omniglot_on_one_and_two_processes(tmp_path: Path, omniglot_dir: Path) -> None:
    out = tmp_path / "scale.json"
    cmd = [sys.executable, "scripts/bench_scale.py", "--quick", "--bench", "maml_omniglot"]
    cmd += ["--iterations", "1", "--out", str(out)]
    env = {"OMP_NUM_THREADS": "1", "METARL_OMNIGLOT": str(omniglot_dir)}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**_env(), **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["processes"] for r in rows] == [1, 2]
    one, two = rows
    assert one["median_seconds"] > 0 and two["median_seconds"] > 0
    assert two["speedup"] == pytest.approx(one["median_seconds"] / two["median_seconds"])
    assert one["comm_seconds"] == 0 < two["comm_seconds"] < two["median_seconds"]
    assert two["allreduce_seconds"] > 0 and two["grad_numel"] == one["grad_numel"] > 1000
    assert "--nproc-per-node 2" in two["command"]
    md = out.with_suffix(".md").read_text()
    assert "| MAML Omniglot 5w1s, 2nd order, 32 tasks | 2 |" in md and "--quick" in md


def test_a_refusing_learner_is_a_not_distributed_yet_row() -> None:
    bench = load_script()
    refused = {
        "refused": "learner.kind maml_rl does not train on several processes yet",
        "command": "c",
    }
    r = bench.row("maml_trpo_halfcheetah", 2, refused, 1.0)
    text = bench.table([r], {"maml_trpo_halfcheetah": 3})
    assert "| MAML-TRPO HalfCheetahVel, 40 tasks | 2 | not distributed yet |" in text
    assert "maml_rl does not train on several processes yet" in text


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
