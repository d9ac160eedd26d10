"""The ``lifelong serve`` command.

``lifelong serve --config serve.toml``
    restore the learner and serve HTTP on ``[serve] host:port`` (127.0.0.1 by default).
``lifelong serve --config serve.toml --replay events.jsonl [--curve curve.json]``
    feed a recorded stream of ``/feedback`` bodies through the same service code, then exit.
``lifelong serve --config serve.toml --verify``
    replay the whole log from scratch and check it reproduces the restored state bit for bit.

The work is :mod:`lifelong.serve.launch`. ``python -m lifelong.serve --config ...`` runs this command
alone (:func:`main`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from lifelong.cli.common import run_app
from lifelong.errors import LifelongError
from lifelong.serve.config import load_serve_config
from lifelong.serve.launch import replay_file, serve_http, setup_logging, verify

app = typer.Typer()


@app.command("serve")
def serve(
    config: Annotated[Path, typer.Option("--config", help="service config (TOML); see docs/serve.md")] = Path("serve.toml"),
    replay: Annotated[Optional[Path], typer.Option("--replay", help="import a JSONL file of /feedback bodies, then exit")] = None,
    curve: Annotated[Optional[Path], typer.Option("--curve", help="with --replay: write per-event online correctness (JSON)")] = None,
    verify_: Annotated[bool, typer.Option("--verify", help="check that replaying the log from scratch gives the restored state")] = False,
    host: Annotated[Optional[str], typer.Option(help="override serve.host from the config")] = None,
    port: Annotated[Optional[int], typer.Option(help="override serve.port from the config")] = None,
    accept_config_change: Annotated[bool, typer.Option(
        "--accept-config-change", help="accept a learner/model/threads change for an existing data_dir "
                                       "(the learner is replayed from the log under the new config)")] = False,
) -> None:
    """Serve a learner over HTTP that learns from feedback while it serves (or --replay a stream)."""
    cfg = load_serve_config(config)
    if host is not None or port is not None:
        cfg = dataclasses.replace(cfg, host=host or cfg.host, port=cfg.port if port is None else port)
    setup_logging()
    if verify_:
        v = verify(cfg, accept_config_change=accept_config_change)
        typer.echo(f"journal step {v.step}: restored from {v.source} {v.restored[:16]}, replayed from scratch {v.scratch[:16]}")
        if not v.identical:
            raise LifelongError("the restored state differs from a replay from scratch; keep this data directory for a bug report")
        typer.echo("ok: identical")
        return
    if replay is not None:
        typer.echo(json.dumps(replay_file(cfg, replay, curve=curve, accept_config_change=accept_config_change), indent=2))
        return
    serve_http(cfg, accept_config_change=accept_config_change)


def main(argv: list[str] | None = None) -> None:
    """``python -m lifelong.serve``: the serve command alone, with the CLI's error handling."""
    run_app(app, argv)
