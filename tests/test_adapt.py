"""`metarl adapt`: a trained learner classifies a person's own images; bad input is one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from metarl.cli import main

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")
COLOURS = (
    (220, 30, 30),
    (30, 160, 40),
    (40, 60, 220),
    (230, 200, 20),
    (200, 40, 200),
    (20, 190, 200),
)


def shape_image(kind: int, rng: np.random.Generator, size: int) -> Image.Image:
    """One coloured shape on a light background, jittered in place, size and shade."""
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(225, 256, 3)))
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.25, 0.35)
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1) * size, size / 2 + rng.uniform(-0.1, 0.1) * size
    colour = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in COLOURS[kind])
    box = [cx - r, cy - r, cx + r, cy + r]
    name = SHAPES[kind]
    if name == "circle":
        d.ellipse(box, fill=colour)
    elif name == "square":
        d.rectangle(box, fill=colour)
    elif name == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif name == "cross":
        d.rectangle([cx - r, cy - r / 4, cx + r, cy + r / 4], fill=colour)
        d.rectangle([cx - r / 4, cy - r, cx + r / 4, cy + r], fill=colour)
    elif name == "ring":
        d.ellipse(box, outline=colour, width=max(2, int(r / 3)))
    else:
        d.rectangle([cx - r, cy - r / 5, cx + r, cy + r / 5], fill=colour)
    return img


def write_shapes(
    root: Path, kinds: range | tuple, per_class: int, seed: int, grey: bool = False
) -> None:
    rng = np.random.default_rng(seed)
    for k in kinds:
        folder = root / SHAPES[k]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = int(rng.integers(40, 90))  # any size: the learner's own size is restored
            img = shape_image(k, rng, size)
            (img.convert("L") if grey else img).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny ProtoNet and MAML runs trained on coloured shapes (4 training classes, 3-way)."""
    root = tmp_path_factory.mktemp("adapt")
    data = root / "train_data"
    write_shapes(data / "train", range(4), 8, 0)
    write_shapes(data / "val", (3, 4, 5), 8, 1)
    write_shapes(data / "test", (3, 4, 5), 8, 2)
    common = [
        "device=cpu",
        "task.kind=image_folder",
        f"task.root={data}",
        "task.image_size=28",
        "task.channels=3",
        "task.ways=3",
        "task.shots=2",
        "task.queries=2",
        "train.num_tasks=2",
        "train.eval_interval=0",
        "eval.final_num_tasks=2",
        "eval.batch_tasks=2",
        "eval.split=train",
        "eval.final_split=train",
        "eval.max_budget=1",
    ]
    out = {}
    cfg = root / "base.yaml"
    cfg.write_text("name: shapes\ntask: {kind: image_folder}\nlearner: {kind: protonet}\n")
    proto = root / "protonet"
    assert (
        main(
            [
                "train",
                str(cfg),
                *common,
                "learner.kind=protonet",
                "learner.outer_lr=0.003",
                "train.iterations=10",
                "--run-dir",
                str(proto),
                "--no-progress",
            ]
        )
        == 0
    )
    out["protonet"] = proto
    maml = root / "maml"
    assert (
        main(
            [
                "train",
                str(cfg),
                *common,
                "learner.kind=maml",
                "learner.first_order=true",
                "learner.eval_adapt_steps=1",
                "train.iterations=2",
                "--run-dir",
                str(maml),
                "--no-progress",
            ]
        )
        == 0
    )
    out["maml"] = maml
    for kind in ("matching", "relation", "siamese", "mann", "reptile"):
        assert main(["train", str(cfg), *common, f"learner.kind={kind}", "train.iterations=2",
                     "--run-dir", str(root / kind), "--no-progress"]) == 0  # fmt: skip
        out[kind] = root / kind
    # The user's own photos: new drawings (another seed, other sizes), colour and one grey.
    support, query = root / "support", root / "query"
    write_shapes(support, range(4), 3, 10)
    write_shapes(query, range(4), 2, 11)
    write_shapes(query / "grey", (0,), 1, 12, grey=True)
    out["support"], out["query"] = support, query
    return out


