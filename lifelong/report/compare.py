"""``lifelong compare``: several runs side by side, as ``compare.html`` and ``compare.md``.

Every metric side by side as mean ± the half-width of its 95% t-interval over seeds, a ★ only on a
run whose lead survives the seeds (the paired per-seed difference to every other run, on the same
two or more seeds, has a 95% t-interval that excludes 0; REFERENCE.md, "Comparisons across
seeds"), a banner listing every setting the runs differ in (dataset, scenario options, model,
training protocol, memory budget, seeds), a stability-plasticity scatter, overlaid accuracy
curves, and a one-line verdict saying which learner forgets least, judged with learning and final
accuracy (a learner whose learning accuracy stays near chance "never learned"). The table also
exports as CSV (:func:`table_csv`) and as a LaTeX ``tabular`` (:func:`table_latex`). The numbers
come from each run's ``metrics.json`` and, for the curves, :func:`lifelong.evaluate.curves.accuracy_curves`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from lifelong.report.view import RunView, beats, fmt_interval, learned, load_run, mean_interval, significant_best


@dataclass
class Comparison:
    """The result of :func:`compare_runs`."""

    labels: list[str]
    columns: list[tuple[str, str]]  # (section, metric): section "classic" or "l2m"
    values: list[list[tuple[float, float]]]  # [run][column] -> (mean, half-width of the 95% t-interval; NaN < 2 seeds)
    best: list[set[int]]  # per column: the run whose lead survives the seeds (at most one), else empty
    verdict: str
    html_path: Path
    md_path: Path
    n_seeds: list[int]
    banner: str = ""  # "runs differ in: ..." or "runs agree on: ..."
    differences: list[tuple[str, list[str]]] = field(default_factory=list)  # (setting, value per run)


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
    """``(mean, std)`` from the run's summary."""
    section, key = col
    summary = view.metrics.get("summary", {}) if section == "classic" else view.metrics.get("l2m", {}).get("summary", {})
    pair = summary.get(key)
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return math.nan, math.nan
    return num(pair[0]), num(pair[1])


def _interval(view: RunView, col: tuple[str, str]) -> tuple[float, float]:
    """``(mean, 95% half-width)``: the summary's mean, the width from the per-seed values."""
    return _value(view, col)[0], mean_interval(list(view.seed_values(*col).values()))[1]


