"""`metarl adapt RUN_DIR --support DIR --query PATH...`: classify a person's own images.

A trained learner adapts to a support folder (one sub-folder per class, a few images each) and
answers for every query image: the predicted class, its probability and the next classes.

Images are prepared exactly as the run's training data was: an Omniglot run converts to grey,
area-resizes (Pillow's box filter, the exact area average the Omniglot loader uses) and
inverts, so dark ink on light paper becomes ink 1.0 on 0.0 as Omniglot is stored; an
`image_folder` run converts to grey or RGB as it was trained (colour images for a grey model
and grey images for a colour one are converted) and resizes bilinearly, as its loader does.
Transparent pixels are laid on white first. Files whose suffix is not an image suffix are
ignored in folders; a file with an image suffix that cannot be read (truncated, not an image)
stops the command with one line naming it: nothing is guessed or silently dropped.

Learners serve it through two methods: `load_model(learner_state)` (the network of a
checkpoint, no optimiser: learners build Adam on first use, whose import alone costs about a
second) and `predict(support_x [S, C, H, W], support_y [S], query_x [Q, C, H, W], ways) ->
[Q, ways]` probabilities (metric learners: their class scores from the support; MAML family:
the inner loop on the support, then the adapted model).
Queries go through in batches; a metric learner's batch norm then sees the support with that
batch of queries, as in training, where it normalises a task's support and query together.

Start-up is kept small: no data set is loaded and TensorBoard is never imported, only the
learner, rebuilt from `config.yaml` with the input shape the task section names.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from metarl.errors import UsageError
from metarl.fewshot.image_folder import IMAGE_SUFFIXES

IMAGE_TASKS = ("omniglot", "image_folder")


@dataclass(frozen=True)
class Preprocess:
    """How a run's images were prepared: channels, side, Pillow filter, ink inversion."""

    channels: int
    size: int
    resample: Image.Resampling
    invert: bool


@dataclass(frozen=True)
class Support:
    """A labelled support set: `x` `[S, C, H, W]` float32, `y` `[S]` int64, class names."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]


def preprocess_of(task: dict[str, Any], run_dir: Path, learner_kind: str) -> Preprocess:
    """The preprocessing of a run's task section; refuses tasks that are not images."""
    kind = task.get("kind")
    if kind not in IMAGE_TASKS:
        raise UsageError(
            f"{run_dir} is a {learner_kind} run on {kind} tasks, which cannot adapt from a "
            f"support set of images; give a run trained on omniglot or image_folder tasks"
        )
    if kind == "omniglot":
        return Preprocess(1, int(task.get("image_size", 28)), Image.Resampling.BOX, True)
    return Preprocess(
        int(task.get("channels", 3)),
        int(task.get("image_size", 84)),
        Image.Resampling.BILINEAR,
        False,
    )


def load_image(path: Path, prep: Preprocess) -> np.ndarray:
    """One image as float32 `[C, S, S]` in [0, 1], prepared like the run's training images."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            img = img.convert("L" if prep.channels == 1 else "RGB")
            img = img.resize((prep.size, prep.size), prep.resample)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UsageError(
            f"{path} is not a readable image ({type(exc).__name__}); remove or replace it"
        ) from None
    if prep.invert:
        arr = 1.0 - arr
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _images_in(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_support(root: Path, prep: Preprocess) -> Support:
    """`root/<class>/<image>` -> a support set; classes in sorted folder-name order."""
    if not root.is_dir():
        raise UsageError(
            f"support folder {root} does not exist or is not a folder; give a folder with one "
            f"sub-folder of images per class"
        )
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(dirs) < 2:
        raise UsageError(
            f"support folder {root} has {len(dirs)} class folder(s); put each class's images in "
            f"its own sub-folder, at least two classes ({root}/<class>/<image>.png)"
        )
    xs, ys = [], []
    for label, folder in enumerate(dirs):
        files = _images_in(folder)
        if not files:
            raise UsageError(
                f"class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}); every class "
                f"needs at least one: add some or remove the folder"
            )
        xs += [load_image(f, prep) for f in files]
        ys += [label] * len(files)
    return Support(torch.from_numpy(np.stack(xs)), torch.tensor(ys), tuple(d.name for d in dirs))


def collect_queries(paths: list[str]) -> list[Path]:
    """Query files: each path a file, or a folder searched recursively for images."""
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = _images_in(path, recursive=True)
            if not found:
                raise UsageError(
                    f"query folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})"
                )
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise UsageError(
                f"query path {path} does not exist; give image files or folders of them"
            )
    return out


def load_learner(run_dir: Path, device: torch.device) -> tuple[Any, Preprocess]:
    """The run's learner with its last checkpoint, and how its images were prepared."""
    import yaml

    from metarl import registry
    from metarl.checkpoint import load_checkpoint
    from metarl.config import RunConfig, from_dict
    from metarl.fewshot.tasks import task_sizes

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise UsageError(
            f"{run_dir} is not a run directory (no config.yaml); give the folder `metarl train` wrote"
        )
    cfg = from_dict(RunConfig, yaml.safe_load(config_file.read_text()), "")
    learner_kind = cfg.learner.get("kind")
    prep = preprocess_of(cfg.task, run_dir, learner_kind)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if not checkpoint.is_file():
        raise UsageError(f"{run_dir} has no checkpoint yet (checkpoints/last.pt); train it first")
    task, _ = registry._section(cfg.task, registry.DISTRIBUTIONS, "task")
    lcfg, build = registry._section(cfg.learner, registry.LEARNERS, "learner")
    # The builders read only these of a distribution; no data set is loaded.
    shape = SimpleNamespace(
        input_shape=(prep.channels, prep.size, prep.size),
        loss="cross_entropy",
        **task_sizes(task),  # ways, shots, queries and their training sizes
    )
    learner = build(lcfg, shape, device, cfg.seed)
    if not (hasattr(learner, "predict") and hasattr(learner, "load_model")):
        raise UsageError(
            f"learner {learner_kind} of {run_dir} cannot adapt from a support set of images"
        )
    learner.load_model(load_checkpoint(checkpoint)["learner"])
    return learner, prep


