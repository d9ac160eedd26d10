"""Commands for reports and L2M logs: ``compare``, ``export``, ``import-l2logger`` and ``ste``.

:func:`register` adds them to the ``lifelong`` typer app (``lifelong/cli/__init__.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from lifelong.errors import ConfigError, DataError

console = Console(width=None if Console().is_terminal else 140)  # as lifelong.cli: no wrapping in logs


def compare_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="two or more run directories")],
    out: Annotated[Path, typer.Option(help="directory for compare.html, compare.md and the plots")] = Path("compare"),
) -> None:
    """Compare runs side by side: every metric (best marked), stability vs. plasticity, curves."""
    from lifelong.report import SHORT_LABELS, compare_runs, fmt

    result = compare_runs(run_dirs, out)
    table = Table(title="metrics (★ = best; mean ± std over seeds)")
    table.add_column("metric")
    for label in result.labels:
        table.add_column(label, justify="right")
    for j, (section, key) in enumerate(result.columns):
        cells = []
        for i in range(len(result.labels)):
            mean, std = result.values[i][j]
            text = fmt(mean, std, n_seeds=result.n_seeds[i])
            cells.append(f"[bold green]{text} ★[/]" if i in result.best[j] else text)
        table.add_row(("L2M " if section == "l2m" else "") + SHORT_LABELS.get(key, key), *cells)
    console.print(table)
    console.print(f"[bold]{result.verdict}[/]")
    console.print(f"wrote {result.html_path} and {result.md_path}")


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    l2logger: Annotated[Path, typer.Option("--l2logger", help="output directory for the l2logger (format 1.1) logs")],
    force: Annotated[bool, typer.Option("--force", help="replace existing log directories of the same name")] = False,
) -> None:
    """Export a run's log in the l2logger layout (one lifetime per seed; experts under ste/)."""
    from lifelong.data.lifetimes import export_l2logger

    if not (run_dir / "log.jsonl").is_file():
        raise ConfigError(f"{run_dir} has no log.jsonl; pass a directory written by `lifelong run`")
    for path in export_l2logger(run_dir, l2logger, overwrite=force):
        console.print(f"wrote {path}")
    console.print("score one with l2metrics: python -m l2metrics -l <directory above> -p performance -O OUT_DIR "
                  "(docs/metrics.md: storing the experts first)")


def import_command(
    log_dir: Annotated[Path, typer.Argument(help="an l2logger run directory (holds logger_info.json)")],
    ste: Annotated[Optional[list[Path]], typer.Option(help="l2logger log of a single-task expert (repeatable)")] = None,
    perf: Annotated[str, typer.Option("--perf", "-p", help="performance column to score")] = "performance",
    out: Annotated[Optional[Path], typer.Option(help="also write the metrics to this JSON file")] = None,
) -> None:
    """Score an l2logger log (from any system) with the L2M metrics."""
    from lifelong.evaluate.l2logger import read_l2logger
    from lifelong.evaluate.l2m import LIFETIME_METRICS, l2m_metrics

    rows = read_l2logger(log_dir)
    experts: dict[str, list] = {}
    for path in ste or []:
        ste_rows = read_l2logger(path)
        trained = sorted({r["task_name"] for r in ste_rows if r["block_type"] == "train"})
        if len(trained) != 1:
            raise DataError(f"{path}: an STE log trains exactly one task; it trains {trained}")
        experts.setdefault(trained[0], []).append(ste_rows)
    metrics = l2m_metrics(rows, ste=experts or None, perf_column=perf)
    table = Table(title=f"L2M metrics of {log_dir.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in LIFETIME_METRICS:
        v = metrics[key]
        table.add_row(key, "n/a" if isinstance(v, float) and math.isnan(v) else f"{v:.4f}")
    console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2, default=float) + "\n", encoding="utf-8")
        console.print(f"wrote {out}")


def ste_command(run_dir: Annotated[Path, typer.Argument(help="a run directory of an L2M lifetime")]) -> None:
    """Train the run's single-task experts now and rebuild its metrics with them."""
    from lifelong.experiments.config import load_config
    from lifelong.data.lifetimes import run_experts
    from lifelong.experiments.run import write_outputs

    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"{run_dir} has no config.toml; pass a directory written by `lifelong run`")
    paths = run_experts(load_config(run_dir / "config.toml"), run_dir)
    write_outputs(run_dir)
    console.print(f"trained {len(paths)} single-task experts under {run_dir / 'ste'}; rebuilt {run_dir}/metrics.json")


def register(app: typer.Typer) -> None:
    """Add ``compare``, ``export``, ``import-l2logger`` and ``ste`` to the ``lifelong`` typer app."""
    app.command("compare")(compare_command)
    app.command("export")(export_command)
    app.command("import-l2logger")(import_command)
    app.command("ste")(ste_command)
