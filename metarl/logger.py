"""TensorBoard logging: namespaced scalars and the adaptation curve as one chart and a figure.

Keys: `meta/...` (training metrics), `adapt/<metric>_<budget>_<k>` (one scalar per budget of
the held-out curve during training), `adapt/curve` (the curve as a figure), `final/...` (the same
for the final evaluation, on its own tags so it never hides the last training-time one),
`adapt/video` (adapted behaviour as an animated GIF in the Images tab), `time/...`.

The curve as one coloured multi-line chart: TensorBoard colours lines by *run*, not by tag, so
each budget is also written by its own writer into `by_budget/<budget>_<k>/` under one shared
tag `adapt/<metric>_by_<budget>` (TensorBoard lists these as runs `by_budget/shots_01`, ...);
the SCALARS chart of that tag and the CUSTOM SCALARS layout then draw one colour per budget.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.compat.proto.summary_pb2 import Summary  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402


def budget_tag(curve: dict[str, Any], budget: int, prefix: str = "adapt") -> str:
    return f"{prefix}/{curve['metric']}_{curve['budget_name']}_{budget:02d}"


BY_BUDGET = "by_budget"  # sub-directory of the per-budget writers


def budget_run(curve: dict[str, Any], budget: int) -> str:
    """The per-budget writer's directory, relative to the run directory."""
    return f"{BY_BUDGET}/{curve['budget_name']}_{budget:02d}"


def chart_tag(metric: str, budget_name: str, prefix: str = "adapt") -> str:
    """The tag every per-budget writer shares: one chart, one line (colour) per budget."""
    return f"{prefix}/{metric}_by_{budget_name}"


def curve_figure(curve: dict[str, Any], title: str = "") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(curve["budgets"], curve["mean"], yerr=curve["ci95"], marker="o", capsize=3)
    ax.set_xlabel(curve["budget_name"])
    ax.set_ylabel(curve["metric"])
    ax.set_title(title or f"adaptation curve ({curve['split']}, {curve['num_tasks']} tasks)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_curve_png(curve: dict[str, Any], path: Path, title: str = "") -> None:
    """The curve as a PNG, written atomically (a killed run never leaves half a file)."""
    from metarl.checkpoint import atomic_write_bytes

    fig = curve_figure(curve, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def encode_gif(frames: np.ndarray, fps: float = 10.0) -> bytes:
    """Frames `[F, H, W, 3]` uint8 as an animated GIF that loops (Pillow; 256 colours)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be uint8 [F, H, W, 3] with F >= 1; got {frames.shape}")
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    duration = max(20, round(1000 / fps))  # ms per frame (GIF resolution: 10 ms)
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
    )
    return buf.getvalue()


class RunLogger:
    """Writes the run's TensorBoard event files into the run directory."""

    def __init__(self, run_dir: Path, metric: str, budget_name: str):
        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.budget_writers: dict[str, SummaryWriter] = {}
        layout = {
            prefix: {
                f"{metric} after each {budget_name} budget ({what})": [
                    "Multiline",
                    [chart_tag(metric, budget_name, prefix)],
                ]
            }
            for prefix, what in (("adapt", "held-out, during training"), ("final", "final split"))
        }
        self.writer.add_custom_scalars(layout)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def curve(self, curve: dict[str, Any], step: int, prefix: str = "adapt") -> None:
        """One scalar per budget under `prefix/` and the figure `prefix/curve`."""
        tag = chart_tag(curve["metric"], curve["budget_name"], prefix)
        for b, m in zip(curve["budgets"], curve["mean"], strict=True):
            self.writer.add_scalar(budget_tag(curve, b, prefix), m, step)
            self.budget_writer(budget_run(curve, b)).add_scalar(tag, m, step)
        fig = curve_figure(curve, f"iteration {step} ({curve['split']})")
        self.writer.add_figure(f"{prefix}/curve", fig, step, close=True)
        self.flush()

    def budget_writer(self, name: str) -> SummaryWriter:
        if name not in self.budget_writers:
            self.budget_writers[name] = SummaryWriter(log_dir=str(self.run_dir / name))
        return self.budget_writers[name]

    def video(self, tag: str, frames: np.ndarray, step: int, fps: float = 10.0) -> bytes:
        """Log frames `[F, H, W, 3]` uint8 as an animated GIF image summary (TensorBoard's
        Images tab plays it; `add_video` would need moviepy). Returns the GIF bytes."""
        gif = encode_gif(frames, fps)
        f, h, w, _ = frames.shape
        image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif)
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        self.writer._get_file_writer().add_summary(summary, step)
        self.writer.flush()
        return gif

    def flush(self) -> None:
        self.writer.flush()
        for w in self.budget_writers.values():
            w.flush()

    def close(self) -> None:
        self.writer.close()
        for w in self.budget_writers.values():
            w.close()
