"""CORe50 (Lomonaco and Maltoni, 2017): 50 household objects in 10 categories, filmed in 11
sessions (different backgrounds and lighting); 164,866 colour 128x128 frames.

The standard layout ``core50_128x128/s{1..11}/o{1..50}/C_<ss>_<oo>_<fff>.png`` (the official
``core50_128x128.zip``, extracted) is looked for in ``data_dir``, ``data_dir/core50_128x128``,
``data_dir/core50`` and ``data_dir/core50/core50_128x128``, then the same places under
``$LIFELONG_DATA``. Object ``o<m>`` is class ``m - 1``; with ``labels = "category"`` the class is
its category ``(m - 1) // 5`` (the dataset's five objects per category). The training split is the
usual eight sessions (:data:`TRAIN_SESSIONS`: s1, s2, s4, s5, s6, s8, s9, s11) and the test split
the other three (:data:`TEST_SESSIONS`: s3, s7, s10). Each sample's session is kept
(:class:`SessionDataset`), for the NI scenario (``core50_ni``: one chunk per training session) and
the NC scenario (``core50_nc``).

The PNGs are decoded with Pillow (``lifelong[images]``) and resized to ``image_size`` (default 32:
the full 128x128 set is 32 GB as float32; ``image_size = 128`` keeps the native frames), and the
decoded arrays are cached under ``~/.cache/lifelong/core50``. Deviations: no ``--download`` (the
official zip is 7 GB from the authors' server, whose checksum this package does not carry; extract
it yourself); the npz variant (``core50_imgs.npz`` with ``paths.pkl``) is not read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lifelong.data import Dataset
from lifelong.data.datasets._common import (
    DATA_ENV,
    as_path,
    check_bool,
    check_positive_int,
    data_root,
    format_dirs,
    make_dataset,
    scale_uint8,
    with_subdirs,
)
from lifelong.data.datasets.images import cached, decode_all, file_list_key, require_pillow
from lifelong.errors import ConfigError, DataError

TOP = "core50_128x128"
SUBDIRS = (TOP, "core50", f"core50/{TOP}")
TRAIN_SESSIONS = (1, 2, 4, 5, 6, 8, 9, 11)
TEST_SESSIONS = (3, 7, 10)
N_OBJECTS, N_SESSIONS, PER_CATEGORY = 50, 11, 5
CATEGORIES = ("plug_adapter", "mobile_phone", "scissor", "light_bulb", "can", "glass", "ball", "marker", "cup",
              "remote_control")
_SESSION, _OBJECT = re.compile(r"^s(\d+)$"), re.compile(r"^o(\d+)$")


@dataclass(frozen=True)
class SessionDataset(Dataset):
    """A :class:`Dataset` whose samples carry the session they were filmed in (1-based)."""

    session_train: Tensor | None = None  # (N,) int64
    session_test: Tensor | None = None  # (M,) int64


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the directories searched for the session folders, in order."""
    return [*with_subdirs(as_path(data_dir), SUBDIRS), *with_subdirs(data_root(), SUBDIRS)]


def _sessions(d: Path) -> dict[int, Path]:
    if not d.is_dir():
        return {}
    out = {}
    for p in d.iterdir():
        if p.is_dir() and (m := _SESSION.match(p.name)) and 1 <= int(m.group(1)) <= N_SESSIONS:
            out[int(m.group(1))] = p
    return out


def find_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first searched directory holding every session folder ``s1`` .. ``s11``, or ``None``."""
    return next((d for d in search_dirs(data_dir) if len(_sessions(d)) == N_SESSIONS), None)


def available(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether the layout is present; no image is read."""
    return find_dir(data_dir) is not None


