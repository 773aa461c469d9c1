"""TensorBoard logging: namespaced scalars and the adaptation curve as one chart and a figure.

Keys: `meta/...` (training metrics), `adapt/<metric>_<budget>_<k>` (one scalar per budget of
the held-out curve, grouped by a custom-scalars layout so TensorBoard draws them as one
multi-line chart), `adapt/curve` (the curve as a figure), `time/...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402


def budget_tag(curve: dict[str, Any], budget: int) -> str:
    return f"adapt/{curve['metric']}_{curve['budget_name']}_{budget:02d}"


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
    fig = curve_figure(curve, title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


class RunLogger:
    """Writes the run's TensorBoard event files into the run directory."""

    def __init__(self, run_dir: Path, metric: str, budget_name: str):
        self.writer = SummaryWriter(log_dir=str(run_dir))
        layout = {
            "adapt": {
                f"{metric} after each {budget_name} budget (held-out)": [
                    "Multiline",
                    [f"adapt/{metric}_{budget_name}_.*"],
                ]
            }
        }
        self.writer.add_custom_scalars(layout)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def curve(self, curve: dict[str, Any], step: int) -> None:
        for b, m in zip(curve["budgets"], curve["mean"], strict=True):
            self.writer.add_scalar(budget_tag(curve, b), m, step)
        fig = curve_figure(curve, f"iteration {step}")
        self.writer.add_figure("adapt/curve", fig, step, close=True)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
