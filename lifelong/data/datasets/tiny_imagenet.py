"""TinyImageNet-200 (Le and Yang, 2015; the Stanford CS231n release): 200 ImageNet classes of
64x64 colour images, 500 training and 50 validation images per class.

The standard layout ``tiny-imagenet-200/`` holds ``wnids.txt`` (the 200 WordNet ids),
``words.txt`` (id to names), ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` with
``val/val_annotations.txt`` (file, wnid, box). The test images carry no labels, so the labelled
validation set is the test split, as in the continual-learning code bases. Class ``k`` is the
``k``-th WordNet id in sorted order (torchvision's ``ImageFolder`` order, which the DER and PyCIL
code bases inherit). It is looked for in ``data_dir``, ``data_dir/tiny-imagenet-200``,
``data_dir/tiny_imagenet`` and ``data_dir/tiny_imagenet/tiny-imagenet-200``, then the same
places under ``$LIFELONG_DATA``.

The JPEGs are decoded with Pillow (the extra ``lifelong[images]``) once; the decoded uint8 arrays
are cached under ``~/.cache/lifelong/tiny_imagenet`` (``$LIFELONG_CACHE``), so a second load reads
one ``.npz``. With ``download=True`` and no local copy, the official zip (:data:`URL`) is fetched,
verified and extracted into ``data_dir`` (default: the cache). Stanford publishes no SHA-256 for
it; the digest checked is the archive's widely published MD5 (:data:`MD5`), or the SHA-256 given
as ``sha256=...`` (for a copy you have verified yourself, or a mirror).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lifelong.data import Dataset
from lifelong.data.datasets._common import (
    DATA_ENV,
    as_path,
    cache_root,
    check_bool,
    data_root,
    format_dirs,
    make_dataset,
    scale_uint8,
    with_subdirs,
)
from lifelong.data.datasets.archive import download_archive
from lifelong.data.datasets.cifar10 import normalise
from lifelong.data.datasets.images import cached, decode_all, file_list_key, require_pillow
from lifelong.errors import ConfigError, DataError

TOP = "tiny-imagenet-200"
SUBDIRS = (TOP, "tiny_imagenet", f"tiny_imagenet/{TOP}")
#: The official archive (Stanford CS231n) and its published MD5 (no SHA-256 is published).
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
N_CLASSES, SIDE = 200, 64
#: Per-channel mean and std of the training images (in [0, 1]), as mammoth's seq-tinyimg normalises.
MEAN, STD = (0.4802, 0.4480, 0.3975), (0.2770, 0.2691, 0.2821)
_JPEG = (".jpeg", ".jpg")


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the directories searched for the layout, in order."""
    return [*with_subdirs(as_path(data_dir), SUBDIRS), *with_subdirs(data_root(), SUBDIRS)]


def _complete(d: Path) -> bool:
    return (d / "wnids.txt").is_file() and (d / "train").is_dir() and (d / "val" / "val_annotations.txt").is_file()


def find_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first searched directory with ``wnids.txt``, ``train/`` and the validation
    annotations, or ``None``."""
    return next((d for d in search_dirs(data_dir) if _complete(d)), None)


def available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether the layout is present; no image is read."""
    return find_dir(data_dir) is not None


def _wnids(directory: Path) -> list[str]:
    ids = [line.strip() for line in (directory / "wnids.txt").read_text().splitlines() if line.strip()]
    if len(set(ids)) != len(ids) or not ids:
        raise DataError(f"{directory / 'wnids.txt'}: expected distinct WordNet ids, one a line")
    return sorted(ids)


def _names(directory: Path, wnids: list[str]) -> tuple[str, ...]:
    words: dict[str, str] = {}
    path = directory / "words.txt"
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    return tuple(words.get(w) or w for w in wnids)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _JPEG and p.is_file())


