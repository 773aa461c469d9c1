"""`scripts/ti_eval_modes.py` on a real tiny navigation run: both modes, seeded, bad input."""

from __future__ import annotations

import sys

import pytest

from metarl.cli import main as metarl_main
from tests.scripts import load_script


def _run(monkeypatch, capsys, *argv: str) -> str:
    script = load_script("ti_eval_modes")
    monkeypatch.setattr(sys, "argv", ["ti_eval_modes.py", *argv])
    script.main()
    return capsys.readouterr().out


def test_mode_and_sampled_lines_are_seeded_and_differ(tmp_path, monkeypatch, capsys):
    run = tmp_path / "nav"
    metarl_main(
        [
            "train", "navigation_task_inference", "device=cpu", "train.iterations=3",
            "learner.phase2_start=2", "learner.adapter_epochs=1", "train.num_tasks=4",
            "train.eval_interval=0", "eval.final_num_tasks=4", "eval.batch_tasks=4",
            "eval.video=false", "--run-dir", str(run), "--no-progress",
        ]
    )  # fmt: skip
    capsys.readouterr()
    out = _run(monkeypatch, capsys, str(run), "--tasks", "6")
    lines = out.strip().splitlines()
    assert [line.split(":")[0].strip() for line in lines] == ["mode (deterministic)", "sampled"]
    assert all(line.endswith("on 6 tasks") for line in lines)
    mode, sampled = (float(line.split(":")[1].split("+-")[0]) for line in lines)
    assert mode != sampled  # the sampled actions are not the mode
    assert _run(monkeypatch, capsys, str(run), "--tasks", "6") == out  # seeded: same numbers


@pytest.mark.parametrize("argv", [["{tmp}/missing"], ["{tmp}", "--tasks", "1"]])
def test_bad_input_exits_2_with_one_line(argv, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _run(monkeypatch, capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
