"""Siamese networks for one-shot classification (Koch et al. 2015).

Training is *verification*: two images in, the probability that they show the same class
out, `p(x1, x2) = sigmoid(w . |z1 - z2| + b)` with `z = encoder(x)` (the paper's weighted L1
distance; symmetric in its two inputs). Pairs come from training episodes: every (query,
support item) pair of a task, labelled same or different, with binary cross-entropy whose
positive pairs are weighted by `ways - 1`, so same and different pairs weigh equally (the
paper drew balanced pairs). `distort` applies the paper's random affine distortions to every
training image (rotation, shear, scale, translation, each component on with probability 1/2).

Classification is by the most similar support image (`shot_rule: max`, the paper's one-shot
rule, which with k shots takes the most similar of a class's k images) or by the mean
similarity to a class's k images (`shot_rule: mean`). `budget` is shots per class.

The encoder is the conv-4 of the other learners at 28x28 (as Vinyals et al. re-implemented
Siamese networks for their table), not Koch's 105x105 network with 4096 sigmoid units.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.distributed import batch_rows
from metarl.fewshot.backbones import conv4, embedding_dim
from metarl.fewshot.episode import Episode
from metarl.fewshot.metric import (
    MetricLearner,
    check_image_task,
    embed_together,
)
from metarl.seeding import make_generator, seeded


@dataclass
class SiameseConfig:
    conv_channels: int = 64
    """conv4 filters per layer."""
    outer_lr: float = 0.001
    """Adam step size."""
    lr_decay_every: int = 2000
    """Multiply the step size by lr_decay every this many meta-iterations (0: never)."""
    lr_decay: float = 0.5
    """Step-size factor applied every lr_decay_every iterations."""
    shot_rule: Literal["max", "mean"] = "max"
    """k-shot rule: the class of the most similar support image (max) or the class with the
    highest mean similarity over its k images (mean)."""
    distort: bool = False
    """Random affine distortions of the training images (Koch et al. section 3.3)."""
    max_rotation: float = 10.0
    """Distortion: largest rotation, degrees."""
    max_shear: float = 0.3
    """Distortion: largest shear (tangent)."""
    scale_range: list[float] | None = None
    """Distortion: scale range [low, high] (default [0.8, 1.2])."""
    max_shift: float = 2.0
    """Distortion: largest translation, pixels."""


class PairHead(nn.Module):
    """`logit(z1, z2) = w . |z1 - z2| + b`, symmetric in its inputs."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """All pairs: `[A, D], [B, D] -> [A, B]` same-class logits."""
        return self.linear((a.unsqueeze(1) - b.unsqueeze(0)).abs()).squeeze(-1)


def class_logits(pair_logits: Tensor, labels: Tensor, ways: int, rule: str) -> Tensor:
    """Per-class scores `[Q, ways]` from query-support logits `[Q, S]` and labels `[S]`.

    max: the largest logit over a class's support items; mean: the log-odds of the mean
    similarity. Either way the argmax is the class the rule picks.
    """
    member = F.one_hot(labels, ways).T.bool()  # [ways, S]
    per = pair_logits.unsqueeze(1).expand(-1, ways, -1)  # [Q, ways, S]
    if rule == "max":
        return per.masked_fill(~member, float("-inf")).amax(-1)
    sim = torch.sigmoid(per).masked_fill(~member, 0.0).sum(-1) / member.sum(-1).clamp_min(1)
    return torch.logit(sim, eps=1e-6)


def random_affine(x: Tensor, cfg: SiameseConfig, generator: torch.Generator) -> Tensor:
    """Images `[B, C, H, W]` each under its own random affine map (bilinear, zero fill)."""
    b, dev = x.shape[0], x.device

    def draw(lo: float, hi: float) -> Tensor:
        on = torch.rand(b, generator=generator, device=dev) < 0.5
        value = lo + (hi - lo) * torch.rand(b, generator=generator, device=dev)
        return torch.where(on, value, torch.zeros_like(value))

    lo, hi = cfg.scale_range or (0.8, 1.2)
    theta = draw(-cfg.max_rotation, cfg.max_rotation) * math.pi / 180
    shear_x, shear_y = draw(-cfg.max_shear, cfg.max_shear), draw(-cfg.max_shear, cfg.max_shear)
    scale_x, scale_y = 1 + draw(lo - 1, hi - 1), 1 + draw(lo - 1, hi - 1)
    shift = 2 * cfg.max_shift / x.shape[-1]  # pixels -> normalised [-1, 1] coordinates
    tx, ty = draw(-shift, shift), draw(-shift, shift)
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    one = torch.ones_like(shear_x)
    shear = torch.stack([torch.stack([one, shear_x], -1), torch.stack([shear_y, one], -1)], -2)
    linear = rot @ shear @ torch.diag_embed(torch.stack([1 / scale_x, 1 / scale_y], -1))
    grid = F.affine_grid(
        torch.cat([linear, torch.stack([tx, ty], -1)[..., None]], -1),
        list(x.shape),
        align_corners=False,
    )
    return F.grid_sample(x, grid, align_corners=False)


class Siamese(MetricLearner):
    """Siamese network learner; `budget` is shots per class."""

    budget_name = "shots"

    def __init__(
        self, cfg: SiameseConfig, encoder: nn.Module, dim: int, device: torch.device, seed: int
    ):
        self.cfg = cfg
        self.model = nn.ModuleDict({"encoder": encoder, "head": PairHead(dim)}).to(device)
        self.metric, self.higher_is_better = "accuracy", True
        self.headline_budget = 1
        self.train_generator = make_generator(seed, "siamese/distort", device)

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Same-class probabilities `[A, B]` of images `[A, C, H, W]` and `[B, C, H, W]`."""
        za, zb = embed_together(self.model["encoder"], a, b)
        return torch.sigmoid(self.model["head"](za, zb))

    def class_scores(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int
    ) -> Tensor:
        """Per-class scores `[Q, ways]` by `shot_rule` (see `class_logits`)."""
        zs, zq = embed_together(self.model["encoder"], support_x, query_x)
        return class_logits(self.model["head"](zq, zs), support_y, ways, self.cfg.shot_rule)

    def _task(self, tasks: Episode, t: int, shots: int) -> Tensor:
        n = shots * tasks.ways
        return self.class_scores(
            tasks.support_x[t, :n], tasks.support_y[t, :n], tasks.query_x[t], tasks.ways
        )

    def _task_loss(self, tasks: Episode, t: int) -> tuple[Tensor, Tensor]:
        """Balanced same / different BCE over every (query, support) pair of task `t` (on
        distorted images with `distort`), and its class scores `[Q, ways]` (no gradient)."""
        sx, qx = tasks.support_x[t], tasks.query_x[t]
        if self.cfg.distort:
            both = random_affine(torch.cat([sx, qx]), self.cfg, self.train_generator)
            sx, qx = both[: sx.shape[0]], both[sx.shape[0] :]
        zs, zq = embed_together(self.model["encoder"], sx, qx)
        logits = self.model["head"](zq, zs)  # [Q, S]
        same = (tasks.query_y[t].unsqueeze(1) == tasks.support_y[t].unsqueeze(0)).float()
        pos_weight = torch.tensor(float(max(tasks.ways - 1, 1)), device=tasks.query_x.device)
        loss = F.binary_cross_entropy_with_logits(logits, same, pos_weight=pos_weight)
        with torch.no_grad():
            pred = class_logits(logits, tasks.support_y[t], tasks.ways, self.cfg.shot_rule)
        return loss, pred

    def _meta_tasks(self, tasks: Episode) -> Iterator[int]:
        """The tasks in order; with distortions on, the draws of the tasks other ranks compute
        (under torchrun) are made and dropped, so the generator moves as in one process."""
        rows, total = batch_rows(tasks.num_tasks)
        items = tasks.support_x.shape[1] + tasks.query_x.shape[1]
        for i in range(total):
            if rows.start <= i < rows.stop:
                yield i - rows.start
            elif self.cfg.distort:  # the same draws on 1x1 images: no pixels to warp
                x = torch.zeros(items, 1, 1, 1, device=tasks.support_x.device)
                random_affine(x, self.cfg, self.train_generator)

    def predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """`[Q, ways]`: softmax over the classes of the rule's per-class log-odds."""
        self.model.train()
        with torch.no_grad():
            return torch.softmax(self.class_scores(support_x, support_y, query_x, ways), -1)

    def _generators(self) -> dict[str, torch.Generator]:
        return {"train": self.train_generator}


def build_siamese(
    cfg: SiameseConfig, distribution: Any, device: torch.device, seed: int
) -> Siamese:
    shape = check_image_task(distribution, "siamese")
    with seeded(seed, "model"):
        encoder = conv4(shape[0], cfg.conv_channels)
        dim = embedding_dim(encoder, shape)
        learner = Siamese(cfg, encoder, dim, device, seed)
    learner.headline_budget = distribution.shots
    return learner
