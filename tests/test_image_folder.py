"""Image-folder data sets: layouts, class splits, channels, sampling, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metarl.errors import DataError, UsageError
from metarl.fewshot.image_folder import load_image_folder, split_by_fractions
from metarl.fewshot.tasks import ImageFolderTaskConfig, build_image_folder

CPU = torch.device("cpu")


def write_class(folder: Path, value: int, count: int, size: int = 12, suffix: str = ".png") -> None:
    """`count` solid-colour images (red channel = value, green = image index + 1)."""
    folder.mkdir(parents=True)
    for i in range(count):
        arr = np.zeros((size, size + 4, 3), dtype=np.uint8)  # not square on purpose
        arr[..., 0], arr[..., 1], arr[..., 2] = value, i + 1, 200
        Image.fromarray(arr).save(folder / f"img{i:02d}{suffix}")


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    for c in range(10):
        write_class(
            tmp_path / f"class{c}",
            10 * (c + 1),
            6 if c != 3 else 4,
            suffix=".jpg" if c == 5 else ".png",
        )
    return tmp_path


def test_flat_layout_and_fraction_split(flat: Path) -> None:
    data = load_image_folder(
        flat, image_size=8, channels=3, val_fraction=0.2, test_fraction=0.3, split_seed=0
    )
    assert data.images.shape == (10, 6, 3, 8, 8) and data.images.dtype == torch.uint8
    assert data.counts.tolist() == [6, 6, 6, 4, 6, 6, 6, 6, 6, 6]
    assert data.names == tuple(f"class{c}" for c in range(10))
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [5, 2, 3]
    assert sorted(sum(data.splits.values(), [])) == list(range(10))  # disjoint and complete
    # Red channel identifies the class (PNG exact); padded drawings of the short class are 0.
    assert data.images[0, :, 0].float().mean() == 10 and data.images[3, 4:].max() == 0


def test_fraction_split_is_seeded() -> None:
    assert split_by_fractions(50, 0.2, 0.2, seed=1) == split_by_fractions(50, 0.2, 0.2, seed=1)
    assert split_by_fractions(50, 0.2, 0.2, seed=1) != split_by_fractions(50, 0.2, 0.2, seed=2)
    with pytest.raises(UsageError, match="val_fraction"):
        split_by_fractions(50, 0.0, 0.2, seed=0)
    with pytest.raises(UsageError, match="leave none for training"):
        split_by_fractions(3, 0.6, 0.3, seed=0)


def test_grayscale(flat: Path) -> None:
    data = load_image_folder(flat, image_size=5, channels=1)
    assert data.images.shape == (10, 6, 1, 5, 5)


def test_split_subfolders(tmp_path: Path) -> None:
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for c in range(n):
            write_class(tmp_path / split / f"{split}{c}", 20 * c + 5, 3)
    data = load_image_folder(tmp_path, image_size=6, channels=3)
    assert data.splits == {"train": [0, 1, 2, 3], "val": [4, 5], "test": [6, 7, 8]}
    assert data.names[4] == "val/val0"


def test_build_and_sample(flat: Path) -> None:
    cfg = ImageFolderTaskConfig(
        root=str(flat),
        image_size=8,
        ways=2,
        shots=1,
        queries=2,
        train_ways=3,
        train_shots=2,
        train_queries=1,
        val_fraction=0.2,
        test_fraction=0.2,
    )
    dist = build_image_folder(cfg, CPU)
    assert dist.input_shape == (3, 8, 8)
    assert [dist.num_classes(s) for s in dist.splits] == [6, 2, 2]
    g = torch.Generator().manual_seed(0)
    ep = dist.sample("train", 50, g)
    assert ep.support_x.shape == (50, 6, 3, 8, 8) and ep.query_x.shape == (50, 3, 3, 8, 8)
    assert (
        ep.support_x.dtype == torch.float32
        and 0.0 <= ep.support_x.min()
        and ep.support_x.max() <= 1.0
    )
    # No padded (all-zero) image is ever drawn: every item has its blue channel set.
    assert (torch.cat([ep.support_x, ep.query_x], 1)[:, :, 2] > 0.7).all()
    trainval = build_image_folder(
        ImageFolderTaskConfig(root=str(flat), image_size=8, ways=2, queries=2, train_on="trainval"),
        CPU,
    )
    assert trainval.num_classes("train") == 8


def test_errors(tmp_path: Path, flat: Path) -> None:
    with pytest.raises(UsageError, match="task.root is empty"):
        build_image_folder(ImageFolderTaskConfig(), CPU)
    with pytest.raises(DataError, match="is not a folder"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(UsageError) as exc:  # more ways than the 2 val classes
        build_image_folder(
            ImageFolderTaskConfig(root=str(flat), image_size=4, ways=3, queries=1), CPU
        )
    assert "ways=3" in str(exc.value) and "'val'" in str(exc.value)
    with pytest.raises(UsageError, match="4 drawings"):  # class3 has only 4 images
        build_image_folder(
            ImageFolderTaskConfig(root=str(flat), image_size=4, ways=2, shots=2, queries=3), CPU
        )
    with pytest.raises(UsageError, match="channels"):
        load_image_folder(flat, channels=2)

    empty = tmp_path / "empty_root"
    (empty / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="has no images"):
        load_image_folder(empty)
    bad = tmp_path / "bad"
    write_class(bad / "a", 1, 2)
    (bad / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as exc:
        load_image_folder(bad)
    assert "broken.png" in str(exc.value) and "\n" not in str(exc.value)
    partial = tmp_path / "partial"
    write_class(partial / "train" / "a", 1, 2)
    with pytest.raises(DataError, match="no val, test/"):
        load_image_folder(partial)
