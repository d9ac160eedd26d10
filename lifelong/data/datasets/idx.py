"""Reader (and a small writer) for the IDX format used by MNIST, Fashion-MNIST and KMNIST.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32
sizes, then the values in row-major order. Files may be gzip-compressed; that is detected from the
content, not the name. A malformed file raises :class:`~lifelong.errors.DataError` naming the file.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
>>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
>>> read_idx(path)
array([3, 1, 4], dtype=uint8)
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lifelong.data import Dataset
from lifelong.data.datasets._common import atomic_write, make_dataset
from lifelong.errors import DataError

# IDX type byte -> big-endian numpy dtype.
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder(">") if dt.itemsize > 1 else dt: code for code, dt in _DTYPES.items()}

# The four files of an MNIST-style distribution, without the optional ``.gz``.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(raw: bytes, *, where: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes into an array of native byte order.

    Parameters
    ----------
    raw : bytes
        The whole file content, already decompressed.
    where : str
        Name used in error messages (usually the file path).

    Returns
    -------
    numpy.ndarray
        Shape given by the header. For ``uint8`` data this is a read-only view of ``raw``.

    Raises
    ------
    DataError
        If the magic number, the type code or the data length is wrong.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{where}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; expected 0000TTNN); "
            "the file is corrupt or of another format"
        )
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise DataError(f"{where}: unknown IDX type code 0x{code:02x}; the file is corrupt")
    if ndim == 0:
        raise DataError(f"{where}: IDX header declares zero dimensions; the file is corrupt")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{where}: IDX header is truncated ({len(raw)} bytes); the file is corrupt")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _DTYPES[code]
    count = math.prod(dims)
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(
            f"{where}: IDX header declares shape {dims} ({count * dtype.itemsize} data bytes) but the file "
            f"holds {len(raw) - header}; the file is truncated or corrupt, fetch it again"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    numpy.ndarray
        See :func:`parse_idx`.

    Raises
    ------
    DataError
        If the file is missing, unreadable, a broken gzip stream, or malformed IDX.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is corrupt or truncated, fetch it again") from exc
    return parse_idx(raw, where=str(path))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; written atomically.
    array : numpy.ndarray
        At least one dimension; dtype uint8, int8, int16, int32, float32 or float64.
    """
    array = np.asarray(array)
    key = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if key not in _CODES or array.ndim == 0 or array.ndim > 255:
        raise DataError(f"cannot write {array.dtype} array of {array.ndim} dims as IDX")
    body = struct.pack(f">BBBB{array.ndim}I", 0, 0, _CODES[key], array.ndim, *array.shape)
    body += np.ascontiguousarray(array, dtype=key).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        body = gzip.compress(body, mtime=0)
    with atomic_write(path) as fh:
        fh.write(body)


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """Return ``directory/stem.gz`` or ``directory/stem`` (in that order) if it is a file."""
    for name in (f"{stem}.gz", stem):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def has_idx_files(directory: Path) -> bool:
    """Return whether ``directory`` holds all four files of an MNIST-style distribution."""
    return all(find_idx_file(directory, stem) is not None for stem in IDX_FILES.values())


def _images_and_labels(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            "the files do not belong together"
        )
    return images, labels


def load_idx_dataset(
    name: str, directory: Path, *, flatten: bool, class_names: Sequence[str] | None = None
) -> Dataset:
    """Load an MNIST-style directory (the four :data:`IDX_FILES`) as a :class:`~lifelong.data.Dataset`.

    Pixels are scaled to [0, 1]: the dataset keeps the uint8 pixels with ``scale = 1/255`` (a quarter
    of the memory of float32; the scenarios convert each chunk's rows). Inputs have shape ``(rows*cols,)`` when ``flatten`` is true, else
    ``(1, rows, cols)``.
    """
    paths = {}
    for key, stem in IDX_FILES.items():
        found = find_idx_file(directory, stem)
        if found is None:
            raise DataError(f"{name}: {directory} has no {stem} or {stem}.gz")
        paths[key] = found
    x_train, y_train = _images_and_labels(paths["train_images"], paths["train_labels"])
    x_test, y_test = _images_and_labels(paths["test_images"], paths["test_labels"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{name}: train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]} in {directory}"
        )
    shape = (-1,) if flatten else (1, *x_train.shape[1:])
    return make_dataset(
        name,
        x_train.reshape(len(x_train), *shape),
        y_train,
        x_test.reshape(len(x_test), *shape),
        y_test,
        class_names,
        scale=1 / 255,
    )
