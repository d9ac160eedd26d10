"""``report.html``: one self-contained page per run (plots inlined as base64 PNG).

The page holds the run's config, the accuracy matrix as a heatmap, per-task accuracy curves over
the stream (chunk boundaries, sleep blocks and drift events marked), and the classic and L2M metric
tables (mean ± std over seeds). It carries a stylesheet and no script.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.evaluate.curves import accuracy_curves, mean_matrix
from lifelong.report.format import L2M_HINTS, L2M_LABELS, METRIC_HINTS, METRIC_LABELS, NOT_METRICS, fmt, num
from lifelong.report.plots import Plot, curves_plot, heatmap_plot
from lifelong.report.markdown import stability_gap_note
from lifelong.report.view import RunView, fmt_interval, learned, load_run, mean_interval

#: The stylesheet of every page (report and comparison).
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:24px auto;padding:0 18px;
color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.sub{color:#57606a;margin-top:0}.glance{background:#f6f8fa;border-left:4px solid #0969da;padding:.6em 1em;margin:1em 0}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}th,td{border:1px solid #d0d7de;padding:4px 9px;text-align:left}
th{background:#f6f8fa}tr>th:first-child{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{background:#dafbe1;font-weight:600}td.hint{color:#57606a;font-size:.9em}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}img{max-width:100%;height:auto;display:block;margin:.5em 0}
.scroll{overflow-x:auto}.note{color:#57606a;font-size:.9em}
.banner{background:#fff8c5;border-left:4px solid #bf8700;padding:.6em 1em;margin:1em 0}
"""


def page(title: str, body: list[str]) -> str:
    """A complete HTML document: ``title`` and the ``body`` fragments, with :data:`CSS` inlined."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>",
        "</head>", "<body>", *body, "</body>", "</html>", "",
    ])


def img(plot: Plot) -> str:
    """An ``<img>`` holding the plot's PNG as a data URI (the page needs no other file)."""
    return f'<img src="{plot.data_uri}" alt="{html.escape(plot.alt)}">'


def _metric_rows(summary: dict[str, Any], per_seed: dict[str, dict[str, Any]], labels: dict[str, str],
                 hints: dict[str, str], n_seeds: int) -> list[str]:
    keys = [k for k in labels if k in summary] + [k for k in summary if k not in labels and k not in NOT_METRICS]
    rows = []
    for k in keys:
        mean, std = summary[k]
        if n_seeds > 1:  # mean ± 95% t-interval half-width, the std, then each seed
            half = mean_interval([num(m.get(k)) for m in per_seed.values()])[1]
            value = (f'<td class="num">{fmt_interval(num(mean), half)}</td><td class="num">{fmt(num(std))}</td>'
                     + "".join(f'<td class="num">{fmt(num(m.get(k)))}</td>' for m in per_seed.values()))
        else:
            value = f'<td class="num">{fmt(num(mean))}</td>'
        rows.append(f"<tr><td>{html.escape(labels.get(k, k))}</td>{value}"
                    f"<td class=\"hint\">{html.escape(hints.get(k, ''))}</td></tr>")
    return rows


def _metric_table_html(title_col: str, summary: dict[str, Any], per_seed: dict[str, dict[str, Any]],
                       labels: dict[str, str], hints: dict[str, str], n_seeds: int, table_id: str) -> str:
    value = "mean ± 95% CI</th><th>std" if n_seeds > 1 else "value"
    seed_heads = "".join(f"<th>seed {html.escape(s)}</th>" for s in per_seed) if n_seeds > 1 else ""
    head = f"<tr><th>{title_col}</th><th>{value}</th>{seed_heads}<th>what it means</th></tr>"
    body = _metric_rows(summary, per_seed, labels, hints, n_seeds)
    return f'<div class="scroll"><table id="{table_id}">{head}{"".join(body)}</table></div>'


def glance(view: RunView) -> str:
    """One sentence a newcomer can read: final accuracy and how much the learner forgets."""
    s = view.metrics.get("summary", {})
    n = view.n_seeds
    acc = num(s.get("acc", [math.nan])[0])
    forget = num(s.get("forgetting", [math.nan])[0])
    parts = [f"<b>{html.escape(view.learner)}</b>"]
    if not math.isnan(acc):
        parts.append(f"ends with accuracy {fmt(acc, num(s['acc'][1]), n_seeds=n)} on all tasks")
    la_note = learned(view)
    if la_note is not None:
        parts.append(la_note)
    elif not math.isnan(forget):
        verdict = ("forgets most of what it learned" if forget > 0.5 else
                   "forgets some of what it learned" if forget > 0.2 else "keeps most of what it learned")
        parts.append(f"forgetting {fmt(forget, num(s['forgetting'][1]), n_seeds=n)}: it {verdict}")
    else:
        pm = num(view.metrics.get("l2m", {}).get("summary", {}).get("perf_maintenance_mrlep", [math.nan])[0])
        if not math.isnan(pm):
            parts.append(f"L2M performance maintenance {pm:.2f} ({'forgets' if pm < 0 else 'keeps'} what it learned, "
                         "on the 1-101 scale)")
    return parts[0] + " " + "; ".join(parts[1:]) + "." if len(parts) > 1 else parts[0] + "."


