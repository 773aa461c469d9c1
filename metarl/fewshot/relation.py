"""Relation Networks (Sung et al. 2018).

An embedding module turns images into feature maps (four 3x3 conv blocks of `conv_channels`
filters, batch norm, ReLU; max-pooling after the first two only, and no padding in the first
two, so 28x28 Omniglot gives `[64, 5, 5]`). A class's feature map is the mean of its support
shots' maps (the paper sums them; the mean keeps the relation module's input on one scale for
every budget of the adaptation curve, so a model trained 1-shot can be read at 5 shots). The
relation module scores each (class, query) pair from the two maps concatenated along the
channels: two conv blocks with pooling, then `Linear(., relation_hidden)`, ReLU,
`Linear(relation_hidden, 1)`, sigmoid -- a relation score in [0, 1]. Trained, as the paper,
by the mean squared error between the scores and the one-hot match (1 for the query's class,
0 for every other).

`budget` is shots per class; with 0 shots every class is equally likely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.fewshot.episode import Episode
from metarl.fewshot.metric import (
    MetricLearner,
    check_image_task,
)
from metarl.seeding import seeded


@dataclass
class RelationConfig:
    conv_channels: int = 64
    """Filters per conv layer of the embedding and relation modules."""
    relation_hidden: int = 8
    """Hidden units of the relation module's fully connected layer (8 in the paper)."""
    outer_lr: float = 0.001
    """Adam step size."""
    lr_decay_every: int = 100000
    """Multiply the step size by lr_decay every this many meta-iterations (0: never)."""
    lr_decay: float = 0.5
    """Step-size factor applied every lr_decay_every iterations."""


def _block(cin: int, cout: int, padding: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=padding),
        nn.BatchNorm2d(cout, track_running_stats=False),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def embedding_module(in_channels: int, channels: int) -> nn.Sequential:
    """`[B, C, H, W] -> [B, channels, h, w]` feature maps (`[B, 64, 5, 5]` at 28x28)."""
    return nn.Sequential(
        _block(in_channels, channels, 0, True),
        _block(channels, channels, 0, True),
        _block(channels, channels, 1, False),
        _block(channels, channels, 1, False),
    )


class RelationModule(nn.Module):
    """Scores `[P]` in [0, 1] of pairs of feature maps `[P, 2 * channels, h, w]`."""

    def __init__(self, channels: int, hidden: int, feature_shape: tuple[int, int, int]):
        super().__init__()
        self.convs = nn.Sequential(
            _block(2 * channels, channels, 1, True), _block(channels, channels, 1, True)
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(2, 2 * channels, *feature_shape[1:])).flatten(1).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pairs: Tensor) -> Tensor:
        return torch.sigmoid(self.head(self.convs(pairs).flatten(1))).squeeze(-1)


def class_maps(support: Tensor, labels: Tensor, ways: int) -> Tensor:
    """Mean feature map per class: `[S, c, h, w]`, labels `[S]` -> `[ways, c, h, w]`."""
    one_hot = F.one_hot(labels, ways).to(support.dtype)  # [S, ways]
    mean = (one_hot.T @ support.flatten(1)) / one_hot.sum(0).clamp_min(1).unsqueeze(-1)
    return mean.view(ways, *support.shape[1:])


class Relation(MetricLearner):
    """Relation Networks learner; `budget` is shots per class."""

    budget_name = "shots"

    def __init__(self, cfg: RelationConfig, model: nn.ModuleDict, device: torch.device):
        self.cfg, self.model = cfg, model.to(device)
        self.metric, self.higher_is_better = "accuracy", True
        self.headline_budget = 1

    def scores(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """Relation scores `[Q, ways]` in [0, 1] of queries `[Q, C, H, W]` to each class."""
        maps = self.model["embed"](torch.cat([support_x, query_x]))
        classes = class_maps(maps[: support_x.shape[0]], support_y, ways)  # [N, c, h, w]
        query = maps[support_x.shape[0] :]  # [Q, c, h, w]
        q, n = query.shape[0], classes.shape[0]
        pairs = torch.cat(
            [
                classes.unsqueeze(0).expand(q, *classes.shape),
                query.unsqueeze(1).expand(q, n, *query.shape[1:]),
            ],
            dim=2,
        )  # [Q, N, 2c, h, w]
        return self.model["relation"](pairs.flatten(0, 1)).view(q, n)

    def _task(self, tasks: Episode, t: int, shots: int) -> Tensor:
        n = shots * tasks.ways
        return self.scores(
            tasks.support_x[t, :n], tasks.support_y[t, :n], tasks.query_x[t], tasks.ways
        )

    def _task_loss(self, tasks: Episode, t: int) -> tuple[Tensor, Tensor]:
        scores = self._task(tasks, t, tasks.shots)
        target = F.one_hot(tasks.query_y[t], tasks.ways).to(scores.dtype)
        return F.mse_loss(scores, target), scores

    def predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """`[Q, ways]`: the relation scores normalised to sum to one over the classes."""
        self.model.train()
        with torch.no_grad():
            s = self.scores(support_x, support_y, query_x, ways)
        return s / s.sum(-1, keepdim=True).clamp_min(1e-12)


def build_relation(
    cfg: RelationConfig, distribution: Any, device: torch.device, seed: int
) -> Relation:
    shape = check_image_task(distribution, "relation")
    with seeded(seed, "model"):
        embed = embedding_module(shape[0], cfg.conv_channels)
        with torch.no_grad():
            feature_shape = tuple(embed(torch.zeros(2, *shape)).shape[1:])
        relation = RelationModule(cfg.conv_channels, cfg.relation_hidden, feature_shape)
    learner = Relation(cfg, nn.ModuleDict({"embed": embed, "relation": relation}), device)
    learner.headline_budget = distribution.shots
    return learner
