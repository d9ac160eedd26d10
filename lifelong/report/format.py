"""What the reports call each metric, which direction is better, and how a value is written.

Shared by :mod:`~lifelong.report.markdown`, :mod:`~lifelong.report.html`,
:mod:`~lifelong.report.compare` and the command line.
"""

from __future__ import annotations

import math
from typing import Any

METRIC_LABELS = {
    "acc": "ACC (final average accuracy)",
    "aia": "AIA (average incremental accuracy)",
    "bwt": "BWT (backward transfer)",
    "fwt": "FWT (forward transfer vs. random init)",
    "forgetting": "Forgetting (max-so-far minus last, RWalk)",
    "learning_accuracy": "Learning accuracy",
    "online_accuracy": "Online accuracy (prequential, on each incoming batch)",
    "near_future_accuracy": "Near-future online accuracy (Hammoud et al. 2023)",
    "intransigence": "Intransigence (vs. reference)",
    "stability_gap": "Stability gap (De Lange et al. 2023; drop below the boundary value within the next chunk)",
}
#: What a value means, shown beside the classic metrics.
METRIC_HINTS = {
    "acc": "accuracy on every task at the end; higher is better",
    "aia": "mean accuracy on the tasks seen so far, averaged over the stream; higher is better",
    "bwt": "how learning new tasks changed old ones; below 0 means forgetting",
    "fwt": "accuracy on a task before training on it, above a random network; higher is better",
    "forgetting": "how far each old task fell from its best; lower is better",
    "learning_accuracy": "accuracy on each task right after learning it (plasticity); higher is better",
    "intransigence": "shortfall against a reference learner; lower is better",
    "online_accuracy": "accuracy on each incoming batch before the update; higher is better",
    "near_future_accuracy": "accuracy on batches a little ahead in the stream; higher is better",
    "stability_gap": "drop of old tasks right after a new chunk starts; lower is better",
}
L2M_LABELS = {
    "perf_maintenance_mrlep": "Performance maintenance (MRLEP)",
    "perf_maintenance_mrtlp": "Performance maintenance (MRTLP)",
    "forward_transfer_ratio": "Forward transfer (ratio)",
    "forward_transfer_contrast": "Forward transfer (contrast)",
    "backward_transfer_ratio": "Backward transfer (ratio)",
    "backward_transfer_contrast": "Backward transfer (contrast)",
    "perf_recovery": "Performance recovery",
    "ste_rel_perf": "Performance relative to single-task expert",
    "sample_efficiency": "Sample efficiency",
    "avg_train_perf": "Mean training performance",
    "avg_eval_perf": "Mean evaluation performance",
}
L2M_HINTS = {
    "perf_maintenance_mrlep": "later evaluations minus the one right after learning; below 0 means forgetting",
    "perf_maintenance_mrtlp": "later evaluations minus the end of the last learning block; below 0 means forgetting",
    "forward_transfer_ratio": "a task's score after learning another task first, over before; above 1 helps",
    "forward_transfer_contrast": "the same change as a contrast in [-1, 1]; above 0 helps",
    "backward_transfer_ratio": "an old task's score after learning a later one, over before; below 1 is interference",
    "backward_transfer_contrast": "the same change as a contrast in [-1, 1]; below 0 is interference",
    "perf_recovery": "minus the trend of the time needed to recover a task; above 0 recovers faster each time",
    "ste_rel_perf": "learning curve over a single-task expert's; above 1 beats the expert",
    "sample_efficiency": "saturation and speed relative to a single-task expert; above 1 is more efficient",
    "avg_train_perf": "mean of the normalised (1-101) learning curves",
    "avg_eval_perf": "mean of the normalised (1-101) evaluation scores",
}
#: Column headers of the comparison tables (the full label is the header's tooltip).
SHORT_LABELS = {
    "acc": "ACC", "aia": "AIA", "bwt": "BWT", "fwt": "FWT", "forgetting": "Forgetting",
    "learning_accuracy": "Learning acc.", "intransigence": "Intransigence", "online_accuracy": "Online acc.",
    "near_future_accuracy": "Near-future acc.", "stability_gap": "Stability gap", "forgetting_first": "Forgetting (first)",
    "perf_maintenance_mrlep": "PM (MRLEP)", "perf_maintenance_mrtlp": "PM (MRTLP)",
    "forward_transfer_ratio": "FT ratio", "forward_transfer_contrast": "FT contrast",
    "backward_transfer_ratio": "BT ratio", "backward_transfer_contrast": "BT contrast",
    "perf_recovery": "Recovery", "ste_rel_perf": "Rel. to STE", "sample_efficiency": "Sample eff.",
    "avg_train_perf": "Train perf.", "avg_eval_perf": "Eval perf.",
}
#: Metrics where a lower value is better; every other known metric is better when higher.
LOWER_IS_BETTER = frozenset({"forgetting", "forgetting_first", "intransigence", "stability_gap"})
#: Summary keys that are counts or settings, not metrics.
NOT_METRICS = frozenset({"n_chunks", "n_tasks", "n_eval"})


def fmt(mean: float, std: float | None = None, *, n_seeds: int = 1) -> str:
    """``"0.8123"``, or ``"0.8123 ± 0.0100"`` over several seeds; ``"n/a"`` for NaN or None."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if n_seeds > 1 and std is not None and not math.isnan(std):
        return f"{mean:.4f} ± {std:.4f}"
    return f"{mean:.4f}"


def num(v: Any) -> float:
    """``float(v)``, or NaN for a value that is not a number (a missing metric, ``None``)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
