"""A tiny-budget CLI run of every shipped config, on real data where the config needs it."""

import json

import pytest

from metarl.cli import main
from metarl.config import shipped_configs
from metarl.registry import load_config

TINY = [
    "device=cpu",
    "train.iterations=2",
    "train.num_tasks=2",
    "train.eval_interval=1",
    "train.checkpoint_interval=1",
    "train.log_interval=1",
    "eval.num_tasks=2",
    "eval.final_num_tasks=2",
    "eval.batch_tasks=2",
    "eval.max_budget=2",
]


# Smaller experience per task for the meta-RL learners, and short MuJoCo episodes: the point
# here is that every config builds, trains, evaluates and writes its run directory.
TINY_LEARNER = {
    "rl2": ["learner.episodes_per_trial=2"],
    "maml_rl": ["learner.episodes_per_task=2"],
    "reptile": ["learner.adapt_steps=1", "task.train_shots=2", "learner.eval_adapt_steps=2"],
    "lstm_optimizer": ["learner.optimizee_steps=4", "learner.unroll=2"],
    "task_inference": ["learner.phase2_start=1", "learner.history_length=4"],  # both phases
}
MUJOCO_TASKS = {"slope", "terrain", "half_cheetah_vel", "half_cheetah_dir", "ant_dir", "ant_goal"}


def test_every_shipped_config_validates():
    names = shipped_configs()
    assert {"demo", "sinusoid_maml", "omniglot_maml_5w1s", "omniglot_protonet_20w5s"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name, f"{name}.yaml: name field must match the file name"


@pytest.mark.parametrize("name", shipped_configs())
def test_tiny_run_of_shipped_config(name, tmp_path, request, capsys):
    cfg = load_config(name)
    extra = list(TINY_LEARNER.get(cfg.learner["kind"], []))
    if cfg.task["kind"] in MUJOCO_TASKS:
        extra.append("learner.horizon=10")
    if cfg.task["kind"] == "omniglot":
        omniglot_dir = request.getfixturevalue("omniglot_dir")
        extra += [f"task.data_dir={omniglot_dir}", "task.queries=2", "task.train_ways=5"]
    rc = main(["train", name, *TINY, *extra, "--run-dir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["iterations"] == 2 and results["curve"]["num_tasks"] == 2
    assert "Adaptation curve" in out.out and "tensorboard --logdir" in out.out
    assert (tmp_path / "curves.png").exists() and (tmp_path / "checkpoints" / "last.pt").exists()
    # MuJoCo tasks also get a video of adapted behaviour (TensorBoard adapt/video, a GIF)
    assert (tmp_path / "adapted.gif").exists() == (cfg.task["kind"] in MUJOCO_TASKS)
