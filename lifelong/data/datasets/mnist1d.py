"""MNIST-1D (Greydanus, 2020): ten classes of 40-step 1-D signals, generated on the machine.

The signals come from ``mnist1d.data.make_dataset`` with the package's default arguments
(``get_dataset_args``), so the default is the canonical dataset: 4,000 train and 1,000 test rows.
``mnist1d.data.get_dataset`` is never called: it downloads and writes into the working directory.

The generated arrays are cached as ``.npz`` in ``data_dir`` (default ``$LIFELONG_CACHE/mnist1d``,
that is ``~/.cache/lifelong/mnist1d``), under a name that hashes the generator arguments and the
``mnist1d`` version. The file is written atomically, so concurrent runs are safe.

Deviation: ``make_dataset`` seeds the global ``random`` and ``numpy.random`` state. The loader saves
both states before the call and restores them after, so the caller's global state is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from lifelong.data import Dataset
from lifelong.data.datasets._common import as_path, atomic_write, cache_root, check_positive_int, check_seed, make_dataset
from lifelong.errors import ConfigError, DataError

SUBDIR = "mnist1d"
CLASS_NAMES = tuple(str(d) for d in range(10))
_KEYS = ("x", "y", "x_test", "y_test")


def cache_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return where generated arrays are cached: ``data_dir`` or ``$LIFELONG_CACHE/mnist1d``."""
    return as_path(data_dir) or cache_root() / SUBDIR


def _generator_args(num_samples: int | None, data_seed: int | None) -> dict:
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)  # only used by get_dataset's download
    if num_samples is not None:
        args["num_samples"] = num_samples
    if data_seed is not None:
        args["seed"] = data_seed
    return args


def cache_path(args: dict, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache file for generator arguments ``args``."""
    try:
        pkg_version = version("mnist1d")
    except PackageNotFoundError:
        pkg_version = "unknown"
    key = json.dumps({"args": args, "mnist1d": pkg_version}, sort_keys=True)
    return cache_dir(data_dir) / f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _generate(args: dict) -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset as make_mnist1d
    from mnist1d.utils import ObjectView

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_mnist1d(ObjectView(dict(args)))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {
        "x": np.asarray(raw["x"], dtype=np.float32),  # (N_train, 40)
        "y": np.asarray(raw["y"], dtype=np.int64),
        "x_test": np.asarray(raw["x_test"], dtype=np.float32),  # (N_test, 40)
        "y_test": np.asarray(raw["y_test"], dtype=np.int64),
    }


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in _KEYS}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"mnist1d: cache file {path} is unreadable ({exc}); delete it to regenerate") from exc
    return arrays


def load(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    num_samples: int | None = None,
    data_seed: int | None = None,
) -> Dataset:
    """Generate (or read from the cache) MNIST-1D.

    Parameters
    ----------
    data_dir : path, optional
        Cache directory; default ``$LIFELONG_CACHE/mnist1d``.
    download : bool
        Ignored: the data is generated locally.
    seed : int
        Ignored: the generator fixes the split (its last ``1 - train_split`` rows are the test set).
    num_samples : int, optional
        Total rows before the 80/20 split; default 5,000. Rounded down to a multiple of ten.
    data_seed : int, optional
        Seed of the generator; default the package's own (42), which gives the canonical dataset.

    Returns
    -------
    Dataset
        Inputs of shape ``(40,)``, standardised by the generator.
    """
    if num_samples is not None:
        num_samples = check_positive_int("mnist1d", "num_samples", num_samples)
        if num_samples < 20:
            raise ConfigError(
                f"mnist1d: option num_samples must be at least 20 so both splits hold rows, got {num_samples}"
            )
    if data_seed is not None:
        data_seed = check_seed("mnist1d", data_seed)
    args = _generator_args(num_samples, data_seed)
    path = cache_path(args, data_dir)
    if path.is_file():
        arrays = _read_cache(path)
    else:
        arrays = _generate(args)
        with atomic_write(path) as fh:
            np.savez(fh, **arrays)
    return make_dataset("mnist1d", arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], CLASS_NAMES)