def test_adapt_returns_the_right_classes_and_writes_the_csv(runs, tmp_path, capsys):
    out, sheet = tmp_path / "pred.csv", tmp_path / "sheet.png"
    before = sorted(p.relative_to(runs["support"]) for p in runs["support"].rglob("*"))
    code = main(
        [
            "adapt",
            str(runs["protonet"]),
            "--support",
            str(runs["support"]),
            "--query",
            str(runs["query"]),
            "--out",
            str(out),
            "--top",
            "3",
            "--sheet",
            str(sheet),
        ]
    )
    assert code == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == [
        "query",
        "class",
        "probability",
        "class_2",
        "probability_2",
        "class_3",
        "probability_3",
    ]
    assert len(rows) == 1 + 9
    right = 0
    for row in rows[1:]:
        q = Path(row[0])
        truth = "circle" if q.parent.name == "grey" else q.parent.name
        right += row[1] == truth
        p = [float(row[2]), float(row[4]), float(row[6])]
        assert p == sorted(p, reverse=True) and 0 <= p[-1] and p[0] <= 1 and sum(p) <= 1.0001
        assert len({row[1], row[3], row[5]}) == 3
    assert right == 9, rows
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 9 and all(
        " circle " in ln or " square " in ln or " triangle " in ln or " cross " in ln
        for ln in printed
    )
    after = sorted(p.relative_to(runs["support"]) for p in runs["support"].rglob("*"))
    assert before == after  # nothing was written into the support folder
    img = Image.open(sheet)
    assert img.size[0] > 0 and img.size[1] > 0


