"""MAML (Finn et al. 2017) and its kin for few-shot classification and regression.

One learner covers: second-order MAML, first-order MAML (`first_order`), Meta-SGD (learned
per-parameter step sizes, Li et al. 2017: `meta_sgd`) and ANIL (adapt the head only, Raghu et
al. 2020: `anil`). All of them run on the shared functional inner loop (`metarl.inner_loop`).

The outer loop is a Python loop over the tasks of the meta-batch, each task's query loss
back-propagated as soon as it is computed, so only one task's graph is alive at a time.
(On CPU this matched learn2learn / higher / TorchOpt, while `torch.func.vmap` over tasks was
2x slower with 8x the memory, see the README.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from metarl.config import NonNegativeInt, PositiveFloat, PositiveInt
from metarl.errors import UsageError
from metarl.fewshot.backbones import classifier, mlp
from metarl.fewshot.episode import Episode
from metarl.fewshot.losses import batched_loss, batched_metric, metric_name, task_loss, task_metric
from metarl.inner_loop import (
    Params,
    adapt_iter,
    expand_params,
    forward,
    named_params,
    optimizer_adapt_iter,
    per_task_forward,
)
from metarl.learned_optimizer import load_lstm_optimizer
from metarl.seeding import seeded


@dataclass
class MAMLConfig:
    backbone: Literal["auto", "conv4", "mlp"] = "auto"
    """conv4 for images, an MLP for vectors; auto picks by the task's input shape."""
    conv_channels: PositiveInt = 64
    """conv4 filters per layer."""
    hidden_sizes: list[PositiveInt] | None = None
    """MLP hidden sizes (default [40, 40], the MAML sinusoid network)."""
    inner_lr: PositiveFloat = 0.4
    """Inner-loop step size (Meta-SGD: its initial value)."""
    outer_lr: PositiveFloat = 0.001
    """Adam step size of the outer update."""
    adapt_steps: NonNegativeInt = 1
    """Inner steps during meta-training."""
    eval_adapt_steps: NonNegativeInt = 3
    """Inner steps at which the headline test metric is read off the curve."""
    first_order: bool = False
    """First-order MAML: drop the second-order terms of the meta-gradient."""
    meta_sgd: bool = False
    """Learn one step size per parameter entry (Meta-SGD)."""
    anil: bool = False
    """Adapt the final linear layer only (ANIL)."""
    learned_optimizer: str | None = None
    """Run directory of a trained `lstm_optimizer` run: the inner loop steps with that
    coordinate-wise LSTM optimiser (frozen) instead of SGD; inner_lr and meta_sgd then do not
    apply. It accepts any parameter shapes; how well it transfers is what it was trained on."""
    task_batching: Literal["loop", "vmap"] = "loop"
    """Outer loop over tasks: a Python loop, or all tasks at once through per-task copies of
    the parameters and a `vmap`-ed forward (exactly equal; faster for small batch-norm-free
    models such as the sinusoid MLP; refused for models with batch norm)."""


