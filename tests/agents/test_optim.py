import math

import pytest
import torch
from torch.func import functional_call

from agents.optim import (
    adapt_kl_coeff,
    conjugate_gradient,
    fisher_vector_product,
    flatten,
    lvc_loss,
    mean_kl,
    pg_surrogate,
    ppo_loss,
    promp_loss,
    reinforce_loss,
    trpo_step,
    unflatten,
)
from agents.policies import CategoricalMLPPolicy
from metarl.errors import NonFiniteError, UsageError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_conjugate_gradient_solves_spd_system():
    g = _gen()
    m = torch.randn(20, 20, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=200, residual_tol=1e-20)
    torch.testing.assert_close(a @ x, b, atol=1e-8, rtol=0)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), atol=1e-6, rtol=1e-6)


def _tiny_policy():
    torch.manual_seed(0)  # module init only
    policy = CategoricalMLPPolicy(2, 3, hidden_sizes=(4,)).double()
    obs = torch.randn(6, 2, generator=_gen(1), dtype=torch.float64)
    return policy, obs


def test_fisher_vector_product_equals_kl_hessian_and_fisher():
    policy, obs = _tiny_policy()
    params = {k: v.detach() for k, v in policy.named_parameters()}
    old = policy(obs)

    def kl_fn(p):
        return mean_kl(old, functional_call(policy, p, (obs,)))

    theta = flatten(params.values())
    hessian = torch.autograd.functional.hessian(lambda t: kl_fn(unflatten(t, params)), theta)
    leaf = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    fvp = fisher_vector_product(kl_fn, leaf, damping=0.0)
    v = torch.randn(theta.numel(), generator=_gen(2), dtype=torch.float64)
    torch.testing.assert_close(fvp(v), hessian @ v)
    torch.testing.assert_close(
        fisher_vector_product(kl_fn, leaf, damping=0.3)(v), hessian @ v + 0.3 * v
    )
    # at the reference parameters the KL Hessian is the Fisher information
    # F = mean_s J_s^T (diag(p_s) - p_s p_s^T) J_s, with J_s the Jacobian of the logits
    jac = torch.autograd.functional.jacobian(
        lambda t: functional_call(policy, unflatten(t, params), (obs,)).logits, theta
    )
    probs = old.probs.detach()
    cov = torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)
    fisher = torch.einsum("sai,sab,sbj->ij", jac, cov, jac) / obs.shape[0]
    torch.testing.assert_close(hessian, fisher)


@pytest.mark.parametrize("max_kl", [1e-2, 5e-2])
def test_trpo_step_respects_kl_and_improves(max_kl):
    policy, obs = _tiny_policy()
    params = {k: v.detach() for k, v in policy.named_parameters()}
    old = policy(obs)
    actions = torch.randint(0, 3, (4, 6), generator=_gen(3))
    adv = torch.randn(4, 6, generator=_gen(4), dtype=torch.float64)
    old_lp = old.log_prob(actions).detach()

    def surrogate(p):
        return pg_surrogate(functional_call(policy, p, (obs,)).log_prob(actions), old_lp, adv)

    def kl_fn(p):
        return mean_kl(old, functional_call(policy, p, (obs,)))

    result = trpo_step(params, surrogate, kl_fn, max_kl=max_kl, cg_iters=20)
    assert result.accepted
    assert result.kl <= max_kl
    assert result.surrogate_after > result.surrogate_before
    assert math.isclose(result.surrogate_after, surrogate(result.params).item(), rel_tol=1e-9)
    # the full step's quadratic model sits on the boundary, so the KL is of the bound's order
    assert result.kl > 0.2 * max_kl
    # inputs untouched
    for k, v in policy.named_parameters():
        assert torch.equal(v.detach(), params[k])


def test_trpo_with_exact_expectation_toy():
    """Softmax over 4 arms, surrogate E_pi[A]: the step must move mass towards the best arm."""
    adv = torch.tensor([1.0, 0.0, -1.0, 0.5], dtype=torch.float64)
    old_logits = torch.zeros(4, dtype=torch.float64)
    old = torch.distributions.Categorical(logits=old_logits)

    def surrogate(p):
        return (torch.softmax(p["logits"], -1) * adv).sum()

    def kl_fn(p):
        return mean_kl(old, torch.distributions.Categorical(logits=p["logits"]))

    result = trpo_step({"logits": old_logits}, surrogate, kl_fn, max_kl=0.01)
    assert result.accepted and result.kl <= 0.01 and result.step_fraction == 1.0
    assert math.isclose(result.kl, 0.01, rel_tol=0.2)  # the quadratic model is close here
    assert torch.softmax(result.params["logits"], -1).argmax() == 0


