"""Reptile (Nichol, Achiam & Schulman 2018): first-order meta-learning by interpolation.

Per task of the meta-batch, the shared inner loop (`metarl.inner_loop.optimizer_adapt_iter`,
Adam with beta1 = 0 as in the paper, or SGD) takes `adapt_steps` steps on mini-batches of
`inner_batch` support items from the initial weights `theta`, giving `phi_t`. The outer update
is Reptile's own, in its gradient form:

    theta <- theta + epsilon * mean_t (phi_t - theta)

written as an SGD step of size `epsilon` on the "gradient" `theta - mean_t phi_t`, with
`epsilon` annealed linearly from `outer_lr` to `outer_lr_final` over `anneal_iterations`
(Nichol et al.: 1.0 -> 0 over 100,000 iterations). No second-order terms, no query loss:
training uses the support set alone (`task.train_shots` items per class, 10 in the paper).

Evaluation (budget = inner steps on the support set): batch norm uses the statistics of the
batch it sees (`conv4` has no running statistics), so the mode matters, and the table says it:
- transductive: all queries of a task in one batch (the paper's headline numbers);
- non-transductive: each query in a batch with the support set alone, so no query sees the
  statistics of the others (`transductive: false`, or `query_accuracy(..., False)`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.distributed import batch_rows
from metarl.errors import UsageError
from metarl.fewshot.backbones import classifier
from metarl.fewshot.episode import Episode
from metarl.inner_loop import (
    SGD,
    Adam,
    InnerOptimizer,
    Params,
    forward,
    named_params,
    optimizer_adapt_iter,
)
from metarl.seeding import derive_seed, make_generator, seeded


@dataclass
class ReptileConfig:
    conv_channels: int = 64
    """conv4 filters per layer."""
    inner_optimizer: Literal["adam", "sgd"] = "adam"
    """Inner-loop optimiser: Adam with beta1 = 0 (Nichol et al.) or plain SGD."""
    inner_lr: float = 0.001
    """Inner-loop step size."""
    adapt_steps: int = 5
    """Inner steps per training task (Nichol et al., Omniglot: 5)."""
    inner_batch: int = 10
    """Support items per inner step during training (mini-batches of a shuffled support set)."""
    eval_adapt_steps: int = 50
    """Inner steps at test time; the headline budget."""
    eval_inner_batch: int = 5
    """Support items per inner step at test time (Nichol et al.: 5)."""
    outer_lr: float = 1.0
    """epsilon, the interpolation step size at iteration 0."""
    outer_lr_final: float = 0.0
    """epsilon after `anneal_iterations` (linear in between, constant after)."""
    anneal_iterations: int = 100000
    """Meta-iterations over which epsilon goes from outer_lr to outer_lr_final (0: constant
    outer_lr, no annealing)."""
    transductive: bool = True
    """Evaluate with all queries of a task in one batch (True) or each with the support alone."""
    inner_state: Literal["fresh", "carried"] = "fresh"
    """The inner optimiser's state (Adam's moments and step count) at the start of a task:
    `fresh`, zero for every task; `carried`, as the paper's code does (it resets only the
    weights after a task): training tasks, one after another, hand it on, and every test task
    starts from the state training left (without changing it). Carried runs its meta-batch in
    sequence, so it takes one process."""


def minibatches(x: Tensor, y: Tensor, size: int, generator: torch.Generator):
    """An endless stream of mini-batches of `size` items of `x` `[S, ...]`, `y` `[S]`:
    passes over a fresh random order of the set, as Nichol et al.'s sampler does."""
    while True:
        order = torch.randperm(y.shape[0], generator=generator, device=y.device)
        for i in range(0, y.shape[0] - size + 1, size):
            idx = order[i : i + size]
            yield x[idx], y[idx]


