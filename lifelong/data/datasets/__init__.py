"""Offline dataset sources, each returning a :class:`lifelong.data.Dataset`.

:func:`load_dataset` picks a source from :data:`DATASETS` by name and passes it options.
:func:`dataset_available` says cheaply whether a source can load without a download.

==============  ==============================================================================
name            source
==============  ==============================================================================
digits          scikit-learn's 8x8 digits (bundled), stratified test split by ``seed``
fashion_mnist   Fashion-MNIST IDX files: data_dir, $LIFELONG_DATA, system package, or download
mnist           MNIST IDX files from data_dir or $LIFELONG_DATA/mnist
kmnist          Kuzushiji-MNIST IDX files from data_dir or $LIFELONG_DATA/kmnist
cifar10         CIFAR-10 python batches, read with a restricted unpickler
cifar100        CIFAR-100 python pickles (fine or coarse labels), the same unpickler
tiny_imagenet   TinyImageNet-200 JPEG layout, decoded with Pillow and cached as .npz
core50          CORe50 PNG layout (sessions kept for the NI/NC scenarios), decoded and cached
mnist1d         MNIST-1D generated locally and cached as .npz
file            a user .npz, .csv or .parquet file (option ``path``)
blobs           Gaussian classes, synthetic, for fast tests
==============  ==============================================================================

Importing this package reads no file, downloads nothing and seeds nothing.

Examples
--------
>>> ds = load_dataset("blobs", seed=0, n_per_class=20, n_test_per_class=5)
>>> ds.name, ds.input_shape, len(ds.y_train), len(ds.y_test)
('blobs', (20,), 200, 50)
>>> dataset_available("digits")
True
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong.data import Dataset
from lifelong.data.datasets import (
    cifar10,
    cifar100,
    core50,
    digits,
    fashion_mnist,
    files,
    mnist,
    mnist1d,
    synthetic,
    tiny_imagenet,
)
from lifelong.data.datasets._common import as_path
from lifelong.errors import ConfigError
from lifelong.options import check_options, check_value
from lifelong.registry import Registry

__all__ = ["DATASETS", "DatasetInfo", "dataset_available", "dataset_options", "load_dataset"]

# Keywords every loader accepts; everything else in its signature is a dataset-specific option.
_COMMON = ("data_dir", "download", "seed")


def _always(data_dir: Path | None = None) -> bool:
    return True


def _never(data_dir: Path | None = None) -> bool:
    return False


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of :data:`DATASETS`.

    Parameters
    ----------
    name : str
        Registry key.
    description : str
        One line for ``lifelong list``.
    loader : callable
        ``loader(*, data_dir, download, seed, **options) -> Dataset``; its other keyword-only
        parameters are the dataset's options.
    available : callable
        ``available(data_dir) -> bool``: whether the loader can succeed without downloading.
    protocol : mapping, optional
        The dataset's standard training protocol (``epochs``, ``batch_size``, ``lr``) for the
        offline chunked scenarios, where the field has one. ``None`` (the default, and every user
        file) means "derived from the training-set size" by
        :func:`lifelong.experiments.protocol.size_protocol`.

    Examples
    --------
    >>> info = DATASETS["blobs"]
    >>> info.options()
    ('n_classes', 'dim', 'n_per_class', 'n_test_per_class', 'separation')
    """

    name: str
    description: str
    loader: Callable[..., Dataset]
    available: Callable[[Path | None], bool] = _always
    protocol: Mapping[str, Any] | None = None

    def options(self) -> tuple[str, ...]:
        """Return the names of the dataset-specific options, in signature order."""
        params = inspect.signature(self.loader).parameters
        return tuple(p for p in params if p not in _COMMON)


#: The MNIST family's offline class-IL protocol (one epoch per chunk is enough for 12,000 samples a
#: chunk; the ledger's Split Fashion-MNIST rows are recorded with it).
MNIST_FAMILY = {"epochs": 1, "batch_size": 32, "lr": 0.05}

#: The DER paper's Seq-CIFAR-10 protocol (Buzzega et al. 2020): 50 epochs per chunk, batch 32, SGD
#: lr 0.03, random crop and horizontal flip; the same for CIFAR-100 (mammoth's seq-cifar100).
#: ``augment`` applies where the learner and the inputs take it (see lifelong.experiments.protocol).
CIFAR_PROTOCOL = {"epochs": 50, "batch_size": 32, "lr": 0.03, "augment": "crop_flip"}

#: The DER paper's Seq-TinyImageNet protocol (mammoth's seq-tinyimg): 100 epochs per chunk, batch
#: 32, SGD lr 0.03, random crop (padding 4) and horizontal flip.
TINY_IMAGENET_PROTOCOL = {"epochs": 100, "batch_size": 32, "lr": 0.03, "augment": "crop_flip"}

