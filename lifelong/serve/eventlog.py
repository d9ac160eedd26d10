"""The durable event log: an append-only SQLite database, the service's source of truth.

Two tables:

``events``
    one row per labelled example: ``seq`` (1, 2, 3, ... in arrival order), an optional client
    ``event_id`` (unique: a retried request returns the original sequence numbers), the input as
    little-endian float32 bytes, the label, the optional ``prediction_id`` it answers, the
    arrival time and a CRC-32 of label and input (checked on every read, and for every row under
    ``--verify``). Rows are never updated or deleted.
``journal``
    the learner worker's decisions, written *before* it acts on them (write-ahead), one row per
    step: ``batch`` (apply events ``a..b`` as one ``observe``), ``drift`` (the drift response ran
    here) and ``rollback`` (reset to the state after step ``a``; skip events up to ``b``). The
    learner state after journal step ``t`` is a pure function of the two tables, so replaying them
    from scratch reproduces it exactly, whatever the timing of the live run was.

The database runs in WAL mode with ``synchronous=FULL``: a commit has reached the disk when it
returns. Appends go through one writer thread that *group-commits* whatever requests are waiting
(one fsync for many concurrent requests); a request's future resolves only after its commit, and
the HTTP layer acknowledges only then.

Examples
--------
>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> log = EventLog(f"{d}/events.sqlite", input_dim=2, n_classes=3, fingerprint="x")
>>> r = log.append(np.zeros((2, 2), np.float32), np.array([0, 2]), event_ids=["a", "b"])
>>> r.seqs, r.new
([1, 2], [True, True])
>>> log.append(np.zeros((1, 2), np.float32), np.array([2]), event_ids=["b"]).seqs  # a retry
[2]
>>> log.close()
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lifelong.errors import CheckpointError, ConfigError, DataError

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT UNIQUE,
    prediction_id TEXT,
    received_at REAL NOT NULL,
    y INTEGER NOT NULL,
    x BLOB NOT NULL,
    crc INTEGER
);
CREATE TABLE IF NOT EXISTS journal (
    step INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('batch', 'drift', 'rollback')),
    a INTEGER,
    b INTEGER,
    at REAL NOT NULL
);
"""
def row_crc(y: int, x: bytes) -> int:
    """CRC-32 of one event's label (8 bytes, little endian) and input bytes, stored with the row."""
    return zlib.crc32(x, zlib.crc32(int(y).to_bytes(8, "little", signed=True)))


#: groups larger than this are split over several commits (bounds one transaction's size)
MAX_GROUP = 4096


class EventConflict(DataError):
    """A client event id was reused for a different example."""


@dataclass(frozen=True)
class AppendResult:
    seqs: list[int]  # one per row, in request order
    new: list[bool]  # False where the event id was already logged (an idempotent retry)


@dataclass(frozen=True)
class JournalEntry:
    step: int
    kind: str  # "batch" | "drift" | "rollback"
    a: int | None  # batch: first seq; rollback: target step
    b: int | None  # batch: last seq; rollback: events up to here are skipped


@dataclass
class _Pending:
    x: np.ndarray  # (n, D) float32
    y: np.ndarray  # (n,) int64
    event_ids: list[str | None]
    prediction_id: str | None
    future: Future


