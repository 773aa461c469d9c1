"""Thread choice, the up-front memory bound, and the progress bars people see."""

from __future__ import annotations

import torch

from metarl.registry import load_config
from metarl.resources import SMALL_MODEL, choose_threads, state_numel, tensor_bytes
from metarl.trainer import _postfix, build_run, train
from tests.cli_cases import TINY


class _Learner:
    def __init__(self, numbers: int):
        self.weights = torch.zeros(numbers)

    def state_dict(self):
        return {"model": {"w": self.weights}, "optimizer": {"step": torch.tensor(3)}}


def test_small_models_run_on_one_thread_unless_the_user_chose(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        assert state_numel(_Learner(10).state_dict()) == 10  # integer tensors are not numbers
        assert choose_threads(_Learner(10)) == 1
        torch.set_num_threads(2)
        assert choose_threads(_Learner(SMALL_MODEL)) == 2  # large: torch's choice stays
        assert choose_threads(_Learner(10), threads=2) == 2  # --threads wins
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert choose_threads(_Learner(10)) == 2  # so does the environment
    finally:
        torch.set_num_threads(before)


def test_task_bytes_count_every_tensor_of_an_episode(tmp_path):
    run = build_run(load_config("sinusoid_maml", TINY), tmp_path)
    episode = run.distribution.sample("train", 3, torch.Generator().manual_seed(0))
    # support 5 and query 10 points, x and y, float32, 3 tasks
    assert tensor_bytes(episode) == 3 * (5 + 10) * 2 * 4


def test_progress_bars_show_evaluation_and_keep_their_width(tmp_path, capsys):
    train(load_config("sinusoid_maml", [*TINY, "eval.final_num_tasks=8"]), tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "eval test:   0%|" in err and "0/8 [" in err and "task/s" in err  # final eval bar
    metrics = {f"m{i}": float(i) for i in range(12)} | {"loss": 1.0, "return": 2.0}
    learner = type("L", (), {"metric": "return"})()
    assert list(_postfix(metrics, learner)) == ["return", "loss", "m0"]
