"""Self-verifying snapshots of the full learner state, written atomically.

A snapshot file ``snap-<step>-<seq>.pt`` holds::

    b"LLSNAP1\\n" + sha256(payload).hexdigest() + b"\\n" + payload

where ``payload`` is ``torch.save`` of ``{"format", "step", "seq", "fingerprint", "learner"}``:
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
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MAGIC = b"LLSNAP1\n"
FORMAT = 1
_NAME = re.compile(r"^snap-(\d{12})-(\d{12})\.pt$")
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
    """

    def __init__(self, directory: str | Path, *, fingerprint: str, keep: int = 5) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint, self.keep = fingerprint, int(keep)
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
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "step": int(step), "seq": int(seq), "fingerprint": self.fingerprint,
                    "learner": learner_state}, buf)
        payload = buf.getvalue()
        digest = hashlib.sha256(payload).hexdigest().encode()
        final = self.dir / f"snap-{step:012d}-{seq:012d}.pt"
        tmp = self.dir / f".{final.stem}.tmp"
        with open(tmp, "wb") as f:
            f.write(MAGIC + digest + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
        return SnapshotInfo(int(step), int(seq), final)

    def load(self, info: SnapshotInfo) -> dict[str, Any] | None:
        """The learner state in ``info``'s file, or ``None`` (with a warning) if it is invalid."""
        why = None
        try:
            raw = info.path.read_bytes()
        except OSError as e:
            raw, why = b"", f"unreadable ({e})"
        head = len(MAGIC) + 65
        if why is None and (not raw.startswith(MAGIC) or len(raw) < head or raw[head - 1:head] != b"\n"):
            why = "missing header (partial or foreign file)"
        if why is None and hashlib.sha256(raw[head:]).hexdigest().encode() != raw[len(MAGIC):head - 1]:
            why = "checksum mismatch (corrupt or truncated)"
        state = None
        if why is None:
            try:
                state = torch.load(io.BytesIO(raw[head:]), weights_only=True)
            except Exception as e:  # torch raises many types for a damaged archive
                why = f"cannot be unpickled ({type(e).__name__})"
        if why is None and (not isinstance(state, dict) or state.get("format") != FORMAT):
            why = f"not a format-{FORMAT} snapshot"
        if why is None and state["fingerprint"] != self.fingerprint:
            why = "written under a different learner/model configuration"
        if why is None and (state["step"], state["seq"]) != (info.step, info.seq):
            why = "its contents do not match its file name"
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
