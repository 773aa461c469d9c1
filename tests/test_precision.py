"""train.precision=bf16: the few-shot learners under bfloat16 autocast, against fp32 on CPU.

Measured here (seed 0, CPU, torch 2.13, the cases below: 20 held-out tasks of 75 queries):
first meta-step loss |bf16 - fp32| / fp32, and the largest held-out accuracy difference over
the curve's budgets:
    MAML 5w1s second order (conv_channels 16, 4 tasks): 1.3e-2, 7.3e-3
    ProtoNet 5w1s (20-way training):                    6.0e-3, 4.0e-3
    Matching 5w1s:                                      5.7e-4, 2.0e-3
The bounds below (3% on the loss, 0.03 on an accuracy) are about twice the worst of these
(one accuracy step here is 1/1500).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metarl.cli import main
from metarl.config import migrate_config
from metarl.errors import UsageError
from metarl.precision import autocast
from metarl.registry import load_config
from metarl.trainer import build_run

LOSS_RTOL = 0.03
ACCURACY_ATOL = 0.03

CASES = {
    "maml": (
        "omniglot_maml_5w1s",
        ["train.num_tasks=4", "learner.conv_channels=16", "eval.max_budget=1"],
    ),
    "protonet": ("omniglot_protonet_5w1s", ["task.train_ways=20"]),
    "matching": ("omniglot_matching_1shot", []),
}


def _seeded_step_and_curve(name: str, overrides: list[str], precision: str, tmp: Path):
    """The loss of the first meta-step of a seeded run and the held-out curve after it, with
    the trainer's own hooks (`metarl.precision.autocast`, `Run.evaluate`)."""
    eval_keys = ["eval.num_tasks=20", "eval.batch_tasks=20"]
    cfg = load_config(name, overrides + eval_keys + [f"train.precision={precision}", "device=cpu"])
    run = build_run(cfg, tmp)
    tasks = run.distribution.sample("train", cfg.train.num_tasks, run.generator)
    with autocast(cfg.train.precision, run.device):
        loss = run.learner.meta_step(tasks)["loss"]
    return loss, run.evaluate("test", cfg.eval.num_tasks)["mean"]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bf16_meta_step_and_evaluation_match_fp32(kind, omniglot_dir, tmp_path):
    name, overrides = CASES[kind]
    loss32, curve32 = _seeded_step_and_curve(name, overrides, "fp32", tmp_path / "a")
    loss16, curve16 = _seeded_step_and_curve(name, overrides, "bf16", tmp_path / "b")
    assert loss16 != loss32  # autocast really ran: bf16 products round differently
    assert abs(loss16 - loss32) <= LOSS_RTOL * abs(loss32)
    assert len(curve16) == len(curve32)
    for a, b in zip(curve32, curve16, strict=True):
        assert abs(a - b) <= ACCURACY_ATOL


def test_bf16_autocasts_the_forward_and_keeps_fp32_parameters():
    conv = torch.nn.Conv2d(1, 4, 3)
    with autocast("bf16", torch.device("cpu")):
        out = conv(torch.randn(2, 1, 8, 8))
    assert out.dtype == torch.bfloat16 and conv.weight.dtype == torch.float32
    with autocast("fp32", torch.device("cpu")):
        assert conv(torch.randn(2, 1, 8, 8)).dtype == torch.float32


def test_bf16_is_refused_in_one_line_for_rl_learners(capsys, tmp_path):
    with pytest.raises(UsageError, match="train.precision=bf16 is not supported by learner.kind"):
        load_config("bandit_rl2_k5_n10", ["train.precision=bf16"])
    assert (
        main(["train", "bandit_rl2_k5_n10", "train.precision=bf16", "--run-dir", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use train.precision=fp32" in err[0]


def test_precision_takes_only_fp32_or_bf16():
    with pytest.raises(UsageError, match="train.precision: 'fp16' is not valid; choose one of"):
        load_config("sinusoid_maml", ["train.precision=fp16"])
    assert load_config("sinusoid_maml").train.precision == "fp32"


def test_a_config_written_before_the_field_reads_as_fp32():
    old = {"name": "x", "train": {"iterations": 2}, "learner": {"kind": "maml"}}
    assert migrate_config(old)["train"]["precision"] == "fp32"
    assert "precision" not in old["train"]  # the input is not changed