def html_report(run_dir: str | Path, *, out_dir: str | Path | None = None, view: RunView | None = None) -> Path:
    """Write ``report.html`` (self-contained) and its PNGs for one run directory.

    Parameters
    ----------
    run_dir : str or Path
        A run directory with ``log.jsonl`` and ``metrics.json``.
    out_dir : str or Path, optional
        Where to write ``report.html``, ``accuracy_matrix.png`` and ``accuracy_curves.png``
        (default: the run directory).
    view : RunView, optional
        The already loaded run (see :func:`load_run`).

    Returns
    -------
    Path
        The HTML file.
    """
    view = load_run(run_dir) if view is None else view
    out = Path(out_dir) if out_dir is not None else view.run_dir
    out.mkdir(parents=True, exist_ok=True)
    m, meta, n_seeds = view.metrics, view.meta, view.n_seeds
    seeds_note = f" (mean over {n_seeds} seeds)" if n_seeds > 1 else ""
    matrix = mean_matrix([np.asarray(a, dtype=float) for a in m.get("accuracy_matrix", {}).values()])
    chunk_names = list(meta.get("chunk_tasks") or []) if meta.get("data_view", "stream") != "joint" else ["joint"]
    for c in meta.get("sleep_chunks") or []:
        if c < len(chunk_names):
            chunk_names[c] = f"{chunk_names[c]} (sleep)"
    curves = accuracy_curves(view.records)
    plots = [
        heatmap_plot(matrix, list(meta.get("eval_tasks") or []), chunk_names, f"Accuracy matrix{seeds_note}"),
        curves_plot(curves, f"Accuracy on each task along the stream{seeds_note}"),
    ]
    for p in plots:
        (out / p.name).write_bytes(p.png)

    title = f"{view.name}: {view.learner} on {meta.get('scenario', '?')} / {meta.get('dataset', '?')}"
    where = "periodic and boundary evaluations" if curves.periodic else "evaluations at chunk boundaries"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{len(meta.get("chunk_tasks") or [])} chunks, {len(curves.task_names)} evaluation sets, '
        f"seeds {html.escape(', '.join(m.get('per_seed', {})))}</p>",
        f'<p class="glance">{glance(view)}</p>',
        "<h2>Classic metrics" + html.escape(f" (mean ± 95% t-interval over {n_seeds} seeds)" if n_seeds > 1 else "") + "</h2>",
        _metric_table_html("metric", m.get("summary", {}), m.get("per_seed", {}), METRIC_LABELS, METRIC_HINTS,
                           n_seeds, "classic-metrics"),
        '<p class="note">Metrics that read the diagonal of the accuracy matrix (BWT, forgetting, learning accuracy) '
        "are n/a when chunks and evaluation sets do not pair up one to one, as in L2M lifetimes with recurring tasks; "
        "read the L2M table there.</p>",
    ]
    gap_note = stability_gap_note(view.records, m.get("summary", {}))
    if gap_note:
        body.append(f'<p class="note">{html.escape(gap_note)}</p>')
    if m.get("l2m"):
        l2m = m["l2m"]
        ste = ", ".join(l2m.get("ste_tasks") or []) or "none (relative performance and sample efficiency are n/a)"
        body += [
            "<h2>L2M metrics" + html.escape(f" (mean ± 95% t-interval over {n_seeds} seeds)" if n_seeds > 1 else "") + "</h2>",
            _metric_table_html("L2M metric", l2m.get("summary", {}), l2m.get("per_seed", {}), L2M_LABELS, L2M_HINTS,
                               n_seeds, "l2m-metrics"),
            f'<p class="note">Computed as l2metrics 3.1.0 does (smoothing, per-task normalisation to 1-101); '
            f"scenario type {html.escape(str(l2m.get('scenario_type', 'custom')))}; single-task experts: "
            f"{html.escape(ste)}. See docs/metrics.md.</p>",
        ]
    body += [
        "<h2>Accuracy matrix" + html.escape(seeds_note) + "</h2>",
        "<p>Row i: accuracy on each evaluation set after training through chunk i.</p>",
        img(plots[0]),
        "<h2>Accuracy along the stream</h2>",
        f"<p>From {where}; dotted lines are chunk boundaries"
        + (", shaded spans sleep blocks" if curves.sleep_spans else "")
        + (", dashed red lines detected drifts" if curves.drifts else "")
        + (", bands ± one std over seeds" if n_seeds > 1 else "") + ".</p>",
        img(plots[1]),
        "<h2>Config</h2>",
        f"<pre>{html.escape(view.config_text)}</pre>",
    ]
    if "wall_time_s" in m:
        body.append(f'<p class="note">Wall time of the run: {float(m["wall_time_s"]):.1f} s.</p>')
    path = out / "report.html"
    path.write_text(page(title, body), encoding="utf-8")
    return path

