"""Matching, Relation and Siamese networks: their mathematics, and that each one learns."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metarl.config import RunConfig
from metarl.contracts import curve_by_adapting
from metarl.fewshot.matching import attention, class_log_probs
from metarl.fewshot.relation import class_maps
from metarl.fewshot.sampler import ClassPool
from metarl.fewshot.siamese import PairHead, SiameseConfig, class_logits, random_affine
from metarl.fewshot.tasks import FewShotDistribution
from metarl.registry import build_learner
from metarl.seeding import make_generator

CPU = torch.device("cpu")


def synthetic(
    ways: int = 5, shots: int = 1, queries: int = 5, size: int = 28
) -> FewShotDistribution:
    """Classes are random strokes (a few bright pixels blurred); drawings jitter them.

    40 training and 20 test classes of 12 drawings: each drawing is its class's pattern
    shifted by up to 3 pixels, with 30% of its ink dropped and noise added, so the embedding
    must learn shift-tolerant features to tell classes apart.
    """
    g = torch.Generator().manual_seed(0)
    classes, drawings = 60, 12
    seeds = (torch.rand(classes, 1, 1, size, size, generator=g) > 0.985).float()
    patterns = F.avg_pool2d(seeds.view(classes, 1, size, size), 5, 1, 2).view_as(seeds) * 6
    x = patterns.expand(classes, drawings, 1, size, size).clone()
    shifts = torch.randint(-3, 4, (classes, drawings, 2), generator=g)
    for c in range(classes):
        for d in range(drawings):
            x[c, d] = torch.roll(x[c, d], tuple(shifts[c, d].tolist()), dims=(-2, -1))
    x = x * (torch.rand(x.shape, generator=g) > 0.3) + 0.3 * torch.rand(x.shape, generator=g)
    x = x.clamp(0, 1)
    pools = {
        "train": ClassPool(x, torch.arange(40)),
        "val": ClassPool(x, torch.arange(40, 60)),
        "test": ClassPool(x, torch.arange(40, 60)),
    }
    return FewShotDistribution(
        pools, ways, shots, queries, ways, shots, queries, input_shape=(1, size, size)
    )


def learner_of(kind: str, dist: FewShotDistribution, seed: int = 0, **extra):
    cfg = RunConfig(seed=seed, learner={"kind": kind, "conv_channels": 16, **extra})
    return build_learner(cfg, dist, CPU)


def test_matching_attention_sums_to_one_and_equals_a_hand_computation():
    query = torch.tensor([[1.0, 0.0]])
    support = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 1.0]])  # cosines 1, 0, -1/sqrt(2)
    a = attention(query, support, scale=2.0)
    e = [math.exp(2 * 1.0), math.exp(0.0), math.exp(-2 / math.sqrt(2))]
    expected = torch.tensor([[v / sum(e) for v in e]])
    torch.testing.assert_close(a, expected)
    torch.testing.assert_close(a.sum(-1), torch.ones(1))
    # p(class) is the attention mass on the class's items: labels 0, 1, 0.
    logp = class_log_probs(query, support, torch.tensor([0, 1, 0]), 2, scale=2.0)
    torch.testing.assert_close(
        logp.exp(), torch.tensor([[expected[0, 0] + expected[0, 2], expected[0, 1]]])
    )


def test_relation_scores_lie_in_zero_one_and_class_maps_are_means():
    dist = synthetic()
    learner = learner_of("relation", dist)
    ep = dist.sample("test", 2, make_generator(0, "t"))
    scores = learner.adapt(ep, 1)
    assert scores.shape == (2, 25, 5)
    assert scores.min() >= 0 and scores.max() <= 1
    maps, labels = torch.randn(6, 3, 2, 2), torch.tensor([1, 0, 1, 2, 0, 2])
    means = class_maps(maps, labels, 3)
    for c in range(3):
        torch.testing.assert_close(means[c], maps[labels == c].mean(0))


def test_siamese_similarity_is_symmetric_and_rules_pick_the_right_class():
    torch.manual_seed(0)
    head = PairHead(8)
    a, b = torch.randn(4, 8), torch.randn(6, 8)
    torch.testing.assert_close(head(a, b), head(b, a).T)
    learner = learner_of("siamese", synthetic())
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        s = learner.similarity(x, x)  # one batch: both sides see the same batch statistics
    torch.testing.assert_close(s, s.T)
    assert s.min() >= 0 and s.max() <= 1
    # max rule: the class of the single most similar image; mean rule: the best average.
    logits = torch.tensor([[5.0, -5.0, 0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert class_logits(logits, labels, 2, "max").argmax().item() == 0
    assert class_logits(logits, labels, 2, "mean").argmax().item() == 1
    torch.testing.assert_close(
        torch.sigmoid(class_logits(logits, labels, 2, "mean")),
        torch.tensor(
            [
                [
                    (torch.sigmoid(torch.tensor(5.0)) + torch.sigmoid(torch.tensor(-5.0))) / 2,
                    (0.5 + torch.sigmoid(torch.tensor(1.0))) / 2,
                ]
            ]
        ),
    )


def test_siamese_distortions_are_seeded_affine_maps():
    x = torch.zeros(3, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    cfg = SiameseConfig()
    y1 = random_affine(x, cfg, torch.Generator().manual_seed(3))
    y2 = random_affine(x, cfg, torch.Generator().manual_seed(3))
    torch.testing.assert_close(y1, y2)
    assert not torch.allclose(y1, x)
    # Mass is roughly kept (scale within 0.8-1.2 per axis, no part pushed off the image).
    assert torch.allclose(y1.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.5)
    ident = SiameseConfig(max_rotation=0, max_shear=0, scale_range=[1.0, 1.0], max_shift=0)
    torch.testing.assert_close(random_affine(x, ident, torch.Generator()), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kind,extra",
    [
        ("matching", {}),
        ("matching", {"fce": True}),
        ("relation", {}),
        ("siamese", {"distort": True}),
    ],
)
def test_learner_learns_above_chance_on_a_tiny_problem(kind, extra):
    dist = synthetic()
    learner = learner_of(kind, dist, outer_lr=0.003, **extra)
    test_gen = make_generator(0, "test")
    held_out = dist.sample("test", 20, test_gen)
    before = learner.adaptation_curve(held_out, 1)[1].mean().item()
    gen = make_generator(0, "train")
    for _ in range(40):
        learner.meta_step(dist.sample("train", 2, gen))
    curve = learner.adaptation_curve(held_out, 1)
    after = curve[1].mean().item()
    torch.testing.assert_close(curve[0], torch.full((20,), 0.2))
    assert after > 0.5 and after > before + 0.2, (before, after)  # chance is 0.2


@pytest.mark.parametrize("kind", ["matching", "relation", "siamese"])
def test_curve_equals_adapting_afresh_and_seeded_runs_and_resume_are_identical(kind):
    dist = synthetic(shots=2, queries=3)
    extra = {"distort": True} if kind == "siamese" else {}
    a, b = learner_of(kind, dist, **extra), learner_of(kind, dist, **extra)
    ep = dist.sample("test", 3, make_generator(0, "t"))
    torch.testing.assert_close(a.adaptation_curve(ep, 5), curve_by_adapting(a, ep, 2))
    ga, gb = make_generator(1, "train"), make_generator(1, "train")
    for _ in range(2):
        assert a.meta_step(dist.sample("train", 2, ga)) == b.meta_step(dist.sample("train", 2, gb))
    state = a.state_dict()
    c = learner_of(kind, dist, seed=5, **extra)
    c.load_state_dict(state)
    gc = make_generator(1, "train")
    gc.set_state(ga.get_state())
    tasks = dist.sample("train", 2, ga)
    assert a.meta_step(tasks) == c.meta_step(dist.sample("train", 2, gc))


@pytest.mark.parametrize("kind", ["matching", "relation", "siamese"])
def test_predict_gives_probabilities_over_the_support_classes(kind):
    dist = synthetic(shots=2)
    learner = learner_of(kind, dist)
    ep = dist.sample("test", 1, make_generator(0, "t"))
    # Unequal shots: class 2 has one image only.
    keep = torch.ones(10, dtype=torch.bool)
    keep[7] = False  # shot 1 of slot 2
    probs = learner.predict(ep.support_x[0, keep], ep.support_y[0, keep], ep.query_x[0], 5)
    assert probs.shape == (25, 5)
    assert probs.min() >= 0
    torch.testing.assert_close(probs.sum(-1), torch.ones(25))