def skip_minibatches(
    num_items: int, size: int, steps: int, generator: torch.Generator, device: torch.device
) -> None:
    """Make the random draws of `steps` mini-batches of `size` from a set of `num_items`, as
    `minibatches` does, without the data: a task another rank adapts (under torchrun) moves
    the generator as it moves in one process."""
    stream = minibatches(
        torch.empty(num_items, 0, device=device),
        torch.empty(num_items, device=device),
        min(size, num_items),
        generator,
    )
    for _ in range(steps):
        next(stream)


def reptile_update(theta: Params, adapted: list[Params], epsilon: float) -> Params:
    """The outer update `theta + epsilon * mean_t (phi_t - theta)`, parameter by parameter."""
    return {
        k: theta[k] + epsilon * (torch.stack([p[k] for p in adapted]).mean(0) - theta[k])
        for k in theta
    }


class Reptile:
    """Reptile learner; `budget` is the number of inner steps on the support set."""

    metric, higher_is_better, budget_name = "accuracy", True, "steps"
    # equal on several processes: the mean of theta - phi_t over a shard, weighted by its share,
    # sums to the mean over the batch; the draws of other ranks' tasks are skipped (batch_rows)
    distributed = True

    def __init__(self, cfg: ReptileConfig, model: nn.Module, device: torch.device, seed: int):
        self.cfg, self.model, self.seed = cfg, model.to(device), seed
        self.headline_budget = cfg.eval_adapt_steps
        # the gradient form: SGD of step epsilon on theta - mean(phi) is the interpolation
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.outer_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._anneal)
        self.train_generator = make_generator(seed, "reptile/train", device)
        self.eval_generator = make_generator(seed, "reptile/eval", device)
        self.carry: dict[str, Any] = {"state": None}  # `inner_state: carried` (training's)

    def _anneal(self, it: int) -> float:
        c = self.cfg
        frac = min(it / c.anneal_iterations, 1.0) if c.anneal_iterations > 0 else 0.0
        return ((1 - frac) * c.outer_lr + frac * c.outer_lr_final) / c.outer_lr

    def _inner(self) -> InnerOptimizer:
        c = self.cfg
        return Adam(c.inner_lr) if c.inner_optimizer == "adam" else SGD(c.inner_lr)

    def _carry(self, train: bool) -> dict[str, Any] | None:
        """The inner state a task starts from (`inner_state`): None (fresh), training's own
        (handed on), or a copy of it for a test task (training's is left as it is)."""
        if self.cfg.inner_state == "fresh":
            return None
        return self.carry if train else dict(self.carry)

    def _adapt_steps(
        self,
        x: Tensor,
        y: Tensor,
        steps: int,
        batch: int,
        generator: torch.Generator,
        carry: dict[str, Any] | None = None,
    ) -> list[Params]:
        """Detached parameters after 0..steps inner steps on mini-batches of (x, y); `carry`:
        the inner optimiser's state (`optimizer_adapt_iter`)."""
        stream = minibatches(x, y, min(batch, y.shape[0]), generator)

        def loss_fn(p: Params) -> Tensor:
            xb, yb = next(stream)
            return F.cross_entropy(forward(self.model, p, xb), yb)

        with torch.enable_grad():
            start = {k: v.detach().requires_grad_() for k, v in named_params(self.model).items()}
            return [
                {k: v.detach().requires_grad_() for k, v in p.items()}
                for p in optimizer_adapt_iter(
                    start, loss_fn, steps, self._inner(), True, carry=carry
                )
            ]

    # -- learner contract --------------------------------------------------------------------
    def meta_step(self, tasks: Episode) -> dict[str, float]:
        self.model.train()
        theta = {k: v.detach() for k, v in named_params(self.model).items()}
        adapted, losses, accs = [], [], []
        for t in self._own_tasks(tasks, self.cfg.adapt_steps, self.cfg.inner_batch, True):
            x, y = tasks.support_x[t], tasks.support_y[t]
            phi = self._adapt_steps(
                x, y, self.cfg.adapt_steps, self.cfg.inner_batch, self.train_generator,
                self._carry(True),
            )[-1]  # fmt: skip
            adapted.append({k: v.detach() for k, v in phi.items()})
            with torch.no_grad():  # the support loss after adaptation, for the log only
                out = forward(self.model, phi, x)
                losses.append(F.cross_entropy(out, y).item())
                accs.append((out.argmax(-1) == y).float().mean().item())
        mean_phi = reptile_update(theta, adapted, 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        for name, p in self.model.named_parameters():
            p.grad = theta[name] - mean_phi[name]
        epsilon = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        n = tasks.num_tasks
        return {"loss": sum(losses) / n, "accuracy": sum(accs) / n, "epsilon": epsilon}

    def _own_tasks(self, tasks: Episode, steps: int, batch: int, train: bool) -> Iterator[int]:
        """The tasks of `tasks` in order, the generator skipping the draws of the tasks before,
        between and after them that other ranks adapt (none with one process)."""
        rows, total = batch_rows(tasks.num_tasks)
        if self.cfg.inner_state == "carried" and rows.stop - rows.start != total:
            raise UsageError(
                "learner.inner_state=carried hands the inner state from task to task in "
                "sequence: run it on one process (or use inner_state=fresh under torchrun)"
            )
        gen = self.train_generator if train else self.eval_generator
        items = tasks.support_y.shape[1]
        for i in range(total):
            if rows.start <= i < rows.stop:
                yield i - rows.start
            else:
                skip_minibatches(items, batch, steps, gen, tasks.support_y.device)

    def _query_logits(self, p: Params, support_x: Tensor, query_x: Tensor, transductive: bool):
        """Query logits `[Q, ways]`: queries in one batch, or each beside the support set."""
        if transductive:
            return forward(self.model, p, query_x)
        s = support_x.shape[0]
        rows = [forward(self.model, p, torch.cat([support_x, q[None]]))[s] for q in query_x]
        return torch.stack(rows)

    def _curve_task(
        self, tasks: Episode, t: int, steps: int, transductive: bool, last_only: bool = False
    ) -> Tensor:
        x, y = tasks.support_x[t], tasks.support_y[t]
        per_step = self._adapt_steps(
            x, y, steps, self.cfg.eval_inner_batch, self.eval_generator, self._carry(False)
        )
        if last_only:
            per_step = per_step[-1:]
        with torch.no_grad():
            return torch.stack(
                [
                    (
                        self._query_logits(p, x, tasks.query_x[t], transductive).argmax(-1)
                        == tasks.query_y[t]
                    )
                    .float()
                    .mean()
                    for p in per_step
                ]
            )

    def adapt(self, tasks: Episode, budget: int) -> list[Params]:
        return [
            self._adapt_steps(
                tasks.support_x[t],
                tasks.support_y[t],
                budget,
                self.cfg.eval_inner_batch,
                self.eval_generator,
                self._carry(False),
            )[-1]
            for t in range(tasks.num_tasks)
        ]

    def evaluate(self, adapted: list[Params], tasks: Episode) -> Tensor:
        self.model.train()  # batch statistics, as in training
        with torch.no_grad():
            return torch.stack(
                [
                    (
                        self._query_logits(
                            p, tasks.support_x[t], tasks.query_x[t], self.cfg.transductive
                        ).argmax(-1)
                        == tasks.query_y[t]
                    )
                    .float()
                    .mean()
                    for t, p in enumerate(adapted)
                ]
            )

    def adaptation_curve(self, tasks: Episode, max_budget: int) -> Tensor:
        """Query accuracy after 0..max_budget inner steps: `[B + 1, T]`, one pass per task."""
        return self.query_accuracy(tasks, max_budget, self.cfg.transductive)

    def query_accuracy(
        self, tasks: Episode, max_budget: int, transductive: bool, last_only: bool = False
    ) -> Tensor:
        """The adaptation curve `[B + 1, T]` in the given evaluation mode; with `last_only`
        just its last row `[1, T]` (the same numbers, without testing the queries after every
        inner step: a non-transductive 20-way episode tests each of its 20 queries beside the
        support at each of the 51 points of the curve)."""
        self.model.train()
        own = self._own_tasks(tasks, max_budget, self.cfg.eval_inner_batch, False)
        cols = [self._curve_task(tasks, t, max_budget, transductive, last_only) for t in own]
        return torch.stack(cols, dim=1)

    def predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """Class probabilities `[Q, ways]` of `query_x` `[Q, C, H, W]` after `eval_adapt_steps`
        inner steps on the support `[S, C, H, W]`, labels `[S]` (mini-batches drawn with a
        generator fixed by the run seed, so the answer does not depend on what ran before)."""
        n_out = int(self.model[-1].out_features)  # type: ignore[index]
        if ways > n_out:
            raise UsageError(
                f"this Reptile model has {n_out} outputs, too few for {ways}-way tasks; train "
                f"one with task.ways={ways}"
            )
        if support_y.numel() == 0 or support_y.min() < 0 or support_y.max() >= ways:
            raise UsageError(f"support labels must lie in 0..{ways - 1} (and be at least one)")
        gen = torch.Generator(device=support_x.device)
        gen.manual_seed(derive_seed(self.seed, "reptile/predict"))
        self.model.train()
        p = self._adapt_steps(
            support_x, support_y, self.cfg.eval_adapt_steps, self.cfg.eval_inner_batch, gen,
            self._carry(False),
        )[-1]  # fmt: skip
        with torch.no_grad():
            logits = self._query_logits(p, support_x, query_x, self.cfg.transductive)
        return logits[:, :ways].softmax(-1)

    def load_model(self, state: dict[str, Any]) -> None:
        """Only the network (and the carried inner state) of a checkpoint's learner state
        (`metarl adapt`)."""
        self.model.load_state_dict(state["model"])
        self.carry["state"] = state.get("inner_state")

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generators": {
                "train": self.train_generator.get_state(),
                "eval": self.eval_generator.get_state(),
            },
            "inner_state": self.carry["state"],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.train_generator.set_state(state["generators"]["train"])
        self.eval_generator.set_state(state["generators"]["eval"])
        self.carry["state"] = state.get("inner_state")  # absent before inner_state existed


