"""Oracle tests for lifelong.evaluate.classic against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifelong.errors import DataError
from lifelong.log import Record, read_log, write_log
from lifelong.evaluate import (
    SeedError,
    acc,
    accuracy_matrix,
    aia,
    bwt,
    classic_metrics,
    forgetting,
    forgetting_first,
    fwt,
    intransigence,
    learning_accuracy,
    near_future_accuracy,
    online_accuracy,
    random_init_accuracy,
    seeds,
    stability_gap,
    summarize,
)

# The oracle matrix (0-indexed: row i = after chunk i, column j = task j).
R3 = np.array(
    [
        [0.9, 0.1, 0.1],
        [0.5, 0.8, 0.2],
        [0.4, 0.6, 0.7],
    ]
)
B3 = np.array([0.1, 0.1, 0.1])


def _eval(chunk, task, n_correct, n=10, seed=0, boundary=True, step=None):
    return Record(
        "eval", seed=seed, chunk=chunk, task=task, step=step, n=n, n_correct=n_correct, boundary=boundary
    )


def _records_for(R, b=None, seed=0, n=10):
    """Write matrix R (and b) as boundary eval records with n samples each."""
    recs = [Record("meta", seed=seed, extra={"n_eval": R.shape[1]})]
    if b is not None:
        recs += [_eval(-1, j, round(b[j] * n), n=n, seed=seed) for j in range(len(b))]
    for i in range(R.shape[0]):
        recs += [_eval(i, j, round(R[i, j] * n), n=n, seed=seed) for j in range(R.shape[1])]
        recs.append(Record("chunk_end", seed=seed, chunk=i))
    return recs


# ---------------------------------------------------------------- matrix metrics, by hand


def test_acc_hand():
    # last row: (0.4 + 0.6 + 0.7) / 3 = 1.7 / 3
    assert acc(R3) == pytest.approx(1.7 / 3)


def test_aia_hand():
    # row 0: 0.9 / 1                 = 0.9
    # row 1: (0.5 + 0.8) / 2         = 0.65
    # row 2: (0.4 + 0.6 + 0.7) / 3   = 0.566666...
    # AIA = (0.9 + 0.65 + 0.566666...) / 3 = 2.116666... / 3 = 0.705555...
    assert aia(R3) == pytest.approx((0.9 + 0.65 + 1.7 / 3) / 3)
    assert aia(R3) == pytest.approx(0.7055555555)


def test_bwt_hand():
    # j=0: R[2][0] - R[0][0] = 0.4 - 0.9 = -0.5
    # j=1: R[2][1] - R[1][1] = 0.6 - 0.8 = -0.2
    # BWT = (-0.5 - 0.2) / 2 = -0.35
    assert bwt(R3) == pytest.approx(-0.35)


def test_fwt_hand():
    # j=1: R[0][1] - b[1] = 0.1 - 0.1 = 0.0
    # j=2: R[1][2] - b[2] = 0.2 - 0.1 = 0.1
    # FWT = (0.0 + 0.1) / 2 = 0.05
    assert fwt(R3, B3) == pytest.approx(0.05)


def test_forgetting_hand():
    # j=0: max(R[0][0], R[1][0]) - R[2][0] = max(0.9, 0.5) - 0.4 = 0.5
    # j=1: max(R[0][1], R[1][1]) - R[2][1] = max(0.1, 0.8) - 0.6 = 0.2
    # F = (0.5 + 0.2) / 2 = 0.35
    assert forgetting(R3) == pytest.approx(0.35)
    # first-minus-last: (0.9 - 0.4 + 0.8 - 0.6) / 2 = 0.35 (same here: the diagonal is the max)
    assert forgetting_first(R3) == pytest.approx(0.35)


def test_learning_accuracy_hand():
    # (0.9 + 0.8 + 0.7) / 3 = 0.8
    assert learning_accuracy(R3) == pytest.approx(0.8)


def test_intransigence_hand():
    # Cumulative reference, a*_k = R_ref[k][k] = 0.95, 0.9, 0.85
    # I = ((0.95 - 0.9) + (0.9 - 0.8) + (0.85 - 0.7)) / 3 = (0.05 + 0.1 + 0.15) / 3 = 0.1
    R_ref = np.array([[0.95, 0.0, 0.0], [0.9, 0.9, 0.0], [0.9, 0.85, 0.85]])
    assert intransigence(R3, R_ref) == pytest.approx(0.1)
    # Joint reference (single row), a*_k = R_ref[-1][k] = 0.9, 0.85, 0.8
    # I = ((0.9 - 0.9) + (0.85 - 0.8) + (0.8 - 0.7)) / 3 = (0 + 0.05 + 0.1) / 3 = 0.05
    assert intransigence(R3, [[0.9, 0.85, 0.8]]) == pytest.approx(0.05)
    # a reference covering too few tasks
    assert math.isnan(intransigence(R3, [[0.9, 0.85]]))
    assert math.isnan(intransigence(R3, [[0.9, 0.0], [0.9, 0.9]]))


def test_forgetting_max_so_far_differs_from_first_minus_last():
    # Task 0 improves after it was learned (0.6 -> 0.8), then drops to 0.5.
    R = np.array([[0.6, 0.1, 0.1], [0.8, 0.7, 0.2], [0.5, 0.6, 0.9]])
    # max-so-far: j=0: max(0.6, 0.8) - 0.5 = 0.3; j=1: max(0.1, 0.7) - 0.6 = 0.1 -> 0.2
    assert forgetting(R) == pytest.approx(0.2)
    # first-minus-last: j=0: 0.6 - 0.5 = 0.1; j=1: 0.7 - 0.6 = 0.1 -> 0.1
    assert forgetting_first(R) == pytest.approx(0.1)
    assert forgetting_first(R) == pytest.approx(-bwt(R))


def test_forgetting_skips_unevaluated_entries():
    # class-IL logs that only evaluate seen tasks leave the upper triangle NaN
    R = np.array([[0.9, np.nan, np.nan], [0.5, 0.8, np.nan], [0.4, 0.6, 0.7]])
    assert forgetting(R) == pytest.approx(0.35)
    assert math.isnan(fwt(R, B3))  # needs R[j-1][j], which was never measured


# ---------------------------------------------------------------- NaN behaviour


def test_single_chunk_is_nan_not_error():
    R = np.array([[0.7]])
    assert acc(R) == pytest.approx(0.7)
    assert aia(R) == pytest.approx(0.7)
    assert learning_accuracy(R) == pytest.approx(0.7)
    for v in (bwt(R), fwt(R, [0.1]), forgetting(R), forgetting_first(R)):
        assert math.isnan(v)


def test_non_square_joint_matrix():
    # Joint: one training chunk evaluated on three sets -> shape (1, 3)
    recs = [Record("meta", extra={"n_eval": 3})] + [_eval(0, j, k) for j, k in enumerate([9, 8, 7])]
    R = accuracy_matrix(recs)
    assert R.shape == (1, 3)
    assert acc(R) == pytest.approx(0.8)  # (0.9 + 0.8 + 0.7) / 3
    for f in (aia, bwt, forgetting, forgetting_first, learning_accuracy):
        assert math.isnan(f(R))
    assert math.isnan(fwt(R, B3))
    assert math.isnan(intransigence(R, R3))
    m = classic_metrics(recs, 0)
    assert m["n_chunks"] == 1
    assert m["acc"] == pytest.approx(0.8)
    assert math.isnan(m["bwt"]) and math.isnan(m["fwt"])


def test_empty_and_missing():
    assert math.isnan(acc(np.zeros((0, 3))))
    assert math.isnan(fwt(R3, None))
    assert math.isnan(fwt(R3, [0.1]))  # b too short
    # a log killed before any evaluation
    recs = [Record("meta", extra={"n_eval": 2}), Record("train", chunk=0, step=1, n=10, n_correct=1)]
    assert accuracy_matrix(recs).shape == (0, 2)
    m = classic_metrics(recs, 0)
    assert m["n_chunks"] == 0
    assert all(math.isnan(v) for k, v in m.items() if k not in ("n_chunks", "online_accuracy"))
    assert m["online_accuracy"] == pytest.approx(0.1)  # the one training batch still counts
    assert np.isnan(random_init_accuracy(recs, 0)).all()
    assert random_init_accuracy(recs, 0).shape == (2,)


def test_wrong_dimension_raises():
    with pytest.raises(ValueError):
        acc([0.1, 0.2])


# ---------------------------------------------------------------- records -> matrix


def test_accuracy_matrix_sums_counts_not_percentages():
    recs = [
        Record("meta", extra={"n_eval": 2}),
        # (0, 0) from two records: 9/10 and 1/90 -> (9 + 1) / (10 + 90) = 0.1
        # (averaging the percentages would give (0.9 + 0.0111) / 2 = 0.4556)
        _eval(0, 0, 9, n=10),
        _eval(0, 0, 1, n=90),
        _eval(0, 1, 2, n=10),
        _eval(1, 0, 5, n=10),
        _eval(1, 1, 8, n=10),
        # periodic evals and the random-init row are not matrix rows
        _eval(0, 0, 0, n=10, boundary=False),
        _eval(-1, 0, 1, n=10),
        Record("train", chunk=0, step=1, n=10, n_correct=10),
    ]
    R = accuracy_matrix(recs)
    np.testing.assert_allclose(R, [[0.1, 0.2], [0.5, 0.8]])


def test_accuracy_matrix_columns_from_meta_or_tasks():
    # without n_eval: max task + 1 = 3 columns; task 2 never evaluated at a boundary -> NaN
    recs = [_eval(0, 0, 9), _eval(-1, 2, 1)]
    R = accuracy_matrix(recs)
    assert R.shape == (1, 3)
    assert R[0, 0] == pytest.approx(0.9)
    assert np.isnan(R[0, 1:]).all()
    # with n_eval larger than any task seen
    R = accuracy_matrix([Record("meta", extra={"n_eval": 4}), _eval(0, 0, 9)])
    assert R.shape == (1, 4)
    # a task index beyond n_eval is an inconsistent log
    with pytest.raises(DataError):
        accuracy_matrix([Record("meta", extra={"n_eval": 1}), _eval(0, 3, 9)])


def test_classic_metrics_from_records_match_hand_values(tmp_path):
    recs = _records_for(R3, B3)
    write_log(tmp_path / "log.jsonl", recs)
    recs = read_log(tmp_path / "log.jsonl")
    np.testing.assert_allclose(accuracy_matrix(recs, 0), R3)
    np.testing.assert_allclose(random_init_accuracy(recs, 0), B3)
    m = classic_metrics(recs, 0)
    assert set(m) == {"acc", "aia", "bwt", "fwt", "forgetting", "learning_accuracy", "online_accuracy", "n_chunks"}
    assert math.isnan(m["online_accuracy"])  # no train records in this log
    assert m["acc"] == pytest.approx(1.7 / 3)
    assert m["aia"] == pytest.approx(0.7055555555)
    assert m["bwt"] == pytest.approx(-0.35)
    assert m["fwt"] == pytest.approx(0.05)
    assert m["forgetting"] == pytest.approx(0.35)
    assert m["learning_accuracy"] == pytest.approx(0.8)
    assert m["n_chunks"] == 3
    m = classic_metrics(recs, 0, reference=[[0.9, 0.85, 0.8]])
    assert m["intransigence"] == pytest.approx(0.05)


def test_seeds_and_seed_selection():
    recs = _records_for(R3, seed=7) + _records_for(np.array([[0.5, 0.5], [0.5, 0.5]]), seed=2)
    assert seeds(recs) == [7, 2]
    with pytest.raises(ValueError, match="several seeds"):
        accuracy_matrix(recs)
    with pytest.raises(SeedError, match="not in the log"):
        classic_metrics(recs, 3)
    np.testing.assert_allclose(accuracy_matrix(recs, 7), R3)
    assert accuracy_matrix(recs, 2).shape == (2, 2)
    assert classic_metrics(recs, 2)["bwt"] == pytest.approx(0.0)


# ---------------------------------------------------------------- across seeds


def test_summarize_mean_std():
    per_seed = [
        {"acc": 0.5, "bwt": float("nan"), "fwt": float("nan"), "n_chunks": 3},
        {"acc": 0.6, "bwt": -0.2, "fwt": float("nan"), "n_chunks": 3},
        {"acc": 0.7, "bwt": -0.4, "fwt": float("nan"), "n_chunks": 3},
    ]
    s = summarize(per_seed)
    # acc: mean 0.6; sample std sqrt(((-0.1)^2 + 0 + 0.1^2) / (3 - 1)) = sqrt(0.01) = 0.1
    assert s["acc"][0] == pytest.approx(0.6)
    assert s["acc"][1] == pytest.approx(0.1)
    # bwt: NaN ignored -> values -0.2, -0.4: mean -0.3, std sqrt((0.01 + 0.01) / 1) = 0.141421...
    assert s["bwt"][0] == pytest.approx(-0.3)
    assert s["bwt"][1] == pytest.approx(math.sqrt(0.02))
    # all NaN -> NaN, NaN
    assert math.isnan(s["fwt"][0]) and math.isnan(s["fwt"][1])
    assert s["n_chunks"] == (3.0, 0.0)
    assert list(s) == ["acc", "bwt", "fwt", "n_chunks"]
    # a single seed: std 0.0
    assert summarize([{"acc": 0.42}]) == {"acc": (0.42, 0.0)}
    assert summarize([]) == {}


# ---------------------------------------------------------------- online metrics


def test_online_and_near_future_accuracy():
    recs = [
        Record("meta", seed=1),
        Record("train", seed=1, chunk=0, step=1, n=10, n_correct=10, extra={"nf_n": 10, "nf_correct": 2}),
        Record("train", seed=1, chunk=0, step=2, n=30, n_correct=20, extra={"nf_n": 30, "nf_correct": 18}),
        _eval(0, 0, 0, n=100, seed=1),  # eval records do not count
    ]
    # online: (10 + 20) / (10 + 30) = 0.75; near-future: (2 + 18) / (10 + 30) = 0.5
    assert online_accuracy(recs, 1) == pytest.approx(0.75)
    assert near_future_accuracy(recs, 1) == pytest.approx(0.5)
    bare = [Record("train", chunk=0, step=1, n=10, n_correct=3)]
    assert math.isnan(near_future_accuracy(bare))
    assert math.isnan(online_accuracy([Record("meta")]))


# ---------------------------------------------------------------- stability gap


def test_stability_gap_hand_made_log():
    recs = [
        # chunk 0 ends: R[0] = [0.9, 0.1, 0.0]
        _eval(0, 0, 9, step=10),
        _eval(0, 1, 1, step=10),
        _eval(0, 2, 0, step=10),
        # during chunk 1, task 0: 0.3 at step 12 (summed from 2/5 + 1/5 = 3/10), 0.6 at step 15
        _eval(1, 0, 2, n=5, step=12, boundary=False),
        _eval(1, 0, 1, n=5, step=12, boundary=False),
        _eval(1, 0, 6, step=15, boundary=False),
        # chunk 1 ends: R[1] = [0.7, 0.8, 0.1]
        _eval(1, 0, 7, step=20),
        _eval(1, 1, 8, step=20),
        _eval(1, 2, 1, step=20),
        # during chunk 2: task 0 at 0.65 (above R[2][0]); task 1 dips to 0.2
        _eval(2, 0, 13, n=20, step=25, boundary=False),
        _eval(2, 1, 2, step=25, boundary=False),
        # chunk 2 ends: R[2] = [0.5, 0.6, 0.9]
        _eval(2, 0, 5, step=30),
        _eval(2, 1, 6, step=30),
        _eval(2, 2, 9, step=30),
    ]
    mean_gap, gaps = stability_gap(recs)
    # (1, 0): R[0][0] - min(0.3, 0.6, R[1][0]=0.7) = 0.9 - 0.3 = 0.6
    # (2, 0): R[1][0] - min(0.65, R[2][0]=0.5)     = 0.7 - 0.5 = 0.2
    # (2, 1): R[1][1] - min(0.2, R[2][1]=0.6)      = 0.8 - 0.2 = 0.6
    assert set(gaps) == {(1, 0), (2, 0), (2, 1)}
    assert gaps[(1, 0)] == pytest.approx(0.6)
    assert gaps[(2, 0)] == pytest.approx(0.2)
    assert gaps[(2, 1)] == pytest.approx(0.6)
    # mean = (0.6 + 0.2 + 0.6) / 3 = 0.466666...
    assert mean_gap == pytest.approx(1.4 / 3)


def test_stability_gap_undefined():
    mean_gap, gaps = stability_gap([_eval(0, 0, 9)])
    assert math.isnan(mean_gap) and gaps == {}
    # no periodic evals: the drop right after the boundary is not observed, so the gap is undefined
    mean_gap, gaps = stability_gap([_eval(0, 0, 9), _eval(1, 0, 4), _eval(1, 1, 8)])
    assert math.isnan(mean_gap) and gaps == {}
