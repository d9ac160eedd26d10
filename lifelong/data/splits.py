"""The base splits: a :class:`~lifelong.data.Dataset` cut into chunks of disjoint classes (class- and
task-incremental) or of new input domains (domain-incremental), and the :class:`Stream` every
scenario returns.

They are the first stage of every scenario: :mod:`lifelong.data.scenarios` registers them with the
online, blurry and drifting streams, and :mod:`lifelong.data.lifetimes` builds the L2M lifetimes on
them. Each is deterministic given its seed and refuses a bad request with a message that says what
to change.

Examples
--------
>>> import torch
>>> from lifelong.data import Dataset
>>> g = torch.Generator().manual_seed(0)
>>> ds = Dataset("toy", torch.rand(60, 4, generator=g), torch.arange(60) % 6,
...              torch.rand(30, 4, generator=g), torch.arange(30) % 6)
>>> [c.classes for c in task_incremental(ds, n_chunks=2).chunks]
[(0, 1, 2), (3, 4, 5)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data import Chunk, Dataset, EvalSet
from lifelong.errors import ConfigError
from lifelong.seeding import derive_seed

__all__ = ["Stream", "class_incremental", "domain_incremental", "rotate", "task_incremental"]

@dataclass(frozen=True)
class Stream:
    """A scenario instance: the training chunks in order, the evaluation sets, and what the learner
    may know (``task_classes`` only in task-incremental streams; ``task_free`` hides boundaries)."""

    name: str
    chunks: list[Chunk]
    eval_sets: list[EvalSet]
    n_classes: int
    input_shape: tuple[int, ...]
    task_classes: list[tuple[int, ...]] | None = None
    task_free: bool = False
    info: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "scenario": self.name,
            "n_chunks": len(self.chunks),
            "n_eval": len(self.eval_sets),
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "chunk_classes": [list(c.classes) for c in self.chunks],
            "chunk_tasks": [c.name for c in self.chunks],
            "eval_tasks": [e.name for e in self.eval_sets],
            "chunk_sizes": [len(c) for c in self.chunks],
            "task_free": self.task_free,
            **self.info,
        }


def _class_order(n_classes: int, class_order: str | Sequence[int], seed: int) -> list[int]:
    if isinstance(class_order, str):
        if class_order == "natural":
            return list(range(n_classes))
        if class_order == "seeded":
            g = torch.Generator().manual_seed(derive_seed(seed, "class-order"))
            return torch.randperm(n_classes, generator=g).tolist()
        raise ConfigError(f"class_order must be 'natural', 'seeded' or a list of class ids, got {class_order!r}")
    order = [int(c) for c in class_order]
    if sorted(order) != sorted(set(order)) or any(c < 0 or c >= n_classes for c in order):
        raise ConfigError(f"class_order must list distinct class ids in [0, {n_classes - 1}], got {order}")
    return order


def _split_classes(ds: Dataset, n_chunks: int, classes_per_chunk: int | None, order: list[int], who: str) -> list[list[int]]:
    n = ds.n_classes if not order else len(order)
    if n_chunks < 1:
        raise ConfigError(f"{who}: n_chunks must be >= 1, got {n_chunks}")
    if classes_per_chunk is None:
        if n % n_chunks:
            divisors = [d for d in range(1, n + 1) if n % d == 0]
            raise ConfigError(
                f"{who}: {n} classes do not split into {n_chunks} equal chunks; "
                f"choose n_chunks from {divisors} or set classes_per_chunk"
            )
        classes_per_chunk = n // n_chunks
    if classes_per_chunk < 1 or n_chunks * classes_per_chunk > n:
        raise ConfigError(
            f"{who}: {n_chunks} chunks of {classes_per_chunk} classes need {n_chunks * classes_per_chunk} "
            f"classes but the dataset has {n}; lower n_chunks or classes_per_chunk"
        )
    return [order[i * classes_per_chunk : (i + 1) * classes_per_chunk] for i in range(n_chunks)]


def _subsample(idx: Tensor, limit: int | None, seed: int, tag: str) -> Tensor:
    if limit is None or len(idx) <= limit:
        return idx
    g = torch.Generator().manual_seed(derive_seed(seed, tag))
    return idx[torch.randperm(len(idx), generator=g)[:limit]].sort().values


def _split_by_class(
    ds: Dataset, *, n_chunks: int, classes_per_chunk: int | None, class_order: str | Sequence[int], seed: int,
    expose_task: bool, train_per_chunk: int | None, test_per_chunk: int | None, who: str,
) -> Stream:
    order = _class_order(ds.n_classes, class_order, seed)
    groups = _split_classes(ds, n_chunks, classes_per_chunk, order, who)
    chunks, evals = [], []
    for i, cs in enumerate(groups):
        cls = torch.tensor(cs)
        tr = _subsample(torch.isin(ds.y_train, cls).nonzero().flatten(), train_per_chunk, seed, f"train/{i}")
        te = _subsample(torch.isin(ds.y_test, cls).nonzero().flatten(), test_per_chunk, seed, f"test/{i}")
        if len(tr) == 0 or len(te) == 0:
            raise ConfigError(f"{who}: chunk {i} (classes {cs}) has no training or no test samples in {ds.name}")
        tr_task = torch.full((len(tr),), i, dtype=torch.int64) if expose_task else None
        te_task = torch.full((len(te),), i, dtype=torch.int64) if expose_task else None
        name = f"task{i}_" + "-".join(map(str, cs))
        chunks.append(Chunk(i, ds.train_inputs(tr), ds.y_train[tr], tuple(cs), tr_task, name))
        evals.append(EvalSet(i, ds.test_inputs(te), ds.y_test[te], tuple(cs), te_task, name))
    return Stream(
        who, chunks, evals, ds.n_classes, ds.input_shape,
        task_classes=[tuple(g) for g in groups] if expose_task else None,
        info={"class_order": order, "dataset": ds.name},
    )


def class_incremental(
    ds: Dataset, *, n_chunks: int = 5, classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", seed: int = 0,
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
) -> Stream:
    """Chunks of disjoint classes; no task identity; one head evaluated on every class seen."""
    return _split_by_class(
        ds, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order, seed=seed,
        expose_task=False, train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk, who="class_incremental",
    )


def task_incremental(
    ds: Dataset, *, n_chunks: int = 5, classes_per_chunk: int | None = None,
    class_order: str | Sequence[int] = "natural", seed: int = 0,
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
) -> Stream:
    """The class-incremental split with task ids given in training and evaluation; predictions are
    restricted to the task's classes."""
    return _split_by_class(
        ds, n_chunks=n_chunks, classes_per_chunk=classes_per_chunk, class_order=class_order, seed=seed,
        expose_task=True, train_per_chunk=train_per_chunk, test_per_chunk=test_per_chunk, who="task_incremental",
    )


