"""The functional inner loop shared by every optimisation-based learner.

Adaptation maps parameters to parameters, `adapt(params, loss_fn) -> params`, through
`torch.func.functional_call`; the module itself is never mutated. The loss is the only
domain-specific piece: cross-entropy for classification, MSE for regression, a policy-gradient
surrogate for MAML-RL.

Second order: gradients are taken with `create_graph=True`, so the outer loss differentiates
through the inner updates. First order: inner gradients are detached, so the adapted
parameters depend on the initial ones only through the identity (FOMAML).
Step sizes are a scalar (MAML) or one tensor per parameter (Meta-SGD), and only the
parameters named in `adapt_keys` move (ANIL adapts the head alone).

The step rule is pluggable (`optimizer_adapt_iter`): SGD, Adam (Reptile's inner optimiser) or
a learned optimiser (`metarl.learned_optimizer.LSTMOptimizer`) behind one `InnerOptimizer`
protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]
StepSizes = float | Mapping[str, Tensor]


def named_params(module: nn.Module) -> Params:
    """The module's parameters as a dict (the tensors themselves, so gradients reach them)."""
    return dict(module.named_parameters())


def expand_params(params: Params, num_tasks: int) -> Params:
    """One parameter set -> one copy per task, `[T, ...]` (expanded views, so gradients of
    the copies sum back into `params`). With a loss that is the *sum* of per-task losses,
    `gradient_step` on the copies adapts every task at once, each by its own gradient."""
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}


def forward(module: nn.Module, params: Params, *args: Tensor) -> Tensor:
    """`module(*args)` evaluated with `params` in place of its own parameters."""
    return functional_call(module, params, args)


def per_task_forward(module: nn.Module, params: Params, x: Tensor) -> Tensor:
    """Per-task parameters `[T, ...]` applied to per-task inputs `[T, B, ...]`: `[T, B, ...]`
    (`torch.func.vmap` over tasks of `forward`; exact for modules without batch norm)."""
    return torch.func.vmap(lambda p, xt: forward(module, p, xt))(params, x)


def gradient_step(
    params: Params,
    loss: Tensor,
    step_sizes: StepSizes,
    first_order: bool = False,
    adapt_keys: Iterable[str] | None = None,
) -> Params:
    """One inner SGD step `theta' = theta - alpha * grad L(theta)` on the keys in `adapt_keys`.

    `step_sizes` is a float or a dict of tensors shaped like the parameters (Meta-SGD). With
    `first_order=False` the graph of the gradient is kept so a later loss on `theta'` has
    second-order meta-gradients.
    """
    keys = list(params) if adapt_keys is None else [k for k in params if k in set(adapt_keys)]
    needs_graph = not first_order and torch.is_grad_enabled()
    grads = torch.autograd.grad(
        loss, [params[k] for k in keys], create_graph=needs_graph, allow_unused=True
    )
    new = dict(params)
    for key, grad in zip(keys, grads, strict=True):
        if grad is None:
            continue
        if first_order:
            grad = grad.detach()
        alpha = step_sizes[key] if isinstance(step_sizes, Mapping) else step_sizes
        new[key] = params[key] - alpha * grad
    return new


def adapt_iter(
    params: Params,
    loss_fn: Callable[[Params], Tensor],
    steps: int,
    step_sizes: StepSizes,
    first_order: bool = False,
    adapt_keys: Iterable[str] | None = None,
) -> Iterator[Params]:
    """Yield the parameters after 0, 1, ..., `steps` inner steps on `loss_fn`."""
    yield params
    for _ in range(steps):
        params = gradient_step(params, loss_fn(params), step_sizes, first_order, adapt_keys)
        yield params


def adapt(
    params: Params,
    loss_fn: Callable[[Params], Tensor],
    steps: int,
    step_sizes: StepSizes,
    first_order: bool = False,
    adapt_keys: Iterable[str] | None = None,
) -> Params:
    """The parameters after `steps` inner steps of gradient descent on `loss_fn`."""
    for _ in range(steps):
        params = gradient_step(params, loss_fn(params), step_sizes, first_order, adapt_keys)
    return params


