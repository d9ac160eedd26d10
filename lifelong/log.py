"""Run records and the JSONL run log.

A run is a stream of :class:`Record` objects, one JSON object per line in ``log.jsonl``. Records
hold raw counts (``n``, ``n_correct``, ``loss_sum``), never percentages; every metric is a pure
function of them. Nothing time-dependent is written, so the same seed gives a byte-identical log.

Record kinds
------------
``meta``
    first record of each seed: ``extra`` holds the stream description (``n_chunks``, ``n_classes``,
    ``chunk_classes``, ``learner``, ``scenario``, ``dataset``, ``task_free``, ...).
``train``
    one per training batch: ``chunk``, ``epoch``, ``step`` (global batch counter, from 1), ``n``,
    ``n_correct``, ``loss_sum`` on the incoming batch before the update.
``eval``
    one per evaluation set and evaluation point: ``chunk`` is the chunk after which it was taken
    (``-1`` for the randomly initialised network), ``task`` the evaluation set's index, ``step``
    the global step, ``boundary`` is true at chunk ends (the accuracy-matrix rows) and false for
    periodic evaluations inside a chunk.
``chunk_end``
    marks that chunk ``chunk`` and its boundary evaluation are complete.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lifelong.errors import DataError

KINDS = ("meta", "train", "eval", "chunk_end", "drift")


@dataclass(frozen=True)
class Record:  # noqa: PLR0902 - one flat record type keeps the log greppable
    """One line of the run log. Fields that do not apply are ``None`` and are not written.

    Examples
    --------
    >>> r = Record("eval", seed=0, chunk=1, task=0, step=40, n=100, n_correct=93, loss_sum=21.5, boundary=True)
    >>> Record.from_json(r.to_json()) == r
    True
    >>> r.accuracy
    0.93
    """

    kind: str
    seed: int = 0
    chunk: int | None = None
    task: int | None = None
    step: int | None = None
    epoch: int | None = None
    n: int | None = None
    n_correct: int | None = None
    loss_sum: float | None = None
    boundary: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown record kind {self.kind!r}; expected one of {KINDS}")

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in _SCALAR_FIELDS if getattr(self, k) is not None}
        if self.extra:
            d["extra"] = self.extra
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        return cls(**d)

    @classmethod
    def from_json(cls, line: str) -> Record:
        return cls.from_dict(json.loads(line))


_SCALAR_FIELDS = tuple(f.name for f in fields(Record) if f.name != "extra")


class RunLog:
    """Append-only JSONL writer. ``offset`` is the byte length written so far (used by resume)."""

    def __init__(self, path: str | Path, *, truncate_to: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = "r+b" if self.path.exists() else "wb"
        self._f = open(self.path, mode)  # noqa: SIM115 - closed in close()
        if truncate_to is not None:
            self._f.truncate(truncate_to)
        self._f.seek(0, 2)

    @property
    def offset(self) -> int:
        return self._f.tell()

    def write(self, record: Record) -> None:
        self._f.write(record.to_json().encode() + b"\n")

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(path: str | Path, *, exclude: Collection[str] = ()) -> list[Record]:
    """Read the records of a ``log.jsonl``; a torn last line (a killed writer) is ignored.

    Parameters
    ----------
    path : str or Path
        The log file.
    exclude : collection of str
        Record kinds to leave out, e.g. ``("train",)``: the report never reads the per-batch
        records, which are the bulk of a log, and their lines are skipped without being parsed.

    Raises
    ------
    DataError
        If the file does not exist or a line other than the last is not a record.
    """
    return list(iter_log(path, exclude=exclude))


def iter_log(path: str | Path, *, exclude: Collection[str] = ()) -> Iterator[Record]:
    """The records of a ``log.jsonl`` one by one, in file order; see :func:`read_log`."""
    excluded = frozenset(exclude)
    unknown = excluded - set(KINDS)
    if unknown:
        raise ValueError(f"unknown record kinds {sorted(unknown)}; expected some of {KINDS}")
    # Record.to_json writes compact sorted JSON, so a record of kind k contains '"kind":"k"'. A line
    # without an "extra" object can hold that text only as its own kind: skip it unparsed.
    markers = tuple(f'"kind":"{k}"' for k in sorted(excluded))
    marker = markers[0] if len(markers) == 1 else None  # the usual case, ("train",): one test per line
    path = Path(path)
    if not path.exists():
        raise DataError(f"no run log at {path}; pass a run directory written by `lifelong run`")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        # (the last line may be torn: it is parsed below, so that it is ignored the same way)
        if markers and i != last and '"extra"' not in line and (marker in line if marker else any(m in line for m in markers)):
            continue
        try:
            record = Record.from_json(line)
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            if i == last:  # last line without newline: torn write, ignore
                return
            raise DataError(f"{path}:{i + 1}: not a valid run record ({e})") from None
        if record.kind not in excluded:
            yield record


def write_log(path: str | Path, records: Iterable[Record]) -> None:
    with RunLog(path, truncate_to=0) as log:
        for r in records:
            log.write(r)
