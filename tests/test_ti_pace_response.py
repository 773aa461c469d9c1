"""`scripts/ti_pace_response.py` on real tiny MuJoCo pace runs: the pace changes only the reward."""

from __future__ import annotations

import sys

import pytest

from metarl.cli import main as metarl_main
from tests.scripts import load_script

TINY = [
    "device=cpu", "train.iterations=1", "train.num_tasks=2", "learner.horizon=10",
    "learner.phase2_start=0", "learner.minibatches=2", "learner.history_length=4", "train.eval_interval=0",
    "eval.final_num_tasks=2", "eval.batch_tasks=2", "eval.video=false", "--no-progress",
]  # fmt: skip


def _train(tmp_path, config: str, *extra: str):
    run = tmp_path / f"{config}{'_'.join(extra)}"
    rc = metarl_main(["train", config, *TINY, *extra, "--run-dir", str(run)])
    assert rc in (0, None)
    return run


def _run(monkeypatch, capsys, *argv: str) -> list[tuple[float, float, float]]:
    script = load_script("ti_pace_response")
    monkeypatch.setattr(sys, "argv", ["ti_pace_response.py", *argv])
    script.main()
    rows = []
    for line in capsys.readouterr().out.strip().splitlines():  # pace P m/s: ... V m/s, return R
        words = line.replace(",", "").split()
        rows.append((float(words[1]), float(words[5]), float(words[-1])))
    return rows


def test_the_blind_agent_goes_one_speed_for_every_pace(tmp_path, monkeypatch, capsys):
    blind = _train(tmp_path, "terrain_pace_task_inference", "learner.mode=blind")
    capsys.readouterr()
    rows = _run(monkeypatch, capsys, str(blind), "--tasks", "3", "--paces", "0", "1", "2")
    assert [r[0] for r in rows] == [0.0, 1.0, 2.0]
    # The blind policy never sees the pace and the pace is not in the dynamics: one speed...
    assert rows[0][1] == rows[1][1] == rows[2][1]
    # ... and a return that pays -|v - pace| every step: an untrained cheetah stays far below
    # 1 m/s, so asking 2 instead of 1 m/s costs exactly 1 per step of the 10.
    assert rows[1][2] - rows[2][2] == pytest.approx(10.0, abs=0.11)
    oracle = _train(tmp_path, "terrain_pace_task_inference", "learner.mode=oracle")
    capsys.readouterr()
    assert len(_run(monkeypatch, capsys, str(oracle), "--tasks", "2")) == 5  # default paces


def test_a_run_without_a_pace_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    run = _train(tmp_path, "terrain_task_inference", "learner.mode=blind")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        _run(monkeypatch, capsys, str(run))
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "not on the pace family" in err and "\n" not in err
