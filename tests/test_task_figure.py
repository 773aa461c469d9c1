"""The sinusoid `tasks.png`: predictions before and after 1 and 10 inner steps, drawn."""

from __future__ import annotations

import io

import torch
from PIL import Image

from metarl.config import RunConfig
from metarl.fewshot.sinusoid import SinusoidConfig, build_sinusoid, tasks_figure
from metarl.registry import build_learner
from metarl.seeding import make_generator

CPU = torch.device("cpu")


def test_predict_steps_agrees_with_the_adaptation_curve_and_the_figure_is_drawn():
    dist = build_sinusoid(SinusoidConfig(), CPU)
    cfg = RunConfig(learner={"kind": "maml", "backbone": "mlp", "inner_lr": 0.01})
    learner = build_learner(cfg, dist, CPU)
    tasks = dist.sample("test", 3, make_generator(0, "t"))
    curve = learner.adaptation_curve(tasks, 10)  # [11, 3] query MSE after 0..10 steps
    for t in range(3):
        outs = learner.predict_steps(
            tasks.support_x[t], tasks.support_y[t], tasks.query_x[t], [0, 1, 10]
        )
        for k, out in zip((0, 1, 10), outs, strict=True):
            mse = (out - tasks.query_y[t]).pow(2).mean()
            torch.testing.assert_close(mse, curve[k, t])
    assert curve[10].mean() < curve[0].mean()  # adapting helps even an untrained init
    png = tasks_figure(dist, learner, make_generator(0, "figure/tasks"))
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size[0] > 2 * img.size[1]
    assert tasks_figure(dist, object(), make_generator(0, "f")) is None  # no predict_steps
