"""The end of a sweep: ``summary.md`` / ``summary.json`` (each metric per cell over seeds: mean ± 95%
t-interval, ★ where a cell's lead survives the seeds) and the ``lifelong compare`` report over the
cells, each cell gathered into one run directory. The summary opens with the settings the cells
differ in and a verdict that names cells whose learner never learned.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lifelong.evaluate import summarize
from lifelong.experiments.config import from_dict, load_config
from lifelong.experiments.run import write_outputs
from lifelong.experiments.sweep.backends import SUMMARY_METRICS
from lifelong.experiments.sweep.plan import RunSpec, SweepPlan, axis_labels
from lifelong.experiments.sweep.status import is_finished, read_status
from lifelong.report import compare as compare_report
from lifelong.report.compare import comparability_banner, forgetting_verdict
from lifelong.report.format import num
from lifelong.report.view import RunView, fmt_interval, load_run, mean_interval, significant_best


#: The sweep table's metrics: the ones the backends report, and the stability gap beside forgetting.
TABLE_METRICS = (*SUMMARY_METRICS, "stability_gap")


def cell_table(sweep_dir: str | Path, plan: SweepPlan) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table of each metric per cell over its seeds, and the same as records.

    A cell shows the mean ± the half-width of its 95% t-interval. A ★ marks the cell whose lead
    on a metric survives the seeds, as in ``lifelong compare``: on the same seeds (two or more), the
    95% t-interval of its per-seed paired difference to every other cell excludes 0; anything else
    is a tie. A cell's statistics use its finished runs only; ``runs`` says how many of its seeds
    finished. Each record holds ``metrics`` (``[mean, std]``), ``ci95`` (the half-widths),
    ``per_seed`` (``{seed: metrics}``) and ``best`` (the metrics it is starred on).
    """
    sweep_dir = Path(sweep_dir)
    cells: dict[str, list[RunSpec]] = {}
    for r in plan.runs:
        cells.setdefault(r.cell, []).append(r)
    labels = axis_labels(list(plan.axes))
    rows: list[dict[str, Any]] = []
    for cell, runs in cells.items():
        per_seed: dict[str, dict[str, Any]] = {}
        times, n_failed = [], 0
        for r in runs:
            st = read_status(sweep_dir / r.name)
            if st.get("status") == "done" and (sweep_dir / r.name / "metrics.json").is_file():
                m = json.loads((sweep_dir / r.name / "metrics.json").read_text(encoding="utf-8"))
                for seed, metrics in m["per_seed"].items():
                    per_seed[str(seed)] = metrics
                times.append(float(st.get("wall_time_s", math.nan)))
            elif st.get("status") == "failed":
                n_failed += 1
        stats = summarize(list(per_seed.values())) if per_seed else {}
        ci95 = {k: mean_interval([num(m.get(k)) for m in per_seed.values()])[1] for k in stats}
        rows.append({"cell": cell, "values": runs[0].values, "n_runs": len(runs), "n_done": len(per_seed),
                     "n_failed": n_failed, "metrics": {k: list(v) for k, v in stats.items()}, "ci95": ci95,
                     "per_seed": per_seed, "best": [],
                     "wall_time_s": sum(times) / len(times) if times else None})
    metric_keys = [k for k in TABLE_METRICS if any(k in row["metrics"] for row in rows)]
    for k in metric_keys:
        for i in significant_best([{s: num(m.get(k)) for s, m in row["per_seed"].items()} for row in rows], k):
            rows[i]["best"].append(k)
    header = [labels[k] for k in plan.axes] + ["seeds done", *metric_keys, "time/run (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        # "—": the axis was dropped for this cell's learner
        cells_txt = ["—" if k not in row["values"] else _show(row["values"][k]) for k in plan.axes]
        seeds_txt = f"{row['n_done']}/{row['n_runs']}" + (f" ({row['n_failed']} failed)" if row["n_failed"] else "")
        metric_txt = [(fmt_interval(row["metrics"][k][0], row["ci95"][k]) + (" ★" if k in row["best"] else ""))
                      if k in row["metrics"] else "n/a" for k in metric_keys]
        time_txt = "n/a" if row["wall_time_s"] is None else f"{row['wall_time_s']:.1f}"
        lines.append("| " + " | ".join([*cells_txt, seeds_txt, *metric_txt, time_txt]) + " |")
    return "\n".join(lines), rows


def cell_views(sweep_dir: str | Path, plan: SweepPlan, rows: list[dict[str, Any]]) -> tuple[list[str], list[RunView]]:
    """Each cell with a finished seed as the reports see a run: its first finished run's config and
    meta record, the cell's per-seed metrics and their summary. For the banner and the verdict."""
    sweep_dir = Path(sweep_dir)
    first = {}
    for r in plan.runs:
        if r.cell not in first and is_finished(sweep_dir / r.name):
            first[r.cell] = r
    labels, views = [], []
    for row in rows:
        if row["cell"] not in first:
            continue
        view = load_run(sweep_dir / first[row["cell"]].name)
        view.metrics = {"per_seed": row["per_seed"], "summary": row["metrics"]}
        labels.append(row["cell"])
        views.append(view)
    return labels, views


def cell_runs(sweep_dir: str | Path, plan: SweepPlan) -> list[Path]:
    """One run directory per cell, ``cells/<cell>/``, holding its finished seeds together.

    Its ``log.jsonl`` is the seeds' logs concatenated in seed order, which is byte for byte what
    ``lifelong run`` writes for the cell's config with those seeds; ``metrics.json`` and
    ``report.md`` come from :func:`lifelong.experiments.run.write_outputs`. Cells with no finished seed are left out.
    """
    sweep_dir = Path(sweep_dir)
    cells: dict[str, list[RunSpec]] = {}
    for r in plan.runs:
        if is_finished(sweep_dir / r.name):
            cells.setdefault(r.cell, []).append(r)
    out = []
    for cell, runs in cells.items():
        cell_dir = sweep_dir / "cells" / cell
        cell_dir.mkdir(parents=True, exist_ok=True)
        # the config the runs used (with their pinned `threads`, which the numbers depend on)
        cfg = {**load_config(sweep_dir / runs[0].name / "config.toml").to_dict(), "name": cell, "seeds": [r.seed for r in runs]}
        (cell_dir / "config.toml").write_text(from_dict(cfg).to_toml(), encoding="utf-8")
        with open(cell_dir / "log.jsonl", "wb") as f:
            for r in runs:
                f.write((sweep_dir / r.name / "log.jsonl").read_bytes())
        write_outputs(cell_dir)
        out.append(cell_dir)
    return out


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_summary(sweep_dir: str | Path, plan: SweepPlan, *, compare: bool = True) -> Path:
    """Write ``summary.md`` and ``summary.json`` for the sweep; returns the Markdown path.

    With ``compare``, also the ``lifelong compare`` report over the cells (:func:`cell_runs`):
    ``compare.md``, ``compare.html`` and its plots, through :func:`lifelong.report.compare`.
    """
    sweep_dir = Path(sweep_dir)
    table, rows = cell_table(sweep_dir, plan)
    failures = []
    for r in plan.runs:
        st = read_status(sweep_dir / r.name)
        if st.get("status") == "failed":
            failures.append({"name": r.name, "error_type": st.get("error_type"), "error": st.get("error")})
    seeds = ", ".join(map(str, plan.seeds))
    labels, views = cell_views(sweep_dir, plan, rows)
    out = [f"# Sweep: {plan.name}", ""]
    banner = comparability_banner(views)
    if banner:
        axes = ", ".join(axis_labels(list(plan.axes)).values())
        out += [f"> **{banner}**" + (f" (the sweep's axes: {axes})" if axes else ""), ""]
    if views:
        out += [f"**{forgetting_verdict(labels, views)}**", ""]
    out += [
        f"{len(plan.runs)} runs: {len(rows)} cells × seeds [{seeds}]. "
        "Each metric is the mean ± the half-width of its 95% t-interval over the cell's finished seeds "
        "(RWalk forgetting: max-so-far minus last); summary.json also holds the sample std. ★ marks the cell whose "
        "lead survives the seeds: on the same seeds (two or more), the 95% t-interval of the per-seed difference to "
        "every other cell excludes 0; no star is a tie.",
        "", table, "",
    ]
    if failures:
        out += ["## Failed runs", "", "| run | error |", "|---|---|"]
        out += [f"| {f['name']} | {f['error_type']}: {str(f['error']).replace('|', '/')} |" for f in failures]
        out += ["", f"Fix the cause, then `lifelong sweep --resume {sweep_dir}` re-runs only these.", ""]
    path = sweep_dir / "summary.md"
    path.write_text("\n".join(out), encoding="utf-8")  # first without the comparison, which may fail
    (sweep_dir / "summary.json").write_text(json.dumps({"cells": rows, "failed": failures}, indent=2, default=float) + "\n",
                                            encoding="utf-8")
    if compare:
        dirs = cell_runs(sweep_dir, plan)
        if dirs:
            compare_report(dirs, sweep_dir)  # writes compare.md, compare.html and the PNGs here
            out += ["## Comparison", "", "Every metric per cell (★ where the lead survives the seeds), the "
                    "stability–plasticity scatter and the accuracy curves: [compare.md](compare.md), "
                    "[compare.html](compare.html). One run directory per cell (its seeds together): `cells/`.", ""]
            path.write_text("\n".join(out), encoding="utf-8")
    return path