class MAML:
    """MAML learner; `budget` is the number of inner gradient steps."""

    budget_name = "steps"
    distributed = True  # its meta-step on a shard of the tasks: mean of local query losses

    def __init__(self, cfg: MAMLConfig, model: nn.Module, loss: str, device: torch.device):
        self.cfg, self.model, self.loss_kind = cfg, model.to(device), loss
        self.metric, self.higher_is_better = metric_name(loss)
        self.headline_budget = cfg.eval_adapt_steps
        params = named_params(self.model)
        head = list(params)[-2:]  # weight and bias of the last linear layer
        self.adapt_keys = head if cfg.anil else list(params)
        self.step_sizes: dict[str, nn.Parameter] | float = cfg.inner_lr
        trainable = list(self.model.parameters())
        if cfg.meta_sgd:
            self.step_sizes = {
                k: nn.Parameter(torch.full_like(params[k], cfg.inner_lr)) for k in self.adapt_keys
            }
            trainable += list(self.step_sizes.values())
        self._trainable = trainable
        self.inner_optimizer = (
            None
            if cfg.learned_optimizer is None
            else load_lstm_optimizer(cfg.learned_optimizer, device)
        )

    @functools.cached_property
    def optimizer(self) -> torch.optim.Adam:
        """Adam, built on first use: `metarl adapt` never trains and skips its import cost."""
        return torch.optim.Adam(self._trainable, lr=self.cfg.outer_lr)

    def _inner_steps(self, start: Params, loss_fn, steps: int, step_sizes, first_order: bool):
        """Parameters after 0..steps inner steps: SGD (step sizes) or the learned optimiser."""
        if self.inner_optimizer is not None:
            return optimizer_adapt_iter(
                start, loss_fn, steps, self.inner_optimizer, first_order, self.adapt_keys
            )
        return adapt_iter(start, loss_fn, steps, step_sizes, first_order, self.adapt_keys)

    # -- inner loop -------------------------------------------------------------------------
    def _support_loss(self, x: Tensor, y: Tensor):
        return lambda p: task_loss(self.loss_kind, forward(self.model, p, x), y)

    def _adapt_task(self, ep: Episode, t: int, steps: int, first_order: bool) -> Params:
        loss_fn = self._support_loss(ep.support_x[t], ep.support_y[t])
        *_, fast = self._inner_steps(
            named_params(self.model), loss_fn, steps, self.step_sizes, first_order
        )
        return fast

    def _batched_forward(self, params: Params, x: Tensor) -> Tensor:
        """Per-task parameters `[T, ...]` applied to per-task inputs `[T, B, ...]`."""
        return per_task_forward(self.model, params, x)

    def _adapt_batched(
        self,
        tasks: Episode,
        steps: int,
        first_order: bool,
        params: Params | None = None,
        step_sizes=None,
    ):
        """All tasks at once: parameters expanded to `[T, ...]`, one inner loop for all.

        The support loss is the *sum* of the per-task losses, so its gradient with respect to
        task t's copy of the parameters is exactly task t's gradient: the shared inner loop
        runs unchanged and equals the per-task loop (tested).
        """
        params = named_params(self.model) if params is None else params
        start = expand_params(params, tasks.num_tasks)

        def support_loss(p: Params) -> Tensor:
            out = self._batched_forward(p, tasks.support_x)
            return batched_loss(self.loss_kind, out, tasks.support_y).sum()

        sizes = self.step_sizes if step_sizes is None else step_sizes
        return self._inner_steps(start, support_loss, steps, sizes, first_order)

    # -- learner contract -------------------------------------------------------------------
    def meta_step(self, tasks: Episode) -> dict[str, float]:
        """Outer Adam step on the mean query loss after `adapt_steps` inner steps per task."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        n = tasks.num_tasks
        if self.cfg.task_batching == "vmap":
            *_, fast = self._adapt_batched(tasks, self.cfg.adapt_steps, self.cfg.first_order)
            out = self._batched_forward(fast, tasks.query_x)
            losses = batched_loss(self.loss_kind, out, tasks.query_y)
            losses.mean().backward()
            metric = batched_metric(self.loss_kind, out.detach(), tasks.query_y).mean()
            self.optimizer.step()
            return {"loss": losses.mean().item(), self.metric: metric.item()}
        loss_sum, metric_sum = 0.0, 0.0
        for t in range(n):
            fast = self._adapt_task(tasks, t, self.cfg.adapt_steps, self.cfg.first_order)
            out = forward(self.model, fast, tasks.query_x[t])
            loss = task_loss(self.loss_kind, out, tasks.query_y[t])
            (loss / n).backward()
            loss_sum += loss.item()
            metric_sum += task_metric(self.loss_kind, out.detach(), tasks.query_y[t]).item()
        self.optimizer.step()
        return {"loss": loss_sum / n, self.metric: metric_sum / n}

    def adapt(self, tasks: Episode, budget: int) -> list[Params]:
        """Adapted parameters of each task after `budget` first-order-free inner steps."""
        return [self._adapt_eval(tasks, t, budget)[-1] for t in range(tasks.num_tasks)]

    def _adapt_eval(self, tasks: Episode, t: int, budget: int) -> list[Params]:
        loss_fn = self._support_loss(tasks.support_x[t], tasks.support_y[t])
        with torch.enable_grad():
            start = {k: v.detach().requires_grad_() for k, v in named_params(self.model).items()}
            steps = self._inner_steps(start, loss_fn, budget, self._detached_step_sizes(), True)
            return [{k: v.detach().requires_grad_() for k, v in p.items()} for p in steps]

    def _detached_step_sizes(self) -> dict[str, Tensor] | float:
        if isinstance(self.step_sizes, dict):
            return {k: v.detach() for k, v in self.step_sizes.items()}
        return self.step_sizes

    def evaluate(self, adapted: list[Params], tasks: Episode) -> Tensor:
        with torch.no_grad():
            return torch.stack(
                [
                    task_metric(
                        self.loss_kind, forward(self.model, p, tasks.query_x[t]), tasks.query_y[t]
                    )
                    for t, p in enumerate(adapted)
                ]
            )

    def adaptation_curve(self, tasks: Episode, max_budget: int) -> Tensor:
        """Query metric after 0..max_budget inner steps, one adaptation pass per task."""
        self.model.train()  # batch statistics of the task itself, as during meta-training
        if self.cfg.task_batching == "vmap":
            with torch.enable_grad():
                start = {
                    k: v.detach().requires_grad_() for k, v in named_params(self.model).items()
                }
                rows = []
                for p in self._adapt_batched(
                    tasks, max_budget, True, start, self._detached_step_sizes()
                ):
                    with torch.no_grad():
                        out = self._batched_forward(p, tasks.query_x)
                        rows.append(batched_metric(self.loss_kind, out, tasks.query_y))
            return torch.stack(rows)
        cols = []
        for t in range(tasks.num_tasks):
            per_step = self._adapt_eval(tasks, t, max_budget)
            with torch.no_grad():
                cols.append(
                    torch.stack(
                        [
                            task_metric(
                                self.loss_kind,
                                forward(self.model, p, tasks.query_x[t]),
                                tasks.query_y[t],
                            )
                            for p in per_step
                        ]
                    )
                )
        return torch.stack(cols, dim=1)

    def predict_steps(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, steps: list[int]
    ) -> list[Tensor]:
        """Model outputs on `query_x` after each of `steps` inner steps on one support set
        (`[Q, ways]` logits, or `[Q, 1]` regression outputs)."""
        self.model.train()  # the support's own batch statistics, as in meta-training
        loss_fn = self._support_loss(support_x, support_y)
        with torch.enable_grad():
            start = {k: v.detach().requires_grad_() for k, v in named_params(self.model).items()}
            path = list(
                self._inner_steps(start, loss_fn, max(steps), self._detached_step_sizes(), True)
            )
            with torch.no_grad():
                return [forward(self.model, path[s], query_x) for s in steps]

    def predict(self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> Tensor:
        """Class probabilities `[Q, ways]` after `eval_adapt_steps` inner steps on the support.

        The head has as many outputs as the trained ways; a support of fewer classes adapts the
        whole head and reads the first `ways` outputs (labels are random per task in training,
        so no output stands for a particular class). More classes than outputs is refused.
        """
        head = int(self.model[-1].out_features)  # type: ignore[index]
        if self.loss_kind != "cross_entropy":
            raise UsageError("this MAML run is a regression model; metarl adapt classifies images")
        if ways > head:
            raise UsageError(
                f"this MAML model was trained {head}-way and cannot take {ways} classes; "
                f"give at most {head} class folders or train a {ways}-way model (task.ways={ways})"
            )
        (out,) = self.predict_steps(support_x, support_y, query_x, [self.cfg.eval_adapt_steps])
        return torch.softmax(out[:, :ways], -1)

    def bytes_per_task(self, probe: Episode) -> int:
        """Memory one task of a meta-batch needs (the up-front check of `metarl.resources`): its
        tensors, plus in `vmap` mode the autograd graph of its inner loop and query loss, which
        every task keeps until the one backward (measured on `probe`'s task with
        `saved_bytes`). The per-task loop frees each graph after its own backward."""
        from metarl.resources import saved_bytes, tensor_bytes

        if self.cfg.task_batching != "vmap":
            return tensor_bytes(probe)
        c = self.cfg

        def one_task() -> Tensor:
            fast = self._adapt_task(probe, 0, c.adapt_steps, c.first_order)
            return forward(self.model, fast, probe.query_x[0]).sum()

        return tensor_bytes(probe) + saved_bytes(one_task)

    def state_dict(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if isinstance(self.step_sizes, dict):
            state["step_sizes"] = {k: v.detach().clone() for k, v in self.step_sizes.items()}
        return state

    def load_model(self, state: dict[str, Any]) -> None:
        """Only the network (and learned step sizes) of a checkpoint's learner state."""
        self.model.load_state_dict(state["model"])
        if isinstance(self.step_sizes, dict):
            with torch.no_grad():
                for k, v in state["step_sizes"].items():
                    self.step_sizes[k].copy_(v)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if isinstance(self.step_sizes, dict):
            with torch.no_grad():
                for k, v in state["step_sizes"].items():
                    self.step_sizes[k].copy_(v)