def classify(
    learner: Any,
    support: Support,
    queries: list[Path],
    prep: Preprocess,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Probabilities `[Q, N]` of every query over the support's N classes, in batches."""
    sx, sy = support.x.to(device), support.y.to(device)
    out = []
    for i in range(0, len(queries), batch_size):
        batch = np.stack([load_image(p, prep) for p in queries[i : i + batch_size]])
        qx = torch.from_numpy(batch).to(device)
        out.append(learner.predict(sx, sy, qx, len(support.classes)).float().cpu())
    return torch.cat(out)


def truth_of(query: Path, classes: tuple[str, ...]) -> str | None:
    """The class a query folder names (its parent folder's name), when it is a support class."""
    return query.parent.name if query.parent.name in classes else None


def write_csv(
    path: Path, queries: list[Path], probs: torch.Tensor, classes: tuple[str, ...], top: int
) -> None:
    """`query,class,probability[,class_2,probability_2,...]`, one row per query."""
    k = min(top, len(classes))
    p, idx = probs.topk(k, dim=-1)
    header = ["query", "class", "probability"]
    for j in range(2, k + 1):
        header += [f"class_{j}", f"probability_{j}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for q, pr, ix in zip(queries, p.tolist(), idx.tolist(), strict=True):
            row: list[Any] = [str(q)]
            for value, c in zip(pr, ix, strict=True):
                row += [classes[c], f"{value:.4f}"]
            w.writerow(row)


def format_table(
    queries: list[Path], probs: torch.Tensor, classes: tuple[str, ...], top: int
) -> str:
    k = min(top, len(classes))
    p, idx = probs.topk(k, dim=-1)
    width = max(len(str(q)) for q in queries)
    lines = []
    for q, pr, ix in zip(queries, p.tolist(), idx.tolist(), strict=True):
        picks = "  ".join(f"{classes[c]} {v:.3f}" for v, c in zip(pr, ix, strict=True))
        lines.append(f"{str(q):<{width}}  {picks}")
    return "\n".join(lines)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def run_adapt(args: Any) -> None:
    """The `metarl adapt` command (arguments as parsed by `metarl.cli`)."""
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    support_root = Path(args.support)
    for flag, value in (("--out", args.out), ("--sheet", args.sheet)):
        if value and support_root.is_dir() and _inside(Path(value), support_root):
            raise UsageError(f"{flag} {value} is inside the support folder; write it elsewhere")
    if args.top < 1:
        raise UsageError(f"--top {args.top} must be at least 1")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size} must be at least 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is visible; use cpu")
    queries = collect_queries(args.query)
    learner, prep = load_learner(Path(args.run_dir), device)
    support = read_support(support_root, prep)
    probs = classify(learner, support, queries, prep, args.batch_size, device)
    print(format_table(queries, probs, support.classes, args.top))
    if args.out:
        write_csv(Path(args.out), queries, probs, support.classes, args.top)
        print(f"CSV:   {args.out}", file=sys.stderr)
    if args.sheet:
        from metarl.sheet import draw_sheet

        draw_sheet(Path(args.sheet), queries, probs, support.classes)
        print(f"Sheet: {args.sheet}", file=sys.stderr)
