"""Omniglot loading: both sources give the same pixels, the splits, pixel range, clear errors."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metarl import registry
from metarl.config import RunConfig
from metarl.contracts import TaskDistribution
from metarl.errors import DataError, UsageError
from metarl.fewshot import omniglot as om
from metarl.fewshot.tasks import OmniglotTaskConfig, build_omniglot

CPU = torch.device("cpu")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- sources agree


def test_official_zip_equals_npz_rows(omniglot_dir: Path, omniglot) -> None:
    ink_zip, names, ids = om.read_official(omniglot_dir / "images_background_small1.zip")
    assert ink_zip.shape == (136, 20, 105, 105) and len(names) == 136
    ink_npz, npz_names = om.read_npz(
        omniglot_dir / "images_background.npz", "background", om.read_alphabets(omniglot_dir)
    )
    row = {name: r for r, name in enumerate(npz_names)}
    rows = [row[name] for name in names]  # map by Alphabet/characterNN
    assert rows == [i - 1 for i in ids]  # and the file ids agree with the row order
    assert np.array_equal(ink_zip, ink_npz[rows])
    # The resized, cached tensor agrees too (same resize path for both sources).
    assert torch.equal(om.resize_ink(ink_zip, 28).unsqueeze(2), omniglot.images[rows])


def test_extracted_folder_equals_zip(omniglot_dir: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(omniglot_dir / "images_background_small1.zip") as zf:
        members = [m for m in zf.namelist() if m.startswith("images_background_small1/Latin/")]
        zf.extractall(tmp_path, members)
    ink_dir, names, ids = om.read_official(tmp_path / "images_background_small1")
    assert len(names) == 26 and all(n.startswith("Latin/character") for n in names)
    assert ids == list(range(683, 709))
    ink_zip, zip_names, zip_ids = om.read_official(omniglot_dir / "images_background_small1.zip")
    first = zip_ids.index(683)
    assert np.array_equal(ink_dir, ink_zip[first : first + 26])


def _png(ink: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(~ink).convert("1").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_full_official_zips_load_like_npz(omniglot_dir: Path, omniglot, tmp_path: Path) -> None:
    """Write the whole release as official zips from the arrays; the loader reads it back."""
    alphabets = om.read_alphabets(omniglot_dir)
    for which in om.SETS:
        ink, names = om.read_npz(omniglot_dir / f"images_{which}.npz", which, alphabets)
        first = 1 if which == "background" else 965
        with zipfile.ZipFile(tmp_path / f"images_{which}.zip", "w") as zf:
            for r, name in enumerate(names):
                for d in range(20):
                    zf.writestr(
                        f"images_{which}/{name}/{first + r:04d}_{d + 1:02d}.png", _png(ink[r, d])
                    )
    data = om.load_omniglot(tmp_path, 28, use_cache=False)
    assert data.names == omniglot.names
    assert torch.equal(data.images, omniglot.images)


# ---------------------------------------------------------------- tensor and cache


def test_tensor_shape_and_pixels(omniglot) -> None:
    x = omniglot.images
    assert x.shape == (1623, 20, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    peak = x.amax(dim=(-1, -2, -3))  # [1623, 20]
    assert peak.min() > 0.25 and (peak == 1.0).float().mean() > 0.9  # every drawing has ink
    assert x.mean() < 0.2  # ink is the minority ...
    assert (x == 0).float().mean() > 0.6  # ... and background is 0
    assert x[..., 0, 0].max() == 0.0  # corners are background
    assert omniglot.num_background == 964
    assert (
        omniglot.names[0] == "Arcadian/character01" and omniglot.names[964] == "Angelic/character01"
    )


def test_cache_roundtrip(omniglot_dir: Path, omniglot, tmp_path: Path) -> None:
    cached = list((om.cache_root() / "omniglot-resized").glob("omniglot_*_28.npz"))
    assert cached  # the session fixture wrote (or found) its cache file
    start = time.perf_counter()
    again = om.load_omniglot(omniglot_dir, 28)
    assert time.perf_counter() - start < 5.0
    assert torch.equal(again.images, omniglot.images) and again.names == omniglot.names
    assert again.root == omniglot_dir
    # Writing and reading a cache file directly; an unreadable one is ignored (rebuilt).
    small = om.OmniglotData(
        torch.rand(3, 20, 1, 5, 5), ("A/character01", "A/character02", "B/character01"), 2
    )
    om._write_cache(tmp_path / "c.npz", small)
    back = om._read_cache(tmp_path / "c.npz")
    assert (
        torch.equal(back.images, small.images)
        and back.names == small.names
        and back.num_background == 2
    )
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert om._read_cache(tmp_path / "bad.npz") is None


def test_resize_is_area_average() -> None:
    ink = np.zeros((1, 105, 105), dtype=bool)
    ink[0, :, :35] = True  # left third inked
    small = om.resize_ink(ink, 3)
    assert torch.allclose(small[0], torch.tensor([[1.0, 0.0, 0.0]] * 3))
    assert om.resize_ink(ink, 105).dtype == torch.float32


# ---------------------------------------------------------------- splits


def test_vinyals_split_counts_and_disjoint(omniglot) -> None:
    chars = {}
    for split, n in (("train", 1028), ("val", 172), ("test", 423), ("trainval", 1200)):
        rows, turns = om.split_classes(omniglot, "vinyals", split)
        assert rows.numel() == 4 * n  # every rotation is a class
        assert torch.equal(turns.bincount(minlength=4), torch.full((4,), n))
        chars[split] = set(rows.tolist())
        assert len(chars[split]) == n
    assert not chars["train"] & chars["val"]
    assert not chars["train"] & chars["test"] and not chars["val"] & chars["test"]
    assert chars["trainval"] == chars["train"] | chars["val"]
    assert len(chars["trainval"] | chars["test"]) == 1623


def test_vinyals_rule_equals_split_files(omniglot) -> None:
    without_files = om.OmniglotData(omniglot.images, omniglot.names, omniglot.num_background, None)
    for split in ("train", "val", "test", "trainval"):
        from_files = om.split_classes(omniglot, "vinyals", split)
        from_rule = om.split_classes(without_files, "vinyals", split)
        assert torch.equal(from_files[0], from_rule[0]) and torch.equal(from_files[1], from_rule[1])


def test_lake_split(omniglot) -> None:
    rows = {s: om.split_classes(omniglot, "lake", s) for s in ("train", "val", "test", "trainval")}
    assert all(turns is None for _, turns in rows.values())
    sets = {s: set(r.tolist()) for s, (r, _) in rows.items()}
    assert [len(sets[s]) for s in ("train", "val", "test", "trainval")] == [792, 172, 659, 964]
    assert sets["test"] == set(range(964, 1623))  # the evaluation set
    assert sets["trainval"] == set(range(964)) == sets["train"] | sets["val"]
    assert not sets["train"] & sets["val"]
    assert {omniglot.names[r].split("/")[0] for r in sets["val"]} == set(om.VINYALS_VAL_ALPHABETS)


def test_build_omniglot_distribution(omniglot_dir, omniglot) -> None:
    cfg = OmniglotTaskConfig(
        data_dir=str(omniglot_dir), ways=5, shots=1, queries=3, train_ways=20, train_shots=2
    )
    dist = build_omniglot(cfg, CPU)
    assert dist.input_shape == (1, 28, 28) and dist.loss == "cross_entropy"
    assert dist.splits == ("train", "val", "test")
    assert [dist.num_classes(s) for s in dist.splits] == [4800, 688, 1692]
    g = torch.Generator().manual_seed(0)
    train = dist.sample("train", 4, g)
    assert train.support_x.shape == (4, 40, 1, 28, 28) and train.query_x.shape == (4, 60, 1, 28, 28)
    assert (train.ways, train.shots) == (20, 2)
    test = dist.sample("test", 3, g)
    assert test.support_x.shape == (3, 5, 1, 28, 28) and test.query_y.shape == (3, 15)
    with pytest.raises(UsageError, match="unknown split"):
        dist.sample("holdout", 1, g)
    assert isinstance(dist, TaskDistribution)
    lake = build_omniglot(
        OmniglotTaskConfig(data_dir=str(omniglot_dir), split="lake", train_on="train"), CPU
    )
    assert [lake.num_classes(s) for s in lake.splits] == [792, 172, 659]


def test_registry_builds_omniglot(omniglot_dir, omniglot) -> None:
    task = {
        "kind": "omniglot",
        "data_dir": str(omniglot_dir),
        "ways": 20,
        "train_ways": 60,
        "train_queries": 5,
    }
    dist = registry.build_distribution(RunConfig(task=task), CPU)
    assert dist.sizes("train") == (60, 1, 5) and dist.sizes("val") == (20, 1, 15)
    with pytest.raises(UsageError, match="unknown config key task.way"):
        registry.build_distribution(RunConfig(task={"kind": "omniglot", "way": 5}), CPU)
    with pytest.raises(UsageError, match="task.split"):
        registry.build_distribution(RunConfig(task={"kind": "omniglot", "split": "random"}), CPU)


# ---------------------------------------------------------------- errors name the problem and the fix


def test_bad_sizes_raise(omniglot_dir, omniglot) -> None:
    with pytest.raises(UsageError) as exc:
        build_omniglot(OmniglotTaskConfig(data_dir=str(omniglot_dir), split="lake", ways=200), CPU)
    assert (
        "ways=200" in _one_line(exc)
        and "172 classes" in str(exc.value)
        and "'val'" in str(exc.value)
    )
    with pytest.raises(UsageError) as exc:
        build_omniglot(OmniglotTaskConfig(data_dir=str(omniglot_dir), shots=10, queries=15), CPU)
    assert "20 drawings" in _one_line(exc) and "lower shots or queries" in str(exc.value)
    with pytest.raises(UsageError, match="image_size"):
        om.load_omniglot(omniglot_dir, 0)


def test_missing_data_dir(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as exc:
        om.load_omniglot(missing)
    msg = _one_line(exc)
    assert (
        str(missing) in msg
        and f"metarl download omniglot {missing}" in msg
        and "METARL_OMNIGLOT" in msg
    )
    monkeypatch.setenv("METARL_OMNIGLOT", str(missing))
    with pytest.raises(DataError, match="METARL_OMNIGLOT"):
        om.resolve_data_dir(None)
    with pytest.raises(DataError) as exc:  # a folder without the data
        om.load_omniglot(tmp_path, use_cache=False)
    assert "no Omniglot background set" in _one_line(exc) and "metarl download omniglot" in str(
        exc.value
    )


def test_data_dir_resolution_order(omniglot_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("METARL_OMNIGLOT", str(tmp_path))
    assert om.resolve_data_dir(str(omniglot_dir)) == omniglot_dir  # explicit first
    assert om.resolve_data_dir(None) == tmp_path  # then the env var
    monkeypatch.delenv("METARL_OMNIGLOT")
    assert om.resolve_data_dir(None) == om.dev_data_dir() == omniglot_dir  # then the dev copy
    monkeypatch.setenv("METARL_CACHE", str(tmp_path))
    assert om.default_data_dir() == tmp_path / "omniglot"


@pytest.mark.parametrize("name", ["images_background.npz", "images_background.zip"])
def test_corrupt_file_is_named(name: str, omniglot_dir: Path, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(b"this is not an archive" * 10)
    (tmp_path / "alphabets.csv").write_bytes((omniglot_dir / "alphabets.csv").read_bytes())
    (tmp_path / "images_evaluation.npz").symlink_to(omniglot_dir / "images_evaluation.npz")
    with pytest.raises(DataError) as exc:
        om.load_omniglot(tmp_path, use_cache=False)
    msg = _one_line(exc)
    assert str(tmp_path / name) in msg and "corrupt" in msg


def test_wrong_array_shape_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "images_background.npz", images=np.ones((3, 20, 105, 105), dtype=bool))
    with pytest.raises(DataError) as exc:
        om.read_npz(tmp_path / "images_background.npz", "background", [])
    assert "expected bool [964, 20, 105, 105]" in _one_line(exc)


def test_partial_official_set_is_rejected(omniglot_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "images_background.zip").symlink_to(omniglot_dir / "images_background_small1.zip")
    (tmp_path / "images_evaluation.npz").symlink_to(omniglot_dir / "images_evaluation.npz")
    (tmp_path / "alphabets.csv").symlink_to(omniglot_dir / "alphabets.csv")
    with pytest.raises(DataError) as exc:
        om.load_omniglot(tmp_path, use_cache=False)
    assert "holds 136 characters" in _one_line(exc)


def test_bad_split_file_line(omniglot, tmp_path: Path) -> None:
    (tmp_path / "splits" / "vinyals").mkdir(parents=True)
    (tmp_path / "splits" / "vinyals" / "val.txt").write_text(
        "Hebrew/character01/rot000\nKlingon/character01/rot000\n"
    )
    data = om.OmniglotData(omniglot.images, omniglot.names, omniglot.num_background, tmp_path)
    with pytest.raises(DataError) as exc:
        om.split_classes(data, "vinyals", "val")
    assert "val.txt line 2" in _one_line(exc) and "Klingon" in str(exc.value)
