"""``lifelong compare``: several runs side by side, as ``compare.html`` and ``compare.md``.

Every metric side by side with the best value per metric marked, a stability-plasticity scatter,
overlaid accuracy curves, and a one-line verdict saying which learner forgets least. The numbers
come from each run's ``metrics.json`` and, for the curves, :func:`lifelong.evaluate.curves.accuracy_curves`.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lifelong.errors import DataError
from lifelong.evaluate.curves import accuracy_curves
from lifelong.report.format import (
    L2M_HINTS,
    L2M_LABELS,
    LOWER_IS_BETTER,
    METRIC_HINTS,
    METRIC_LABELS,
    NOT_METRICS,
    SHORT_LABELS,
    fmt,
    num,
)
from lifelong.report.html import img, page
from lifelong.report.plots import overlay_plot, scatter_plot
from lifelong.report.view import RunView, load_run


@dataclass
class Comparison:
    """The result of :func:`compare_runs`."""

    labels: list[str]
    columns: list[tuple[str, str]]  # (section, metric): section "classic" or "l2m"
    values: list[list[tuple[float, float]]]  # [run][column] -> (mean, std)
    best: list[set[int]]  # per column: indices of the runs with the best value
    verdict: str
    html_path: Path
    md_path: Path
    n_seeds: list[int]


def _label_runs(views: Sequence[RunView]) -> list[str]:
    learners = [v.learner for v in views]
    if len(set(learners)) == len(learners):
        return learners
    return [f"{v.learner} ({v.name})" for v in views]


def _columns(views: Sequence[RunView]) -> list[tuple[str, str]]:
    cols: dict[tuple[str, str], None] = {}
    for key in METRIC_LABELS:
        if any(key in v.metrics.get("summary", {}) for v in views):
            cols[("classic", key)] = None
    for v in views:
        for key in v.metrics.get("summary", {}):
            if key not in NOT_METRICS:
                cols.setdefault(("classic", key), None)
    for key in L2M_LABELS:
        if any(key in v.metrics.get("l2m", {}).get("summary", {}) for v in views):
            cols[("l2m", key)] = None
    return list(cols)


def _value(view: RunView, col: tuple[str, str]) -> tuple[float, float]:
    section, key = col
    summary = view.metrics.get("summary", {}) if section == "classic" else view.metrics.get("l2m", {}).get("summary", {})
    pair = summary.get(key)
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return math.nan, math.nan
    return num(pair[0]), num(pair[1])


def best_runs(values: Sequence[float], key: str) -> set[int]:
    """Indices of the best finite values (lower is better for :data:`LOWER_IS_BETTER`); ties all win.

    Empty when fewer than two runs have a value.

    Examples
    --------
    >>> sorted(best_runs([0.4, 0.1, float("nan"), 0.1], "forgetting")), sorted(best_runs([0.4, 0.9], "acc"))
    ([1, 3], [1])
    """
    finite = [(i, v) for i, v in enumerate(values) if not math.isnan(v)]
    if len(finite) < 2:
        return set()
    target = min(v for _, v in finite) if key in LOWER_IS_BETTER else max(v for _, v in finite)
    return {i for i, v in finite if math.isclose(v, target, rel_tol=1e-12, abs_tol=1e-12)}


def forgetting_verdict(labels: Sequence[str], views: Sequence[RunView]) -> str:
    """One line: which learner forgets least, by classic forgetting, else by L2M maintenance."""
    forget = [_value(v, ("classic", "forgetting"))[0] for v in views]
    finite = [(forget[i], labels[i]) for i in range(len(views)) if not math.isnan(forget[i])]
    if finite:
        finite.sort()
        best_v, best = finite[0]
        others = ", ".join(f"{lab} {v:.3f}" for v, lab in finite[1:])
        return f"{best} forgets least (forgetting {best_v:.3f}" + (f"; {others}" if others else "") + ")"
    pm = [_value(v, ("l2m", "perf_maintenance_mrlep"))[0] for v in views]
    finite = [(-pm[i], labels[i]) for i in range(len(views)) if not math.isnan(pm[i])]
    if finite:
        finite.sort()
        best_v, best = finite[0]
        others = ", ".join(f"{lab} {-v:.2f}" for v, lab in finite[1:])
        return (f"{best} forgets least (L2M performance maintenance {-best_v:.2f}"
                + (f"; {others}" if others else "") + ")")
    return "no run has a forgetting measure (a single chunk, or no evaluations); cannot tell which forgets least"


def stability_points(views: Sequence[RunView]) -> tuple[list[tuple[float, float]], list[tuple[float, float]], str, str]:
    """The scatter's points: (forgetting, learning accuracy) per run as (mean, std) pairs, and axis labels.

    When no run has both (L2M lifetimes, where the diagonal metrics are undefined), their L2M
    counterparts: performance lost (minus maintenance) against mean training performance.
    """
    xs = [_value(v, ("classic", "forgetting")) for v in views]
    ys = [_value(v, ("classic", "learning_accuracy")) for v in views]
    if all(math.isnan(x[0]) or math.isnan(y[0]) for x, y in zip(xs, ys)):
        xs = [(-m, s) for m, s in (_value(v, ("l2m", "perf_maintenance_mrlep")) for v in views)]
        ys = [_value(v, ("l2m", "avg_train_perf")) for v in views]
        return (xs, ys, "performance lost (−L2M maintenance; lower = more stable)",
                "mean training performance (L2M; higher = more plastic)")
    return xs, ys, "forgetting (lower = more stable)", "learning accuracy (higher = more plastic)"


def _hint(col: tuple[str, str]) -> str:
    section, key = col
    return (L2M_HINTS if section == "l2m" else METRIC_HINTS).get(key, "")


def _column_label(col: tuple[str, str]) -> str:
    section, key = col
    return ("L2M " + L2M_LABELS[key]) if section == "l2m" else METRIC_LABELS.get(key, key)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> Comparison:
    """Compare runs side by side; writes ``compare.html``, ``compare.md`` and PNGs to ``out_dir``.

    Parameters
    ----------
    run_dirs : sequence of str or Path
        Run directories (each with ``metrics.json`` and ``log.jsonl``).
    out_dir : str or Path
        Output directory (created if needed).

    Returns
    -------
    Comparison
        The table (labels, columns, values, best per column), the verdict and the written paths.
    """
    if not run_dirs:
        raise DataError("compare needs at least one run directory")
    views = [load_run(d) for d in run_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = _label_runs(views)
    columns = _columns(views)
    values = [[_value(v, c) for c in columns] for v in views]
    best = [best_runs([values[i][j][0] for i in range(len(views))], columns[j][1]) for j in range(len(columns))]
    verdict = forgetting_verdict(labels, views)
    curves = [accuracy_curves(v.records) for v in views]
    plots = [scatter_plot(labels, *stability_points(views)), overlay_plot(labels, curves)]
    for p in plots:
        (out / p.name).write_bytes(p.png)
    n_seeds = [v.n_seeds for v in views]

    def cell(i: int, j: int) -> tuple[str, bool]:
        mean, std = values[i][j]
        return fmt(mean, std, n_seeds=n_seeds[i]), i in best[j]

    def table(section: str, table_id: str) -> str:
        cols = [j for j, c in enumerate(columns) if c[0] == section]
        if not cols:
            return ""
        head = "".join(
            f'<th title="{html.escape(_column_label(columns[j]) + ": " + _hint(columns[j]))}">'
            f"{html.escape(SHORT_LABELS.get(columns[j][1], columns[j][1]))}</th>" for j in cols)
        rows = []
        for i, lab in enumerate(labels):
            cells = []
            for j in cols:
                text, is_best = cell(i, j)
                cells.append(f'<td class="num best">{text} ★</td>' if is_best else f'<td class="num">{text}</td>')
            rows.append(f"<tr><th>{html.escape(lab)}</th>{''.join(cells)}</tr>")
        return f'<div class="scroll"><table id="{table_id}"><tr><th>run</th>{head}</tr>{"".join(rows)}</table></div>'

    sources = "".join(f"<li><b>{html.escape(lab)}</b>: {html.escape(str(v.run_dir))} "
                      f"({v.n_seeds} seed{'s' if v.n_seeds > 1 else ''}, {html.escape(str(v.meta.get('scenario', '?')))} "
                      f"on {html.escape(str(v.meta.get('dataset', '?')))})</li>" for lab, v in zip(labels, views))
    body = [
        "<h1>Comparison of " + html.escape(", ".join(labels)) + "</h1>",
        f'<p class="glance"><b>{html.escape(verdict)}</b></p>',
        "<p>★ marks the best value of each column (lower is better for forgetting, intransigence and the stability "
        "gap, higher for the rest); values are mean ± std over seeds where a run has several. Hover a column header "
        "for its meaning.</p>",
        "<h2>Classic metrics</h2>", table("classic", "compare-classic"),
    ]
    if any(c[0] == "l2m" for c in columns):
        body += ["<h2>L2M metrics</h2>", table("l2m", "compare-l2m"),
                 '<p class="note">PM: performance maintenance (below 0: forgetting); FT/BT: forward/backward transfer; '
                 "STE: single-task expert; performances on the normalised 1-101 scale.</p>"]
    body += [
        "<h2>Stability vs. plasticity</h2>", img(plots[0]),
        "<h2>Accuracy along the stream</h2>", img(plots[1]),
        "<h2>Runs</h2>", f"<ul>{sources}</ul>",
    ]
    html_path = out / "compare.html"
    html_path.write_text(page("Comparison: " + ", ".join(labels), body), encoding="utf-8")

    md = [f"# Comparison of {', '.join(labels)}", "", f"**{verdict}**", "",
          "★ marks the best value per column.", "",
          "| run | " + " | ".join(_column_label(c) for c in columns) + " |",
          "|---|" + "---|" * len(columns)]
    for i, lab in enumerate(labels):
        md.append(f"| {lab} | " + " | ".join(t + (" ★" if b else "") for t, b in (cell(i, j) for j in range(len(columns))))
                  + " |")
    md += ["", "![stability vs plasticity](stability_plasticity.png)", "", "![accuracy curves](curves_overlay.png)", ""]
    md_path = out / "compare.md"
    md_path.write_text("\n".join(md), encoding="utf-8")
    return Comparison(labels, columns, values, best, verdict, html_path, md_path, n_seeds)


def compare(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> str:
    """The ``lifelong compare`` report as Markdown; the hook :func:`lifelong.experiments.sweep.write_summary` calls.

    Writes ``compare.html``, ``compare.md`` and the PNGs to ``out_dir`` (default: the directory that
    holds the runs, e.g. the sweep directory, so the Markdown's image links resolve there).
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise DataError("compare needs at least one run directory")
    if out_dir is None:
        out_dir = Path(os.path.commonpath([str(d.resolve().parent) for d in dirs]))
    return compare_runs(dirs, out_dir).md_path.read_text(encoding="utf-8")