def describe_sqlite_error(path: Path, e: BaseException) -> str:
    """One line saying why the event log at ``path`` cannot be used, and what to do."""
    text = str(e)
    if "readonly" in text or "unable to open" in text or "read-only" in text:
        return (f"cannot write the event log {path} ({text}); the data directory must be on a writable file system "
                "with write permission for this user")
    return (f"{path} is not a readable event log ({text}); restore it from a backup (with the snapshots written "
            "from it), or move the data directory aside to start a new one")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise ConfigError(f"{path}: SQLite refused WAL mode ({mode}); put data_dir on a local file system")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class EventLog:
    """Append-only event log and worker journal in one SQLite file.

    Parameters
    ----------
    path
        the database file (created with its directory if missing).
    input_dim, n_classes, fingerprint
        recorded on creation and checked on every later open: a log written for another model or
        learner configuration is refused with :class:`ConfigError` instead of being replayed into
        the wrong learner.
    on_commit
        called from the writer thread with the new last sequence number after each commit.
    """

    def __init__(self, path: str | Path, *, input_dim: int, n_classes: int, fingerprint: str,
                 on_commit: Callable[[int], None] | None = None, check: str = "quick",
                 accept_config_change: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.input_dim, self.n_classes = int(input_dim), int(n_classes)
        self.on_commit = on_commit
        self.fingerprint_changed_from: str | None = None
        self.queued_rows = 0  # rows submitted, not yet committed
        self._queued_lock = threading.Lock()
        self.append_errors = 0  # group commits that failed (each request in it got an error)
        self.append_fault: str | None = None  # the last commit's error, until a commit succeeds
        self._conn = self._read = None
        self._read_lock = threading.Lock()
        try:
            self._conn = _connect(self.path)  # the writer thread's; also used for setup here
            self._read = _connect(self.path)  # reads and journal writes from the worker / admin
            self.check_integrity(check)
            self._check_meta(fingerprint, accept_config_change)
            self.last_seq = int(self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        except sqlite3.DatabaseError as e:
            self._close_connections()
            raise CheckpointError(describe_sqlite_error(self.path, e)) from None
        except BaseException:
            self._close_connections()
            raise
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._writer = threading.Thread(target=self._writer_loop, name="eventlog-writer", daemon=True)
        self._writer.start()

    def _close_connections(self) -> None:
        for conn in (self._conn, self._read):
            if conn is not None:
                conn.close()

    # -- setup -------------------------------------------------------------------------------------
    def check_integrity(self, level: str = "quick") -> None:
        """``PRAGMA quick_check`` (``level="quick"``, every start) or ``integrity_check`` (``"full"``,
        under ``--verify``); a damaged database raises :class:`CheckpointError`. ``"none"`` skips it."""
        if level == "none":
            return
        pragma = {"quick": "quick_check", "full": "integrity_check"}[level]
        rows = [str(r[0]) for r in self._conn.execute(f"PRAGMA {pragma}(20)").fetchall()]
        if rows != ["ok"]:
            raise CheckpointError(
                f"{self.path} is damaged (PRAGMA {pragma}: {'; '.join(rows[:3])}); it is not served. Restore "
                "events.sqlite from a backup (with the snapshots written from it), or move the data directory aside")

    def _check_meta(self, fingerprint: str, accept_config_change: bool = False) -> None:
        c = self._conn
        c.executescript(SCHEMA)  # idempotent (IF NOT EXISTS)
        if "crc" not in {r[1] for r in c.execute("PRAGMA table_info(events)")}:  # a log from before row CRCs
            c.execute("ALTER TABLE events ADD COLUMN crc INTEGER")  # its old rows stay unchecked (NULL)
        c.execute("BEGIN IMMEDIATE")
        try:
            want = {"schema": SCHEMA_VERSION, "input_dim": str(self.input_dim), "n_classes": str(self.n_classes),
                    "fingerprint": fingerprint}
            have = dict(c.execute("SELECT key, value FROM meta").fetchall())
            diff = [k for k in want if have.get(k) != want[k]] if have else []
            if not have:
                c.executemany("INSERT INTO meta VALUES (?, ?)", sorted(want.items()))
            if "log_id" not in have:  # a new log, or one written before logs had an identity
                have["log_id"] = uuid.uuid4().hex
                c.execute("INSERT INTO meta VALUES ('log_id', ?)", (have["log_id"],))
            if diff == ["fingerprint"] and accept_config_change:
                self.fingerprint_changed_from = have["fingerprint"]
                c.execute("UPDATE meta SET value = ? WHERE key = 'fingerprint'", (fingerprint,))
                c.execute("INSERT OR REPLACE INTO meta VALUES ('config_changed_at', ?)", (repr(time.time()),))
                diff = []
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self.log_id = have["log_id"]
        if diff:
            hint = ("; if the change is intended, start once with --accept-config-change (the learner is then "
                    "replayed from the log under the new configuration)") if diff == ["fingerprint"] else ""
            raise ConfigError(
                f"{self.path} was written for a different configuration (differs in: {', '.join(diff)}); "
                f"point [serve] data_dir at a new directory, or restore the config that wrote this log{hint}"
            )

    # -- appending (any thread) --------------------------------------------------------------------
    def submit(self, x: np.ndarray, y: np.ndarray, *, event_ids: list[str | None] | None = None,
               prediction_id: str | None = None) -> Future:
        """Queue rows for the next group commit; the future gives an :class:`AppendResult`.

        ``x`` is ``(n, input_dim)`` float32 and ``y`` ``(n,)`` integer labels, both already
        validated by the caller. The future raises :class:`EventConflict` if an event id was
        logged before with a different example (then none of this request's rows is logged).
        """
        if self._closed:
            raise CheckpointError("the event log is closed")
        x = np.ascontiguousarray(x, dtype="<f4").reshape(len(y), self.input_dim)
        ids = list(event_ids) if event_ids is not None else [None] * len(y)
        fut: Future = Future()
        with self._queued_lock:
            self.queued_rows += len(y)
        self._queue.put(_Pending(x, np.asarray(y, dtype=np.int64), ids, prediction_id, fut))
        return fut

    def append(self, x: np.ndarray, y: np.ndarray, *, event_ids: list[str | None] | None = None,
               prediction_id: str | None = None) -> AppendResult:
        """Append and wait for the durable commit."""
        return self.submit(x, y, event_ids=event_ids, prediction_id=prediction_id).result()

    def _writer_loop(self) -> None:
        c = self._conn
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            rows = len(first.y)
            while rows < MAX_GROUP:  # take everything already waiting: one fsync for all of it
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                group.append(nxt)
                rows += len(nxt.y)
            results: list[AppendResult | BaseException] = []
            try:
                c.execute("BEGIN IMMEDIATE")
                now = time.time()
                for p in group:
                    c.execute("SAVEPOINT req")
                    try:
                        results.append(self._insert(c, p, now))
                        c.execute("RELEASE req")
                    except (EventConflict, sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
                            ValueError) as e:
                        # this request alone is refused: the others in the group still commit
                        c.execute("ROLLBACK TO req")
                        c.execute("RELEASE req")
                        results.append(e if isinstance(e, EventConflict) else
                                       DataError(f"the event log refused this request: {e}"))
                c.execute("COMMIT")  # synchronous=FULL: durable when this returns
            except BaseException as e:  # disk full, I/O error: nothing of this group is acknowledged
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self.append_errors += 1
                self.append_fault = f"{type(e).__name__}: {e}"
                with self._queued_lock:
                    self.queued_rows -= rows
                for p in group:
                    p.future.set_exception(CheckpointError(f"could not write the event log {self.path}: {e}"))
                continue
            self.append_fault = None
            last = max([self.last_seq] + [max(r.seqs) for r in results if isinstance(r, AppendResult) and r.seqs])
            self.last_seq = last
            with self._queued_lock:
                self.queued_rows -= rows
            if self.on_commit is not None:
                self.on_commit(last)
            for p, r in zip(group, results):
                if isinstance(r, BaseException):
                    p.future.set_exception(r)
                else:
                    p.future.set_result(r)

    def _insert(self, c: sqlite3.Connection, p: _Pending, now: float) -> AppendResult:
        seqs, new = [], []
        for i, eid in enumerate(p.event_ids):
            xb, yi = p.x[i].tobytes(), int(p.y[i])
            if eid is not None:
                row = c.execute("SELECT seq, y, x FROM events WHERE event_id = ?", (eid,)).fetchone()
                if row is not None:
                    if row[1] != yi or bytes(row[2]) != xb:
                        raise EventConflict(
                            f"event_id {eid!r} was already logged (seq {row[0]}) with a different input or "
                            "label; use a fresh id for a new event"
                        )
                    seqs.append(int(row[0]))
                    new.append(False)
                    continue
            cur = c.execute("INSERT INTO events (event_id, prediction_id, received_at, y, x, crc) VALUES (?, ?, ?, ?, ?, ?)",
                            (eid, p.prediction_id, now, yi, xb, row_crc(yi, xb)))
            seqs.append(int(cur.lastrowid))
            new.append(True)
        return AppendResult(seqs, new)

    # -- reading and the journal (worker thread, admin, tests) -------------------------------------
    def read_range(self, first: int, last: int) -> tuple[Tensor, Tensor, Tensor, list[float]]:
        """Events with ``first <= seq <= last`` in order: ``(seq (n,), x (n, D) float32, y (n,) int64, received_at)``."""
        with self._read_lock:
            rows = self._read.execute("SELECT seq, y, x, received_at, crc FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq",
                                      (first, last)).fetchall()
        return self._decode(rows)

    def read_next(self, after: int, limit: int) -> tuple[Tensor, Tensor, Tensor, list[float]]:
        """Up to ``limit`` events with ``seq > after``, in order (same tuple as :meth:`read_range`)."""
        with self._read_lock:
            rows = self._read.execute("SELECT seq, y, x, received_at, crc FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                      (after, limit)).fetchall()
        return self._decode(rows)

    def _decode(self, rows: list) -> tuple[Tensor, Tensor, Tensor, list[float]]:
        for r in rows:
            self._check_row(r[0], r[1], r[2], r[4])
        n = len(rows)
        seqs = torch.tensor([r[0] for r in rows], dtype=torch.int64)
        y = torch.tensor([r[1] for r in rows], dtype=torch.int64)
        buf = b"".join(bytes(r[2]) for r in rows)
        x = torch.frombuffer(bytearray(buf), dtype=torch.float32).reshape(n, self.input_dim) if n else \
            torch.zeros(0, self.input_dim)
        return seqs, x, y, [float(r[3]) for r in rows]

    def _check_row(self, seq: int, y: int, x: bytes, crc: int | None) -> None:
        if crc is not None and row_crc(int(y), bytes(x)) != crc:
            raise CheckpointError(f"event seq {seq} in {self.path} fails its CRC-32 (damaged on disk); it is not learned. "
                                  "Restore events.sqlite from a backup (with the snapshots written from it)")
        if len(x) != 4 * self.input_dim:
            raise CheckpointError(f"event seq {seq} in {self.path} has {len(x)} input bytes, not {4 * self.input_dim} "
                                  "(damaged); restore events.sqlite from a backup")

    def check_rows(self, after: int = 0) -> int:
        """Check the CRC-32 of every event with ``seq > after`` (all of them under ``--verify``;
        those not yet learned at every start); returns the number of rows checked."""
        n = 0
        with self._read_lock:
            cur = self._read.execute("SELECT seq, y, x, crc FROM events WHERE seq > ? ORDER BY seq", (after,))
            for seq, y, x, crc in cur:
                self._check_row(seq, y, x, crc)
                n += 1
        return n

    def count(self) -> int:
        with self._read_lock:
            return int(self._read.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def event_ids(self) -> dict[str, int]:
        """Every client event id with its sequence number (for audits and tests)."""
        with self._read_lock:
            return {str(e): int(s) for e, s in self._read.execute("SELECT event_id, seq FROM events WHERE event_id IS NOT NULL")}

    def journal_append(self, kind: str, a: int | None = None, b: int | None = None) -> int:
        """Durably record one worker decision; returns its step number."""
        with self._read_lock:
            cur = self._read.execute("INSERT INTO journal (kind, a, b, at) VALUES (?, ?, ?, ?)", (kind, a, b, time.time()))
            return int(cur.lastrowid)

    def read_held(self, first: int, last: int, k: int) -> tuple[Tensor, Tensor, Tensor, list[float]]:
        """The held-back events (``seq % k == 0``) with ``first <= seq <= last``, in order."""
        with self._read_lock:
            rows = self._read.execute("SELECT seq, y, x, received_at, crc FROM events WHERE seq BETWEEN ? AND ? "
                                      "AND seq % ? = 0 ORDER BY seq", (first, last, k)).fetchall()
        return self._decode(rows)

    def rollback_floor(self, before_step: int | None = None) -> int:
        """The event seq the last rollback journaled before ``before_step`` skipped to (0 if none)."""
        hi = before_step if before_step is not None else 2**62
        with self._read_lock:
            row = self._read.execute("SELECT COALESCE(MAX(b), 0) FROM journal WHERE kind = 'rollback' AND step < ?",
                                     (hi,)).fetchone()
        return int(row[0])

    def journal(self, after: int = 0, upto: int | None = None) -> list[JournalEntry]:
        """Journal entries with ``after < step <= upto`` in order."""
        hi = upto if upto is not None else 2**62
        with self._read_lock:
            rows = self._read.execute("SELECT step, kind, a, b FROM journal WHERE step > ? AND step <= ? ORDER BY step",
                                      (after, hi)).fetchall()
        return [JournalEntry(int(s), k, a, b) for s, k, a, b in rows]

    def get_meta(self, key: str) -> str | None:
        with self._read_lock:
            row = self._read.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Durably set an operator setting (such as ``frozen``) kept with the log."""
        with self._read_lock:
            self._read.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def last_step(self) -> int:
        with self._read_lock:
            return int(self._read.execute("SELECT COALESCE(MAX(step), 0) FROM journal").fetchone()[0])

    def close(self) -> None:
        """Finish queued appends, then close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        self._conn.close()
        with self._read_lock:
            self._read.close()
