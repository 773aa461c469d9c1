"""Every bad input of issue 10 ends in one line and the documented exit code, never a
traceback, and a refused `train` leaves no run directory behind (cases: `tests/cli_cases.py`)."""

from __future__ import annotations

import pytest

from metarl.checkpoint import load_checkpoint, non_finite_entries
from metarl.cli import main
from tests.cli_cases import CASES, OMNIGLOT_DIR, train_argv


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(train_argv(run, "eval.video=false")) == 0
    return run


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_and_its_exit_code(case, tmp_path, trained, capsys):
    if case.needs_omniglot and not (OMNIGLOT_DIR / "images_background.npz").is_file():
        pytest.skip("offline Omniglot copy not found")
    argv = case.argv(tmp_path, trained)
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == case.rc, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert case.message in err, err
    if argv[0] == "train":  # nothing that blocks the corrected command is left behind
        run_dir = argv[argv.index("--run-dir") + 1]
        ckpt = tmp_path / "r" / "checkpoints" / "last.pt"
        if rc == 2:
            assert not (tmp_path / "r").exists() or run_dir != str(tmp_path / "r")
        elif ckpt.exists():  # stopped on a non-finite value: what it kept is finite
            assert list(non_finite_entries(load_checkpoint(ckpt))) == []
    assert not (tmp_path / "pwned").exists()  # a YAML tag never runs


def test_numbers_parse_as_typed(tmp_path, capsys):
    from metarl.registry import load_config

    for text, value in [("1e-3", 1e-3), ("1E-3", 1e-3), ("1e30", 1e30), (".5", 0.5), ("2", 2.0)]:
        assert (
            load_config("sinusoid_maml", [f"learner.outer_lr={text}"]).learner["outer_lr"] == value
        )
    cfg = load_config("sinusoid_maml", ["eval.batch_tasks=1e8", "train.max_minutes=inf"])
    assert cfg.eval.batch_tasks == 100_000_000 and isinstance(cfg.eval.batch_tasks, int)
    assert cfg.train.max_minutes == float("inf")
    # the parsed number, not the typed string, is what config.yaml holds and resume compares
    argv = train_argv(tmp_path / "r", "learner.outer_lr=1e-3", "eval.video=false")
    assert main(argv) == 0
    assert "outer_lr: 0.001\n" in (tmp_path / "r" / "config.yaml").read_text()
    argv = train_argv(tmp_path / "r", "learner.outer_lr=0.001", "eval.video=false")
    assert main(argv) == 0, capsys.readouterr().err


def test_a_failed_start_does_not_block_the_corrected_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default run directory runs/<name>
    bad = ["train", "sinusoid_maml", "task.amplitude=[5, 1]", *train_argv(tmp_path)[2:-3]]
    assert main([*bad, "--no-progress"]) == 2
    assert "task.amplitude must be [low, high]" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "sinusoid_maml").exists()
    good = ["train", "sinusoid_maml", *train_argv(tmp_path)[2:-3], "eval.video=false"]
    assert main([*good, "--no-progress"]) == 0
    assert (tmp_path / "runs" / "sinusoid_maml" / "checkpoints" / "last.pt").exists()


def test_a_stale_config_without_checkpoint_is_replaced(tmp_path, capsys):
    """A run killed before its first checkpoint (no cleanup possible) leaves config.yaml;
    the corrected command still starts."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("name: other\nseed: 3\n")
    assert main(train_argv(tmp_path / "r", "eval.video=false")) == 0
    assert "seed: 0" in (tmp_path / "r" / "config.yaml").read_text()
