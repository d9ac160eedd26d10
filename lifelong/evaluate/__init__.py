"""Metrics: pure functions from a run log (a list of :class:`lifelong.log.Record`) to numbers.

``classic``
    The accuracy-matrix family (ACC, AIA, BWT, FWT, forgetting, intransigence, learning accuracy),
    online and near-future accuracy, the stability gap, and the mean and std across seeds.
``curves``
    Accuracy along the stream (per task, and on the tasks seen so far), mean ± std over seeds,
    and the mean accuracy matrix over seeds: what the reports plot.
``l2m``
    The lifelong-learning (L2M) metrics. Import them from ``lifelong.evaluate.l2m``.
"""

from lifelong.evaluate.classic import (
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
from lifelong.evaluate.curves import Curves, accuracy_curves, mean_matrix

__all__ = [
    "Curves",
    "SeedError",
    "accuracy_curves",
    "acc",
    "accuracy_matrix",
    "aia",
    "bwt",
    "classic_metrics",
    "forgetting",
    "forgetting_first",
    "fwt",
    "intransigence",
    "learning_accuracy",
    "mean_matrix",
    "near_future_accuracy",
    "online_accuracy",
    "random_init_accuracy",
    "seeds",
    "stability_gap",
    "summarize",
]
