"""Prototypical Networks (Snell et al. 2017).

A class's prototype is the mean embedding of its support shots; a query's logits are the
negative squared Euclidean distances to the prototypes. `budget` is the number of shots per
class used to build the prototypes; with 0 shots every class is equally likely (chance).

Batch norm normalises each task's support and query together with that task's own statistics
(no running statistics), at training and at test time, like the MAML learner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.config import PositiveFloat, PositiveInt, Range
from metarl.errors import UsageError
from metarl.fewshot.backbones import conv4
from metarl.fewshot.episode import Episode
from metarl.fewshot.metric import MetricLearner
from metarl.seeding import seeded


@dataclass
class ProtoNetConfig:
    conv_channels: PositiveInt = 64
    """conv4 filters per layer."""
    outer_lr: PositiveFloat = 0.001
    """Adam step size."""
    lr_decay_every: PositiveInt = 2000
    """Halve (times lr_decay) the step size every this many meta-iterations (Snell et al.)."""
    lr_decay: Annotated[float, Range(0.0, 1.0, low_open=True)] = 0.5
    """Step-size factor applied every lr_decay_every iterations."""


def prototypes(support: Tensor, labels: Tensor, ways: int) -> Tensor:
    """Class means of support embeddings: `[S, D]`, labels `[S]` -> `[ways, D]`."""
    one_hot = F.one_hot(labels, ways).to(support.dtype)  # [S, ways]
    return (one_hot.T @ support) / one_hot.sum(0).clamp_min(1).unsqueeze(-1)


def proto_logits(query: Tensor, protos: Tensor) -> Tensor:
    """Negative squared Euclidean distances `[Q, ways]` from queries `[Q, D]` to `[ways, D]`."""
    return -torch.cdist(query, protos).pow(2)


class ProtoNet(MetricLearner):
    """Prototypical Networks learner; `budget` is shots per class."""

    budget_name = "shots"

    def __init__(self, cfg: ProtoNetConfig, encoder: nn.Module, device: torch.device):
        self.cfg, self.model = cfg, encoder.to(device)  # the conv-4 embedding
        self.metric, self.higher_is_better = "accuracy", True
        self.headline_budget = 1

    def _embed(self, tasks: Episode, t: int) -> tuple[Tensor, Tensor]:
        """Support `[K*N, D]` and query `[Q*N, D]` embeddings of task t, normalised together."""
        x = torch.cat([tasks.support_x[t], tasks.query_x[t]])
        z = self.model(x)
        return z[: tasks.support_x.shape[1]], z[tasks.support_x.shape[1] :]

    def _task(self, tasks: Episode, t: int, k: int) -> Tensor:
        """Task t's query logits `[Q*N, N]` from prototypes of its first k shots per class."""
        support, query = self._embed(tasks, t)
        n = k * tasks.ways  # shot-major support: the first n items hold `shots` per class
        protos = prototypes(support[:n], tasks.support_y[t, :n], tasks.ways)
        return proto_logits(query, protos)

    def _task_loss(self, tasks: Episode, t: int) -> tuple[Tensor, Tensor]:
        logits = self._task(tasks, t, tasks.shots)
        return F.cross_entropy(logits, tasks.query_y[t]), logits

    def adapt(self, tasks: Episode, budget: int) -> Tensor:
        """Query logits `[T, Q*N, N]` from prototypes of the first `budget` shots."""
        if budget > tasks.shots:
            raise UsageError(f"budget {budget} exceeds the {tasks.shots} shots of these tasks")
        with torch.no_grad():
            if budget == 0:
                return torch.zeros(*tasks.query_y.shape, tasks.ways, device=tasks.query_x.device)
            return torch.stack([self._task(tasks, t, budget) for t in range(tasks.num_tasks)])

    def adaptation_curve(self, tasks: Episode, max_budget: int) -> Tensor:
        """Accuracy with 0..min(max_budget, shots) shots per class: `[B + 1, T]`.

        Each task is embedded once; the prototypes of every budget come from that embedding.
        """
        self.model.eval()
        budgets = min(max_budget, tasks.shots)
        rows = torch.empty(budgets + 1, tasks.num_tasks, device=tasks.query_x.device)
        rows[0] = 1.0 / tasks.ways  # no shots: every class equally likely
        with torch.no_grad():
            for t in range(tasks.num_tasks):
                support, query = self._embed(tasks, t)
                for k in range(1, budgets + 1):
                    n = k * tasks.ways
                    logits = proto_logits(
                        query, prototypes(support[:n], tasks.support_y[t, :n], tasks.ways)
                    )
                    rows[k, t] = (logits.argmax(-1) == tasks.query_y[t]).float().mean()
        return rows

    def predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """Class probabilities `[Q, ways]` (softmax of the logits) given a labelled support
        `[S, C, H, W]`, `[S]` (any number of shots per class); `metarl adapt` calls it."""
        self.model.eval()
        with torch.no_grad():
            z = self.model(torch.cat([support_x, query_x]))
            protos = prototypes(z[: len(support_x)], support_y, ways)
            return torch.softmax(proto_logits(z[len(support_x) :], protos), -1)


def build_protonet(
    cfg: ProtoNetConfig, distribution: Any, device: torch.device, seed: int
) -> ProtoNet:
    shape = tuple(distribution.input_shape)
    if getattr(distribution, "loss", "cross_entropy") != "cross_entropy" or len(shape) != 3:
        raise UsageError(
            "learner.kind protonet needs an image classification task (omniglot or image_folder)"
        )
    with seeded(seed, "model"):
        encoder = conv4(shape[0], cfg.conv_channels)
    learner = ProtoNet(cfg, encoder, device)
    learner.headline_budget = distribution.shots
    return learner
