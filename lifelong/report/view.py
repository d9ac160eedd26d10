"""A run directory as the reports see it: ``metrics.json``, ``config.toml`` and the log.

The log is read by :func:`lifelong.log.read_log`, the package's one log reader, without its
``train`` records (the bulk of a log; no report reads them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import DataError
from lifelong.log import Record, read_log


@dataclass
class RunView:
    """What a report reads from a run directory."""

    run_dir: Path
    metrics: dict[str, Any]
    records: list[Record]  # every record except ``train`` ones
    config_text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    @property
    def learner(self) -> str:
        return str(self.meta.get("learner", "?"))

    @property
    def n_seeds(self) -> int:
        return len(self.metrics.get("per_seed", {})) or 1


def load_run(run_dir: str | Path) -> RunView:
    """Read ``metrics.json``, ``config.toml`` and the non-training records of a run directory.

    Raises
    ------
    DataError
        If the directory has no ``log.jsonl`` or ``metrics.json``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "log.jsonl").is_file():
        raise DataError(f"{run_dir} has no log.jsonl; pass a directory written by `lifelong run`")
    if not (run_dir / "metrics.json").is_file():
        raise DataError(f"{run_dir} has no metrics.json; rebuild it with `lifelong report {run_dir}`")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{run_dir}/metrics.json is not valid JSON ({e}); rebuild it with `lifelong report {run_dir}`") from None
    records = read_log(run_dir / "log.jsonl", exclude=("train",))
    config = run_dir / "config.toml"
    config_text = config.read_text(encoding="utf-8") if config.is_file() else "(no config.toml)"
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    return RunView(run_dir, metrics, records, config_text, meta)

