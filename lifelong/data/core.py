"""The plain-data contracts passed between stages: :class:`Dataset`, :class:`Batch`, :class:`Chunk`
and :class:`EvalSet`.

All are frozen dataclasses holding tensors. Inputs are ``float32`` of shape ``(N, *input_shape)``
and labels are ``int64`` of shape ``(N,)``. A :class:`Dataset` may store its inputs as ``uint8`` codes
with a ``scale`` (the image loaders do: a quarter of the memory); :meth:`Dataset.train_inputs` and
:meth:`Dataset.test_inputs` give them as float32, and the scenarios build their chunks from those.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lifelong.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset split into train and test tensors.

    Examples
    --------
    >>> ds = Dataset("toy", torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]),
    ...              torch.zeros(2, 2), torch.tensor([0, 1]))
    >>> ds.n_classes, ds.input_shape
    (2, (2,))

    With ``scale``, ``x_train`` and ``x_test`` hold ``uint8`` codes and the inputs are
    ``codes * scale`` in float32 (``codes.float() / (1 / scale)`` when ``1 / scale`` is an integer,
    so that 255-level pixels give exactly the floats ``x / 255`` gives). Read inputs through
    :meth:`train_inputs` and :meth:`test_inputs`, which gather the rows first and convert only those:

    >>> img = Dataset("img", torch.tensor([[0, 255], [51, 102]], dtype=torch.uint8), torch.tensor([0, 1]),
    ...               torch.tensor([[255, 0]], dtype=torch.uint8), torch.tensor([1]), scale=1 / 255)
    >>> img.train_inputs(torch.tensor([1])).tolist(), img.test_inputs().dtype
    ([[0.20000000298023224, 0.4000000059604645]], torch.float32)
    """

    name: str
    x_train: Tensor  # (N, *input_shape) float32
    y_train: Tensor  # (N,) int64
    x_test: Tensor  # (M, *input_shape) float32
    y_test: Tensor  # (M,) int64
    class_names: tuple[str, ...] | None = None
    scale: float | None = None  # x_* are uint8 codes; the inputs are codes * scale

    def __post_init__(self) -> None:
        if self.scale is not None and not (isinstance(self.scale, float) and 0 < self.scale < float("inf")):
            raise DataError(f"{self.name}: scale must be a positive finite float, got {self.scale!r}")
        codes = torch.uint8 if self.scale is not None else None
        validate_arrays(self.x_train, self.y_train, where=f"{self.name} train split", codes=codes)
        validate_arrays(self.x_test, self.y_test, where=f"{self.name} test split", codes=codes)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train inputs have shape {tuple(self.x_train.shape[1:])} but test "
                f"inputs have {tuple(self.x_test.shape[1:])}; both splits must share one input shape"
            )

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def train_inputs(self, idx: Tensor | None = None) -> Tensor:
        """The training inputs (rows ``idx``, or all) as float32; a new tensor unless the dataset
        stores float32 and ``idx`` is None."""
        return self._inputs(self.x_train, idx)

    def test_inputs(self, idx: Tensor | None = None) -> Tensor:
        """The test inputs (rows ``idx``, or all) as float32; see :meth:`train_inputs`."""
        return self._inputs(self.x_test, idx)

    def max_abs_input(self) -> float:
        """The largest absolute training input, without converting the whole split."""
        if self.x_train.numel() == 0:
            return 0.0
        if self.scale is None:
            return float(self.x_train.abs().max())
        return float(self._decode(self.x_train.max().reshape(1)))

    def _inputs(self, x: Tensor, idx: Tensor | None) -> Tensor:
        rows = x if idx is None else x[idx]
        return rows if self.scale is None else self._decode(rows)

    def _decode(self, codes: Tensor) -> Tensor:
        assert self.scale is not None
        out = codes.to(torch.float32)
        levels = 1.0 / self.scale
        if abs(levels - round(levels)) < 1e-9:  # x / 255, bit for bit what the float loaders computed
            return out.div_(round(levels))
        return out.mul_(self.scale)


def first_nonfinite_row(x: Tensor, block: int = 1 << 22) -> int | None:
    """The first row of ``x`` holding a NaN or an infinity, or ``None``. Checked in blocks of about
    ``block`` elements: ``torch.isfinite`` on a whole dataset builds temporaries larger than the data
    (it raised a process's peak memory by 310 MB on Fashion-MNIST)."""
    if x.numel() == 0:
        return None
    rows = max(1, block // max(1, x[0].numel()))
    for start in range(0, x.shape[0], rows):
        part = x[start : start + rows]
        finite = torch.isfinite(part).flatten(1).all(1)
        if not bool(finite.all()):
            return start + int((~finite).nonzero()[0, 0])
    return None


def validate_arrays(x: Tensor, y: Tensor, *, where: str, codes: torch.dtype | None = None) -> None:
    """Raise :class:`DataError` unless ``x`` is finite float32 (or of dtype ``codes``, when given)
    and ``y`` non-negative int64 of equal length."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise DataError(f"{where}: inputs and labels must be torch tensors")
    if x.dtype != (codes or torch.float32):
        what = f"{codes} codes (the dataset has a scale)" if codes else "float32"
        raise DataError(f"{where}: inputs must be {what}, got {x.dtype}")
    if y.dtype != torch.int64:
        raise DataError(f"{where}: labels must be int64 class ids, got {y.dtype}")
    if y.ndim != 1 or x.ndim < 2 or x.shape[0] != y.shape[0]:
        raise DataError(
            f"{where}: expected inputs (N, ...) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] == 0:
        raise DataError(f"{where}: the split is empty")
    bad = first_nonfinite_row(x) if codes is None else None  # integer codes are always finite
    if bad is not None:
        raise DataError(f"{where}: inputs contain NaN or inf (first at row {bad}); clean or drop those rows")
    if int(y.min()) < 0:
        raise DataError(f"{where}: labels must be non-negative class ids, found {int(y.min())}")


@dataclass(frozen=True)
class Batch:
    """One mini-batch handed to a learner.

    ``task`` is present only where the scenario exposes task identity. ``extras`` carries fields
    stored beside samples in a memory (for example ``logits`` for DER).
    """

    x: Tensor  # (B, *input_shape) float32
    y: Tensor  # (B,) int64 class ids
    task: Tensor | None = None  # (B,) int64
    extras: Mapping[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Chunk:
    """A contiguous piece of the training stream (an *experience*).

    ``index`` is the chunk's position in the stream; ``classes`` the classes it contains.
    """

    index: int
    x: Tensor  # (N, *input_shape)
    y: Tensor  # (N,)
    classes: tuple[int, ...]
    task: Tensor | None = None  # (N,) int64 where task identity is exposed
    name: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batches(self, batch_size: int, generator: torch.Generator | None, *, shuffle: bool = True) -> Iterator[Batch]:
        """Yield mini-batches; the order is a permutation drawn from ``generator`` when ``shuffle``."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            task = self.task[idx] if self.task is not None else None
            yield Batch(self.x[idx], self.y[idx], task)


@dataclass(frozen=True)
class EvalSet:
    """A held-out set that is scored after each chunk; row ``j`` of the accuracy matrix."""

    index: int
    x: Tensor
    y: Tensor
    classes: tuple[int, ...]
    task: Tensor | None = None
    name: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])
