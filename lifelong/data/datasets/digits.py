"""The scikit-learn handwritten digits: 1,797 images of 8x8 pixels, ten classes.

The data ships inside scikit-learn, so loading never touches the network. Pixels (0..16) are
scaled to [0, 1] and flattened to 64 features. scikit-learn has no test split, so one is drawn
class by class from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import numpy as np

from lifelong.data import Dataset
from lifelong.data.datasets._common import check_fraction, check_seed, make_dataset, stratified_split

CLASS_NAMES = tuple(str(d) for d in range(10))


def load(*, data_dir: object = None, download: bool = False, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """Load the digits with a deterministic stratified test split.

    Parameters
    ----------
    data_dir, download
        Ignored: the data ships with scikit-learn.
    seed : int
        Seed of the train/test split.
    test_fraction : float
        Share of each class that goes to the test split, strictly between 0 and 1.

    Returns
    -------
    Dataset
        Inputs of shape ``(64,)`` in [0, 1].

    Examples
    --------
    >>> ds = load(seed=0)
    >>> ds.input_shape, ds.n_classes, len(ds.y_train) + len(ds.y_test)
    ((64,), 10, 1797)
    """
    from sklearn.datasets import load_digits  # imported lazily: sklearn is slow to import

    fraction = check_fraction("digits", "test_fraction", test_fraction)
    seed = check_seed("digits", seed)
    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)  # (1797, 64)
    y = np.asarray(bunch.target, dtype=np.int64)  # (1797,)
    train, test = stratified_split(y, fraction, seed)
    return make_dataset("digits", x[train], y[train], x[test], y[test], CLASS_NAMES)
