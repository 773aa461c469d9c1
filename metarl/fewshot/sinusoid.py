"""Sinusoid regression (Finn et al. 2017, section 5.1).

A task is `y = A sin(x - phi)` with amplitude A ~ U[0.1, 5.0] and phase phi ~ U[0, pi]; inputs
x ~ U[-5, 5]. Support has `shots` points, query `queries` points, drawn independently. All
splits draw from the same continuous distribution (a task is never seen twice); evaluation
uses its own fixed generator, so held-out tasks are identical across evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from metarl.config import PositiveInt
from metarl.contracts import SPLITS, check_split
from metarl.errors import UsageError
from metarl.fewshot.episode import Episode


@dataclass
class SinusoidConfig:
    shots: PositiveInt = 5
    """Support points per task (K)."""
    queries: PositiveInt = 10
    """Query points per task."""
    amplitude: list[float] | None = None
    """Amplitude range [low, high] (default [0.1, 5.0])."""
    phase: list[float] | None = None
    """Phase range [low, high] (default [0, pi])."""
    x_range: list[float] | None = None
    """Input range [low, high] (default [-5, 5])."""


@dataclass(frozen=True)
class SinusoidTasks:
    amplitude: torch.Tensor  # [T]
    phase: torch.Tensor  # [T]


class SinusoidDistribution:
    splits = SPLITS
    loss = "mse"
    ways = 1
    input_shape = (1,)

    def __init__(self, cfg: SinusoidConfig, device: torch.device):
        self.shots, self.queries, self.device = cfg.shots, cfg.queries, device
        self.amplitude = tuple(cfg.amplitude or (0.1, 5.0))
        self.phase = tuple(cfg.phase or (0.0, math.pi))
        self.x_range = tuple(cfg.x_range or (-5.0, 5.0))
        for name, bounds in (
            ("amplitude", self.amplitude),
            ("phase", self.phase),
            ("x_range", self.x_range),
        ):
            if len(bounds) != 2 or not all(map(math.isfinite, bounds)) or bounds[0] > bounds[1]:
                raise UsageError(
                    f"task.{name} must be [low, high] with finite low <= high, got {list(bounds)}"
                )
        if self.shots < 1 or self.queries < 1:
            raise UsageError("task.shots and task.queries must be >= 1")

    def _uniform(self, shape: tuple[int, ...], bounds: Sequence[float], g: torch.Generator):
        lo, hi = bounds
        return lo + (hi - lo) * torch.rand(shape, generator=g, device=self.device)

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> SinusoidTasks:
        return SinusoidTasks(
            self._uniform((num_tasks,), self.amplitude, generator),
            self._uniform((num_tasks,), self.phase, generator),
        )

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> Episode:
        """Support `[T, K, 1]` and query `[T, Q, 1]` points of `num_tasks` random sinusoids."""
        check_split(split, self.splits)
        tasks = self.sample_tasks(num_tasks, generator)
        a, p = tasks.amplitude[:, None, None], tasks.phase[:, None, None]
        xs = self._uniform((num_tasks, self.shots, 1), self.x_range, generator)
        xq = self._uniform((num_tasks, self.queries, 1), self.x_range, generator)
        return Episode(xs, a * torch.sin(xs - p), xq, a * torch.sin(xq - p), 1, self.shots)

    def task_figure(self, learner: object, generator: torch.Generator) -> bytes | None:
        """`tasks.png` of a run (the trainer writes it at the final evaluation)."""
        return tasks_figure(self, learner, generator)


def build_sinusoid(cfg: SinusoidConfig, device: torch.device) -> SinusoidDistribution:
    return SinusoidDistribution(cfg, device)


def tasks_figure(
    distribution: SinusoidDistribution,
    learner: object,
    generator: torch.Generator,
    num_tasks: int = 4,
    steps: tuple[int, ...] = (0, 1, 10),
) -> bytes | None:
    """PNG of a few held-out tasks (the figure of the MAML paper): the true function, the
    support points, and the learner's prediction before adaptation and after each of `steps`
    inner steps. None when the learner cannot predict after given steps (`predict_steps`)."""
    predict_steps = getattr(learner, "predict_steps", None)
    if predict_steps is None:
        return None
    import io

    from metarl.logger import plt

    tasks = distribution.sample("test", num_tasks, generator)
    lo, hi = distribution.x_range
    grid = torch.linspace(lo, hi, 200, device=distribution.device).unsqueeze(-1)  # [200, 1]
    fig, axes = plt.subplots(1, num_tasks, figsize=(3.2 * num_tasks, 3), sharey=True)
    axes = list(axes) if num_tasks > 1 else [axes]
    styles = {0: ("tab:gray", ":"), 1: ("tab:orange", "--")}
    for t, ax in enumerate(axes):
        sx, sy = tasks.support_x[t], tasks.support_y[t]
        # The true function: the query points are exact samples of it; recover A and phi by
        # least squares on y = a sin x + b cos x (exact for noise-free sinusoids).
        xq, yq = torch.cat([sx, tasks.query_x[t]]), torch.cat([sy, tasks.query_y[t]])
        basis = torch.cat([torch.sin(xq), torch.cos(xq)], -1)
        coef = torch.linalg.lstsq(basis, yq).solution
        truth = torch.cat([torch.sin(grid), torch.cos(grid)], -1) @ coef
        outs = predict_steps(sx, sy, grid, list(steps))
        ax.plot(grid.cpu(), truth.cpu(), color="black", lw=2, label="true function")
        for s, out in zip(steps, outs, strict=True):
            colour, dash = styles.get(s, ("tab:blue", "-"))
            label = "before adaptation" if s == 0 else f"after {s} step{'s' * (s > 1)}"
            ax.plot(grid.cpu(), out.detach().cpu(), color=colour, ls=dash, label=label)
        ax.scatter(sx.cpu(), sy.cpu(), color="tab:red", zorder=3, label=f"{len(sx)} support points")
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Held-out sinusoid tasks: prediction before and after adaptation")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
