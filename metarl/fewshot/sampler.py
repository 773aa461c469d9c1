"""Batched few-shot episode sampling: T tasks in a handful of tensor ops, one generator.

A `ClassPool` is the classes of one split: rows of an image tensor `[P, D, C, H, W]` (P
characters or classes, D drawings each), optionally a number of quarter turns per class
(Omniglot's rotated classes) and a count of valid drawings per row (folders whose classes have
different numbers of images; the tensor is padded to the largest), and optionally a group per
class (Omniglot's alphabets): then every task takes its classes from one group, as in Lake et
al.'s within-alphabet 20-way runs. Sampling never loops over
tasks: classes and drawings are chosen by sorting uniform noise, which draws without
replacement independently in every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metarl.errors import UsageError
from metarl.fewshot.episode import Episode


@dataclass(frozen=True)
class ClassPool:
    """The classes of one split.

    `images`: `[P, D, C, H, W]`, float32 in [0, 1] or uint8 in 0..255 (converted on sampling).
    `rows`: int64 `[M]`, the row of each class. `rotations`: int64 `[M]` quarter turns
    (counter-clockwise) applied to each class, or None. `counts`: int64 `[P]` valid drawings
    per row (drawings `0..counts[p]-1`), or None when all `D` are valid. `groups`: int64 `[M]`
    a group id per class (e.g. its alphabet), or None; with groups, each task draws all its
    classes from one group, chosen uniformly among the groups that have enough classes. All on
    one device.
    """

    images: torch.Tensor
    rows: torch.Tensor
    rotations: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    groups: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dim() != 5:
            raise UsageError(
                f"class pool images must be [P, D, C, H, W], got {list(self.images.shape)}"
            )
        if self.rotations is not None and self.images.shape[-1] != self.images.shape[-2]:
            raise UsageError("rotated classes need square images")

    @property
    def num_classes(self) -> int:
        return self.rows.numel()

    @property
    def device(self) -> torch.device:
        return self.images.device

    def min_drawings(self) -> int:
        """Fewest drawings any class of the pool has (shots + queries may not exceed it)."""
        if self.num_classes == 0:
            return 0
        if self.counts is None:
            return self.images.shape[1]
        return int(self.counts[self.rows].min())

    def largest_group(self) -> int:
        """Classes in the largest group (all classes when the pool has no groups)."""
        if self.groups is None or self.num_classes == 0:
            return self.num_classes
        return int(self.groups.unique(return_counts=True)[1].max())

    def sample(
        self, ways: int, shots: int, queries: int, num_tasks: int, generator: torch.Generator
    ) -> Episode:
        """`num_tasks` episodes; see `sample_episodes`."""
        return sample_episodes(self, ways, shots, queries, num_tasks, generator)


def check_sizes(
    pool: ClassPool,
    ways: int,
    shots: int,
    queries: int,
    where: str,
    min_drawings: int | None = None,
) -> None:
    """Raise `UsageError` when the pool cannot give `ways` classes of `shots + queries` items."""
    if ways < 1 or shots < 0 or queries < 0 or shots + queries < 1:
        raise UsageError(
            f"{where}: ways={ways}, shots={shots}, queries={queries} must be ways >= 1, shots >= 0, queries >= 0, shots + queries >= 1"
        )
    if ways > pool.num_classes:
        raise UsageError(
            f"{where}: ways={ways} is more than the {pool.num_classes} classes of the split; lower ways"
        )
    if pool.groups is not None and ways > pool.largest_group():
        raise UsageError(
            f"{where}: ways={ways} is more than the {pool.largest_group()} classes of the largest "
            f"group (alphabet) of the split; lower ways or sample across groups"
        )
    have = pool.min_drawings() if min_drawings is None else min_drawings
    if shots + queries > have:
        raise UsageError(
            f"{where}: shots + queries = {shots} + {queries} is more than the {have} drawings per class "
            f"available; lower shots or queries"
        )


def _rotate(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate images `x` `[T, N, M, C, H, W]` (square) of slot `[t, n]` by `turns[t, n]` quarter turns.

    One gather with a per-class pixel permutation (the flattened `torch.rot90` of an index
    grid): a single pass, no host sync, about 10x faster on CPU than a `where` per turn.
    """
    T, N, M, C, H, W = x.shape  # M: items per class
    grid = torch.arange(H * W, device=x.device).view(H, W)
    perms = torch.stack(
        [torch.rot90(grid, k, dims=(0, 1)).reshape(-1) for k in range(4)]
    )  # [4, H*W]
    index = perms[turns].view(T, N, 1, 1, H * W).expand(T, N, M, C, H * W)
    return x.reshape(T, N, M, C, H * W).gather(-1, index).view(T, N, M, C, H, W)