DATASETS: Registry = Registry("dataset", {
    info.name: info
    for info in (
        DatasetInfo("digits", "scikit-learn 8x8 handwritten digits, 10 classes, 64 features (bundled)", digits.load),
        DatasetInfo(
            "fashion_mnist",
            "Fashion-MNIST, 10 clothing classes, 28x28 grey (local files or --download)",
            fashion_mnist.load,
            fashion_mnist.available,
            MNIST_FAMILY,
        ),
        DatasetInfo(
            "mnist", "MNIST handwritten digits, 28x28 grey (local IDX files)", mnist.load_mnist, mnist.mnist_available,
            MNIST_FAMILY,
        ),
        DatasetInfo(
            "kmnist",
            "Kuzushiji-MNIST cursive Japanese characters, 28x28 grey (local IDX files)",
            mnist.load_kmnist,
            mnist.kmnist_available,
            MNIST_FAMILY,
        ),
        DatasetInfo(
            "cifar10",
            "CIFAR-10 colour 32x32 images, 10 classes (local python batches or --download)",
            cifar10.load,
            cifar10.available,
            CIFAR_PROTOCOL,
        ),
        DatasetInfo(
            "cifar100",
            "CIFAR-100 colour 32x32 images, 100 classes or 20 superclasses (local python pickles or --download)",
            cifar100.load,
            cifar100.available,
            CIFAR_PROTOCOL,
        ),
        DatasetInfo(
            "tiny_imagenet",
            "TinyImageNet-200 colour 64x64 images, 200 classes (local JPEG layout or --download; needs Pillow)",
            tiny_imagenet.load,
            tiny_imagenet.available,
            TINY_IMAGENET_PROTOCOL,
        ),
        DatasetInfo(
            "core50",
            "CORe50 50 objects (10 categories) in 11 sessions, colour frames (local PNG layout; needs Pillow)",
            core50.load,
            core50.available,
        ),
        DatasetInfo("mnist1d", "MNIST-1D 40-step signals, 10 classes (generated and cached locally)", mnist1d.load,
                    protocol={"epochs": 40}),  # an MLP needs ~5,000 steps here: Joint 0.60 at 20 epochs, 0.64 at 40
        DatasetInfo("file", "your own .npz, .csv or .parquet file (option path=...)", files.load, _never),
        DatasetInfo("blobs", "synthetic Gaussian classes, 20 dims (instant; for tests and examples)", synthetic.load),
    )
})


def _lookup(name: str) -> DatasetInfo:
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[key]


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Load dataset ``name`` from :data:`DATASETS`.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`; hyphens are read as underscores (``fashion-mnist``).
    data_dir : path, optional
        Where to look for (or put) the files; each source documents its search order.
    download : bool
        Allow a download when no local copy exists (``fashion_mnist``, ``cifar10``, ``cifar100`` and
        ``tiny_imagenet``).
    seed : int
        Seed of any split or generation the source performs.
    **options
        Dataset-specific options, listed by ``DATASETS[name].options()``.

    Returns
    -------
    Dataset

    Raises
    ------
    ConfigError
        If the name or an option is unknown, or an option value is invalid.
    DataError
        If the data is missing or malformed; the message says how to fix it.

    Examples
    --------
    >>> load_dataset("digits", test_fraction=0.5).x_test.shape
    torch.Size([901, 64])
    >>> load_dataset("digits", colour=True)
    Traceback (most recent call last):
    ...
    lifelong.errors.ConfigError: unknown option(s) colour for dataset 'digits'; it accepts: test_fraction
    """
    info = _lookup(name)
    options = dataset_options(name, options)
    if not isinstance(download, bool):
        raise ConfigError(f"download must be true or false, got {download!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return info.loader(data_dir=as_path(data_dir), download=download, seed=seed, **options)


def dataset_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check the options of dataset ``name`` (``data_dir``, ``download``, ``seed`` and its own)
    against its loader's signature; returns them converted (an int given for a float becomes a
    float). An unknown name, an unknown option or a value of the wrong type raises
    :class:`ConfigError`.

    Examples
    --------
    >>> dataset_options("digits", {"test_fraction": 1})
    {'test_fraction': 1.0}
    >>> dataset_options("digits", {"test_fraction": "half"})
    Traceback (most recent call last):
    ...
    lifelong.errors.ConfigError: dataset 'digits': test_fraction must be a number, got 'half'
    """
    info = _lookup(name)
    accepted = info.options()
    unknown = sorted(set(options) - set(accepted) - set(_COMMON))
    if unknown:
        hint = f"it accepts: {', '.join(accepted)}" if accepted else "it takes no options"
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for dataset {info.name!r}; {hint}")
    out = check_options(info.loader, options, where=f"dataset {info.name!r}:")
    if "data_dir" in out and out["data_dir"] is not None:
        check_value(out["data_dir"], str | os.PathLike, where=f"dataset {info.name!r}: data_dir")
    return out


def dataset_available(name: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether ``name`` can be loaded without a download; files are looked for but not read.

    Generated and bundled sources (``digits``, ``blobs``, ``mnist1d``) are always available;
    ``file`` never is, since it needs a ``path`` option.

    Raises
    ------
    ConfigError
        If the name is unknown.
    """
    return _lookup(name).available(as_path(data_dir))
