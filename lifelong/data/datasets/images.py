"""Decoding image files (JPEG, PNG) into uint8 arrays, and caching the decoded arrays.

Decoding needs Pillow, the optional extra ``lifelong[images]``; :func:`require_pillow` raises a
:class:`DataError` that says how to install it. The decoded arrays of a dataset are cached as one
uncompressed ``.npz`` under the cache directory, keyed by a digest of the file list (names and
sizes), so a second load reads one file instead of decoding every image again; a changed file list
gives a new key, and the stale cache is not read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from lifelong.data.datasets._common import atomic_write, cache_root
from lifelong.errors import DataError

log = logging.getLogger(__name__)

#: The pip command of the extra that brings the image decoder.
INSTALL = "pip install 'lifelong[images]'"


def require_pillow(who: str) -> ModuleType:
    """Return ``PIL.Image``, or raise :class:`DataError` naming the extra to install."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError(f"{who}: decoding its images needs Pillow, which is not installed; run {INSTALL}") from exc
    return Image


def decode(path: Path, size: tuple[int, int] | None, *, who: str) -> np.ndarray:
    """The RGB pixels of the image file ``path`` as uint8 ``(3, H, W)``; greyscale and palette
    images are converted to RGB. ``size`` (height, width) resizes with bilinear filtering when the
    image is another size; ``None`` keeps it."""
    image_mod = require_pillow(who)
    try:
        with image_mod.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), image_mod.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for truncated or unknown files
        raise DataError(f"{who}: cannot decode {path} ({exc}); the file is corrupt, fetch the dataset again") from exc
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def decode_all(paths: Sequence[Path], size: tuple[int, int] | None, *, who: str) -> np.ndarray:
    """``decode`` each path into one uint8 array ``(N, 3, H, W)``; all images must share a size
    (pass ``size`` to resize them)."""
    if not paths:
        return np.zeros((0, 3, *(size or (0, 0))), dtype=np.uint8)
    first = decode(paths[0], size, who=who)
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)
    out[0] = first
    for i, path in enumerate(paths[1:], start=1):
        pixels = decode(path, size, who=who)
        if pixels.shape != first.shape:
            raise DataError(f"{who}: {path} is {pixels.shape[1]}x{pixels.shape[2]} but {paths[0]} is "
                            f"{first.shape[1]}x{first.shape[2]}; pass an image size to resize them")
        out[i] = pixels
    return out


def file_list_key(root: Path, files: Sequence[Path], extra: object) -> str:
    """A digest of the resolved ``root``, each file's path relative to it and its size, and
    ``extra`` (the loader's options that change the decoded arrays)."""
    digest = hashlib.sha256(json.dumps([str(root.resolve()), extra], sort_keys=True).encode())
    for path in files:
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:24]


def cached(name: str, key: str, build: Callable[[], dict[str, np.ndarray]], *, use_cache: bool) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns, read from ``<cache>/<name>/decoded-<key>.npz`` when it
    exists and written there otherwise (atomically; a cache that cannot be written is skipped with
    a warning). ``use_cache=False`` always builds and writes nothing."""
    path = cache_root() / name / f"decoded-{key}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError) as exc:
            log.warning("%s: ignoring the unreadable cache %s (%s)", name, path, exc)
    arrays = build()
    if use_cache:
        try:
            with atomic_write(path) as out:
                np.savez(out, **arrays)
        except (DataError, OSError) as exc:
            log.warning("%s: could not cache the decoded images at %s (%s)", name, path, exc)
    return arrays
