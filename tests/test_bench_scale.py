"""scripts/bench_scale.py: real 1- and 2-process measurements (quick budgets), rows, table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scripts import load_script


def test_quick_maml_omniglot_on_one_and_two_processes(
    tmp_path: Path, omniglot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process measured here (the script's worker, unpinned), two through torchrun as the
    script launches them; then the rows and the table."""
    monkeypatch.setenv("METARL_OMNIGLOT", str(omniglot_dir))
    bench = load_script("bench_scale")
    quick = bench.BENCHES["maml_omniglot"]["quick"]
    bench.worker("omniglot_maml_5w1s", quick, 1, tmp_path / "one.json", pin=False)
    one = json.loads((tmp_path / "one.json").read_text())
    one["command"] = "in-process"
    two = bench.measure("maml_omniglot", 2, True, 1)
    rows = [bench.row("maml_omniglot", 1, one, None)]
    rows.append(bench.row("maml_omniglot", 2, two, rows[0]["median_seconds"]))
    one, two = rows
    assert one["median_seconds"] > 0 and two["median_seconds"] > 0
    assert two["speedup"] == pytest.approx(one["median_seconds"] / two["median_seconds"])
    assert one["comm_seconds"] == 0 < two["comm_seconds"] < two["median_seconds"]
    assert two["allreduce_seconds"] > 0 and two["grad_numel"] == one["grad_numel"] > 1000
    assert two["command"].startswith("OMP_NUM_THREADS=1 python -m torch.distributed.run")
    assert "--nproc-per-node 2" in two["command"] and "--master-port" not in two["command"]
    text = bench.table(rows, {"maml_omniglot": 1})
    assert "| MAML Omniglot 5w1s, 2nd order, 32 tasks | 2 |" in text


def test_a_refusing_learner_is_a_not_distributed_yet_row() -> None:
    bench = load_script("bench_scale")
    refused = {
        "refused": "learner.kind maml_rl does not train on several processes yet",
        "command": "c",
    }
    r = bench.row("maml_trpo_halfcheetah", 2, refused, 1.0)
    text = bench.table([r], {"maml_trpo_halfcheetah": 3})
    assert "| MAML-TRPO HalfCheetahVel, 40 tasks | 2 | not distributed yet |" in text
    assert "maml_rl does not train on several processes yet" in text
