"""The learned LSTM optimiser: preprocessing, SGD as a special case, meta-gradients,
learning on quadratics, use as MAML's inner optimiser, bad input."""

import math

import pytest
import torch
from torch import nn

from metarl.cli import main
from metarl.errors import UsageError
from metarl.inner_loop import adapt_iter, forward, named_params, optimizer_adapt_iter
from metarl.learned_optimizer import (
    LSTMOptimizer,
    LSTMOptimizerConfig,
    LSTMOptimizerLearner,
    OptimizeeConfig,
    OptimizeeDistribution,
    TorchOptimizer,
    load_lstm_optimizer,
    optimize,
    preprocess,
)
from metarl.registry import load_config
from metarl.trainer import train


def test_log_and_sign_preprocessing():
    g = torch.tensor([2.0, -1e-3, 1e-6, -1e-6, 0.0])
    x = preprocess(g, 10.0)
    big = torch.tensor([math.log(2.0) / 10, math.log(1e-3) / 10])
    torch.testing.assert_close(x[:2, 0], big)
    assert x[:2, 1].tolist() == [1.0, -1.0]
    # |g| < e^-10: (-1, e^10 g)
    torch.testing.assert_close(x[2:, 0], torch.full((3,), -1.0))
    torch.testing.assert_close(x[2:, 1], math.exp(10) * g[2:])


def as_sgd(opt: LSTMOptimizer, lr: float) -> LSTMOptimizer:
    with torch.no_grad():
        opt.out.weight.zero_()
        opt.out.bias.zero_()
        opt.skip.fill_(-lr)
    return opt


def test_set_to_sgd_it_reproduces_sgd_on_problems_and_in_the_shared_inner_loop():
    problems = OptimizeeDistribution(OptimizeeConfig("mlp", hidden_sizes=[7]), "cpu").sample(
        "test", 3, torch.Generator().manual_seed(0)
    )
    lstm = as_sgd(LSTMOptimizer(), 0.5)
    sgd = TorchOptimizer(torch.optim.SGD, {"lr": 0.5})
    torch.testing.assert_close(optimize(problems, lstm, 15), optimize(problems, sgd, 15))
    # inside the inner loop of MAML, any parameter shapes (coordinate-wise)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    x, y = torch.randn(8, 3), torch.randn(8, 2)

    def loss_fn(p):
        return ((forward(model, p, x) - y) ** 2).mean()

    ours = optimizer_adapt_iter(named_params(model), loss_fn, 4, as_sgd(LSTMOptimizer(), 0.1))
    for a, b in zip(adapt_iter(named_params(model), loss_fn, 4, 0.1), ours, strict=True):
        for k in a:
            torch.testing.assert_close(a[k], b[k])


def learner(**kw) -> LSTMOptimizerLearner:
    cfg = LSTMOptimizerConfig(optimizee_steps=20, unroll=10, outer_lr=0.01, eval_steps=20, **kw)
    return LSTMOptimizerLearner(cfg, torch.device("cpu"), 0)


def test_meta_gradient_reaches_every_parameter_of_the_optimiser():
    dist = OptimizeeDistribution(OptimizeeConfig(), "cpu")
    lo = learner()
    before = {k: v.clone() for k, v in lo.model.state_dict().items()}
    lo.meta_step(dist.sample("train", 4, torch.Generator().manual_seed(0)))
    for name, p in lo.model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert not torch.equal(before[name], p.detach()), name


def test_without_the_skip_term_it_stays_zero_and_everything_else_trains():
    dist = OptimizeeDistribution(OptimizeeConfig(), "cpu")
    lo = LSTMOptimizerLearner(LSTMOptimizerConfig(unroll=5, learn_skip=False), "cpu", seed=0)
    before = {k: v.clone() for k, v in lo.model.state_dict().items()}
    lo.meta_step(dist.sample("train", 4, torch.Generator().manual_seed(0)))
    assert lo.model.skip.item() == 0.0 and lo.model.skip.grad is None
    changed = [k for k, v in lo.model.state_dict().items() if not torch.equal(before[k], v)]
    assert sorted(changed) == sorted(k for k in before if k != "skip")


def test_meta_training_lowers_the_loss_on_held_out_quadratics():
    dist = OptimizeeDistribution(OptimizeeConfig(), "cpu")
    lo = learner()
    test = dist.sample("test", 64, torch.Generator().manual_seed(1))
    start = lo.adaptation_curve(test, 20)[-1].median()
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        lo.meta_step(dist.sample("train", 16, gen))
    end = lo.adaptation_curve(test, 20)
    assert end.shape == (21, 64)
    assert end[-1].median() < 0.5 * start and end[-1].median() < end[0].median() / 10


def test_trained_run_loads_as_maml_inner_optimiser_and_bad_input_is_refused(tmp_path, capsys):
    run = tmp_path / "lo"
    args = ["device=cpu", "train.iterations=2", "train.num_tasks=4", "train.eval_interval=0"]
    args += ["eval.final_num_tasks=8", "eval.max_budget=5", "learner.optimizee_steps=10"]
    train(load_config("quadratic_lstm_optimizer", args), run, progress=False)
    opt = load_lstm_optimizer(run)
    assert isinstance(opt, LSTMOptimizer)
    maml = ["train", "sinusoid_maml", f"learner.learned_optimizer={run}", "device=cpu"]
    maml += ["train.iterations=2", "train.num_tasks=2", "eval.final_num_tasks=4"]
    maml += ["eval.batch_tasks=4", "eval.max_budget=2", "train.eval_interval=0"]
    assert main([*maml, "--run-dir", str(tmp_path / "maml"), "--no-progress"]) == 0
    capsys.readouterr()
    bad = [*maml[:2], f"learner.learned_optimizer={tmp_path / 'maml'}", *maml[3:]]
    assert main([*bad, "--run-dir", str(tmp_path / "m2"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a 'maml' run, not an lstm_optimizer" in err and len(err.splitlines()) == 1
    with pytest.raises(UsageError, match="not a trained lstm_optimizer run"):
        load_lstm_optimizer(tmp_path / "nothing")


def test_unroll_of_zero_exits_2_with_one_line(tmp_path, capsys):
    argv = ["train", "quadratic_lstm_optimizer", "learner.unroll=0", "device=cpu"]
    assert main([*argv, "--run-dir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "learner.unroll=0" in err and len(err.splitlines()) == 1
