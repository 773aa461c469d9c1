"""Prototypical Networks: logits are negative squared distances to class means."""

import torch
from torch import nn

from metarl.contracts import curve_by_adapting
from metarl.fewshot.episode import Episode
from metarl.fewshot.protonet import ProtoNet, ProtoNetConfig, proto_logits, prototypes


def test_prototypes_are_class_means_and_logits_negative_squared_distances():
    g = torch.Generator().manual_seed(0)
    support, labels = torch.randn(6, 4, generator=g), torch.tensor([2, 0, 1, 0, 2, 1])
    query = torch.randn(5, 4, generator=g)
    protos = prototypes(support, labels, 3)
    for c in range(3):
        torch.testing.assert_close(protos[c], support[labels == c].mean(0))
    expected = torch.empty(5, 3)
    for i in range(5):
        for c in range(3):
            expected[i, c] = -sum((query[i, j] - protos[c, j]) ** 2 for j in range(4))
    torch.testing.assert_close(proto_logits(query, protos), expected, rtol=1e-4, atol=1e-4)


def tiny_episode(ways=3, shots=2, queries=4, tasks=2, noise=0.1):
    """Classes are separated clusters, so a sensible encoder classifies them."""
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(tasks, ways, 1, 8, 8, generator=g) * 3

    def draw(k):
        y = torch.arange(ways).repeat(k).expand(tasks, -1)  # shot-major
        x = centers[torch.arange(tasks)[:, None], y] + noise * torch.randn(
            tasks, k * ways, 1, 8, 8, generator=g
        )
        return x, y

    (sx, sy), (qx, qy) = draw(shots), draw(queries)
    return Episode(sx, sy, qx, qy, ways, shots)


def test_curve_starts_at_chance_and_equals_adapting_afresh():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 16))
    learner = ProtoNet(ProtoNetConfig(), encoder, torch.device("cpu"))
    ep = tiny_episode()
    curve = learner.adaptation_curve(ep, 5)
    assert curve.shape == (3, 2)  # budgets 0..shots
    torch.testing.assert_close(curve[0], torch.full((2,), 1 / 3))
    torch.testing.assert_close(curve, curve_by_adapting(learner, ep, 2))
    assert curve[2].mean() > 0.9  # well-separated clusters


def test_meta_step_lowers_the_loss():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 16))
    learner = ProtoNet(ProtoNetConfig(outer_lr=0.01), encoder, torch.device("cpu"))
    ep = tiny_episode(noise=3.0)
    first = learner.meta_step(ep)["loss"]
    for _ in range(20):
        last = learner.meta_step(ep)["loss"]
    assert last < first
