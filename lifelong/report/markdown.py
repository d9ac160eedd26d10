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
from lifelong.report.format import L2M_HINTS, L2M_LABELS, METRIC_LABELS, fmt, num
from lifelong.report.view import fmt_interval, mean_interval


def matrix_table(matrix: np.ndarray | list, eval_names: list[str] | None = None) -> str:
    """The accuracy matrix as a Markdown table: row i = after chunk i, one column per evaluation set."""
    m = np.asarray(matrix, dtype=float)
    cols = eval_names or [f"task {j}" for j in range(m.shape[1])]
    lines = ["| after chunk | " + " | ".join(cols) + " |", "|---|" + "---|" * m.shape[1]]
    for i, row in enumerate(m):
        lines.append(f"| {i} | " + " | ".join("n/a" if math.isnan(v) else f"{v:.3f}" for v in row) + " |")
    return "\n".join(lines)


def _value_cell(pair: Any, seed_values: list[float], n_seeds: int) -> str:
    """``mean ± 95% half-width`` (from the per-seed values) and the std, or the single value."""
    mean, std = (num(pair[0]), num(pair[1])) if isinstance(pair, (list, tuple)) and len(pair) == 2 else (math.nan, math.nan)
    if n_seeds <= 1:
        return fmt(mean)
    _, half, _ = mean_interval(seed_values)
    return f"{fmt_interval(mean, half)} | {fmt(std)}"


def metric_table(summary: dict[str, Any], n_seeds: int, per_seed: dict[str, dict[str, Any]] | None = None) -> str:
    """The classic metrics as a Markdown table: mean ± 95% t-interval half-width and std over seeds."""
    per_seed = per_seed or {}
    multi = n_seeds > 1
    lines = ["| metric | mean ± 95% CI | std |" if multi else "| metric | value |", "|---|---|---|" if multi else "|---|---|"]
    for key, label in METRIC_LABELS.items():
        if key in summary:
            vals = [num(m.get(key)) for m in per_seed.values()]
            lines.append(f"| {label} | {_value_cell(summary[key], vals, n_seeds)} |")
    return "\n".join(lines)


def l2m_table(l2m: dict[str, Any], n_seeds: int) -> str:
    """The L2M lifetime metrics as a Markdown table: mean ± 95% t-interval half-width and std over seeds."""
    multi = n_seeds > 1
    lines = ["| L2M metric | mean ± 95% CI | std | meaning |" if multi else "| L2M metric | value | meaning |",
             "|---|---|---|---|" if multi else "|---|---|---|"]
    per_seed = l2m.get("per_seed") or {}
    for key, label in L2M_LABELS.items():
        if key in l2m.get("summary", {}):
            vals = [num(m.get(key)) for m in per_seed.values()]
            lines.append(f"| {label} | {_value_cell(l2m['summary'][key], vals, n_seeds)} | {L2M_HINTS[key]} |")
    return "\n".join(lines)


def stability_gap_note(records: list[Record], summary: dict[str, Any]) -> str | None:
    """Why the stability gap is n/a, or None when it has a value (or is not in the metrics)."""
    pair = summary.get("stability_gap")
    if not isinstance(pair, (list, tuple)) or not math.isnan(num(pair[0])):
        return None
    periodic = any(r.kind == "eval" and r.boundary is not True and r.chunk is not None and r.chunk >= 0 for r in records)
    if not periodic:
        return ("The stability gap is n/a: the run has no periodic evaluations, so the drop right after a chunk "
                "boundary was never observed. Set `train.eval_every` (evaluate every N batches) to measure it.")
    return ("The stability gap is n/a: no chunk after the first holds a periodic evaluation of an older task "
            "(a single chunk, or chunks shorter than `train.eval_every` batches).")


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
        "## Metrics" + (f" (mean ± 95% t-interval half-width, and std, over {n_seeds} seeds)" if n_seeds > 1 else ""),
        "",
        metric_table(metrics["summary"], n_seeds, metrics["per_seed"]),
        "",
    ]
    note = stability_gap_note(records, metrics["summary"])
    if note:
        out += [note, ""]
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