def best_runs(values: Sequence[float], key: str) -> set[int]:
    """Indices of the best finite means (lower is better for :data:`LOWER_IS_BETTER`); ties all win.

    Empty when fewer than two runs have a value. This only ranks the means; the star of the
    comparison tables needs the lead to survive the seeds (:func:`~lifelong.report.view.significant_best`).

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


# --------------------------------------------------------------------------------------------
# comparability: what the runs' configs disagree on

#: Short names for the settings a reader checks first; other settings are named ``section.key``.
_SHORT = {("dataset", "name"): "dataset", ("scenario", "name"): "scenario", ("train", "epochs"): "epochs",
          ("train", "batch_size"): "batch_size", ("train", "lr"): "lr", ("learner", "mem_size"): "mem_size"}
#: Sections compared key by key; of ``[learner]`` only the memory budget (the rest is what is compared).
_SECTIONS = ("dataset", "scenario", "model", "train")


def _show(value: object) -> str:
    if value is None:
        return "default"
    return value if isinstance(value, str) else json.dumps(value)


def _settings(view: RunView) -> dict[str, object]:
    """The settings the comparability banner checks, from config.toml (else the meta record)."""
    cfg = view.config
    out: dict[str, object] = {}
    if cfg:
        for section in _SECTIONS:
            for key, value in (cfg.get(section) or {}).items():
                out[_SHORT.get((section, key), f"{section}.{key}")] = value
        if "mem_size" in (cfg.get("learner") or {}):
            out["mem_size"] = cfg["learner"]["mem_size"]
    else:  # no config.toml: what the log's meta record says
        for key in ("dataset", "scenario"):
            if key in view.meta:
                out[key] = view.meta[key]
        if "n_chunks" in view.meta:
            out["scenario.n_chunks"] = view.meta["n_chunks"]
    seeds = list(view.metrics.get("per_seed") or {}) or [str(s) for s in (cfg.get("seeds") or [])]
    out["seeds"] = [int(s) if str(s).lstrip("-").isdigit() else s for s in seeds]
    return out


def config_differences(views: Sequence[RunView]) -> list[tuple[str, list[str]]]:
    """Every setting on which the runs disagree: ``(name, value per run)``, in a stable order.

    Compared: the dataset and its options, the scenario and its options, the model, the training
    protocol (epochs, batch_size, lr, eval_every, ...), the memory budget ``mem_size`` and the seeds
    that ran. A setting one run leaves out shows as ``default``; ``mem_size`` is compared only
    between runs that have a memory (a learner without one has no budget to match).
    """
    settings = [_settings(v) for v in views]
    names: dict[str, None] = {}
    for st in settings:
        for k in st:
            names.setdefault(k, None)
    out = []
    for name in names:
        if name == "mem_size":
            vals = [_show(st[name]) for st in settings if name in st]
            if len(set(vals)) > 1:
                out.append((name, [_show(st.get(name)) if name in st else "none" for st in settings]))
            continue
        vals = [_show(st.get(name)) for st in settings]
        if len(set(vals)) > 1:
            out.append((name, vals))
    return out


def comparability_banner(views: Sequence[RunView], differences: list[tuple[str, list[str]]] | None = None) -> str:
    """One line: ``"runs differ in: dataset (digits vs fashion_mnist), epochs (1 vs 20)"``, or that
    they agree. With more than four runs each difference lists its distinct values instead."""
    diffs = config_differences(views) if differences is None else differences
    if len(views) < 2:
        return ""
    if not diffs:
        return "runs agree on: dataset, scenario and its options, model, training protocol, memory budget and seeds"

    def values(vals: list[str]) -> str:
        return " vs ".join(vals) if len(vals) <= 4 else ", ".join(dict.fromkeys(vals))

    return "runs differ in: " + ", ".join(f"{name} ({values(vals)})" for name, vals in diffs)


# --------------------------------------------------------------------------------------------
# the verdict


def forgetting_verdict(labels: Sequence[str], views: Sequence[RunView]) -> str:
    """One line: which learner forgets least, judged with its learning and final accuracy.

    A run whose learning accuracy stays near chance (:func:`~lifelong.report.view.never_learned`)
    is called "never learned (learning accuracy X near chance Y)": forgetting nothing is no merit
    when nothing was learned. Of the others, the lowest classic forgetting forgets least; the line
    gives each one's final accuracy, says when another run ends more accurate, and when the lead
    does not survive the seeds (paired 95% interval). Without classic forgetting (L2M lifetimes),
    L2M performance maintenance decides.
    """
    forget = [_value(v, ("classic", "forgetting"))[0] for v in views]
    final = [_value(v, ("classic", "acc"))[0] for v in views]
    never = [i for i, v in enumerate(views) if learned(v) is not None]
    notes = [f"{labels[i]} {learned(views[i])}" for i in never]
    rest = sorted((i for i in range(len(views)) if i not in never and not math.isnan(forget[i])), key=lambda i: forget[i])
    if rest:
        b = rest[0]
        def acc_txt(i: int) -> str:
            return "" if math.isnan(final[i]) else f", final accuracy {final[i]:.3f}"
        others = "; ".join(f"{labels[i]} {forget[i]:.3f}{acc_txt(i)}" for i in rest[1:])
        line = f"{labels[b]} forgets least (forgetting {forget[b]:.3f}{acc_txt(b)}" + (f"; {others}" if others else "") + ")"
        if len(rest) > 1:
            a, c = views[b].seed_values("classic", "forgetting"), views[rest[1]].seed_values("classic", "forgetting")
            lead = beats(a, c, "forgetting")
            if lead is None:
                line += f", but untested against {labels[rest[1]]} (not the same two or more seeds)"
            elif not lead:
                line += f", but not by more than the seeds' noise against {labels[rest[1]]}"
        top = max((i for i in rest if not math.isnan(final[i])), key=lambda i: final[i], default=None)
        if top is not None and top != b and final[top] > final[b] + 1e-12:
            line += f"; {labels[top]} ends more accurate ({final[top]:.3f})"
        return "; ".join([line, *notes])
    pm = [_value(v, ("l2m", "perf_maintenance_mrlep"))[0] for v in views]
    finite = [(-pm[i], labels[i]) for i in range(len(views)) if i not in never and not math.isnan(pm[i])]
    if finite:
        finite.sort()
        best_v, best = finite[0]
        others = ", ".join(f"{lab} {-v:.2f}" for v, lab in finite[1:])
        return "; ".join([f"{best} forgets least (L2M performance maintenance {-best_v:.2f}"
                          + (f"; {others}" if others else "") + ")", *notes])
    if notes:
        return "no run learned enough to judge forgetting: " + "; ".join(notes)
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

    Each value is the mean over seeds ± the half-width of its 95% t-interval. A star marks the run
    whose lead on a metric survives the seeds: against every other run, on the same seeds (at least
    two), the 95% t-interval of the per-seed paired difference excludes 0. Anything else, including
    identical values, unmatched seeds and single-seed runs, is a tie and gets no star. A banner at
    the top lists every setting the runs disagree on (:func:`config_differences`).

    Parameters
    ----------
    run_dirs : sequence of str or Path
        Run directories (each with ``metrics.json`` and ``log.jsonl``).
    out_dir : str or Path
        Output directory (created if needed).

    Returns
    -------
    Comparison
        The table (labels, columns, values, stars per column), the banner, the verdict and the
        written paths.
    """
    if not run_dirs:
        raise DataError("compare needs at least one run directory")
    views = [load_run(d) for d in run_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = _label_runs(views)
    columns = _columns(views)
    values = [[_interval(v, c) for c in columns] for v in views]
    best = [significant_best([v.seed_values(*c) for v in views], c[1]) for c in columns]
    verdict = forgetting_verdict(labels, views)
    differences = config_differences(views)
    banner = comparability_banner(views, differences)
    curves = [accuracy_curves(v.records) for v in views]
    plots = [scatter_plot(labels, *stability_points(views)), overlay_plot(labels, curves)]
    for p in plots:
        (out / p.name).write_bytes(p.png)
    n_seeds = [v.n_seeds for v in views]

    def cell(i: int, j: int) -> tuple[str, bool]:
        mean, half = values[i][j]
        return fmt_interval(mean, half), i in best[j]

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
    body = ["<h1>Comparison of " + html.escape(", ".join(labels)) + "</h1>"]
    if banner:
        body.append(f'<p class="banner" id="comparability"><b>{html.escape(banner)}</b></p>')
    body += [
        f'<p class="glance"><b>{html.escape(verdict)}</b></p>',
        f"<p>{html.escape(STAR_NOTE)} Hover a column header for its meaning.</p>",
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

    md = [f"# Comparison of {', '.join(labels)}", ""]
    md += [f"> **{banner}**", ""] if banner else []
    md += [f"**{verdict}**", "", STAR_NOTE, "",
           "| run | " + " | ".join(_column_label(c) for c in columns) + " |",
           "|---|" + "---|" * len(columns)]
    for i, lab in enumerate(labels):
        md.append(f"| {lab} | " + " | ".join(t + (" ★" if b else "") for t, b in (cell(i, j) for j in range(len(columns))))
                  + " |")
    md += ["", "![stability vs plasticity](stability_plasticity.png)", "", "![accuracy curves](curves_overlay.png)", ""]
    md_path = out / "compare.md"
    md_path.write_text("\n".join(md), encoding="utf-8")
    return Comparison(labels, columns, values, best, verdict, html_path, md_path, n_seeds, banner, differences)


#: What the values and stars mean, under every comparison table.
STAR_NOTE = ("Values are the mean over seeds ± the half-width of its 95% t-interval. ★ marks a run whose lead "
             "survives the seeds: on the same seeds (two or more), the 95% t-interval of its per-seed difference "
             "to every other run excludes 0 (lower is better for forgetting, intransigence and the stability gap, "
             "higher for the rest). No star is a tie.")


def _csv_name(col: tuple[str, str]) -> str:
    return ("l2m_" if col[0] == "l2m" else "") + col[1]


def table_csv(result: Comparison) -> str:
    """The comparison table as CSV: one row per run; per metric its mean, 95% half-width and star.

    Columns: ``run``, ``n_seeds``, then ``<metric>``, ``<metric>_ci95`` and ``<metric>_best``
    (1 for a star, else 0) per metric; L2M metrics are prefixed ``l2m_``. A value that is not
    defined is an empty field.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["run", "n_seeds"]
    for c in result.columns:
        head += [_csv_name(c), _csv_name(c) + "_ci95", _csv_name(c) + "_best"]
    w.writerow(head)
    for i, lab in enumerate(result.labels):
        row: list[object] = [lab, result.n_seeds[i]]
        for j in range(len(result.columns)):
            mean, half = result.values[i][j]
            row += ["" if math.isnan(mean) else repr(mean), "" if math.isnan(half) else repr(half), int(i in result.best[j])]
        w.writerow(row)
    return buf.getvalue()


def _tex(text: str) -> str:
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(repl.get(ch, ch) for ch in text)


def table_latex(result: Comparison) -> str:
    """The comparison table as a LaTeX ``tabular``: one row per run, ``mean $\\pm$ half-width``, the
    starred values in bold; the banner and the meaning of the values as comments above it."""
    cols = result.columns
    lines = [f"% {_tex(result.banner)}"] if result.banner else []
    lines += [f"% {STAR_NOTE}",
             "\\begin{tabular}{l" + "r" * len(cols) + "}", "\\hline",
             "run & " + " & ".join(_tex(("L2M " if c[0] == "l2m" else "") + SHORT_LABELS.get(c[1], c[1])) for c in cols)
             + " \\\\", "\\hline"]
    for i, lab in enumerate(result.labels):
        cells = []
        for j in range(len(cols)):
            mean, half = result.values[i][j]
            text = "n/a" if math.isnan(mean) else f"{mean:.4f}" + ("" if math.isnan(half) else f" $\\pm$ {half:.4f}")
            cells.append(f"\\textbf{{{text}}}" if i in result.best[j] else text)
        lines.append(_tex(lab) + " & " + " & ".join(cells) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


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
