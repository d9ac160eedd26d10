"""MNIST (LeCun et al., 1998) and Kuzushiji-MNIST (Clanuwat et al., 2018) from local IDX files.

Both come as the same four files (``train-images-idx3-ubyte.gz`` and so on). They are looked for
in ``data_dir``, then ``data_dir/<name>``, then ``$LIFELONG_DATA/<name>``, where ``<name>`` is
``mnist`` or ``kmnist``. ``$LIFELONG_DATA`` itself is not searched, because the two datasets (and
Fashion-MNIST) share file names and could be mistaken for one another. lifelong does not download
these datasets.
"""

from __future__ import annotations

import os
from pathlib import Path

from lifelong.data import Dataset
from lifelong.data.datasets._common import DATA_ENV, as_path, check_bool, data_root, format_dirs, with_subdirs
from lifelong.data.datasets.idx import IDX_FILES, has_idx_files, load_idx_dataset
from lifelong.errors import DataError

MNIST_CLASS_NAMES = tuple(str(d) for d in range(10))
# Romanised hiragana of the ten KMNIST classes: お き す つ な は ま や れ を.
KMNIST_CLASS_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


def search_dirs(name: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the directories searched for dataset ``name`` (``"mnist"`` or ``"kmnist"``), in order."""
    return [*with_subdirs(as_path(data_dir), [name]), *with_subdirs(data_root(), [name], include_base=False)]


def find_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first searched directory that holds all four files, or ``None``."""
    return next((d for d in search_dirs(name, data_dir) if has_idx_files(d)), None)


def _load(name: str, class_names: tuple[str, ...], data_dir, download: bool, flatten: bool) -> Dataset:
    flatten = check_bool(name, "flatten", flatten)
    directory = find_dir(name, data_dir)
    if directory is None:
        names = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        note = f"lifelong cannot download {name}; " if download else ""
        raise DataError(
            f"{name}: no directory holds the four files ({names}). Looked in:\n"
            f"{format_dirs(search_dirs(name, data_dir))}\n"
            f"To fix: {note}pass --data-dir (data_dir=...) pointing at a directory with the files, "
            f"or put them in $LIFELONG_DATA/{name} and set {DATA_ENV}"
        )
    return load_idx_dataset(name, directory, flatten=flatten, class_names=class_names)


def load_mnist(
    *, data_dir: str | os.PathLike[str] | None = None, download: bool = False, seed: int = 0, flatten: bool = True
) -> Dataset:
    """Load MNIST with its official 60,000/10,000 split.

    Parameters
    ----------
    data_dir : path, optional
        Directory with the four IDX files (or with an ``mnist`` sub-directory holding them).
    download : bool
        Not supported; only changes the error message when the files are missing.
    seed : int
        Ignored: the split is the official one.
    flatten : bool
        Inputs of shape ``(784,)`` when true, else ``(1, 28, 28)``.

    Returns
    -------
    Dataset
        Pixels scaled to [0, 1].

    Raises
    ------
    DataError
        If the files are missing or malformed.
    """
    return _load("mnist", MNIST_CLASS_NAMES, data_dir, download, flatten)


def load_kmnist(
    *, data_dir: str | os.PathLike[str] | None = None, download: bool = False, seed: int = 0, flatten: bool = True
) -> Dataset:
    """Load Kuzushiji-MNIST with its official 60,000/10,000 split.

    Parameters are as for :func:`load_mnist`; the sub-directory searched is ``kmnist``.
    """
    return _load("kmnist", KMNIST_CLASS_NAMES, data_dir, download, flatten)


def mnist_available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether the MNIST files are present; nothing is read."""
    return find_dir("mnist", data_dir) is not None


def kmnist_available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether the KMNIST files are present; nothing is read."""
    return find_dir("kmnist", data_dir) is not None
