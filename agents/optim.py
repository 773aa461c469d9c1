"""Policy-optimisation pieces as pure functions: surrogates, PPO / ProMP losses, and TRPO.

TRPO works on a dict of parameters, flattened internally, and only ever calls
`surrogate_fn(params)` and `kl_fn(params)`; so the MAML-TRPO outer step passes functions that
*adapt first* (through the shared functional inner loop) and then evaluate the adapted policy,
and the Fisher-vector products differentiate through the adaptation.

Conventions: a *surrogate* is maximised (TRPO's `L(theta)`); a *loss* is minimised. Loss
functions return named terms; `"loss"` is the differentiable total, the others are for
logging (detached where they are diagnostics).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal

from metarl.errors import NonFiniteError, UsageError

Params = dict[str, Tensor]


# ---------------------------------------------------------------------------------------------
# small helpers


Dims = tuple[int, ...] | None


def masked_mean(x: Tensor, mask: Tensor | None = None, dims: Dims = None) -> Tensor:
    """Mean of `x` over valid entries (`mask` 1); the plain mean without a mask.

    `dims=None` reduces everything to a scalar; `dims=(1, 2)` keeps the leading axis: a
    per-task mean `[T, E, H] -> [T]` over each task's own valid steps (MAML-RL's reduction).
    """
    if mask is None:
        return x.mean() if dims is None else x.mean(dims)
    m = mask.to(x.dtype)
    if dims is None:
        return (x * m).sum() / m.sum().clamp(min=1.0)
    return (x * m).sum(dims) / m.sum(dims).clamp(min=1.0)


def importance_ratio(log_prob: Tensor, old_log_prob: Tensor, mask: Tensor | None = None) -> Tensor:
    """`pi / pi_old = exp(logp - logp_old)`, exactly 1 where `mask` is 0 (padding), so an
    unmasked exp cannot overflow there and poison a masked mean with `inf * 0`."""
    if mask is None:
        return torch.exp(log_prob - old_log_prob)
    return torch.exp(torch.where(mask > 0, log_prob - old_log_prob, 0.0))


def detach_distribution(dist: Distribution) -> Distribution:
    """A copy of a categorical or (independent) Gaussian policy output with no gradient."""
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits.detach())
    if isinstance(dist, Independent):
        return Independent(detach_distribution(dist.base_dist), dist.reinterpreted_batch_ndims)
    if isinstance(dist, Normal):
        return Normal(dist.loc.detach(), dist.scale.detach())
    raise UsageError(f"cannot detach a {type(dist).__name__}; expected Categorical or Normal")


def mean_kl(old: Distribution, new: Distribution, mask: Tensor | None = None) -> Tensor:
    """Mean `KL(old || new)` over the batch (old is detached: the constraint's reference)."""
    kl = torch.distributions.kl_divergence(detach_distribution(old), new)
    return masked_mean(kl, mask)


def flatten(tensors: Iterable[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vec: Tensor, like: Params) -> Params:
    """Split a flat vector into a dict shaped like `like` (same key order)."""
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vec[i : i + v.numel()].view_as(v)
        i += v.numel()
    return out


def _grad(out: Tensor, params: Params, **kwargs) -> Tensor:
    """Flat gradient of a scalar w.r.t. params; parameters it does not touch get zeros."""
    grads = torch.autograd.grad(out, list(params.values()), allow_unused=True, **kwargs)
    return flatten(
        torch.zeros_like(p) if g is None else g for g, p in zip(grads, params.values(), strict=True)
    )


# ---------------------------------------------------------------------------------------------
# surrogates and losses


def reinforce_loss(
    log_prob: Tensor, advantages: Tensor, mask: Tensor | None = None, dims: Dims = None
) -> Tensor:
    """Vanilla policy-gradient loss `-mean(log pi(a|s) * A)` (MAML-RL's inner loss);
    `dims` as in `masked_mean` (`(1, 2)`: one loss per task `[T]`)."""
    return -masked_mean(log_prob * advantages.detach(), mask, dims)


def lvc_loss(
    log_prob: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    dims: Dims = None,
    old_log_prob: Tensor | None = None,
) -> Tensor:
    """ProMP's low-variance-curvature inner loss `-mean(pi / sg(pi) * A)`.

    Its gradient equals `reinforce_loss`'s (its value is `-mean(A)`); its Hessian adds the
    score outer-product term `-mean(A grad(logp) grad(logp)^T)` that the plain surrogate
    lacks: a low-variance (if biased) estimate of the curvature the meta-gradient needs,
    unlike DiCE's unbiased but high-variance one (Rothfuss et al. 2019). With
    `old_log_prob` (the sampling policy's) the ratio is `pi / pi_sample`: the same at the
    sampling parameters, and still importance-weighted once ProMP's steps move them.
    """
    if old_log_prob is None:
        ratio = torch.exp(log_prob - log_prob.detach())
    else:
        ratio = importance_ratio(log_prob, old_log_prob.detach(), mask)
    return -masked_mean(ratio * advantages.detach(), mask, dims)


def pg_surrogate(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    dims: Dims = None,
) -> Tensor:
    """TRPO's surrogate `mean(pi / pi_old * A)`, to *maximise*; equals `mean(A)` at pi_old."""
    ratio = importance_ratio(log_prob, old_log_prob.detach(), mask)
    return masked_mean(ratio * advantages.detach(), mask, dims)


def _clip_terms(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, clip_eps: float, mask: Tensor | None
) -> dict[str, Tensor]:
    if not 0.0 < clip_eps < 1.0:
        raise UsageError(f"clip epsilon must be in (0, 1), got {clip_eps}")
    log_ratio = log_prob - old_log_prob.detach()
    ratio = log_ratio.exp()
    adv = advantages.detach()
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    policy_loss = -masked_mean(torch.min(ratio * adv, clipped * adv), mask)
    with torch.no_grad():
        clip_fraction = masked_mean(((ratio - 1.0).abs() > clip_eps).to(ratio.dtype), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)  # k3 estimator of KL(old||new)
    return {"policy_loss": policy_loss, "clip_fraction": clip_fraction, "approx_kl": approx_kl}


PPO_TERMS = ("policy_loss", "clip_fraction", "approx_kl", "value_loss", "entropy", "loss")
"""The terms `ppo_loss` returns with a value loss and an entropy."""


def ppo_loss(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    clip_eps: float = 0.2,
    mask: Tensor | None = None,
    *,
    values: Tensor | None = None,
    returns: Tensor | None = None,
    entropy: Tensor | None = None,
    value_coef: float = 0.5,
    entropy_coef: float = 0.0,
) -> dict[str, Tensor]:
    """PPO's clipped surrogate (Schulman et al. 2017), plus optional value and entropy terms.

    All tensors share one shape (e.g. `[T, steps]`); mask 1 = valid step.
    `policy_loss = -mean(min(r A, clip(r, 1-eps, 1+eps) A))` with `r = exp(logp - logp_old)`;
    `value_loss = mean((values - returns)^2)`;
    `loss = policy_loss + value_coef * value_loss - entropy_coef * entropy`.
    """
    terms = _clip_terms(log_prob, old_log_prob, advantages, clip_eps, mask)
    loss = terms["policy_loss"]
    if (values is None) != (returns is None):
        raise UsageError("ppo_loss needs both values and returns for a value loss, or neither")
    if values is not None and returns is not None:
        terms["value_loss"] = masked_mean((values - returns.detach()).pow(2), mask)
        loss = loss + value_coef * terms["value_loss"]
    if entropy is not None:
        terms["entropy"] = masked_mean(entropy, mask)
        loss = loss - entropy_coef * terms["entropy"]
    terms["loss"] = loss
    return terms


def promp_loss(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    inner_kls: Sequence[Tensor],
    kl_coeffs: Sequence[float],
    clip_eps: float = 0.2,
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """ProMP's outer objective (Rothfuss et al. 2019), as a loss to minimise.

    log_prob / old_log_prob / advantages: query data under the *adapted* policy. inner_kls[i]:
    scalar mean KL between the pre-update policy of inner step i at the sampling parameters
    and at the current parameters (a trust region on the inner step). kl_coeffs[i] = eta_i.
    `loss = clip_loss + sum_i eta_i * inner_kls[i]`.
    """
    if len(inner_kls) != len(kl_coeffs):
        raise UsageError(
            f"promp_loss needs one KL coefficient per inner step, got "
            f"{len(kl_coeffs)} coefficients for {len(inner_kls)} KL terms"
        )
    terms = _clip_terms(log_prob, old_log_prob, advantages, clip_eps, mask)
    terms["clip_loss"] = terms.pop("policy_loss")
    if inner_kls:
        kls = torch.stack(list(inner_kls))
        eta = torch.as_tensor(list(kl_coeffs), dtype=kls.dtype, device=kls.device)
        terms["kl_penalty"] = (eta * kls).sum()
        terms["inner_kl"] = kls.detach()
        terms["loss"] = terms["clip_loss"] + terms["kl_penalty"]
    else:
        terms["loss"] = terms["clip_loss"]
    return terms


def adapt_kl_coeff(coeff: float, kl: float, target: float) -> float:
    """ProMP / adaptive-PPO rule: halve the penalty below target/1.5, double above 1.5x."""
    if kl < target / 1.5:
        return coeff / 2.0
    if kl > target * 1.5:
        return coeff * 2.0
    return coeff


# ---------------------------------------------------------------------------------------------
# TRPO


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Approximately solve `A x = b` for symmetric positive-definite `A` given `v -> A v`.

    b `[n]`; returns x `[n]`. Exact in at most n iterations (in exact arithmetic); stops once
    the squared residual norm is below `residual_tol`.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= residual_tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def fisher_vector_product(
    kl_fn: Callable[[Params], Tensor],
    params: Params,
    damping: float = 1e-5,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> Callable[[Tensor], Tensor]:
    """`v -> (H_KL + damping I) v`, the Hessian of `kl_fn` at `params`: the Fisher matrix.

    `params` must require grad. The KL's gradient graph is built once; each product is one
    more backward pass through it (Pearlmutter's trick). `reduce` (e.g. a sum over ranks,
    each `kl_fn` being one rank's share of the KL) is applied to each Hessian product
    before the damping is added.
    """
    kl = kl_fn(params)
    grad_kl = _grad(kl, params, create_graph=True)

    def fvp(v: Tensor) -> Tensor:
        hv = _grad(grad_kl @ v, params, retain_graph=True)
        return (hv if reduce is None else reduce(hv)) + damping * v

    return fvp


@dataclass(frozen=True)
class TRPOResult:
    """params: the new (detached) parameters, the old ones when no step was accepted."""

    params: Params
    accepted: bool
    surrogate_before: float
    surrogate_after: float
    kl: float
    step_fraction: float
    expected_improvement: float


def trpo_step(
    params: Params,
    surrogate_fn: Callable[[Params], Tensor],
    kl_fn: Callable[[Params], Tensor],
    max_kl: float = 1e-2,
    damping: float = 1e-5,
    cg_iters: int = 10,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    accept_ratio: float = 0.0,
    fisher_kl_fn: Callable[[Params], Tensor] | None = None,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> TRPOResult:
    """One TRPO update (Schulman et al. 2015): maximise `surrogate_fn` s.t. `kl_fn <= max_kl`.

    params: name -> tensor (e.g. `dict(policy.named_parameters())`); never modified.
    surrogate_fn(p): scalar to maximise. kl_fn(p): scalar mean KL of the policy at p from the
    policy at `params` (0 at p = params). Direction `x = F^-1 g` by conjugate gradient on
    Fisher-vector products, scaled so `0.5 x^T F x = max_kl`; then backtracking by
    `backtrack_ratio` until the KL bound holds and the surrogate improved (by at least
    `accept_ratio` of the first-order prediction). `fisher_kl_fn`, if given, replaces `kl_fn`
    in the Fisher-vector products only (a cheaper metric with the same minimum at `params`);
    the line search always checks `kl_fn`.

    `reduce`, for a batch split across processes: `surrogate_fn` and `kl_fn` return this
    process's share (e.g. its tasks' mean times `local / global` tasks) and `reduce(t)`
    sums a tensor over the processes (in place). It is applied to the surrogate, its
    gradient, every Fisher-vector product and the line search's surrogates and KLs, so every
    process computes the same step: the one-process step.
    """
    red = (lambda t: t) if reduce is None else reduce
    if max_kl <= 0:
        raise UsageError(f"max_kl must be > 0, got {max_kl}")
    if not 0.0 < backtrack_ratio < 1.0:
        raise UsageError(f"backtrack_ratio must be in (0, 1), got {backtrack_ratio}")
    old = {k: v.detach() for k, v in params.items()}

    def leaf(flat: Tensor) -> Params:
        return {k: v.detach().requires_grad_(True) for k, v in unflatten(flat, old).items()}

    theta = flatten(old.values())
    p = leaf(theta)
    surr = surrogate_fn(p)
    g = red(_grad(surr, p))
    surr = red(surr.detach().clone())
    if not torch.isfinite(surr):
        raise NonFiniteError(f"TRPO surrogate is not finite: {surr.item()}")
    if not torch.isfinite(g).all():
        raise NonFiniteError("TRPO surrogate gradient is not finite")
    fvp = fisher_vector_product(fisher_kl_fn or kl_fn, leaf(theta), damping, reduce)
    x = conjugate_gradient(fvp, g, cg_iters)
    xfx = x @ fvp(x)
    before = surr.item()
    if not torch.isfinite(xfx) or xfx <= 0:
        return TRPOResult(old, False, before, before, 0.0, 0.0, 0.0)
    full_step = x * torch.sqrt(2.0 * max_kl / xfx)
    expected = (g @ full_step).item()
    for i in range(max_backtracks):
        frac = backtrack_ratio**i
        cand = leaf(theta + frac * full_step)
        checked = torch.stack([surrogate_fn(cand).detach(), kl_fn(cand).detach()])
        new_surr, kl = (float(v) for v in red(checked))
        improve = new_surr - before
        if (
            math.isfinite(new_surr)
            and math.isfinite(kl)
            and kl <= max_kl
            and improve > 0
            and improve >= accept_ratio * frac * expected
        ):
            new = {k: v.detach() for k, v in cand.items()}
            return TRPOResult(new, True, before, new_surr, kl, frac, frac * expected)
    return TRPOResult(old, False, before, before, 0.0, 0.0, expected)