def build_reptile(
    cfg: ReptileConfig, distribution: Any, device: torch.device, seed: int
) -> Reptile:
    shape = tuple(distribution.input_shape)
    if getattr(distribution, "loss", "cross_entropy") != "cross_entropy" or len(shape) != 3:
        raise UsageError(
            "learner.kind reptile needs an image classification task (omniglot or image_folder)"
        )
    if distribution.train_ways > distribution.ways:
        raise UsageError(
            f"learner.kind reptile has one output per class of task.ways={distribution.ways}; "
            f"task.train_ways ({distribution.train_ways}) may not exceed it"
        )
    for name, v in (
        ("adapt_steps", cfg.adapt_steps),
        ("inner_batch", cfg.inner_batch),
        ("eval_inner_batch", cfg.eval_inner_batch),
        ("conv_channels", cfg.conv_channels),
    ):
        if v < 1:
            raise UsageError(f"learner.{name} must be >= 1, got {v}")
    if cfg.eval_adapt_steps < 0 or cfg.anneal_iterations < 0:
        raise UsageError("learner.eval_adapt_steps and learner.anneal_iterations must be >= 0")
    if cfg.outer_lr <= 0 or cfg.inner_lr <= 0:
        raise UsageError("learner.outer_lr and learner.inner_lr must be > 0")
    with seeded(seed, "model"):
        model = classifier(shape, distribution.ways, cfg.conv_channels)
    return Reptile(cfg, model, device, seed)