def _image_view(x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``x`` as (N, C, H, W) plus the function that restores its original shape."""
    shape = x.shape[1:]
    if len(shape) == 3:
        return x, lambda t: t
    if len(shape) == 2:
        return x.unsqueeze(1), lambda t: t.squeeze(1)
    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        return x.view(-1, 1, side, side), lambda t: t.reshape(-1, shape[0])
    raise ConfigError(
        f"rotation needs image inputs (C, H, W), (H, W) or flattened squares; got shape {tuple(shape)}. "
        "Use transform = 'permutation' instead"
    )


def rotate(x: Tensor, degrees: float) -> Tensor:
    """Rotate images by ``degrees`` (bilinear, zero padding), in chunks to bound memory."""
    img, restore = _image_view(x)
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    mat = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=img.dtype)
    out = torch.empty_like(img)
    for i in range(0, len(img), 4096):
        part = img[i : i + 4096]
        grid = F.affine_grid(mat.expand(len(part), 2, 3), list(part.shape), align_corners=False)
        out[i : i + 4096] = F.grid_sample(part, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return restore(out)


def _permuted(ds: Dataset, split: str, rows: Tensor, perm: Tensor) -> Tensor:
    """The inputs ``rows`` of ``ds``'s ``split`` with their flattened features permuted by ``perm``:
    one copy of the stored values when ``rows`` is every row (uint8 codes are permuted, then
    converted, which gives the same floats as converting first)."""
    x = ds.x_train if split == "train" else ds.x_test
    flat = x.flatten(1) if len(rows) == len(x) else x[rows].flatten(1)
    moved = torch.index_select(flat, 1, perm).view(len(rows), *x.shape[1:])
    return moved if ds.scale is None else ds._decode(moved)


def domain_incremental(
    ds: Dataset, *, n_chunks: int = 5, transform: str = "permutation", seed: int = 0,
    angles: Sequence[float] | None = None, first_identity: bool = False,
    train_per_chunk: int | None = None, test_per_chunk: int | None = None,
) -> Stream:
    """Every chunk has all classes; the input distribution changes: a seeded pixel permutation per
    chunk, or a rotation (seeded angles in [0, 180) unless ``angles`` are given)."""
    if n_chunks < 1:
        raise ConfigError(f"domain_incremental: n_chunks must be >= 1, got {n_chunks}")
    if transform not in ("permutation", "rotation"):
        raise ConfigError(f"domain_incremental: transform must be 'permutation' or 'rotation', got {transform!r}")
    if angles is not None and len(angles) != n_chunks:
        raise ConfigError(f"domain_incremental: {len(angles)} angles given for {n_chunks} chunks")
    classes = tuple(range(ds.n_classes))
    chunks, evals, params = [], [], []
    for i in range(n_chunks):
        tr = _subsample(torch.arange(len(ds.y_train)), train_per_chunk, seed, f"train/{i}")
        te = _subsample(torch.arange(len(ds.y_test)), test_per_chunk, seed, f"test/{i}")
        g = torch.Generator().manual_seed(derive_seed(seed, f"domain/{i}"))
        if transform == "permutation":
            d = ds.x_train[0].numel()
            perm = torch.arange(d) if (first_identity and i == 0) else torch.randperm(d, generator=g)
            xtr, xte = _permuted(ds, "train", tr, perm), _permuted(ds, "test", te, perm)
            params.append(f"perm{i}")
        else:
            if angles is not None:
                angle = float(angles[i])
            else:
                angle = 0.0 if (first_identity and i == 0) else float(torch.rand((), generator=g)) * 180.0
            full_tr, full_te = len(tr) == len(ds.y_train), len(te) == len(ds.y_test)  # rotate reads, never writes
            xtr = rotate(ds.train_inputs(None if full_tr else tr), angle)
            xte = rotate(ds.test_inputs(None if full_te else te), angle)
            params.append(round(angle, 3))
        name = f"{transform}{i}_0"
        chunks.append(Chunk(i, xtr, ds.y_train[tr], classes, None, name))
        evals.append(EvalSet(i, xte, ds.y_test[te], classes, None, name))
    return Stream(
        "domain_incremental", chunks, evals, ds.n_classes, ds.input_shape,
        info={"transform": transform, "domains": params, "dataset": ds.name},
    )
