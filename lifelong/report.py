"""Reports: pure functions from the log and its metrics to Markdown (and, later, HTML)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.log import Record

METRIC_LABELS = {
    "acc": "ACC (final average accuracy)",
    "aia": "AIA (average incremental accuracy)",
    "bwt": "BWT (backward transfer)",
    "fwt": "FWT (forward transfer vs. random init)",
    "forgetting": "Forgetting (max-so-far minus last, RWalk)",
    "learning_accuracy": "Learning accuracy",
    "intransigence": "Intransigence (vs. reference)",
}


def fmt(mean: float, std: float | None = None, *, n_seeds: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if n_seeds > 1 and std is not None and not math.isnan(std):
        return f"{mean:.4f} ± {std:.4f}"
    return f"{mean:.4f}"


def matrix_table(matrix: np.ndarray | list, eval_names: list[str] | None = None) -> str:
    m = np.asarray(matrix, dtype=float)
    cols = eval_names or [f"task {j}" for j in range(m.shape[1])]
    lines = ["| after chunk | " + " | ".join(cols) + " |", "|---|" + "---|" * m.shape[1]]
    for i, row in enumerate(m):
        lines.append(f"| {i} | " + " | ".join("n/a" if math.isnan(v) else f"{v:.3f}" for v in row) + " |")
    return "\n".join(lines)


def metric_table(summary: dict[str, Any], n_seeds: int) -> str:
    lines = ["| metric | value |", "|---|---|"]
    for key, label in METRIC_LABELS.items():
        if key in summary:
            mean, std = summary[key]
            lines.append(f"| {label} | {fmt(mean, std, n_seeds=n_seeds)} |")
    return "\n".join(lines)


def markdown_report(run_dir: str | Path, records: list[Record], metrics: dict[str, Any]) -> str:
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    n_seeds = len(metrics["per_seed"])
    matrices = [np.asarray(m, dtype=float) for m in metrics["accuracy_matrix"].values()]
    mean_matrix = np.mean(np.stack(matrices), axis=0) if matrices else np.zeros((0, 0))
    seeds = ", ".join(metrics["per_seed"])
    out = [
        f"# Run report: {Path(run_dir).name}",
        "",
        f"- learner: `{meta.get('learner', '?')}`",
        f"- scenario: `{meta.get('scenario', '?')}` on `{meta.get('dataset', '?')}`, "
        f"{meta.get('n_chunks', '?')} chunks, classes per chunk {meta.get('chunk_classes', '?')}",
        f"- seeds: {seeds}",
        "",
        "## Metrics" + (f" (mean ± std over {n_seeds} seeds)" if n_seeds > 1 else ""),
        "",
        metric_table(metrics["summary"], n_seeds),
        "",
        "## Accuracy matrix" + (" (mean over seeds)" if n_seeds > 1 else ""),
        "",
        "Row i: accuracy on each chunk's test set after training through chunk i.",
        "",
        matrix_table(mean_matrix, meta.get("eval_tasks")),
        "",
    ]
    return "\n".join(out)
