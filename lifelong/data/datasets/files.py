"""User data from one file: ``.npz``, ``.csv`` or ``.parquet``.

- ``.npz``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``; or ``x`` and ``y`` (the
  label key can be renamed with the ``label`` option), optionally with ``x_test`` and ``y_test``.
  Inputs may have any shape ``(N, ...)``. The file is read with ``allow_pickle=False``.
- ``.csv`` and ``.parquet``: one row per sample; the ``label`` column (default ``"label"``) holds
  the class ids and every other column is a numeric feature. Read with pandas (and pyarrow for
  parquet), installed by ``pip install lifelong[files]``.

When the file holds one split, a test split is drawn class by class with
``numpy.random.default_rng(seed)``. Labels must be non-negative integer class ids; they are kept as
given, not renumbered. Inputs must be finite.

``standardize = true`` z-scores every feature (every input element) with the mean and standard
deviation of the *training* split only; the test split is transformed with those same statistics,
so nothing about it leaks into training. A constant feature (standard deviation 0) is only
centred (its deviation is taken as 1). The default, false, keeps the values as they are in the file:
raw features in the hundreds or thousands (prices, counts, sensor readings) usually make SGD diverge
at the default learning rate, and standardizing is the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lifelong.data import Dataset
from lifelong.data.datasets._common import check_fraction, check_seed, make_dataset, stratified_split
from lifelong.errors import ConfigError, DataError

SUFFIXES = (".npz", ".csv", ".parquet")
_INSTALL_HINT = "pip install 'lifelong[files]'"


def load(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
    label: str | None = None,
    test_fraction: float = 0.25,
    standardize: bool = False,
) -> Dataset:
    """Load a dataset from a user file.

    Parameters
    ----------
    data_dir, download
        Ignored.
    seed : int
        Seed of the train/test split, used when the file holds a single split.
    path : path
        The ``.npz``, ``.csv`` or ``.parquet`` file. Required.
    label : str, optional
        Label column of a table (default ``"label"``), or label array of a single-split npz
        (default ``"y"``).
    test_fraction : float
        Share of each class sent to the test split when the file holds one split.
    standardize : bool
        Z-score each feature with the training split's mean and standard deviation (a standard
        deviation of 0 counts as 1), applied to both splits; see :func:`standardize_splits`.

    Returns
    -------
    Dataset
        Named after the file's stem.

    Raises
    ------
    ConfigError
        If ``path`` is missing or has an unsupported suffix.
    DataError
        If the file is missing or unreadable, a column or array is missing, inputs are not finite,
        or labels are not non-negative integers.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "toy.npz"
    >>> np.savez(file, x=np.eye(8, dtype=np.float32), y=np.arange(8) % 2)
    >>> ds = load(path=file, test_fraction=0.25)
    >>> ds.name, len(ds.y_train), len(ds.y_test), ds.input_shape
    ('toy', 6, 2, (8,))
    >>> ds = load(path=file, test_fraction=0.25, standardize=True)
    >>> bool(ds.x_train.mean(0).abs().max() < 1e-6)  # centred by the training split's means
    True
    """
    if path is None:
        raise ConfigError("file: option path is required: the .npz, .csv or .parquet file to load")
    file = Path(path).expanduser()
    if file.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"file: {file} has an unsupported suffix; use one of {', '.join(SUFFIXES)}")
    if label is not None and not isinstance(label, str):
        raise ConfigError(f"file: option label must be a column or array name, got {label!r}")
    fraction = check_fraction("file", "test_fraction", test_fraction)
    seed = check_seed("file", seed)
    if not isinstance(standardize, bool):
        raise ConfigError(f"file: option standardize must be true or false, got {standardize!r}")
    if not file.is_file():
        raise DataError(f"file: {file} does not exist; check the path")

    if file.suffix.lower() == ".npz":
        x, y, test = _read_npz(file, label)
    else:
        x, y = _read_table(file, label or "label")
        test = None
    if test is None:
        train_rows, test_rows = stratified_split(y, fraction, seed)
        x, y, test = x[train_rows], y[train_rows], (x[test_rows], y[test_rows])
    x_test = test[0]
    if standardize:
        x, x_test = standardize_splits(x, x_test)
    return make_dataset(file.stem, x, y, x_test, test[1])


def standardize_splits(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-score both splits with the training split's per-feature mean and standard deviation.

    Parameters
    ----------
    x_train : ndarray, shape (N, ...)
    x_test : ndarray, shape (M, ...)
        Same feature shape as ``x_train``; its own statistics are never used.

    Returns
    -------
    tuple of ndarray
        ``(x_train - mean) / std`` and ``(x_test - mean) / std`` as float32, where ``mean`` and
        ``std`` (population, ``ddof=0``) are taken over the N training rows, element by element,
        and a ``std`` of 0 is replaced by 1.

    Examples
    --------
    >>> train = np.array([[0.0, 5.0], [2.0, 5.0]], dtype=np.float32)
    >>> test = np.array([[4.0, 6.0]], dtype=np.float32)
    >>> standardize_splits(train, test)[1].tolist()  # (4 - 1) / 1, (6 - 5) / 1
    [[3.0, 1.0]]
    """
    stats = x_train.astype(np.float64)
    mean = stats.mean(axis=0)
    std = stats.std(axis=0)
    std[std == 0] = 1.0

    def apply(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float64) - mean) / std).astype(np.float32)

    return apply(x_train), apply(x_test)


