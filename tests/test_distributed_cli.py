"""`torchrun ... -m metarl train`: two "nodes" on 127.0.0.1, a rank killed mid-run, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metarl.checkpoint import load_checkpoint
from metarl.cli import main
from tests.test_distributed import free_port

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "METARL_DIST_TIMEOUT": "60"}


def test_fewer_tasks_than_processes_is_one_line_from_rank_0_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["train", "sinusoid_maml", "train.num_tasks=1", "--run-dir", str(tmp_path / "r")]
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, lines in (("0", 1), ("1", 0)):  # rank 1 read the same command line: quiet
        monkeypatch.setenv("RANK", rank)
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == lines
    assert not (tmp_path / "r").exists()


def test_eval_under_torchrun_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["eval", str(tmp_path)]) == 2
    assert "metarl eval runs in one process" in capsys.readouterr().err


def _node(rank: int, port: int, command: list[str]) -> subprocess.Popen[str]:
    """Node `rank` of two on 127.0.0.1: one torchrun launch with one process."""
    return subprocess.Popen(
        [
            *TORCHRUN,
            "--nnodes",
            "2",
            "--node-rank",
            str(rank),
            "--nproc-per-node",
            "1",
            "--rdzv-endpoint",
            f"127.0.0.1:{port}",
            "-m",
            "metarl",
            *command,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def test_two_nodes_train_a_killed_rank_stops_the_other_and_the_run_resumes(
    tmp_path: Path,
) -> None:
    """Two torchrun launches (`--nnodes 2 --node-rank 0/1 --rdzv-endpoint 127.0.0.1:PORT`)
    train; node 1's process is killed (SIGKILL) after the first checkpoints; node 0's stops
    within seconds with one line naming the intact checkpoint, which resumes (one process) to
    the end. (That resumed runs equal uninterrupted ones: test_distributed_train.)"""
    run_dir = tmp_path / "two_nodes"
    command = [
        "train",
        "sinusoid_maml",
        "device=cpu",
        "train.num_tasks=4",
        "train.iterations=400",  # about a second or more: killed well before the end
        "train.checkpoint_interval=10",
        "train.eval_interval=0",
        "eval.final_num_tasks=10",
        "eval.batch_tasks=10",
        "eval.max_budget=2",
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    port = free_port()
    nodes = [_node(r, port, command) for r in (0, 1)]
    ckpt = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 180
    while not ckpt.exists() and time.time() < deadline and nodes[0].poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), nodes[0].communicate()[1][-3000:]
    (rank1,) = _children(nodes[1].pid)
    os.kill(rank1, signal.SIGKILL)
    killed = time.time()
    (out0, err0), (_, err1) = (p.communicate(timeout=90) for p in nodes)
    assert time.time() - killed < 60  # well within the process-group timeout (60 s here)
    assert nodes[0].returncode != 0 and nodes[1].returncode != 0
    lines = [line for line in (err0 + err1).splitlines() if line.startswith("metarl:")]
    assert len(lines) == 1, err0[-3000:]
    assert lines[0].startswith("metarl: stopped: rank 0 of 2 lost the other processes")
    state = load_checkpoint(ckpt)  # atomic writes: a whole checkpoint, never half of one
    stopped = state["iteration"]
    assert 10 <= stopped < 400 and stopped % 10 == 0
    assert f"(iteration {stopped}) is intact: `metarl resume {run_dir}`" in lines[0]
    assert "Adaptation curve" not in out0
    assert main(["resume", str(run_dir), "--no-progress"]) == 0
    assert load_checkpoint(ckpt)["iteration"] == 400
    assert json.loads((run_dir / "results.json").read_text())["iteration"] == 400


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]
