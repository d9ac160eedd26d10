"""Reports: pure functions from a run's log and metrics to Markdown, HTML and PNG plots.

:func:`markdown_report`
    ``report.md``, written by every run.
:func:`html_report`
    ``report.html``: one self-contained page (plots inlined as base64 PNG) with the run's config,
    the accuracy matrix as a heatmap, per-task accuracy curves over the stream (chunk boundaries,
    sleep blocks and drift events marked), the classic and the L2M metric tables (mean ± std over
    seeds), and the PNGs written next to it.
:func:`compare_runs` (and :func:`compare`, its Markdown, used by sweeps)
    ``compare.html`` and ``compare.md`` for several runs: every metric side by side with the best
    value per metric marked, a stability-plasticity scatter, overlaid accuracy curves, and a
    one-line verdict saying which learner forgets least.

Plots use matplotlib's Agg canvas directly (no pyplot, so no global figure state). Nothing here
trains or changes a run; the functions read ``metrics.json``, ``config.toml`` and ``log.jsonl``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import DataError
from lifelong.log import Record, read_log

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


def l2m_table(l2m: dict[str, Any], n_seeds: int) -> str:
    """The L2M lifetime metrics as a Markdown table (mean ± std over seeds)."""
    lines = ["| L2M metric | value | meaning |", "|---|---|---|"]
    for key, label in L2M_LABELS.items():
        if key in l2m.get("summary", {}):
            mean, std = l2m["summary"][key]
            lines.append(f"| {label} | {fmt(mean, std, n_seeds=n_seeds)} | {L2M_HINTS[key]} |")
    return "\n".join(lines)


def markdown_report(run_dir: str | Path, records: list[Record], metrics: dict[str, Any]) -> str:
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    n_seeds = len(metrics["per_seed"])
    matrices = [np.asarray(m, dtype=float) for m in metrics["accuracy_matrix"].values()]
    mean_matrix = _mean_matrix(matrices)
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
        matrix_table(mean_matrix, meta.get("eval_tasks")),
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# data: a run as the report sees it


@dataclass
class RunView:
    """What a report reads from a run directory."""

    run_dir: Path
    metrics: dict[str, Any]
    records: list[Record]  # every record except ``train`` ones
    config_text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    @property
    def learner(self) -> str:
        return str(self.meta.get("learner", "?"))

    @property
    def n_seeds(self) -> int:
        return len(self.metrics.get("per_seed", {})) or 1


def load_run(run_dir: str | Path) -> RunView:
    """Read ``metrics.json``, ``config.toml`` and the non-training records of a run directory.

    Raises
    ------
    DataError
        If the directory has no ``log.jsonl`` or ``metrics.json``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "log.jsonl").is_file():
        raise DataError(f"{run_dir} has no log.jsonl; pass a directory written by `lifelong run`")
    if not (run_dir / "metrics.json").is_file():
        raise DataError(f"{run_dir} has no metrics.json; rebuild it with `lifelong report {run_dir}`")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{run_dir}/metrics.json is not valid JSON ({e}); rebuild it with `lifelong report {run_dir}`") from None
    records = _report_records(run_dir / "log.jsonl")
    config = run_dir / "config.toml"
    config_text = config.read_text(encoding="utf-8") if config.is_file() else "(no config.toml)"
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    return RunView(run_dir, metrics, records, config_text, meta)


