"""Reptile: its outer update by hand, learning on fresh tasks, evaluation modes, predict."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metarl.cli import main
from metarl.fewshot.episode import Episode
from metarl.fewshot.reptile import Reptile, ReptileConfig, reptile_update
from metarl.inner_loop import named_params
from tests.synthetic import pattern_tasks


def linear_reptile(**kw) -> Reptile:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double()
    return Reptile(ReptileConfig(**kw), model, torch.device("cpu"), 0)


def linear_tasks(num_tasks: int, seed: int = 0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_tasks, 6, 1, 2, 2, generator=g, dtype=torch.double)
    y = torch.randint(0, 3, (num_tasks, 6), generator=g)
    return Episode(x, y, x[:, :0], y[:, :0], 3, 2)


def test_outer_update_equals_the_interpolation_formula_on_a_linear_model():
    """One SGD step of size a per task on the whole support (batch = 6), epsilon e:
    phi_t = theta - a g_t, so theta' = theta + e (mean phi_t - theta) = theta - e a mean g_t."""
    a, e = 0.3, 0.7
    r = linear_reptile(inner_optimizer="sgd", inner_lr=a, adapt_steps=1, inner_batch=6, outer_lr=e)
    tasks = linear_tasks(3)
    theta = {k: v.detach().clone() for k, v in named_params(r.model).items()}
    grads = []
    for t in range(3):
        w, b = (theta[k].clone().requires_grad_() for k in ("1.weight", "1.bias"))
        x = tasks.support_x[t].flatten(1)
        loss = F.cross_entropy(x @ w.T + b, tasks.support_y[t])
        grads.append(torch.autograd.grad(loss, (w, b)))
    r.meta_step(tasks)
    for i, k in enumerate(("1.weight", "1.bias")):
        mean_g = torch.stack([g[i] for g in grads]).mean(0)
        torch.testing.assert_close(r.model.state_dict()[k], theta[k] - e * a * mean_g)
    # the helper gives the same interpolation, and epsilon anneals linearly
    phis = [{k: theta[k] - a * g[i] for i, k in enumerate(theta)} for g in grads]
    upd = reptile_update(theta, phis, e)
    torch.testing.assert_close(upd["1.bias"], r.model.state_dict()["1.bias"])


def test_epsilon_anneals_linearly_to_its_final_value():
    r = linear_reptile(outer_lr=1.0, outer_lr_final=0.2, anneal_iterations=4, inner_batch=6)
    eps = [r.meta_step(linear_tasks(1, i))["epsilon"] for i in range(6)]
    torch.testing.assert_close(torch.tensor(eps), torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.2]))


def small_reptile(transductive: bool = True) -> Reptile:
    from metarl.fewshot.backbones import classifier

    cfg = ReptileConfig(
        conv_channels=8,
        inner_lr=0.01,
        adapt_steps=3,
        inner_batch=6,
        eval_adapt_steps=2,
        eval_inner_batch=6,
        transductive=transductive,
        outer_lr=0.5,
        anneal_iterations=0,
    )
    torch.manual_seed(0)
    return Reptile(cfg, classifier((1, 16, 16), 3, 8), torch.device("cpu"), 0)


def test_learns_a_fast_adapting_initialisation_on_fresh_patterns():
    """After meta-training, 2 inner steps on a 3-way 2-shot support of patterns never seen
    classify the queries better than the same 2 steps from the initial weights."""
    r = small_reptile()
    gen = torch.Generator().manual_seed(0)
    test = pattern_tasks(30, 3, 2, 3, torch.Generator().manual_seed(1), side=16, noise=0.3)
    before = r.adaptation_curve(test, 2)[2].mean()
    for _ in range(40):
        r.meta_step(pattern_tasks(5, 3, 2, 3, gen, side=16, noise=0.3))
    after = r.adaptation_curve(test, 2)
    assert after.shape == (3, 30)
    assert after[2].mean() > max(before + 0.1, 0.5), (before, after.mean(1))


def test_non_transductive_answers_do_not_depend_on_the_other_queries():
    ep = pattern_tasks(1, 3, 2, 2, torch.Generator().manual_seed(4), side=16)
    sx, sy, qx = ep.support_x[0], ep.support_y[0], ep.query_x[0]
    other = torch.rand(qx.shape, generator=torch.Generator().manual_seed(5))
    alone = small_reptile(False)
    p = alone.predict(sx, sy, qx, 3)
    q = alone.predict(sx, sy, torch.cat([qx[:1], other[1:]]), 3)
    assert p.shape == (6, 3)
    torch.testing.assert_close(p.sum(-1), torch.ones(6))
    torch.testing.assert_close(p[0], q[0])  # batch norm saw the support and this query alone
    together = small_reptile(True)
    pt = together.predict(sx, sy, qx, 3)
    qt = together.predict(sx, sy, torch.cat([qx[:1], other[1:]]), 3)
    assert not torch.allclose(pt[0], qt[0])  # transductive: the query batch's statistics
    torch.testing.assert_close(pt, small_reptile(True).predict(sx, sy, qx, 3), rtol=0, atol=0)


