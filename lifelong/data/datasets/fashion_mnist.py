"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 70,000 grey 28x28 images of clothes, ten classes.

The four IDX files are looked for, in this order, in

1. ``data_dir`` and ``data_dir/fashion-mnist``;
2. ``$LIFELONG_DATA`` and ``$LIFELONG_DATA/fashion-mnist``;
3. :data:`SYSTEM_DIR` (``/usr/share/datasets/fashion-mnist``, from the Debian package
   ``dataset-fashion-mnist``), unless ``$LIFELONG_NO_SYSTEM_DATA`` is set to a non-empty value
   other than ``0`` (how the test suite plays a fresh machine);
4. the download cache, ``$LIFELONG_CACHE/fashion-mnist`` (default ``~/.cache/lifelong``).

The first directory that holds all four files wins. With ``download=True`` and no copy found,
the files are fetched from :data:`URL` (or ``$LIFELONG_FASHION_MNIST_URL``, or the ``url`` option)
into ``data_dir`` (or the download cache), each checked against :data:`SHA256` before it is
renamed into place.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from lifelong.data import Dataset
from lifelong.data.datasets._common import (
    DATA_ENV,
    as_path,
    cache_root,
    check_bool,
    data_root,
    format_dirs,
    with_subdirs,
)
from lifelong.data.datasets.archive import fetch_verified
from lifelong.data.datasets.idx import IDX_FILES, find_idx_file, has_idx_files, load_idx_dataset
from lifelong.errors import ConfigError, DataError


SUBDIR = "fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# The official files, served over HTTPS from the project's repository.
URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
URL_ENV = "LIFELONG_FASHION_MNIST_URL"
#: Set (non-empty, not "0") to ignore :data:`SYSTEM_DIR`, as on a machine without the package.
NO_SYSTEM_ENV = "LIFELONG_NO_SYSTEM_DATA"
# SHA-256 of the official gzip files (their published MD5s are 8d4fb7e6..., 25c81989...,
# bef4ecab..., bb300cfd...). Debian's dataset-fashion-mnist re-compresses the files, so its .gz
# bytes differ while the decompressed IDX content is the same.
SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the directories searched for the files, in order of precedence."""
    return [
        *with_subdirs(as_path(data_dir), [SUBDIR]),
        *with_subdirs(data_root(), [SUBDIR]),
        *([] if os.environ.get(NO_SYSTEM_ENV, "") not in ("", "0") else [SYSTEM_DIR]),
        cache_root() / SUBDIR,
    ]


def find_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first searched directory that holds all four files, or ``None``."""
    return next((d for d in search_dirs(data_dir) if has_idx_files(d)), None)


def available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether a local copy exists; nothing is read or downloaded."""
    return find_dir(data_dir) is not None


def load(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    flatten: bool = True,
    url: str | None = None,
) -> Dataset:
    """Load Fashion-MNIST with its official 60,000/10,000 split.

    Parameters
    ----------
    data_dir : path, optional
        Searched first; also where a download goes.
    download : bool
        Fetch the files when no local copy is found.
    seed : int
        Ignored: the split is the official one.
    flatten : bool
        Inputs of shape ``(784,)`` when true, else ``(1, 28, 28)``.
    url : str, optional
        Base URL to download from; defaults to ``$LIFELONG_FASHION_MNIST_URL`` or :data:`URL`.

    Returns
    -------
    Dataset
        Pixels scaled to [0, 1].

    Raises
    ------
    DataError
        If no copy is found and ``download`` is false, or the download fails or does not match
        :data:`SHA256`.
    """
    flatten = check_bool("fashion_mnist", "flatten", flatten)
    directory = find_dir(data_dir)
    if directory is None:
        if not download:
            raise DataError(_not_found_message(data_dir))
        directory = as_path(data_dir) or cache_root() / SUBDIR
        base = url or os.environ.get(URL_ENV) or URL
        download_files(directory, base)
    return load_idx_dataset("fashion_mnist", directory, flatten=flatten, class_names=CLASS_NAMES)


def download_files(directory: Path, base_url: str = URL) -> None:
    """Fetch every official file that ``directory`` lacks, verifying its SHA-256.

    Each file is streamed to a temporary file in ``directory`` and renamed into place only when its
    digest matches :data:`SHA256`; on a mismatch or a network error nothing is left behind.

    Raises
    ------
    ConfigError
        If ``base_url`` is not an http(s) URL.
    DataError
        If a download fails or a digest does not match.
    """
    scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme not in ("http", "https"):
        raise ConfigError(f"fashion_mnist: download URL must start with http:// or https://, got {base_url!r}")
    for filename, digest in SHA256.items():
        if find_idx_file(directory, filename.removesuffix(".gz")) is not None:
            continue
        _fetch(base_url.rstrip("/") + "/" + filename, directory / filename, digest)


def _fetch(url: str, target: Path, expected_sha256: str) -> None:
    fetch_verified(url, target, expected_sha256, who="fashion_mnist",
                   retry_hint=f". Retry, or set {URL_ENV} to a trusted mirror",
                   remedy=f"set {URL_ENV} to a mirror, or copy the four files into {target.parent} yourself")


def _not_found_message(data_dir: str | os.PathLike[str] | None) -> str:
    names = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    return (
        f"fashion_mnist: no directory holds the four files ({names}). Looked in:\n"
        f"{format_dirs(search_dirs(data_dir))}\n"
        "To fix, do one of:\n"
        "  - pass --data-dir (data_dir=...) pointing at a directory with the files;\n"
        f"  - set {DATA_ENV} to a directory that holds them, or a 'fashion-mnist' sub-directory with them;\n"
        "  - install the system package: apt-get install dataset-fashion-mnist;\n"
        "  - pass --download (download=True) to fetch and verify the official files."
    )