# -- pluggable inner optimisers ---------------------------------------------------------------
# An inner optimiser is a pair of pure functions on dicts of tensors, so the inner loop stays
# functional: `init(params) -> state` and `update(params, grads, state) -> (params, state)`.
# Plain SGD (`gradient_step`) needs no state; Adam (Reptile's inner optimiser) and the learned
# LSTM optimiser (`metarl.learned_optimizer`) carry theirs through the loop.


class InnerOptimizer(Protocol):
    def init(self, params: Params) -> Any: ...

    def update(self, params: Params, grads: Params, state: Any) -> tuple[Params, Any]: ...


@dataclass(frozen=True)
class SGD:
    """`theta' = theta - step_sizes * g` (the update of `gradient_step`)."""

    step_sizes: StepSizes

    def init(self, params: Params) -> None:
        return None

    def update(self, params: Params, grads: Params, state: None) -> tuple[Params, None]:
        new = dict(params)
        for k, g in grads.items():
            sizes = self.step_sizes
            alpha = sizes[k] if isinstance(sizes, Mapping) else sizes
            new[k] = params[k] - alpha * g
        return new, None


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with bias correction; Reptile uses beta1 = 0 (Nichol et al.).

    State: `(step, first moments, second moments)`, one tensor per adapted parameter.
    """

    lr: float
    betas: tuple[float, float] = (0.0, 0.999)
    eps: float = 1e-8

    def init(self, params: Params) -> tuple[int, Params, Params]:
        zeros = {k: torch.zeros_like(v) for k, v in params.items()}
        return 0, zeros, dict(zeros)

    def update(
        self, params: Params, grads: Params, state: tuple[int, Params, Params]
    ) -> tuple[Params, tuple[int, Params, Params]]:
        step, m, v = state
        step, m, v = step + 1, dict(m), dict(v)
        b1, b2 = self.betas
        new = dict(params)
        for k, g in grads.items():
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            m_hat = m[k] / (1 - b1**step)
            v_hat = v[k] / (1 - b2**step)
            new[k] = params[k] - self.lr * m_hat / (v_hat.sqrt() + self.eps)
        return new, (step, m, v)


def optimizer_adapt_iter(
    params: Params,
    loss_fn: Callable[[Params], Tensor],
    steps: int,
    optimizer: InnerOptimizer,
    first_order: bool = False,
    adapt_keys: Iterable[str] | None = None,
    carry: dict[str, Any] | None = None,
) -> Iterator[Params]:
    """`adapt_iter` with any inner optimiser: the parameters after 0, 1, ..., `steps` updates.

    With `SGD(step_sizes)` it gives exactly `adapt_iter(..., step_sizes, ...)` (tested).
    `loss_fn` is called once per step, so a closure may hand out a new mini-batch each time.
    `carry`: the optimiser's state starts from `carry["state"]` when it is there (else from
    `optimizer.init`) and is written back after every step (Reptile's carried inner state).
    """
    keys = list(params) if adapt_keys is None else [k for k in params if k in set(adapt_keys)]
    if carry is not None and carry.get("state") is not None:
        state = carry["state"]
    else:
        state = optimizer.init({k: params[k] for k in keys})
    yield params
    for _ in range(steps):
        needs_graph = not first_order and torch.is_grad_enabled()
        loss = loss_fn(params)
        grads = torch.autograd.grad(
            loss, [params[k] for k in keys], create_graph=needs_graph, allow_unused=True
        )
        named = {
            k: (torch.zeros_like(params[k]) if g is None else g.detach() if first_order else g)
            for k, g in zip(keys, grads, strict=True)
        }
        moved, state = optimizer.update({k: params[k] for k in keys}, named, state)
        if carry is not None:
            carry["state"] = state
        params = {**params, **moved}
        yield params
