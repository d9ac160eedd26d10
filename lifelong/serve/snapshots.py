"""Self-verifying snapshots of the full learner state, written atomically.

A snapshot file ``snap-<step>-<seq>.pt`` holds::

    b"LLSNAP2\\n" + sha256(header + payload).hexdigest() + b"\\n" + header + payload

where ``header`` is one JSON line ``{"log_id", "step", "seq", "fingerprint"}`` (readable without
loading the state: the start-up check reads only this) and ``payload`` is ``torch.save`` of
``{"format", "step", "seq", "fingerprint", "log_id", "learner"}``. ``log_id`` is the identity of
the event log the snapshot was written from (:attr:`~lifelong.serve.eventlog.EventLog.log_id`);
:meth:`SnapshotStore.check_log` refuses to start from snapshots of another log or beyond the
log's end. Files of the earlier format ``LLSNAP1`` (no header line, no log id) are still read.

In the payload:
``step`` is the last journal step applied (see :mod:`lifelong.serve.eventlog`), ``seq`` the last
event sequence number the worker had consumed, and ``learner`` the learner's ``state_dict``
(model, optimiser, memories, generators). It is loaded with ``weights_only=True``.

Writing goes to a hidden temporary file in the same directory, which is flushed and fsynced,
renamed over the final name and followed by an fsync of the directory. A crash at any point leaves
either no file or a complete one; a file damaged later (bit rot, truncation, a half-copied
backup) fails the checksum and :meth:`SnapshotStore.newest_valid` skips it in favour of the
previous one.

Examples
--------
>>> import tempfile, torch
>>> store = SnapshotStore(tempfile.mkdtemp(), fingerprint="f", keep=2)
>>> _ = store.write(3, 30, {"w": torch.ones(2)})
>>> info, state = store.newest_valid()
>>> info.step, info.seq, state["w"].tolist()
(3, 30, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lifelong.errors import CheckpointError

MAGIC_V1 = b"LLSNAP1\n"  # sha256(payload) + payload; no header line, no log id (still read)
MAGIC = b"LLSNAP2\n"
FORMAT = 2
_NAME = re.compile(r"^snap-(\d{12})-(\d{12})\.pt$")
_HEAD = len(MAGIC) + 65  # magic, hex digest, newline
log = logging.getLogger("lifelong.serve")


@dataclass(frozen=True)
class SnapshotInfo:
    step: int  # journal step the state is *after*
    seq: int  # last event sequence number consumed at that step
    path: Path


class SnapshotStore:
    """The snapshot directory of one service.

    Parameters
    ----------
    directory
        where ``snap-*.pt`` files live (created if missing).
    fingerprint
        the config fingerprint; a snapshot written under another one is treated as invalid.
    keep
        how many of the newest snapshots :meth:`prune` keeps.
    log_id
        the identity of the event log; written into every snapshot, and a snapshot of another log
        is invalid. ``None`` (tests, tools) neither writes nor checks one.
    """

    def __init__(self, directory: str | Path, *, fingerprint: str, keep: int = 5, log_id: str | None = None) -> None:
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise CheckpointError(f"{self.dir} is a file, not the snapshot directory; move it aside "
                                  f"(mv {self.dir} {self.dir}.file) and start again")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint, self.keep, self.log_id = fingerprint, int(keep), log_id
        for tmp in self.dir.glob(".snap-*.tmp"):  # left by a crash mid-write: never renamed, never valid
            tmp.unlink(missing_ok=True)

    def list(self) -> list[SnapshotInfo]:
        """Snapshot files by name, newest (highest step) first; validity is not checked here."""
        out = []
        for p in self.dir.iterdir():
            m = _NAME.match(p.name)
            if m:
                out.append(SnapshotInfo(int(m.group(1)), int(m.group(2)), p))
        return sorted(out, key=lambda i: i.step, reverse=True)

    def write(self, step: int, seq: int, learner_state: dict[str, Any]) -> SnapshotInfo:
        """Atomically write a snapshot of the state after journal step ``step``."""
        meta = {"format": FORMAT, "step": int(step), "seq": int(seq), "fingerprint": self.fingerprint,
                "log_id": self.log_id}
        buf = io.BytesIO()
        torch.save({**meta, "learner": learner_state}, buf)
        body = json.dumps(meta, sort_keys=True).encode() + b"\n" + buf.getvalue()
        digest = hashlib.sha256(body).hexdigest().encode()
        final = self.dir / f"snap-{step:012d}-{seq:012d}.pt"
        tmp = self.dir / f".{final.stem}.tmp"
        with open(tmp, "wb") as f:
            f.write(MAGIC + digest + b"\n")
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
        return SnapshotInfo(int(step), int(seq), final)

    def peek(self, info: SnapshotInfo) -> dict[str, Any] | None:
        """The header line of a format-2 file (``log_id``, ``step``, ``seq``, ``fingerprint``), read
        without loading the state or checking the checksum; ``{}`` for a format-1 file, ``None``
        when it cannot be read."""
        try:
            with open(info.path, "rb") as f:
                head = f.read(_HEAD + 4096)
        except OSError:
            return None
        if head.startswith(MAGIC_V1):
            return {}
        if not head.startswith(MAGIC) or b"\n" not in head[_HEAD:]:
            return None
        try:
            meta = json.loads(head[_HEAD:head.index(b"\n", _HEAD)])
        except ValueError:
            return None
        return meta if isinstance(meta, dict) else None

    def check_log(self, *, log_id: str, last_seq: int, last_step: int, log_path: Path) -> None:
        """Refuse (:class:`CheckpointError`) snapshots written from another event log, or beyond this
        log's end (a log restored from an older backup, or deleted and recreated)."""
        aside = f"mv {self.dir} {self.dir}.old"
        for info in self.list():
            meta = self.peek(info)
            if meta is None:
                continue  # unreadable: skipped with a warning when it is loaded
            other = meta.get("log_id")
            if other is not None and other != log_id:
                raise CheckpointError(
                    f"snapshot {info.path.name} was written from event log {other[:12]} but {log_path} is event log "
                    f"{log_id[:12]} (the log was replaced, recreated or restored from another backup); restore the "
                    f"events.sqlite these snapshots came from, or keep the snapshots aside ({aside}) to start from "
                    "this log alone")
            if info.seq > last_seq or info.step > last_step:
                raise CheckpointError(
                    f"snapshot {info.path.name} is at event seq {info.seq}, journal step {info.step}, beyond the end "
                    f"of {log_path} (seq {last_seq}, step {last_step}; an older backup of the log?); restore the "
                    f"newer events.sqlite, or keep the snapshots aside ({aside}) to start from this log alone")

    def load(self, info: SnapshotInfo) -> dict[str, Any] | None:
        """The learner state in ``info``'s file, or ``None`` (with a warning) if it is invalid."""
        why = None
        try:
            raw = info.path.read_bytes()
        except OSError as e:
            raw, why = b"", f"unreadable ({e})"
        v1 = raw.startswith(MAGIC_V1)
        if why is None and (not (v1 or raw.startswith(MAGIC)) or len(raw) < _HEAD or raw[_HEAD - 1:_HEAD] != b"\n"):
            why = "missing header (partial or foreign file)"
        if why is None and hashlib.sha256(raw[_HEAD:]).hexdigest().encode() != raw[len(MAGIC):_HEAD - 1]:
            why = "checksum mismatch (corrupt or truncated)"
        state = None
        if why is None:
            payload = raw[_HEAD:] if v1 else raw[raw.index(b"\n", _HEAD) + 1:] if b"\n" in raw[_HEAD:] else b""
            try:
                state = torch.load(io.BytesIO(payload), weights_only=True)
            except Exception as e:  # torch raises many types for a damaged archive
                why = f"cannot be unpickled ({type(e).__name__})"
        if why is None and (not isinstance(state, dict) or state.get("format") not in (1, FORMAT)):
            why = f"not a format-1 or format-{FORMAT} snapshot"
        if why is None and state["fingerprint"] != self.fingerprint:
            why = "written under a different learner/model configuration"
        if why is None and (state["step"], state["seq"]) != (info.step, info.seq):
            why = "its contents do not match its file name"
        if why is None and self.log_id is not None and state.get("log_id") not in (None, self.log_id):
            why = "written from another event log"
        if why is not None:
            log.warning("skipping snapshot %s: %s", info.path.name, why)
            return None
        return state["learner"]

    def newest_valid(self, *, max_step: int | None = None, max_seq: int | None = None) -> tuple[SnapshotInfo, dict] | None:
        """The newest valid snapshot with ``step <= max_step`` and ``seq <= max_seq``, or ``None``."""
        for info in self.list():
            if (max_step is not None and info.step > max_step) or (max_seq is not None and info.seq > max_seq):
                continue
            state = self.load(info)
            if state is not None:
                return info, state
        return None

    def prune(self) -> None:
        """Delete all but the ``keep`` newest snapshots."""
        for info in self.list()[self.keep:]:
            info.path.unlink(missing_ok=True)
