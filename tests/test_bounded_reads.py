"""Reads are bounded before anything is decoded: zip entry sizes from the zip's directory,
encryption and compression method refused in one line, image headers checked (Pillow's
decompression-bomb guard). Real zips and PNGs, written here byte by byte."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from metarl.errors import DataError
from metarl.fewshot import omniglot as om
from metarl.fewshot.image_folder import load_image_folder
from tests.cli_cases import png_claiming

NAME = "images_background/Greek/character01/0394_01.png"


def drawing() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (105, 105), 1).save(buf, format="PNG")
    return buf.getvalue()


def one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_a_zip_bomb_is_refused_from_its_directory_without_inflating(tmp_path: Path) -> None:
    path = tmp_path / "images_background.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(NAME, b"\0" * (32 << 20))  # 32 MiB that deflate to about 32 kB
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(DataError) as exc:
        om.read_official(path)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert f"{NAME} inflates to {32 << 20} bytes, more than the {om.MAX_ENTRY_BYTES}" in one_line(
        exc
    )
    assert peak < 8 << 20 and seconds < 1.0  # nothing was decompressed


def _patch(path: Path, field: str, value: int) -> None:
    """Set a 2-byte field ("flags" or "method") of the only entry, in its local and central
    headers (offsets from the ZIP specification)."""
    offsets = {"flags": (6, 8), "method": (8, 10)}[field]
    data = bytearray(path.read_bytes())
    for signature, offset in zip((b"PK\x03\x04", b"PK\x01\x02"), offsets, strict=True):
        at = data.index(signature)
        data[at + offset : at + offset + 2] = value.to_bytes(2, "little")
    path.write_bytes(bytes(data))


def test_unknown_compression_and_encryption_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "images_background.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(NAME, drawing())
    assert list(om._entries(path)) == [(NAME, drawing())]  # readable as written
    _patch(path, "method", 99)
    with pytest.raises(DataError) as exc:
        om.read_official(path)
    assert f"{NAME} uses an unsupported compression method (99)" in one_line(exc)

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(NAME, drawing())
    _patch(path, "flags", 0x1)  # the "encrypted" bit: zipfile would ask for a password
    with pytest.raises(DataError) as exc:
        om.read_official(path)
    assert f"{NAME} is encrypted" in one_line(exc)


def test_oversized_drawings_are_refused_from_their_header(tmp_path: Path) -> None:
    path = tmp_path / "images_background.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(NAME, png_claiming(20000, 20000))
    with pytest.raises(DataError) as exc:
        om.read_official(path)
    assert f"{NAME} is refused by Pillow's decompression-bomb guard (Image size" in one_line(exc)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(NAME, png_claiming(300, 200))
    with pytest.raises(DataError) as exc:
        om.read_official(path)
    assert f"{NAME} is 300x200, expected 105x105" in one_line(exc)
    folder = tmp_path / "images_background" / "Greek" / "character01"
    folder.mkdir(parents=True)
    (folder / "0394_01.png").write_bytes(b"\0" * (om.MAX_ENTRY_BYTES + 1))
    with pytest.raises(DataError) as exc:
        om.read_official(tmp_path / "images_background")
    assert f"is larger than {om.MAX_ENTRY_BYTES} bytes" in one_line(exc)


@pytest.mark.parametrize(("size", "source"), [((20000, 20000), "Pillow"), ((10000, 10000), "ours")])
def test_image_folder_bombs_are_one_line(tmp_path: Path, size, source) -> None:
    """Beyond 2x MAX_IMAGE_PIXELS Pillow's open refuses; between 1x and 2x (only a warning in
    Pillow) the header check refuses. Either way: nothing decoded, one line."""
    for c in range(3):
        (tmp_path / f"c{c}").mkdir()
        Image.new("L", (4, 4)).save(tmp_path / f"c{c}" / "a.png")
    (tmp_path / "c1" / "big.png").write_bytes(png_claiming(*size))
    with pytest.raises(DataError) as exc:
        load_image_folder(tmp_path, 8, 1, 0.34, 0.34)
    msg = one_line(exc)
    assert "big.png is refused by Pillow's decompression-bomb guard" in msg
    assert ("10000x10000 pixels" in msg) == (source == "ours")
