"""Matching Networks (Vinyals et al. 2016).

A query's class distribution is attention over the support set: `p(y | x) = sum_i a(x, x_i)
y_i` with `a` the softmax over the support of the (scaled) cosine similarity between the
query's embedding and each support embedding. Trained by the log-likelihood of the query
labels, episode by episode. `budget` is shots per class (the first k shots of the support);
with 0 shots every class is equally likely.

Full-context embeddings (`fce`, the paper's section 2.1.2): the support embeddings are read
by a bidirectional LSTM, `g(x_i) = z_i + h_fwd_i + h_bwd_i`, and the query embedding by an
attention LSTM run for `fce_steps` steps over `g(S)`: `h_hat, c = LSTM(f'(x), (h + r, c))`,
`h = h_hat + f'(x)`, `r = softmax(h g(S)^T) g(S)`; the query is then `h`. (The paper
concatenates `h` and `r` as the hidden state; we add them, which keeps the cell square.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.fewshot.backbones import conv4, embedding_dim
from metarl.fewshot.episode import Episode
from metarl.fewshot.metric import (
    MetricLearner,
    check_image_task,
    embed_together,
)
from metarl.seeding import seeded


@dataclass
class MatchingConfig:
    conv_channels: int = 64
    """conv4 filters per layer."""
    outer_lr: float = 0.001
    """Adam step size."""
    lr_decay_every: int = 2000
    """Multiply the step size by lr_decay every this many meta-iterations (0: never)."""
    lr_decay: float = 0.5
    """Step-size factor applied every lr_decay_every iterations."""
    cosine_scale: float = 10.0
    """Cosine similarities are multiplied by this before the softmax attention (1 is the
    paper's plain cosine; a larger scale lets attention become sharp and trains faster)."""
    fce: bool = False
    """Full-context embeddings: bidirectional LSTM over the support, attention LSTM for the query."""
    fce_steps: int = 5
    """Processing steps of the query's attention LSTM (the paper's K)."""


def attention(query: Tensor, support: Tensor, scale: float) -> Tensor:
    """Softmax over the support of scaled cosine similarities: `[Q, D], [S, D] -> [Q, S]`.

    Each row sums to one.
    """
    cos = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).T
    return torch.softmax(scale * cos, dim=-1)


def class_log_probs(
    query: Tensor, support: Tensor, labels: Tensor, ways: int, scale: float
) -> Tensor:
    """`log p(y = c | x)` `[Q, ways]`: the log of the attention mass on class c's support items.

    Computed as a masked log-sum-exp of the log attention, so no probability is ever rounded
    to zero before its log is taken.
    """
    cos = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).T  # [Q, S]
    log_att = torch.log_softmax(scale * cos, dim=-1)
    member = F.one_hot(labels, ways).T.bool()  # [ways, S]
    masked = log_att.unsqueeze(1).masked_fill(~member.unsqueeze(0), float("-inf"))  # [Q, ways, S]
    return torch.logsumexp(masked, dim=-1)


class FullContext(nn.Module):
    """The FCE read-outs g (bidirectional LSTM over the support) and f (attention LSTM)."""

    def __init__(self, dim: int, steps: int):
        super().__init__()
        self.steps = steps
        self.support_lstm = nn.LSTM(dim, dim, bidirectional=True)
        self.query_cell = nn.LSTMCell(dim, dim)

    def support(self, z: Tensor) -> Tensor:
        """`g`: `[S, D] -> [S, D]`, the support read as one sequence in its order."""
        out, _ = self.support_lstm(z.unsqueeze(1))  # [S, 1, 2D]
        fwd, bwd = out.squeeze(1).chunk(2, dim=-1)
        return z + fwd + bwd

    def query(self, z: Tensor, g: Tensor) -> Tensor:
        """`f`: queries `[Q, D]` attending over `g(S)` `[S, D]` -> `[Q, D]`."""
        h, c, r = torch.zeros_like(z), torch.zeros_like(z), torch.zeros_like(z)
        for _ in range(self.steps):
            h_hat, c = self.query_cell(z, (h + r, c))
            h = h_hat + z
            r = torch.softmax(h @ g.T, dim=-1) @ g
        return h


class Matching(MetricLearner):
    """Matching Networks learner; `budget` is shots per class."""

    budget_name = "shots"

    def __init__(self, cfg: MatchingConfig, encoder: nn.Module, dim: int, device: torch.device):
        self.cfg = cfg
        self.model: nn.ModuleDict = nn.ModuleDict({"encoder": encoder})
        if cfg.fce:
            self.model["fce"] = FullContext(dim, cfg.fce_steps)
        self.model.to(device)
        self.metric, self.higher_is_better = "accuracy", True
        self.headline_budget = 1

    def log_probs(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """`log p(y | x)` `[Q, ways]` of queries `[Q, C, H, W]` given a support `[S, C, H, W]`."""
        zs, zq = embed_together(self.model["encoder"], support_x, query_x)
        if self.cfg.fce:
            fce = cast(FullContext, self.model["fce"])
            zs = fce.support(zs)
            zq = fce.query(zq, zs)
        return class_log_probs(zq, zs, support_y, ways, self.cfg.cosine_scale)

    def _task(self, tasks: Episode, t: int, shots: int) -> Tensor:
        n = shots * tasks.ways  # shot-major: the first n items hold `shots` per class
        return self.log_probs(
            tasks.support_x[t, :n], tasks.support_y[t, :n], tasks.query_x[t], tasks.ways
        )

    def _task_loss(self, tasks: Episode, t: int) -> tuple[Tensor, Tensor]:
        logp = self._task(tasks, t, tasks.shots)
        return F.nll_loss(logp, tasks.query_y[t]), logp

    def predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """Class probabilities `[Q, ways]` for queries given a labelled support (`metarl adapt`)."""
        self.model.train()
        with torch.no_grad():
            return self.log_probs(support_x, support_y, query_x, ways).exp()


def build_matching(
    cfg: MatchingConfig, distribution: Any, device: torch.device, seed: int
) -> Matching:
    shape = check_image_task(distribution, "matching")
    with seeded(seed, "model"):
        encoder = conv4(shape[0], cfg.conv_channels)
        dim = embedding_dim(encoder, shape)
        learner = Matching(cfg, encoder, dim, device)
    learner.headline_budget = distribution.shots
    return learner
