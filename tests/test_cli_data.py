"""User data from the command line (``--data``, ``--label``, ``--standardize``), the file loader's
``standardize`` option, flag normalisation and notes, and config errors found before any data is read."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from conftest import cli, cli_env
from lifelong.data.datasets import load_dataset
from lifelong.data.datasets.files import standardize_splits


def write_csv(path, *, n_per_class=30, n_classes=4, scale=1.0, label="target", seed=0):
    """A CSV of ``n_classes`` Gaussian classes in 3 features (times ``scale``), labels in ``label``."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(n_classes, 3))
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = (means[y] + rng.normal(size=(len(y), 3))) * scale
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2"])
    frame[label] = y
    frame.to_csv(path, index=False)
    return path


# -- the standardize option ------------------------------------------------------------------------
def test_standardize_uses_the_training_statistics_for_both_splits(tmp_path):
    file = tmp_path / "test_stats.npz"
    rng = np.random.default_rng(1)
    x_train = rng.normal(100.0, 20.0, size=(50, 3)).astype(np.float32)
    x_train[:, 2] = 7.0  # a constant feature: centred, not divided by 0
    x_test = rng.normal(-30.0, 2.0, size=(10, 3)).astype(np.float32)  # its own statistics differ
    y_train, y_test = np.arange(50) % 2, np.arange(10) % 2
    np.savez(file, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    ds = load_dataset("file", path=str(file), standardize=True)
    mean, std = x_train.astype(np.float64).mean(0), x_train.astype(np.float64).std(0)
    std[2] = 1.0
    np.testing.assert_allclose(ds.x_test.numpy(), (x_test - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.numpy().mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.numpy()[:, :2].std(0), 1.0, atol=1e-5)
    assert (ds.x_train[:, 2] == 0).all() and torch.allclose(ds.x_test[:, 2], torch.tensor(x_test[:, 2] - 7.0))
    assert ds.x_test.numpy()[:, :2].mean() < -3  # not re-centred on its own statistics
    # default: the values as they are in the file
    raw = load_dataset("file", path=str(file))
    assert torch.equal(raw.x_test, torch.from_numpy(x_test))


def test_standardize_on_a_csv_keeps_the_split_and_the_labels(tmp_path):
    file = write_csv(tmp_path / "table.csv", scale=1000.0)
    raw = load_dataset("file", path=str(file), label="target", seed=3)
    scaled = load_dataset("file", path=str(file), label="target", seed=3, standardize=True)
    assert torch.equal(raw.y_train, scaled.y_train) and torch.equal(raw.y_test, scaled.y_test)
    expected_train, expected_test = standardize_splits(raw.x_train.numpy(), raw.x_test.numpy())
    np.testing.assert_allclose(scaled.x_train.numpy(), expected_train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaled.x_test.numpy(), expected_test, rtol=1e-5, atol=1e-5)
    mean = raw.x_train.double().mean(0)
    std = raw.x_train.double().std(0, correction=0)
    np.testing.assert_allclose(scaled.x_test.numpy(), ((raw.x_test.double() - mean) / std).numpy(), rtol=1e-4, atol=1e-4)


def test_standardize_must_be_a_bool(tmp_path):
    from lifelong.errors import ConfigError

    file = tmp_path / "toy.npz"
    np.savez(file, x=np.eye(8, dtype=np.float32), y=np.arange(8) % 2)
    with pytest.raises(ConfigError, match="standardize"):
        load_dataset("file", path=str(file), standardize="yes")