def test_maml_adapts_by_its_inner_loop_and_refuses_more_classes_than_its_head(
    runs, tmp_path, capsys
):
    three = tmp_path / "three"
    for name in ("circle", "square", "triangle"):
        (three / name).mkdir(parents=True)
        for f in (runs["support"] / name).iterdir():
            (three / name / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "m.csv"
    assert (
        main(
            [
                "adapt",
                str(runs["maml"]),
                "--support",
                str(three),
                "--query",
                str(runs["query"] / "circle"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.reader(out.open()))
    assert len(rows) == 3 and all(r[1] in ("circle", "square", "triangle") for r in rows[1:])
    capsys.readouterr()
    assert (
        main(
            [
                "adapt",
                str(runs["maml"]),
                "--support",
                str(runs["support"]),
                "--query",
                str(runs["query"]),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained 3-way" in err[0] and "4 classes" in err[0]


@pytest.mark.parametrize("kind", ["mann", "reptile"])
def test_mann_and_reptile_serve_adapt(runs, kind, tmp_path):
    """Trained 3-way: a 3-class support folder gets probabilities over its 3 classes."""
    support = tmp_path / "support3"
    write_shapes(support, range(3), 3, 13)
    out = tmp_path / "p.csv"
    assert main(["adapt", str(runs[kind]), "--support", str(support), "--query",
                 str(runs["query"]), "--out", str(out), "--top", "3"]) == 0  # fmt: skip
    rows = list(csv.reader(out.open()))[1:]
    assert len(rows) == 9
    for row in rows:
        p = [float(v) for v in row[2::2]]
        assert abs(sum(p) - 1) < 2e-3 and p == sorted(p, reverse=True)
        assert sorted(row[1::2]) == sorted(SHAPES[:3])


@pytest.mark.parametrize("kind", ["matching", "relation", "siamese"])
def test_metric_learners_serve_adapt(runs, kind, tmp_path):
    out = tmp_path / "p.csv"
    assert main(["adapt", str(runs[kind]), "--support", str(runs["support"]), "--query",
                 str(runs["query"]), "--out", str(out), "--top", "4", "--batch-size", "4"]) == 0  # fmt: skip
    rows = list(csv.reader(out.open()))[1:]
    assert len(rows) == 9
    for row in rows:
        p = [float(v) for v in row[2::2]]
        assert abs(sum(p) - 1) < 2e-3 and p == sorted(p, reverse=True)  # all 4 classes shown
        assert sorted(row[1::2][:4]) == sorted(SHAPES[:4])


def _one_line_error(capsys, argv: list[str], expect: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metarl: error:") and expect in err[0], err


def test_bad_inputs_end_with_one_clear_line(runs, tmp_path, capsys):
    run, support, query = str(runs["protonet"]), runs["support"], str(runs["query"])
    base = ["adapt", run, "--support"]
    # An empty class folder; a class folder holding only non-image files.
    bad = tmp_path / "s1"
    for name in ("a", "b"):
        (bad / name).mkdir(parents=True)
    (bad / "a" / "x.png").write_bytes((support / "circle" / "0.png").read_bytes())
    _one_line_error(capsys, [*base, str(bad), "--query", query], "has no images")
    (bad / "b" / "notes.txt").write_text("not an image")
    _one_line_error(capsys, [*base, str(bad), "--query", query], "has no images")
    # One class only; a support folder that does not exist.
    one = tmp_path / "s2" / "only"
    one.mkdir(parents=True)
    (one / "x.png").write_bytes((support / "circle" / "0.png").read_bytes())
    _one_line_error(capsys, [*base, str(one.parent), "--query", query], "at least two classes")
    _one_line_error(capsys, [*base, str(tmp_path / "nope"), "--query", query], "does not exist")
    # Truncated and non-image files with an image suffix, in the support and as a query.
    trunc = tmp_path / "s3"
    for name in ("circle", "square"):
        (trunc / name).mkdir(parents=True)
        (trunc / name / "0.png").write_bytes((support / name / "0.png").read_bytes())
    data = (support / "square" / "1.png").read_bytes()
    (trunc / "square" / "1.png").write_bytes(data[: len(data) // 2])
    _one_line_error(capsys, [*base, str(trunc), "--query", query], "1.png is not a readable image")
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    _one_line_error(
        capsys, [*base, str(support), "--query", str(fake)], "fake.jpg is not a readable image"
    )
    # A query path that does not exist; an empty query folder.
    _one_line_error(
        capsys, [*base, str(support), "--query", str(tmp_path / "gone.png")], "does not exist"
    )
    (tmp_path / "emptyq").mkdir()
    _one_line_error(
        capsys, [*base, str(support), "--query", str(tmp_path / "emptyq")], "holds no images"
    )
    # Writing into the support folder is refused.
    _one_line_error(
        capsys,
        [*base, str(support), "--query", query, "--out", str(support / "p.csv")],
        "inside the support folder",
    )
    assert not (support / "p.csv").exists()
    # A run directory without a checkpoint; a folder that is no run at all.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((runs["protonet"] / "config.yaml").read_text())
    _one_line_error(
        capsys, ["adapt", str(bare), "--support", str(support), "--query", query], "no checkpoint"
    )
    _one_line_error(
        capsys,
        ["adapt", str(tmp_path), "--support", str(support), "--query", query],
        "no config.yaml",
    )


def test_a_run_that_cannot_adapt_from_images_is_refused(tmp_path, capsys):
    run = tmp_path / "sin"
    assert (
        main(
            [
                "train",
                "demo",
                "train.iterations=1",
                "eval.final_num_tasks=2",
                "eval.num_tasks=2",
                "--run-dir",
                str(run),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    support = tmp_path / "s"
    write_shapes(support, range(2), 1, 0)
    _one_line_error(
        capsys,
        ["adapt", str(run), "--support", str(support), "--query", str(support)],
        "cannot adapt from a support set of images",
    )


def test_grey_model_takes_colour_images_and_omniglot_ink_is_inverted(tmp_path):
    from metarl.adapt import Preprocess, load_image

    img = Image.new("RGB", (105, 105), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([0, 0, 52, 104], fill=(0, 0, 0))  # left half black ink
    img.save(tmp_path / "x.png")
    omni = load_image(tmp_path / "x.png", Preprocess(1, 28, Image.Resampling.BOX, True))
    assert omni.shape == (1, 28, 28)
    assert omni[0, :, :13].min() == 1.0 and omni[0, :, 15:].max() == 0.0  # ink 1, paper 0
    colour = load_image(tmp_path / "x.png", Preprocess(3, 20, Image.Resampling.BILINEAR, False))
    assert colour.shape == (3, 20, 20)
    Image.new("L", (30, 30), 128).save(tmp_path / "g.png")
    grey_as_rgb = load_image(
        tmp_path / "g.png", Preprocess(3, 10, Image.Resampling.BILINEAR, False)
    )
    assert grey_as_rgb.shape == (3, 10, 10) and np.allclose(grey_as_rgb, 128 / 255)


def test_adapt_in_a_fresh_process_is_fast(runs):
    """The whole command, interpreter start-up included (the 2-second target is measured by
    scripts/bench_adapt.py on Omniglot; here a loose bound that catches a heavy import)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "metarl",
            "adapt",
            str(runs["protonet"]),
            "--support",
            str(runs["support"]),
            "--query",
            str(runs["query"]),
        ],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "tensorboard" not in proc.stderr
    assert seconds < 15, seconds
    json.dumps({"seconds": seconds})
    assert torch.get_num_threads() >= 1
