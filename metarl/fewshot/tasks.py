"""Few-shot classification task distributions for the engine registry (`task.kind`).

`omniglot` and `image_folder` both build a `FewShotDistribution`: the images held once as one
tensor on the training device, a `ClassPool` (class rows, rotations) per split, and episode
sizes. Split `train` may use other sizes than `val`/`test` (`train_ways` etc.): Prototypical
Networks trains 60-way and tests 5-way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from metarl.config import NonNegativeInt, OpenUnitInterval, PositiveInt
from metarl.contracts import SPLITS, check_split
from metarl.errors import UsageError
from metarl.fewshot.episode import Episode
from metarl.fewshot.image_folder import load_image_folder
from metarl.fewshot.omniglot import load_omniglot, split_classes
from metarl.fewshot.sampler import ClassPool, check_sizes, sample_episodes


@dataclass
class FewShotDistribution:
    """N-way K-shot classification tasks from per-split class pools (see `metarl.contracts`)."""

    pools: dict[str, ClassPool]
    ways: int
    shots: int
    queries: int
    train_ways: int
    train_shots: int
    train_queries: int
    input_shape: tuple[int, int, int]
    loss: str = "cross_entropy"
    splits: tuple[str, ...] = SPLITS
    _min_drawings: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # Fail at build time, not at the first evaluation: every split must fit its sizes.
        for split in self.splits:
            self._min_drawings[split] = self.pools[split].min_drawings()
            check_sizes(
                self.pools[split], *self.sizes(split), f"split {split!r}", self._min_drawings[split]
            )

    def sizes(self, split: str) -> tuple[int, int, int]:
        """(ways, shots, queries) of `split`: the train_* sizes for "train", else the eval sizes."""
        if split == "train":
            return self.train_ways, self.train_shots, self.train_queries
        return self.ways, self.shots, self.queries

    def num_classes(self, split: str) -> int:
        """Classes of `split` (with Omniglot's Vinyals split, every rotation counts)."""
        check_split(split, self.splits)
        return self.pools[split].num_classes

    def sample(self, split: str, num_tasks: int, generator: torch.Generator) -> Episode:
        """`num_tasks` episodes of `split`: support `[T, K*N, C, H, W]`, query `[T, Q*N, C, H, W]`.

        `generator` must live on the data's device; it is the only source of randomness.
        """
        check_split(split, self.splits)
        ways, shots, queries = self.sizes(split)
        return sample_episodes(
            self.pools[split], ways, shots, queries, num_tasks, generator, self._min_drawings[split]
        )


def task_sizes(cfg: OmniglotTaskConfig | ImageFolderTaskConfig) -> dict[str, Any]:
    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return {
        "ways": cfg.ways,
        "shots": cfg.shots,
        "queries": cfg.queries,
        "train_ways": pick(cfg.train_ways, cfg.ways),
        "train_shots": pick(cfg.train_shots, cfg.shots),
        "train_queries": pick(cfg.train_queries, cfg.queries),
    }


@dataclass
class OmniglotTaskConfig:
    data_dir: str | None = None
    """Omniglot folder (.npz arrays, official zips or extracted folders); None: $METARL_OMNIGLOT,
    the development copy ../shared/data/omniglot, then ~/.cache/metarl/omniglot."""
    split: Literal["vinyals", "lake"] = "vinyals"
    """vinyals: 1200 trainval / 423 test characters, x4 rotations; lake: background / evaluation sets."""
    train_on: Literal["train", "trainval"] = "trainval"
    """Classes of split 'train': train alone (keeps val held out) or train + val (the paper protocol)."""
    ways: PositiveInt = 5
    """Classes per evaluation task (N)."""
    shots: PositiveInt = 1
    """Support examples per class in evaluation tasks (K)."""
    queries: PositiveInt = 15
    """Query examples per class in evaluation tasks (Q)."""
    train_ways: PositiveInt | None = None
    """Classes per training task; None: same as ways (Prototypical Networks trains with more)."""
    train_shots: PositiveInt | None = None
    """Support examples per class in training tasks; None: same as shots."""
    train_queries: NonNegativeInt | None = None
    """Query examples per class in training tasks; None: same as queries; 0 for learners that
    train on the support alone (Reptile)."""
    image_size: PositiveInt = 28
    """Side of the images after area-averaged resizing from 105."""
    within_alphabet: bool = False
    """val and test tasks take all their classes from one alphabet (Lake et al. 2015's 20-way
    within-alphabet runs; with split lake, the shipped omniglot_*_lake configs); training tasks
    are unchanged."""


def build_omniglot(cfg: OmniglotTaskConfig, device: torch.device) -> FewShotDistribution:
    """Load Omniglot (cached) onto `device` and build the train / val / test pools."""
    data = load_omniglot(cfg.data_dir, cfg.image_size)
    images = data.images.to(device)  # [1623, 20, 1, S, S], shared by every split
    parts = {"train": cfg.train_on, "val": "val", "test": "test"}
    pools = {}
    alphabet_ids: dict[str, int] = {}
    alphabet = [alphabet_ids.setdefault(n.split("/")[0], len(alphabet_ids)) for n in data.names]
    for split, part in parts.items():
        rows, rotations = split_classes(data, cfg.split, part)
        groups = None
        if cfg.within_alphabet and split != "train":
            groups = torch.tensor(alphabet, dtype=torch.long)[rows].to(device)
        pools[split] = ClassPool(
            images,
            rows.to(device),
            None if rotations is None else rotations.to(device),
            None,
            groups,
        )
    return FewShotDistribution(
        pools, **task_sizes(cfg), input_shape=(1, cfg.image_size, cfg.image_size)
    )


@dataclass
class ImageFolderTaskConfig:
    root: str = ""
    """Folder of class folders: <root>/<class>/*.png|jpg, or <root>/{train,val,test}/<class>/..."""
    channels: Literal[1, 3] = 3
    """1: grayscale, 3: RGB."""
    image_size: PositiveInt = 84
    """Side of the images after resizing (bilinear, antialiased)."""
    val_fraction: OpenUnitInterval = 0.2
    """Fraction of classes held out for val when the folder has no train/val/test subfolders."""
    test_fraction: OpenUnitInterval = 0.2
    """Fraction of classes held out for test when the folder has no train/val/test subfolders."""
    split_seed: NonNegativeInt = 0
    """Seed of the class split by fractions (independent of the run seed, so runs share it)."""
    train_on: Literal["train", "trainval"] = "train"
    """Classes of split 'train': train alone or train + val."""
    ways: PositiveInt = 5
    """Classes per evaluation task (N)."""
    shots: PositiveInt = 1
    """Support examples per class in evaluation tasks (K)."""
    queries: PositiveInt = 15
    """Query examples per class in evaluation tasks (Q)."""
    train_ways: PositiveInt | None = None
    """Classes per training task; None: same as ways."""
    train_shots: PositiveInt | None = None
    """Support examples per class in training tasks; None: same as shots."""
    train_queries: NonNegativeInt | None = None
    """Query examples per class in training tasks; None: same as queries; 0 for learners that
    train on the support alone (Reptile)."""


def build_image_folder(cfg: ImageFolderTaskConfig, device: torch.device) -> FewShotDistribution:
    """Load the folder onto `device` (uint8) and build the train / val / test pools."""
    if not cfg.root:
        raise UsageError(
            "task.root is empty; set it to a folder laid out as <root>/<class>/<image>.png"
        )
    data = load_image_folder(
        cfg.root, cfg.image_size, cfg.channels, cfg.val_fraction, cfg.test_fraction, cfg.split_seed
    )
    images, counts = data.images.to(device), data.counts.to(device)
    rows = dict(data.splits)
    if cfg.train_on == "trainval":
        rows["train"] = sorted(rows["train"] + rows["val"])
    pools = {
        split: ClassPool(
            images, torch.tensor(rows[split], dtype=torch.long, device=device), None, counts
        )
        for split in SPLITS
    }
    return FewShotDistribution(
        pools, **task_sizes(cfg), input_shape=(cfg.channels, cfg.image_size, cfg.image_size)
    )
