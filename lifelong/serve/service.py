"""The service without HTTP: event log + learner worker + published model + metrics.

:class:`Service` is what both ``lifelong serve`` (through :mod:`lifelong.serve.app`) and
``lifelong serve --replay`` (through :func:`replay`) drive, so an offline replay goes through
exactly the code path that live feedback takes.

Examples
--------
>>> import tempfile, numpy as np
>>> from lifelong.serve.config import config_from_dict
>>> cfg = config_from_dict({"learner": {"name": "naive"}, "model": {"input_shape": [3], "n_classes": 2, "hidden": [8]},
...                         "serve": {"data_dir": tempfile.mkdtemp(), "drift_delta": 0}})
>>> svc = Service(cfg, threads=False)
>>> svc.start()
>>> out = svc.feedback(parse_feedback({"inputs": [[0, 1, 2]], "labels": [1]}, cfg))
>>> out["seqs"], svc.worker.wait_published(1, timeout=10)
([1], True)
>>> svc.stop()
"""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifelong.errors import CheckpointError, DataError
from lifelong.serve.config import ServeConfig
from lifelong.serve.eventlog import AppendResult, EventConflict, EventLog, describe_sqlite_error
from lifelong.serve.guard import COUNTS as CONNECTIONS
from lifelong.serve.lock import DataDirLock
from lifelong.serve.metrics import Registry
from lifelong.serve.snapshots import SnapshotStore
from lifelong.serve.validation import Feedback, RequestError, parse_feedback, parse_json
from lifelong.serve.worker import PublishedModel, Worker, to_batch
from lifelong.serve.config import build_learner

log = logging.getLogger("lifelong.serve")
#: rows of the flip sample the served copy scores per hold of the serving lock
FLIP_CHUNK = 32


