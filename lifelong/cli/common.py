"""What every command shares: the error contract (:func:`run_app`) and the consoles.

Consoles are built when a command runs, never at import: whether stdout is a terminal is decided
then, and importing :mod:`lifelong.cli` has no side effect.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from typer.exceptions import TyperException

from lifelong.errors import LifelongError


def out_console() -> Console:
    """Standard output; 140 columns when it is not a terminal, so tables in logs do not wrap."""
    return Console(width=None if Console().is_terminal else 140)


def err_console() -> Console:
    """Standard error: progress bars and per-run lines."""
    return Console(stderr=True)


def run_app(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run a typer app with lifelong's error contract: one line on stderr and exit 2 for user errors.

    Parameters
    ----------
    app : typer.Typer
        The ``lifelong`` app, or a single command's (``python -m lifelong.serve``).
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).
    """
    try:
        code = app(args=argv, standalone_mode=False)  # without standalone mode, typer.Exit(n) returns n
    except LifelongError as e:
        print(f"error: {e}", file=sys.stderr)  # one unwrapped line, whatever the terminal width
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: typer prints them like click does
        e.show() if hasattr(e, "show") else err_console().print(f"error: {e}")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console().print("interrupted; a run continues with `lifelong run --resume RUN_DIR`, a sweep with --resume")
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
