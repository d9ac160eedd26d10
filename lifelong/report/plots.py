"""The report's PNG plots: pure functions from metrics and curves to :class:`Plot` (PNG bytes).

matplotlib is drawn through its Agg canvas directly (no pyplot, so no global figure state), and is
imported only inside the functions that draw: importing the report costs no matplotlib.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelong.evaluate.curves import Curves


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


def scatter_plot(labels: Sequence[str], xs: Sequence[tuple[float, float]], ys: Sequence[tuple[float, float]],
                 xlabel: str, ylabel: str) -> Plot:
    """Stability against plasticity, one point (mean, with ± std error bars) per run.

    ``xs[i]`` and ``ys[i]`` are run i's (mean, std); runs with a NaN mean are left out.
    """
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    colors = _colors(len(labels))
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



def task_series_plot(panels: Sequence[tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]], name: str,
                     xlabel: str = "task") -> Plot:
    """Side-by-side panels of per-task series, one line (mean, with a ± std band) per variant.

    ``panels[k]`` is ``(title, {variant: (mean, std)})``, each array of length ``T`` (one value per
    task, plotted at tasks ``1..T``). The plasticity benchmark draws new-task accuracy, the dormant
    fraction and the effective rank this way.
    """
    fig = _figure(4.6 * max(len(panels), 1), 3.8)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, (title, series) in zip(axes, panels):
        colors = _colors(len(series))
        for i, (label, (mean, std)) in enumerate(series.items()):
            xs = np.arange(1, len(mean) + 1)
            ax.plot(xs, mean, color=colors[i], linewidth=1.4, label=label)
            ax.fill_between(xs, mean - std, mean + std, color=colors[i], alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.25)
    if panels:
        axes[0].legend(fontsize=8, loc="best", frameon=False)
    return Plot(name, ", ".join(t for t, _ in panels), _png(fig))
