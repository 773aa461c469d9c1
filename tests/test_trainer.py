"""The engine: reproducibility, resume after a kill, TensorBoard read-back, stopping safely."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.checkpoint import load_checkpoint
from metarl.cli import main
from metarl.fewshot.maml import MAML
from metarl.registry import load_config
from metarl.trainer import train

TINY = [
    "device=cpu",
    "train.num_tasks=5",
    "train.eval_interval=6",
    "train.checkpoint_interval=4",
    "train.log_interval=2",
    "eval.num_tasks=8",
    "eval.final_num_tasks=16",
    "eval.max_budget=3",
    "eval.batch_tasks=8",
]


def tiny(iterations=12, *extra):
    return load_config("sinusoid_maml", [*TINY, f"train.iterations={iterations}", *extra])


def params_of(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["learner"]["model"]


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_two_runs_with_one_seed_are_identical_and_another_seed_differs(tmp_path):
    r1 = train(tiny(), tmp_path / "a", progress=False)
    r2 = train(tiny(), tmp_path / "b", progress=False)
    r3 = train(tiny(12, "seed=1"), tmp_path / "c", progress=False)
    assert r1["curve"] == r2["curve"]
    assert_same_params(params_of(tmp_path / "a"), params_of(tmp_path / "b"))
    assert r1["curve"]["mean"] != r3["curve"]["mean"]


def test_loop_task_batching_runs_are_identical_too(tmp_path):
    cfg = ["learner.task_batching=loop"]
    r1 = train(tiny(8, *cfg), tmp_path / "a", progress=False)
    r2 = train(tiny(8, *cfg), tmp_path / "b", progress=False)
    assert r1["curve"] == r2["curve"]


def test_interrupted_then_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    full = train(tiny(), tmp_path / "full", progress=False)
    real_step, calls = MAML.meta_step, {"n": 0}

    def dies_at_iteration_10(self, tasks):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_step(self, tasks)

    monkeypatch.setattr(MAML, "meta_step", dies_at_iteration_10)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(), tmp_path / "resumed", progress=False)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["iteration"] == 8
    monkeypatch.setattr(MAML, "meta_step", real_step)
    resumed = train(tiny(), tmp_path / "resumed", progress=False)
    assert resumed["curve"] == full["curve"]
    assert_same_params(params_of(tmp_path / "full"), params_of(tmp_path / "resumed"))


def test_sigkilled_cli_run_resumes_to_the_same_numbers(tmp_path):
    args = [
        *TINY,
        "train.iterations=400",
        "train.checkpoint_interval=50",
        "train.eval_interval=100",
    ]
    cli = [sys.executable, "-m", "metarl"]
    subprocess.run(
        [
            *cli,
            "train",
            "sinusoid_maml",
            *args,
            "--run-dir",
            str(tmp_path / "full"),
            "--no-progress",
        ],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            *cli,
            "train",
            "sinusoid_maml",
            *args,
            "--run-dir",
            str(tmp_path / "killed"),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stopped_at = load_checkpoint(ckpt)["iteration"]
    out = subprocess.run(
        [*cli, "resume", str(tmp_path / "killed"), "--no-progress"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert resumed["curve"] == full["curve"], f"killed at iteration {stopped_at}"


def test_tensorboard_event_files_hold_the_adaptation_curve(tmp_path):
    results = train(tiny(), tmp_path, progress=False)
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    budgets = [f"adapt/mse_steps_{b:02d}" for b in range(4)]
    assert set(budgets) <= set(tags["scalars"])
    assert {"meta/loss", "meta/mse", "time/iterations_per_second"} <= set(tags["scalars"])
    assert {"adapt/curve", "final/curve"} <= set(tags["images"])
    assert "custom_scalars__config__" in tags["tensors"]
    # val curves during training on adapt/, the final test curve on its own final/ tags
    assert [e.step for e in acc.Scalars(budgets[0])] == [6, 12]
    finals = [acc.Scalars(f"final/mse_steps_{b:02d}") for b in range(4)]
    assert [[e.step for e in f] for f in finals] == [[12]] * 4
    assert [f[0].value for f in finals] == pytest.approx(results["curve"]["mean"], rel=1e-6)
    # both kept: the last val point (other tasks) is not overwritten by the test curve
    assert acc.Scalars(budgets[0])[-1].value != pytest.approx(finals[0][0].value)
    # one writer (a TensorBoard run, hence one colour) per budget, all on one chart tag
    runs = sorted(p.name for p in (tmp_path / "by_budget").iterdir())
    assert runs == [f"steps_{b:02d}" for b in range(4)]
    for b, run in enumerate(runs):
        sub = EventAccumulator(str(tmp_path / "by_budget" / run), size_guidance={"scalars": 0})
        sub.Reload()
        assert set(sub.Tags()["scalars"]) == {"adapt/mse_by_steps", "final/mse_by_steps"}
        assert [e.value for e in sub.Scalars("adapt/mse_by_steps")] == [
            e.value for e in acc.Scalars(budgets[b])
        ]
        assert sub.Scalars("final/mse_by_steps")[0].value == finals[b][0].value


def test_non_finite_loss_stops_with_exit_1_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys
):
    real_step, calls = MAML.meta_step, {"n": 0}

    def explodes_at_6(self, tasks):
        calls["n"] += 1
        out = real_step(self, tasks)
        return {**out, "loss": float("nan")} if calls["n"] == 6 else out

    monkeypatch.setattr(MAML, "meta_step", explodes_at_6)
    rc = main(
        [
            "train",
            "sinusoid_maml",
            *TINY,
            "train.iterations=12",
            "--run-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert (
        rc == 1 and "non-finite meta/loss=nan at iteration 6" in err and len(err.splitlines()) == 1
    )
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["iteration"] == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["learner.inner_lrr=0.1"], "unknown config key learner.inner_lrr; valid keys: backbone"),
        (["learner.adapt_steps=two"], "learner.adapt_steps: expected int, got 'two'"),
        (["learner.kind=mamll"], "learner.kind 'mamll' is not known; choose one of"),
        (["device=tpu"], "device: 'tpu' is not valid; choose one of 'auto', 'cpu', 'cuda'"),
        (["train.iterations"], "must look like section.key=value"),
        (["trian.iterations=3"], "unknown config key trian; valid keys: name, seed"),
        (["task.shots=0"], "task.shots=0 is out of range; use an integer >= 1"),
    ],
)
def test_bad_config_input_exits_2_with_one_line(tmp_path, capsys, override, message):
    rc = main(
        ["train", "sinusoid_maml", *override, "--run-dir", str(tmp_path / "r"), "--no-progress"]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert message in err and len(err.splitlines()) == 1, err


def test_unknown_config_name_and_missing_cuda_are_usage_errors(tmp_path, capsys):
    assert main(["train", "no_such_config"]) == 2
    assert "metarl list" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "sinusoid_maml", "device=cuda", "--run-dir", str(tmp_path)]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def test_resuming_with_a_different_config_lists_the_differences(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "sinusoid_maml",
                *TINY,
                "train.iterations=4",
                "--run-dir",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    rc = main(
        [
            "train",
            "sinusoid_maml",
            *TINY,
            "train.iterations=4",
            "learner.inner_lr=0.5",
            "--run-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "learner.inner_lr: 0.01 -> 0.5" in err


def test_eval_and_plot_commands_rewrite_results(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "sinusoid_maml",
                *TINY,
                "train.iterations=4",
                "--run-dir",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    (tmp_path / "curves.png").unlink()
    assert main(["eval", str(tmp_path), "--split", "val", "--num-tasks", "10"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["curve"]["split"] == "val" and results["curve"]["num_tasks"] == 10
    assert (tmp_path / "curves.png").exists()
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert main(["eval", str(tmp_path / "nope")]) == 2


def test_eval_overrides_change_the_tasks_not_the_training(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "sinusoid_maml",
                *TINY,
                "train.iterations=4",
                "--run-dir",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    out = tmp_path / "ten_shot.json"
    assert (
        main(["eval", str(tmp_path), "task.shots=10", "eval.final_num_tasks=6", "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["curve"]["num_tasks"] == 6
    assert json.loads((tmp_path / "results.json").read_text())["curve"]["num_tasks"] == 16
    capsys.readouterr()
    assert main(["eval", str(tmp_path), "learner.inner_lr=1.0"]) == 2
    assert "only task.* and eval.* keys" in capsys.readouterr().err


def test_two_protonet_runs_on_real_omniglot_are_identical(tmp_path, omniglot_dir):
    """The whole few-shot path (data, sampler, conv-4, Adam, evaluation) repeats exactly."""
    args = [
        f"task.data_dir={omniglot_dir}",
        "device=cpu",
        "train.iterations=3",
        "task.train_ways=10",
        "train.eval_interval=0",
        "eval.final_num_tasks=4",
        "eval.batch_tasks=4",
    ]
    r1 = train(load_config("omniglot_protonet_5w1s", args), tmp_path / "a", progress=False)
    r2 = train(load_config("omniglot_protonet_5w1s", args), tmp_path / "b", progress=False)
    assert r1["curve"] == r2["curve"]
    assert_same_params(params_of(tmp_path / "a"), params_of(tmp_path / "b"))


def test_overrides_may_follow_options_and_unknown_options_exit_2(tmp_path, capsys):
    argv = ["train", "sinusoid_maml", "--run-dir", str(tmp_path), "--no-progress"]
    assert main([*argv, *TINY, "train.iterations=2"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["iterations"] == 2 and results["curve"]["num_tasks"] == 16  # both applied
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--bogus", "train.iterations=2"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_the_same_command_again_resumes_with_tuple_typed_fields(tmp_path, capsys):
    # YAML has no tuples: config.yaml reads `task.test_band_deg` back as a list, and the
    # second identical command must still be recognised as the same run (it was refused).
    argv = ["train", "halfcheetah_slope_task_inference", "train.iterations=2",
            "learner.phase2_start=1", "learner.horizon=10", "learner.history_length=4",
            "train.num_tasks=2", "eval.final_num_tasks=2", "eval.video=false",
            "train.eval_interval=0", "task.test_band_deg=[6,7]", "--run-dir", str(tmp_path),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    assert "different config" not in capsys.readouterr().err
