"""Helpers shared by the dataset sources: where data lives, option checks, splits and atomic writes.

Nothing here touches the file system or a random generator until a function is called.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from lifelong.data import Dataset
from lifelong.errors import ConfigError, DataError

DATA_ENV = "LIFELONG_DATA"  # a directory that holds one sub-directory per dataset
CACHE_ENV = "LIFELONG_CACHE"  # where downloads and generated data go; default ~/.cache/lifelong


def cache_root() -> Path:
    """Return the cache directory: ``$LIFELONG_CACHE``, else ``$XDG_CACHE_HOME/lifelong``, else ``~/.cache/lifelong``.

    The directory is not created here.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lifelong"


def data_root() -> Path | None:
    """Return ``$LIFELONG_DATA`` as a path, or ``None`` when it is unset or empty."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def as_path(value: str | os.PathLike[str] | None) -> Path | None:
    """Turn a user-given directory into an expanded :class:`~pathlib.Path` (``None`` stays ``None``)."""
    return None if value is None else Path(value).expanduser()


def with_subdirs(base: Path | None, subdirs: Sequence[str], *, include_base: bool = True) -> list[Path]:
    """Return ``[base, base/sub, ...]``; an empty list when ``base`` is ``None``."""
    if base is None:
        return []
    return ([base] if include_base else []) + [base / sub for sub in subdirs]


def format_dirs(dirs: Sequence[Path]) -> str:
    """Render searched directories one per line for an error message."""
    return "\n".join(f"  - {d}" for d in dirs) if dirs else "  (nowhere: no directory was given)"


# ---------------------------------------------------------------------------------------------
# Option checks. A bad value is a ConfigError whose message names the option and the dataset.


def check_fraction(dataset: str, option: str, value: object) -> float:
    """Return ``value`` as a float strictly between 0 and 1, or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{dataset}: option {option} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def check_positive_int(dataset: str, option: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` >= 1, or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ConfigError(f"{dataset}: option {option} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_float(dataset: str, option: str, value: object) -> float:
    """Return ``value`` if it is a finite number > 0, or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < float("inf"):
        raise ConfigError(f"{dataset}: option {option} must be a positive number, got {value!r}")
    return float(value)


def check_bool(dataset: str, option: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``, or raise :class:`ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(f"{dataset}: option {option} must be true or false, got {value!r}")
    return value


def check_seed(dataset: str, value: object) -> int:
    """Return ``value`` if it is a non-negative ``int`` usable as a seed, or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ConfigError(f"{dataset}: seed must be a non-negative integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Splits and conversion.


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into train and test, class by class, with ``np.random.default_rng(seed)``.

    Each class sends ``n_c * test_fraction`` rows (rounded half up) to the test split, clamped so that a class
    with at least two rows keeps at least one row on each side. A class with one row stays in train.
    Both index arrays are sorted, so the original row order is kept within each split.

    Examples
    --------
    >>> train, test = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, seed=0)
    >>> len(train), len(test)
    (6, 2)
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        n_test = int(np.floor(len(rows) * test_fraction + 0.5))  # round half up
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        else:
            n_test = 0
        test_parts.append(rng.permutation(rows)[:n_test])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), test


def to_tensor_x(x: np.ndarray) -> torch.Tensor:
    """Return ``x`` as a float32 tensor that owns writable memory."""
    x = np.asarray(x)
    if x.dtype != np.float32 or not x.flags.writeable or not x.flags.c_contiguous:
        x = np.array(x, dtype=np.float32, order="C")
    return torch.from_numpy(x)


def to_tensor_y(y: np.ndarray) -> torch.Tensor:
    """Return ``y`` as an int64 tensor that owns writable memory."""
    y = np.asarray(y)
    if y.dtype != np.int64 or not y.flags.writeable or not y.flags.c_contiguous:
        y = np.array(y, dtype=np.int64, order="C")
    return torch.from_numpy(y)


def make_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: Sequence[str] | None = None,
    *,
    scale: float | None = None,
) -> Dataset:
    """Build a validated :class:`~lifelong.data.Dataset` from numpy arrays.

    With ``scale`` the inputs are uint8 codes, kept as they are (the dataset's inputs are
    ``codes * scale``; see :class:`~lifelong.data.Dataset`)."""
    to_x = to_tensor_x if scale is None else to_tensor_codes
    return Dataset(
        name,
        to_x(x_train),
        to_tensor_y(y_train),
        to_x(x_test),
        to_tensor_y(y_test),
        tuple(class_names) if class_names is not None else None,
        scale,
    )


def to_tensor_codes(x: np.ndarray) -> torch.Tensor:
    """Return uint8 ``x`` as a uint8 tensor that owns writable memory."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise DataError(f"expected uint8 codes, got {x.dtype}")
    if not x.flags.writeable or not x.flags.c_contiguous:
        x = np.array(x, order="C")
    return torch.from_numpy(x)


def scale_uint8(x: np.ndarray) -> np.ndarray:
    """Map uint8 pixels to float32 in [0, 1]; returns a new writable array."""
    out = x.astype(np.float32)
    np.divide(out, 255.0, out=out)
    return out


# ---------------------------------------------------------------------------------------------
# Files.


@contextmanager
def atomic_write(target: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``target`` only if the ``with`` block finishes.

    The bytes go to a hidden temporary file in the same directory, which is flushed to disk and
    renamed over ``target``. On any exception the temporary file is deleted and the exception
    propagates, so a reader never sees a partial file.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise DataError(f"cannot write {target}: {exc}; choose a writable directory") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