def _read_npz(file: Path, label: str | None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"file: cannot read {file} as npz ({exc}); object arrays are not allowed") from exc

    def get(key: str) -> np.ndarray:
        if key not in arrays:
            raise DataError(f"file: {file} has no array {key!r}; it holds {sorted(arrays)}")
        return arrays[key]

    if "x_train" in arrays:
        x_key, y_key = "x_train", "y_train"
    else:
        x_key, y_key = "x", label or "y"
    x, y = _inputs(get(x_key), file, x_key), _labels(get(y_key), file, y_key)
    _same_length(x, y, file, x_key, y_key)
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"file: {file} has only one of 'x_test' and 'y_test'; give both or neither")
    if "x_test" not in arrays:
        return x, y, None
    x_test, y_test = _inputs(arrays["x_test"], file, "x_test"), _labels(arrays["y_test"], file, "y_test")
    _same_length(x_test, y_test, file, "x_test", "y_test")
    return x, y, (x_test, y_test)


def _read_table(file: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        import pandas as pd
    except ImportError as exc:
        raise DataError(f"file: reading {file.suffix} files needs pandas; run {_INSTALL_HINT}") from exc
    try:
        if file.suffix.lower() == ".csv":
            frame = pd.read_csv(file)
        else:
            frame = pd.read_parquet(file)
    except ImportError as exc:
        raise DataError(f"file: reading {file.suffix} files needs pyarrow; run {_INSTALL_HINT}") from exc
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"file: cannot read {file} ({exc})") from exc
    columns = [str(c) for c in frame.columns]
    if label not in columns:
        raise DataError(
            f"file: {file} has no label column {label!r}; its columns are {columns}. "
            "Pass the right name with the label option (--label on the command line)"
        )
    features = [c for c in frame.columns if str(c) != label]
    if not features:
        raise DataError(f"file: {file} has no feature columns besides the label column {label!r}")
    non_numeric = [str(c) for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DataError(f"file: {file}: feature columns must be numeric; these are not: {non_numeric}")
    label_values = frame[frame.columns[columns.index(label)]].to_numpy()
    x = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    return _inputs(x, file, "features"), _labels(label_values, file, f"column {label!r}")


def _inputs(x: np.ndarray, file: Path, what: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"file: {file}: {what} must be numeric, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"file: {file}: {what} must have shape (N, ...) with N >= 1, got {x.shape}")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)  # float64 values beyond float32's range become inf and are caught below
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"file: {file}: {what} contain NaN or inf ({int(bad.sum())} rows; first at row {row}, counting "
            "data rows from 0); clean or drop those rows"
        )
    return x


def _labels(values: np.ndarray, file: Path, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"file: {file}: {what} must be one label per row, got shape {values.shape}")
    kind = values.dtype.kind
    if kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"file: {file}: labels must be integer class ids; {what} row {row} holds {values[row]!r}"
            )
    elif kind not in "iu":
        example = values[0] if len(values) else None
        raise DataError(
            f"file: {file}: labels must be integer class ids; {what} holds {values.dtype} values such as "
            f"{example!r}. Map class names to 0..K-1 first"
        )
    y = values.astype(np.int64)
    if len(y) and y.min() < 0:
        row = int(np.flatnonzero(y < 0)[0])
        raise DataError(f"file: {file}: labels must be non-negative class ids; {what} row {row} holds {y[row]}")
    return y


def _same_length(x: np.ndarray, y: np.ndarray, file: Path, x_key: str, y_key: str) -> None:
    if len(x) != len(y):
        raise DataError(f"file: {file}: {x_key} has {len(x)} rows but {y_key} has {len(y)}")
