"""Episode sampler: shapes, without-replacement draws, label permutations, shot-major, seeds."""

from __future__ import annotations

import pytest
import torch

from metarl.errors import UsageError
from metarl.fewshot.sampler import ClassPool, sample_episodes

P, D = 12, 10  # classes (rows) and drawings in the synthetic pool


def coded_pool(
    rows: list[int] | None = None, counts: torch.Tensor | None = None, dtype=torch.float32
) -> ClassPool:
    """Images whose channel 0 holds the row and channel 1 the drawing, so items can be decoded."""
    row = torch.arange(P).view(P, 1, 1, 1, 1).expand(P, D, 1, 3, 3)
    drawing = torch.arange(D).view(1, D, 1, 1, 1).expand(P, D, 1, 3, 3)
    images = torch.cat([row, drawing], dim=2).to(dtype)  # [P, D, 2, 3, 3]
    idx = torch.tensor(rows if rows is not None else list(range(P)))
    return ClassPool(images, idx, None, counts)


def decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[T, M, 2, 3, 3] -> rows [T, M], drawings [T, M]."""
    return x[:, :, 0, 0, 0].long(), x[:, :, 1, 0, 0].long()


def test_shapes_and_dtypes() -> None:
    ep = sample_episodes(coded_pool(), 5, 2, 3, 7, torch.Generator().manual_seed(0))
    assert ep.support_x.shape == (7, 10, 2, 3, 3) and ep.query_x.shape == (7, 15, 2, 3, 3)
    assert ep.support_y.shape == (7, 10) and ep.query_y.shape == (7, 15)
    assert ep.support_y.dtype == ep.query_y.dtype == torch.int64
    assert ep.support_x.dtype == torch.float32
    assert (ep.ways, ep.shots, ep.num_tasks) == (5, 2, 7)


def test_episode_properties() -> None:
    N, K, Q, T = 5, 3, 4, 200
    ep = sample_episodes(coded_pool(), N, K, Q, T, torch.Generator().manual_seed(1))
    s_row, s_draw = decode(ep.support_x)
    q_row, q_draw = decode(ep.query_x)
    for t in range(T):
        # Exactly K support and Q query items per label.
        assert torch.equal(ep.support_y[t].bincount(minlength=N), torch.full((N,), K))
        assert torch.equal(ep.query_y[t].bincount(minlength=N), torch.full((N,), Q))
        label_rows = []
        for label in range(N):
            rows = torch.cat([s_row[t][ep.support_y[t] == label], q_row[t][ep.query_y[t] == label]])
            assert (rows == rows[0]).all()  # one class per label, in support and query alike
            label_rows.append(int(rows[0]))
            sd = s_draw[t][ep.support_y[t] == label].tolist()
            qd = q_draw[t][ep.query_y[t] == label].tolist()
            assert len(set(sd + qd)) == K + Q  # distinct drawings; support and query disjoint
        assert len(set(label_rows)) == N  # distinct classes within a task


def test_shot_major_and_label_permutations() -> None:
    N, K, Q, T = 5, 4, 2, 300
    ep = sample_episodes(coded_pool(), N, K, Q, T, torch.Generator().manual_seed(2))
    first = ep.support_y[:, :N]  # [T, N]
    assert torch.equal(first.sort(-1).values, torch.arange(N).expand(T, N))  # a permutation
    assert torch.equal(ep.support_y, first.repeat(1, K))  # item i is shot i // N of slot i % N
    assert torch.equal(ep.query_y, first.repeat(1, Q))
    x, y = ep.first_shots(2)
    assert torch.equal(y.view(T, 2, N)[:, 1], first)
    # Label orders differ across tasks, and so does the class -> label mapping.
    assert len({tuple(p) for p in first.tolist()}) > 50
    rows, _ = decode(ep.support_x[:, :N])
    label_of_row0 = [first[t][rows[t] == 0].tolist() for t in range(T)]
    assert len({tuple(v) for v in label_of_row0 if v}) == N


def test_class_and_drawing_frequencies_are_uniform() -> None:
    ep = sample_episodes(coded_pool(), 3, 1, 1, 4000, torch.Generator().manual_seed(3))
    rows, draws = decode(torch.cat([ep.support_x, ep.query_x], dim=1))
    freq = rows.flatten().bincount(minlength=P).float() / rows.numel()
    assert torch.allclose(freq, torch.full((P,), 1 / P), atol=0.01)
    freq = draws.flatten().bincount(minlength=D).float() / draws.numel()
    assert torch.allclose(freq, torch.full((D,), 1 / D), atol=0.01)


def test_seeds() -> None:
    pool = coded_pool()
    a = sample_episodes(pool, 5, 1, 2, 16, torch.Generator().manual_seed(7))
    b = sample_episodes(pool, 5, 1, 2, 16, torch.Generator().manual_seed(7))
    c = sample_episodes(pool, 5, 1, 2, 16, torch.Generator().manual_seed(8))
    for name in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.support_x, c.support_x)
    g = torch.Generator().manual_seed(7)
    sample_episodes(pool, 5, 1, 2, 16, g)
    assert not torch.equal(
        sample_episodes(pool, 5, 1, 2, 16, g).support_x, a.support_x
    )  # state advances


def test_pool_subset_rows_only() -> None:
    ep = sample_episodes(
        coded_pool(rows=[1, 4, 5, 9]), 3, 1, 1, 100, torch.Generator().manual_seed(4)
    )
    rows, _ = decode(torch.cat([ep.support_x, ep.query_x], dim=1))
    assert set(rows.unique().tolist()) == {1, 4, 5, 9}


def test_counts_never_draw_padding() -> None:
    counts = torch.tensor([3, 10, 4, 10, 5, 10, 3, 10, 6, 10, 3, 10])
    pool = coded_pool(counts=counts)
    assert pool.min_drawings() == 3
    ep = sample_episodes(pool, 4, 1, 2, 300, torch.Generator().manual_seed(5))
    rows, draws = decode(torch.cat([ep.support_x, ep.query_x], dim=1))
    assert (draws < counts[rows]).all()
    with pytest.raises(UsageError, match="3 drawings"):
        sample_episodes(pool, 4, 2, 2, 1, torch.Generator())


def test_uint8_pool_scaled() -> None:
    images = torch.full((P, D, 1, 3, 3), 255, dtype=torch.uint8)
    ep = sample_episodes(ClassPool(images, torch.arange(P)), 2, 1, 1, 2, torch.Generator())
    assert ep.support_x.dtype == torch.float32 and (ep.support_x == 1.0).all()


def test_rotations() -> None:
    base = torch.arange(P * D * 16, dtype=torch.float32).view(P, D, 1, 4, 4)  # asymmetric images
    rows = torch.arange(P).repeat_interleave(4)  # each row with 0..3 quarter turns
    turns = torch.arange(4).repeat(P)
    ep = sample_episodes(
        ClassPool(base, rows, turns), 6, 2, 1, 50, torch.Generator().manual_seed(6)
    )
    items = torch.cat([ep.support_x, ep.query_x], dim=1).flatten(0, 1)  # [T*M, 1, 4, 4]
    seen = set()
    for item in items:
        for k in range(4):
            plain = torch.rot90(item, -k, dims=(-2, -1))  # undo k turns
            flat = int(plain.flatten()[0]) // 16
            if torch.equal(plain, base.view(P * D, 1, 4, 4)[flat]):
                seen.add(k)
                break
        else:
            raise AssertionError("an item is no rotation of a pool image")
    assert seen == {0, 1, 2, 3}


def test_errors() -> None:
    pool = coded_pool()
    g = torch.Generator()
    with pytest.raises(UsageError) as exc:
        sample_episodes(pool, 13, 1, 1, 1, g)
    assert (
        "ways=13" in str(exc.value)
        and "12 classes" in str(exc.value)
        and "lower ways" in str(exc.value)
    )
    with pytest.raises(UsageError) as exc:
        sample_episodes(pool, 5, 5, 6, 1, g)
    assert "5 + 6" in str(exc.value) and "10 drawings" in str(exc.value)
    with pytest.raises(UsageError, match="num_tasks"):
        sample_episodes(pool, 5, 1, 1, 0, g)
    with pytest.raises(UsageError, match="ways >= 1"):
        sample_episodes(pool, 0, 1, 1, 1, g)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_properties_and_checks_generator() -> None:
    pool = coded_pool()
    cuda = ClassPool(pool.images.cuda(), pool.rows.cuda())
    with pytest.raises(UsageError, match="generator"):
        sample_episodes(cuda, 5, 1, 1, 1, torch.Generator())
    g = torch.Generator(device="cuda").manual_seed(0)
    ep = sample_episodes(cuda, 5, 2, 3, 8, g)
    assert ep.support_x.is_cuda and ep.query_y.is_cuda
    assert torch.equal(ep.support_y.cpu(), ep.support_y[:, :5].cpu().repeat(1, 2))


def test_omniglot_episode_rotated_classes(omniglot) -> None:
    from metarl.fewshot.omniglot import split_classes

    rows, turns = split_classes(omniglot, "vinyals", "test")
    pool = ClassPool(omniglot.images, rows, turns)
    ep = sample_episodes(pool, 20, 1, 5, 8, torch.Generator().manual_seed(0))
    assert ep.support_x.shape == (8, 20, 1, 28, 28) and ep.query_x.shape == (8, 100, 1, 28, 28)
    assert 0.0 <= ep.query_x.min() and ep.query_x.max() <= 1.0


def test_episode_select_slices_every_tensor_and_keeps_ways_and_shots():
    from metarl.fewshot.episode import Episode

    g = torch.Generator().manual_seed(0)
    ep = Episode(
        torch.rand(4, 6, 1, 2, 2, generator=g),
        torch.randint(0, 3, (4, 6), generator=g),
        torch.rand(4, 3, 1, 2, 2, generator=g),
        torch.randint(0, 3, (4, 3), generator=g),
        ways=3,
        shots=2,
    )
    one, last, some = ep.select(1), ep.select(-1), ep.select(torch.tensor([0, 2]))
    assert len(one) == len(last) == 1 and len(some) == 2 and (one.ways, one.shots) == (3, 2)
    assert torch.equal(one.query_x[0], ep.query_x[1]) and torch.equal(
        last.support_y[0], ep.support_y[3]
    )
    assert torch.equal(some.support_x, ep.support_x[[0, 2]])