def test_trpo_rejects_non_finite_and_bad_input():
    p = {"w": torch.zeros(2)}
    with pytest.raises(NonFiniteError):
        trpo_step(p, lambda q: q["w"].sum() * float("nan"), lambda q: q["w"].pow(2).sum())
    with pytest.raises(UsageError):
        trpo_step(p, lambda q: q["w"].sum(), lambda q: q["w"].pow(2).sum(), max_kl=0.0)


def test_ppo_loss_equals_hand_formula_inside_and_outside_clip():
    ratio = torch.tensor([0.5, 0.9, 1.1, 1.5, 0.5, 1.5], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    old_lp = torch.full((6,), -1.0, dtype=torch.float64)
    lp = (old_lp + ratio.log()).requires_grad_(True)
    terms = ppo_loss(lp, old_lp, adv, clip_eps=0.2)
    # per element min(r A, clip(r) A): 0.5 (clip not binding), 0.9, -1.1, 1.2 (clipped), -0.8
    # (clipped: min(-0.5, -0.8)), -1.5 (not clipped: min(-1.5, -1.2))
    expected = -torch.tensor([0.5, 0.9, -1.1, 1.2, -0.8, -1.5], dtype=torch.float64).mean()
    torch.testing.assert_close(terms["policy_loss"], expected)
    torch.testing.assert_close(terms["loss"], expected)
    torch.testing.assert_close(terms["clip_fraction"], torch.tensor(4 / 6, dtype=torch.float64))
    # clipped elements carry no gradient; unclipped ones carry -r A / n
    (grad,) = torch.autograd.grad(terms["loss"], lp)
    expected_grad = -(ratio * adv) / 6
    expected_grad[[3, 4]] = 0.0
    torch.testing.assert_close(grad, expected_grad)
    # value and entropy terms
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64)
    returns = values + 1.0
    ent = torch.full((6,), 0.7, dtype=torch.float64)
    full = ppo_loss(
        lp,
        old_lp,
        adv,
        0.2,
        values=values,
        returns=returns,
        entropy=ent,
        value_coef=0.5,
        entropy_coef=0.01,
    )
    torch.testing.assert_close(full["value_loss"], torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(full["loss"], expected + 0.5 - 0.007)
    with pytest.raises(UsageError):
        ppo_loss(lp, old_lp, adv, clip_eps=1.5)
    with pytest.raises(UsageError):
        ppo_loss(lp, old_lp, adv, values=values)


def test_promp_loss_terms_and_kl_coeff_rule():
    lp = torch.tensor([-1.0, -2.0, -0.5])
    adv = torch.tensor([1.0, -1.0, 2.0])
    kls = [torch.tensor(0.02), torch.tensor(0.001)]
    terms = promp_loss(lp, lp, adv, kls, [0.5, 2.0])
    clip = ppo_loss(lp, lp, adv)["policy_loss"]
    torch.testing.assert_close(terms["clip_loss"], clip)
    torch.testing.assert_close(terms["loss"], clip + 0.5 * 0.02 + 2.0 * 0.001)
    with pytest.raises(UsageError):
        promp_loss(lp, lp, adv, kls, [1.0])
    assert adapt_kl_coeff(1.0, 0.001, 0.01) == 0.5
    assert adapt_kl_coeff(1.0, 0.1, 0.01) == 2.0
    assert adapt_kl_coeff(1.0, 0.01, 0.01) == 1.0


def test_lvc_matches_reinforce_gradient_but_not_curvature():
    logits = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([0, 2, 1, 2])
    adv = torch.tensor([1.0, -0.5, 2.0, 0.3], dtype=torch.float64)

    def lp(z):
        return torch.distributions.Categorical(logits=z).log_prob(actions)

    a, b = reinforce_loss(lp(logits), adv), lvc_loss(lp(logits), adv)
    torch.testing.assert_close(b, -adv.mean())
    ga = torch.autograd.grad(a, logits, create_graph=True)[0]
    gb = torch.autograd.grad(b, logits, create_graph=True)[0]
    torch.testing.assert_close(ga, gb)
    # Hessians differ by exactly the score outer-product term: -mean(A grad(lp) grad(lp)^T)
    z = logits.detach()
    ha = torch.autograd.functional.hessian(lambda t: reinforce_loss(lp(t), adv), z)
    hb = torch.autograd.functional.hessian(lambda t: lvc_loss(lp(t), adv), z)
    scores = torch.autograd.functional.jacobian(lp, z)  # [4, 3]
    outer = -(adv[:, None, None] * scores[:, :, None] * scores[:, None, :]).mean(0)
    torch.testing.assert_close(hb - ha, outer)
    assert outer.abs().max() > 1e-3
