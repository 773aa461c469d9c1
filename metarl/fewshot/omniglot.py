"""Omniglot as one tensor `[num_chars, 20, 1, S, S]`, from the offline arrays or the official zips.

Two sources give the same rows, so the split lists resolve in both:
- the offline copy: `images_{background,evaluation}.npz` (bool, True = white background) with
  `alphabets.csv` naming the rows;
- the official release (`images_background.zip`, `images_evaluation.zip` of
  github.com/brendenlake/omniglot, or their extracted folders): PNGs at
  `<Alphabet>/characterNN/<id>_<drawing>.png`.
Either way row `r` is the character with the `r`-th smallest id (ids 1..964 background,
965..1623 evaluation) and drawing `d` is file `<id>_<d+1:02d>.png`.

Pixels: ink = 1.0, background = 0.0. Resizing from 105 to `S` is *area* averaging
(`torch.nn.functional.interpolate(mode="area")`, i.e. an exact box filter over the source
pixels each output pixel covers): antialiased, deterministic and the same on every machine.
The resized arrays are cached as a compressed `.npz` under `$METARL_CACHE` (default
`~/.cache/metarl`) in `omniglot-resized/`, keyed by a checksum of the source files and `S`.

Splits (a class is a row of the tensor plus a number of quarter turns):
- `vinyals` (Vinyals et al. 2016): 1028 train / 172 val / 423 test / 1200 trainval characters
  read from `splits/vinyals/*.txt` when the data folder has them, else from the rule those
  files follow (val = 5 background alphabets; test = 12 evaluation alphabets plus Gurmukhi
  characters 42-45; train = the rest). Each rotation by 0/90/180/270 degrees is its own class.
- `lake` (Lake et al. 2015): train on the background set, test on the evaluation set, no
  rotations. `val` is the same 5 background alphabets that Vinyals holds out (172 characters),
  so `train` is the other 25 background alphabets (792) and `trainval` all 30 (964); `test`
  is all 659 evaluation characters (classes are drawn from the whole set unless
  `task.within_alphabet` draws each task's classes from one alphabet, as in Lake's 20-way runs).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from metarl.errors import DataError, UsageError

SETS = ("background", "evaluation")
NUM_DRAWINGS = 20
RAW_SIZE = 105
NUM_CHARACTERS = {"background": 964, "evaluation": 659}
CACHE_VERSION = 1
MAX_ENTRY_BYTES = 1 << 20
"""Largest PNG read (an Omniglot drawing is about 300 bytes): checked from the zip's directory
or the file's size before anything is decompressed, so a zip bomb is refused without cost."""
ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}

VINYALS_VAL_ALPHABETS = (
    "Armenian",
    "Bengali",
    "Early_Aramaic",
    "Hebrew",
    "Mkhedruli_(Georgian)",
)
VINYALS_TEST_ALPHABETS = (
    "Kannada",
    "Keble",
    "Malayalam",
    "Manipuri",
    "Mongolian",
    "Old_Church_Slavonic_(Cyrillic)",
    "Oriya",
    "Sylheti",
    "Syriac_(Serto)",
    "Tengwar",
    "Tibetan",
    "ULOG",
)
# Vinyals test also takes the last characters of Gurmukhi (its first 41 are in train).
VINYALS_TEST_PARTIAL = ("Gurmukhi", 42)

_PNG = re.compile(r"(?:^|/)([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")


@dataclass(frozen=True)
class OmniglotData:
    """All Omniglot characters, CPU.

    `images`: float32 `[num_chars, 20, 1, S, S]`, ink 1.0; `names[r]` is `Alphabet/characterNN`
    of row `r`; rows `[0, num_background)` are the background set, the rest the evaluation set.
    """

    images: torch.Tensor
    names: tuple[str, ...]
    num_background: int
    root: Path | None = None
    """The data folder it came from (where `splits/` is looked up)."""

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def row_of(self) -> dict[str, int]:
        """`Alphabet/characterNN` -> row."""
        return {name: r for r, name in enumerate(self.names)}