def _report_records(path: Path) -> list[Record]:
    """The log without its ``train`` records (the bulk of it; the report does not plot them)."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip() or '"kind":"train"' in line:
            continue
        try:
            out.append(Record.from_json(line))
        except (json.JSONDecodeError, TypeError, ValueError):
            if i == len(lines) - 1:
                break  # a torn last line, as in lifelong.log.iter_log
            return [r for r in read_log(path) if r.kind != "train"]  # let read_log raise its message
    return out


def _mean_matrix(matrices: Sequence[np.ndarray]) -> np.ndarray:
    if not matrices:
        return np.zeros((0, 0))
    shape = (max(m.shape[0] for m in matrices), max(m.shape[1] for m in matrices))
    stack = np.full((len(matrices), *shape), np.nan)
    for k, m in enumerate(matrices):
        stack[k, : m.shape[0], : m.shape[1]] = m
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        return np.nanmean(stack, axis=0)


@dataclass
class Curves:
    """Accuracy along the stream, mean (and std) over seeds.

    ``steps`` has shape (K,); ``mean``/``std`` (K, T) per evaluation set; ``seen_mean``/``seen_std``
    (K,) the mean accuracy over the tasks seen so far (NaN before any is seen).
    """

    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    seen_mean: np.ndarray
    seen_std: np.ndarray
    task_names: list[str]
    boundaries: list[int]
    drifts: list[int]
    sleep_spans: list[tuple[int, int]]
    periodic: bool
    n_seeds: int


def _seen_by_chunk(meta: dict[str, Any], n_eval: int, n_chunks: int) -> list[list[int]]:
    """Evaluation sets seen by the end of each training chunk (by task name, else chunk i <-> set i)."""
    if meta.get("data_view") == "joint":
        return [list(range(n_eval))] * max(n_chunks, 1)
    names = [str(n).lower() for n in meta.get("chunk_tasks") or []]
    evals = [str(n).lower() for n in meta.get("eval_tasks") or []]
    seen: set[int] = set()
    out = []
    for c in range(n_chunks):
        match = {j for j, e in enumerate(evals) if c < len(names) and e == names[c]}
        seen |= match or ({c} if c < n_eval else set())
        out.append(sorted(seen))
    return out


def accuracy_curves(records: Sequence[Record]) -> Curves:
    """Per-task accuracy at every evaluation point (periodic and boundary), mean ± std over seeds.

    Counts of records sharing ``(seed, step, task)`` are summed (a periodic and a boundary
    evaluation at the same step see the same model).
    """
    seeds = list(dict.fromkeys(r.seed for r in records if r.kind == "eval"))
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    evals = [r for r in records if r.kind == "eval" and r.task is not None and r.step is not None]
    n_eval = max((r.task for r in evals), default=-1) + 1
    steps = np.array(sorted({r.step for r in evals}), dtype=np.int64)
    pos = {int(s): k for k, s in enumerate(steps)}
    seed_pos = {s: k for k, s in enumerate(seeds)}
    n = np.zeros((len(seeds), len(steps), n_eval))
    correct = np.zeros_like(n)
    chunk_at = np.full((len(seeds), len(steps)), -2, dtype=np.int64)  # -2: no evaluation at that step
    for r in evals:
        i, k = seed_pos[r.seed], pos[r.step]
        n[i, k, r.task] += r.n or 0
        correct[i, k, r.task] += r.n_correct or 0
        chunk_at[i, k] = max(chunk_at[i, k], r.chunk if r.chunk is not None else -1)
    acc = np.full(n.shape, np.nan)
    np.divide(correct, n, out=acc, where=n > 0)
    n_chunks = int(chunk_at.max()) + 1 if chunk_at.size else 0
    seen = _seen_by_chunk(meta, n_eval, n_chunks)
    seen_acc = np.full(chunk_at.shape, np.nan)
    for i in range(len(seeds)):
        for k in range(len(steps)):
            c = chunk_at[i, k]
            if c >= 0 and seen[c]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    seen_acc[i, k] = np.nanmean(acc[i, k, seen[c]])
    first = seeds[0] if seeds else 0
    ends = {r.chunk: r.step for r in records if r.kind == "chunk_end" and r.seed == first}
    starts = {c: ends.get(c - 1, 0) for c in ends}
    sleep_spans = [(starts[c], ends[c]) for c in meta.get("sleep_chunks") or [] if c in ends] \
        if meta.get("data_view", "stream") == "stream" else []
    return Curves(
        steps=steps, mean=_nanmean(acc), std=_nanstd(acc), seen_mean=_nanmean(seen_acc), seen_std=_nanstd(seen_acc),
        task_names=[(meta.get("eval_tasks") or [])[j] if j < len(meta.get("eval_tasks") or []) else f"task {j}"
                    for j in range(n_eval)],
        boundaries=sorted(ends.values())[:-1] if ends else [],
        drifts=sorted({int(r.step) for r in records if r.kind == "drift" and r.step is not None}),
        sleep_spans=sleep_spans, periodic=any(r.boundary is False for r in evals), n_seeds=len(seeds),
    )


def _nanmean(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=0) if a.shape[0] else a.sum(axis=0)


def _nanstd(a: np.ndarray) -> np.ndarray:
    """Sample std over seeds (axis 0), ignoring NaN; 0 where a single value is present."""
    count = (~np.isnan(a)).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(a, axis=0, ddof=1) if a.shape[0] > 1 else np.zeros(a.shape[1:])
    return np.where(count > 1, std, 0.0)


# --------------------------------------------------------------------------------------------
# plots (matplotlib, Agg canvas)


@dataclass
class Plot:
    """A rendered PNG: its file name, alt text and bytes."""

    name: str
    alt: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def heatmap_plot(matrix: np.ndarray, eval_names: list[str], chunk_names: list[str], title: str) -> Plot:
    """The accuracy matrix as a heatmap: rows = after chunk i, columns = evaluation sets."""
    m = np.asarray(matrix, dtype=float)
    rows, cols = m.shape if m.ndim == 2 else (0, 0)
    fig = _figure(min(2.2 + 0.75 * max(cols, 1), 12), min(1.6 + 0.42 * max(rows, 1), 14))
    ax = fig.add_subplot()
    if rows and cols:
        im = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        fig.colorbar(im, ax=ax, label="accuracy", shrink=0.85)
        if rows * cols <= 400:
            for i in range(rows):
                for j in range(cols):
                    if not math.isnan(m[i, j]):
                        ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if m[i, j] < 0.55 else "black")
        ax.set_xticks(range(cols), [_short(n) for n in eval_names[:cols]], rotation=35, ha="right", fontsize=8)
        ylabels = [f"{i}: {_short(chunk_names[i])}" if i < len(chunk_names) else str(i) for i in range(rows)]
        ax.set_yticks(range(rows), ylabels, fontsize=8)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("after training chunk")
    ax.set_title(title, fontsize=10)
    return Plot("accuracy_matrix.png", "accuracy matrix heatmap", _png(fig))


def _mark_stream(ax: Any, curves: Curves) -> None:
    for b in curves.boundaries:
        ax.axvline(b, color="0.6", linestyle=":", linewidth=0.9)
    for a, b in curves.sleep_spans:
        ax.axvspan(a, b, color="tab:purple", alpha=0.12, linewidth=0)
    for d in curves.drifts:
        ax.axvline(d, color="tab:red", linestyle="--", linewidth=1.1)


def curves_plot(curves: Curves, title: str) -> Plot:
    """Per-task accuracy over training steps, with chunk boundaries, sleep blocks and drift events."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = _figure(10, 4.6)
    ax = fig.add_subplot()
    cmap = _colors(len(curves.task_names))
    for j, name in enumerate(curves.task_names):
        y, s = curves.mean[:, j], curves.std[:, j]
        ok = ~np.isnan(y)
        ax.plot(curves.steps[ok], y[ok], color=cmap[j], linewidth=1.6, marker="." if not curves.periodic else None,
                label=_short(name, 24))
        if curves.n_seeds > 1:
            ax.fill_between(curves.steps[ok], (y - s)[ok], (y + s)[ok], color=cmap[j], alpha=0.15, linewidth=0)
    _mark_stream(ax, curves)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training step (batches)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.6", linestyle=":", label="chunk boundary"))
    if curves.sleep_spans:
        handles.append(Patch(color="tab:purple", alpha=0.25, label="sleep block"))
    if curves.drifts:
        handles.append(Line2D([], [], color="tab:red", linestyle="--", label="drift detected"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.25)
    return Plot("accuracy_curves.png", "per-task accuracy curves over the stream", _png(fig))


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


# --------------------------------------------------------------------------------------------
# HTML


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:24px auto;padding:0 18px;
color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.sub{color:#57606a;margin-top:0}.glance{background:#f6f8fa;border-left:4px solid #0969da;padding:.6em 1em;margin:1em 0}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}th,td{border:1px solid #d0d7de;padding:4px 9px;text-align:left}
th{background:#f6f8fa}tr>th:first-child{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{background:#dafbe1;font-weight:600}td.hint{color:#57606a;font-size:.9em}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}img{max-width:100%;height:auto;display:block;margin:.5em 0}
.scroll{overflow-x:auto}.note{color:#57606a;font-size:.9em}
"""

# Records, in data attributes on <body>, how the page loaded: a headless browser dumps the DOM and
# reads them (tests/test_report_browser.py).
_STATUS_JS = """
window.__jsErrors = 0;
window.__consoleErrors = 0;
window.addEventListener("error", function () {
  window.__jsErrors += 1;
  if (document.body) { document.body.dataset.jsErrors = String(window.__jsErrors); }
});
(function () {
  var original = console.error;
  console.error = function () { window.__consoleErrors += 1; return original.apply(console, arguments); };
})();
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (im) { return im.complete && im.naturalWidth > 0; });
  var d = document.body.dataset;
  d.imagesTotal = String(images.length);
  d.imagesLoaded = String(loaded.length);
  d.tables = String(document.querySelectorAll("table").length);
  d.jsErrors = String(window.__jsErrors);
  d.consoleErrors = String(window.__consoleErrors);
  d.ready = "1";
});
"""


def _page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", f"<script>{_STATUS_JS}</script>",
        "</head>", "<body>", *body, "</body>", "</html>", "",
    ])


def _img(plot: Plot) -> str:
    return f'<img src="{plot.data_uri}" alt="{html.escape(plot.alt)}">'


def _metric_rows(summary: dict[str, Any], per_seed: dict[str, dict[str, Any]], labels: dict[str, str],
                 hints: dict[str, str], n_seeds: int) -> list[str]:
    keys = [k for k in labels if k in summary] + [k for k in summary if k not in labels and k not in NOT_METRICS]
    rows = []
    for k in keys:
        mean, std = summary[k]
        seeds = "".join(f'<td class="num">{fmt(_num(m.get(k)))}</td>' for m in per_seed.values()) if n_seeds > 1 else ""
        rows.append(f"<tr><td>{html.escape(labels.get(k, k))}</td><td class=\"num\">{fmt(_num(mean), _num(std), n_seeds=n_seeds)}</td>"
                    f"{seeds}<td class=\"hint\">{html.escape(hints.get(k, ''))}</td></tr>")
    return rows


def _metric_table_html(title_col: str, summary: dict[str, Any], per_seed: dict[str, dict[str, Any]],
                       labels: dict[str, str], hints: dict[str, str], n_seeds: int, table_id: str) -> str:
    value = "mean ± std" if n_seeds > 1 else "value"
    seed_heads = "".join(f"<th>seed {html.escape(s)}</th>" for s in per_seed) if n_seeds > 1 else ""
    head = f"<tr><th>{title_col}</th><th>{value}</th>{seed_heads}<th>what it means</th></tr>"
    body = _metric_rows(summary, per_seed, labels, hints, n_seeds)
    return f'<div class="scroll"><table id="{table_id}">{head}{"".join(body)}</table></div>'


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def glance(view: RunView) -> str:
    """One sentence a newcomer can read: final accuracy and how much the learner forgets."""
    s = view.metrics.get("summary", {})
    n = view.n_seeds
    acc = _num(s.get("acc", [math.nan])[0])
    forget = _num(s.get("forgetting", [math.nan])[0])
    parts = [f"<b>{html.escape(view.learner)}</b>"]
    if not math.isnan(acc):
        parts.append(f"ends with accuracy {fmt(acc, _num(s['acc'][1]), n_seeds=n)} on all tasks")
    if not math.isnan(forget):
        verdict = ("forgets most of what it learned" if forget > 0.5 else
                   "forgets some of what it learned" if forget > 0.2 else "keeps most of what it learned")
        parts.append(f"forgetting {fmt(forget, _num(s['forgetting'][1]), n_seeds=n)}: it {verdict}")
    else:
        pm = _num(view.metrics.get("l2m", {}).get("summary", {}).get("perf_maintenance_mrlep", [math.nan])[0])
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
    matrix = _mean_matrix([np.asarray(a, dtype=float) for a in m.get("accuracy_matrix", {}).values()])
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
        "<h2>Classic metrics" + html.escape(f" (mean ± std over {n_seeds} seeds)" if n_seeds > 1 else "") + "</h2>",
        _metric_table_html("metric", m.get("summary", {}), m.get("per_seed", {}), METRIC_LABELS, METRIC_HINTS,
                           n_seeds, "classic-metrics"),
        '<p class="note">Metrics that read the diagonal of the accuracy matrix (BWT, forgetting, learning accuracy) '
        "are n/a when chunks and evaluation sets do not pair up one to one, as in L2M lifetimes with recurring tasks; "
        "read the L2M table there.</p>",
    ]
    if m.get("l2m"):
        l2m = m["l2m"]
        ste = ", ".join(l2m.get("ste_tasks") or []) or "none (relative performance and sample efficiency are n/a)"
        body += [
            "<h2>L2M metrics" + html.escape(f" (mean ± std over {n_seeds} seeds)" if n_seeds > 1 else "") + "</h2>",
            _metric_table_html("L2M metric", l2m.get("summary", {}), l2m.get("per_seed", {}), L2M_LABELS, L2M_HINTS,
                               n_seeds, "l2m-metrics"),
            f'<p class="note">Computed as l2metrics 3.1.0 does (smoothing, per-task normalisation to 1-101); '
            f"scenario type {html.escape(str(l2m.get('scenario_type', 'custom')))}; single-task experts: "
            f"{html.escape(ste)}. See docs/metrics.md.</p>",
        ]
    body += [
        "<h2>Accuracy matrix" + html.escape(seeds_note) + "</h2>",
        "<p>Row i: accuracy on each evaluation set after training through chunk i.</p>",
        _img(plots[0]),
        "<h2>Accuracy along the stream</h2>",
        f"<p>From {where}; dotted lines are chunk boundaries"
        + (", shaded spans sleep blocks" if curves.sleep_spans else "")
        + (", dashed red lines detected drifts" if curves.drifts else "")
        + (", bands ± one std over seeds" if n_seeds > 1 else "") + ".</p>",
        _img(plots[1]),
        "<h2>Config</h2>",
        f"<pre>{html.escape(view.config_text)}</pre>",
    ]
    if "wall_time_s" in m:
        body.append(f'<p class="note">Wall time of the run: {float(m["wall_time_s"]):.1f} s.</p>')
    path = out / "report.html"
    path.write_text(_page(title, body), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# comparing runs


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
    return _num(pair[0]), _num(pair[1])


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


def scatter_plot(labels: Sequence[str], views: Sequence[RunView]) -> Plot:
    """Stability-plasticity: learning accuracy (plasticity) against forgetting (instability)."""
    xs = [_value(v, ("classic", "forgetting")) for v in views]
    ys = [_value(v, ("classic", "learning_accuracy")) for v in views]
    xlabel, ylabel = "forgetting (lower = more stable)", "learning accuracy (higher = more plastic)"
    if all(math.isnan(x[0]) or math.isnan(y[0]) for x, y in zip(xs, ys)):
        # L2M lifetimes: the diagonal metrics are undefined; use their L2M counterparts
        xs = [tuple(-a if i == 0 else a for i, a in enumerate(_value(v, ("l2m", "perf_maintenance_mrlep"))))
              for v in views]
        ys = [_value(v, ("l2m", "avg_train_perf")) for v in views]
        xlabel = "performance lost (−L2M maintenance; lower = more stable)"
        ylabel = "mean training performance (L2M; higher = more plastic)"
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    colors = _colors(len(views))
    shown = [i for i in range(len(labels)) if not (math.isnan(xs[i][0]) or math.isnan(ys[i][0]))]
    span_x = np.ptp([xs[i][0] for i in shown]) if shown else 0.0
    span_y = np.ptp([ys[i][0] for i in shown]) if shown else 0.0
    placed: list[tuple[float, float]] = []
    for i in shown:
        (x, xe), (y, ye) = xs[i], ys[i]
        ax.errorbar([x], [y], xerr=[xe] if xe else None, yerr=[ye] if ye else None, fmt="o", color=colors[i],
                    markersize=8, capsize=3, label=labels[i])
        # runs that land on (nearly) the same point get their labels stacked, not overprinted
        near = sum(abs(x - a) <= 0.03 * (span_x or 1) and abs(y - b) <= 0.03 * (span_y or 1) for a, b in placed)
        placed.append((x, y))
        ax.annotate(labels[i], (x, y), textcoords="offset points", xytext=(7, 6 + 11 * near), fontsize=8)
    if shown:
        ax.legend(fontsize=8, loc="best", frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("Stability vs. plasticity (best: top left)", fontsize=10)
    ax.grid(alpha=0.25)
    ax.margins(0.15)
    return Plot("stability_plasticity.png", "stability-plasticity scatter", _png(fig))


def overlay_plot(labels: Sequence[str], curves: Sequence[Curves]) -> Plot:
    """Mean accuracy on the tasks seen so far, one line per run, chunk boundaries of the first run."""
    fig = _figure(10, 4.4)
    ax = fig.add_subplot()
    colors = _colors(len(curves))
    for i, (lab, c) in enumerate(zip(labels, curves)):
        ok = ~np.isnan(c.seen_mean)
        ax.plot(c.steps[ok], c.seen_mean[ok], color=colors[i], linewidth=1.7, label=lab,
                marker="." if not c.periodic else None)
        if c.n_seeds > 1:
            ax.fill_between(c.steps[ok], (c.seen_mean - c.seen_std)[ok], (c.seen_mean + c.seen_std)[ok],
                            color=colors[i], alpha=0.15, linewidth=0)
    if curves:
        for b in curves[0].boundaries:
            ax.axvline(b, color="0.7", linestyle=":", linewidth=0.9)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training step (batches)")
    ax.set_ylabel("mean accuracy on tasks seen so far")
    ax.set_title("Accuracy along the stream", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.25)
    return Plot("curves_overlay.png", "overlaid accuracy curves", _png(fig))


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
    plots = [scatter_plot(labels, views), overlay_plot(labels, curves)]
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
        "<h2>Stability vs. plasticity</h2>", _img(plots[0]),
        "<h2>Accuracy along the stream</h2>", _img(plots[1]),
        "<h2>Runs</h2>", f"<ul>{sources}</ul>",
    ]
    html_path = out / "compare.html"
    html_path.write_text(_page("Comparison: " + ", ".join(labels), body), encoding="utf-8")

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