def _file_lists(directory: Path, wnids: list[str]) -> tuple[list[Path], list[int], list[Path], list[int]]:
    index = {w: k for k, w in enumerate(wnids)}
    train, y_train = [], []
    for k, wnid in enumerate(wnids):
        folder = directory / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(f"{directory}: class {wnid} of wnids.txt has no train/{wnid}/images directory")
        files = _images(folder)
        train += files
        y_train += [k] * len(files)
    val, y_val = [], []
    annotations = directory / "val" / "val_annotations.txt"
    for n, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1].strip() not in index:
            raise DataError(f"{annotations}:{n}: expected 'file<TAB>wnid...' with a wnid of wnids.txt, got {line!r}")
        name = parts[0].strip()
        if Path(name).name != name:
            raise DataError(f"{annotations}:{n}: {name!r} is not a plain file name")
        path = directory / "val" / "images" / name
        if not path.is_file():
            raise DataError(f"{annotations}:{n}: {path} is missing")
        val.append(path)
        y_val.append(index[parts[1].strip()])
    return train, y_train, val, y_val


def load(
    *, data_dir: str | os.PathLike[str] | None = None, download: bool = False, seed: int = 0,
    flatten: bool = False, normalize: bool = False, cache: bool = True, url: str | None = None,
    sha256: str | None = None,
) -> Dataset:
    """Load TinyImageNet-200: the 100,000 training images, and the 10,000 labelled validation
    images as the test split.

    Parameters
    ----------
    data_dir : path, optional
        The ``tiny-imagenet-200`` directory, or a parent of it.
    download : bool
        Fetch the official zip when no local copy is found (verified; see the module notes).
    seed : int
        Ignored: the split is the official one.
    flatten : bool
        Inputs of shape ``(12288,)`` when true, else ``(3, 64, 64)``.
    normalize : bool
        Standardise each channel with the training set's mean and std (:data:`MEAN`, :data:`STD`).
    cache : bool
        Read and write the decoded arrays in the cache (default); false decodes every JPEG.
    url, sha256 : str, optional
        A mirror to download from, and the SHA-256 to check it against (default: :data:`URL`,
        checked against :data:`MD5`).

    Raises
    ------
    DataError
        If the layout is incomplete, an image cannot be decoded, or Pillow is missing.
    """
    flatten = check_bool("tiny_imagenet", "flatten", flatten)
    normalize = check_bool("tiny_imagenet", "normalize", normalize)
    cache = check_bool("tiny_imagenet", "cache", cache)
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower())):
        raise ConfigError(f"dataset 'tiny_imagenet': sha256 must be 64 hexadecimal digits, got {sha256!r}")
    directory = find_dir(data_dir)
    if directory is None and download:
        dest = as_path(data_dir) or cache_root() / "tiny_imagenet"
        digest, algorithm = (sha256.lower(), "sha256") if sha256 else (MD5, "md5")
        download_archive(url or URL, digest, dest, TOP, who="tiny_imagenet", algorithm=algorithm)
        directory = find_dir(dest)
    if directory is None:
        note = "the downloaded archive lacks them; " if download else ""
        raise DataError(
            f"tiny_imagenet: no directory holds wnids.txt, train/ and val/val_annotations.txt. Looked in:\n"
            f"{format_dirs(search_dirs(data_dir))}\n"
            f"To fix: {note}pass --download, or unzip tiny-imagenet-200.zip and pass --data-dir (data_dir=...) pointing "
            f"at the extracted directory, or put it under $LIFELONG_DATA and set {DATA_ENV}"
        )
    require_pillow("tiny_imagenet")
    wnids = _wnids(directory)
    train, y_train, val, y_val = _file_lists(directory, wnids)

    def build() -> dict[str, np.ndarray]:
        return {"x_train": decode_all(train, (SIDE, SIDE), who="tiny_imagenet"),
                "y_train": np.asarray(y_train, dtype=np.int64),
                "x_test": decode_all(val, (SIDE, SIDE), who="tiny_imagenet"),
                "y_test": np.asarray(y_val, dtype=np.int64)}

    key = file_list_key(directory, [*train, *val], {"wnids": wnids, "side": SIDE})
    arrays = cached("tiny_imagenet", key, build, use_cache=cache)
    x_train, x_test = scale_uint8(arrays["x_train"]), scale_uint8(arrays["x_test"])
    if normalize:
        x_train, x_test = normalise(x_train, MEAN, STD), normalise(x_test, MEAN, STD)
    shape = (3 * SIDE * SIDE,) if flatten else (3, SIDE, SIDE)
    return make_dataset("tiny_imagenet", x_train.reshape(-1, *shape), arrays["y_train"], x_test.reshape(-1, *shape),
                        arrays["y_test"], _names(directory, wnids))
