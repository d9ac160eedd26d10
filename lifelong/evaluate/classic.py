"""Classic continual-learning metrics: the accuracy-matrix family and online accuracies.

Everything here is a pure function. Run records (:class:`lifelong.log.Record`) or numpy arrays go
in, and floats come out. The definitions follow ``REFERENCE.md`` ("Classic metrics").

Indexing
--------
The reference writes the formulas 1-indexed, with ``R[T]`` the last row. The code is 0-indexed:
``R[i, j]`` is the accuracy on evaluation set ``j`` after training through chunk ``i``, for
``i = 0..T-1``. The last row is ``R[T-1]`` (``R[-1]``). Metrics that read the diagonal assume that
chunk ``i`` trains task ``i``, so they need a square matrix. On any other shape they return NaN.

Undefined values
----------------
A metric that is undefined for its input returns ``float('nan')`` and never raises. Examples are
BWT or FWT with a single chunk, and BWT on the single-row matrix of a Joint run. A missing
evaluation makes its matrix entry NaN, and the NaN propagates. The one exception is the running
maximum in :func:`forgetting`, which skips missing entries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lifelong.errors import DataError
from lifelong.log import Record

__all__ = [
    "SeedError",
    "accuracy_matrix",
    "acc",
    "aia",
    "bwt",
    "classic_metrics",
    "forgetting",
    "forgetting_first",
    "fwt",
    "intransigence",
    "learning_accuracy",
    "near_future_accuracy",
    "online_accuracy",
    "random_init_accuracy",
    "seeds",
    "stability_gap",
    "summarize",
]

NAN = float("nan")


class SeedError(DataError, ValueError):
    """The seed is ambiguous, or the log does not hold it.

    This is a :class:`ValueError` for callers that treat it as a bad argument. It is also a
    :class:`~lifelong.errors.DataError`, so the CLI prints its message without a traceback.
    """


# --------------------------------------------------------------------------------------------
# records -> arrays


def seeds(records: Iterable[Record]) -> list[int]:
    """List the seeds in a run log, in order of first appearance.

    Parameters
    ----------
    records : iterable of Record
        The run log.

    Returns
    -------
    list of int
        The distinct ``seed`` values, each listed once.

    Examples
    --------
    >>> seeds([Record("meta", seed=3), Record("train", seed=1), Record("eval", seed=3)])
    [3, 1]
    """
    out: dict[int, None] = {}
    for r in records:
        out.setdefault(r.seed, None)
    return list(out)


def _of_seed(records: Iterable[Record], seed: int | None) -> list[Record]:
    """Return the records of one seed. If ``seed`` is None, the log must hold exactly one seed."""
    records = list(records)
    present = seeds(records)
    if seed is None:
        if len(present) > 1:
            raise SeedError(
                f"the log holds several seeds {present}; pass seed=<one of them> "
                "(or compute per seed and combine with summarize())"
            )
        if not present:
            return []
        seed = present[0]
    elif present and seed not in present:
        raise SeedError(f"seed {seed} is not in the log; it holds seeds {present}")
    return [r for r in records if r.seed == seed]


def _n_eval(recs: Sequence[Record]) -> int:
    """Count the evaluation sets: ``meta.extra['n_eval']`` if given, else the largest task index + 1."""
    for r in recs:
        if r.kind == "meta" and "n_eval" in r.extra:
            n_eval = int(r.extra["n_eval"])
            bad = [r.task for r in recs if r.kind == "eval" and r.task is not None and r.task >= n_eval]
            if bad:
                raise DataError(
                    f"eval record for task {max(bad)} but the meta record says n_eval={n_eval}; "
                    "the log is inconsistent, so re-run or fix the meta record"
                )
            return n_eval
    tasks = [r.task for r in recs if r.kind == "eval" and r.task is not None]
    return max(tasks) + 1 if tasks else 0


def _located(r: Record) -> bool:
    """True for a record taken after some training (``chunk >= 0``) on a known evaluation set."""
    return r.chunk is not None and r.chunk >= 0 and r.task is not None


def _ratio(correct: np.ndarray, n: np.ndarray) -> np.ndarray:
    out = np.full(n.shape, np.nan)
    np.divide(correct, n, out=out, where=n > 0)
    return out


def accuracy_matrix(records: Iterable[Record], seed: int | None = None) -> np.ndarray:
    """Build the accuracy matrix ``R`` from the boundary evaluations of one seed.

    ``R[i, j] = sum(n_correct) / sum(n)`` over the ``eval`` records with ``boundary=True``,
    ``chunk=i`` and ``task=j``. Counts are summed across records that share ``(chunk, task)``.
    Percentages are never averaged.

    Parameters
    ----------
    records : iterable of Record
        The run log. It may hold several seeds.
    seed : int, optional
        The seed to read. If omitted, the log must hold a single seed.

    Returns
    -------
    numpy.ndarray
        Shape ``(T_trained, T_eval)``. There is one row per trained chunk, up to the largest chunk
        with a boundary evaluation. There is one column per evaluation set. The count of sets comes
        from the meta record's ``extra["n_eval"]``, else from the largest task index + 1. The
        matrix need not be square: a Joint run has shape ``(1, T_eval)``. Entries with no record
        are NaN.

    Raises
    ------
    SeedError
        If ``seed`` is None and the log holds several seeds, or if ``seed`` is not in the log.
        It is a ``ValueError``.

    Examples
    --------
    >>> recs = [Record("eval", chunk=0, task=0, n=10, n_correct=9, boundary=True),
    ...         Record("eval", chunk=0, task=1, n=10, n_correct=1, boundary=True),
    ...         Record("eval", chunk=1, task=0, n=10, n_correct=5, boundary=True),
    ...         Record("eval", chunk=1, task=1, n=10, n_correct=8, boundary=True)]
    >>> accuracy_matrix(recs).tolist()
    [[0.9, 0.1], [0.5, 0.8]]
    """
    recs = _of_seed(records, seed)
    n_eval = _n_eval(recs)
    rows = [r for r in recs if r.kind == "eval" and r.boundary is True and _located(r)]
    n_rows = max((r.chunk for r in rows), default=-1) + 1
    n = np.zeros((n_rows, n_eval))
    correct = np.zeros((n_rows, n_eval))
    for r in rows:
        n[r.chunk, r.task] += r.n or 0
        correct[r.chunk, r.task] += r.n_correct or 0
    return _ratio(correct, n)


def random_init_accuracy(records: Iterable[Record], seed: int | None = None) -> np.ndarray:
    """Return ``b[j]``, the accuracy of the randomly initialised network on each evaluation set.

    The values come from the ``eval`` records with ``chunk == -1``. Counts are summed per task.

    Parameters
    ----------
    records : iterable of Record
        The run log.
    seed : int, optional
        The seed to read. If omitted, the log must hold a single seed.

    Returns
    -------
    numpy.ndarray
        Shape ``(T_eval,)``. An entry is NaN where that task has no ``chunk == -1`` record, so the
        array is all NaN if the run skipped the initial evaluation.

    Examples
    --------
    >>> recs = [Record("eval", chunk=-1, task=0, n=10, n_correct=1, boundary=True),
    ...         Record("eval", chunk=0, task=1, n=10, n_correct=9, boundary=True)]
    >>> random_init_accuracy(recs).tolist()
    [0.1, nan]
    """
    recs = _of_seed(records, seed)
    n_eval = _n_eval(recs)
    n = np.zeros(n_eval)
    correct = np.zeros(n_eval)
    for r in recs:
        if r.kind == "eval" and r.chunk == -1 and r.task is not None:
            n[r.task] += r.n or 0
            correct[r.task] += r.n_correct or 0
    return _ratio(correct, n)


# --------------------------------------------------------------------------------------------
# matrix -> float


def _matrix(R: Any) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2:
        raise ValueError(f"expected a 2-D accuracy matrix, got shape {R.shape}")
    return R


def _square(R: np.ndarray) -> bool:
    return R.shape[0] == R.shape[1] and R.shape[0] > 0


def acc(R: Any) -> float:
    """Return the final average accuracy (ACC): the mean of the last row.

    ``ACC = (1/T_eval) * sum_j R[-1, j]``, over every evaluation set. This is REFERENCE's
    ``(1/T) Σ_j R[T][j]``. It is defined for any shape, including the ``(1, T_eval)`` matrix of a
    Joint run.

    Parameters
    ----------
    R : array_like, shape (T_trained, T_eval)
        The accuracy matrix.

    Returns
    -------
    float
        NaN if ``R`` has no rows.

    Examples
    --------
    >>> acc([[0.9, 0.1], [0.5, 0.8]])
    0.65
    """
    R = _matrix(R)
    if R.shape[0] == 0 or R.shape[1] == 0:
        return NAN
    return float(np.mean(R[-1]))


def aia(R: Any) -> float:
    """Return the average incremental accuracy (AIA).

    ``AIA = (1/T) * sum_{i=0}^{T-1} (1/(i+1)) * sum_{j=0}^{i} R[i, j]``. Each row averages the tasks
    seen so far, and AIA averages those row means over the rows. This is REFERENCE's 1-indexed
    ``(1/T) Σ_i (1/i) Σ_{j≤i} R[i][j]``.

    Parameters
    ----------
    R : array_like, shape (T, T)
        A square accuracy matrix.

    Returns
    -------
    float
        NaN if ``R`` is not square.

    Examples
    --------
    >>> round(aia([[0.9, 0.1], [0.5, 0.8]]), 6)  # (0.9 + (0.5 + 0.8)/2) / 2
    0.775
    """
    R = _matrix(R)
    if not _square(R):
        return NAN
    T = R.shape[0]
    return float(np.mean([np.mean(R[i, : i + 1]) for i in range(T)]))


def bwt(R: Any) -> float:
    """Return the backward transfer (BWT) of GEM (Lopez-Paz & Ranzato 2017).

    ``BWT = (1/(T-1)) * sum_{j=0}^{T-2} (R[T-1, j] - R[j, j])``. This is the final accuracy on each
    earlier task minus the accuracy just after that task was learned. A negative value means
    forgetting.

    Parameters
    ----------
    R : array_like, shape (T, T)
        A square accuracy matrix.

    Returns
    -------
    float
        NaN if ``T < 2`` or ``R`` is not square.

    Examples
    --------
    >>> round(bwt([[0.9, 0.1], [0.5, 0.8]]), 6)  # 0.5 - 0.9
    -0.4
    """
    R = _matrix(R)
    if not _square(R) or R.shape[0] < 2:
        return NAN
    T = R.shape[0]
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


def fwt(R: Any, b: Any) -> float:
    """Return the forward transfer (FWT) of GEM (Lopez-Paz & Ranzato 2017).

    ``FWT = (1/(T-1)) * sum_{j=1}^{T-1} (R[j-1, j] - b[j])``. This is the accuracy on task ``j``
    just before training on it, minus the accuracy of the randomly initialised network. REFERENCE
    writes the sum 1-indexed, over ``j ≥ 2``. Task 0 is not counted.

    Parameters
    ----------
    R : array_like, shape (T, T)
        A square accuracy matrix.
    b : array_like, shape (T,), or None
        Accuracies at random initialisation (:func:`random_init_accuracy`).

    Returns
    -------
    float
        NaN if ``T < 2``, ``R`` is not square, or ``b`` is None, too short, or NaN where it is used.

    Examples
    --------
    >>> round(fwt([[0.9, 0.3], [0.5, 0.8]], [0.1, 0.1]), 6)  # 0.3 - 0.1
    0.2
    """
    R = _matrix(R)
    if b is None or not _square(R) or R.shape[0] < 2:
        return NAN
    b = np.asarray(b, dtype=float).reshape(-1)
    T = R.shape[0]
    if b.shape[0] < T:
        return NAN
    return float(np.mean([R[j - 1, j] - b[j] for j in range(1, T)]))


def forgetting(R: Any) -> float:
    """Return the average forgetting of Chaudhry et al. 2018 (RWalk): best so far minus last.

    ``f_j = max_{l=0}^{T-2} R[l, j] - R[T-1, j]``, averaged over ``j = 0..T-2``. This is REFERENCE's
    ``max_{l<T} R[l][j] − R[T][j]`` over ``j<T``. It is the metric we report as "forgetting". The
    maximum runs over every earlier row, as in the paper, and skips NaN entries. Those come, for
    example, from tasks that were not evaluated before they were learned. See
    :func:`forgetting_first` for Avalanche's first-minus-last variant.

    Parameters
    ----------
    R : array_like, shape (T, T)
        A square accuracy matrix.

    Returns
    -------
    float
        NaN if ``T < 2`` or ``R`` is not square.

    Examples
    --------
    >>> R = [[0.6, 0.1, 0.1], [0.8, 0.7, 0.2], [0.5, 0.6, 0.9]]
    >>> round(forgetting(R), 6)  # ((0.8 - 0.5) + (0.7 - 0.6)) / 2
    0.2
    """
    R = _matrix(R)
    if not _square(R) or R.shape[0] < 2:
        return NAN
    T = R.shape[0]
    f = []
    for j in range(T - 1):
        past = R[: T - 1, j]
        best = np.max(past[~np.isnan(past)]) if not np.all(np.isnan(past)) else NAN
        f.append(best - R[T - 1, j])
    return float(np.mean(f))


def forgetting_first(R: Any) -> float:
    """Return the forgetting as Avalanche reports it: first minus last.

    ``f_j = R[j, j] - R[T-1, j]``, averaged over ``j = 0..T-2``. The "first" accuracy is the one
    right after task ``j`` was learned. This variant equals ``-bwt(R)``. It is given for comparison
    with Avalanche. Our headline forgetting is :func:`forgetting` (max so far). The two differ when
    an old task's accuracy rises after the task was learned.

    Parameters
    ----------
    R : array_like, shape (T, T)
        A square accuracy matrix.

    Returns
    -------
    float
        NaN if ``T < 2`` or ``R`` is not square.

    Examples
    --------
    >>> R = [[0.6, 0.1, 0.1], [0.8, 0.7, 0.2], [0.5, 0.6, 0.9]]
    >>> round(forgetting_first(R), 6)  # ((0.6 - 0.5) + (0.7 - 0.6)) / 2
    0.1
    """
    R = _matrix(R)
    if not _square(R) or R.shape[0] < 2:
        return NAN
    T = R.shape[0]
    return float(np.mean([R[j, j] - R[T - 1, j] for j in range(T - 1)]))


def intransigence(R: Any, R_ref: Any) -> float:
    """Return the intransigence of Chaudhry et al. 2018: how far the learner falls short of a reference.

    ``I = (1/T) * sum_{k=0}^{T-1} (a*_k - R[k, k])``. Here ``a*_k`` is the accuracy on task ``k`` of
    a reference trained jointly on chunks ``0..k``:

    * a multi-row reference, such as a Cumulative run, gives ``a*_k = R_ref[k, k]``, the exact
      definition;
    * a single-row reference, such as a Joint run trained once on all chunks, gives
      ``a*_k = R_ref[-1, k]``. This is an approximation. That model has also seen chunks ``k+1..``,
      so ``a*_k`` may be lower (interference) or higher (transfer) than the true value.

    Parameters
    ----------
    R : array_like, shape (T, T)
        The learner's square accuracy matrix.
    R_ref : array_like, shape (T_ref, T_ref) or (1, T_eval)
        The reference's accuracy matrix.

    Returns
    -------
    float
        NaN if ``R`` is not square, or if ``R_ref`` does not cover the ``T`` tasks.

    Examples
    --------
    >>> round(intransigence([[0.9, 0.1], [0.5, 0.8]], [[0.95, 0.9]]), 6)  # ((.95-.9) + (.9-.8)) / 2
    0.075
    """
    R = _matrix(R)
    ref = _matrix(R_ref)
    if not _square(R):
        return NAN
    T = R.shape[0]
    if ref.shape[0] == 1:
        if ref.shape[1] < T:
            return NAN
        a_star = ref[-1, :T]
    else:
        if ref.shape[0] < T or ref.shape[1] < T:
            return NAN
        a_star = np.diag(ref)[:T]
    return float(np.mean(a_star - np.diag(R)))


def learning_accuracy(R: Any) -> float:
    """Return the learning accuracy (LA): the mean of the diagonal.

    ``LA = (1/T) * sum_j R[j, j]``. This is the accuracy on each task just after it was learned,
    which measures plasticity.

    Parameters
    ----------
    R : array_like, shape (T, T)
        A square accuracy matrix.

    Returns
    -------
    float
        NaN if ``R`` is not square.

    Examples
    --------
    >>> round(learning_accuracy([[0.9, 0.1], [0.5, 0.8]]), 6)
    0.85
    """
    R = _matrix(R)
    if not _square(R):
        return NAN
    return float(np.mean(np.diag(R)))


def late_learning_accuracy(R: Any, fraction: float = 0.1) -> float:
    """Return the learning accuracy of the last tasks: the mean of the last ``k`` diagonal entries,
    ``k = max(1, ceil(fraction · T))``.

    On a long stream of equally hard tasks (``label_permuted``), this against the same mean over
    the first tasks is the loss of plasticity of Dohare et al. (Nature 2024): the accuracy on each
    new task falls as the stream goes on.

    Parameters
    ----------
    R : array_like, shape (T, T)
        A square accuracy matrix.
    fraction : float
        The share of the tasks, counted from the end, that is averaged.

    Returns
    -------
    float
        NaN if ``R`` is not square.

    Examples
    --------
    >>> R = np.diag([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.2])
    >>> round(late_learning_accuracy(R), 6), round(late_learning_accuracy(R, 0.3), 6)  # k = 2, then 4
    (0.1, 0.125)
    """
    R = _matrix(R)
    if not _square(R) or not 0 < fraction <= 1:
        return NAN
    k = max(1, math.ceil(fraction * R.shape[0]))
    return float(np.mean(np.diag(R)[-k:]))


# --------------------------------------------------------------------------------------------
# records -> float


def classic_metrics(
    records: Iterable[Record], seed: int | None = None, reference: Any = None
) -> dict[str, float]:
    """Compute every accuracy-matrix metric for one seed.

    Parameters
    ----------
    records : iterable of Record
        The run log.
    seed : int, optional
        The seed to read. If omitted, the log must hold a single seed.
    reference : array_like, optional
        A reference accuracy matrix for :func:`intransigence`, from a Cumulative or Joint run on
        the same stream and seed.

    Returns
    -------
    dict
        Holds ``acc``, ``aia``, ``bwt``, ``fwt``, ``forgetting`` (max so far),
        ``learning_accuracy``, and ``n_chunks`` (an int: the rows of ``R``). It also holds
        ``intransigence`` when ``reference`` is given. FWT uses :func:`random_init_accuracy`.

    Examples
    --------
    >>> recs = [Record("eval", chunk=c, task=t, n=10, n_correct=k, boundary=True)
    ...         for c, t, k in [(-1, 0, 1), (-1, 1, 1), (0, 0, 9), (0, 1, 3), (1, 0, 5), (1, 1, 8)]]
    >>> m = classic_metrics(recs)
    >>> m["n_chunks"], round(m["acc"], 6), round(m["bwt"], 6), round(m["fwt"], 6)
    (2, 0.65, -0.4, 0.2)
    """
    recs = _of_seed(records, seed)
    R = accuracy_matrix(recs)
    out: dict[str, float] = {
        "acc": acc(R),
        "aia": aia(R),
        "bwt": bwt(R),
        "fwt": fwt(R, random_init_accuracy(recs)),
        "forgetting": forgetting(R),
        "learning_accuracy": learning_accuracy(R),
    }
    if reference is not None:
        out["intransigence"] = intransigence(R, reference)
    # prequential accuracy on each incoming batch, and its near-future variant where logged
    out["online_accuracy"] = online_accuracy(recs)
    near = near_future_accuracy(recs)
    if not math.isnan(near):
        out["near_future_accuracy"] = near
    out["n_chunks"] = int(R.shape[0])
    return out


def online_accuracy(records: Iterable[Record], seed: int | None = None) -> float:
    """Return the online (prequential) accuracy: ``sum n_correct / sum n`` over the ``train`` records.

    Each ``train`` record scores the incoming batch before the update, so this is test-then-train
    accuracy. A blind learner that copies recent labels can score high on it when labels are
    temporally correlated. See :func:`near_future_accuracy`.

    Parameters
    ----------
    records : iterable of Record
        The run log.
    seed : int, optional
        The seed to read. If omitted, the log must hold a single seed.

    Returns
    -------
    float
        NaN if there are no training samples.

    Examples
    --------
    >>> online_accuracy([Record("train", n=10, n_correct=3), Record("train", n=30, n_correct=27)])
    0.75
    """
    n = correct = 0
    for r in _of_seed(records, seed):
        if r.kind == "train":
            n += r.n or 0
            correct += r.n_correct or 0
    return correct / n if n else NAN


def near_future_accuracy(records: Iterable[Record], seed: int | None = None) -> float:
    """Return the near-future online accuracy: ``sum nf_correct / sum nf_n`` over the ``train`` records.

    This follows "Rapid Adaptation in Online Continual Learning: Are We Evaluating It Right?". The
    model that has just seen a batch is scored on samples a little ahead in the stream, not on the
    batch itself. A learner that only copies recent labels then gets no credit. The training loop
    does the scoring and stores the counts in each ``train`` record's ``extra["nf_n"]`` and
    ``extra["nf_correct"]``. This function only sums them.

    Parameters
    ----------
    records : iterable of Record
        The run log.
    seed : int, optional
        The seed to read. If omitted, the log must hold a single seed.

    Returns
    -------
    float
        NaN if no ``train`` record carries the near-future counts, or if they sum to zero samples.

    Examples
    --------
    >>> near_future_accuracy([Record("train", n=10, n_correct=9, extra={"nf_n": 10, "nf_correct": 4}),
    ...                       Record("train", n=10, n_correct=9, extra={"nf_n": 10, "nf_correct": 6})])
    0.5
    >>> near_future_accuracy([Record("train", n=10, n_correct=9)])
    nan
    """
    n = correct = 0
    for r in _of_seed(records, seed):
        if r.kind == "train" and "nf_n" in r.extra:
            n += r.extra["nf_n"] or 0
            correct += r.extra.get("nf_correct") or 0
    return correct / n if n else NAN


def stability_gap(
    records: Iterable[Record], seed: int | None = None
) -> tuple[float, dict[tuple[int, int], float]]:
    """Measure the stability gap of De Lange et al. 2023.

    The paper is "Continual evaluation for lifelong learning: identifying the stability gap"
    (ICLR 2023). When training on a new chunk begins, the accuracy on old tasks often drops sharply
    and then partly recovers. An evaluation only at chunk ends misses that drop.

    For each chunk ``i ≥ 1`` and each old task ``j < i``:

    ``gap[i, j] = R[i-1, j] - min_{e in chunk i} acc_e(j)``

    ``R[i-1, j]`` is the accuracy on task ``j`` at the end of the previous chunk, the last value
    before chunk ``i`` began. The minimum runs over every evaluation of task ``j`` during chunk
    ``i``. Those are the periodic ``eval`` records with ``boundary=False`` and ``chunk=i`` (records
    at the same step are summed), plus the boundary evaluation that closes chunk ``i``
    (``R[i, j]``). A pair ``(i, j)`` counts only where chunk ``i`` holds at least one periodic
    evaluation of task ``j``: without them (``train.eval_every = 0``, or a chunk shorter than
    ``eval_every`` batches) the drop right after the boundary is not observed, and the one-chunk
    drop ``R[i-1, j] - R[i, j]`` would only repeat what forgetting and BWT already measure. The gap
    is signed. It is negative only if every evaluation during chunk ``i`` beat ``R[i-1, j]``.

    Parameters
    ----------
    records : iterable of Record
        The run log.
    seed : int, optional
        The seed to read. If omitted, the log must hold a single seed.

    Returns
    -------
    mean_gap : float
        The mean of ``gap[i, j]`` over the pairs where it is defined. NaN if there are none: a
        single chunk, no periodic evaluations, or missing boundary evaluations.
    gaps : dict of (int, int) to float
        ``gap[i, j]`` keyed by ``(chunk i, task j)``. NaN where ``R[i-1, j]`` is missing.

    Examples
    --------
    >>> recs = [Record("eval", chunk=0, task=0, step=10, n=10, n_correct=9, boundary=True),
    ...         Record("eval", chunk=1, task=0, step=12, n=10, n_correct=4, boundary=False),
    ...         Record("eval", chunk=1, task=0, step=20, n=10, n_correct=7, boundary=True),
    ...         Record("eval", chunk=1, task=1, step=20, n=10, n_correct=8, boundary=True)]
    >>> mean_gap, gaps = stability_gap(recs)
    >>> round(mean_gap, 6), {k: round(v, 6) for k, v in gaps.items()}  # 0.9 - min(0.4, 0.7)
    (0.5, {(1, 0): 0.5})
    """
    recs = _of_seed(records, seed)
    R = accuracy_matrix(recs)
    T, n_eval = R.shape
    # (chunk, task) -> {step: [n, n_correct]}
    inner: dict[tuple[int, int], dict[Any, list[int]]] = {}
    for r in recs:
        if r.kind == "eval" and r.boundary is not True and _located(r):
            by_step = inner.setdefault((r.chunk, r.task), {})
            nc = by_step.setdefault(r.step, [0, 0])
            nc[0] += r.n or 0
            nc[1] += r.n_correct or 0
    gaps: dict[tuple[int, int], float] = {}
    for i in range(1, T):
        for j in range(min(i, n_eval)):
            during = [c / n for n, c in inner.get((i, j), {}).values() if n > 0]
            if not during:  # no periodic evaluation of task j in chunk i: the gap is not observed
                continue
            if not math.isnan(R[i, j]):
                during.append(float(R[i, j]))
            gaps[(i, j)] = float(R[i - 1, j] - min(during))
    defined = [g for g in gaps.values() if not math.isnan(g)]
    return (float(np.mean(defined)) if defined else NAN), gaps


# --------------------------------------------------------------------------------------------
# across seeds


def summarize(per_seed: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """Combine per-seed metrics into a mean and a sample standard deviation, ignoring NaNs.

    Parameters
    ----------
    per_seed : sequence of dict
        One metrics dict per seed, as returned by :func:`classic_metrics`. A key missing from a
        seed's dict counts as NaN for that seed.

    Returns
    -------
    dict of str to (float, float)
        ``(mean, std)`` per key, with keys in order of first appearance. The std uses ``ddof=1``
        over the non-NaN values. It is ``0.0`` when only one value is non-NaN. Both are NaN when
        every value is NaN.

    Examples
    --------
    >>> s = summarize([{"acc": 0.5, "bwt": float("nan")}, {"acc": 0.7, "bwt": -0.1}])
    >>> [(k, round(m, 4), round(sd, 4)) for k, (m, sd) in s.items()]
    [('acc', 0.6, 0.1414), ('bwt', -0.1, 0.0)]
    """
    keys: dict[str, None] = {}
    for d in per_seed:
        for k in d:
            keys.setdefault(k, None)
    out: dict[str, tuple[float, float]] = {}
    for k in keys:
        vals = np.array([float(d.get(k, NAN)) for d in per_seed], dtype=float)
        vals = vals[~np.isnan(vals)]
        if vals.size == 0:
            out[k] = (NAN, NAN)
        elif vals.size == 1:
            out[k] = (float(vals[0]), 0.0)
        else:
            out[k] = (float(np.mean(vals)), float(np.std(vals, ddof=1)))
    return out