def _files(directory: Path, sessions: tuple[int, ...]) -> tuple[list[Path], list[int], list[int]]:
    folders = _sessions(directory)
    files, objects, session_of = [], [], []
    for s in sessions:
        for obj in sorted((p for p in folders[s].iterdir() if p.is_dir() and _OBJECT.match(p.name)),
                          key=lambda p: int(p.name[1:])):
            m = int(obj.name[1:])
            if not 1 <= m <= N_OBJECTS:
                raise DataError(f"{obj}: object folders are o1 .. o{N_OBJECTS}")
            frames = sorted(p for p in obj.iterdir() if p.suffix.lower() == ".png" and p.is_file())
            files += frames
            objects += [m - 1] * len(frames)
            session_of += [s] * len(frames)
    if not files:
        raise DataError(f"core50: sessions {', '.join(f's{s}' for s in sessions)} of {directory} hold no o<m>/*.png frames")
    return files, objects, session_of


def load(
    *, data_dir: str | os.PathLike[str] | None = None, download: bool = False, seed: int = 0,
    labels: str = "object", image_size: int = 32, normalize: bool = False, cache: bool = True,
) -> SessionDataset:
    """Load CORe50 with the usual session split (train s1, s2, s4, s5, s6, s8, s9, s11; test s3, s7, s10).

    Parameters
    ----------
    data_dir : path, optional
        The ``core50_128x128`` directory, or a parent of it.
    download : bool
        Not supported: extract the official ``core50_128x128.zip`` yourself.
    seed : int
        Ignored: the split is the official one.
    labels : {"object", "category"}
        The 50 objects (default) or their 10 categories.
    image_size : int
        Side of the square images after resizing (bilinear); 128 keeps the native frames.
    normalize : bool
        Standardise each channel with the training split's own mean and std.
    cache : bool
        Read and write the decoded arrays in the cache (default).
    """
    if labels not in ("object", "category"):
        raise ConfigError(f"dataset 'core50': labels must be 'object' or 'category', got {labels!r}")
    image_size = check_positive_int("core50", "image_size", image_size)
    normalize = check_bool("core50", "normalize", normalize)
    cache = check_bool("core50", "cache", cache)
    directory = find_dir(data_dir)
    if directory is None:
        note = "core50 has no --download (the official zip is 7 GB); " if download else ""
        raise DataError(
            f"core50: no directory holds the session folders s1 .. s11 of {TOP}. Looked in:\n"
            f"{format_dirs(search_dirs(data_dir))}\n"
            f"To fix: {note}extract core50_128x128.zip (from the CORe50 site) and pass --data-dir (data_dir=...) "
            f"pointing at it, or put it under $LIFELONG_DATA and set {DATA_ENV}"
        )
    require_pillow("core50")
    train, obj_train, s_train = _files(directory, TRAIN_SESSIONS)
    test, obj_test, s_test = _files(directory, TEST_SESSIONS)
    size = (image_size, image_size)

    def build() -> dict[str, np.ndarray]:
        return {"x_train": decode_all(train, size, who="core50"), "x_test": decode_all(test, size, who="core50")}

    arrays = cached("core50", file_list_key(directory, [*train, *test], {"size": image_size}), build, use_cache=cache)
    x_train, x_test = scale_uint8(arrays["x_train"]), scale_uint8(arrays["x_test"])
    if normalize:
        mean, std = x_train.mean(axis=(0, 2, 3)), x_train.std(axis=(0, 2, 3)) + 1e-8
        for x in (x_train, x_test):
            x -= mean[None, :, None, None]
            x /= std[None, :, None, None]
    y_train, y_test = np.asarray(obj_train, dtype=np.int64), np.asarray(obj_test, dtype=np.int64)
    names: tuple[str, ...] = tuple(f"o{m + 1}" for m in range(N_OBJECTS))
    if labels == "category":
        y_train, y_test, names = y_train // PER_CATEGORY, y_test // PER_CATEGORY, CATEGORIES
    base = make_dataset("core50", x_train, y_train, x_test, y_test, names)
    return SessionDataset(base.name, base.x_train, base.y_train, base.x_test, base.y_test, base.class_names,
                          session_train=torch.tensor(s_train, dtype=torch.int64),
                          session_test=torch.tensor(s_test, dtype=torch.int64))
