"""One process per run directory, atomic files, a full disk, and what Ctrl-C keeps: a real
second process (`python -m metarl`), real signals, a real file-size limit (RLIMIT_FSIZE)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metarl.checkpoint import atomic_write_text, load_checkpoint
from metarl.cli import main
from metarl.fewshot.maml import MAML
from tests.cli_cases import train_argv

LONG = ["train.iterations=100000", "eval.video=false"]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600.0) -> None:
    """Wait for `path` (generous: a loaded 2-core machine takes minutes to start torch)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_process_is_refused_and_sigterm_keeps_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "r"
    first = subprocess.Popen(
        [sys.executable, "-m", "metarl", *train_argv(run, *LONG)],  # checkpoint_interval=1
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        wait_for(run / "checkpoints" / "last.pt", first)
        capsys.readouterr()
        assert main(train_argv(run, *LONG, "seed=1")) == 2
        assert capsys.readouterr().err.strip() == (
            f"metarl: error: run directory {run} is in use by process {first.pid} (a metarl "
            "train, resume or eval); wait for it to end, or choose another --run-dir"
        )
        assert main(["eval", str(run)]) == 2  # eval writes results.json: it waits its turn
        assert f"in use by process {first.pid}" in capsys.readouterr().err
        assert "seed: 0" in (run / "config.yaml").read_text()  # the first run's, untouched
    finally:
        first.send_signal(signal.SIGTERM)  # like Ctrl-C (`timeout`, schedulers)
        _, err = first.communicate(timeout=600)
    kept = load_checkpoint(run / "checkpoints" / "last.pt")["iteration"]
    assert first.returncode == 130
    assert err.strip().startswith("metarl: interrupted at iteration ")
    assert err.strip().endswith(
        f"; the last good checkpoint {run / 'checkpoints' / 'last.pt'} (iteration {kept}) is "
        f"intact: `metarl resume {run}`"
    )
    assert len(err.strip().splitlines()) == 1


def test_ctrl_c_before_the_first_checkpoint_says_so_and_leaves_nothing(
    tmp_path, monkeypatch, capsys
):
    def interrupted(self, tasks):
        raise KeyboardInterrupt

    monkeypatch.setattr(MAML, "meta_step", interrupted)
    assert main(train_argv(tmp_path / "r")) == 130
    assert capsys.readouterr().err.strip() == (
        "metarl: interrupted at iteration 0; no checkpoint had been written yet, so nothing "
        "was kept"
    )
    assert not (tmp_path / "r").exists()


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Writes beyond `limit` bytes fail with EFBIG, as on a full disk (SIGXFSZ ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, capsys):
    run = tmp_path / "r"
    with file_size_limit(12_000):  # below the checkpoint's size, above config.yaml's
        rc = main(train_argv(run, "eval.video=false"))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"could not write checkpoint {run / 'checkpoints' / 'last.pt'} (File too large)" in err
    assert not run.exists()  # a failed start leaves nothing
    assert [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_text(path, json.dumps({"a": 1}))
    with file_size_limit(100), pytest.raises(OSError, match="File too large"):
        atomic_write_text(path, "x" * 1000)
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
