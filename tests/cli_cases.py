"""Bad inputs of issue 10 as data: each builds its files in a temporary folder and gives the
`metarl` arguments, the exit code and a part of the one line it must print.

Used by `tests/test_cli_errors.py` (in-process `metarl.cli.main`) and by
`scripts/error_table.py`, which runs each as `python -m metarl` and writes `results/errors.md`.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

TINY = [
    "device=cpu",
    "train.iterations=2",
    "train.num_tasks=2",
    "train.eval_interval=0",
    "train.checkpoint_interval=1",
    "eval.final_num_tasks=4",
    "eval.batch_tasks=4",
    "eval.max_budget=2",
]


def train_argv(run_dir: Path, *extra: str, config: str = "sinusoid_maml") -> list[str]:
    return ["train", config, *TINY, *extra, "--run-dir", str(run_dir), "--no-progress"]


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    """The input as the table shows it."""
    argv: Callable[[Path, Path], list[str]]
    """(temporary folder, a trained tiny sinusoid run) -> the arguments after `metarl`."""
    rc: int
    message: str
    """A part of the one line printed on stderr."""
    needs_omniglot: bool = False


def _run_copy(tmp: Path, trained: Path) -> Path:
    run = tmp / "run"
    shutil.copytree(trained, run)
    return run


def _override(*exprs: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, trained: train_argv(tmp / "r", *exprs)


def _file(tmp: Path, _: Path) -> list[str]:
    (tmp / "f").write_text("x")
    return train_argv(tmp / "f")


def _under_file(tmp: Path, _: Path) -> list[str]:
    (tmp / "f").write_text("x")
    return train_argv(tmp / "f" / "run")


def _read_only(tmp: Path, _: Path) -> list[str]:
    return train_argv(Path("/sys/metarl-run"))  # sysfs refuses new folders, even to root


def _eval_num_tasks(n: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, trained: ["eval", str(_run_copy(tmp, trained)), "--num-tasks", n]


def _config_yaml(text: str, command: str) -> Callable[[Path, Path], list[str]]:
    def make(tmp: Path, trained: Path) -> list[str]:
        run = _run_copy(tmp, trained)
        (run / "config.yaml").write_text(text.replace("TMP", str(tmp)))
        return [command, str(run)] + (["--no-progress"] if command == "resume" else [])

    return make


def _results(text: str | None, command: str) -> Callable[[Path, Path], list[str]]:
    def make(tmp: Path, trained: Path) -> list[str]:
        run = _run_copy(tmp, trained)
        full = (run / "results.json").read_text()
        (run / "results.json").write_text(full[: len(full) // 2] if text is None else text)
        return [command, str(run)] + (["--no-progress"] if command == "resume" else [])

    return make


def _checkpoint(make_state: Callable[[dict], object], command: str = "eval"):
    def make(tmp: Path, trained: Path) -> list[str]:
        run = _run_copy(tmp, trained)
        path = run / "checkpoints" / "last.pt"
        torch.save(make_state(torch.load(path, weights_only=True)), path)
        return [command, str(run)] + (["--no-progress"] if command == "resume" else [])

    return make


def _wrong_shape(state: dict) -> dict:
    model = state["learner"]["model"]
    name = next(iter(model))
    model[name] = torch.zeros(3, 3)
    return state


def _bad_generator(state: dict) -> dict:
    state["generators"]["train_tasks"] = torch.zeros(7, dtype=torch.uint8)
    return state


def _other_seed(state: dict) -> dict:
    state["config"]["seed"] = 1
    return state


def _edited_architecture(tmp: Path, trained: Path) -> list[str]:
    run = _run_copy(tmp, trained)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(
        text.replace("kind: maml\n", "kind: maml\n  hidden_sizes: [8]\n")
    )
    return ["eval", str(run)]


OMNIGLOT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"


def _protonet(*extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, _: train_argv(
        tmp / "r", f"task.data_dir={OMNIGLOT_DIR}", *extra, config="omniglot_protonet_5w1s"
    )


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 grey PNG whose header claims `width` x `height` (no pixel data behind it):
    what a decompression bomb looks like to a reader that checks the header first."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = crc.to_bytes(4, "big")
    return bytes(data)


def _image_bomb(tmp: Path, _: Path) -> list[str]:
    from PIL import Image

    root = tmp / "images"
    for c in range(4):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (c * 60, i * 80, 0)).save(root / f"class{c}" / f"{i}.png")
    (root / "class0" / "bomb.png").write_bytes(png_claiming(20000, 20000))
    config = tmp / "images.yaml"
    config.write_text(
        f"name: images\ntask:\n  kind: image_folder\n  root: {root}\n  ways: 2\n"
        "  queries: 1\n  val_fraction: 0.25\n  test_fraction: 0.25\n  image_size: 8\n"
        "learner:\n  kind: protonet\n  conv_channels: 4\n"
    )
    return train_argv(tmp / "r", config=str(config))


CASES: list[Case] = [
    Case(
        "nan",
        "learner.outer_lr=.nan",
        _override("learner.outer_lr=.nan"),
        2,
        "learner.outer_lr=nan is out of range; use a finite number > 0",
    ),
    Case(
        "num_tasks_0",
        "train.num_tasks=0",
        _override("train.num_tasks=0"),
        2,
        "train.num_tasks=0 is out of range; use an integer >= 1",
    ),
    Case(
        "num_tasks_neg",
        "train.num_tasks=-3",
        _override("train.num_tasks=-3"),
        2,
        "train.num_tasks=-3 is out of range; use an integer >= 1",
    ),
    Case(
        "log_interval_0",
        "train.log_interval=0",
        _override("train.log_interval=0"),
        2,
        "train.log_interval=0 is out of range; use an integer >= 1",
    ),
    Case(
        "checkpoint_interval_0",
        "train.checkpoint_interval=0",
        _override("train.checkpoint_interval=0"),
        2,
        "train.checkpoint_interval=0 is out of range",
    ),
    Case(
        "final_num_tasks_0",
        "eval.final_num_tasks=0",
        _override("eval.final_num_tasks=0"),
        2,
        "eval.final_num_tasks=0 is out of range",
    ),
    Case(
        "batch_tasks_0",
        "eval.batch_tasks=0 (hung forever)",
        _override("eval.batch_tasks=0"),
        2,
        "eval.batch_tasks=0 is out of range; use an integer >= 1",
    ),
    Case(
        "iterations_neg",
        "train.iterations=-5",
        _override("train.iterations=-5"),
        2,
        "train.iterations=-5 is out of range",
    ),
    Case(
        "max_budget_neg",
        "eval.max_budget=-1",
        _override("eval.max_budget=-1"),
        2,
        "eval.max_budget=-1 is out of range; use an integer >= 0",
    ),
    Case(
        "max_minutes_neg",
        "train.max_minutes=-1",
        _override("train.max_minutes=-1"),
        2,
        "train.max_minutes=-1.0 is out of range; use a number >= 0",
    ),
    Case(
        "int_not_integral",
        "train.iterations=2.5",
        _override("train.iterations=2.5"),
        2,
        "train.iterations: expected an integer, got 2.5",
    ),
    Case(
        "eval_num_tasks_neg",
        "metarl eval RUN --num-tasks -5",
        _eval_num_tasks("-5"),
        2,
        "--num-tasks=-5 is out of range; use an integer >= 1",
    ),
    Case(
        "eval_num_tasks_0",
        "metarl eval RUN --num-tasks 0",
        _eval_num_tasks("0"),
        2,
        "--num-tasks=0 is out of range",
    ),
    Case("run_dir_file", "--run-dir pointing at a file", _file, 2, "is a file; choose a folder"),
    Case(
        "run_dir_under_file",
        "--run-dir under a file",
        _under_file,
        2,
        "Not a directory; a part of that path is a file",
    ),
    Case(
        "run_dir_read_only",
        "--run-dir where no folder can be made (/sys)",
        _read_only,
        2,
        "/sys/metarl-run: ",
    ),
    Case(
        "download_under_file",
        "metarl download omniglot under a file",
        lambda tmp, _: (
            (tmp / "f").write_text("x") and ["download", "omniglot", str(tmp / "f" / "d")]
        ),
        2,
        "a part of that path is a file",
    ),
    Case(
        "download_unwritable",
        "metarl download omniglot into /sys",
        lambda tmp, _: ["download", "omniglot", "/sys/metarl-omniglot"],
        2,
        "/sys/metarl-omniglot",
    ),
    Case(
        "config_broken_resume",
        "broken config.yaml, resume",
        _config_yaml("seed: [1\n", "resume"),
        2,
        "config.yaml: not valid YAML (line 2)",
    ),
    Case(
        "config_broken_eval",
        "broken config.yaml, eval",
        _config_yaml("seed: [1\n", "eval"),
        2,
        "config.yaml: not valid YAML",
    ),
    Case(
        "config_tagged",
        "config.yaml with a !!python tag, eval",
        _config_yaml("name: !!python/object/apply:os.mkdir [TMP/pwned]\n", "eval"),
        2,
        "config.yaml: not valid YAML (line 1)",
    ),
    Case(
        "results_empty_plot",
        "empty results.json, plot",
        _results("", "plot"),
        2,
        "results.json is empty; delete it",
    ),
    Case(
        "results_cut_eval",
        "results.json cut short, eval",
        _results(None, "eval"),
        2,
        "results.json is not valid JSON",
    ),
    Case(
        "results_cut_resume",
        "results.json cut short, resume",
        _results(None, "resume"),
        2,
        "results.json is not valid JSON",
    ),
    Case(
        "results_no_curve_plot",
        "results.json without curve, plot",
        _results('{"name": "x"}', "plot"),
        2,
        "holds no adaptation curve",
    ),
    Case(
        "checkpoint_dict",
        "checkpoint {'x': 1}, eval",
        _checkpoint(lambda s: {"x": 1}),
        2,
        "does not fit the run's config.yaml: the checkpoint lacks iteration",
    ),
    Case(
        "checkpoint_list",
        "checkpoint [1, 2], resume",
        _checkpoint(lambda s: [1, 2], "resume"),
        2,
        "holds a list, not a metarl checkpoint",
    ),
    Case(
        "checkpoint_other_run",
        "another run's checkpoint (seed 1), eval",
        _checkpoint(_other_seed),
        2,
        "it was written by another run (seed: 1 -> 0)",
    ),
    Case(
        "checkpoint_shapes",
        "checkpoint with a wrong shape, resume",
        _checkpoint(_wrong_shape, "resume"),
        2,
        "has shape [3, 3], the config builds [40, 1]",
    ),
    Case(
        "checkpoint_generator",
        "checkpoint with a bad generator state, eval",
        _checkpoint(_bad_generator),
        2,
        "generators.train_tasks has shape [7]",
    ),
    Case(
        "config_edited",
        "config.yaml edited to another architecture, eval",
        _edited_architecture,
        2,
        "which the config does not build",
    ),
    Case(
        "outer_lr_3",
        "learner.outer_lr=3.0 (Adam state overflows)",
        lambda tmp, _: train_argv(tmp / "r", "learner.outer_lr=3.0", "train.iterations=50"),
        1,
        "non-finite learner.optimizer.state",
    ),
    Case(
        "inner_lr_1000",
        "learner.inner_lr=1000 (adaptation diverges)",
        lambda tmp, _: train_argv(tmp / "r", "learner.inner_lr=1000", "train.iterations=1"),
        1,
        "non-finite",
    ),
    Case(
        "rl2_outer_lr_1e30",
        "RL² bandits, learner.outer_lr=1e30",
        lambda tmp, _: train_argv(
            tmp / "r",
            "learner.outer_lr=1e30",
            "learner.hidden_size=8",
            "train.num_tasks=4",
            config="bandit_rl2_k5_n10",
        ),
        1,
        "non-finite policy logits at iteration 1; training stopped",
    ),
    Case(
        "image_bomb",
        "image_folder with a 20000x20000 PNG",
        _image_bomb,
        2,
        "bomb.png is refused by Pillow's decompression-bomb guard (Image size (400000000 pixels)",
    ),
    Case(
        "sinusoid_memory",
        "sinusoid train.num_tasks=10**12 (cannot fit)",
        _override("train.num_tasks=1e12"),
        2,
        "train.num_tasks=1000000000000 needs at least",
    ),
    Case(
        "maml_vmap_memory",
        "sinusoid MAML task_batching=vmap train.num_tasks=10**7 (every task's graph at once)",
        _override("train.num_tasks=1e7", "learner.task_batching=vmap"),
        2,
        "train.num_tasks=10000000 needs at least",
    ),
    Case(
        "rl2_memory",
        "RL² bandits train.num_tasks=10**7 (trajectories and GRU activations, not the tasks)",
        lambda tmp, _: train_argv(tmp / "r", "train.num_tasks=1e7", config="bandit_rl2_k5_n10"),
        2,
        "train.num_tasks=10000000 needs at least",
    ),
    Case(
        "protonet_num_tasks",
        "ProtoNet train.num_tasks=10**7 (the issue's 100000 asks 113 GB)",
        _protonet("train.num_tasks=1e7"),
        2,
        "train.num_tasks=10000000 needs at least",
        needs_omniglot=True,
    ),
    Case(
        "protonet_batch_tasks",
        "ProtoNet eval.batch_tasks=1e8 eval.final_num_tasks=1e8",
        _protonet("eval.batch_tasks=1e8", "eval.final_num_tasks=1e8"),
        2,
        "eval.batch_tasks=100000000 needs at least",
        needs_omniglot=True,
    ),
]