def build_maml(cfg: MAMLConfig, distribution: Any, device: torch.device, seed: int) -> MAML:
    shape = tuple(distribution.input_shape)
    backbone = cfg.backbone if cfg.backbone != "auto" else ("conv4" if len(shape) == 3 else "mlp")
    if backbone == "conv4" and len(shape) != 3:
        raise UsageError(
            f"learner.backbone conv4 needs image tasks [C, H, W]; this task's inputs are {list(shape)}: use backbone mlp"
        )
    if cfg.adapt_steps < 0 or cfg.eval_adapt_steps < 0:
        raise UsageError("learner.adapt_steps and learner.eval_adapt_steps must be >= 0")
    if cfg.task_batching == "vmap" and backbone == "conv4":
        raise UsageError(
            "learner.task_batching vmap is exact only for models without batch norm "
            "(its second-order gradients through BatchNorm2d are wrong): use loop for conv4"
        )
    out_dim = distribution.ways if distribution.loss == "cross_entropy" else 1
    with seeded(seed, "model"):
        if backbone == "conv4":
            model = classifier(shape, out_dim, cfg.conv_channels)
        else:
            model = mlp(shape[0], out_dim, tuple(cfg.hidden_sizes or (40, 40)))
    return MAML(cfg, model, distribution.loss, device)