class Service:
    """One learner behind a durable log.

    Parameters
    ----------
    cfg
        the service config; ``cfg.data_dir`` holds ``events.sqlite`` and ``snapshots/``.
    threads
        if true, set torch's intra-op threads to ``cfg.threads`` (a process-wide setting: the CLI
        does, tests and notebooks need not).
    """

    def __init__(self, cfg: ServeConfig, *, threads: bool = True, check: str = "quick",
                 accept_config_change: bool = False) -> None:
        self.cfg = cfg
        if threads:
            set_threads(cfg)
        try:
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CheckpointError(f"cannot create the data directory {cfg.data_dir}: {e}") from None
        build_learner(cfg)  # fail fast on a bad learner/model config, before any file is written
        self.metrics = Registry()
        m = self.metrics
        self.received = m.counter("lifelong_serve_events_received_total", "feedback events newly logged by this process")
        self.duplicates = m.counter("lifelong_serve_events_duplicate_total", "feedback events re-sent with a logged event_id")
        self.applied = m.counter("lifelong_serve_events_applied_total", "events applied by the learner worker in this process")
        self.rejected = m.counter("lifelong_serve_requests_rejected_total", "requests refused with a 4xx or 503, by status")
        self.internal_errors = m.counter("lifelong_serve_internal_errors_total",
                                         "requests that failed unexpectedly and were answered 503, by path")
        self.predictions = m.counter("lifelong_serve_predictions_total", "rows predicted")
        self.drift_alarms = m.counter("lifelong_serve_drift_alarms_total", "drift alarms raised by the ADWIN detector")
        self.predict_latency = m.histogram("lifelong_serve_predict_latency_seconds", "time to answer /predict (server side)")
        self.ack_latency = m.histogram("lifelong_serve_feedback_ack_seconds", "time to acknowledge /feedback, durable commit included")
        self.apply_lag = m.histogram("lifelong_serve_apply_lag_seconds", "time from an event's commit to its application by the worker")
        m.gauge("lifelong_serve_events_logged", "last sequence number in the event log", lambda: self.log.last_seq)
        m.gauge("lifelong_serve_events_applied", "last sequence number consumed by the learner worker", lambda: self.worker.cursor)
        m.gauge("lifelong_serve_events_pending", "logged events the worker has not applied yet",
                lambda: max(0, self.log.last_seq - self.worker.cursor))
        m.gauge("lifelong_serve_published_seq", "last sequence number included in the served model", lambda: self.published.seq)
        m.gauge("lifelong_serve_online_accuracy", "accuracy of the served model on the last feedback events, before learning them",
                self.online_accuracy)
        m.gauge("lifelong_serve_online_accuracy_events", "feedback events in the online accuracy window", lambda: len(self._online))
        m.gauge("lifelong_serve_last_snapshot_seq", "sequence number of the newest snapshot",
                lambda: self.worker.snapshot.seq if self.worker.snapshot else 0)
        m.gauge("lifelong_serve_worker_up", "1 while the learner worker runs", lambda: float(self.worker.running))
        m.gauge("lifelong_serve_connections_refused", "connections closed at once: over [serve] max_connections",
                lambda: CONNECTIONS["refused"])
        m.gauge("lifelong_serve_connections_timed_out", "connections closed for a slow request head or a stalled body",
                lambda: CONNECTIONS["header_timeout"] + CONNECTIONS["body_timeout"])
        self.io_errors = m.counter("lifelong_serve_io_errors_total",
                                   "transient I/O errors in journal and snapshot writes (retried with backoff), by op")
        m.gauge("lifelong_serve_append_errors", "event-log group commits that failed (their requests got 503)",
                lambda: self.log.append_errors)
        m.gauge("lifelong_serve_io_faults", "kinds of writes failing right now (journal, snapshot, append); 0 when healthy",
                lambda: len(self.faults()))

        self.published = PublishedModel(lambda: build_learner(cfg))
        self.worker: Worker = None  # type: ignore[assignment]  # set below; the log needs its notify
        self.lock = DataDirLock(cfg.data_dir)  # one writer: a second process is refused here
        try:
            self.log, self.store = open_data_dir(cfg, on_commit=lambda s: self.worker.notify(s), check=check,
                                                 accept_config_change=accept_config_change)
        except BaseException:
            self.lock.release()
            raise
        self.worker = Worker(cfg, self.log, self.store, self.published, on_applied=self._on_applied,
                             on_drift=self._on_drift)
        self.worker.on_io_error = lambda op: self.io_errors.inc(op=op)
        self.worker.gate = self._gate if cfg.flip_sample else None
        self.worker.on_promote = self._on_promote if cfg.flip_sample else None
        self.worker.on_scored = self._on_scored
        self._history: deque[tuple[float, float | None, int]] = deque(maxlen=3600)  # (time, accuracy, applied)
        self._drift_times: deque[tuple[float, int]] = deque(maxlen=100)
        self._recent: deque[tuple[np.ndarray, int]] = deque(maxlen=cfg.flip_sample)  # for the flip rate
        self._flip_x: torch.Tensor | None = None
        self._flip_y: torch.Tensor | None = None
        self._flip_refresh_at = 0.0
        self._flip_scored_at = float("-inf")  # when the metric-only flip rate was last taken
        self.flip_rate = float("nan")
        self.flip_sample_rows = 0
        self.refused_flip_rate = float("nan")  # of the last refused publish
        m.gauge("lifelong_serve_negative_flip_rate",
                "at the last publish (or refused publish): share of the flip sample the served model got right and "
                "the new one gets wrong", lambda: self.flip_rate)
        m.gauge("lifelong_serve_flip_sample_rows", "rows in the flip sample at the last publish (held-back events "
                "when [serve] holdout_every is set)", lambda: self.flip_sample_rows)
        self.publish_refused = m.counter("lifelong_serve_publish_refused_total",
                                         "publishes refused: negative flip rate over [serve] max_flip_rate")
        m.gauge("lifelong_serve_publish_pinned", "1 while a fixed state is served (shadow mode, or a publish refused)",
                lambda: float(self.worker.served is not None))
        m.gauge("lifelong_serve_shadow", "1 in shadow mode: the learning model is scored, the promoted one served",
                lambda: float(self.worker.shadow))
        m.gauge("lifelong_serve_shadow_online_accuracy", "accuracy of the learning (shadow) model on the last applied "
                "events, before learning them", self.shadow_accuracy)
        m.gauge("lifelong_serve_frozen", "1 while learning is frozen (POST /freeze); serving goes on",
                lambda: float(self.worker.frozen))
        m.gauge("lifelong_serve_gc_frozen_objects", "objects moved out of the cyclic garbage collector's reach at "
                "start (gc.freeze), so a full collection does not walk them", gc.get_freeze_count)
        self._online: deque[int] = deque(maxlen=cfg.accuracy_window)
        self._shadow_online: deque[int] = deque(maxlen=cfg.accuracy_window)
        self._online_lock = threading.Lock()
        self._pred_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pred_lock = threading.Lock()
        self.started = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Restore the learner (newest valid snapshot + journal replay) and start the worker."""
        t0 = time.perf_counter()
        try:
            self.worker.start()
        except BaseException as e:
            self.log.close()
            self.lock.release()
            if isinstance(e, (OSError, sqlite3.Error)):
                why = describe_sqlite_error(self.log.path, e) if isinstance(e, sqlite3.Error) else e
                raise CheckpointError(f"cannot restore the learner from {self.cfg.data_dir}: {why}") from None
            raise
        src = self.worker.restored_from
        log.info("restored learner at seq %d from %s in %.2fs", self.worker.cursor,
                 f"snapshot {src.path.name}" if src else "scratch", time.perf_counter() - t0)
        self.started = True

    def stop(self, *, snapshot: bool = True, drain: float = 0.0) -> None:
        """Stop the worker (applying committed events for up to ``drain`` seconds, then writing a
        final snapshot), close the log, release the data directory. Idempotent."""
        if self.started:
            if not self.worker.stop(snapshot=snapshot, drain=drain):
                log.warning("the learner worker did not stop in time; what it had not applied is applied after "
                            "the next start")
            snap = self.worker.snapshot
            log.info("stopped: applied seq %d of %d logged; last snapshot %s", self.worker.cursor, self.log.last_seq,
                     snap.path.name if snap else "none")
        self.log.close()
        self.lock.release()
        if self.started:
            log.info("event log closed")
        self.started = False

    # -- predict ---------------------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> dict[str, Any]:
        """Probabilities and labels of the published model for ``x`` ``(B, D)``."""
        xt = torch.from_numpy(x).reshape(len(x), *self.cfg.input_shape)
        logits, seq = self.published.predict(xt)
        probs = torch.softmax(logits.float(), dim=1)
        labels = probs.argmax(1).numpy()
        pid = uuid.uuid4().hex
        if self.cfg.prediction_cache:
            with self._pred_lock:
                self._pred_cache[pid] = labels
                while len(self._pred_cache) > self.cfg.prediction_cache:
                    self._pred_cache.popitem(last=False)
        self.predictions.inc(len(x))
        return {"prediction_id": pid, "labels": labels.tolist(),
                "probabilities": np.round(probs.numpy().astype(np.float64), 6).tolist(), "model_seq": seq}

    # -- feedback --------------------------------------------------------------------------------
    def prepare(self, fb: Feedback) -> np.ndarray:
        """Checks that need service state, run before logging; returns the served labels ``(n,)``.

        These are the labels of the earlier ``/predict`` call named by ``prediction_id`` if it is
        still cached, else the published model's prediction *now*, before the rows are logged, so
        that the online accuracy always scores a model that has not learned them yet.
        """
        earlier = None
        if fb.prediction_id is not None:
            with self._pred_lock:
                earlier = self._pred_cache.get(fb.prediction_id)
            if earlier is not None and len(earlier) != len(fb.y):
                raise RequestError(422, f"prediction {fb.prediction_id} had {len(earlier)} rows but the feedback has "
                                        f"{len(fb.y)}; send feedback for the same rows, in the same order")
        if earlier is None:
            x = torch.from_numpy(fb.x).reshape(len(fb.y), *self.cfg.input_shape)
            earlier = self.published.predict(x)[0].argmax(1).numpy()
        return earlier

    def submit(self, fb: Feedback) -> Future:
        """Queue ``fb`` for the next durable group commit (the future gives an :class:`AppendResult`)."""
        return self.log.submit(fb.x, fb.y, event_ids=fb.event_ids, prediction_id=fb.prediction_id)

    def after_commit(self, fb: Feedback, res: AppendResult, served: np.ndarray) -> dict[str, Any]:
        """Online accuracy and the fast path for the newly logged rows; the response body.

        ``served`` is what :meth:`prepare` returned. Rows that were already logged (retries with a
        known event id) count for neither.
        """
        new = torch.tensor(res.new, dtype=torch.bool)
        n_new = int(new.sum())
        correct: list[int] = []
        if n_new:
            x = torch.from_numpy(fb.x)[new]
            y = torch.from_numpy(fb.y)[new]
            correct = (torch.from_numpy(served)[new] == y).int().tolist()
            with self._online_lock:
                self._online.extend(correct)
            seqs = torch.tensor(res.seqs, dtype=torch.int64)[new]
            if not self.worker.frozen:  # frozen: the served model does not change, not even its memory
                self.published.fast_update(seqs, to_batch(self.cfg, x, y))  # (nor when pinned: shadow, guard)
            if self.cfg.flip_sample and not self.cfg.holdout_every:
                with self._online_lock:
                    self._recent.extend(zip(x.numpy(), y.tolist()))
        self.received.inc(n_new)
        self.duplicates.inc(len(res.seqs) - n_new)
        return {"seqs": res.seqs, "duplicates": len(res.seqs) - n_new, "published_seq": self.published.seq,
                "correct": correct}

    def feedback(self, fb: Feedback) -> dict[str, Any]:
        """Validate against service state, log durably, then update the fast path (blocking)."""
        served = self.prepare(fb)
        try:
            res = self.submit(fb).result()
        except EventConflict as e:
            raise RequestError(409, str(e)) from None
        return self.after_commit(fb, res, served)

    # -- state -----------------------------------------------------------------------------------
    def online_accuracy(self) -> float:
        with self._online_lock:
            return sum(self._online) / len(self._online) if self._online else float("nan")

    def shadow_accuracy(self) -> float:
        with self._online_lock:
            return sum(self._shadow_online) / len(self._shadow_online) if self._shadow_online else float("nan")

    def _on_scored(self, wrong: list[bool]) -> None:
        with self._online_lock:
            self._shadow_online.extend(0 if w else 1 for w in wrong)

    def flip_sample(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rows that score a publish: with ``holdout_every = k``, the held-back events (``seq % k ==
        0``) that no model has learned yet, read from the log (so they survive a restart); else the
        last ``flip_sample`` feedback rows (refreshed at most once a second; these are learned too)."""
        cfg = self.cfg
        if cfg.holdout_every:
            w = self.worker
            lo = max(w.cursor - cfg.holdout_every * cfg.flip_sample + 1, w.floor + 1)
            _, x, y, _ = self.log.read_held(lo, w.cursor, cfg.holdout_every)
            return (x.reshape(len(y), *cfg.input_shape), y) if len(y) else None
        now = time.monotonic()
        if self._flip_x is None or now >= self._flip_refresh_at:
            with self._online_lock:
                rows = list(self._recent)
            if len(rows) < 8:
                return None
            self._flip_x = torch.from_numpy(np.stack([r[0] for r in rows])).reshape(len(rows), *cfg.input_shape)
            self._flip_y = torch.tensor([r[1] for r in rows])
            self._flip_refresh_at = now + 1.0
        return self._flip_x, self._flip_y

    def _flip(self, new: Any, old: Any) -> float | None:
        """Negative flip rate of ``new`` (the worker's learner) against ``old`` (the served copy) on
        the flip sample (``None``: no sample yet). Only the served copy's pass holds the serving lock
        (fast-path updates mutate it), one slice of :data:`FLIP_CHUNK` rows at a time (a fast-path
        update may land between two slices: each slice is scored by the served model of its moment);
        the learner is the worker's own, so ``/predict`` never waits for its pass."""
        sample = self.flip_sample()
        if sample is None:
            return None
        x, y = sample
        with torch.no_grad():
            new_right = new.predict(x).argmax(1) == y
            # the served copy in slices of FLIP_CHUNK rows, the lock taken per slice: a /predict
            # waits for one slice's pass at most, not the whole sample's
            old_out = []
            for i in range(0, len(y), FLIP_CHUNK):
                with self.published.lock:
                    old_out.append(old.predict(x[i:i + FLIP_CHUNK]))
            old_right = torch.cat(old_out).argmax(1) == y
        self.flip_sample_rows = len(y)
        self.flip_rate = float((old_right & ~new_right).float().mean())
        return self.flip_rate

    def _gate(self, learner: Any) -> bool:
        """The publish guard (worker thread): score ``learner`` against the served model; refuse the
        publish past ``max_flip_rate``. Without a guard or a held-back sample the score is only a metric,
        taken at most once a second (two forward passes over the sample, and publishes come per batch)."""
        served = self.published.current
        if served is None:
            return True
        metric_only = self.cfg.max_flip_rate is None and not self.cfg.holdout_every
        now = time.monotonic()
        if metric_only and now < self._flip_scored_at + 1.0:
            return True
        rate = self._flip(learner, served)
        if rate is not None:
            self._flip_scored_at = now
        if rate is not None and self.cfg.max_flip_rate is not None and rate > self.cfg.max_flip_rate:
            self.publish_refused.inc()
            self.refused_flip_rate = rate
            return False
        return True

    def _on_promote(self, learner: Any) -> None:
        if self.published.current is not None:
            self._flip(learner, self.published.current)

    def _on_applied(self, n: int, lags: list[float]) -> None:
        self.applied.inc(n)
        for lag in lags:
            self.apply_lag.observe(max(0.0, lag))
        now = time.time()
        if not self._history or now - self._history[-1][0] >= 1.0:  # the dashboard's series: one point a second
            acc = self.online_accuracy()
            self._history.append((now, None if acc != acc else acc, self.worker.cursor))

    def _on_drift(self, seq: int) -> None:
        self.drift_alarms.inc()
        self._drift_times.append((time.time(), seq))

    def dashboard(self) -> dict[str, Any]:
        """What ``GET /dashboard/data`` returns: health, counts, lag quantiles and the accuracy series."""
        h = self.health()
        q = self.apply_lag.quantiles((0.5, 0.99))
        acc = self.online_accuracy()
        return {**h, "pending": self.pending(), "snapshots": len(self.store.list()), "rollbacks": self.worker.rollbacks,
                "online_accuracy": None if acc != acc else acc,
                "apply_lag_p50": None if q[0.5] != q[0.5] else q[0.5], "apply_lag_p99": None if q[0.99] != q[0.99] else q[0.99],
                "history": [list(p) for p in self._history], "drift": [list(d) for d in self._drift_times],
                "time": time.time()}

    def pending(self) -> int:
        """Events submitted but not yet learned: the backlog ``max_pending`` bounds."""
        return max(0, self.log.last_seq - self.worker.cursor) + self.log.queued_rows

    def faults(self) -> dict[str, str]:
        """Writes failing right now, by kind, with the last error."""
        out = dict(self.worker.faults)
        if self.log.append_fault is not None:
            out["append"] = self.log.append_fault
        return out

    def health(self) -> dict[str, Any]:
        """``status``: ``ok``; ``degraded`` while writes fail (retried; the service still answers);
        ``halted`` when the worker stopped (then /health answers 503)."""
        w = self.worker
        faults = self.faults()
        return {
            "status": "halted" if not w.running else "degraded" if faults else "ok",
            "faults": faults,
            "frozen": w.frozen,
            "shadow": w.shadow,
            "served_step": self.published.step,
            "pinned": w.served is not None,
            "online_accuracy": _num(self.online_accuracy()),
            "shadow_online_accuracy": _num(self.shadow_accuracy()),
            "negative_flip_rate": _num(self.flip_rate),
            "flip_sample_rows": self.flip_sample_rows,
            "publish_guard": {"max_flip_rate": self.cfg.max_flip_rate, "refused": w.refused,
                              "last_refused_flip_rate": _num(self.refused_flip_rate)},
            "io_errors": {**w.io_errors, "append": self.log.append_errors},
            "worker": "running" if w.running else f"halted: {w.error or 'not started'}",
            "learner": self.cfg.learner["name"],
            "logged_seq": self.log.last_seq,
            "applied_seq": w.cursor,
            "published_seq": self.published.seq,
            "decided_seq": w.decided_seq,
            "snapshot_seq": w.snapshot.seq if w.snapshot else 0,
            "fast_path": self.published.fast_path,
            "drift_response": callable(getattr(self.published.current, "on_drift", None)),
            "drift_alarms": w.drift_alarms,
        }


