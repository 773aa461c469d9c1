"""The GPU path end to end: every shipped config trains, evaluates, checkpoints and reloads
with `device=cuda` (tiny budgets, as in tests/test_configs.py). Skipped without CUDA;
`scripts/gpu_check.sh` runs these on a GPU machine.

What stays on the CPU: MuJoCo physics (the env returns numpy, `agents.rollout.BatchedEnv`
moves observations and rewards to the learner's device and actions back), the tensor envs'
task generator (a CPU `torch.Generator`, so the same seed draws the same tasks on every
device), and the evaluation metrics once gathered.
"""

from __future__ import annotations

import json

import pytest
import torch

from metarl.cli import main
from metarl.config import shipped_configs
from metarl.registry import load_config
from metarl.trainer import load_run
from tests.test_configs import MUJOCO_TASKS, TINY, TINY_LEARNER

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
TINY_CUDA = [x for x in TINY if not x.startswith("device=")] + ["device=cuda"]


def _extra(name: str, request) -> list[str]:
    cfg = load_config(name)
    extra = list(TINY_LEARNER.get(cfg.learner["kind"], []))
    if cfg.task["kind"] in MUJOCO_TASKS:
        extra += ["learner.horizon=10", "eval.video=false"]
    if cfg.task["kind"] == "omniglot":
        omniglot_dir = request.getfixturevalue("omniglot_dir")
        extra += [f"task.data_dir={omniglot_dir}", "task.queries=2", "task.train_ways=5"]
    return extra


def _train_on_cuda(name: str, extra: list[str], tmp_path, capsys) -> None:
    rc = main(["train", name, *TINY_CUDA, *extra, "--run-dir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["iterations"] == 2 and results["curve"]["num_tasks"] == 2
    run = load_run(tmp_path)  # the checkpoint (saved from CUDA) reloads onto the GPU
    assert run.device.type == "cuda"
    model = run.learner.state_dict()["model"]
    assert model and all(v.is_cuda for v in model.values() if isinstance(v, torch.Tensor))


@pytest.mark.parametrize("name", shipped_configs())
def test_tiny_cuda_run_of_shipped_config(name, tmp_path, request, capsys):  # pragma: no cover
    _train_on_cuda(name, _extra(name, request), tmp_path, capsys)


@pytest.mark.parametrize("name", ["omniglot_maml_5w1s", "omniglot_protonet_5w1s"])
def test_tiny_cuda_bf16_run(name, tmp_path, request, capsys):  # pragma: no cover - GPU only
    _train_on_cuda(name, _extra(name, request) + ["train.precision=bf16"], tmp_path, capsys)
