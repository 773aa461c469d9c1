"""Lake et al.'s within-alphabet protocol: every task's classes come from one alphabet."""

from __future__ import annotations

import pytest
import torch

from metarl.errors import UsageError
from metarl.fewshot.sampler import ClassPool, sample_episodes
from metarl.fewshot.tasks import OmniglotTaskConfig, build_omniglot
from metarl.seeding import make_generator


def test_lake_test_tasks_mix_characters_of_one_alphabet_only(omniglot_dir, omniglot):
    cfg = OmniglotTaskConfig(
        data_dir=str(omniglot_dir), split="lake", ways=20, shots=1, queries=1, within_alphabet=True
    )
    dist = build_omniglot(cfg, torch.device("cpu"))
    alphabet_of = {r: omniglot.names[r].split("/")[0] for r in range(len(omniglot.names))}
    # Each image's class is found back from its pixels: a random projection of every image of
    # Omniglot is a fingerprint (a few drawings occur in two characters, once across the two sets: then any may be it).
    proj = torch.randn(
        omniglot.images[0, 0].numel(),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
    )
    prints = omniglot.images.flatten(2).double() @ proj  # [1623, 20]
    ep = dist.sample("test", 12, make_generator(0, "eval/test"))
    seen = set()
    for t in range(12):
        common = None
        for x in ep.support_x[t]:
            hit = ((prints - x.flatten().double() @ proj).abs() < 1e-6).any(-1).nonzero().flatten()
            hit = [int(r) for r in hit if r >= omniglot.num_background]  # evaluation set
            assert hit
            candidates = {alphabet_of[r] for r in hit}
            common = candidates if common is None else common & candidates
        assert common is not None and len(common) == 1, common
        seen |= common
    assert len(seen) > 3  # different tasks, different alphabets
    # Training tasks still mix alphabets; the background set only.
    train = dist.pools["train"]
    assert train.groups is None and int(train.rows.max()) < omniglot.num_background


def test_groups_choose_only_groups_large_enough_and_refuse_too_many_ways():
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1, 1).expand(10, 3, 1, 2, 2)
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])  # sizes 3, 2, 5
    pool = ClassPool(images.contiguous(), torch.arange(10), groups=groups)
    ep = sample_episodes(pool, 3, 1, 1, 200, torch.Generator().manual_seed(0))
    classes = ep.support_x[:, :, 0, 0, 0].long()  # [T, 3] class id of each slot
    task_groups = groups[classes]
    assert (task_groups == task_groups[:, :1]).all()
    assert set(task_groups[:, 0].tolist()) == {0, 2}  # group 1 has only 2 classes
    with pytest.raises(UsageError, match="largest group"):
        sample_episodes(pool, 6, 1, 1, 1, torch.Generator())
