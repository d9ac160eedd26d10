"""CIFAR-10 (Krizhevsky, 2009) from the python batches (``cifar-10-batches-py``): 60,000 colour 32x32 images.

The directory holds ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``,
each a pickled dict. It is looked for in ``data_dir``, ``data_dir/cifar-10-batches-py``,
``data_dir/cifar10`` and ``data_dir/cifar10/cifar-10-batches-py``, then the same places under
``$LIFELONG_DATA``. With ``download=True`` and no local copy, the official archive
(:data:`URL`) is fetched, verified against :data:`SHA256` and extracted into ``data_dir`` (default:
the cache, ``~/.cache/lifelong/cifar10``).

Pickles can run arbitrary code, so they are read with :class:`SafeUnpickler`, which resolves
only the few numpy names an array needs and rejects every other global.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

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
from lifelong.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
SUBDIRS = ("cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py")
#: The official archive (Krizhevsky's page) and its SHA-256.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_PIXELS = 3 * 32 * 32  # a row is 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major
#: Per-channel mean and standard deviation of the CIFAR-10 training images (in [0, 1]): the
#: normalisation of the DER paper's Seq-CIFAR-10 (mammoth's ``seq-cifar10``).
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)


def normalise(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(x - mean) / std`` per channel of ``x`` (N, C, H, W) float32, in place; returns ``x``."""
    x -= np.asarray(mean, dtype=np.float32)[None, :, None, None]
    x /= np.asarray(std, dtype=np.float32)[None, :, None, None]
    return x


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles of protocol < 3 store bytes as codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{module}.numeric", "_frombuffer")] = _frombuffer
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers, strings, numbers and numpy arrays.

    Any other global (``os.system``, ``builtins.eval``, a class) raises :class:`DataError`
    before it is called. Python 2 strings are kept as ``bytes`` (``encoding="bytes"``).

    Examples
    --------
    >>> SafeUnpickler(io.BytesIO(pickle.dumps({b"labels": [1, 2]}))).load()
    {b'labels': [1, 2]}
    >>> SafeUnpickler(io.BytesIO(pickle.dumps(print))).load()
    Traceback (most recent call last):
    ...
    lifelong.errors.DataError: refusing to unpickle builtins.print: only numpy arrays and plain containers are allowed
    """

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file, encoding="bytes")
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to unpickle {module}.{name}: only numpy arrays and plain containers are allowed"
            ) from None


def _read_batch(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            batch = SafeUnpickler(fh).load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}; the file is not a genuine CIFAR-10 batch, do not use it") from exc
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot read the pickle ({exc}); the file is corrupt, fetch it again") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def images_and_labels(path: Path, key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """``data`` (uint8, (N, 3072)) and the ``key`` labels (int64, (N,)) of one pickled batch,
    validated (shared with CIFAR-100, whose label keys are ``fine_labels`` and ``coarse_labels``)."""
    batch = _read_batch(path)
    if "data" not in batch or key not in batch:
        raise DataError(f"{path}: batch lacks 'data' or {key!r} (keys: {sorted(map(str, batch))})")
    data, labels = batch["data"], batch[key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {_PIXELS}), got {got}")
    if not isinstance(labels, (list, np.ndarray)) or not all(isinstance(v, (int, np.integer)) for v in labels):
        raise DataError(f"{path}: {key!r} must be a list of integer class ids")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels")
    return data, labels


def label_names(path: Path, key: str) -> tuple[str, ...]:
    """The class names stored under ``key`` in the pickled ``meta`` file ``path``."""
    names = _read_batch(path).get(key)
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path}: {key!r} must be a list of strings")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)


def _class_names(directory: Path) -> tuple[str, ...]:
    path = directory / META
    return label_names(path, "label_names") if path.is_file() else CLASS_NAMES


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the directories searched for the batches, in order."""
    return [*with_subdirs(as_path(data_dir), SUBDIRS), *with_subdirs(data_root(), SUBDIRS)]


def find_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first searched directory that holds all six data batches, or ``None``."""
    needed = (*TRAIN_BATCHES, TEST_BATCH)
    return next((d for d in search_dirs(data_dir) if all((d / n).is_file() for n in needed)), None)


def available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether the batches are present; nothing is read."""
    return find_dir(data_dir) is not None


def load(
    *, data_dir: str | os.PathLike[str] | None = None, download: bool = False, seed: int = 0, flatten: bool = False,
    normalize: bool = False, url: str | None = None,
) -> Dataset:
    """Load CIFAR-10 with its official 50,000/10,000 split.

    Parameters
    ----------
    data_dir : path, optional
        Directory with the batches, or a parent of ``cifar-10-batches-py``.
    download : bool
        Fetch the official archive when no local copy is found (verified by SHA-256).
    seed : int
        Ignored: the split is the official one.
    flatten : bool
        Inputs of shape ``(3072,)`` when true, else ``(3, 32, 32)``.
    normalize : bool
        Standardise each channel with the training set's mean and std (:data:`MEAN`, :data:`STD`),
        as the DER paper's Seq-CIFAR-10 does.
    url : str, optional
        Where to download the archive from (a mirror); default :data:`URL`.

    Returns
    -------
    Dataset
        Pixels scaled to [0, 1]; class names from ``batches.meta`` when present.

    Raises
    ------
    DataError
        If the batches are missing, malformed, or contain a pickle that is not plain data.
    """
    flatten = check_bool("cifar10", "flatten", flatten)
    normalize = check_bool("cifar10", "normalize", normalize)
    directory = find_dir(data_dir)
    if directory is None and download:
        dest = as_path(data_dir) or cache_root() / "cifar10"
        download_archive(url or URL, SHA256, dest, SUBDIRS[0], who="cifar10")
        directory = find_dir(dest)
    if directory is None:
        note = "the downloaded archive lacks them; " if download else ""
        raise DataError(
            f"cifar10: no directory holds {', '.join(TRAIN_BATCHES)} and {TEST_BATCH}. Looked in:\n"
            f"{format_dirs(search_dirs(data_dir))}\n"
            f"To fix: {note}pass --download, or extract cifar-10-python.tar.gz and pass --data-dir (data_dir=...) pointing at the "
            f"extracted directory, or put it under $LIFELONG_DATA and set {DATA_ENV}"
        )
    parts = [images_and_labels(directory / name) for name in TRAIN_BATCHES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = images_and_labels(directory / TEST_BATCH)
    shape = (_PIXELS,) if flatten else (3, 32, 32)
    x_train, x_test = scale_uint8(x_train).reshape(-1, 3, 32, 32), scale_uint8(x_test).reshape(-1, 3, 32, 32)
    if normalize:
        x_train, x_test = normalise(x_train, MEAN, STD), normalise(x_test, MEAN, STD)
    return make_dataset(
        "cifar10", x_train.reshape(-1, *shape), y_train, x_test.reshape(-1, *shape), y_test, _class_names(directory),
    )
