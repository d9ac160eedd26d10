"""Reports: pure functions from a run's metrics (and its log's curves) to Markdown, HTML and PNG plots.

:mod:`~lifelong.report.markdown`
    :func:`markdown_report`: ``report.md``, written by every run.
:mod:`~lifelong.report.html`
    :func:`html_report`: ``report.html``, one self-contained page (plots inlined as base64 PNG)
    with the run's config, the accuracy matrix as a heatmap, per-task accuracy curves over the
    stream, and the classic and L2M metric tables (mean ± std over seeds).
:mod:`~lifelong.report.compare`
    :func:`compare_runs` (and :func:`compare`, its Markdown, used by sweeps): ``compare.html`` and
    ``compare.md`` for several runs, the best value per metric marked, a stability-plasticity
    scatter, overlaid accuracy curves and a one-line verdict saying which learner forgets least.
:mod:`~lifelong.report.plots`
    the PNGs (matplotlib's Agg canvas; no pyplot, so no global figure state).
:mod:`~lifelong.report.view`, :mod:`~lifelong.report.format`
    a run directory as the reports read it; metric labels and number formatting.

Nothing here computes a metric: the numbers come from ``metrics.json`` and from
:mod:`lifelong.evaluate` (the accuracy curves), and the log is read by :func:`lifelong.log.read_log`.
"""

from lifelong.report.compare import Comparison, best_runs, compare, compare_runs, forgetting_verdict
from lifelong.report.format import (
    L2M_HINTS,
    L2M_LABELS,
    LOWER_IS_BETTER,
    METRIC_HINTS,
    METRIC_LABELS,
    NOT_METRICS,
    SHORT_LABELS,
    fmt,
)
from lifelong.report.html import glance, html_report
from lifelong.report.markdown import l2m_table, markdown_report, matrix_table, metric_table
from lifelong.report.plots import Plot, curves_plot, heatmap_plot, overlay_plot, scatter_plot
from lifelong.report.view import RunView, load_run

__all__ = [
    "L2M_HINTS", "L2M_LABELS", "LOWER_IS_BETTER", "METRIC_HINTS", "METRIC_LABELS", "NOT_METRICS", "SHORT_LABELS",
    "Comparison", "Plot", "RunView", "best_runs", "compare", "compare_runs", "curves_plot", "fmt",
    "forgetting_verdict", "glance", "heatmap_plot", "html_report", "l2m_table", "load_run", "markdown_report",
    "matrix_table", "metric_table", "overlay_plot", "scatter_plot",
]