# ---------------------------------------------------------------- locating the data


def cache_root() -> Path:
    """`$METARL_CACHE`, else `~/.cache/metarl`."""
    env = os.environ.get("METARL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metarl"


def default_data_dir() -> Path:
    """Where `metarl download omniglot` puts the data when no folder is given."""
    return cache_root() / "omniglot"


def dev_data_dir() -> Path:
    """The development copy beside the repository: `<repo root>/../shared/data/omniglot`."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "omniglot"


def _how_to_get(path: Path) -> str:
    return f"get it with `metarl download omniglot {path}` or set METARL_OMNIGLOT to a folder that has it"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The Omniglot folder: `data_dir` > `$METARL_OMNIGLOT` > the development copy > the cache.

    Raises `DataError` naming the folder and how to get the data when it does not exist.
    """
    if data_dir is not None and str(data_dir) != "":
        path, what = Path(data_dir).expanduser(), "task.data_dir"
    elif os.environ.get("METARL_OMNIGLOT"):
        path, what = Path(os.environ["METARL_OMNIGLOT"]).expanduser(), "METARL_OMNIGLOT"
    elif dev_data_dir().is_dir():
        return dev_data_dir()
    else:
        path, what = default_data_dir(), "default folder"
    if not path.is_dir():
        raise DataError(
            f"Omniglot data not found: {path} ({what}) is not a folder; {_how_to_get(path)}"
        )
    return path


def find_source(root: Path, which: str) -> Path:
    """The file or folder holding set `which` ("background"/"evaluation") in `root`.

    Preference: `images_<which>.npz` (fastest), then the extracted `images_<which>/` folder,
    then `images_<which>.zip`.
    """
    for candidate in (f"images_{which}.npz", f"images_{which}", f"images_{which}.zip"):
        path = root / candidate
        if path.exists():
            return path
    raise DataError(
        f"no Omniglot {which} set in {root} (expected images_{which}.npz, images_{which}.zip "
        f"or an images_{which}/ folder); {_how_to_get(root)}"
    )


# ---------------------------------------------------------------- reading the raw sets


def _corrupt(path: Path, exc: BaseException) -> DataError:
    return DataError(
        f"{path} is corrupt or not Omniglot data ({type(exc).__name__}); replace it with a good "
        f"copy, e.g. delete it and run `metarl download omniglot {path.parent}`"
    )


def read_alphabets(root: Path) -> list[tuple[str, str, int, int]]:
    """Rows of `alphabets.csv`: (alphabet, set, first id, last id)."""
    path = root / "alphabets.csv"
    if not path.is_file():
        raise DataError(
            f"{path} is missing; the .npz arrays need it to name their rows (restore it, or use "
            f"the official zips from `metarl download omniglot {root}`)"
        )
    try:
        with path.open(newline="") as f:
            return [
                (r["alphabet"], r["set"], int(r["first_character_id"]), int(r["last_character_id"]))
                for r in csv.DictReader(f)
            ]
    except (KeyError, ValueError, TypeError, csv.Error) as exc:
        raise _corrupt(path, exc) from None


def read_npz(
    path: Path, which: str, alphabets: list[tuple[str, str, int, int]]
) -> tuple[np.ndarray, list[str]]:
    """Set `which` from the offline arrays: (ink `bool [n, 20, 105, 105]`, names `[n]`)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            white = data["images"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise _corrupt(path, exc) from None
    expected = (NUM_CHARACTERS[which], NUM_DRAWINGS, RAW_SIZE, RAW_SIZE)
    if white.dtype != np.bool_ or white.shape != expected:
        raise DataError(
            f"{path} holds images {white.dtype} {list(white.shape)}, expected bool {list(expected)}; "
            f"replace it with the file of the offline Omniglot copy"
        )
    first_id = 1 if which == "background" else NUM_CHARACTERS["background"] + 1
    names = [""] * expected[0]
    for alphabet, _, first, last in alphabets:
        for cid in range(first, last + 1):
            if 0 <= cid - first_id < len(names):
                names[cid - first_id] = f"{alphabet}/character{cid - first + 1:02d}"
    if "" in names:
        raise DataError(
            f"{path.parent / 'alphabets.csv'} does not name every row of {path}; restore it"
        )
    return np.logical_not(white, out=white), names  # in place: no second 200 MB array


def _junk(name: str) -> bool:
    """macOS archive litter (`__MACOSX/`, `._x.png`) that is not an image."""
    return "__MACOSX" in name or name.rsplit("/", 1)[-1].startswith("._")


def _refuse(source: Path, name: str, why: str) -> DataError:
    return DataError(f"{source}: {name} {why}; use the official release (metarl download omniglot)")


def _zip_entry(source: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The bytes of one entry, after the checks its directory record allows: encryption, the
    compression method and the inflated size (`MAX_ENTRY_BYTES`) are refused up front."""
    if info.flag_bits & 0x1:
        raise _refuse(source, info.filename, "is encrypted")
    if info.compress_type not in ZIP_METHODS:
        raise _refuse(
            source, info.filename, f"uses an unsupported compression method ({info.compress_type})"
        )
    if info.file_size > MAX_ENTRY_BYTES:
        raise _refuse(
            source,
            info.filename,
            f"inflates to {info.file_size} bytes, more than the {MAX_ENTRY_BYTES} of any drawing",
        )
    # ZipExtFile stops at the declared size, so an entry that lies about it fails its CRC.
    return zf.read(info)


def _entries(source: Path) -> Iterable[tuple[str, bytes]]:
    """(relative path, bytes) of every PNG in a zip or a folder, each at most MAX_ENTRY_BYTES."""
    if source.is_dir():
        for p in sorted(source.rglob("*.png")):
            if not _junk(p.name):
                rel = p.relative_to(source).as_posix()
                if p.stat().st_size > MAX_ENTRY_BYTES:
                    raise _refuse(source, rel, f"is larger than {MAX_ENTRY_BYTES} bytes")
                yield rel, p.read_bytes()
        return
    try:
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".png") and not _junk(info.filename):
                    yield info.filename, _zip_entry(source, zf, info)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise _corrupt(source, exc) from None


