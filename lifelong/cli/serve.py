"""The ``lifelong serve`` command.

``lifelong serve --config serve.toml``
    restore the learner and serve HTTP on ``[serve] host:port`` (127.0.0.1 by default).
``lifelong serve --config serve.toml --replay events.jsonl [--curve curve.json]``
    feed a recorded stream of ``/feedback`` bodies through the same service code, then exit.
``lifelong serve --config serve.toml --verify``
    replay the whole log from scratch and check it reproduces the restored state bit for bit.

:func:`register` adds the command to the main typer app; ``python -m lifelong.serve --config ...`` runs it alone.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lifelong.errors import ConfigError, LifelongError


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def serve(
    config: Annotated[Path, typer.Option("--config", help="service config (TOML); see docs/serve.md")] = Path("serve.toml"),
    replay: Annotated[Optional[Path], typer.Option("--replay", help="import a JSONL file of /feedback bodies, then exit")] = None,
    curve: Annotated[Optional[Path], typer.Option("--curve", help="with --replay: write per-event online correctness (JSON)")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="check that replaying the log from scratch gives the restored state")] = False,
    host: Annotated[Optional[str], typer.Option(help="override serve.host from the config")] = None,
    port: Annotated[Optional[int], typer.Option(help="override serve.port from the config")] = None,
) -> None:
    """Serve a learner over HTTP that learns from feedback while it serves (or --replay a stream)."""
    import dataclasses

    from lifelong.serve.config import load_serve_config

    cfg = load_serve_config(config)
    if host is not None or port is not None:
        cfg = dataclasses.replace(cfg, host=host or cfg.host, port=cfg.port if port is None else port)
    _setup_logging()
    if verify:
        _verify(cfg)
        return
    from lifelong.serve.service import Service, load_replay
    from lifelong.serve.service import replay as replay_stream

    if replay is not None:
        feedbacks = load_replay(replay, cfg)  # the whole file is validated before anything is logged
        # the replay waits for each body to be applied: no point lingering for a fuller batch
        service = Service(dataclasses.replace(cfg, linger_ms=0.0))
        service.start()
        try:
            summary = replay_stream(service, feedbacks, curve=curve)
        finally:
            service.stop()
        typer.echo(json.dumps(summary, indent=2))
        return
    try:
        import uvicorn

        from lifelong.serve.app import create_app
    except ImportError as e:
        raise ConfigError(f"`lifelong serve` needs the serve extra ({e.name} is missing): pip install 'lifelong[serve]'") from None
    cfg.require_token()
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("lifelong.serve").warning(
            "binding to %s: the API is reachable from other machines; put a TLS-terminating proxy in front", cfg.host)
    # The worker thread and the event loop share the GIL; a 1 ms switch interval (default 5 ms)
    # bounds how long a request waits for it while the worker runs Python between torch ops.
    sys.setswitchinterval(0.001)
    service = Service(cfg)
    service.start()  # restore before the port opens: the first request already sees the restored model
    try:
        app = create_app(service, manage=False)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info", access_log=cfg.access_log,
                    timeout_graceful_shutdown=10)
    finally:
        service.stop()


def _verify(cfg) -> None:
    from lifelong.serve.eventlog import EventLog
    from lifelong.serve.snapshots import SnapshotStore
    from lifelong.serve.worker import Replayer, state_digest

    if not (cfg.data_dir / "events.sqlite").is_file():
        raise ConfigError(f"{cfg.data_dir} holds no event log; nothing to verify")
    log = EventLog(cfg.data_dir / "events.sqlite", input_dim=cfg.input_dim, n_classes=cfg.n_classes,
                   fingerprint=cfg.fingerprint())
    try:
        store = SnapshotStore(cfg.data_dir / "snapshots", fingerprint=cfg.fingerprint(), keep=cfg.keep_snapshots)
        step = log.last_step()
        restored, info = Replayer(cfg, log, store).state_at(step)
        scratch, _ = Replayer(cfg, log, None).state_at(step)
    finally:
        log.close()
    a, b = state_digest(restored.state_dict()), state_digest(scratch.state_dict())
    src = info.path.name if info else "scratch"
    typer.echo(f"journal step {step}: restored from {src} {a[:16]}, replayed from scratch {b[:16]}")
    if a != b:
        raise LifelongError("the restored state differs from a replay from scratch; keep this data directory for a bug report")
    typer.echo("ok: identical")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to a typer app (the main ``lifelong`` app calls this)."""
    app.command("serve")(serve)


def main(argv: list[str] | None = None) -> None:
    """``python -m lifelong.serve``: the serve command alone, with the CLI's error handling."""
    from lifelong.cli import run_app

    app = typer.Typer(add_completion=False)
    register(app)
    run_app(app, argv)
