"""The three ways ``lifelong serve`` runs a service: over HTTP, replaying a recorded stream, or verifying the log.

:func:`serve_http`
    restore the learner and serve HTTP on ``[serve] host:port`` until interrupted.
:func:`replay_file`
    feed a JSONL file of ``/feedback`` bodies through the same service code, then stop.
:func:`verify`
    replay the whole log from scratch and check it reproduces the restored state bit for bit.

FastAPI and uvicorn (the ``serve`` extra) are needed by :func:`serve_http` only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError
from lifelong.serve.config import ServeConfig
from lifelong.serve.guard import guarded_protocol
from lifelong.serve.lock import DataDirLock
from lifelong.serve.service import Service, load_replay, open_data_dir, replay, set_threads
from lifelong.serve.worker import Replayer, state_digest

try:  # the HTTP app needs the optional serve extra; replay and verify do not
    from lifelong.serve.app import create_app
except ImportError as _e:  # pragma: no cover - exercised only without the extra installed
    create_app = None
    _MISSING = _e.name
else:
    _MISSING = None


def setup_logging() -> None:
    """Service logs to stderr, one line each, with a timestamp."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def serve_http(cfg: ServeConfig, *, accept_config_change: bool = False) -> None:
    """Restore the learner, then serve the HTTP API on ``cfg.host:cfg.port`` until interrupted.

    Raises
    ------
    ConfigError
        If FastAPI or uvicorn is missing, or the config has no token.
    """
    try:
        import uvicorn
    except ImportError as e:
        raise ConfigError(f"`lifelong serve` needs the serve extra ({e.name} is missing): pip install 'lifelong[serve]'") from None
    if create_app is None:
        raise ConfigError(f"`lifelong serve` needs the serve extra ({_MISSING} is missing): pip install 'lifelong[serve]'")
    cfg.require_token()
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("lifelong.serve").warning(
            "binding to %s: the API is reachable from other machines; put a TLS-terminating proxy in front", cfg.host)
    # The worker thread and the event loop share the GIL; a 1 ms switch interval (default 5 ms)
    # bounds how long a request waits for it while the worker runs Python between torch ops.
    sys.setswitchinterval(0.001)
    service = Service(cfg, accept_config_change=accept_config_change)
    service.start()  # restore before the port opens: the first request already sees the restored model
    try:
        app = create_app(service, manage=False)
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        http = guarded_protocol(AutoHTTPProtocol, max_connections=cfg.max_connections,
                                header_timeout=cfg.header_timeout, body_timeout=cfg.body_timeout)
        freeze_startup_heap()
        config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="info", access_log=cfg.access_log,
                                http=http, limit_concurrency=cfg.max_connections + 1,
                                timeout_keep_alive=max(1, round(cfg.header_timeout)),
                                timeout_graceful_shutdown=max(1, round(cfg.stop_timeout / 2)))
        run_until_signal(config)
    finally:
        # SIGTERM and SIGINT end up here alike: uvicorn has drained in-flight requests; the worker
        # now applies what is committed, writes a final snapshot, and the log is closed
        service.stop(drain=cfg.stop_timeout / 2)


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive now (imported modules, the restored learner, the
    app: some 400,000 objects) out of the cyclic collector's reach (:func:`gc.freeze`).

    Without it, each full collection walks them all while holding the GIL: about 200 ms of CPU
    on the 2-core benchmark machine, during which no request is answered. Objects created later
    are collected as usual. Returns the number of frozen objects (``lifelong_serve_gc_frozen_objects``).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def run_until_signal(config) -> None:
    """Run uvicorn's server until SIGTERM or SIGINT, which only ask it to shut down gracefully.

    Plain ``uvicorn.run`` re-raises a captured signal once it has shut down, which kills the
    process before the service's own shutdown (final snapshot, closing the log) can run.
    """
    import uvicorn

    class CleanStopServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    CleanStopServer(config).run()


def replay_file(cfg: ServeConfig, path: Path, *, curve: Path | None = None,
                accept_config_change: bool = False) -> dict[str, Any]:
    """Apply every ``/feedback`` body of a JSONL file in order; returns the replay's summary.

    The whole file is validated before anything is logged.
    """
    feedbacks = load_replay(path, cfg)
    # the replay waits for each body to be applied: no point lingering for a fuller batch
    service = Service(dataclasses.replace(cfg, linger_ms=0.0), accept_config_change=accept_config_change)
    service.start()
    try:
        return replay(service, feedbacks, curve=curve)
    finally:
        service.stop()


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`: the journal step and the two state digests."""

    step: int
    source: str  # the snapshot file the restore started from, or "scratch"
    restored: str
    scratch: str

    @property
    def identical(self) -> bool:
        return self.restored == self.scratch


def verify(cfg: ServeConfig, *, accept_config_change: bool = False) -> Verification:
    """Restore the state at the journal's last step (from snapshots) and replay it from scratch,
    after a full ``PRAGMA integrity_check`` of the log.

    Raises
    ------
    ConfigError
        If the data directory holds no event log.
    """
    if not (cfg.data_dir / "events.sqlite").is_file():
        raise ConfigError(f"{cfg.data_dir} holds no event log; nothing to verify")
    set_threads(cfg)  # the configured arithmetic, whatever this machine's default thread count
    lock = DataDirLock(cfg.data_dir)
    try:
        log, store = open_data_dir(cfg, check="full", accept_config_change=accept_config_change)
    except BaseException:
        lock.release()
        raise
    try:
        log.check_rows()  # every event's CRC-32, beyond SQLite's own integrity_check
        step = log.last_step()
        restored, info = Replayer(cfg, log, store).state_at(step)
        scratch, _ = Replayer(cfg, log, None).state_at(step)
    finally:
        log.close()
        lock.release()
    return Verification(step, info.path.name if info else "scratch",
                        state_digest(restored.state_dict()), state_digest(scratch.state_dict()))


__all__ = ["Verification", "freeze_startup_heap", "replay_file", "serve_http", "setup_logging", "verify"]