def read_official(source: Path) -> tuple[np.ndarray, list[str], list[int]]:
    """A set of the official release (zip or extracted folder), rows ordered by character id.

    Returns ink `bool [n, 20, 105, 105]`, names `Alphabet/characterNN` `[n]` and ids `[n]`.
    """
    chars: dict[int, tuple[str, dict[int, np.ndarray]]] = {}
    for rel, data in _entries(source):
        m = _PNG.search(rel)
        if m is None:
            raise DataError(
                f"{source}: {rel} is not <Alphabet>/characterNN/<id>_<NN>.png; use the official release"
            )
        alphabet, char, cid, drawing = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        try:
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                if img.size != (RAW_SIZE, RAW_SIZE):
                    raise DataError(
                        f"{source}: {rel} is {img.size[0]}x{img.size[1]}, expected 105x105"
                    )
                white = np.asarray(img.convert("L")) >= 128
        except Image.DecompressionBombError as exc:  # Pillow refuses the header at open
            raise DataError(
                f"{source}: {rel} is refused by Pillow's decompression-bomb guard "
                f"({str(exc).split(',')[0]}), expected 105x105; use the official release"
            ) from None
        except DataError:
            raise
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(
                f"{source}: {rel} is not a readable PNG ({type(exc).__name__}); get the data again"
            ) from None
        if white.shape != (RAW_SIZE, RAW_SIZE):
            raise DataError(
                f"{source}: {rel} is {white.shape[1]}x{white.shape[0]}, expected 105x105"
            )
        chars.setdefault(cid, (f"{alphabet}/{char}", {}))[1][drawing] = ~white
    if not chars:
        raise DataError(f"{source} holds no Omniglot PNGs; {_how_to_get(source.parent)}")
    ids = sorted(chars)
    images = np.empty((len(ids), NUM_DRAWINGS, RAW_SIZE, RAW_SIZE), dtype=bool)
    for r, cid in enumerate(ids):
        name, drawings = chars[cid]
        if sorted(drawings) != list(range(1, NUM_DRAWINGS + 1)):
            raise DataError(
                f"{source}: {name} has drawings {sorted(drawings)}, expected 1..20; get the data again"
            )
        images[r] = np.stack([drawings[d] for d in range(1, NUM_DRAWINGS + 1)])
    return images, [chars[cid][0] for cid in ids], ids


