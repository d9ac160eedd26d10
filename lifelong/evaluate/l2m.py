"""Lifelong-learning (L2M) metrics, numerically equal to ``l2metrics`` 3.1.0.

The definitions follow ``REFERENCE.md`` ("Lifelong-learning (L2M) metrics"): New, Baker, Nguyen and
Vallabha, "Lifelong Learning Metrics" (arXiv 2201.08278), and Baker et al., "A Domain-Agnostic
Approach for Characterization of Lifelong Learning Systems" (Neural Networks 2023). Where the papers
leave a detail open, this module does what the reference implementation, the ``l2metrics`` 3.1.0
package, does with its command-line defaults, so that our numbers and its numbers agree to
floating-point rounding (``tests/test_l2m_crosscheck.py`` checks this against the real package). The
code is our own; only the semantics are taken from ``l2metrics``.

Input
-----
``rows`` as produced by :func:`lifelong.evaluate.l2logger.read_l2logger` or
:func:`lifelong.evaluate.l2logger.records_to_l2rows`: dicts with ``block_num``, ``exp_num``, ``block_type``
(``train``/``test``), ``task_name``, the performance column, and optionally ``block_subtype``
(default ``wake``) and ``exp_status`` (default ``complete``). As in ``l2metrics``, incomplete
experiences and rows whose performance is missing (None or NaN) are dropped, task names are
lower-cased, and rows are sorted stably by ``(exp_num, block_num)``. A *regime* is a maximal run of
rows with the same block number, block type, block subtype and task name. ``task_params`` is ignored.

Defaults matched (``python -m l2metrics`` with no options besides ``-p``)
-------------------------------------------------------------------------
variant mode ``aware`` (task names are used as they are); normalisation ``task``; smoothing
``flat`` with the automatic window; evaluation blocks not smoothed; no outlier clamping; STE
averaging ``metrics`` (a value per STE run, then their mean); aggregation ``mean``. Missing values:
rows whose ``exp_status`` is not ``complete`` and rows without a performance value are dropped
before anything else, and a metric that cannot be computed is NaN (``null`` in ``l2metrics``' JSON)
and is skipped by the means. ``l2metrics`` reports only ``mrlep`` maintenance and ratio transfer
unless asked (``-m both -t both``); we always report all four. Its ``-u/--unit`` option only changes
the x axis of plots.

Pre-processing
--------------
1. *Smoothing* (``smooth=True``). Each training regime (wake or sleep) of the lifetime and of each
   STE run is replaced by :func:`moving_average` with window ``min(int(0.2*n), 100)``; below 3
   there is no smoothing. The average uses reflected copies of the signal at both ends and the
   alignment of ``l2metrics`` (the SciPy-cookbook ``smooth`` with its output trimmed by
   ``floor(w/2 - 1)`` at the start), so the smoothed curve lags a centred average by about one
   experience. Any alignment is a convention; we keep the reference's, because it changes every
   number.
2. *Normalisation* (``normalize=True``). Per task, ``x' = (x - min)/(max - min)*100 + 1``, with
   min and max taken over all of the task's (smoothed) rows in the lifetime, training and
   evaluation, and over the training rows of its STE runs. A constant task maps to 1.

Per-regime quantities
---------------------
- *Terminal performance* ``P(r)``: values are first averaged per ``exp_num`` (only matters when an
  experience has several rows). A training regime takes the mean of ``v[int(0.9*n):]`` (the last
  10%, at least one value); an evaluation regime the mean of all values.
- *Saturation*: the maximum of :func:`moving_average` of the values and the index where it is first
  reached (experiences to saturation). This smooths a second time, on top of step 1, exactly as
  ``l2metrics`` does, and it smooths even when ``smooth=False``.
- *Recovery time* of a wake training regime of a task that was trained in wake before: the index of
  the first value ``>= P(previous wake training regime of the task)``; ``n + 1`` if never reached.

Metrics (per task, then the lifetime value is the mean over the tasks that have one)
------------------------------------------------------------------------------------
- ``perf_recovery``: ``-slope`` (Theil-Sen, :func:`theil_sen_slope`) of the task's recovery times
  in order; needs two or more recovery times (three or more wake learning blocks).
- ``perf_maintenance_mrlep``: for each training regime of the task, its reference is the task's
  first evaluation regime after it. Every other evaluation regime ``e`` of the task that comes after
  some reference gives ``P(e) - P(most recent reference before e)``; the task value is their mean.
  ``perf_maintenance_mrtlp`` uses ``P(most recent training regime of the task before e)`` instead.
- ``forward_transfer_ratio``/``_contrast``: for source ``i`` and target ``j``, each training regime
  of ``i`` before ``j``'s first training regime (any, if ``j`` is never trained) that lies strictly
  between two consecutive evaluation regimes ``e1 < e2`` of ``j`` gives ``P(e2)/P(e1)`` (skipped if
  ``P(e1) == 0``) and ``(P(e2) - P(e1))/(P(e2) + P(e1))`` (skipped if the sum is 0). Only the first
  value (smallest ``e2``) of each ordered pair counts; the lifetime value is the mean over pairs.
  ``backward_transfer_*`` is the same for training regimes of ``i`` after ``j``'s first training
  regime.
- ``avg_train_perf``/``avg_eval_perf``: the mean over the task's training/evaluation regimes of the
  regime mean.
- ``ste_rel_perf``: with ``L`` the concatenated wake training regimes of the task and ``S`` the
  concatenated training rows of one STE run, ``sum(L[:n]) / sum(S[:n])`` with ``n`` the shorter
  length; the task value is the mean over STE runs.
- ``sample_efficiency``: with saturation ``(s, e)`` of ``L`` and ``(s_ste, e_ste)`` of ``S``,
  ``(s/s_ste)*(e_ste/e)``, or 0 if ``s < 0.2*s_ste`` or the least-squares slope of ``L`` against
  ``exp_num`` is negative. A task whose ``e`` is 0 has no value, and an STE run whose ``e_ste`` is 0
  is skipped (``l2metrics``: "saturation not achieved"). The task value is the mean over STE runs.

Evaluation blocks after sleep: where we differ from ``l2metrics``
-----------------------------------------------------------------
When a lifetime holds sleep *evaluation* blocks, maintenance, transfer and the mean evaluation
performance use only those and drop the wake evaluation regimes (``l2metrics``' comment: "Use sleep
evaluation blocks if they exist"). ``l2metrics`` 3.1.0 tests ``"sleep" in block_subtype`` over *all*
regimes, so a lifetime with a sleep *learning* block and only wake evaluations loses every
evaluation regime, and its ``perf_maintenance_*``, ``*_transfer_*`` and ``avg_eval_perf`` all come
out null. We apply the test to evaluation regimes only, which is what the comment says. Case: blocks
``test(a,b), train a, test(a,b), train-sleep a, test(a,b), train b, test(a,b)``: ``l2metrics`` gives
no maintenance, transfer or evaluation performance; we give the values it gives for the same log with
the sleep block relabelled wake (the sleep label changes none of these metrics).

Transfer when several sources share an evaluation interval: where we differ from ``l2metrics``
-----------------------------------------------------------------------------------------------
``l2metrics`` keys each transfer value by the target's evaluation regime ``e2`` only. When learning
blocks of two source tasks lie between the same two evaluations of a target (possible only if the
schedule does not evaluate the target after every learning block), the value of the source that
comes later in task order silently overwrites the other. Per the definition both pairs are defined,
so we keep both. Case: ``test(a,b,c), train a, train b, test(a,b,c), train c, test(a,b,c)``:
``l2metrics`` has forward transfer for ``b -> c`` but not ``a -> c``; we have both. Logs made by
:func:`lifelong.evaluate.l2logger.records_to_l2rows` evaluate after every chunk, so neither difference
touches them unless they hold sleep learning blocks.

Replicated choices that are not bugs but worth knowing
------------------------------------------------------
- The lifetime value is a mean of per-task means, not a mean over all differences pooled across
  tasks (except transfer, which is a mean over pairs).
- Sleep learning regimes count as training regimes for maintenance, transfer and
  ``avg_train_perf``, but not for recovery, relative performance and sample efficiency (wake only).
- Transfer only asks that the source's learning block lie between two consecutive evaluations of
  the target. In a schedule that does not evaluate after every learning block, that interval may
  also hold other learning blocks, even the target's own (then backward transfer mixes in direct
  learning). That is the definition; ``l2metrics`` and we both apply it as stated.

Examples
--------
>>> rows = []
>>> def block(b, kind, task, values):
...     for v in values:
...         rows.append({"block_num": b, "exp_num": len(rows), "block_type": kind,
...                      "task_name": task, "performance": v})
>>> block(0, "test", "a_0", [0.1]); block(0, "test", "b_0", [0.2])
>>> block(1, "train", "a_0", [0.2, 0.4, 0.6, 0.8])
>>> block(2, "test", "a_0", [0.8]); block(2, "test", "b_0", [0.3])
>>> block(3, "train", "b_0", [0.3, 0.5, 0.7, 0.9])
>>> block(4, "test", "a_0", [0.6]); block(4, "test", "b_0", [0.9])
>>> m = l2m_metrics(rows)
>>> m["normalization_data_range"]["b_0"]
{'min': 0.2, 'max': 0.9}
>>> round(m["perf_maintenance_mrlep"], 6)  # a: P(last test) - P(test after learning a) = 72.43 - 101
-28.571429
>>> round(m["forward_transfer_ratio"], 6)  # a -> b: P(b after a) / P(b before a) = 15.29 / 1
15.285714
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from numbers import Real
from typing import Any

import numpy as np

from lifelong.errors import DataError

__all__ = [
    "LIFETIME_METRICS",
    "l2m_metrics",
    "moving_average",
    "normalize_task",
    "recovery_time",
    "saturation",
    "smoothing_window",
    "terminal_performance",
    "theil_sen_slope",
    "transfer_contrast",
    "transfer_ratio",
]

NAN = float("nan")

#: Lifetime metric names, as in the ``l2metrics`` JSON output.
LIFETIME_METRICS = (
    "perf_recovery",
    "avg_train_perf",
    "avg_eval_perf",
    "perf_maintenance_mrlep",
    "perf_maintenance_mrtlp",
    "forward_transfer_ratio",
    "backward_transfer_ratio",
    "forward_transfer_contrast",
    "backward_transfer_contrast",
    "ste_rel_perf",
    "sample_efficiency",
)
_TRANSFER = (
    "forward_transfer_ratio",
    "backward_transfer_ratio",
    "forward_transfer_contrast",
    "backward_transfer_contrast",
)
_TERMINAL_WINDOW = 0.1  # last 10% of a training regime
_SE_MIN_SATURATION = 0.2  # SE is 0 below 20% of the STE saturation


# --------------------------------------------------------------------------------------------
# building blocks


def smoothing_window(n: int) -> int:
    """Return the automatic smoothing window for a curve of ``n`` values.

    Parameters
    ----------
    n : int
        Number of values.

    Returns
    -------
    int
        ``min(int(0.2*n), 100)``. A window below 3 means no smoothing.

    Examples
    --------
    >>> [smoothing_window(n) for n in (10, 14, 15, 24, 25, 499, 500, 10_000)]
    [2, 2, 3, 4, 5, 99, 100, 100]
    """
    return min(int(n * 0.2), 100)


def moving_average(x: Sequence[float] | np.ndarray, window: int | None = None) -> np.ndarray:
    """Smooth a curve with a flat moving average over reflected ends (``l2metrics`` alignment).

    The signal is extended by mirror copies of its first and last ``window - 1`` values (without
    repeating the end points), averaged over ``window`` consecutive values, and trimmed back to
    ``len(x)`` values starting at offset ``floor(window/2 - 1)``. So ``y[i]`` is the mean of the
    extended values at positions ``i + floor(window/2 - 1) .. i + floor(window/2 - 1) + window - 1``,
    where position ``window - 1`` is ``x[0]``.

    Parameters
    ----------
    x : array_like of float
        The curve (1-D). NaN values are removed before averaging, as in ``l2metrics``.
    window : int, optional
        The window. ``None``, or a window longer than the curve, means :func:`smoothing_window`.

    Returns
    -------
    numpy.ndarray
        The smoothed curve, the same length as ``x``; ``x`` itself (as float) when the window is
        below 3.

    Examples
    --------
    >>> moving_average([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], window=3).round(4).tolist()
    [2.0, 1.6667, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    >>> moving_average([1.0, 5.0, 2.0]).tolist()  # window int(0.6) = 0: unchanged
    [1.0, 5.0, 2.0]
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise DataError(f"moving_average needs a 1-D curve, got shape {x.shape}")
    if window is None or x.size < window:
        window = smoothing_window(x.size)
    if window < 3:
        return x.copy()
    ext = np.concatenate([x[window - 1 : 0 : -1], x, x[-2 : -window - 1 : -1]])
    ext = ext[~np.isnan(ext)]
    avg = np.convolve(np.full(window, 1.0 / window), ext, mode="valid")
    start = int(np.floor(window / 2 - 1))
    stop = -int(np.ceil(window / 2))
    return avg[start:stop]


def normalize_task(x: Sequence[float] | np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map a task's values to ``[1, 101]``: ``(x - lo)/(hi - lo)*100 + 1``; all 1 when ``lo == hi``.

    Parameters
    ----------
    x : array_like of float
        Values of one task.
    lo, hi : float
        The task's data range (minimum and maximum).

    Returns
    -------
    numpy.ndarray
        The normalised values.

    Examples
    --------
    >>> normalize_task([-100, 0, 100], -100, 100).tolist()
    [1.0, 51.0, 101.0]
    >>> normalize_task([0.3, 0.3], 0.3, 0.3).tolist()
    [1.0, 1.0]
    """
    x = np.asarray(x, dtype=float)
    if lo == hi:
        return x * 0 + 1.0
    return (x - lo) / (hi - lo) * 100 + 1


def _per_experience(values: np.ndarray, exp: np.ndarray | None) -> np.ndarray:
    """Average values that share an ``exp_num`` (in ``exp_num`` order); unchanged if all differ."""
    if exp is None or len(exp) <= 1:
        return values
    uniq, inverse = np.unique(exp, return_inverse=True)
    if uniq.size == exp.size:
        return values
    sums = np.bincount(inverse, weights=values, minlength=uniq.size)
    counts = np.bincount(inverse, minlength=uniq.size)
    return sums / counts


def terminal_performance(
    values: Sequence[float] | np.ndarray, block_type: str, exp: Sequence[int] | np.ndarray | None = None
) -> float:
    """Terminal performance of one regime.

    Parameters
    ----------
    values : array_like of float
        The regime's (pre-processed) values, in experience order.
    block_type : {"train", "test"}
        A training regime takes the mean of its last 10% (``v[int(0.9*n):]``), an evaluation regime
        the mean of all its values.
    exp : array_like of int, optional
        The ``exp_num`` of each value. Values sharing one are averaged first.

    Returns
    -------
    float
        The terminal performance; NaN for an empty regime.

    Examples
    --------
    >>> terminal_performance(list(range(1, 21)), "train")  # mean of the last 2 of 20
    19.5
    >>> terminal_performance([1, 2, 3, 4, 5, 6, 7, 8, 9], "train")  # int(8.1) = 8: the last value
    9.0
    >>> terminal_performance([2.0, 4.0], "test")
    3.0
    """
    v = _per_experience(np.asarray(values, dtype=float), None if exp is None else np.asarray(exp))
    v = v[~np.isnan(v)]
    if v.size == 0:
        return NAN
    ratio = 1.0 if block_type == "test" else _TERMINAL_WINDOW
    return float(np.mean(v[int((1 - ratio) * v.size) :]))


def recovery_time(
    values: Sequence[float] | np.ndarray, previous: float, exp: Sequence[int] | np.ndarray | None = None
) -> int:
    """Experiences a relearning regime needs to reach ``previous`` again.

    Parameters
    ----------
    values : array_like of float
        The relearning regime's values.
    previous : float
        Terminal performance of the previous learning regime of the same task.
    exp : array_like of int, optional
        The ``exp_num`` of each value (values sharing one are averaged first).

    Returns
    -------
    int
        The index of the first value ``>= previous``, or ``len(values) + 1`` if none is.

    Examples
    --------
    >>> recovery_time([10, 20, 30, 40], 25)
    2
    >>> recovery_time([10, 20], 25)
    3
    """
    raw = np.asarray(values, dtype=float)
    v = _per_experience(raw, None if exp is None else np.asarray(exp))
    v = v[~np.isnan(v)]
    hits = np.flatnonzero(v >= previous)
    return int(hits[0]) if hits.size else int(raw.size + 1)


def saturation(
    values: Sequence[float] | np.ndarray, exp: Sequence[int] | np.ndarray | None = None
) -> tuple[float, int | float]:
    """Saturation value and experiences to saturation of a learning curve.

    Parameters
    ----------
    values : array_like of float
        The learning curve (already pre-processed; it is smoothed once more here).
    exp : array_like of int, optional
        The ``exp_num`` of each value (values sharing one are averaged first).

    Returns
    -------
    saturation : float
        The maximum of :func:`moving_average` of the curve (automatic window).
    exp_to_sat : int
        The first index where that maximum is reached. Both are NaN for an empty curve.

    Examples
    --------
    >>> saturation([1.0, 3.0, 2.0])
    (3.0, 1)
    """
    v = _per_experience(np.asarray(values, dtype=float), None if exp is None else np.asarray(exp))
    sm = moving_average(v)
    sm = sm[~np.isnan(sm)]
    if sm.size == 0:
        return NAN, NAN
    top = float(np.max(sm))
    return top, int(np.flatnonzero(sm == top)[0])


def theil_sen_slope(y: Sequence[float] | np.ndarray) -> float:
    """Theil-Sen slope of ``y`` against ``0, 1, 2, ...``: the median of all pairwise slopes.

    Equal to ``scipy.stats.theilslopes(y)[0]``.

    Parameters
    ----------
    y : array_like of float
        At least two values.

    Returns
    -------
    float
        The median of ``(y[j] - y[i]) / (j - i)`` over ``i < j``.

    Examples
    --------
    >>> theil_sen_slope([10, 6, 4])
    -3.0
    >>> theil_sen_slope([0, 1, 2, 3, 100])  # robust to the outlier
    1.0
    """
    y = np.asarray(y, dtype=float)
    if y.size < 2:
        raise DataError(f"a Theil-Sen slope needs at least two values, got {y.size}")
    i, j = np.triu_indices(y.size, k=1)
    return float(np.median((y[j] - y[i]) / (j - i)))


def transfer_ratio(before: float, after: float) -> float:
    """Transfer ratio ``after / before`` (NaN when ``before`` is 0).

    Examples
    --------
    >>> transfer_ratio(40.0, 50.0)
    1.25
    """
    return after / before if before != 0 else NAN


def transfer_contrast(before: float, after: float) -> float:
    """Transfer contrast ``(after - before) / (after + before)`` (NaN when the sum is 0).

    Examples
    --------
    >>> transfer_contrast(40.0, 60.0)
    0.2
    """
    return (after - before) / (after + before) if (before + after) != 0 else NAN


# --------------------------------------------------------------------------------------------
# rows -> regimes


@dataclass
class _Regime:
    num: int
    block_num: int
    block_type: str
    block_subtype: str
    task: str
    exp: np.ndarray
    values: np.ndarray  # pre-processed in place: smoothed, then normalised
    term: float = NAN
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_train(self) -> bool:
        return self.block_type == "train"

    @property
    def is_wake_train(self) -> bool:
        return self.block_type == "train" and self.block_subtype == "wake"


def _to_regimes(rows: Iterable[Mapping[str, Any]], perf_column: str, what: str) -> list[_Regime]:
    """Validate, filter, sort and split rows into regimes (see the module docstring)."""
    clean: list[tuple[int, int, str, str, str, float, str]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataError(f"{what}: row {i} is a {type(row).__name__}, not a dict")
        missing = [k for k in ("block_num", "exp_num", "block_type", "task_name", perf_column) if k not in row]
        if missing:
            raise DataError(f"{what}: row {i} lacks {missing}; rows need block_num, exp_num, block_type, "
                            f"task_name and the performance column {perf_column!r}")
        block, exp = row["block_num"], row["exp_num"]
        for key, v in (("block_num", block), ("exp_num", exp)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise DataError(f"{what}: row {i}: {key} must be a non-negative int, got {v!r}")
        btype, subtype = row["block_type"], row.get("block_subtype", "wake")
        status = row.get("exp_status", "complete")
        if btype not in ("train", "test"):
            raise DataError(f"{what}: row {i}: block_type must be 'train' or 'test', got {btype!r}")
        if subtype not in ("wake", "sleep"):
            raise DataError(f"{what}: row {i}: block_subtype must be 'wake' or 'sleep', got {subtype!r}")
        if status not in ("complete", "incomplete"):
            raise DataError(f"{what}: row {i}: exp_status must be 'complete' or 'incomplete', got {status!r}")
        perf = row[perf_column]
        if perf is None:
            perf = NAN
        if isinstance(perf, bool) or not isinstance(perf, Real):
            raise DataError(f"{what}: row {i}: {perf_column} must be a number, got {perf!r}")
        clean.append((int(exp), int(block), btype, subtype, str(row["task_name"]).lower(), float(perf), status))
    clean.sort(key=lambda r: (r[0], r[1]))
    for prev, cur in zip(clean, clean[1:]):
        if cur[1] < prev[1]:
            raise DataError(f"{what}: block_num decreases ({prev[1]} -> {cur[1]}) at exp_num {cur[0]}; "
                            "block_num must not decrease with exp_num")
    kept = [r for r in clean if r[6] == "complete" and not math.isnan(r[5])]

    regimes: list[_Regime] = []
    start = 0
    for k in range(1, len(kept) + 1):
        if k == len(kept) or kept[k][1:5] != kept[start][1:5]:
            exp_num, block, btype, subtype, task = kept[start][:5]
            part = kept[start:k]
            regimes.append(_Regime(
                num=len(regimes), block_num=block, block_type=btype, block_subtype=subtype, task=task,
                exp=np.array([r[0] for r in part], dtype=np.int64),
                values=np.array([r[5] for r in part], dtype=float),
            ))
            start = k
    return regimes


def _ste_runs(ste: Mapping[str, Any] | None, tasks: set[str], perf_column: str) -> dict[str, list[list[_Regime]]]:
    """Parse the ``ste`` argument into, per task of the lifetime, a list of runs of training regimes."""
    if ste is None:
        return {}
    if not isinstance(ste, Mapping):
        raise DataError("ste must map a task name to a list of STE runs (row lists or performance curves)")
    out: dict[str, list[list[_Regime]]] = {}
    for key, runs in ste.items():
        task = str(key).lower()
        if isinstance(runs, np.ndarray) or (
            isinstance(runs, Sequence) and not isinstance(runs, str) and runs
            and (all(isinstance(v, Real) and not isinstance(v, bool) for v in runs)
                 or all(isinstance(v, Mapping) for v in runs))
        ):
            runs = [runs]  # a single curve, or a single run's rows
        if isinstance(runs, (str, Mapping)) or not isinstance(runs, Sequence):
            raise DataError(f"ste[{key!r}] must be a list of STE runs, got {type(runs).__name__}")
        parsed = []
        for r, run in enumerate(runs):
            what = f"ste[{key!r}][{r}]"
            if isinstance(run, np.ndarray) or (
                isinstance(run, Sequence) and not isinstance(run, str) and all(not isinstance(v, Mapping) for v in run)
            ):
                curve = np.asarray(run, dtype=float)
                if curve.ndim != 1:
                    raise DataError(f"{what}: a performance curve must be 1-D, got shape {curve.shape}")
                curve = curve[~np.isnan(curve)]
                regs = [_Regime(0, 0, "train", "wake", task, np.arange(curve.size, dtype=np.int64), curve)]
            elif isinstance(run, Sequence) and not isinstance(run, str):
                regs = [g for g in _to_regimes(run, perf_column, what) if g.is_train]
                trained = sorted({g.task for g in regs})
                if trained != [task]:
                    raise DataError(f"{what}: an STE run must train exactly the task {task!r}, it trains {trained}")
            else:
                raise DataError(f"{what}: expected a list of rows or a performance curve, got {type(run).__name__}")
            parsed.append(regs)
        if task in tasks:
            out.setdefault(task, []).extend(parsed)
    return out


def _concat(regs: Sequence[_Regime]) -> tuple[np.ndarray, np.ndarray]:
    if not regs:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate([g.exp for g in regs]), np.concatenate([g.values for g in regs])


def _mean(values: Iterable[float]) -> float:
    """NaN-skipping mean that returns NaN (without a warning) when nothing is left."""
    arr = np.array([v for v in values if v is not None], dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(np.mean(arr)) if arr.size else NAN


# --------------------------------------------------------------------------------------------
# the suite


def l2m_metrics(
    rows: Iterable[Mapping[str, Any]],
    *,
    ste: Mapping[str, Any] | None = None,
    perf_column: str = "performance",
    normalize: bool = True,
    smooth: bool = True,
) -> dict[str, Any]:
    """Compute the L2M metric suite of one lifetime, as ``l2metrics`` 3.1.0 does by default.

    Parameters
    ----------
    rows : iterable of mapping
        The lifetime's experiences (see the module docstring), e.g. from
        :func:`lifelong.evaluate.l2logger.read_l2logger` or :func:`lifelong.evaluate.l2logger.records_to_l2rows`.
    ste : mapping, optional
        Single-task-expert data: task name -> list of runs. A run is either a list of rows (an
        l2logger log of a learner trained on that task alone, e.g. from ``read_l2logger``; its
        training rows are used, one regime per block, as ``l2metrics`` does with data stored by
        ``python -m l2metrics -s w``) or a 1-D performance curve (one training regime). A single
        curve or a single run's rows may be given without the enclosing list. STE data of tasks that
        are not in the lifetime is ignored. Without STE data for a task, its ``ste_rel_perf`` and
        ``sample_efficiency`` are NaN.
    perf_column : str, default "performance"
        The metric column to score (``l2metrics -p``).
    normalize : bool, default True
        Per-task normalisation to ``[1, 101]`` (``l2metrics -n task``; False is ``-n none``).
    smooth : bool, default True
        Smooth training regimes (``l2metrics -g flat``; False is ``-g none``).

    Returns
    -------
    dict
        - one entry per name in :data:`LIFETIME_METRICS`: the lifetime value (float, NaN when
          undefined);
        - ``"task_metrics"``: task name -> per-task values (each lifetime metric, plus
          ``recovery_times``, ``maintenance_val_mrlep``/``_mrtlp``, ``avg_train_perf_vals``,
          ``avg_eval_perf_vals``, ``ste_rel_perf_vals``, ``sample_efficiency_vals``,
          ``se_task_saturation``, ``se_task_exp_to_sat``, ``min``, ``max``, ``num_lx``,
          ``num_ex``); the transfer entries map the *target* task to its values in order, for the
          task as *source*, as in ``l2metrics``' JSON;
        - ``"regime_metrics"``: one dict per regime (``regime_num``, ``block_num``, ``block_type``,
          ``block_subtype``, ``task_name``, ``length``, ``term_perf``, ``saturation``,
          ``exp_to_sat``, ``avg_perf``, ``recovery_time``);
        - ``"normalization_data_range"``: task -> ``{"min", "max"}``, or None without
          normalisation;
        - ``"num_lx"``, ``"num_ex"``: numbers of learning and evaluation experiences used.

    Raises
    ------
    DataError
        If a row is malformed, no row has a performance value, or ``ste`` is malformed.
    """
    regimes = _to_regimes(rows, perf_column, "rows")
    if not regimes:
        raise DataError(f"the lifetime holds no complete experience with a {perf_column!r} value")
    # tasks in order of first training, then tasks that are only evaluated (l2metrics' order)
    tasks = list(dict.fromkeys(
        [g.task for g in sorted((g for g in regimes if g.is_train), key=lambda g: g.block_num)]
        + [g.task for g in sorted((g for g in regimes if not g.is_train), key=lambda g: g.block_num)]
    ))
    ste_runs = _ste_runs(ste, set(tasks), perf_column)

    if smooth:
        for g in regimes:
            if g.is_train:
                g.values = moving_average(g.values)
        for runs in ste_runs.values():
            for run in runs:
                for g in run:
                    g.values = moving_average(g.values)

    data_range: dict[str, dict[str, float]] | None = None
    if normalize:
        data_range = {}
        for task in tasks:
            vals = [g.values for g in regimes if g.task == task]
            vals += [g.values for run in ste_runs.get(task, []) for g in run]
            allv = np.concatenate(vals)
            data_range[task] = {"min": float(np.nanmin(allv)), "max": float(np.nanmax(allv))}
        for g in regimes:
            g.values = normalize_task(g.values, data_range[g.task]["min"], data_range[g.task]["max"])
        for task, runs in ste_runs.items():
            for run in runs:
                for g in run:
                    g.values = normalize_task(g.values, data_range[task]["min"], data_range[task]["max"])

    for g in regimes:
        g.term = terminal_performance(g.values, g.block_type, g.exp)
        g.extra["saturation"], g.extra["exp_to_sat"] = saturation(g.values, g.exp)
        g.extra["avg_perf"] = float(np.nanmean(g.values)) if g.values.size else NAN

    per_task: dict[str, dict[str, Any]] = {t: {} for t in tasks}
    _recovery(regimes, tasks, per_task)
    evals = _evaluation_regimes(regimes)
    _maintenance(evals, tasks, per_task)
    pairs = _transfer(evals, tasks, per_task)
    _average_performance(evals, tasks, per_task)
    _ste_metrics(regimes, tasks, ste_runs, per_task)

    out: dict[str, Any] = {}
    for name in LIFETIME_METRICS:
        if name in _TRANSFER:
            out[name] = _mean(values[0] for values in pairs[name].values())
        else:
            out[name] = _mean(per_task[t].get(name, NAN) for t in tasks)
    for task in tasks:
        mine = [g for g in regimes if g.task == task]
        vals = np.concatenate([g.values for g in mine])
        per_task[task]["min"] = float(np.nanmin(vals))
        per_task[task]["max"] = float(np.nanmax(vals))
        per_task[task]["num_lx"] = int(sum(g.values.size for g in mine if g.is_train))
        per_task[task]["num_ex"] = int(sum(g.values.size for g in mine if not g.is_train))
    out["task_metrics"] = per_task
    out["regime_metrics"] = [
        {
            "regime_num": g.num, "block_num": g.block_num, "block_type": g.block_type,
            "block_subtype": g.block_subtype, "task_name": g.task, "length": int(g.values.size),
            "term_perf": g.term, "saturation": g.extra["saturation"], "exp_to_sat": g.extra["exp_to_sat"],
            "avg_perf": g.extra["avg_perf"], "recovery_time": g.extra.get("recovery_time", NAN),
        }
        for g in regimes
    ]
    out["normalization_data_range"] = data_range
    out["num_lx"] = sum(per_task[t]["num_lx"] for t in tasks)
    out["num_ex"] = sum(per_task[t]["num_ex"] for t in tasks)
    return out


def _recovery(regimes: list[_Regime], tasks: list[str], per_task: dict[str, dict[str, Any]]) -> None:
    for task in tasks:
        wake = [g for g in regimes if g.task == task and g.is_wake_train]
        times = []
        for prev, cur in zip(wake, wake[1:]):
            t = recovery_time(cur.values, prev.term, cur.exp)
            cur.extra["recovery_time"] = t
            times.append(float(t))
        per_task[task]["recovery_times"] = times
        per_task[task]["perf_recovery"] = -theil_sen_slope(times) if len(times) > 1 else NAN


def _evaluation_regimes(regimes: list[_Regime]) -> list[_Regime]:
    """Regimes seen by maintenance, transfer and mean performance: with any sleep *evaluation*
    regime, the wake evaluation regimes are dropped (see "where we differ" in the module docstring)."""
    if any(g.block_type == "test" and g.block_subtype == "sleep" for g in regimes):
        return [g for g in regimes if not (g.block_type == "test" and g.block_subtype == "wake")]
    return regimes


def _maintenance(regimes: list[_Regime], tasks: list[str], per_task: dict[str, dict[str, Any]]) -> None:
    for task in tasks:
        train = [g for g in regimes if g.task == task and g.is_train]
        tests = [g for g in regimes if g.task == task and not g.is_train]
        refs: list[_Regime] = []
        for tr in train:
            after = next((e for e in tests if e.num > tr.num), None)
            if after is not None:
                refs.append(after)
        ref_nums = {e.num for e in refs}
        mrlep, mrtlp = [], []
        for e in tests:
            if e.num in ref_nums or not any(e.num > r.num for r in refs):
                continue
            last_ref = max((r for r in refs if r.num < e.num), key=lambda r: r.num)
            last_train = max((t for t in train if t.num < e.num), key=lambda t: t.num)
            mrlep.append(e.term - last_ref.term)
            mrtlp.append(e.term - last_train.term)
        per_task[task]["maintenance_val_mrlep"] = mrlep
        per_task[task]["maintenance_val_mrtlp"] = mrtlp
        per_task[task]["perf_maintenance_mrlep"] = float(np.mean(mrlep)) if mrlep else NAN
        per_task[task]["perf_maintenance_mrtlp"] = float(np.mean(mrtlp)) if mrtlp else NAN


def _transfer(
    regimes: list[_Regime], tasks: list[str], per_task: dict[str, dict[str, Any]]
) -> dict[str, dict[tuple[str, str], list[float]]]:
    """Transfer values per metric and ordered (source, target) pair, in order of the target's
    second evaluation regime. A source trained several times in one interval counts once."""
    pairs: dict[str, dict[tuple[str, str], dict[int, float]]] = {m: {} for m in _TRANSFER}
    present = [t for t in tasks if any(g.task == t for g in regimes)]
    for src, dst in permutations(present, 2):
        src_train = [g.num for g in regimes if g.task == src and g.is_train]
        dst_train = [g.num for g in regimes if g.task == dst and g.is_train]
        dst_tests = [g for g in regimes if g.task == dst and not g.is_train]
        first_dst = min(dst_train) if dst_train else None
        for direction in ("forward", "backward"):
            if direction == "forward":
                sources = [r for r in src_train if first_dst is None or r < first_dst]
            else:
                sources = [r for r in src_train if first_dst is not None and r > first_dst]
            for r in sources:
                for e1, e2 in zip(dst_tests, dst_tests[1:]):
                    if e1.num < r < e2.num:
                        if e1.term != 0:
                            pairs[f"{direction}_transfer_ratio"].setdefault((src, dst), {})[e2.num] = e2.term / e1.term
                        if e1.term + e2.term != 0:
                            pairs[f"{direction}_transfer_contrast"].setdefault((src, dst), {})[e2.num] = (
                                (e2.term - e1.term) / (e1.term + e2.term)
                            )
    ordered = {m: {k: [v[n] for n in sorted(v)] for k, v in d.items()} for m, d in pairs.items()}
    for m, d in ordered.items():
        for task in tasks:
            per_task[task][m] = {dst: vals for (src, dst), vals in d.items() if src == task}
    return ordered


def _average_performance(regimes: list[_Regime], tasks: list[str], per_task: dict[str, dict[str, Any]]) -> None:
    for task in tasks:
        train = [g.extra["avg_perf"] for g in regimes if g.task == task and g.is_train]
        test = [g.extra["avg_perf"] for g in regimes if g.task == task and not g.is_train]
        per_task[task]["avg_train_perf_vals"] = train
        per_task[task]["avg_eval_perf_vals"] = test
        per_task[task]["avg_train_perf"] = float(np.mean(train)) if train else NAN
        per_task[task]["avg_eval_perf"] = float(np.mean(test)) if test else NAN


def _ste_metrics(
    regimes: list[_Regime], tasks: list[str], ste_runs: dict[str, list[list[_Regime]]],
    per_task: dict[str, dict[str, Any]],
) -> None:
    for task in tasks:
        info = per_task[task]
        info.update(ste_rel_perf=NAN, ste_rel_perf_vals=[], sample_efficiency=NAN, sample_efficiency_vals=[],
                    se_task_saturation=NAN, se_task_exp_to_sat=NAN, ste_saturation_vals=[],
                    ste_exp_to_sat_vals=[], se_saturation_vals=[], se_exp_to_sat_vals=[])
        exp, values = _concat([g for g in regimes if g.task == task and g.is_wake_train])
        runs = ste_runs.get(task, [])
        if values.size == 0 or not runs:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = []
            for run in runs:
                _, ste_values = _concat(run)
                n = min(values.size, ste_values.size)
                rel.append(float(np.float64(np.nansum(values[:n])) / np.float64(np.nansum(ste_values[:n]))))
        info["ste_rel_perf_vals"] = rel
        info["ste_rel_perf"] = _mean(rel)

        slope = np.polyfit(exp.astype(float), values, 1)[0] if values.size > 1 else 0.0
        sat, to_sat = saturation(values, exp)
        if to_sat == 0:
            continue  # l2metrics: "saturation not achieved" (the maximum is the first value)
        info["se_task_saturation"], info["se_task_exp_to_sat"] = sat, to_sat
        for run in runs:
            ste_exp, ste_values = _concat(run)
            ste_sat, ste_to_sat = saturation(ste_values, ste_exp)
            if ste_to_sat == 0:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio_sat = float(np.float64(sat) / np.float64(ste_sat))
                ratio_exp = float(np.float64(ste_to_sat) / np.float64(to_sat))
            info["ste_saturation_vals"].append(ste_sat)
            info["ste_exp_to_sat_vals"].append(ste_to_sat)
            info["se_saturation_vals"].append(ratio_sat)
            info["se_exp_to_sat_vals"].append(ratio_exp)
            ok = not (sat < ste_sat * _SE_MIN_SATURATION or slope < 0)
            info["sample_efficiency_vals"].append(ratio_sat * ratio_exp if ok else 0.0)
        info["sample_efficiency"] = _mean(info["sample_efficiency_vals"])
