"""Mathematics of the shared inner loop and of MAML's meta-gradients."""

import torch
from torch import nn

from metarl.fewshot.episode import Episode
from metarl.fewshot.maml import MAML, MAMLConfig
from metarl.inner_loop import adapt, forward, gradient_step, named_params


def linear_problem(seed=0, d=3, n=8):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.double))
    xs, ys = (
        torch.randn(n, d, generator=g, dtype=torch.double),
        torch.randn(n, 1, generator=g, dtype=torch.double),
    )
    xq, yq = (
        torch.randn(n, d, generator=g, dtype=torch.double),
        torch.randn(n, 1, generator=g, dtype=torch.double),
    )
    return model, xs, ys, xq, yq


def mse_grad(w, x, y):
    """d/dw mean((x w - y)^2) for w [d, 1]."""
    return 2.0 / len(x) * x.T @ (x @ w - y)


def meta_gradient(first_order, alpha=0.1):
    model, xs, ys, xq, yq = linear_problem()
    params = named_params(model)
    fast = adapt(
        params, lambda p: ((forward(model, p, xs) - ys) ** 2).mean(), 1, alpha, first_order
    )
    ((forward(model, fast, xq) - yq) ** 2).mean().backward()
    return model.weight.grad.T.clone(), model, xs, ys, xq, yq


def test_second_order_meta_gradient_matches_hand_formula():
    alpha = 0.1
    grad, model, xs, ys, xq, yq = meta_gradient(first_order=False, alpha=alpha)
    w = model.weight.detach().T
    w_fast = w - alpha * mse_grad(w, xs, ys)
    hessian = 2.0 / len(xs) * xs.T @ xs
    expected = (torch.eye(3, dtype=torch.double) - alpha * hessian) @ mse_grad(w_fast, xq, yq)
    torch.testing.assert_close(grad, expected)


def test_first_order_matches_hand_formula_and_differs_from_second_order():
    alpha = 0.1
    grad_fo, model, xs, ys, xq, yq = meta_gradient(first_order=True, alpha=alpha)
    w = model.weight.detach().T
    expected = mse_grad(w - alpha * mse_grad(w, xs, ys), xq, yq)
    torch.testing.assert_close(grad_fo, expected)
    grad_so, *_ = meta_gradient(first_order=False, alpha=alpha)
    assert (grad_fo - grad_so).abs().max() > 1e-3


def test_gradient_step_moves_only_adapt_keys_and_uses_per_parameter_step_sizes():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    params = named_params(model)
    x = torch.randn(5, 2)
    loss = forward(model, params, x).pow(2).mean()
    sizes = {k: torch.full_like(v, 0.5) for k, v in params.items()}
    new = gradient_step(params, loss, sizes, adapt_keys=["2.weight", "2.bias"])
    assert new["0.weight"] is params["0.weight"]
    grads = torch.autograd.grad(forward(model, params, x).pow(2).mean(), [params["2.weight"]])
    torch.testing.assert_close(new["2.weight"], params["2.weight"] - 0.5 * grads[0])


def sinusoid_episode(t=4, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(t, 1, 1, generator=g) * 4 + 0.1
    xs, xq = torch.rand(t, k, 1, generator=g) * 10 - 5, torch.rand(t, 10, 1, generator=g) * 10 - 5
    return Episode(xs, a * torch.sin(xs), xq, a * torch.sin(xq), 1, k)


def make_maml(**overrides):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
    return MAML(
        MAMLConfig(inner_lr=0.05, adapt_steps=2, **overrides), model, "mse", torch.device("cpu")
    )


def grads_after_step(learner, ep):
    learner.optimizer.step = lambda: None  # keep parameters: we compare the gradients
    learner.meta_step(ep)
    out = {k: p.grad.clone() for k, p in learner.model.named_parameters()}
    if isinstance(learner.step_sizes, dict):
        out.update({f"lr/{k}": p.grad.clone() for k, p in learner.step_sizes.items()})
    return out


def test_meta_gradients_reach_every_initial_parameter():
    grads = grads_after_step(make_maml(), sinusoid_episode())
    assert all(g.abs().sum() > 0 for g in grads.values())


def test_vmap_task_batching_equals_the_task_loop():
    ep = sinusoid_episode()
    for extra in ({}, {"first_order": True}, {"meta_sgd": True}, {"anil": True}):
        loop = grads_after_step(make_maml(**extra), ep)
        batched = grads_after_step(make_maml(task_batching="vmap", **extra), ep)
        assert loop.keys() == batched.keys()
        for k in loop:
            torch.testing.assert_close(batched[k], loop[k], rtol=1e-4, atol=1e-6)
    curve_loop = make_maml().adaptation_curve(ep, 3)
    curve_vmap = make_maml(task_batching="vmap").adaptation_curve(ep, 3)
    torch.testing.assert_close(curve_vmap, curve_loop, rtol=1e-4, atol=1e-5)


def test_meta_sgd_learns_step_sizes_and_anil_freezes_the_body_in_the_inner_loop():
    grads = grads_after_step(make_maml(meta_sgd=True), sinusoid_episode())
    assert all(grads[f"lr/{k}"].abs().sum() > 0 for k in ("0.weight", "2.weight"))
    anil = make_maml(anil=True)
    assert anil.adapt_keys == ["2.weight", "2.bias"]


def test_maml_curve_equals_adapting_afresh_for_each_budget():
    from metarl.contracts import curve_by_adapting

    learner, ep = make_maml(), sinusoid_episode()
    torch.testing.assert_close(learner.adaptation_curve(ep, 3), curve_by_adapting(learner, ep, 3))


def test_optimizer_loop_with_sgd_equals_adapt_iter_and_adam_equals_torch_adam():
    from metarl.inner_loop import SGD, Adam, adapt_iter, optimizer_adapt_iter

    model, xs, ys, _, _ = linear_problem()
    params = named_params(model)

    def loss_fn(p):
        return ((forward(model, p, xs) - ys) ** 2).mean()

    for a, b in zip(
        adapt_iter(params, loss_fn, 3, 0.1),
        optimizer_adapt_iter(params, loss_fn, 3, SGD(0.1)),
        strict=True,
    ):
        torch.testing.assert_close(a["weight"], b["weight"], rtol=0, atol=0)
    # Adam (beta1 = 0, as Reptile uses it) against torch.optim.Adam on the same problem
    w = model.weight.detach().clone().requires_grad_()
    opt = torch.optim.Adam([w], lr=0.05, betas=(0.0, 0.999))
    ours = list(optimizer_adapt_iter(params, loss_fn, 4, Adam(0.05), first_order=True))
    for p in ours[1:]:
        opt.zero_grad()
        ((xs @ w.T - ys) ** 2).mean().backward()
        opt.step()
        torch.testing.assert_close(p["weight"], w.detach())
