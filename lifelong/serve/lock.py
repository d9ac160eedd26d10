"""One writer per data directory: an exclusive ``flock`` on ``data_dir/serve.lock``.

The lock is held by the process for as long as its service runs and is released by the kernel
when the process dies (SIGKILL included), so a crashed service never leaves a stale lock. The file
holds the holder's PID, which a refused second process names.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> d = Path(tempfile.mkdtemp())
>>> first = DataDirLock(d)
>>> DataDirLock(d)
Traceback (most recent call last):
...
lifelong.errors.CheckpointError: ... is in use by another lifelong serve process (PID ...); ...
>>> first.release()
>>> DataDirLock(d).release()
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from lifelong.errors import CheckpointError

LOCK_NAME = "serve.lock"


class DataDirLock:
    """Take the lock on ``data_dir`` or raise :class:`CheckpointError` naming the holder's PID."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CheckpointError(f"cannot create the lock file {self.path}: {e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(
                f"{self.path.parent} is in use by another lifelong serve process (PID {holder}); stop that process "
                "first (two writers would journal the same events twice), or point [serve] data_dir elsewhere"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the lock up (idempotent). The file stays: removing it would race a new holder."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
