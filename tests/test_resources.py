"""Thread choice, the up-front memory bound, and the progress bars people see."""

from __future__ import annotations

import torch

from metarl.registry import load_config
from metarl.resources import SMALL_MODEL, choose_threads, saved_bytes, state_numel, tensor_bytes
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


def test_saved_bytes_counts_what_autograd_keeps_for_backward():
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(3, 5, requires_grad=True)
    assert saved_bytes(lambda: a @ b) == (12 + 15) * 4  # d/da needs b, d/db needs a
    assert saved_bytes(lambda: (a * a).sum()) == 12 * 4  # a saved twice, one storage
    assert saved_bytes(lambda: a.exp()) == 12 * 4  # exp keeps its output
    with torch.no_grad():
        assert saved_bytes(lambda: a @ b) == 0


def test_maml_memory_estimate_grows_with_the_graph_only_when_tasks_are_batched(tmp_path):
    def per_task(*over):
        run = build_run(load_config("sinusoid_maml", [*TINY, *over]), tmp_path)
        probe = run.distribution.sample("train", 1, torch.Generator().manual_seed(0))
        return run.learner.bytes_per_task(probe), tensor_bytes(probe)

    loop, task = per_task("learner.task_batching=loop")
    assert loop == task  # the loop frees each task's graph after its own backward
    one, _ = per_task("learner.task_batching=vmap", "learner.adapt_steps=1")
    three, _ = per_task("learner.task_batching=vmap", "learner.adapt_steps=3")
    # a 1-40-40-1 MLP on 5 support points: every inner step keeps at least its two 40-wide
    # activations, and every extra step adds its own graph (second order: kept to the end)
    assert one > task + 2 * 5 * 40 * 4
    assert (three - one) / 2 > 2 * 5 * 40 * 4


def test_rl2_memory_estimate_counts_trajectories_and_recurrent_activations(tmp_path):
    cfg = load_config("bandit_rl2_k5_n10", [*TINY, "learner.hidden_size=16"])
    run = build_run(cfg, tmp_path)
    probe = run.distribution.sample("train", 1, torch.Generator().manual_seed(0))
    c = run.learner.cfg
    steps = c.episodes_per_trial * run.distribution.horizon
    obs = run.distribution.observation_space.shape[0]
    expected = tensor_bytes(probe) + steps * (obs + 1 + 8 + 6 * 16) * 4
    assert run.learner.bytes_per_task(probe) == expected
