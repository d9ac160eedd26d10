"""``lifelong ledger check`` and ``lifelong ledger table``: the executable ledger of expected results.

The work is :mod:`lifelong.experiments.ledger`; this module prints its outcomes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from lifelong.cli.common import err_console, out_console
from lifelong.errors import ConfigError
from lifelong.experiments.ledger import find_suites, markdown_table, record, run_entry

app = typer.Typer(help="The executable ledger of expected results.", no_args_is_help=True)


@app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="a ledger file or directory")] = Path("ledger"),
    tier: Annotated[Optional[str], typer.Option(help="only this tier: fast or full")] = None,
    only: Annotated[Optional[str], typer.Option(help="only entries whose label contains this")] = None,
    record_: Annotated[bool, typer.Option("--record", help="write the observed values back into the files")] = False,
) -> None:
    """Rerun ledger entries; exit 1 when a mean final ACC leaves its band."""
    if tier is not None and tier not in ("fast", "full"):
        raise ConfigError(f"--tier must be 'fast' or 'full', got {tier!r}")
    suites = find_suites(path, tier)
    console, progress = out_console(), err_console()
    table = Table(title=f"ledger check ({tier or 'all tiers'})")
    for col in ("entry", "expected ACC", "observed ACC", "forgetting", "s/seed", ""):
        table.add_column(col)
    failures, cache = 0, {}
    for suite in suites:
        outcomes = []
        for entry in suite.entries:
            if only and only not in entry.label:
                continue
            o = run_entry(entry, cache)
            outcomes.append(o)
            failures += not o.passed
            table.add_row(entry.label, f"{entry.acc:.3f} ± {entry.tol:.3f}", f"{o.acc:.3f} ± {o.acc_std:.3f}",
                          f"{o.forgetting:.3f}", f"{o.wall_time_s:.1f}", "[green]ok[/]" if o.passed else "[red]OUT OF BAND[/]")
            progress.print(f"{entry.label}: {o.acc:.4f} ({'ok' if o.passed else 'out of band'})", highlight=False)
        if record_ and outcomes:
            record(suite, outcomes)
    console.print(table)
    if failures:
        console.print(f"[red]{failures} entr{'y' if failures == 1 else 'ies'} out of band[/]")
        raise typer.Exit(1)


@app.command("table")
def table(path: Annotated[Path, typer.Argument(help="a ledger file or directory")] = Path("ledger")) -> None:
    """Print the ledger's expected and last observed values as Markdown."""
    for suite in find_suites(path):
        print(markdown_table(suite) + "\n")
