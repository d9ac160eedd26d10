"""Commands for reports and L2M logs: ``report``, ``compare``, ``export``, ``import-l2logger`` and ``ste``.

The work is :mod:`lifelong.report`, :mod:`lifelong.evaluate` and :mod:`lifelong.experiments`;
these functions check their arguments and print what was written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lifelong.cli.common import out_console
from lifelong.errors import ConfigError
from lifelong.evaluate.l2logger import score_l2logger
from lifelong.evaluate.l2m import LIFETIME_METRICS
from lifelong.evaluate.lifetimes import export_l2logger
from lifelong.experiments.config import load_config
from lifelong.experiments.experts import run_experts
from lifelong.experiments.run import write_outputs
from lifelong.report import SHORT_LABELS, compare_runs, html_report
from lifelong.report.compare import table_csv, table_latex
from lifelong.report.view import fmt_interval

app = typer.Typer()


def _require(run_dir: Path, name: str) -> None:
    if not (run_dir / name).is_file():
        raise ConfigError(f"{run_dir} has no {name}; pass a directory written by `lifelong run`")


@app.command("report")
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")],
           reference: Annotated[Optional[Path], typer.Option(help="a cumulative/joint run for intransigence")] = None,
           html: Annotated[bool, typer.Option("--html", help="also write report.html and its PNG plots")] = False) -> None:
    """Rebuild metrics.json and report.md of a run from its log (and report.html with --html)."""
    _require(run_dir, "log.jsonl")
    console = out_console()
    write_outputs(run_dir, reference=reference)
    console.print((run_dir / "report.md").read_text())
    if html:
        console.print(f"wrote {html_report(run_dir)} (plots: accuracy_matrix.png, accuracy_curves.png)")


def _check_table_path(path: Path | None, what: str) -> None:
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"--{what} {path} is a directory; pass a file name such as {path / ('compare.' + ('tex' if what == 'latex' else what))}")
    if not path.parent.is_dir():
        raise ConfigError(f"--{what} {path}: the directory {path.parent} does not exist; create it or pick another path")


def _write_table(path: Path, text: str, what: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write --{what} {path} ({e.strerror or e}); pick a writable path") from None


@app.command("compare")
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="two or more run directories")],
    out: Annotated[Path, typer.Option(help="directory for compare.html, compare.md and the plots")] = Path("compare"),
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="also write the table as CSV to this file")] = None,
    latex_path: Annotated[Optional[Path], typer.Option("--latex", help="also write the table as a LaTeX tabular to this file")] = None,
) -> None:
    """Compare runs side by side: every metric (best marked), stability vs. plasticity, curves."""
    _check_table_path(csv_path, "csv")  # before any work, so a typo costs nothing
    _check_table_path(latex_path, "latex")
    result = compare_runs(run_dirs, out)
    table = Table(title="metrics (mean ± 95% t-interval over seeds; ★ = lead that survives the seeds)")
    table.add_column("metric")
    for label in result.labels:
        table.add_column(label, justify="right")
    for j, (section, key) in enumerate(result.columns):
        cells = []
        for i in range(len(result.labels)):
            mean, half = result.values[i][j]
            text = fmt_interval(mean, half)
            cells.append(f"[bold green]{text} ★[/]" if i in result.best[j] else text)
        table.add_row(("L2M " if section == "l2m" else "") + SHORT_LABELS.get(key, key), *cells)
    console = out_console()
    if result.banner:
        console.print(f"[bold yellow]{escape(result.banner)}[/]")
    console.print(table)
    console.print(f"[bold]{escape(result.verdict)}[/]")
    console.print(f"wrote {result.html_path} and {result.md_path}")
    if csv_path is not None:
        _write_table(csv_path, table_csv(result), "csv")
        console.print(f"wrote {csv_path}")
    if latex_path is not None:
        _write_table(latex_path, table_latex(result), "latex")
        console.print(f"wrote {latex_path}")


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    l2logger: Annotated[Path, typer.Option("--l2logger", help="output directory for the l2logger (format 1.1) logs")],
    force: Annotated[bool, typer.Option("--force", help="replace existing log directories of the same name")] = False,
) -> None:
    """Export a run's log in the l2logger layout (one lifetime per seed; experts under ste/)."""
    _require(run_dir, "log.jsonl")
    console = out_console()
    for path in export_l2logger(run_dir, l2logger, overwrite=force):
        console.print(f"wrote {path}")
    console.print("score one with l2metrics: python -m l2metrics -l <directory above> -p performance -O OUT_DIR "
                  "(docs/metrics.md: storing the experts first)")


@app.command("import-l2logger")
def import_l2logger(
    log_dir: Annotated[Path, typer.Argument(help="an l2logger run directory (holds logger_info.json)")],
    ste: Annotated[Optional[list[Path]], typer.Option(help="l2logger log of a single-task expert (repeatable)")] = None,
    perf: Annotated[str, typer.Option("--perf", "-p", help="performance column to score")] = "performance",
    out: Annotated[Optional[Path], typer.Option(help="also write the metrics to this JSON file")] = None,
) -> None:
    """Score an l2logger log (from any system) with the L2M metrics."""
    metrics = score_l2logger(log_dir, ste or (), perf_column=perf)
    table = Table(title=f"L2M metrics of {log_dir.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in LIFETIME_METRICS:
        v = metrics[key]
        table.add_row(key, "n/a" if isinstance(v, float) and math.isnan(v) else f"{v:.4f}")
    console = out_console()
    console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2, default=float) + "\n", encoding="utf-8")
        console.print(f"wrote {out}")


@app.command("ste")
def ste(run_dir: Annotated[Path, typer.Argument(help="a run directory of an L2M lifetime")]) -> None:
    """Train the run's single-task experts now and rebuild its metrics with them."""
    _require(run_dir, "config.toml")
    paths = run_experts(load_config(run_dir / "config.toml"), run_dir)
    write_outputs(run_dir)
    out_console().print(f"trained {len(paths)} single-task experts under {run_dir / 'ste'}; rebuilt {run_dir}/metrics.json")
