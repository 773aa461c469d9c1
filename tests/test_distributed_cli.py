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
# max_minutes so small that every call stops after one meta-iteration (checkpoint, results)
ONE_STEP = [
    "device=cpu",
    "train.num_tasks=5",
    "train.iterations=100",
    "train.max_minutes=1e-9",
    "train.eval_interval=0",
    "eval.final_num_tasks=6",
    "eval.batch_tasks=6",
    "eval.max_budget=2",
]


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


def test_two_nodes_on_localhost_train_and_the_run_resumes(tmp_path: Path) -> None:
    """Two torchrun launches (`--nnodes 2 --node-rank 0/1 --rdzv-endpoint 127.0.0.1:PORT`)
    train one iteration; node 0 reports; the run resumes (one process) to iteration 2. (That
    a resumed run equals an uninterrupted one, on 2 or 1 processes: test_distributed_train.)"""
    run_dir = tmp_path / "two_nodes"
    command = ["train", "sinusoid_maml", *ONE_STEP, "--run-dir", str(run_dir), "--no-progress"]
    port = free_port()
    nodes = [_node(r, port, command) for r in (0, 1)]
    outs = [p.communicate(timeout=240) for p in nodes]
    for p, (_, err) in zip(nodes, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert "Adaptation curve" in outs[0][0] and "Adaptation curve" not in outs[1][0]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["iteration"] == 1
    assert main(["resume", str(run_dir), "--no-progress"]) == 0
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["iteration"] == 2
    assert json.loads((run_dir / "results.json").read_text())["iteration"] == 2


def test_a_killed_rank_stops_the_other_with_one_line_and_the_checkpoint_is_intact(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            *TORCHRUN,
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            "-m",
            "metarl",
            "train",
            "sinusoid_maml",
            "device=cpu",
            "train.num_tasks=4",
            "train.iterations=1000000",
            "train.eval_interval=0",
            "train.checkpoint_interval=5",
            "train.max_minutes=3",
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    ckpt = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 180
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    rank1 = next(
        pid
        for pid in _children(proc.pid)
        if "RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    )
    os.kill(rank1, signal.SIGKILL)
    killed = time.time()
    _, err = proc.communicate(timeout=90)
    assert time.time() - killed < 60  # well within the process-group timeout
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("metarl:")]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("metarl: stopped: rank 0 of 2 lost the other processes")
    assert "is intact: `metarl resume" in lines[0]
    state = load_checkpoint(ckpt)  # atomic writes: a whole checkpoint, never half of one
    assert state["iteration"] % 5 == 0 and f"(iteration {state['iteration']})" in lines[0]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]
