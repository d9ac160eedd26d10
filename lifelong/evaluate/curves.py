"""Accuracy along the stream: per-task accuracy at every evaluation point, mean ± std over seeds.

:func:`accuracy_curves` turns a run log into a :class:`Curves` (what the report plots);
:func:`mean_matrix` averages the per-seed accuracy matrices of ``metrics.json``. Both are pure
functions of their input, like every metric in :mod:`lifelong.evaluate`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelong.log import Record


def mean_matrix(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Cell-wise mean over seeds of accuracy matrices that may differ in shape (padded with NaN).

    Examples
    --------
    >>> mean_matrix([np.array([[0.5]]), np.array([[1.0, 0.0]])]).tolist()
    [[0.75, 0.0]]
    """
    if not matrices:
        return np.zeros((0, 0))
    shape = (max(m.shape[0] for m in matrices), max(m.shape[1] for m in matrices))
    stack = np.full((len(matrices), *shape), np.nan)
    for k, m in enumerate(matrices):
        stack[k, : m.shape[0], : m.shape[1]] = m
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        return np.nanmean(stack, axis=0)


@dataclass
class Curves:
    """Accuracy along the stream, mean (and std) over seeds.

    ``steps`` has shape (K,); ``mean``/``std`` (K, T) per evaluation set; ``seen_mean``/``seen_std``
    (K,) the mean accuracy over the tasks seen so far (NaN before any is seen).
    """

    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    seen_mean: np.ndarray
    seen_std: np.ndarray
    task_names: list[str]
    boundaries: list[int]
    drifts: list[int]
    sleep_spans: list[tuple[int, int]]
    periodic: bool
    n_seeds: int


def _seen_by_chunk(meta: dict[str, Any], n_eval: int, n_chunks: int) -> list[list[int]]:
    """Evaluation sets seen by the end of each training chunk (by task name, else chunk i <-> set i)."""
    if meta.get("data_view") == "joint":
        return [list(range(n_eval))] * max(n_chunks, 1)
    names = [str(n).lower() for n in meta.get("chunk_tasks") or []]
    evals = [str(n).lower() for n in meta.get("eval_tasks") or []]
    seen: set[int] = set()
    out = []
    for c in range(n_chunks):
        match = {j for j, e in enumerate(evals) if c < len(names) and e == names[c]}
        seen |= match or ({c} if c < n_eval else set())
        out.append(sorted(seen))
    return out


def accuracy_curves(records: Sequence[Record]) -> Curves:
    """Per-task accuracy at every evaluation point (periodic and boundary), mean ± std over seeds.

    Counts of records sharing ``(seed, step, task)`` are summed (a periodic and a boundary
    evaluation at the same step see the same model).
    """
    seeds = list(dict.fromkeys(r.seed for r in records if r.kind == "eval"))
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    evals = [r for r in records if r.kind == "eval" and r.task is not None and r.step is not None]
    n_eval = max((r.task for r in evals), default=-1) + 1
    steps = np.array(sorted({r.step for r in evals}), dtype=np.int64)
    pos = {int(s): k for k, s in enumerate(steps)}
    seed_pos = {s: k for k, s in enumerate(seeds)}
    n = np.zeros((len(seeds), len(steps), n_eval))
    correct = np.zeros_like(n)
    chunk_at = np.full((len(seeds), len(steps)), -2, dtype=np.int64)  # -2: no evaluation at that step
    for r in evals:
        i, k = seed_pos[r.seed], pos[r.step]
        n[i, k, r.task] += r.n or 0
        correct[i, k, r.task] += r.n_correct or 0
        chunk_at[i, k] = max(chunk_at[i, k], r.chunk if r.chunk is not None else -1)
    acc = np.full(n.shape, np.nan)
    np.divide(correct, n, out=acc, where=n > 0)
    n_chunks = int(chunk_at.max()) + 1 if chunk_at.size else 0
    seen = _seen_by_chunk(meta, n_eval, n_chunks)
    seen_acc = np.full(chunk_at.shape, np.nan)
    for i in range(len(seeds)):
        for k in range(len(steps)):
            c = chunk_at[i, k]
            if c >= 0 and seen[c]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    seen_acc[i, k] = np.nanmean(acc[i, k, seen[c]])
    first = seeds[0] if seeds else 0
    ends = {r.chunk: r.step for r in records if r.kind == "chunk_end" and r.seed == first}
    starts = {c: ends.get(c - 1, 0) for c in ends}
    sleep_spans = [(starts[c], ends[c]) for c in meta.get("sleep_chunks") or [] if c in ends] \
        if meta.get("data_view", "stream") == "stream" else []
    return Curves(
        steps=steps, mean=_nanmean(acc), std=_nanstd(acc), seen_mean=_nanmean(seen_acc), seen_std=_nanstd(seen_acc),
        task_names=[(meta.get("eval_tasks") or [])[j] if j < len(meta.get("eval_tasks") or []) else f"task {j}"
                    for j in range(n_eval)],
        boundaries=sorted(ends.values())[:-1] if ends else [],
        drifts=sorted({int(r.step) for r in records if r.kind == "drift" and r.step is not None}),
        sleep_spans=sleep_spans, periodic=any(r.boundary is False for r in evals), n_seeds=len(seeds),
    )


def _nanmean(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=0) if a.shape[0] else a.sum(axis=0)


def _nanstd(a: np.ndarray) -> np.ndarray:
    """Sample std over seeds (axis 0), ignoring NaN; 0 where a single value is present."""
    count = (~np.isnan(a)).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(a, axis=0, ddof=1) if a.shape[0] > 1 else np.zeros(a.shape[1:])
    return np.where(count > 1, std, 0.0)
