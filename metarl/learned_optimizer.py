"""A learned optimiser (Andrychowicz et al. 2016, "Learning to learn by gradient descent by
gradient descent"): a coordinate-wise two-layer LSTM that maps each parameter's gradient to
its update, meta-trained by truncated back-propagation through unrolled optimisation.

Coordinate-wise: every scalar parameter is one row of the LSTM's batch, with its own hidden
state and shared weights, so one trained optimiser accepts parameters of *any* shapes and
count (a 10-d quadratic, an MLP, MAML's conv-4); what it cannot promise is to work well on
problems unlike those it was trained on (the benchmark measures where it does not).

Step t for a coordinate with gradient g:
    x      = preprocess(g)                   (log-and-sign, appendix A of the paper)
    h1, h2 = LSTM_2(LSTM_1(x))               (hidden_size units each, state per coordinate)
    update = output_scale * (w . h2 + b) + skip * g
`skip` is one scalar, zero at initialisation: with the LSTM's output weights zero and
`skip = -lr` the optimiser is exactly SGD with step `lr` (tested), so SGD is a special case.
Meta-training drops the second derivatives of the optimisee (the gradient is an input,
detached), as the paper does.

The task distribution `optimizee` yields the problems: the paper's 10-d quadratics
`f(theta) = ||W theta - y||^2` or an MLP classifier on generated data (clusters in 64-d, 10
classes; a stand-in for the paper's MNIST, which is not offline here), both batched over tasks.
The learner `lstm_optimizer` trains on them with the engine; its budget is optimisation steps
and its curve the optimisee's loss after each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from metarl.contracts import SPLITS, check_split
from metarl.errors import UsageError
from metarl.inner_loop import Params
from metarl.seeding import seeded

# -- the optimiser ----------------------------------------------------------------------------


def preprocess(grad: Tensor, p: float = 10.0) -> Tensor:
    """Log-and-sign gradient preprocessing: `[N] -> [N, 2]`.

    `(log|g| / p, sign g)` where `|g| >= e^-p`, else `(-1, e^p g)`: both parts stay O(1) over
    many orders of magnitude of gradients.
    """
    big = grad.abs() >= math.exp(-p)
    first = torch.where(big, grad.abs().clamp_min(1e-37).log() / p, torch.full_like(grad, -1.0))
    second = torch.where(big, grad.sign(), math.exp(p) * grad)
    return torch.stack([first, second], dim=-1)


class LSTMOptimizer(nn.Module):
    """The coordinate-wise LSTM optimiser; an `metarl.inner_loop.InnerOptimizer`.

    `init(params) -> state` (zero LSTM states, `[numel, hidden]` per parameter) and
    `update(params, grads, state) -> (params, state)` on dicts of tensors of any shapes.
    """

    def __init__(
        self, hidden_size: int = 20, preprocess_p: float = 10.0, output_scale: float = 0.1
    ) -> None:
        super().__init__()
        if hidden_size < 1:
            raise UsageError(f"the LSTM optimiser needs hidden_size >= 1, got {hidden_size}")
        self.hidden_size, self.preprocess_p, self.output_scale = (
            hidden_size,
            preprocess_p,
            output_scale,
        )
        self.cell1 = nn.LSTMCell(2, hidden_size)
        self.cell2 = nn.LSTMCell(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, 1)
        self.skip = nn.Parameter(torch.zeros(()))

    def init(self, params: Params) -> dict[str, tuple[Tensor, ...]]:
        w = self.out.weight
        return {
            k: tuple(
                torch.zeros(v.numel(), self.hidden_size, device=v.device, dtype=w.dtype)
                for _ in range(4)
            )
            for k, v in params.items()
        }

    def update(
        self, params: Params, grads: Params, state: dict[str, tuple[Tensor, ...]]
    ) -> tuple[Params, dict[str, tuple[Tensor, ...]]]:
        new, new_state = dict(params), dict(state)
        for k, g in grads.items():
            flat = g.reshape(-1)
            h1, c1, h2, c2 = state[k]
            h1, c1 = self.cell1(preprocess(flat, self.preprocess_p), (h1, c1))
            h2, c2 = self.cell2(h1, (h2, c2))
            step = self.output_scale * self.out(h2).squeeze(-1) + self.skip * flat
            new[k] = params[k] + step.view_as(params[k])
            new_state[k] = (h1, c1, h2, c2)
        return new, new_state


def detach_state(state: dict[str, tuple[Tensor, ...]]) -> dict[str, tuple[Tensor, ...]]:
    return {k: tuple(s.detach() for s in v) for k, v in state.items()}


def load_lstm_optimizer(run_dir: str | Path, device: torch.device | str = "cpu") -> LSTMOptimizer:
    """The trained optimiser of a `lstm_optimizer` run directory (config.yaml + checkpoint).

    It accepts parameters of any shapes (it is coordinate-wise); a run of another learner,
    or a directory without a checkpoint, is refused with a `UsageError`.
    """
    run_dir = Path(run_dir)
    config, ckpt = run_dir / "config.yaml", run_dir / "checkpoints" / "last.pt"
    if not config.is_file() or not ckpt.is_file():
        raise UsageError(
            f"{run_dir} is not a trained lstm_optimizer run (needs config.yaml and "
            "checkpoints/last.pt); train one with `metarl train quadratic_lstm_optimizer`"
        )
    learner = yaml.safe_load(config.read_text()).get("learner", {})
    if learner.get("kind") != "lstm_optimizer":
        raise UsageError(
            f"{run_dir} holds a {learner.get('kind')!r} run, not an lstm_optimizer; give the "
            "run directory of `metarl train quadratic_lstm_optimizer` (or mlp_lstm_optimizer)"
        )
    opt = LSTMOptimizer(
        learner.get("hidden_size", 20),
        learner.get("preprocess_p", 10.0),
        learner.get("output_scale", 0.1),
    )
    state = torch.load(ckpt, map_location=device, weights_only=True)
    opt.load_state_dict(state["learner"]["model"])
    return opt.to(device).requires_grad_(False)


# -- optimisees -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimizees:
    """T optimisation problems: a family, its data and initial parameters (task axis first).

    quadratic: `W` `[T, d, d]`, `y` `[T, d]`, params {"theta": `[T, d]`}.
    mlp: `x` `[T, n, 64]`, `labels` `[T, n]`, params {"w0": `[T, 64, h]`, "b0": `[T, h]`, ...}.
    """

    family: str
    data: dict[str, Tensor]
    params: Params
    activation: str = "sigmoid"

    @property
    def num_tasks(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def __len__(self) -> int:
        return self.num_tasks

    def select(self, index: slice | Tensor) -> Optimizees:
        """The problems `index` (a slice or an index tensor) of the task axis."""
        return Optimizees(
            self.family,
            {k: v[index] for k, v in self.data.items()},
            {k: v[index] for k, v in self.params.items()},
            self.activation,
        )

    def loss(self, params: Params) -> Tensor:
        """Per-task loss `[T]` at `params` (each `[T, ...]`)."""
        if self.family == "quadratic":
            r = torch.einsum("tij,tj->ti", self.data["W"], params["theta"]) - self.data["y"]
            return r.pow(2).sum(-1)
        act = torch.sigmoid if self.activation == "sigmoid" else torch.relu
        h = self.data["x"]
        layers = len(params) // 2
        for i in range(layers):
            h = torch.baddbmm(params[f"b{i}"].unsqueeze(1), h, params[f"w{i}"])
            if i < layers - 1:
                h = act(h)
        return F.cross_entropy(h.transpose(1, 2), self.data["labels"], reduction="none").mean(-1)


@dataclass
class OptimizeeConfig:
    family: Literal["quadratic", "mlp"] = "quadratic"
    """quadratic: f = ||W theta - y||^2 (the paper's); mlp: a classifier on generated data."""
    dim: int = 10
    """quadratic: dimension of theta (the paper: 10)."""
    hidden_sizes: list[int] | None = None
    """mlp: hidden layer sizes (default [20], the paper's MNIST network)."""
    activation: Literal["sigmoid", "relu"] = "sigmoid"
    """mlp: hidden activation (the paper trained on sigmoid)."""
    samples: int = 128
    """mlp: data points per problem (one full batch per step)."""


class OptimizeeDistribution:
    """Problems of one family; splits differ only in their random streams (a problem is a
    fresh draw of W, y or of cluster centres, so held-out problems are new draws)."""

    splits = SPLITS
    features, classes = 64, 10

    def __init__(self, cfg: OptimizeeConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> Optimizees:
        check_split(split, self.splits)
        c, t = self.cfg, num_tasks
        kw: dict[str, Any] = {"generator": generator, "device": self.device}
        if c.family == "quadratic":
            data = {"W": torch.randn(t, c.dim, c.dim, **kw), "y": torch.randn(t, c.dim, **kw)}
            return Optimizees("quadratic", data, {"theta": torch.randn(t, c.dim, **kw)})
        centres = torch.randn(t, self.classes, self.features, **kw)
        labels = torch.randint(0, self.classes, (t, c.samples), **kw)
        x = centres.gather(1, labels.unsqueeze(-1).expand(-1, -1, self.features))
        x = x + torch.randn(t, c.samples, self.features, **kw)
        dims = [self.features, *(c.hidden_sizes or [20]), self.classes]
        params = {}
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            params[f"w{i}"] = torch.randn(t, a, b, **kw) / math.sqrt(a)
            params[f"b{i}"] = torch.zeros(t, b, device=self.device)
        return Optimizees("mlp", {"x": x, "labels": labels}, params, c.activation)


def build_optimizee(cfg: OptimizeeConfig, device: torch.device) -> OptimizeeDistribution:
    if cfg.dim < 1 or cfg.samples < 1 or any(h < 1 for h in cfg.hidden_sizes or []):
        raise UsageError("task.dim, task.samples and task.hidden_sizes must be >= 1")
    return OptimizeeDistribution(cfg, device)


# -- optimisation with any inner optimiser ----------------------------------------------------


def optimize(problems: Optimizees, optimizer: Any, steps: int) -> Tensor:
    """Run `optimizer` (an `InnerOptimizer`) for `steps` steps; loss per step `[steps + 1, T]`."""
    params = {k: v.clone().requires_grad_() for k, v in problems.params.items()}
    state = optimizer.init(params)
    losses = []
    for _ in range(steps):
        with torch.enable_grad():
            loss = problems.loss(params)
            grads = torch.autograd.grad(loss.sum(), list(params.values()))
        losses.append(loss.detach())
        with torch.no_grad():
            params, state = optimizer.update(params, dict(zip(params, grads, strict=True)), state)
        params = {k: v.detach().requires_grad_() for k, v in params.items()}
    losses.append(problems.loss(params).detach())
    return torch.stack(losses)


@dataclass
class TorchOptimizer:
    """A `torch.optim` optimiser (SGD, Adam, RMSprop) as an `InnerOptimizer`, for baselines."""

    cls: type
    kwargs: dict[str, Any]

    def init(self, params: Params) -> Any:
        self.leaves = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        return self.cls(list(self.leaves.values()), **self.kwargs)

    def update(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        for k, g in grads.items():
            self.leaves[k].grad = g.detach().clone()
        state.step()
        return {k: v.detach().clone() for k, v in self.leaves.items()}, state


# -- the learner ------------------------------------------------------------------------------


@dataclass
class LSTMOptimizerConfig:
    hidden_size: int = 20
    """Units of each of the two LSTM layers (the paper: 20)."""
    preprocess_p: float = 10.0
    """p of the log-and-sign preprocessing (the paper: 10)."""
    output_scale: float = 0.1
    """The LSTM's output is multiplied by this (the paper: 0.1)."""
    optimizee_steps: int = 100
    """Optimisation steps per problem during meta-training (the paper: 100)."""
    unroll: int = 20
    """Truncation: the meta-gradient runs through this many steps (the paper: 20)."""
    outer_lr: float = 0.001
    """Adam step size of the meta-optimiser."""
    eval_steps: int = 100
    """Optimisation steps at which the headline loss is read."""
    learn_skip: bool = True
    """Meta-train the skip term `skip * g` (a learned plain-gradient step). False keeps it at
    zero, the paper's optimiser: on quadratics of varied curvature a learned global step on the
    raw gradient exceeds 2 / L for the stiffest problems and their loss overflows."""


class LSTMOptimizerLearner:
    """Meta-trains an `LSTMOptimizer`; budget = optimisation steps, metric = optimisee loss."""

    metric, higher_is_better, budget_name = "loss", False, "steps"
    distributed = True  # coordinate-wise: each problem's losses are its own (metarl.distributed)

    def __init__(self, cfg: LSTMOptimizerConfig, device: torch.device, seed: int) -> None:
        self.cfg = cfg
        with seeded(seed, "model"):
            self.model = LSTMOptimizer(cfg.hidden_size, cfg.preprocess_p, cfg.output_scale)
        self.model.to(device)
        self.model.skip.requires_grad_(cfg.learn_skip)
        self.headline_budget = cfg.eval_steps
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=cfg.outer_lr)

    def meta_step(self, tasks: Optimizees) -> dict[str, float]:
        """One problem batch optimised for `optimizee_steps`; an Adam step every `unroll`.

        Meta-loss of a truncation: the mean over its steps of the mean task loss after each
        update (the paper's sum of losses, weights 1). Losses of problems are logged as
        log10 to keep the scalar readable.
        """
        c = self.cfg
        params = {k: v.clone().requires_grad_() for k, v in tasks.params.items()}
        state = self.model.init(params)
        loss = tasks.loss(params)
        meta_losses = []
        for start in range(0, c.optimizee_steps, c.unroll):
            total = loss.new_zeros(())  # 0 + x == x: the same numbers as a float start
            n = min(c.unroll, c.optimizee_steps - start)
            for _ in range(n):
                grads = torch.autograd.grad(loss.sum(), list(params.values()), retain_graph=True)
                detached = {k: g.detach() for k, g in zip(params, grads, strict=True)}
                params, state = self.model.update(params, detached, state)
                loss = tasks.loss(params)
                total = total + loss.mean()
            meta = total / n
            self.optimizer.zero_grad(set_to_none=True)
            meta.backward()
            self.optimizer.step()
            meta_losses.append(meta.item())
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            state = detach_state(state)
            loss = tasks.loss(params)
        return {"loss": sum(meta_losses) / len(meta_losses), "final_loss": loss.mean().item()}

    def adapt(self, tasks: Optimizees, budget: int) -> Tensor:
        return optimize(tasks, self.model, budget)[-1]

    def evaluate(self, adapted: Tensor, tasks: Optimizees) -> Tensor:
        return adapted

    def adaptation_curve(self, tasks: Optimizees, max_budget: int) -> Tensor:
        return optimize(tasks, self.model, max_budget)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


def build_lstm_optimizer(
    cfg: LSTMOptimizerConfig, distribution: Any, device: torch.device, seed: int
) -> LSTMOptimizerLearner:
    if not isinstance(distribution, OptimizeeDistribution):
        raise UsageError("learner.kind lstm_optimizer needs task.kind optimizee")
    if cfg.unroll < 1:
        raise UsageError(
            f"learner.unroll={cfg.unroll}: the truncated meta-gradient needs at least one "
            "unrolled step; set learner.unroll >= 1 (the paper: 20)"
        )
    if cfg.optimizee_steps < 1 or cfg.eval_steps < 0:
        raise UsageError("learner.optimizee_steps must be >= 1 and learner.eval_steps >= 0")
    return LSTMOptimizerLearner(cfg, device, seed)
