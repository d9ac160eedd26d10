"""The ``lifelong`` command line: one module per command group, none with logic of its own.

============================================  ==============================================
command                                       module (the work it calls)
============================================  ==============================================
``run``, ``list``                             :mod:`lifelong.cli.run` (experiments.run, .demo)
``report``, ``compare``, ``export``,          :mod:`lifelong.cli.report` (report, evaluate,
``import-l2logger``, ``ste``                  experiments.experts)
``sweep``, ``tune``                           :mod:`lifelong.cli.sweep` (experiments.sweep, .tune)
``serve``                                     :mod:`lifelong.cli.serve` (serve.launch)
``ledger check``, ``ledger table``            :mod:`lifelong.cli.ledger` (experiments.ledger)
============================================  ==============================================

A command's module is imported when the command runs, not before: ``lifelong --help`` lists the
commands from :data:`COMMANDS` without importing torch, the learners or FastAPI. Every user error is
printed as one sentence on stderr, with no traceback, and exits with status 2
(:func:`lifelong.cli.common.run_app`).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click
import typer
from typer.core import TyperGroup

from lifelong.cli.common import run_app
from lifelong.errors import ConfigError


class Command(NamedTuple):
    """Where a command lives: its module, its name there (``None``: the module's whole group), its
    one-line help for ``lifelong --help``, and the extra that provides its optional dependencies."""

    module: str
    name: str | None
    help: str
    extra: str | None = None


#: Every command, in the order ``lifelong --help`` lists them. tests/test_cli.py checks each help
#: line against the command's own docstring.
COMMANDS = {
    "run": Command("lifelong.cli.run", "run",
            "Run a continual-learning experiment; with no config, compare Naive, ER and CLS-ER (and Joint)."),
    "report": Command("lifelong.cli.report", "report",
            "Rebuild metrics.json and report.md of a run from its log (and report.html with --html)."),
    "list": Command("lifelong.cli.run", "list",
            "Show the datasets, scenarios and learners (plugins' included), one line each."),
    "ledger": Command("lifelong.cli.ledger", None,
            "The executable ledger of expected results."),
    "compare": Command("lifelong.cli.report", "compare",
            "Compare runs side by side: every metric (best marked), stability vs. plasticity, curves."),
    "export": Command("lifelong.cli.report", "export",
            "Export a run's log in the l2logger layout (one lifetime per seed; experts under ste/)."),
    "import-l2logger": Command("lifelong.cli.report", "import-l2logger",
            "Score an l2logger log (from any system) with the L2M metrics."),
    "ste": Command("lifelong.cli.report", "ste",
            "Train the run's single-task experts now and rebuild its metrics with them."),
    "sweep": Command("lifelong.cli.sweep", "sweep",
            "Run a grid of experiments (axes × seeds) on Ray or locally; write a mean ± std table per cell.", "sweep"),
    "tune": Command("lifelong.cli.sweep", "tune",
            "Search hyper-parameters with Ray Tune (random search or ASHA), then evaluate the choice on the full stream.", "sweep"),
    "serve": Command("lifelong.cli.serve", "serve",
            "Serve a learner over HTTP that learns from feedback while it serves (or --replay a stream).", "serve"),
}


def load_command(name: str) -> click.Command:
    """Import a command's module and return its click command.

    Raises
    ------
    ConfigError
        If a third-party package the module needs is missing (the message names the extra).
    """
    entry = COMMANDS[name]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as e:
        if e.name is None or e.name.split(".")[0] == "lifelong" or entry.extra is None:
            raise
        raise ConfigError(f"`lifelong {name}` needs the {entry.extra} extra ({e.name} is missing): "
                          f"pip install 'lifelong[{entry.extra}]'") from None
    group = typer.main.get_group(module.app)
    if entry.name is None:
        group.name = name
        return group
    return group.commands[entry.name]


class LazyGroup(TyperGroup):
    """A typer group whose commands are imported when one is run (click's lazy-loading pattern).

    ``lifelong --help`` shows placeholders that carry the one-line help from :data:`COMMANDS`;
    resolving a command for a run (or its own ``--help``) loads the real one.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name, entry in COMMANDS.items():
            self.commands[name] = click.Command(name, help=entry.help, short_help=entry.help)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if name in COMMANDS:
            cmd = load_command(name)
        return name, cmd, rest


app = typer.Typer(cls=LazyGroup, add_completion=False, no_args_is_help=True, help="lifelong: models that keep learning.")


@app.callback()
def _main() -> None:
    """lifelong: models that keep learning."""


def main(argv: list[str] | None = None) -> None:
    """The ``lifelong`` command (``pyproject.toml`` ``[project.scripts]``)."""
    run_app(app, argv)


__all__ = ["COMMANDS", "Command", "LazyGroup", "app", "load_command", "main", "run_app"]