def sample_episodes(
    pool: ClassPool,
    ways: int,
    shots: int,
    queries: int,
    num_tasks: int,
    generator: torch.Generator,
    min_drawings: int | None = None,
) -> Episode:
    """Draw `num_tasks` N-way K-shot tasks with Q queries per class.

    Per task: `ways` distinct classes of the pool; per class `shots + queries` distinct drawings,
    the first `shots` for support and the rest for query (so the two never share a drawing);
    labels are a fresh random permutation of `0..ways-1`, assigned to the classes in the order
    they were drawn. Both sets are shot-major: item `i` is shot (or query) `i // ways` of the
    class at slot `i % ways`. Returns an `Episode` with `support_x` `[T, K*N, C, H, W]`,
    `support_y` `[T, K*N]`, `query_x` `[T, Q*N, C, H, W]`, `query_y` `[T, Q*N]` (float32 /
    int64) on the pool's device. `min_drawings`: a precomputed `pool.min_drawings()` (it syncs).
    """
    check_sizes(pool, ways, shots, queries, "episode", min_drawings)
    if num_tasks < 1:
        raise UsageError(f"num_tasks={num_tasks} must be at least 1")
    device = pool.device
    if generator.device != device:
        raise UsageError(
            f"the generator is on {generator.device} but the data on {device}; make the generator with torch.Generator(device={str(device)!r})"
        )
    T, N, D = num_tasks, ways, pool.images.shape[1]
    items = shots + queries

    # Classes: the N smallest of M uniforms per task are N distinct classes in random order.
    noise = torch.rand(T, pool.num_classes, generator=generator, device=device)
    if pool.groups is not None:  # one group per task; classes outside it sort last
        ids, sizes = pool.groups.unique(return_counts=True)
        eligible = ids[sizes >= N]
        pick = torch.randint(len(eligible), (T,), generator=generator, device=device)
        inside = pool.groups.unsqueeze(0) == eligible[pick].unsqueeze(1)  # [T, M]
        noise = torch.where(inside, noise, torch.full_like(noise, 2.0))
    slot = noise.argsort(-1)[:, :N]  # [T, N] positions in the pool's class list
    rows = pool.rows[slot]  # [T, N]
    # Labels: a random permutation per task, label of slot j is labels[:, j].
    labels = torch.rand(T, N, generator=generator, device=device).argsort(-1)  # [T, N]
    # Drawings: sort noise per (task, class); invalid (padded) drawings get noise 2 and sort last.
    noise = torch.rand(T, N, D, generator=generator, device=device)
    if pool.counts is not None:
        valid = torch.arange(D, device=device) < pool.counts[rows].unsqueeze(-1)
        noise = torch.where(valid, noise, torch.full_like(noise, 2.0))
    drawings = noise.argsort(-1)[..., :items]  # [T, N, K+Q]

    x = pool.images[rows.unsqueeze(-1), drawings]  # [T, N, K+Q, C, H, W]
    if pool.rotations is not None:
        x = _rotate(x, pool.rotations[slot])
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)

    def shot_major(part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = part.shape[2]  # [T, N, k, C, H, W] -> [T, k*N, C, H, W]
        xs = part.transpose(1, 2).reshape(T, k * N, *part.shape[3:])
        ys = labels.unsqueeze(1).expand(T, k, N).reshape(T, k * N)
        return xs, ys

    support_x, support_y = shot_major(x[:, :, :shots])
    query_x, query_y = shot_major(x[:, :, shots:])
    return Episode(support_x, support_y, query_x, query_y, ways, shots)