def _num(v: float) -> float | None:
    return None if v != v else round(v, 6)


def set_threads(cfg: ServeConfig) -> None:
    """torch's intra-op threads as configured (``threads = 0`` keeps torch's default). Restore,
    ``--replay`` and ``--verify`` all call this, so their arithmetic is the live service's."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)


def open_data_dir(cfg: ServeConfig, *, on_commit=None, check: str = "quick",
                  accept_config_change: bool = False) -> tuple[EventLog, SnapshotStore]:
    """Open ``data_dir``'s event log and snapshot store, checked against each other.

    Refused with one :class:`CheckpointError` line (nothing is written): snapshots without their
    event log, snapshots of another log or beyond its end, a damaged or unreadable database
    (``PRAGMA quick_check``; ``check="full"`` runs ``integrity_check``), a read-only directory, a
    file where ``snapshots/`` should be.
    """
    log_path, snap_dir = cfg.data_dir / "events.sqlite", cfg.data_dir / "snapshots"
    try:
        if not log_path.exists() and snap_dir.is_dir() and any(p.name.startswith("snap-") for p in snap_dir.iterdir()):
            raise CheckpointError(
                f"{snap_dir} holds snapshots but {log_path} is missing (deleted or not restored?); restore the "
                f"events.sqlite they were written from, or keep the snapshots aside (mv {snap_dir} {snap_dir}.old) to "
                "start a new log")
        event_log = EventLog(log_path, input_dim=cfg.input_dim, n_classes=cfg.n_classes, fingerprint=cfg.fingerprint(),
                             on_commit=on_commit, check=check, accept_config_change=accept_config_change)
    except OSError as e:
        raise CheckpointError(f"cannot open the event log in {cfg.data_dir}: {e}") from None
    try:
        store = SnapshotStore(snap_dir, fingerprint=cfg.fingerprint(), keep=cfg.keep_snapshots, log_id=event_log.log_id)
        store.check_log(log_id=event_log.log_id, last_seq=event_log.last_seq, last_step=event_log.last_step(),
                        log_path=log_path)
    except OSError as e:
        event_log.close()
        raise CheckpointError(f"cannot use the snapshot directory {snap_dir}: {e}") from None
    except BaseException:
        event_log.close()
        raise
    if event_log.fingerprint_changed_from is not None:
        log.warning("the configuration changed (fingerprint %s -> %s; accepted with --accept-config-change): "
                    "snapshots of the old configuration are skipped and the learner is replayed from the log",
                    event_log.fingerprint_changed_from[:12], cfg.fingerprint()[:12])
    return event_log, store


def load_replay(path: str | Path, cfg: ServeConfig) -> list[Feedback]:
    """Parse and validate a JSONL file of ``/feedback`` bodies, one per line.

    A bad line raises :class:`DataError` naming it; nothing has been logged at that point.
    """
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read replay file {path}: {e}") from None
    out = []
    with fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(parse_feedback(parse_json(line.encode()), cfg))
            except RequestError as e:
                raise DataError(f"{path} line {i}: {e.message}; every line must be a /feedback body "
                                '{"inputs": [...], "labels": [...]}') from None
    if not out:
        raise DataError(f"{path} holds no events")
    return out


def replay(service: Service, feedbacks: list[Feedback], *, curve: str | Path | None = None) -> dict[str, Any]:
    """Feed a recorded stream through the service, one ``/feedback`` body at a time.

    Each body is logged and fast-path-updated exactly as ``POST /feedback`` would be; then the
    replay waits until the worker has applied and published it, so every body is predicted by a
    model that learned all earlier ones: the run is deterministic and its online accuracy is
    prequential. ``curve`` writes the per-event correctness (1/0, in order) as JSON.
    """
    correct: list[int] = []
    n_dup = 0
    t0 = time.perf_counter()
    for fb in feedbacks:
        out = service.feedback(fb)
        correct += out["correct"]
        n_dup += out["duplicates"]
        if not service.worker.wait_published(max(out["seqs"]), timeout=600):
            raise DataError(f"the learner worker stopped during the replay ({service.worker.error})")
    info = service.worker.request("snapshot").result()
    summary = {"requests": len(feedbacks), "events": len(correct) + n_dup, "new_events": len(correct),
               "duplicates": n_dup, "online_accuracy": sum(correct) / len(correct) if correct else None,
               "drift_alarms": service.worker.drift_alarms, "last_seq": service.worker.cursor,
               "snapshot": info.path.name, "seconds": round(time.perf_counter() - t0, 3)}
    if curve is not None:
        Path(curve).write_text(json.dumps({"correct": correct, **summary}) + "\n", encoding="utf-8")
    return summary
