"""Per-task losses and metrics of few-shot tasks, picked by the distribution's `loss`."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def task_loss(kind: str, output: Tensor, target: Tensor) -> Tensor:
    """Mean loss of one task: cross-entropy on logits `[B, N]` or MSE on outputs `[B, 1]`."""
    if kind == "cross_entropy":
        return F.cross_entropy(output, target)
    return F.mse_loss(output, target)


def task_metric(kind: str, output: Tensor, target: Tensor) -> Tensor:
    """Accuracy for classification, MSE for regression; a 0-d tensor."""
    if kind == "cross_entropy":
        return (output.argmax(-1) == target).float().mean()
    return F.mse_loss(output, target)


def metric_name(kind: str) -> tuple[str, bool]:
    """(metric name, higher is better)."""
    return ("accuracy", True) if kind == "cross_entropy" else ("mse", False)


def batched_loss(kind: str, output: Tensor, target: Tensor) -> Tensor:
    """Per-task mean loss `[T]` of outputs `[T, B, N]` (logits) or `[T, B, 1]`."""
    if kind == "cross_entropy":
        return F.cross_entropy(output.transpose(1, 2), target, reduction="none").mean(-1)
    return (output - target).pow(2).flatten(1).mean(-1)


def batched_metric(kind: str, output: Tensor, target: Tensor) -> Tensor:
    """Per-task accuracy or MSE `[T]`."""
    if kind == "cross_entropy":
        return (output.argmax(-1) == target).float().mean(-1)
    return (output - target).pow(2).flatten(1).mean(-1)
