"""Accuracy along the stream (:mod:`lifelong.evaluate.curves`) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifelong.evaluate.curves import accuracy_curves, mean_matrix
from lifelong.log import Record


def test_curves_use_periodic_evaluations_and_collect_drift_events():
    recs = [Record("meta", extra={"chunk_tasks": ["a_0", "b_0"], "eval_tasks": ["a_0", "b_0"]})]
    recs += [Record("eval", chunk=-1, task=t, step=0, n=10, n_correct=1, boundary=True) for t in (0, 1)]
    recs += [Record("eval", chunk=0, task=t, step=5, n=10, n_correct=k, boundary=False) for t, k in ((0, 6), (1, 0))]
    recs += [Record("eval", chunk=0, task=t, step=10, n=10, n_correct=k, boundary=True) for t, k in ((0, 9), (1, 0))]
    recs += [Record("chunk_end", chunk=0, step=10), Record("drift", step=14)]
    recs += [Record("eval", chunk=1, task=t, step=20, n=10, n_correct=k, boundary=True) for t, k in ((0, 5), (1, 8))]
    recs += [Record("chunk_end", chunk=1, step=20)]
    c = accuracy_curves(recs)
    assert c.steps.tolist() == [0, 5, 10, 20] and c.periodic
    assert c.mean[:, 0].tolist() == pytest.approx([0.1, 0.6, 0.9, 0.5])
    assert c.boundaries == [10] and c.drifts == [14]
    # seen so far: nothing at step 0, task a during/after chunk 0, both after chunk 1
    assert math.isnan(c.seen_mean[0]) and c.seen_mean[1:].tolist() == pytest.approx([0.6, 0.9, 0.65])


def test_curves_average_seeds_and_sum_evaluations_at_the_same_step():
    recs = [Record("meta", extra={"eval_tasks": ["a", "b"]})]
    for seed, k in ((0, 4), (1, 8)):
        recs += [Record("eval", seed=seed, chunk=0, task=0, step=10, n=10, n_correct=k, boundary=True),
                 Record("eval", seed=seed, chunk=0, task=0, step=10, n=10, n_correct=k, boundary=False),
                 Record("chunk_end", seed=seed, chunk=0, step=10)]
    c = accuracy_curves(recs)
    # per seed: (k + k) / 20 = k / 10; mean over seeds 0.6, sample std sqrt(((0.4-0.6)^2 + (0.8-0.6)^2) / 1)
    assert c.n_seeds == 2 and c.mean[0, 0] == pytest.approx(0.6) and c.std[0, 0] == pytest.approx(math.sqrt(0.08))
    assert c.task_names == ["a"] and c.boundaries == []


def test_mean_matrix_pads_with_nan_and_ignores_it():
    m = mean_matrix([np.array([[0.2, 0.4]]), np.array([[0.6, np.nan], [1.0, 0.0]])])
    assert m[0].tolist() == pytest.approx([0.4, 0.4]) and m[1].tolist() == [1.0, 0.0]
    assert mean_matrix([]).shape == (0, 0)
