"""CIFAR-100 (Krizhevsky, 2009) from the python pickles (``cifar-100-python``): 60,000 colour 32x32
images of 100 fine classes in 20 coarse superclasses.

The directory holds ``train`` (50,000 images), ``test`` (10,000) and ``meta``, each a pickled dict
(``data``: uint8 (N, 3072), ``fine_labels``, ``coarse_labels``; ``meta``: ``fine_label_names``,
``coarse_label_names``). It is looked for in ``data_dir``, ``data_dir/cifar-100-python``,
``data_dir/cifar100`` and ``data_dir/cifar100/cifar-100-python``, then the same places under
``$LIFELONG_DATA``. With ``download=True`` and no local copy, the official archive (:data:`URL`)
is fetched, verified against :data:`SHA256` and extracted into ``data_dir`` (default: the cache,
``~/.cache/lifelong/cifar100``). The pickles are read with the restricted unpickler of
:mod:`lifelong.data.datasets.cifar10`, which builds plain data and numpy arrays only.
"""

from __future__ import annotations

import os
from pathlib import Path


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
from lifelong.data.datasets.cifar10 import _PIXELS, images_and_labels, label_names, normalise
from lifelong.errors import ConfigError, DataError

TRAIN, TEST, META = "train", "test", "meta"
SUBDIRS = ("cifar-100-python", "cifar100", "cifar100/cifar-100-python")
#: The official archive (Krizhevsky's page) and its SHA-256.
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
#: Per-channel mean and standard deviation of the CIFAR-100 training images (in [0, 1]), as the
#: continual-learning code bases normalise with.
MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _class_names(directory: Path, fine: bool) -> tuple[str, ...] | None:
    path = directory / META
    if not path.is_file():
        return None
    return label_names(path, "fine_label_names" if fine else "coarse_label_names")


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the directories searched for the pickles, in order."""
    return [*with_subdirs(as_path(data_dir), SUBDIRS), *with_subdirs(data_root(), SUBDIRS)]


def find_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first searched directory that holds ``train`` and ``test``, or ``None``."""
    return next((d for d in search_dirs(data_dir) if (d / TRAIN).is_file() and (d / TEST).is_file()), None)


def available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether the pickles are present; nothing is read."""
    return find_dir(data_dir) is not None


def load(
    *, data_dir: str | os.PathLike[str] | None = None, download: bool = False, seed: int = 0,
    flatten: bool = False, labels: str = "fine", normalize: bool = False, url: str | None = None,
) -> Dataset:
    """Load CIFAR-100 with its official 50,000/10,000 split.

    Parameters
    ----------
    data_dir : path, optional
        Directory with ``train`` and ``test``, or a parent of ``cifar-100-python``.
    download : bool
        Fetch the official archive when no local copy is found (verified by SHA-256).
    seed : int
        Ignored: the split is the official one.
    flatten : bool
        Inputs of shape ``(3072,)`` when true, else ``(3, 32, 32)``.
    labels : {"fine", "coarse"}
        The 100 fine classes (default) or the 20 superclasses.
    normalize : bool
        Standardise each channel with the training set's mean and std (:data:`MEAN`, :data:`STD`).
    url : str, optional
        Where to download the archive from (a mirror); default :data:`URL`.

    Raises
    ------
    DataError
        If the pickles are missing, malformed, or not plain data.
    """
    flatten = check_bool("cifar100", "flatten", flatten)
    normalize = check_bool("cifar100", "normalize", normalize)
    if labels not in ("fine", "coarse"):
        raise ConfigError(f"dataset 'cifar100': labels must be 'fine' or 'coarse', got {labels!r}")
    directory = find_dir(data_dir)
    if directory is None and download:
        dest = as_path(data_dir) or cache_root() / "cifar100"
        download_archive(url or URL, SHA256, dest, SUBDIRS[0], who="cifar100")
        directory = find_dir(dest)
    if directory is None:
        note = "the downloaded archive lacks them; " if download else ""
        raise DataError(
            f"cifar100: no directory holds {TRAIN} and {TEST}. Looked in:\n{format_dirs(search_dirs(data_dir))}\n"
            f"To fix: {note}pass --download, or extract cifar-100-python.tar.gz and pass --data-dir (data_dir=...) pointing at the "
            f"extracted directory, or put it under $LIFELONG_DATA and set {DATA_ENV}"
        )
    key = f"{labels}_labels"
    x_train, y_train = images_and_labels(directory / TRAIN, key)
    x_test, y_test = images_and_labels(directory / TEST, key)
    n_classes = 100 if labels == "fine" else 20
    for y, path in ((y_train, TRAIN), (y_test, TEST)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(f"{directory / path}: {labels} labels must lie in [0, {n_classes - 1}]")
    x_train, x_test = scale_uint8(x_train).reshape(-1, 3, 32, 32), scale_uint8(x_test).reshape(-1, 3, 32, 32)
    if normalize:
        x_train, x_test = normalise(x_train, MEAN, STD), normalise(x_test, MEAN, STD)
    shape = (_PIXELS,) if flatten else (3, 32, 32)
    names = _class_names(directory, labels == "fine")
    return make_dataset("cifar100", x_train.reshape(-1, *shape), y_train, x_test.reshape(-1, *shape), y_test, names)
