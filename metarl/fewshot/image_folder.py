"""Any folder of images per class as a few-shot data set: `root/<class>/*.png|jpg|...`.

Class splits come from the folder when it has them (`root/train/<class>/`, `root/val/<class>/`,
`root/test/<class>/`, e.g. mini-ImageNet laid out by split), else from a seeded, deterministic
shuffle of the sorted class names cut by fractions. Images are read with Pillow, converted to
grayscale (`channels=1`) or RGB (`channels=3`), and resized to `S x S` with Pillow's bilinear
filter (antialiased when shrinking; the aspect ratio is not kept, as in mini-ImageNet).
Pixels are kept as uint8 (4x less memory than float32) and scaled to [0, 1] when sampled.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from metarl.errors import DataError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_DIRS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageFolderData:
    """All classes of a folder, CPU.

    `images`: uint8 `[P, D, C, S, S]` (D = the largest class; shorter classes are zero-padded),
    `counts`: int64 `[P]` images per class, `names[p]`: the class folder relative to the root,
    `splits`: split name ("train", "val", "test") -> the rows of its classes.
    """

    images: torch.Tensor
    counts: torch.Tensor
    names: tuple[str, ...]
    splits: dict[str, list[int]]


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_dirs(parent: Path) -> list[Path]:
    dirs = _visible_dirs(parent)
    if not dirs:
        raise DataError(
            f"{parent} has no class folders; lay the data out as {parent}/<class>/<image>.png"
        )
    return dirs


def _too_large(path: Path, detail: str) -> DataError:
    return DataError(
        f"{path} is refused by Pillow's decompression-bomb guard ({detail}); shrink or remove it"
    )


def _load_image(path: Path, mode: str, image_size: int) -> np.ndarray:
    """One image as uint8 `[C, S, S]`. Its pixel count is checked from the header (Pillow opens
    lazily) before anything is decoded, against Pillow's `MAX_IMAGE_PIXELS`."""
    try:
        with warnings.catch_warnings():  # between 1x and 2x the limit Pillow only warns
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and img.width * img.height > limit:
                raise _too_large(
                    path,
                    f"{img.width}x{img.height} pixels, more than PIL.Image.MAX_IMAGE_PIXELS = {limit}",
                )
            small = img.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
            arr = np.asarray(small, dtype=np.uint8)
    except Image.DecompressionBombError as exc:  # Pillow's own check, at open beyond 2x
        raise _too_large(path, str(exc).split(",")[0]) from None
    except DataError:
        raise
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(
            f"{path} is not a readable image ({type(exc).__name__}); remove or replace it"
        ) from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # [C, S, S]


def _load_class(folder: Path, mode: str, image_size: int) -> np.ndarray:
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise DataError(
            f"class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}); add some or remove it"
        )
    return np.stack([_load_image(p, mode, image_size) for p in files])  # [n, C, S, S]


def split_by_fractions(
    num_classes: int, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Deterministic split of classes `0..num_classes-1` (in sorted-name order) by fractions.

    A `torch.Generator` seeded with `seed` shuffles the classes; the first `round(test_fraction
    * n)` go to test, the next `round(val_fraction * n)` to val (each at least one), the rest to
    train. Each split's rows are returned sorted.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise UsageError(f"{name}={frac} must be between 0 and 1 (exclusive)")
    n_test = max(1, round(test_fraction * num_classes))
    n_val = max(1, round(val_fraction * num_classes))
    if n_test + n_val >= num_classes:
        raise UsageError(
            f"{num_classes} classes leave none for training with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}; add classes or lower the fractions"
        )
    perm = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed)).tolist()
    return {
        "test": sorted(perm[:n_test]),
        "val": sorted(perm[n_test : n_test + n_val]),
        "train": sorted(perm[n_test + n_val :]),
    }


def load_image_folder(
    root: str | Path,
    image_size: int = 84,
    channels: int = 3,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> ImageFolderData:
    """Load every class of `root` (see the module docstring) as uint8 `[P, D, C, S, S]`."""
    root = Path(root).expanduser()
    if str(root) in ("", ".") or not root.is_dir():
        raise DataError(
            f"image folder {str(root)!r} is not a folder; set task.root to a folder laid out as <root>/<class>/<image>.png"
        )
    if channels not in (1, 3):
        raise UsageError(f"channels={channels} must be 1 (grayscale) or 3 (RGB)")
    if not isinstance(image_size, int) or image_size < 1:
        raise UsageError(f"image_size={image_size!r} must be a positive integer")
    mode = "L" if channels == 1 else "RGB"

    present = [d for d in SPLIT_DIRS if (root / d).is_dir()]
    if present:
        missing = [d for d in SPLIT_DIRS if d not in present]
        if missing:
            raise DataError(
                f"{root} has {', '.join(present)}/ but no {', '.join(missing)}/; add the missing split folders or lay the classes out directly under {root}"
            )
        dirs = {split: _class_dirs(root / split) for split in SPLIT_DIRS}
        folders = [d for split in SPLIT_DIRS for d in dirs[split]]
        splits, start = {}, 0
        for split in SPLIT_DIRS:
            splits[split] = list(range(start, start + len(dirs[split])))
            start += len(dirs[split])
    else:
        folders = _class_dirs(root)
        splits = {}

    arrays = [_load_class(folder, mode, image_size) for folder in folders]
    if not splits:
        splits = split_by_fractions(len(folders), val_fraction, test_fraction, split_seed)
    largest = max(a.shape[0] for a in arrays)
    images = np.zeros((len(arrays), largest, channels, image_size, image_size), dtype=np.uint8)
    for p, a in enumerate(arrays):
        images[p, : a.shape[0]] = a
    counts = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
    names = tuple(folder.relative_to(root).as_posix() for folder in folders)
    return ImageFolderData(torch.from_numpy(images), counts, names, splits)
