"""The L2M view of a run directory: the lifetime metrics of its log (with its single-task experts,
if any, as STE data) and the export of both to the l2logger layout.

A run's expert logs live under ``<run>/ste/<task>/log.jsonl`` (one file per task, every seed in
it); :mod:`lifelong.experiments.experts` writes them, the functions here only read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifelong.errors import DataError
from lifelong.evaluate.classic import summarize
from lifelong.evaluate.l2logger import L2ROW_METRIC_COLUMNS, records_to_l2rows, write_l2logger
from lifelong.evaluate.l2m import LIFETIME_METRICS, l2m_metrics
from lifelong.log import Record, read_log

__all__ = ["STE_DIR", "L2LOGGER_SCENARIO_TYPES", "expert_dir", "expert_rows", "export_l2logger", "l2m_section"]

#: The run-directory folder holding the single-task experts' logs.
STE_DIR = "ste"
#: ``scenario_type`` values of l2logger's ``scenario_info.json`` (the L2M lifetimes' types); any
#: other run is exported as ``"custom"``.
L2LOGGER_SCENARIO_TYPES = ("condensed", "dispersed", "alternating", "permuted", "ste")


def expert_dir(run_dir: str | Path, task: str) -> Path:
    """The folder of task ``task``'s expert log: ``<run>/ste/<task>`` with a filesystem-safe name."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in task)
    return Path(run_dir) / STE_DIR / safe


def expert_rows(run_dir: str | Path, seed: int) -> dict[str, list[list[dict[str, Any]]]]:
    """STE data of one seed for :func:`~lifelong.evaluate.l2m.l2m_metrics`: task -> [rows]."""

    out: dict[str, list[list[dict[str, Any]]]] = {}
    for path in sorted((Path(run_dir) / STE_DIR).glob("*/log.jsonl")):
        records = read_log(path)
        if not any(r.seed == seed for r in records):
            continue
        rows = records_to_l2rows(records, seed)
        task = next((r["task_name"] for r in rows if r["block_type"] == "train"), None)
        if task is not None:
            out.setdefault(task, []).append(rows)
    return out


def l2m_section(run_dir: str | Path, records: list[Record]) -> dict[str, Any] | None:
    """The ``"l2m"`` section of ``metrics.json``: L2M lifetime metrics per seed and their mean ± std.

    Every run gets one (any log converts to L2M rows with
    :func:`~lifelong.evaluate.l2logger.records_to_l2rows`); STE-based metrics are NaN unless the run has
    expert logs under ``<run>/ste/``.

    Returns
    -------
    dict or None
        ``{"per_seed": {seed: {metric: value}}, "summary": {metric: [mean, std]}, "ste_tasks": [...],
        "scenario_type": ...}``, or None for a log without training records.
    """

    seeds = list(dict.fromkeys(r.seed for r in records if r.kind == "train"))
    if not seeds:
        return None
    per_seed: dict[str, dict[str, float]] = {}
    ste_tasks: set[str] = set()
    for seed in seeds:
        ste = expert_rows(run_dir, seed)
        ste_tasks.update(ste)
        m = l2m_metrics(records_to_l2rows(records, seed), ste=ste or None)
        per_seed[str(seed)] = {k: m[k] for k in LIFETIME_METRICS}
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    return {
        "per_seed": per_seed,
        "summary": {k: list(v) for k, v in summarize(list(per_seed.values())).items()},
        "ste_tasks": sorted(ste_tasks),
        "scenario_type": meta.get("scenario_type", "custom"),
    }


def export_l2logger(run_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write a run's log, one lifetime per seed, in the l2logger layout (format 1.1).

    Lifetimes go to ``<out>/<run>-seed<s>-<timestamp>/``; expert runs, if any, to
    ``<out>/ste/<run>/seed<s>/<task>-<timestamp>/``, one directory per seed because the lifetime of seed
    ``s`` is scored against the experts of seed ``s``. To score seed ``s`` with ``l2metrics``, store
    its experts first (``L2DATA=<empty dir> python -m l2metrics -R -l <out>/ste/<run>/seed<s> -s a``), then
    run ``python -m l2metrics -l <lifetime dir> -p performance`` with the same ``L2DATA``.
    Returns the lifetime directories.
    """

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    records = read_log(run_dir / "log.jsonl")
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    kind = meta.get("scenario_type", "custom")
    info = {"author": "lifelong", "scenario_type": kind if kind in L2LOGGER_SCENARIO_TYPES else "custom",
            "complexity": "1-low", "difficulty": "2-medium", "scenario": meta.get("scenario", "?"),
            "learner": meta.get("learner", "?"), "dataset": meta.get("dataset", "?")}
    name = run_dir.resolve().name.split(".")[0] or "run"
    out = []
    for seed in dict.fromkeys(r.seed for r in records if r.kind == "train"):
        rows = records_to_l2rows(records, seed)
        out.append(write_l2logger(rows, out_dir, f"{name}-seed{seed}", metric_columns=list(L2ROW_METRIC_COLUMNS),
                                  scenario_info=info, overwrite=overwrite))
    for path in sorted((run_dir / STE_DIR).glob("*/log.jsonl")):
        ste_records = read_log(path)
        for seed in dict.fromkeys(r.seed for r in ste_records if r.kind == "train"):
            write_l2logger(records_to_l2rows(ste_records, seed), out_dir / STE_DIR / name / f"seed{seed}", path.parent.name,
                           metric_columns=list(L2ROW_METRIC_COLUMNS), overwrite=overwrite,
                           scenario_info={**info, "scenario_type": "ste"})
    if not out:
        raise DataError(f"{run_dir}/log.jsonl has no training records; nothing to export")
    return out