def resize_ink(ink: np.ndarray, image_size: int, chunk: int = 4096) -> torch.Tensor:
    """Ink `bool [..., 105, 105]` -> float32 `[..., S, S]` by area averaging, in chunks (memory)."""
    lead = ink.shape[:-2]
    flat = torch.from_numpy(np.ascontiguousarray(ink)).reshape(-1, 1, RAW_SIZE, RAW_SIZE)
    if image_size == RAW_SIZE:
        return flat.float().reshape(*lead, RAW_SIZE, RAW_SIZE)
    out = torch.empty(flat.shape[0], 1, image_size, image_size)
    for i in range(0, flat.shape[0], chunk):
        out[i : i + chunk] = F.interpolate(
            flat[i : i + chunk].float(), size=(image_size, image_size), mode="area"
        )
    return out.reshape(*lead, image_size, image_size)


# ---------------------------------------------------------------- the cached loader


def _fingerprint(paths: list[Path], image_size: int) -> str:
    """Checksum of the source files' bytes (a folder: its file names, sizes and times) and S."""
    h = hashlib.sha256(f"v{CACHE_VERSION}:S{image_size}".encode())
    for path in paths:
        h.update(path.name.encode())
        if path.is_dir():
            for p in sorted(path.rglob("*.png")):
                st = p.stat()
                h.update(f"{p.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        elif path.is_file():
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
    return h.hexdigest()[:20]


def _read_cache(path: Path) -> OmniglotData | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            images = torch.from_numpy(data["images"])
            names = tuple(str(n) for n in data["names"])
            num_background = int(data["num_background"])
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
        return None  # unreadable cache: rebuild it
    return OmniglotData(images, names, num_background)


def _write_cache(path: Path, data: OmniglotData) -> None:
    """Atomic write (temp file then rename), so parallel loaders never see half a file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        arrays = {
            "images": data.images.numpy(),
            "names": np.array(data.names),
            "num_background": np.array(data.num_background, dtype=np.int64),
        }
        # An .npz written at zlib level 1: 3x faster to write than np.savez_compressed, as
        # fast to read, 7.7 MB instead of 5.6 MB at S=28 (float32 would be 100 MB raw).
        with (
            os.fdopen(fd, "wb") as f,
            zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        ):
            for key, value in arrays.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, value, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:  # a read-only or full cache only costs time
            Path(tmp).unlink(missing_ok=True)


def load_omniglot(
    data_dir: str | Path | None = None,
    image_size: int = 28,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> OmniglotData:
    """All 1623 characters as float32 `[1623, 20, 1, S, S]` (ink 1.0) on the CPU.

    `data_dir`: see `resolve_data_dir`. `cache_dir`: where resized arrays are kept (default
    `<cache_root()>/omniglot-resized`). Cold load: a few seconds; cached: under a second.
    """
    if not isinstance(image_size, int) or not 1 <= image_size <= RAW_SIZE:
        raise UsageError(
            f"image_size={image_size!r} must be an integer in 1..105 (28 is the convention)"
        )
    root = resolve_data_dir(data_dir)
    sources = [find_source(root, which) for which in SETS]
    needs_csv = any(s.suffix == ".npz" for s in sources)
    fingerprint_paths = sources + ([root / "alphabets.csv"] if needs_csv else [])
    cache_file = None
    if use_cache:
        cache = Path(cache_dir) if cache_dir is not None else cache_root() / "omniglot-resized"
        cache_file = (
            cache / f"omniglot_{_fingerprint(fingerprint_paths, image_size)}_{image_size}.npz"
        )
        if cache_file.is_file() and (cached := _read_cache(cache_file)) is not None:
            return dataclasses.replace(cached, root=root)

    alphabets = read_alphabets(root) if needs_csv else []
    parts, names = [], []
    for which, source in zip(SETS, sources, strict=True):
        if source.suffix == ".npz":
            ink, set_names = read_npz(source, which, alphabets)
        else:
            ink, set_names, ids = read_official(source)
            first = 1 if which == "background" else NUM_CHARACTERS["background"] + 1
            if len(ids) != NUM_CHARACTERS[which] or ids[0] != first:
                raise DataError(
                    f"{source} holds {len(ids)} characters (ids {ids[0]}..{ids[-1]}), expected the "
                    f"{NUM_CHARACTERS[which]} of the full {which} set; {_how_to_get(root)}"
                )
        parts.append(resize_ink(ink, image_size).unsqueeze(2))  # [n, 20, 1, S, S]
        names.extend(set_names)
    data = OmniglotData(torch.cat(parts), tuple(names), NUM_CHARACTERS["background"], root)
    if cache_file is not None:
        _write_cache(cache_file, data)
    return data


# ---------------------------------------------------------------- splits


def _read_split_file(path: Path, rows: dict[str, int]) -> list[tuple[int, int]]:
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        char, _, rot = line.rpartition("/")
        if char not in rows or rot not in ("rot000", "rot090", "rot180", "rot270"):
            raise DataError(
                f"{path} line {i}: {line!r} is not Alphabet/characterNN/rotDDD of Omniglot; fix or delete the file"
            )
        out.append((rows[char], int(rot[3:]) // 90))
    return out


def _vinyals_part(name: str) -> str:
    alphabet, char = name.split("/")
    if alphabet in VINYALS_VAL_ALPHABETS:
        return "val"
    partial, first = VINYALS_TEST_PARTIAL
    if alphabet in VINYALS_TEST_ALPHABETS or (alphabet == partial and int(char[9:]) >= first):
        return "test"
    return "train"


def split_classes(
    data: OmniglotData,
    kind: Literal["vinyals", "lake"],
    split: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Classes of a split: rows `[M]` (int64) and quarter turns `[M]` (0..3, or None: none).

    Classes are sorted by (row, turns) whatever the source, so one generator seed draws the
    same episodes from the split files and from the built-in rule. Rotation by `k` quarter
    turns is `torch.rot90(x, k, dims=(-2, -1))` (counter-clockwise, like the `rotDDD` names).
    """
    if split not in ("train", "val", "test", "trainval"):
        raise UsageError(
            f"unknown Omniglot split {split!r}; choose one of train, val, test, trainval"
        )
    parts = {"train": ("train",), "val": ("val",), "test": ("test",), "trainval": ("train", "val")}[
        split
    ]
    if kind == "vinyals":
        file = data.root / "splits" / "vinyals" / f"{split}.txt" if data.root else None
        if file is not None and file.is_file():
            classes = _read_split_file(file, data.row_of())
        else:
            classes = [
                (r, k)
                for r, name in enumerate(data.names)
                if _vinyals_part(name) in parts
                for k in range(4)
            ]
        classes = sorted(set(classes))
        return torch.tensor([c[0] for c in classes]), torch.tensor([c[1] for c in classes])
    if kind == "lake":

        def lake_part(r: int) -> str:
            if r >= data.num_background:
                return "test"
            return "val" if data.names[r].split("/")[0] in VINYALS_VAL_ALPHABETS else "train"

        return torch.tensor(
            [r for r in range(len(data.names)) if lake_part(r) in parts], dtype=torch.long
        ), None
    raise UsageError(f"unknown Omniglot split kind {kind!r}; choose vinyals or lake")
