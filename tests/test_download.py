"""Downloading, only ever against a local HTTP server on 127.0.0.1 that the test starts."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metarl.errors import DataError
from metarl.fewshot.download import OMNIGLOT_FILES, download_omniglot


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path, monkeypatch) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder) of a local server; proxies are switched off for it."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "served"
    (root / "python").mkdir(parents=True)
    _QuietHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/python", root / "python"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def make_zip(path: Path, member: str) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{member}/Alpha/character01/0001_01.png", b"fake png bytes" * 50)


def test_download_and_skip_existing(server, tmp_path: Path) -> None:
    url, served = server
    for name in OMNIGLOT_FILES:
        make_zip(served / name, name.removesuffix(".zip"))
    dest = tmp_path / "data"
    paths = download_omniglot(dest, base_url=url + "/")  # a trailing slash is fine
    assert paths == [dest / name for name in OMNIGLOT_FILES]
    for name in OMNIGLOT_FILES:
        assert (dest / name).read_bytes() == (served / name).read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == sorted(OMNIGLOT_FILES)  # no temp files left
    assert len(_QuietHandler.requests) == 2
    download_omniglot(dest, base_url=url)  # valid files present: nothing fetched again
    assert len(_QuietHandler.requests) == 2


def test_bad_download_leaves_nothing(server, tmp_path: Path) -> None:
    url, served = server
    (served / "images_background.zip").write_bytes(b"<html>not a zip</html>")
    dest = tmp_path / "data"
    with pytest.raises(DataError) as exc:
        download_omniglot(dest, base_url=url)
    assert "images_background.zip did not give a valid zip" in str(exc.value) and "\n" not in str(
        exc.value
    )
    assert list(dest.iterdir()) == []


def test_missing_file_is_an_error(server, tmp_path: Path) -> None:
    url, served = server
    make_zip(served / "images_background.zip", "images_background")  # evaluation zip missing: 404
    dest = tmp_path / "data"
    with pytest.raises(DataError) as exc:
        download_omniglot(dest, base_url=url)
    assert "images_evaluation.zip" in str(exc.value) and "HTTP 404" in str(exc.value)
    assert [p.name for p in dest.iterdir()] == ["images_background.zip"]
