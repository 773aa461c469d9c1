"""The task-inference benchmark end to end on a tiny navigation budget: the learner continues
the oracle's phase-1 checkpoint (the trainer's checkpoint check must accept it), and the rows
hold the three trained methods at the same iterations, beside an untrained random row."""

from __future__ import annotations

import argparse

from tests.scripts import load_script


def _bench():
    return load_script("_task_inference_bench")


def test_the_learner_continues_the_oracles_phase_1_and_all_rows_share_its_budget():
    bench = _bench()
    args = argparse.Namespace(
        quick=True, seeds=[0], test_tasks=4, minutes=5.0, ti_iterations=4, ti_phase2=2
    )
    all_rows = bench.navigation_rows(args)
    methods = {r["method"].split(";")[0] for r in all_rows}
    assert methods == {
        "task inference (history only)",
        "blind (same PPO, no task)",
        "oracle (task embedding)",
        "random (uniform actions)",
    }
    (random,) = [r for r in all_rows if r["method"].startswith("random")]
    assert random["env_steps"] == 0 and random["n"] == 4 and "RandomActor" in random["command"]
    rows = [r for r in all_rows if r is not random]
    # --ti-random-only draws the same held-out tasks and actions without training anything
    alone = bench.navigation_rows(argparse.Namespace(**vars(args), ti_random_only=True))
    assert [r["method"] for r in alone] == [random["method"]]
    assert alone[0]["mean"] == random["mean"] and alone[0]["windows"] == random["windows"]
    for row in rows:
        mode = {"task": "learner", "blind": "blind", "oracle": "oracle"}[row["method"].split()[0]]
        assert f"learner.mode={mode}" in row["command"]
        assert row["env_steps"] == rows[0]["env_steps"] > 0  # one budget for all three
        assert row["n"] == 4 and all(v == v for v in row["windows"])  # finite curves
