"""``lifelong ledger check`` and ``lifelong ledger table``: the executable ledger of expected results.

The work is :mod:`lifelong.experiments.ledger`; this module prints its outcomes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lifelong.cli.common import err_console, out_console
from lifelong.errors import ConfigError
from lifelong.experiments.ledger import TIERS, check_order, find_suites, markdown_table, record, run_entry

app = typer.Typer(help="The executable ledger of expected results.", no_args_is_help=True)


@app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="a ledger file or directory")] = Path("ledger"),
    tier: Annotated[Optional[str], typer.Option(help="only this tier: fast, full or paper")] = None,
    only: Annotated[Optional[str], typer.Option(
        help="only the entries of these comma-separated learners or entry keys (e.g. naive,ewc or er[mem_size=200])")] = None,
    record_: Annotated[bool, typer.Option("--record", help="write the observed values back into the files")] = False,
) -> None:
    """Rerun ledger entries; exit 1 when a mean leaves its band or an ordering fails on a seed."""
    if tier is not None and tier not in TIERS:
        raise ConfigError(f"--tier must be one of {', '.join(TIERS)}, got {tier!r}")
    suites = find_suites(path, tier)
    console, progress = out_console(), err_console()
    table = Table(title=f"ledger check ({tier or 'all tiers'})")
    for col in ("entry", "expected ACC", "observed ACC", "expected forgetting", "forgetting", "s/seed", ""):
        table.add_column(col)
    failures, cache, order_lines = 0, {}, []
    for suite in suites:
        unmet = suite.unmet()
        if unmet:  # a paper-tier recipe on a machine without its data or an accelerator
            order_lines.append(escape(f"skipped {suite.name}: needs {' and '.join(unmet)}"))
            continue
        outcomes = {}
        for entry in suite.entries:
            if only and not entry.selected_by(only.split(",")):
                continue
            o = run_entry(entry, cache)
            outcomes[entry.label] = o
            failures += not o.passed
            expected_f = f"{entry.forgetting:.3f} ± {entry.forgetting_tol:.3f}" if entry.forgetting is not None else "-"
            table.add_row(escape(entry.label), f"{entry.acc:.3f} ± {entry.tol:.3f}", f"{o.acc:.3f} ± {o.acc_std:.3f}",
                          expected_f, f"{o.forgetting:.3f}", f"{o.wall_time_s:.1f}",
                          "[green]ok[/]" if o.passed else "[red]OUT OF BAND[/]")
            progress.print(escape(f"{entry.label}: ACC {o.acc:.4f}, forgetting {o.forgetting:.4f} "
                           f"({'ok' if o.passed else '; '.join(o.problems())})"), highlight=False)
        for order in suite.orders:  # an ordering is checked when both of its entries ran
            if all(suite.entry(ref).label in outcomes for ref in (order.better, order.worse)):
                result = check_order(suite, order, outcomes)
                failures += not result.passed
                order_lines.append(("[green]" if result.passed else "[red]") + escape(result.describe()) + "[/]")
        if record_ and outcomes:
            record(suite, list(outcomes.values()))
    console.print(table)
    for line in order_lines:
        console.print(line, highlight=False)
    if failures:
        console.print(f"[red]{failures} check{'' if failures == 1 else 's'} failed (bands or orderings)[/]")
        raise typer.Exit(1)


@app.command("table")
def table(path: Annotated[Path, typer.Argument(help="a ledger file or directory")] = Path("ledger")) -> None:
    """Print the ledger's expected and last observed values as Markdown."""
    for suite in find_suites(path):
        print(markdown_table(suite) + "\n")
