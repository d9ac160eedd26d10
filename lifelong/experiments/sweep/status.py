"""The files that say where each run of a sweep stands: ``<run_dir>/status.json``.

A status is ``queued``, ``running``, ``done`` or ``failed`` (with the error), plus the node id, host
name and pid that ran it. The backends write them; the summary and ``--resume`` read them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def now() -> str:
    """Local time as ``2026-01-31T12:00:00`` (status files only; no run log holds a time)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def write_status(run_dir: Path, status: dict[str, Any]) -> None:
    """Write ``status.json`` atomically (a reader never sees half a file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "status.json.tmp"
    tmp.write_text(json.dumps(status, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / "status.json")


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_finished(run_dir: Path) -> bool:
    """The run is done and its ``metrics.json`` exists (``--resume`` skips it)."""
    return read_status(run_dir).get("status") == "done" and (run_dir / "metrics.json").is_file()


def can_continue(run_dir: Path) -> bool:
    """An interrupted (not failed) run with checkpoints continues from them instead of restarting."""
    st = read_status(run_dir).get("status")
    return st in ("queued", "running") and (run_dir / "config.toml").is_file() and any((run_dir / "checkpoints").glob("seed*.pt"))


def status_line(status: dict[str, Any]) -> str:
    """One line for a finished run: ``done    NAME  acc 0.8123  1.2s  pid 42`` or ``FAILED  NAME: Type: message``."""
    where = f"node {status['node_id'][:8]}" if status.get("node_id") else f"pid {status.get('pid', '?')}"
    if status.get("status") == "done":
        acc = status.get("metrics", {}).get("acc", float("nan"))
        return f"done    {status['name']}  acc {acc:.4f}  {status.get('wall_time_s', 0):.1f}s  {where}"
    return f"FAILED  {status['name']}: {status.get('error_type', '')}: {status.get('error', '')}"
