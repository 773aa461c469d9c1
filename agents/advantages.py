"""Advantage estimation: GAE, discounted returns, normalisation, the linear feature baseline,
and a running normaliser of value targets.

Layout: trajectories are `[tasks, episodes, horizon, ...]` (`[T, E, H]` for rewards), so the
time axis of rewards / values / dones is `dim=-1` by default; pass `dim` for other layouts
(e.g. RL² trials `[T, steps]` or time-major `[H, B]` with `dim=0`).

Reset contract: `dones[t] = 1` means the episode ended with the transition at step `t`, so
nothing after `t` is bootstrapped into step `t` (no credit crosses an episode boundary). The
value after the last step is `last_value` (zeros if omitted: the horizon ends the episode).
Truncated episodes that should bootstrap are the caller's job: fold `gamma * V(s_last)` into
the last reward, or pass it as `last_value` with `dones[-1] = 0`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from metarl.errors import NonFiniteError, UsageError


def _check(gamma: float, lam: float = 1.0) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise UsageError(f"discount gamma must be in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise UsageError(f"GAE lambda must be in [0, 1], got {lam}")


def gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    gamma: float = 0.99,
    lam: float = 0.95,
    last_value: Tensor | None = None,
    dim: int = -1,
) -> Tensor:
    """Generalised advantage estimates (Schulman et al. 2016), same shape as `rewards`.

    rewards, values, dones: same shape, time along `dim`. last_value: the shape of `rewards`
    without `dim` (V of the state after the last step). With `d_t = dones[t]`:
        delta_t = r_t + gamma * (1 - d_t) * V_{t+1} - V_t
        A_t     = delta_t + gamma * lam * (1 - d_t) * A_{t+1}
    lam = 1 gives discounted return - value; lam = 0 gives the TD error.
    """
    _check(gamma, lam)
    if rewards.shape != values.shape or rewards.shape != dones.shape:
        raise UsageError(
            f"rewards, values and dones must share a shape, got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(dones.shape)}"
        )
    r, v, d = (x.movedim(dim, 0) for x in (rewards, values, dones))
    not_done = 1.0 - d.to(r.dtype)
    next_v = torch.zeros_like(v[0]) if last_value is None else last_value.to(v.dtype)
    adv = torch.zeros_like(v[0])
    out = []
    for t in range(r.shape[0] - 1, -1, -1):
        delta = r[t] + gamma * not_done[t] * next_v - v[t]
        adv = delta + gamma * lam * not_done[t] * adv
        out.append(adv)
        next_v = v[t]
    return torch.stack(out[::-1]).movedim(0, dim)


def discounted_returns(
    rewards: Tensor,
    dones: Tensor,
    gamma: float = 0.99,
    last_value: Tensor | None = None,
    dim: int = -1,
) -> Tensor:
    """`G_t = r_t + gamma * (1 - d_t) * G_{t+1}`, with `G_T = last_value` (or 0)."""
    _check(gamma)
    if rewards.shape != dones.shape:
        raise UsageError(
            f"rewards and dones must share a shape, got {tuple(rewards.shape)} "
            f"and {tuple(dones.shape)}"
        )
    r, d = rewards.movedim(dim, 0), dones.movedim(dim, 0)
    not_done = 1.0 - d.to(r.dtype)
    g = torch.zeros_like(r[0]) if last_value is None else last_value.to(r.dtype)
    out = []
    for t in range(r.shape[0] - 1, -1, -1):
        g = r[t] + gamma * not_done[t] * g
        out.append(g)
    return torch.stack(out[::-1]).movedim(0, dim)


def normalize(
    x: Tensor,
    mask: Tensor | None = None,
    dims: int | tuple[int, ...] | None = None,
    eps: float = 1e-8,
) -> Tensor:
    """`(x - mean) / (std + eps)` over `dims` (all if None), population std.

    mask (same shape, 1 = valid step) excludes padding from the statistics; masked entries
    come back as 0. Per-task normalisation of `[T, E, H]` advantages: `dims=(1, 2)`.
    """
    if mask is None:
        mean = x.mean(dim=dims, keepdim=True)
        std = (x - mean).pow(2).mean(dim=dims, keepdim=True).sqrt()
        return (x - mean) / (std + eps)
    m = mask.to(x.dtype)
    count = m.sum(dim=dims, keepdim=True).clamp(min=1.0)
    mean = (x * m).sum(dim=dims, keepdim=True) / count
    std = ((x - mean).pow(2) * m).sum(dim=dims, keepdim=True).div(count).sqrt()
    return (x - mean) / (std + eps) * m


def baseline_features(obs: Tensor) -> Tensor:
    """Features of the MAML-RL linear baseline: `[..., H, O] -> [..., H, 2 * O + 4]`.

    `[o, o^2, t, t^2, t^3, 1]` with `o` the observation clipped to [-10, 10] and `t` the
    step index inside the episode (axis -2) divided by 100.
    """
    o = obs.clamp(-10.0, 10.0)
    steps = obs.shape[-2]
    t = torch.arange(steps, device=obs.device, dtype=obs.dtype).div(100.0)
    t = t.view(steps, 1).expand(*obs.shape[:-1], 1)
    return torch.cat([o, o * o, t, t * t, t**3, torch.ones_like(t)], dim=-1)


def fit_linear_baseline(
    obs: Tensor,
    returns: Tensor,
    mask: Tensor | None = None,
    reg_coeff: float = 1e-5,
    max_tries: int = 5,
) -> Tensor:
    """Per-task ridge regression of returns on `baseline_features`; weights `[T, F]`.

    obs `[T, ..., H, O]`, returns `[T, ..., H]`, mask `[T, ..., H]` (1 = a real step; padding
    after an episode's end is left out of the fit). Solves
    `(X^T X + reg I) w = X^T y` in float64; a task whose solution is not finite retries with
    the ridge multiplied by 10 (from 1e-8 if it was 0), up to `max_tries` times (as rllab's
    baseline does).
    """
    x = baseline_features(obs).flatten(1, -2).double()  # [T, N, F]
    y = returns.flatten(1).double()  # [T, N]
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise NonFiniteError("linear baseline: observations or returns contain NaN or inf")
    if mask is not None:
        m = mask.flatten(1).double()
        x, y = x * m.unsqueeze(-1), y * m
    xtx = x.transpose(1, 2) @ x
    xty = (x.transpose(1, 2) @ y.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype, device=xtx.device)
    weights = torch.full_like(xty, float("nan"))
    reg = reg_coeff
    for _ in range(max_tries):
        todo = ~torch.isfinite(weights).all(-1)
        if not todo.any():
            break
        # Cholesky: the ridge system is symmetric positive definite; `cholesky_ex` reports a
        # failed factorisation in `info` instead of raising (LU-based solvers can raise here).
        chol, info = torch.linalg.cholesky_ex(xtx[todo] + reg * eye)
        w = torch.cholesky_solve(xty[todo].unsqueeze(-1), chol).squeeze(-1)
        weights[todo] = torch.where((info == 0).unsqueeze(-1), w, float("nan"))
        reg = reg * 10.0 if reg > 0 else 1e-8
    if not torch.isfinite(weights).all():
        raise NonFiniteError("linear baseline fit is not finite even with the largest ridge")
    return weights.to(obs.dtype)


def linear_feature_baseline(
    obs: Tensor, returns: Tensor, mask: Tensor | None = None, reg_coeff: float = 1e-5
) -> Tensor:
    """Values `[T, ..., H]` of the linear baseline fitted per task on the same trajectories."""
    w = fit_linear_baseline(obs, returns, mask, reg_coeff)
    feats = baseline_features(obs)
    values = torch.einsum("t...f,tf->t...", feats, w)
    return values if mask is None else values * mask.to(values.dtype)


class ValueNormalizer:
    """Running mean and standard deviation of value targets, so a value head can learn
    standardised targets whatever the scale of the rewards (as PopArt and MAPPO's value
    normalisation; here without PopArt's output rescaling).

    `update(x, mask)` folds one batch into exponential moving averages of the mean and of the
    mean square over valid steps (weight `beta` on the past, debiased by `1 - beta**updates`,
    so the first update gives that batch's masked mean and population std exactly).
    `normalize(x) = (x - mean) / std`; `denormalize` is its inverse. Statistics are Python
    floats in float64: deterministic, device-free, and checkpointed through `state_dict`.
    """

    def __init__(self, beta: float = 0.95, eps: float = 1e-6) -> None:
        if not 0.0 <= beta < 1.0:
            raise UsageError(f"ValueNormalizer beta must be in [0, 1), got {beta}")
        self.beta, self.eps = beta, eps
        self.avg, self.avg_sq, self.updates = 0.0, 0.0, 0

    @property
    def mean(self) -> float:
        return self.avg / (1.0 - self.beta**self.updates) if self.updates else 0.0

    @property
    def std(self) -> float:
        if not self.updates:
            return 1.0
        var = self.avg_sq / (1.0 - self.beta**self.updates) - self.mean**2
        return max(var, 0.0) ** 0.5 + self.eps

    def update(self, x: Tensor, mask: Tensor | None = None) -> None:
        x = x.detach().double()
        m = torch.ones_like(x) if mask is None else mask.detach().to(x.dtype)
        count = float(m.sum())
        if count == 0:
            return
        self.update_moments(count, float((x * m).sum()), float((x.pow(2) * m).sum()))

    def update_moments(self, count: float, total: float, total_sq: float) -> None:
        """Fold in a batch given by its valid count, sum and sum of squares (a batch split
        across ranks: `agents.sharding.moments`); `update` is this on one tensor."""
        if count == 0:
            return
        mean, mean_sq = total / count, total_sq / count
        if not (math.isfinite(mean) and math.isfinite(mean_sq)):
            raise NonFiniteError("value targets are not finite")
        self.avg = self.beta * self.avg + (1.0 - self.beta) * mean
        self.avg_sq = self.beta * self.avg_sq + (1.0 - self.beta) * mean_sq
        self.updates += 1

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    def state_dict(self) -> dict[str, float]:
        return {"avg": self.avg, "avg_sq": self.avg_sq, "updates": self.updates}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.avg, self.avg_sq = float(state["avg"]), float(state["avg_sq"])
        self.updates = int(state["updates"])
