"""Time to target in scripts/bench_metarl.py, read from a real tiny RL² run's TensorBoard file."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarl.registry import load_config
from metarl.trainer import train
from tests.scripts import load_script


def _bench():
    return load_script("bench_metarl")


def _train(run_dir: Path, eval_interval: int = 1) -> Path:
    """A tiny RL² run as the benchmark trains it (no final evaluation)."""
    over = ["device=cpu", "train.iterations=2", "train.num_tasks=4", "learner.hidden_size=8",
            f"train.eval_interval={eval_interval}", "train.checkpoint_interval=2",
            "eval.num_tasks=3", "eval.video=false"]  # fmt: skip
    train(load_config("bandit_rl2_k5_n10", over), run_dir, progress=False, final_eval=False)
    return run_dir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("ttt") / "run")


def test_time_to_target_reads_every_evaluation_and_sums_the_curve(tiny_run):
    bench = _bench()
    per_iter = 4 * 10  # 4 tasks x 10 one-pull episodes
    never = bench.time_to_target(tiny_run, target=1e9, steps_per_iteration=per_iter)
    history = never["ttt_history"]
    # Evaluations at iterations 1 and 2, each with all 10 budgets summed.
    assert [h[1] for h in history] == [per_iter, 2 * per_iter]
    assert never["ttt_seconds"] is None and never["ttt_env_steps"] is None
    assert all(0.0 <= h[2] <= 10.0 for h in history)  # a total of 10 Bernoulli pulls
    assert history[0][0] <= history[1][0]
    assert never["total_at_15min"] is None  # the run lasted seconds, not 15 minutes
    # a run that trained 15 minutes counts at 15 with its last evaluation before the mark
    long = bench.time_to_target(tiny_run, 1e9, per_iter, run_seconds=15 * 60.0)
    assert long["total_at_15min"] == history[-1][2] and long["total_at_30min"] is None
    low = min(h[2] for h in history)
    hit = bench.time_to_target(tiny_run, target=low, steps_per_iteration=per_iter)
    first = next(h for h in history if h[2] >= low)
    assert (hit["ttt_seconds"], hit["ttt_env_steps"]) == (first[0], first[1])


def test_time_to_target_needs_in_training_evaluations(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(tmp_path)  # a run that logged training scalars only
    writer.add_scalar("meta/trial_return", 1.0, 1)
    writer.close()
    with pytest.raises(ValueError, match="eval_interval"):
        _bench().time_to_target(tmp_path, 1.0, 1)
