"""``lifelong serve``: a model that learns while it serves, and never loses an acknowledged event.

- :mod:`~lifelong.serve.config`: ``serve.toml`` to a :class:`~lifelong.serve.config.ServeConfig`.
- :mod:`~lifelong.serve.eventlog`: the append-only SQLite event log and worker journal (the source of truth).
- :mod:`~lifelong.serve.snapshots`: atomic, checksummed snapshots of the full learner state.
- :mod:`~lifelong.serve.worker`: the single learner worker, deterministic replay, the published model.
- :mod:`~lifelong.serve.service`: all of that without HTTP (also used by ``--replay``), and the
  start-up checks of the data directory (log identity, integrity).
- :mod:`~lifelong.serve.lock`: one writer per data directory (``flock``).
- :mod:`~lifelong.serve.tokens`: scoped bearer tokens, re-read on change.
- :mod:`~lifelong.serve.guard`: connection limit and slow-client timeouts for uvicorn.
- :mod:`~lifelong.serve.app`: the FastAPI endpoints; :mod:`~lifelong.serve.dashboard`: the live
  page; :mod:`~lifelong.cli.serve`: the command.

Importing this package imports neither FastAPI nor uvicorn (they are the optional ``serve`` extra).
See docs/serve.md.
"""
