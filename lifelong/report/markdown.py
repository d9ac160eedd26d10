"""``report.md``: the Markdown report every run writes, a pure function of its metrics.

The run's description (learner, scenario, dataset) comes from the log's ``meta`` record.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.evaluate.curves import mean_matrix
from lifelong.log import Record
from lifelong.report.format import L2M_HINTS, L2M_LABELS, METRIC_LABELS, fmt


def matrix_table(matrix: np.ndarray | list, eval_names: list[str] | None = None) -> str:
    """The accuracy matrix as a Markdown table: row i = after chunk i, one column per evaluation set."""
    m = np.asarray(matrix, dtype=float)
    cols = eval_names or [f"task {j}" for j in range(m.shape[1])]
    lines = ["| after chunk | " + " | ".join(cols) + " |", "|---|" + "---|" * m.shape[1]]
    for i, row in enumerate(m):
        lines.append(f"| {i} | " + " | ".join("n/a" if math.isnan(v) else f"{v:.3f}" for v in row) + " |")
    return "\n".join(lines)


def metric_table(summary: dict[str, Any], n_seeds: int) -> str:
    """The classic metrics as a Markdown table (mean ± std over seeds)."""
    lines = ["| metric | value |", "|---|---|"]
    for key, label in METRIC_LABELS.items():
        if key in summary:
            mean, std = summary[key]
            lines.append(f"| {label} | {fmt(mean, std, n_seeds=n_seeds)} |")
    return "\n".join(lines)


def l2m_table(l2m: dict[str, Any], n_seeds: int) -> str:
    """The L2M lifetime metrics as a Markdown table (mean ± std over seeds)."""
    lines = ["| L2M metric | value | meaning |", "|---|---|---|"]
    for key, label in L2M_LABELS.items():
        if key in l2m.get("summary", {}):
            mean, std = l2m["summary"][key]
            lines.append(f"| {label} | {fmt(mean, std, n_seeds=n_seeds)} | {L2M_HINTS[key]} |")
    return "\n".join(lines)


def markdown_report(run_dir: str | Path, records: list[Record], metrics: dict[str, Any]) -> str:
    """The text of ``report.md`` for a run.

    Parameters
    ----------
    run_dir : str or Path
        The run directory (its name titles the report).
    records : list of Record
        The run's log; only its first ``meta`` record is read.
    metrics : dict
        ``metrics.json``: ``per_seed``, ``summary``, ``accuracy_matrix`` and optionally ``l2m``.
    """
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    n_seeds = len(metrics["per_seed"])
    matrices = [np.asarray(m, dtype=float) for m in metrics["accuracy_matrix"].values()]
    mean = mean_matrix(matrices)
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
    ]
    if metrics.get("l2m"):
        out += ["## L2M metrics (l2metrics-compatible, normalised per task)", "", l2m_table(metrics["l2m"], n_seeds), ""]
    out += [
        "## Accuracy matrix" + (" (mean over seeds)" if n_seeds > 1 else ""),
        "",
        "Row i: accuracy on each chunk's test set after training through chunk i.",
        "",
        matrix_table(mean, meta.get("eval_tasks")),
        "",
    ]
    return "\n".join(out)
