"""The learner worker: one thread that turns the event log into learner state, and the published
copy that predictions are served from.

Slow path
    :class:`Worker` applies events strictly in sequence order, in mini-batches of up to
    ``batch_size``, through the learner's own ``observe`` (replay, penalties, memories: whatever
    the learner does). Before acting it journals the decision (``batch a..b``, ``drift``,
    ``rollback``) in the event log, so the learner state after journal step ``t`` is a pure
    function of the log: :class:`Replayer` rebuilds it from the newest valid snapshot at or before
    ``t`` (or from scratch) and reproduces it bit for bit.
Fast path
    :class:`PublishedModel` holds the learner copy that ``/predict`` reads (double buffering: the
    worker loads the next state into a spare copy and swaps it in under a short lock, so a
    prediction never waits for a gradient step). When feedback is committed, a learner with an
    ``update_memory(batch)`` method (the error memory) has its *published* copy updated at once, so
    the very next prediction is corrected. These fast updates are re-applied on every publish
    until the worker's state includes their events; they never touch the worker's learner, which
    keeps the replayed state independent of request timing.
Drift
    A river ``ADWIN`` detector watches the worker learner's error on each batch *before* it learns
    from it; a detected change counts as an alarm only if the error went up. On an alarm the worker journals a ``drift`` step, calls the learner's ``on_drift()``
    if it has one, and logs a warning. Replays apply journaled drift steps; the detector itself
    starts afresh after a restart (alarms are at most once across a crash).
Shadow mode and the publish guard
    Either pins the served copy to the state after one journal step (recorded as ``served`` in the
    log's meta, with ``shadow``): in shadow mode until ``POST /promote``; after a publish refused by
    ``gate`` (the flip-rate guard) until a later publish passes. A restart rebuilds the pinned copy
    as the replay up to that step, so the served state, too, is a replay of the log.
Hold-out
    With ``holdout_every = k``, a batch does not learn its events with ``seq % k == 0`` at once;
    they are the flip sample, and each is learned ``k * flip_sample`` seqs later
    (:func:`learn_batch`, used by both the worker and the :class:`Replayer`).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lifelong.data import Batch
from lifelong.errors import CheckpointError, ConfigError
from lifelong.learn.base import DriftAware, MemoryUpdater, TrainingDiverged
from lifelong.serve.config import ServeConfig, build_learner
from lifelong.serve.eventlog import EventLog, JournalEntry
from lifelong.serve.snapshots import SnapshotInfo, SnapshotStore

log = logging.getLogger("lifelong.serve")

#: errors of a journal or snapshot write that may clear by themselves (disk full, EMFILE, permissions)
TRANSIENT = (OSError, sqlite3.OperationalError)
MIN_BACKOFF, MAX_BACKOFF = 0.05, 2.0


def has_fast_path(learner: Any) -> bool:
    """Does the learner have an error memory that can be updated without a gradient step?"""
    return isinstance(learner, MemoryUpdater)


def has_drift_response(learner: Any) -> bool:
    return isinstance(learner, DriftAware)


def state_digest(state: Any) -> str:
    """SHA-256 over a (nested) state dict: keys, tensor dtypes, shapes and bytes, and scalars.

    Two learners have the same digest exactly when their ``state_dict``\\ s are equal element for
    element (bit for bit for floating point).
    """
    h = hashlib.sha256()

    def walk(obj: Any) -> None:
        if isinstance(obj, Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(obj, dict):
            h.update(b"D%d" % len(obj))
            for k in sorted(obj, key=str):
                h.update(f"K{k!r}".encode())
                walk(obj[k])
        elif isinstance(obj, (list, tuple)):
            h.update(b"L%d" % len(obj))
            for v in obj:
                walk(v)
        else:
            h.update(f"V{obj!r}".encode())

    walk(state)
    return h.hexdigest()


def to_batch(cfg: ServeConfig, x: Tensor, y: Tensor) -> Batch:
    """Events ``x (n, D)``, ``y (n,)`` as a learner batch with inputs ``(n, *input_shape)``."""
    return Batch(x.reshape(len(y), *cfg.input_shape), y)


def holdout_window(cfg: ServeConfig) -> int:
    """How many seqs a held-back event waits before it is learned (``holdout_every * flip_sample``)."""
    return cfg.holdout_every * cfg.flip_sample


def learn_batch(cfg: ServeConfig, log_: EventLog, seqs: Tensor, x: Tensor, y: Tensor, floor: int) -> Batch:
    """What journal step ``batch a..b`` learns, a pure function of the log and the config.

    Without a hold-out (``holdout_every = 0``): every event ``a..b``. With ``holdout_every = k``:
    the events of ``a..b`` whose seq is not a multiple of ``k``, preceded by the held-back events
    (``seq % k == 0``) with seq in ``a-W..b-W`` (``W = k * flip_sample``) and after ``floor`` (the
    last rollback's skip point). Batches tile the seqs, so every held-back event is learned exactly
    once, in the batch that holds seq + W; until then it is in the flip sample and neither the
    served nor the learning model has learned it.
    """
    k = cfg.holdout_every
    if not k or len(seqs) == 0:
        return to_batch(cfg, x, y)
    keep = seqs % k != 0
    w = holdout_window(cfg)
    lo, hi = max(int(seqs[0]) - w, floor + 1), int(seqs[-1]) - w
    if hi >= lo:
        _, hx, hy, _ = log_.read_held(lo, hi, k)
        return to_batch(cfg, torch.cat([hx, x[keep]]), torch.cat([hy, y[keep]]))
    return to_batch(cfg, x[keep], y[keep])


class Replayer:
    """Rebuild the learner state after any journal step from snapshots and the log.

    Parameters
    ----------
    cfg, log
        the service config (to build a fresh learner) and its event log.
    store
        snapshots to start from; ``None`` replays from scratch (what the crash test compares to).
    """

    def __init__(self, cfg: ServeConfig, log: EventLog, store: SnapshotStore | None = None) -> None:
        self.cfg, self.log, self.store = cfg, log, store

    def state_at(self, step: int) -> tuple[Any, SnapshotInfo | None]:
        """A learner in the state after journal step ``step``, and the snapshot it started from."""
        learner = build_learner(self.cfg)
        info = None
        if self.store is not None:
            found = self.store.newest_valid(max_step=step)
            if found is not None:
                info, state = found
                learner.load_state_dict(state)
        for entry in self.log.journal(after=info.step if info else 0, upto=step):
            self.apply(learner, entry)
        return learner, info

    def apply(self, learner: Any, entry: JournalEntry) -> None:
        """Apply one journal step to ``learner``, exactly as the live worker did."""
        if entry.kind == "batch":
            seqs, x, y, _ = self.log.read_range(entry.a, entry.b)
            floor = self.log.rollback_floor(entry.step) if self.cfg.holdout_every else 0
            observe(learner, learn_batch(self.cfg, self.log, seqs, x, y, floor))
        elif entry.kind == "drift":
            if has_drift_response(learner):
                learner.on_drift()
        elif entry.kind == "rollback":
            target, _ = self.state_at(int(entry.a))
            learner.load_state_dict(target.state_dict())
        else:
            raise CheckpointError(f"unknown journal entry {entry.kind!r} at step {entry.step}; the log is damaged")


def observe(learner: Any, batch: Batch) -> bool:
    """``learner.observe(batch)``; a diverging loss skips the batch (the same way in every replay), and
    an empty one (every event held back) is not observed."""
    if len(batch.y) == 0:
        return False
    try:
        learner.observe(batch)
        return True
    except TrainingDiverged as e:
        log.error("skipped a batch: %s", e)
        return False


class PublishedModel:
    """The learner copy that serves predictions: double-buffered, swapped under a short lock.

    ``seq`` is the last event the published state includes (fast-path updates beyond it are held
    in ``_fast`` and replayed onto every newly published copy until ``seq`` passes them).
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build
        self.lock = threading.Lock()
        self.current: Any = None
        self._spare: Any = None
        self.seq = 0
        self.step = 0
        self.version = 0
        self.fast_path = False
        self.pinned = False  # True: a fixed state is served (shadow mode, or a publish refused): no fast path
        self._fast: list[tuple[Tensor, Batch]] = []  # (seqs (n,), batch) not yet in the worker's state

    def publish(self, state: dict, seq: int, step: int, *, pinned: bool = False) -> None:
        """Called by the worker only. ``state`` is copied; the caller may keep mutating its own.

        ``pinned``: serve exactly ``state`` (the state after journal step ``step``) and no fast-path
        update, until the next publish, so a restart can rebuild the served copy from the log."""
        target = self._spare if self._spare is not None else self.build()
        target.load_state_dict(copy.deepcopy(state))
        keep: list[tuple[Tensor, Batch]] = []

        def replay(entries: list[tuple[Tensor, Batch]]) -> None:
            for seqs, batch in entries:
                newer = seqs > seq
                if bool(newer.any()):
                    sub = _rows(batch, newer)
                    target.update_memory(sub)
                    keep.append((seqs[newer], sub))

        # The fast-path updates are re-applied to the spare copy outside the lock (nothing reads it:
        # predictions read ``current``), so ``/predict`` waits only for the swap. ``_fast`` only grows
        # between publishes (and publish runs on the worker thread alone): what arrived meanwhile is
        # picked up by index, in arrival order, and the last few under the lock, just before the swap.
        done = 0
        for _ in range(3):
            with self.lock:
                todo = self._fast[done:]
            if not todo or pinned:
                break
            replay(todo)
            done += len(todo)
        with self.lock:
            if not pinned:
                replay(self._fast[done:])
            self._fast = keep
            self._spare, self.current = self.current, target
            self.seq, self.step = int(seq), int(step)
            self.version += 1
            self.fast_path = has_fast_path(target)
            self.pinned = pinned

    def fast_update(self, seqs: Tensor, batch: Batch) -> bool:
        """Correct the served copy at once with committed feedback; ``False`` if there is no fast path."""
        with self.lock:
            if not self.fast_path:
                return False
            if self.pinned:
                return True
            newer = seqs > self.seq  # rows the published state already learned are skipped
            if bool(newer.any()):
                sub = _rows(batch, newer)
                self.current.update_memory(sub)
                self._fast.append((seqs[newer], sub))
            return True

    def predict(self, x: Tensor) -> tuple[Tensor, int]:
        """Logits ``(B, n_classes)`` of the published copy and the last event seq it includes."""
        with self.lock:
            return self.current.predict(x), self.seq

    def digest(self) -> str:
        with self.lock:
            return state_digest(self.current.state_dict())


def _rows(batch: Batch, mask: Tensor) -> Batch:
    return Batch(batch.x[mask], batch.y[mask])


@dataclass
class _Op:
    kind: str  # "snapshot" | "rollback" | "digest"
    args: dict
    future: Future


class Worker:
    """The single learner thread. Create, then :meth:`start` (restores state), then :meth:`stop`.

    Parameters
    ----------
    on_applied
        called with ``(n_events, lags_seconds)`` after each applied batch (for metrics).
    on_drift
        called after each drift alarm.
    """

    def __init__(self, cfg: ServeConfig, log_: EventLog, store: SnapshotStore, published: PublishedModel, *,
                 on_applied: Callable[[int, list[float]], None] | None = None,
                 on_drift: Callable[[int], None] | None = None) -> None:
        self.cfg, self.log, self.store, self.published = cfg, log_, store, published
        self.on_applied, self.on_drift_cb = on_applied, on_drift
        self.replayer = Replayer(cfg, log_, store)
        self.learner: Any = None
        self.step = 0  # last journal step applied to self.learner
        self.cursor = 0  # last event seq consumed (applied, or skipped by a rollback)
        self.snapshot: SnapshotInfo | None = None
        self.restored_from: SnapshotInfo | None = None
        self.error: str | None = None  # set when the worker halts
        self.drift_alarms = 0
        self._detector = None
        self._cond = threading.Condition()
        self._ops: list[_Op] = []
        self._stopping = False
        self._final_snapshot = True
        self._drain_until = 0.0
        self.faults: dict[str, str] = {}  # op -> the last error, while writes of op fail
        self.io_errors: dict[str, int] = {}  # op -> transient I/O errors so far
        self._backoff: dict[str, float] = {}
        self._snapshot_retry_at = 0.0
        self.on_io_error: Callable[[str], None] | None = None
        self.on_publish: Callable[[PublishedModel], None] | None = None
        self.frozen = False  # True: events are logged but not learned (POST /freeze)
        self.shadow = False  # True: learn and score, but serve the model promoted last (POST /shadow, /promote)
        self.served: tuple[int, int] | None = None  # (step, seq) of a pinned served state; None: the latest
        self.floor = 0  # the seq the last rollback skipped to (held-back events up to it are never learned)
        #: called with the learner before each publish; False refuses it (the publish guard)
        self.gate: Callable[[Any], bool] | None = None
        #: called with the promoted learner on a forced publish (POST /promote), for scoring
        self.on_promote: Callable[[Any], None] | None = None
        #: called with each batch's per-event errors of the learning model, before it learns them
        self.on_scored: Callable[[list[bool]], None] | None = None
        self.refused = 0  # publishes refused by the guard in this process
        self.decided_seq = 0  # the last event seq whose publish was decided (published, refused, or shadowed)
        self.rollbacks = 0  # in this process
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Restore the newest state (snapshot + journal replay), publish it, start the thread."""
        last = self.log.last_step()
        self.learner, self.restored_from = self.replayer.state_at(last)
        self.step = last
        self.cursor = max((e.b for e in self.log.journal() if e.kind in ("batch", "rollback")), default=0)
        self.log.check_rows(after=self.cursor)  # events still to learn: a damaged one is refused now, not later
        self.snapshot = self.restored_from
        self.frozen = self.log.get_meta("frozen") == "1"  # a freeze outlives a restart
        if self.frozen:
            log.warning("learning is frozen (POST /freeze {\"frozen\": false} resumes it); serving goes on")
        self.floor = self.log.rollback_floor()
        shadow = self.log.get_meta("shadow")
        self.shadow = self.cfg.shadow if shadow is None else shadow == "1"
        if shadow is None and self.cfg.shadow:
            self.log.set_meta("shadow", "1")
        served = self.log.get_meta("served") or ""
        self._reset_detector()
        if served:
            # a pinned served state (shadow mode, or a refused publish): the state after that journal step
            step, seq = (int(v) for v in served.split())
            self.served = (step, seq)
            model = self.learner if step == self.step else self.replayer.state_at(step)[0]
            self.published.publish(model.state_dict(), seq, step, pinned=True)
            log.warning("serving the model of journal step %d (seq %d)%s", step, seq,
                        "; shadow mode: POST /promote serves the learning model" if self.shadow else
                        ": the last publish the flip-rate guard accepted")
        elif self.shadow:
            self._pin()
        else:
            self._publish()
        self.decided_seq = self.cursor
        if not has_fast_path(self.learner):
            log.info("learner %r has no update_memory(); feedback reaches predictions only after the worker "
                     "applies it (no fast path)", self.cfg.learner["name"])
        self._thread = threading.Thread(target=self._run, name="learner-worker", daemon=True)
        self._thread.start()

    def stop(self, *, snapshot: bool = True, drain: float = 0.0, timeout: float = 60.0) -> bool:
        """Finish the current batch; with ``drain`` > 0, go on applying every committed event for at
        most ``drain`` seconds; then write a final snapshot (if asked) and join. ``True`` if the
        thread ended within ``drain + timeout`` seconds."""
        with self._cond:
            self._stopping = True
            self._final_snapshot = snapshot
            self._drain_until = time.monotonic() + drain
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(drain + timeout)
            return not self._thread.is_alive()
        return True

    def notify(self, last_seq: int) -> None:
        """New events were committed (called from the log's writer thread)."""
        with self._cond:
            self._cond.notify_all()

    def request(self, kind: str, **args: Any) -> Future:
        """Queue an admin operation for the worker thread (runs between two batches)."""
        fut: Future = Future()
        with self._cond:
            if self._stopping or self.error is not None:
                fut.set_exception(CheckpointError(f"the learner worker is not running ({self.error or 'stopping'})"))
                return fut
            self._ops.append(_Op(kind, args, fut))
            self._cond.notify_all()
        return fut

    def wait_published(self, seq: int, timeout: float | None = None) -> bool:
        """Block until the published model includes every event up to ``seq`` (or the timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.published.seq < seq and not (self.served is not None and self.cursor >= seq) and self.error is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return self.published.seq >= seq or (self.served is not None and self.cursor >= seq)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.error is None

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while (not self._ops and not self._stopping and (self.frozen or self.log.last_seq <= self.cursor)
                           and not self._snapshot_retry_due()):
                        self._cond.wait(0.2 if "snapshot" in self.faults else 1.0)
                    ops, self._ops = self._ops, []
                    stopping = self._stopping
                for op in ops:
                    self._do(op)
                if stopping:
                    # a clean stop: apply what is committed (bounded), so the final snapshot holds it
                    while not self.frozen and self.log.last_seq > self.cursor and time.monotonic() < self._drain_until:
                        self._apply_safely()
                    break
                pending = 0 if self.frozen else self.log.last_seq - self.cursor
                if 0 < pending < self.cfg.batch_size and self.cfg.linger_ms > 0:
                    # let more events arrive: one larger step costs less than many tiny ones
                    # (each step is a journal fsync, a forward/backward and a publish)
                    deadline = time.monotonic() + self.cfg.linger_ms / 1000
                    with self._cond:
                        while (self.log.last_seq - self.cursor < self.cfg.batch_size and not self._stopping
                               and not self._ops and (left := deadline - time.monotonic()) > 0):
                            self._cond.wait(left)
                if not self.frozen and self.log.last_seq > self.cursor:
                    self._apply_safely()
                elif self._snapshot_retry_due():
                    self._try_snapshot()
            if self._final_snapshot and (self.snapshot is None or self.snapshot.step < self.step):
                self._try_snapshot(final=True)
        except BaseException as e:  # the worker halts; feedback is still logged and applied after a restart
            self.error = f"{type(e).__name__}: {e}"
            log.exception("learner worker halted")
        finally:
            with self._cond:
                for op in self._ops:
                    op.future.set_exception(CheckpointError("the learner worker stopped"))
                self._ops = []
                self._cond.notify_all()

    # -- transient I/O faults -------------------------------------------------------------------
    def _fault(self, op: str, e: BaseException) -> None:
        """Record a transient I/O error of ``op`` ("journal" or "snapshot"); shown in /health and /metrics."""
        first = op not in self.faults
        self.faults[op] = f"{type(e).__name__}: {e}"
        self.io_errors[op] = self.io_errors.get(op, 0) + 1
        if first:
            log.warning("%s write failed (%s); retrying with backoff, events stay in the log", op, self.faults[op])
        if self.on_io_error is not None:
            self.on_io_error(op)

    def _cleared(self, op: str) -> None:
        if self.faults.pop(op, None) is not None:
            log.info("%s writes work again; the fault cleared", op)
        self._backoff[op] = 0.0

    def _next_backoff(self, op: str) -> float:
        b = min(MAX_BACKOFF, max(MIN_BACKOFF, 2 * self._backoff.get(op, 0.0)))
        self._backoff[op] = b
        return b

    def _apply_safely(self) -> None:
        """:meth:`_apply_next`; a transient I/O error (full disk, EMFILE, permissions) waits with
        backoff and the same events are tried again, in order: nothing was applied."""
        try:
            self._apply_next()
        except TRANSIENT as e:
            self._fault("journal", e)
            wait = self._next_backoff("journal")
            if self._stopping:  # draining: back off too, within the stop's bound
                time.sleep(max(0.0, min(wait, self._drain_until - time.monotonic())))
            else:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, timeout=wait)
        else:
            self._cleared("journal")

    def _snapshot_retry_due(self) -> bool:
        return "snapshot" in self.faults and time.monotonic() >= self._snapshot_retry_at

    def _try_snapshot(self, *, final: bool = False) -> SnapshotInfo | None:
        """:meth:`_snapshot`, with an I/O error recorded and retried later instead of raised."""
        if not final and "snapshot" in self.faults and time.monotonic() < self._snapshot_retry_at:
            return None
        try:
            info = self._snapshot()
        except TRANSIENT as e:
            self._fault("snapshot", e)
            self._snapshot_retry_at = time.monotonic() + self._next_backoff("snapshot")
            if final:
                log.error("no final snapshot (%s); the next start replays the log from the last one", e)
            return None
        self._cleared("snapshot")
        return info

    def _apply_next(self) -> None:
        seqs, x, y, received = self.log.read_next(self.cursor, self.cfg.batch_size)
        if len(seqs) == 0:
            return
        first, last = int(seqs[0]), int(seqs[-1])
        step = self.log.journal_append("batch", first, last)  # write-ahead: decided before acted on
        batch = to_batch(self.cfg, x, y)
        with torch.no_grad():
            wrong = (self.learner.predict(batch.x).argmax(1) != batch.y).tolist()  # error before learning
        if self.on_scored is not None:
            self.on_scored(wrong)
        observe(self.learner, learn_batch(self.cfg, self.log, seqs, x, y, self.floor))
        self.step, self.cursor = step, last
        now = time.time()
        if self.on_applied is not None:
            self.on_applied(len(seqs), [now - r for r in received])
        if self._detect(wrong):
            try:
                self.step = self.log.journal_append("drift")
            except TRANSIENT as e:  # not journaled, so not applied: the replay agrees
                self._fault("journal", e)
                self._publish()
                return
            if has_drift_response(self.learner):
                self.learner.on_drift()
            self.drift_alarms += 1
            log.warning("drift detected after event %d (alarm %d)%s", last, self.drift_alarms,
                        "; drift response applied" if has_drift_response(self.learner) else "")
            if self.on_drift_cb is not None:
                self.on_drift_cb(last)
        self._publish()
        if self.snapshot is None or self.cursor - self.snapshot.seq >= self.cfg.snapshot_every:
            self._try_snapshot()

    def _reset_detector(self) -> None:
        if self.cfg.drift_delta > 0:
            from river.drift import ADWIN

            self._detector = ADWIN(delta=self.cfg.drift_delta)
        else:
            self._detector = None

    def _detect(self, wrong: list[bool]) -> bool:
        if self._detector is None:
            return False
        alarm = False
        for w in wrong:  # 1 = error
            before = self._detector.estimation
            self._detector.update(int(w))
            # ADWIN flags a change in either direction; only a *rise* of the error is a drift to
            # respond to (a falling error is the learner getting better).
            if self._detector.drift_detected and self._detector.estimation > before:
                alarm = True
        return alarm

    def _pin(self) -> None:
        """Serve the learner's current state, pinned (no fast path), and record it in the log."""
        self.published.publish(self.learner.state_dict(), self.cursor, self.step, pinned=True)
        self.served = (self.step, self.cursor)
        self.log.set_meta("served", f"{self.step} {self.cursor}")

    def _publish(self) -> None:
        """Serve the learner's new state, unless in shadow mode or the guard refuses it."""
        if self.shadow:
            self.decided_seq = self.cursor
            with self._cond:
                self._cond.notify_all()
            return
        if self.gate is not None and not self.gate(self.learner):
            self.refused += 1
            if self.served is None:  # pin what is served now, as a state the log can rebuild
                step, seq = self.published.step, self.published.seq
                if self.published.fast_path:  # the served copy holds fast-path updates: serve the step's own state
                    self.published.publish(self.replayer.state_at(step)[0].state_dict(), seq, step, pinned=True)
                else:
                    self.published.pinned = True
                self.served = (step, seq)
                self.log.set_meta("served", f"{step} {seq}")
                log.warning("publish refused: negative flip rate over [serve] max_flip_rate; serving step %d (seq %d) "
                            "while learning goes on", step, seq)
            self.decided_seq = self.cursor
            with self._cond:
                self._cond.notify_all()
            return
        self.published.publish(self.learner.state_dict(), self.cursor, self.step)
        if self.served is not None:
            self.served = None
            self.log.set_meta("served", "")
        self.decided_seq = self.cursor
        if self.on_publish is not None:
            try:
                self.on_publish(self.published)
            except Exception:  # a metric must never stop learning
                log.exception("publish hook failed")
        with self._cond:
            self._cond.notify_all()

    def _snapshot(self) -> SnapshotInfo:
        self.snapshot = self.store.write(self.step, self.cursor, self.learner.state_dict())
        self.store.prune()
        return self.snapshot

    def _do(self, op: _Op) -> None:
        try:
            if op.kind == "snapshot":
                try:
                    info = self.snapshot if self.snapshot is not None and self.snapshot.step == self.step else self._snapshot()
                    self._cleared("snapshot")
                except OSError as e:
                    self._fault("snapshot", e)
                    raise CheckpointError(f"could not write a snapshot in {self.store.dir}: {e}; retry when the "
                                          "disk has room and the directory is writable") from None
                op.future.set_result(info)
            elif op.kind == "rollback":
                op.future.set_result(self._rollback(int(op.args["to_seq"])))
            elif op.kind == "freeze":
                self.frozen = bool(op.args["frozen"])
                self.log.set_meta("frozen", "1" if self.frozen else "0")
                log.warning("learning %s at event %d (%d logged)", "frozen" if self.frozen else "resumed",
                            self.cursor, self.log.last_seq)
                with self._cond:
                    self._cond.notify_all()
                op.future.set_result({"frozen": self.frozen, "applied_seq": self.cursor, "logged_seq": self.log.last_seq})
            elif op.kind == "shadow":
                on = bool(op.args["shadow"])
                self.log.set_meta("shadow", "1" if on else "0")
                self.shadow = on
                self._promote()  # on: pin what the learner knows now; off: serve it, and follow it again
                log.warning("shadow mode %s at event %d", "on" if on else "off", self.cursor)
                op.future.set_result({"shadow": on, "served_seq": self.published.seq, "applied_seq": self.cursor})
            elif op.kind == "promote":
                self._promote()
                log.warning("promoted the learning model at event %d (step %d)", self.cursor, self.step)
                op.future.set_result({"shadow": self.shadow, "served_seq": self.published.seq,
                                      "served_step": self.published.step, "applied_seq": self.cursor})
            elif op.kind == "digest":
                op.future.set_result({"learner": state_digest(self.learner.state_dict()), "step": self.step,
                                      "seq": self.cursor})
            else:
                raise ConfigError(f"unknown worker operation {op.kind!r}")
        except Exception as e:
            op.future.set_exception(e)

    def _promote(self) -> None:
        """Serve the learner's state now, past the guard (an operator's decision)."""
        if self.on_promote is not None:
            try:
                self.on_promote(self.learner)
            except Exception:
                log.exception("promote hook failed")
        if self.shadow:
            self._pin()
        else:
            self.published.publish(self.learner.state_dict(), self.cursor, self.step)
            if self.served is not None:
                self.served = None
                self.log.set_meta("served", "")
        self.decided_seq = self.cursor
        with self._cond:
            self._cond.notify_all()

    def _rollback(self, to_seq: int) -> dict:
        """Reset to the newest valid snapshot with ``seq <= to_seq`` (``to_seq=0``: the initial state).

        Every event logged so far after that snapshot is skipped for good (it stays in the log);
        events that arrive later are applied as usual.
        """
        if to_seq > self.cursor:
            raise ConfigError(f"to_seq {to_seq} is after the last applied event ({self.cursor}); nothing to roll back")
        if to_seq == 0:
            info, learner = None, build_learner(self.cfg)
        else:
            found = self.store.newest_valid(max_seq=to_seq)
            if found is None:
                have = sorted(i.seq for i in self.store.list())
                raise ConfigError(f"no valid snapshot at or before seq {to_seq}; snapshots exist at seqs {have} "
                                  "(or pass to_seq = 0 for the initial state)")
            info, state = found
            learner = build_learner(self.cfg)
            learner.load_state_dict(state)
        skip_to = max(self.log.last_seq, self.cursor)
        target_step = info.step if info is not None else 0
        step = self.log.journal_append("rollback", target_step, skip_to)
        discarded = skip_to - (info.seq if info is not None else 0)
        self.learner, self.step, self.cursor = learner, step, skip_to
        self.floor = skip_to
        self.rollbacks += 1
        self._reset_detector()
        self._publish()
        self._try_snapshot(final=True)  # the rolled-back state is the new restart point (else the journal is)
        log.warning("rolled back to snapshot at seq %d; %d later events will not be learned",
                    info.seq if info else 0, discarded)
        return {"snapshot_seq": info.seq if info else 0, "snapshot_step": target_step, "skipped_to_seq": skip_to,
                "discarded_events": discarded, "step": step}