@pytest.mark.parametrize("transductive", [True, False])
def test_last_only_accuracy_is_the_last_row_of_the_curve(transductive):
    """`query_accuracy(..., last_only=True)` (the benchmark's fast path) skips the tests after
    the intermediate inner steps and gives the curve's last row bit for bit."""
    r = small_reptile(transductive)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        r.meta_step(pattern_tasks(3, 3, 2, 3, gen, side=16, noise=0.3))
    test = pattern_tasks(8, 3, 2, 3, torch.Generator().manual_seed(1), side=16, noise=0.3)
    state = r.eval_generator.get_state()
    curve = r.query_accuracy(test, 3, transductive)
    r.eval_generator.set_state(state)
    last = r.query_accuracy(test, 3, transductive, last_only=True)
    assert curve.shape == (4, 8) and last.shape == (1, 8)
    torch.testing.assert_close(last[0], curve[-1], rtol=0, atol=0)


def test_seeded_meta_steps_repeat_and_resume_is_exact():
    tasks = [pattern_tasks(2, 3, 2, 1, torch.Generator().manual_seed(i), side=16) for i in range(4)]
    a, b, c = small_reptile(), small_reptile(), small_reptile()
    la = [a.meta_step(t)["loss"] for t in tasks]
    lb = [b.meta_step(t)["loss"] for t in tasks[:2]]
    c.load_state_dict(b.state_dict())
    lb += [c.meta_step(t)["loss"] for t in tasks[2:]]
    assert la == lb


def test_carried_inner_state_continues_adam_from_task_to_task():
    """`inner_state: carried`: the second task's first inner step is an Adam step whose
    moments and step count come from the first task (the paper's code resets only weights)."""
    lr = 0.1
    kw = dict(inner_lr=lr, adapt_steps=1, inner_batch=6, outer_lr=1.0, anneal_iterations=0)
    carried, fresh = linear_reptile(inner_state="carried", **kw), linear_reptile(**kw)
    tasks = linear_tasks(2)
    theta = {k: v.detach().clone() for k, v in named_params(carried.model).items()}

    def grad(t: int) -> dict:
        w, b = (theta[k].clone().requires_grad_() for k in ("1.weight", "1.bias"))
        loss = F.cross_entropy(tasks.support_x[t].flatten(1) @ w.T + b, tasks.support_y[t])
        return dict(zip(("1.weight", "1.bias"), torch.autograd.grad(loss, (w, b)), strict=True))

    g0, g1 = grad(0), grad(1)
    carried.meta_step(tasks)
    fresh.meta_step(tasks)
    b2 = 0.999
    for k in theta:  # beta1 = 0: m = g; v and the step count run on over the two tasks
        v = b2 * (1 - b2) * g0[k] ** 2 + (1 - b2) * g1[k] ** 2
        phi1 = theta[k] - lr * g1[k] / ((v / (1 - b2**2)).sqrt() + 1e-8)
        phi0 = theta[k] - lr * g0[k] / (g0[k].abs() + 1e-8)  # a fresh first step: lr * sign
        torch.testing.assert_close(carried.model.state_dict()[k], (phi0 + phi1) / 2)
        phi1_fresh = theta[k] - lr * g1[k] / (g1[k].abs() + 1e-8)
        torch.testing.assert_close(fresh.model.state_dict()[k], (phi0 + phi1_fresh) / 2)
    step, _, v_state = carried.carry["state"]
    assert step == 2 and fresh.carry["state"] is None
    # Evaluation starts each test task from training's state and leaves it as it was.
    before = {k: t.clone() for k, t in v_state.items()}
    carried.adaptation_curve(linear_tasks(2, seed=1), 2)
    assert carried.carry["state"][0] == 2
    assert all(torch.equal(carried.carry["state"][2][k], before[k]) for k in before)
    # And it is part of the checkpoint: a resumed learner takes the same next step.
    again = linear_reptile(inner_state="carried", **kw)
    again.load_state_dict(carried.state_dict())
    nxt = linear_tasks(2, seed=2)
    carried.meta_step(nxt)
    again.meta_step(nxt)
    for k in theta:
        torch.testing.assert_close(again.model.state_dict()[k], carried.model.state_dict()[k])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("learner.inner_batch=0", "learner.inner_batch must be >= 1"),
        ("task.train_ways=7", "task.train_ways (7) may not exceed it"),
    ],
)
def test_bad_reptile_settings_exit_2_with_one_line(
    override, message, tmp_path, capsys, omniglot_dir
):
    argv = ["train", "omniglot_reptile_5w1s", f"task.data_dir={omniglot_dir}", override]
    rc = main([*argv, "device=cpu", "--run-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err


def test_carried_inner_state_refuses_a_sharded_batch(monkeypatch):
    """Under torchrun a rank holds part of the meta-batch; the carried state needs all of it
    in sequence, so the learner says so in one line instead of training something else."""
    from metarl.errors import UsageError

    r = linear_reptile(inner_state="carried", inner_batch=6)
    monkeypatch.setattr("metarl.fewshot.reptile.batch_rows", lambda n: (slice(0, n), 2 * n))
    with pytest.raises(UsageError, match="inner_state=carried .* one process"):
        r.meta_step(linear_tasks(2))
