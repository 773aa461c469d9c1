"""Download the official Omniglot release. Nothing in metarl downloads unless this is called.

`download_omniglot(dest)` fetches `images_background.zip` and `images_evaluation.zip` from
the Omniglot repository (github.com/brendenlake/omniglot, folder `python/`) into `dest`, which
`metarl.fewshot.omniglot` then reads directly (no need to extract).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from metarl.errors import DataError

OMNIGLOT_BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
OMNIGLOT_FILES = ("images_background.zip", "images_evaluation.zip")


def _valid_zip(path: Path) -> bool:
    """A readable zip whose members all pass their CRC check."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def download_file(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` atomically: a temp file beside it, checked as a zip, then renamed.

    Raises `DataError` (one line: URL, reason, what to do) on a network error or a bad file;
    `dest` is then left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=timeout) as response,
            ):
                shutil.copyfileobj(response, out, length=1 << 20)
        except (urllib.error.URLError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                reason = f"HTTP {exc.code} {exc.reason}"
            else:
                reason = str(getattr(exc, "reason", None) or exc)
            raise DataError(
                f"could not download {url} ({reason}); check the network or fetch the file by hand into {dest.parent}"
            ) from None
        if not _valid_zip(tmp):
            raise DataError(
                f"{url} did not give a valid zip file; check the URL or fetch the file by hand into {dest.parent}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_omniglot(
    dest: Path, base_url: str = OMNIGLOT_BASE_URL, timeout: float = 60.0
) -> list[Path]:
    """Download the official Omniglot zips into `dest`; returns their paths.

    A file already in `dest` that is a valid zip is kept, so running it twice is cheap.
    """
    dest = Path(dest).expanduser()
    paths = []
    for name in OMNIGLOT_FILES:
        path = dest / name
        if not (path.is_file() and _valid_zip(path)):
            download_file(f"{base_url.rstrip('/')}/{name}", path, timeout)
        paths.append(path)
    return paths
